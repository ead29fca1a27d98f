"""Plain frozen values returned by the repositories; no ORM object leaves ``storage/``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

T = TypeVar("T")

ROLE_RANK = {"member": 1, "administrator": 2, "owner": 3}


def highest_role(roles: list[str] | tuple[str, ...]) -> str | None:
    """The highest of ``roles`` (owner > administrator > member), or None."""
    return max(roles, key=ROLE_RANK.__getitem__) if roles else None


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: uuid.UUID
    sub: str | None
    email: str | None
    full_name: str | None
    short_name: str | None
    language: str
    timezone: str
    default_room_access_level: str | None
    default_room_configuration: dict[str, Any]
    is_active: bool
    is_staff: bool
    created_at: datetime
    last_login: datetime | None = None

    def __str__(self) -> str:
        return self.email or str(self.id)


@dataclass(frozen=True, slots=True)
class RoomRecord:
    id: uuid.UUID
    name: str
    slug: str
    access_level: str
    configuration: dict[str, Any]
    pin_code: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class AccessRecord:
    """A room access (ResourceAccess); ``user`` is filled when the query joined it."""

    id: uuid.UUID
    resource_id: uuid.UUID
    user_id: uuid.UUID
    role: str
    created_at: datetime
    user: UserRecord | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    count: int
