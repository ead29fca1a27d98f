"""Data factories (``make_*``) writing through the storage layer, and a logged-in client."""

from __future__ import annotations

import asyncio
import itertools
import uuid
import weakref
from typing import Any

from aiohttp.test_utils import TestClient

from api.session import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE, SessionCodec
from storage import rooms as room_store
from storage import users as user_store
from storage.engine import SessionMaker
from storage.records import AccessRecord, RoomRecord, UserRecord

_counter = itertools.count(1)


class Factory:
    """Creates rows for a test; one instance per test, bound to the test database."""

    def __init__(self, sessionmaker: SessionMaker) -> None:
        self.sessionmaker = sessionmaker

    async def user(self, **fields: Any) -> UserRecord:
        n = next(_counter)
        fields.setdefault("sub", f"user-{n}-{uuid.uuid4().hex[:8]}")
        fields.setdefault("email", f"user{n}@example.com")
        fields.setdefault("full_name", f"User {n}")
        fields.setdefault("short_name", f"User{n}")
        async with self.sessionmaker.begin() as session:
            return await user_store.create_user(session, **fields)

    async def room(
        self,
        *,
        owner: UserRecord | None = None,
        name: str | None = None,
        access_level: str = "public",
        configuration: dict[str, Any] | None = None,
        **fields: Any,
    ) -> RoomRecord:
        from coordinator.slugs import slugify

        if owner is None:
            owner = await self.user()
        name = name or f"Room {next(_counter)} {uuid.uuid4().hex[:6]}"
        async with self.sessionmaker.begin() as session:
            room, _ = await room_store.create_room(
                session,
                owner_id=owner.id,
                name=name,
                slug=slugify(name),
                access_level=access_level,
                configuration=configuration or {},
                **fields,
            )
        return room

    async def access(self, room: RoomRecord, user: UserRecord, role: str) -> AccessRecord:
        async with self.sessionmaker.begin() as session:
            return await room_store.create_access(
                session, room_id=room.id, user_id=user.id, role=role
            )

    async def room_with_role(
        self, role: str | None, **fields: Any
    ) -> tuple[RoomRecord, UserRecord]:
        """A room and a user holding ``role`` in it (None: an unrelated user)."""
        user = await self.user()
        room = await self.room(**fields)
        if role == "owner":
            await self.access(room, user, "owner")
        elif role is not None:
            await self.access(room, user, role)
        return room, user


_PENDING_LOGINS: weakref.WeakKeyDictionary[TestClient[Any, Any], list[asyncio.Task[str]]] = (
    weakref.WeakKeyDictionary()
)


def login(client: TestClient[Any, Any], codec: SessionCodec, user: UserRecord) -> None:
    """Give ``client`` a session for ``user`` and a CSRF token (cookie + header).

    The session is opened on the server like a real login (a row in the sessions table);
    callers stay synchronous: the client's next request waits until the row is written.
    """
    import secrets
    import time

    from api import keys

    sessions = client.app[keys.LOGIN_SESSIONS]
    pending = asyncio.get_running_loop().create_task(sessions.open(user.id, max_age=3600))
    csrf = secrets.token_urlsafe(8)
    client.session.headers[CSRF_HEADER] = csrf
    client.session.cookie_jar.update_cookies({CSRF_COOKIE: csrf})

    async def settle() -> str:
        key: str = await pending
        cookie = codec.encode({"sid": key, "uid": str(user.id), "exp": int(time.time()) + 3600})
        client.session.cookie_jar.update_cookies({SESSION_COOKIE: cookie})
        return key

    if client not in _PENDING_LOGINS:
        _PENDING_LOGINS[client] = []
        original = client._request

        async def _request(method: str, path: Any, **kwargs: Any) -> Any:
            waiting = _PENDING_LOGINS[client]
            for task in list(waiting):
                await task  # concurrent requests all wait, a finished task at once
            waiting[:] = [task for task in waiting if not task.done()]
            return await original(method, path, **kwargs)

        setattr(client, "_request", _request)  # noqa: B010
        close = client.close

        async def _close() -> None:
            # A login no request waited for still writes its row: let it finish before the
            # app (and its database engine) shuts down, or its connection leaks.
            for task in _PENDING_LOGINS.pop(client, []):
                try:
                    await task
                except Exception:
                    pass
            await close()

        setattr(client, "close", _close)  # noqa: B010
    _PENDING_LOGINS[client].append(asyncio.get_running_loop().create_task(settle()))


def logout(client: TestClient[Any, Any]) -> None:
    client.session.cookie_jar.clear()
    client.session.headers.pop(CSRF_HEADER, None)
