"""Room access (ResourceAccess) use cases with the contract's role rules (reference §1.4)."""

from __future__ import annotations

import uuid

from sqlalchemy.exc import IntegrityError

from coordinator.cache import LookupCache
from coordinator.errors import InvalidRequest, NotFound, PermissionDenied
from coordinator.rooms import PRIVILEGED, require_user
from storage import rooms as room_store
from storage import users as user_store
from storage.engine import SessionMaker
from storage.records import AccessRecord, Page, UserRecord

MUST_BE_ADMIN = "You must be administrator or owner of a room to add accesses to it."
ONLY_OWNERS_ASSIGN_OWNERS = "Only owners of a room can assign other users as owners."
KEEP_ONE_OWNER = "A resource should keep at least one owner."
ACCESS_NOT_FOUND = "No ResourceAccess matches the given query."
DUPLICATE_ACCESS = "Resource access with this User and Resource already exists."


class AccessService:
    def __init__(self, sessionmaker: SessionMaker, cache: LookupCache) -> None:
        self._sessionmaker = sessionmaker
        self._cache = cache

    async def list(self, user: UserRecord | None, *, offset: int, limit: int) -> Page[AccessRecord]:
        user = require_user(user)
        async with self._sessionmaker() as session:
            return await room_store.list_administered_accesses(
                session, user.id, offset=offset, limit=limit
            )

    async def retrieve(self, user: UserRecord | None, access_id: uuid.UUID) -> AccessRecord:
        user = require_user(user)
        async with self._sessionmaker() as session:
            access = await room_store.get_access(session, access_id)
            if access is None:
                raise NotFound(ACCESS_NOT_FOUND)
            mine = await room_store.get_user_access(session, access.resource_id, user.id)
        if mine is None or mine.role not in PRIVILEGED:
            raise PermissionDenied()
        return access

    async def create(
        self, user: UserRecord | None, *, target_user_id: uuid.UUID, room_id: uuid.UUID, role: str
    ) -> AccessRecord:
        user = require_user(user)
        try:
            async with self._sessionmaker.begin() as session:
                found = await room_store.get_room(
                    session, room_id=room_id, user_id=user.id, for_update=True
                )
                if found is None:
                    raise InvalidRequest.fields(
                        {"resource": [f'Invalid pk "{room_id}" - object does not exist.']}
                    )
                requester_role = found[1]
                if requester_role not in PRIVILEGED:
                    raise PermissionDenied(MUST_BE_ADMIN)
                if role == "owner" and requester_role != "owner":
                    raise PermissionDenied(ONLY_OWNERS_ASSIGN_OWNERS)
                if await user_store.get_user(session, target_user_id) is None:
                    raise InvalidRequest.fields(
                        {"user": [f'Invalid pk "{target_user_id}" - object does not exist.']}
                    )
                if await room_store.get_user_access(session, room_id, target_user_id):
                    raise InvalidRequest.fields({"non_field_errors": [DUPLICATE_ACCESS]})
                created = await room_store.create_access(
                    session, room_id=room_id, user_id=target_user_id, role=role
                )
        except IntegrityError:
            raise InvalidRequest.fields({"non_field_errors": [DUPLICATE_ACCESS]}) from None
        self._cache.forget_access(room_id, target_user_id)
        return created

    async def update(
        self, user: UserRecord | None, access_id: uuid.UUID, *, role: str | None
    ) -> AccessRecord:
        user = require_user(user)
        async with self._sessionmaker.begin() as session:
            access = await room_store.get_access(session, access_id)
            if access is None:
                raise NotFound(ACCESS_NOT_FOUND)
            found = await room_store.get_room(
                session, room_id=access.resource_id, user_id=user.id, for_update=True
            )
            requester_role = found[1] if found else None
            if requester_role not in PRIVILEGED:
                raise PermissionDenied()
            # Checked before anything else, as Meet's serializer does: an owner's access is
            # only ever written by that owner, whatever the request changes (even nothing).
            if (role == "owner" and requester_role != "owner") or (
                access.role == "owner" and access.user_id != user.id
            ):
                raise PermissionDenied(ONLY_OWNERS_ASSIGN_OWNERS)
            if role is None or role == access.role:
                return access
            if access.role == "owner":
                if await room_store.count_owners(session, access.resource_id) <= 1:
                    raise PermissionDenied(KEEP_ONE_OWNER)
            updated = await room_store.set_access_role(session, access_id, role)
        self._cache.forget_access(access.resource_id, access.user_id)
        return updated

    async def delete(self, user: UserRecord | None, access_id: uuid.UUID) -> None:
        user = require_user(user)
        async with self._sessionmaker.begin() as session:
            access = await room_store.get_access(session, access_id)
            if access is None:
                raise NotFound(ACCESS_NOT_FOUND)
            found = await room_store.get_room(
                session, room_id=access.resource_id, user_id=user.id, for_update=True
            )
            requester_role = found[1] if found else None
            if access.role == "owner":
                if access.user_id != user.id:
                    raise PermissionDenied()
                if await room_store.count_owners(session, access.resource_id) <= 1:
                    raise PermissionDenied(KEEP_ONE_OWNER)
            elif requester_role not in PRIVILEGED:
                raise PermissionDenied()
            await room_store.delete_access(session, access_id)
        self._cache.forget_access(access.resource_id, access.user_id)
