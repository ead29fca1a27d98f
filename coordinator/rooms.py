"""Room use cases: lookup with role and LiveKit token, CRUD, and the resource-access rules.

Inputs are already validated (``api`` parses them with pydantic); this module applies the
contract's permission tables (reference §1.3, §1.4) and runs one transaction per use case.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy.exc import IntegrityError

from coordinator.cache import LookupCache, TTLCache
from coordinator.errors import (
    CoordinatorError,
    InvalidRequest,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
)
from coordinator.room import SyncRoomSettings
from coordinator.settings import Settings
from coordinator.slugs import parse_uuid, slugify
from coordinator.tokens import (
    Participant,
    TokenMemory,
    mint_token,
    new_identity,
    publish_sources,
)
from storage import reads
from storage import rooms as room_store
from storage import users as user_store
from storage.engine import SessionMaker
from storage.records import AccessRecord, Page, RoomRecord, UserRecord

log = logging.getLogger(__name__)

PRIVILEGED = frozenset({"administrator", "owner"})
PRIVILEGES_REQUIRED = "You must have privileges on room to perform this action."
ROOM_NOT_FOUND = "No Room matches the given query."
NO_ACCOUNT_FOR_ROLE = "This participant has no user account and cannot be assigned a role."
SLUG_MAX_LENGTH = 100


@dataclass(frozen=True, slots=True)
class LiveKitAccess:
    url: str
    room: str
    token: str


@dataclass(frozen=True, slots=True)
class RoomView:
    """A room as one caller sees it."""

    room: RoomRecord
    role: str | None
    livekit: LiveKitAccess | None
    accesses: list[AccessRecord] | None = None

    @property
    def is_privileged(self) -> bool:
        return self.role in PRIVILEGED


@dataclass(frozen=True, slots=True)
class UnregisteredRoomView:
    slug: str
    livekit: LiveKitAccess


@dataclass(slots=True)
class RoomChanges:
    name: str | None = None
    access_level: str | None = None
    configuration: dict[str, Any] | None = None
    fields_set: set[str] = field(default_factory=set)


def can_join(access_level: str, user: UserRecord | None, role: str | None) -> bool:
    """Whether the caller receives a LiveKit token (and bypasses the lobby), §1.3."""
    if access_level == "public":
        return True
    if access_level == "trusted":
        return user is not None
    return role is not None


def unregistered_room_name(lookup: str) -> str | None:
    """The LiveKit room name of an unregistered room looked up as ``lookup``, or None (→ 404).

    Registered rooms are named in LiveKit by their id (a UUID), so neither the lookup nor its
    slug may be one: ``<room id>!``, `` <ROOM ID>_`` and the like slugify back to a registered
    room's LiveKit name and would mint a token for it. Registered slugs are never UUIDs either
    (``_slug_for``), and a lookup matching a registered slug finds that room before this runs.
    """
    slug = slugify(lookup)
    if not slug or parse_uuid(lookup) is not None or parse_uuid(slug) is not None:
        return None
    return slug


def display_name(settings: Settings, user: UserRecord | None, username: str | None) -> str:
    if user is None:
        return username or "Anonymous"
    if username and settings.authenticated_participants_can_edit_display_name:
        return username
    return user.full_name or str(user)


def require_user(user: UserRecord | None) -> UserRecord:
    if user is None:
        raise NotAuthenticated()
    return user


class RoomService:
    """Room use cases over one sessionmaker; safe to share across requests."""

    def __init__(
        self, settings: Settings, sessionmaker: SessionMaker, cache: LookupCache | None = None
    ) -> None:
        self._settings = settings
        self._sessionmaker = sessionmaker
        self.cache = cache or LookupCache(settings.lookup_cache_seconds)
        # Set by the engine: delivers a command to a room's actor (LiveKit metadata sync).
        self.on_settings_changed: Callable[[str, SyncRoomSettings], Awaitable[Any]] | None = None
        self.creation_callbacks: TTLCache[str, dict[str, str]] = TTLCache(
            ttl=settings.room_creation_callback_cache_timeout
        )
        # A user's token for a room is reused for a minute (lists sign one per room); off
        # with the lookup caches.
        self.tokens = TokenMemory() if self.cache.enabled else None

    # -- tokens ------------------------------------------------------------------------

    def livekit_access(
        self,
        *,
        room_name: str,
        configuration: dict[str, Any],
        user: UserRecord | None,
        role: str | None,
        username: str | None,
        identity: str | None = None,
        color: str | None = None,
    ) -> LiveKitAccess:
        settings = self._settings
        participant = Participant(
            identity=(user.sub or str(user.id)) if user else identity or new_identity(),
            name=display_name(settings, user, username),
            is_authenticated=user is not None,
            role=role,
            color=color,
        )
        token = mint_token(
            settings.livekit,
            room=room_name,
            participant=participant,
            sources=publish_sources(settings.livekit, configuration, role),
            memory=self.tokens if user is not None else None,
        )
        return LiveKitAccess(url=settings.livekit.api_url, room=room_name, token=token)

    def _view(
        self,
        room: RoomRecord,
        role: str | None,
        user: UserRecord | None,
        username: str | None,
        accesses: list[AccessRecord] | None,
    ) -> RoomView:
        livekit = None
        if can_join(room.access_level, user, role):
            livekit = self.livekit_access(
                room_name=str(room.id),
                configuration=room.configuration,
                user=user,
                role=role,
                username=username,
            )
        return RoomView(room=room, role=role, livekit=livekit, accesses=accesses)

    # -- lookup --------------------------------------------------------------------------

    async def _room(self, lookup: str, *, fresh: bool) -> RoomRecord | None:
        """The room named by ``lookup``: a UUID (its id), else a slug after slugification."""
        room_id, slug, key = self._room_key(lookup)

        async def load() -> tuple[RoomRecord | None]:
            found = await self._load_room(room_id, slug, None)
            return (found[0] if found else None,)

        if fresh or not self.cache.enabled:
            return (await load())[0]
        return (await self.cache.rooms.fetch(key, load))[0]  # type: ignore[no-any-return]

    @staticmethod
    def _room_key(lookup: str) -> tuple[uuid.UUID | None, str, str]:
        room_id = parse_uuid(lookup)
        slug = slugify(lookup)
        return room_id, slug, f"id:{room_id}" if room_id is not None else f"slug:{slug}"

    async def _load_room(
        self, room_id: uuid.UUID | None, slug: str, user_id: uuid.UUID | None
    ) -> tuple[RoomRecord, str | None] | None:
        """One round trip: the room (by id, else by slug) joined with ``user_id``'s access."""
        source = reads.reader(self._sessionmaker)
        found = None
        if room_id is not None:
            found = await reads.room(source, room_id=room_id, user_id=user_id)
        if found is None:
            found = await reads.room(source, slug=slug, user_id=user_id)
        return found

    async def _role(
        self, room_id: uuid.UUID, user: UserRecord | None, *, fresh: bool
    ) -> str | None:
        if user is None:
            return None
        user_id = user.id

        async def load() -> tuple[str | None]:
            async with self._sessionmaker() as session:
                access = await room_store.get_user_access(session, room_id, user_id)
            return (access.role if access else None,)

        if fresh or not self.cache.enabled:
            return (await load())[0]
        return (await self.cache.roles.fetch((room_id, user_id), load))[0]  # type: ignore[no-any-return]

    async def _accesses(self, room_id: uuid.UUID) -> list[AccessRecord]:
        async def load() -> list[AccessRecord]:
            source = reads.reader(self._sessionmaker)
            return (await reads.room_accesses(source, [room_id]))[room_id]

        if not self.cache.enabled:
            return await load()
        return await self.cache.accesses.fetch(room_id, load)  # type: ignore[no-any-return]

    async def slug_of(self, room_name: str) -> str:
        """The slug of a registered room named by its LiveKit name (else the name itself)."""
        room = await self._room(room_name, fresh=False)
        return room.slug if room is not None else room_name

    async def find(
        self, lookup: str, user: UserRecord | None, *, fresh: bool = False
    ) -> tuple[RoomRecord, str | None] | None:
        """The room named by ``lookup`` and the caller's role; ``fresh`` bypasses the cache.

        A room read from the database comes with the caller's role (one query, which also
        fills the role cache); concurrent misses of one room share that query."""
        room_id, slug, key = self._room_key(lookup)
        user_id = user.id if user is not None else None
        loaded: list[str | None] = []

        async def load() -> tuple[RoomRecord | None]:
            found = await self._load_room(room_id, slug, user_id)
            if found is None:
                return (None,)
            if user_id is not None:
                loaded.append(found[1])
                if self.cache.enabled:
                    self.cache.roles.set((found[0].id, user_id), (found[1],))
            return (found[0],)

        if fresh or not self.cache.enabled:
            room = (await load())[0]
        else:
            room = (await self.cache.rooms.fetch(key, load))[0]
        if room is None:
            return None
        if loaded:
            return room, loaded[0]
        return room, await self._role(room.id, user, fresh=fresh)

    async def get(
        self, lookup: str, user: UserRecord | None, *, fresh: bool = False
    ) -> tuple[RoomRecord, str | None]:
        found = await self.find(lookup, user, fresh=fresh)
        if found is None:
            raise NotFound(ROOM_NOT_FOUND)
        return found

    async def retrieve(
        self, lookup: str, user: UserRecord | None, *, username: str | None
    ) -> RoomView | UnregisteredRoomView:
        found = await self.find(lookup, user)
        if found is None:
            if not self._settings.allow_unregistered_rooms:
                raise NotFound(ROOM_NOT_FOUND)
            slug = unregistered_room_name(lookup)
            if slug is None:
                raise NotFound(ROOM_NOT_FOUND)
            livekit = self.livekit_access(
                room_name=slug, configuration={}, user=user, role=None, username=username
            )
            return UnregisteredRoomView(slug=slug, livekit=livekit)
        room, role = found
        accesses = await self._accesses(room.id) if role in PRIVILEGED else None
        return self._view(room, role, user, username, accesses)

    async def list(self, user: UserRecord, *, offset: int, limit: int) -> Page[RoomView]:
        source = reads.reader(self._sessionmaker)
        page = await reads.user_rooms(source, user.id, offset=offset, limit=limit)
        admin_ids = [room.id for room, role in page.items if role in PRIVILEGED]
        accesses = await reads.room_accesses(source, admin_ids)
        views = [
            self._view(
                room, role, user, None, accesses.get(room.id) if role in PRIVILEGED else None
            )
            for room, role in page.items
        ]
        return Page(views, page.count)

    # -- writes --------------------------------------------------------------------------

    def _slug_for(self, name: str) -> str:
        slug = slugify(name)
        if parse_uuid(slug) is not None:
            raise InvalidRequest.fields({"name": [f'Room name "{name}" is reserved.']})
        if not slug:
            raise InvalidRequest.fields({"name": ["The room name must contain letters or digits."]})
        if len(slug) > SLUG_MAX_LENGTH:
            raise InvalidRequest.fields(
                {
                    "slug": [
                        f"Ensure this value has at most {SLUG_MAX_LENGTH} characters "
                        f"(it has {len(slug)})."
                    ]
                }
            )
        return slug

    def _new_pin(self) -> str | None:
        settings = self._settings
        if not (settings.room_telephony_enabled or settings.roomkit_enabled):
            return None
        length = settings.room_telephony_pin_length
        return str(secrets.randbelow(10**length)).zfill(length)

    async def create(
        self,
        user: UserRecord | None,
        *,
        name: str,
        access_level: str | None,
        configuration: dict[str, Any] | None,
        callback_id: str | None,
        username: str | None = None,
        apply_user_defaults: bool = True,
    ) -> RoomView:
        """``apply_user_defaults=False`` (external API): the caller's default access level and
        configuration are not applied."""
        user = require_user(user)
        slug = self._slug_for(name)
        if access_level is None:
            access_level = (
                user.default_room_access_level or self._settings.resource_default_access_level
            )
        if not configuration and apply_user_defaults:
            configuration = dict(user.default_room_configuration or {})
        # The unique indexes decide: no read first. A conflict is the slug's (a race or a
        # duplicate name: 400) unless the slug is free, then the random PIN's: another PIN,
        # and after ROOM_TELEPHONY_PIN_MAX_RETRIES conflicts the room gets none.
        pin = self._new_pin()
        retries = self._settings.room_telephony_pin_max_retries
        while True:
            try:
                room, owner_access = await room_store.insert_room(
                    self._sessionmaker,
                    owner_id=user.id,
                    name=name,
                    slug=slug,
                    access_level=access_level,
                    configuration=configuration,
                    pin_code=pin,
                )
                break
            except IntegrityError:
                if pin is None or await self._slug_taken(slug):
                    raise _duplicate_slug() from None
                retries -= 1
                pin = self._new_pin() if retries > 0 else None
        self.cache.forget_room(room.id, slug)
        if callback_id:
            self.creation_callbacks.set(callback_id, {"slug": slug})
        accesses = [replace(owner_access, user=user)]
        return self._view(room, "owner", user, username, accesses)

    async def _slug_taken(self, slug: str) -> bool:
        async with self._sessionmaker() as session:
            return await room_store.slug_exists(session, slug)

    async def update(self, lookup: str, user: UserRecord | None, changes: RoomChanges) -> RoomView:
        user = require_user(user)
        room, role = await self.get(lookup, user, fresh=True)
        if role not in PRIVILEGED:
            raise PermissionDenied()
        fields: dict[str, Any] = {}
        if "name" in changes.fields_set and changes.name is not None:
            fields["name"] = changes.name
            fields["slug"] = self._slug_for(changes.name)
        if "access_level" in changes.fields_set and changes.access_level is not None:
            fields["access_level"] = changes.access_level
        if "configuration" in changes.fields_set:
            fields["configuration"] = changes.configuration or {}
        try:
            async with self._sessionmaker.begin() as session:
                if "slug" in fields and await room_store.slug_exists(
                    session, fields["slug"], exclude=room.id
                ):
                    raise _duplicate_slug()
                updated = await room_store.update_room(session, room.id, **fields)
                accesses = await room_store.room_accesses(session, [room.id])
        except IntegrityError:
            raise _duplicate_slug() from None
        self.cache.forget_room(room.id, room.slug, updated.slug)
        await self._sync_livekit(room, updated)
        return self._view(updated, role, user, None, accesses[room.id])

    async def _sync_livekit(self, before: RoomRecord, after: RoomRecord) -> None:
        """Merge configuration and access level into the LiveKit room metadata when changed."""
        changed = (before.configuration, before.access_level) != (
            after.configuration,
            after.access_level,
        )
        if not changed or self.on_settings_changed is None:
            return
        changes = {"configuration": after.configuration, "access_level": after.access_level}
        try:
            await self.on_settings_changed(str(after.id), SyncRoomSettings(changes))
        except CoordinatorError as exc:
            log.warning("room %s: LiveKit metadata not synced: %s", after.id, exc)

    async def delete(self, lookup: str, user: UserRecord | None) -> None:
        user = require_user(user)
        room, role = await self.get(lookup, user, fresh=True)
        if role != "owner":
            raise PermissionDenied()
        async with self._sessionmaker.begin() as session:
            await room_store.delete_room(session, room.id)
        self.cache.forget_room(room.id, room.slug)

    async def assign_role(self, room: RoomRecord, target_sub: str, role: str) -> None:
        """Persist a connected participant's new room role (update-participant-role, §2.5)."""
        async with self._sessionmaker.begin() as session:
            target = await user_store.get_user_by_sub(session, target_sub)
            if target is None:
                raise NotFound(body={"error": NO_ACCOUNT_FOR_ROLE})
            access = await room_store.get_user_access(session, room.id, target.id)
            if access is not None and access.role == "owner":
                raise PermissionDenied(body={"error": "Room owners cannot be demoted."})
            if access is None:
                await room_store.create_access(
                    session, room_id=room.id, user_id=target.id, role=role
                )
            elif access.role != role:
                await room_store.set_access_role(session, access.id, role)
        self.cache.forget_access(room.id, target.id)

    def pop_creation_callback(self, callback_id: str) -> dict[str, str]:
        return self.creation_callbacks.pop(callback_id) or {}


def _duplicate_slug() -> InvalidRequest:
    return InvalidRequest.fields({"slug": ["Room with this Slug already exists."]})


def require_privileged(role: str | None) -> None:
    if role not in PRIVILEGED:
        raise PermissionDenied(PRIVILEGES_REQUIRED)
