"""SQLAlchemy 2 models of Meet's tables (reference §1.1), portable to SQLite and PostgreSQL.

No ORM object leaves ``storage/``: repositories return frozen records (``storage.records``).
Choices are CHECK constraints, the partial unique indexes use ``sqlite_where`` and
``postgresql_where`` with the same predicate.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    String,
    Text,
    TypeDecorator,
    Uuid,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ROLES = ("member", "administrator", "owner")
ACCESS_LEVELS = ("public", "trusted", "restricted")
LANGUAGES = ("en-us", "fr-fr", "nl-nl", "de-de")
RECORDING_STATUSES = (
    "initiated",
    "active",
    "stopped",
    "saved",
    "aborted",
    "failed_to_start",
    "failed_to_stop",
    "notification_succeeded",
    "external_process_successful",
    "external_process_failed",
)
RECORDING_MODES = ("screen_recording", "transcript")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class TimestampedMixin:
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class User(TimestampedMixin, Base):
    __tablename__ = "meet_user"
    __table_args__ = (
        CheckConstraint(_in("language", LANGUAGES), name="ck_user_language"),
        CheckConstraint(
            "default_room_access_level IS NULL OR default_room_access_level = '' OR "
            + _in("default_room_access_level", ACCESS_LEVELS),
            name="ck_user_default_room_access_level",
        ),
        Index(
            "unique_email_when_sub_is_null",
            text("lower(email)"),
            unique=True,
            sqlite_where=text("sub IS NULL"),
            postgresql_where=text("sub IS NULL"),
        ),
        Index("ix_user_email_lower", text("lower(email)")),
    )

    sub: Mapped[str | None] = mapped_column(String(255), unique=True)
    email: Mapped[str | None] = mapped_column(String(254))
    admin_email: Mapped[str | None] = mapped_column(String(254), unique=True)
    full_name: Mapped[str | None] = mapped_column(String(100))
    short_name: Mapped[str | None] = mapped_column(String(100))
    language: Mapped[str] = mapped_column(String(10), default="en-us")
    timezone: Mapped[str] = mapped_column(String(63), default="UTC")
    default_room_access_level: Mapped[str | None] = mapped_column(String(50))
    default_room_configuration: Mapped[dict[str, Any]] = mapped_column(default=dict)
    is_device: Mapped[bool] = mapped_column(Boolean, default=False)
    is_staff: Mapped[bool] = mapped_column(Boolean, default=False)
    is_superuser: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    password: Mapped[str | None] = mapped_column(String(128))
    last_login: Mapped[datetime | None] = mapped_column()


class Room(TimestampedMixin, Base):
    """A room (Meet's Resource + Room; the Resource table holds no business column)."""

    __tablename__ = "meet_room"
    __table_args__ = (CheckConstraint(_in("access_level", ACCESS_LEVELS), name="ck_room_access"),)

    name: Mapped[str] = mapped_column(String(500))
    slug: Mapped[str | None] = mapped_column(String(100), unique=True)
    access_level: Mapped[str] = mapped_column(String(50), default="public")
    configuration: Mapped[dict[str, Any]] = mapped_column(default=dict)
    pin_code: Mapped[str | None] = mapped_column(Text, unique=True)


class ResourceAccess(TimestampedMixin, Base):
    __tablename__ = "meet_resource_access"
    __table_args__ = (
        CheckConstraint(_in("role", ROLES), name="ck_resource_access_role"),
        Index("resource_access_unique_user_resource", "user_id", "resource_id", unique=True),
    )

    resource_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("meet_room.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("meet_user.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(20), default="member")


class Recording(TimestampedMixin, Base):
    __tablename__ = "meet_recording"
    __table_args__ = (
        CheckConstraint(_in("status", RECORDING_STATUSES), name="ck_recording_status"),
        CheckConstraint(_in("mode", RECORDING_MODES), name="ck_recording_mode"),
        Index(
            "unique_initiated_or_active_recording_per_room",
            "room_id",
            unique=True,
            sqlite_where=text("status IN ('initiated', 'active')"),
            postgresql_where=text("status IN ('initiated', 'active')"),
        ),
    )

    room_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("meet_room.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(50), default="initiated")
    worker_id: Mapped[str | None] = mapped_column(String(255), index=True)
    mode: Mapped[str] = mapped_column(String(20), default="screen_recording")
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    external_process_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    # The metadata-collector agent dispatched at recording start (issue 8), deleted at egress_ended.
    metadata_collector_dispatch_id: Mapped[str | None] = mapped_column(String(255))


class RecordingAccess(TimestampedMixin, Base):
    __tablename__ = "meet_recording_access"
    __table_args__ = (
        CheckConstraint(_in("role", ROLES), name="ck_recording_access_role"),
        CheckConstraint(
            "(user_id IS NOT NULL AND team = '') OR (user_id IS NULL AND team != '')",
            name="check_either_user_or_team",
        ),
        Index(
            "recording_access_unique_user_recording",
            "user_id",
            "recording_id",
            unique=True,
            sqlite_where=text("user_id IS NOT NULL"),
            postgresql_where=text("user_id IS NOT NULL"),
        ),
        Index(
            "recording_access_unique_team_recording",
            "team",
            "recording_id",
            unique=True,
            sqlite_where=text("team != ''"),
            postgresql_where=text("team != ''"),
        ),
    )

    recording_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("meet_recording.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("meet_user.id", ondelete="CASCADE"), index=True
    )
    team: Mapped[str] = mapped_column(String(100), default="")
    role: Mapped[str] = mapped_column(String(20), default="member")


OUTBOX_STATUSES = ("pending", "succeeded", "failed")


class OutboxMessage(TimestampedMixin, Base):
    """A notification to deliver (summary service, e-mail), written in the transaction that
    causes it and delivered by the dispatcher with retries (DESIGN §4.5)."""

    __tablename__ = "meet_outbox"
    __table_args__ = (
        CheckConstraint(_in("status", OUTBOX_STATUSES), name="ck_outbox_status"),
        Index("ix_outbox_due", "status", "next_attempt_at"),
    )

    kind: Mapped[str] = mapped_column(String(32))
    recording_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("meet_recording.id", ondelete="CASCADE"), index=True
    )
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column()
    lease_token: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column()


class LoginSession(Base):
    """A browser login: the signed cookie carries a random key, this row (its hash) makes it
    valid. Logout and deactivation delete rows; a cookie whose row is gone is refused."""

    __tablename__ = "meet_session"

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("meet_user.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class LobbyEntryRow(Base):
    """A lobby entry of a room hosted by the Ray engine (waiting, accepted or denied), kept
    until ``expires_at`` so a restarted room host gives its rooms their lobby back."""

    __tablename__ = "meet_lobby_entry"

    room: Mapped[str] = mapped_column(String(255), primary_key=True)
    participant_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    username: Mapped[str] = mapped_column(Text)
    color: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    identity: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime] = mapped_column(index=True)
