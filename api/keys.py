"""Typed application and request state keys (no string keys anywhere)."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from api.session import SessionCodec
from coordinator.accesses import AccessService
from coordinator.actor import LocalDirectory
from coordinator.integrations import Integrations
from coordinator.livekit import LiveKitAdapter
from coordinator.outbox import OutboxDispatcher
from coordinator.reconcile import Reconciler
from coordinator.recordings import RecordingLifecycle
from coordinator.rooms import RoomService
from coordinator.settings import Settings
from coordinator.throttle import Throttle
from storage.engine import SessionMaker
from storage.records import UserRecord


class Throttles:
    """The per-endpoint limiters (Meet's rates)."""

    def __init__(self) -> None:
        self.request_entry = Throttle(150, 60.0)
        self.creation_callback = Throttle(600, 60.0)


class IntegrationThrottles:
    """The limiters of the flagged integrations (Meet's ``*_THROTTLE_RATES``)."""

    def __init__(self, settings: Settings) -> None:
        self.connection_test = Throttle(*settings.connection_test_throttle_rate)
        self.roomkit_join = Throttle(*settings.roomkit_join_throttle_rate)


SETTINGS = web.AppKey("settings", Settings)
SESSIONMAKER = web.AppKey("sessionmaker", SessionMaker)
ROOMS = web.AppKey("rooms", RoomService)
ACCESSES = web.AppKey("accesses", AccessService)
SESSIONS = web.AppKey("sessions", SessionCodec)
HTTP = web.AppKey("http", aiohttp.ClientSession)
OPENAPI = web.AppKey("openapi", dict)
LIVEKIT = web.AppKey("livekit", LiveKitAdapter)
DIRECTORY = web.AppKey("directory", LocalDirectory)
RECORDINGS = web.AppKey("recordings", RecordingLifecycle)
OUTBOX = web.AppKey("outbox", OutboxDispatcher)
RECONCILER = web.AppKey("reconciler", Reconciler)
THROTTLES = web.AppKey("throttles", Throttles)
INTEGRATION_THROTTLES = web.AppKey("integration_throttles", IntegrationThrottles)
INTEGRATIONS = web.AppKey("integrations", Integrations)

USER = web.RequestKey("user", UserRecord)
