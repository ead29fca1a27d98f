"""Typed application and request state keys (no string keys anywhere)."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from api.session import SessionCodec
from coordinator.accesses import AccessService
from coordinator.rooms import RoomService
from coordinator.settings import Settings
from storage.engine import SessionMaker
from storage.records import UserRecord

SETTINGS = web.AppKey("settings", Settings)
SESSIONMAKER = web.AppKey("sessionmaker", SessionMaker)
ROOMS = web.AppKey("rooms", RoomService)
ACCESSES = web.AppKey("accesses", AccessService)
SESSIONS = web.AppKey("sessions", SessionCodec)
HTTP = web.AppKey("http", aiohttp.ClientSession)
OPENAPI = web.AppKey("openapi", dict)

USER = web.RequestKey("user", UserRecord)
