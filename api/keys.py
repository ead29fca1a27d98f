"""Typed application and request state keys (no string keys anywhere)."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from api.session import SessionCodec
from coordinator.accesses import AccessService
from coordinator.engines import Directory
from coordinator.errors import Throttled
from coordinator.identity import LobbyIds
from coordinator.integrations import Integrations
from coordinator.livekit import LiveKitAdapter
from coordinator.outbox import OutboxDispatcher
from coordinator.reconcile import Reconciler
from coordinator.recordings import RecordingLifecycle
from coordinator.rooms import RoomService
from coordinator.sessions import LoginSessions
from coordinator.settings import Settings, ThrottleSettings
from coordinator.throttle import Throttle, throttled_message
from storage.engine import SessionMaker
from storage.records import UserRecord


class Throttles:
    """The per-endpoint limiters (``settings.throttles``; None where a rate is ``none``)."""

    def __init__(self, settings: ThrottleSettings | None = None) -> None:
        rates = settings or ThrottleSettings()
        self.request_entry = Throttle.of(rates.request_entry)
        self.request_entry_new_participant = Throttle.of(rates.request_entry_new_participant)
        self.creation_callback = Throttle.of(rates.creation_callback)
        self.invite = Throttle.of(rates.invite)
        self.invite_max_recipients = rates.invite_max_recipients

    @staticmethod
    def check(throttle: Throttle | None, key: str, cost: int = 1) -> None:
        """Raise :class:`Throttled` (429, DRF's message) when ``key`` is over its rate."""
        if throttle is None:
            return
        wait = throttle.hit(key, cost)
        if wait is not None:
            raise Throttled(throttled_message(wait))


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
DIRECTORY = web.AppKey("directory", Directory)
RECORDINGS = web.AppKey("recordings", RecordingLifecycle)
OUTBOX = web.AppKey("outbox", OutboxDispatcher)
RECONCILER = web.AppKey("reconciler", Reconciler)
THROTTLES = web.AppKey("throttles", Throttles)
LOBBY_IDS = web.AppKey("lobby_ids", LobbyIds)
LOGIN_SESSIONS = web.AppKey("login_sessions", LoginSessions)
INTEGRATION_THROTTLES = web.AppKey("integration_throttles", IntegrationThrottles)
INTEGRATIONS = web.AppKey("integrations", Integrations)

USER = web.RequestKey("user", UserRecord)
