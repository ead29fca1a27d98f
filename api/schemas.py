"""Pydantic models: they validate requests and generate the OpenAPI document (one source)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, field_validator

AccessLevel = Literal["public", "trusted", "restricted"]
Role = Literal["member", "administrator", "owner"]
Source = Literal["camera", "microphone", "screen_share", "screen_share_audio"]
Language = Literal["en-us", "fr-fr", "nl-nl", "de-de"]


class Request(BaseModel):
    """Request bodies: strict types, unknown fields ignored (as DRF serializers do)."""

    model_config = ConfigDict(strict=True, extra="ignore")


class Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RoomConfiguration(BaseModel):
    """Room configuration schema; unknown keys are rejected."""

    model_config = ConfigDict(strict=True, extra="forbid")

    can_publish_sources: list[Source] | None = None
    everyone_can_mute: StrictBool | None = None


def dump_configuration(value: RoomConfiguration | None) -> dict[str, Any]:
    return value.model_dump(exclude_unset=True) if value is not None else {}


# -- users ---------------------------------------------------------------------------------


class UserOut(Response):
    id: uuid.UUID
    email: str | None
    full_name: str | None
    short_name: str | None
    timezone: str
    language: str
    default_room_access_level: AccessLevel | None
    default_room_configuration: dict[str, Any]


class UserUpdate(Request):
    language: Language | None = None
    timezone: StrictStr | None = Field(default=None, max_length=63)
    default_room_access_level: AccessLevel | Literal[""] | None = None
    default_room_configuration: RoomConfiguration | None = None

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f'"{value}" is not a valid time zone.') from None
        return value


class UserPage(Response):
    count: int
    next: str | None
    previous: str | None
    results: list[UserOut]


# -- rooms ---------------------------------------------------------------------------------

RoomName = Annotated[StrictStr, Field(min_length=1, max_length=500)]


class RoomCreate(Request):
    name: RoomName
    access_level: AccessLevel | None = None
    configuration: RoomConfiguration | None = None
    callback_id: StrictStr | None = Field(default=None, max_length=255)


class RoomUpdate(Request):
    name: RoomName | None = None
    access_level: AccessLevel | None = None
    configuration: RoomConfiguration | None = None


class RoomPut(RoomUpdate):
    name: RoomName


class LiveKitOut(Response):
    url: str
    room: str
    token: str


class RoomAccessOut(Response):
    id: uuid.UUID
    user: UserOut
    resource: uuid.UUID
    role: Role


class RoomOut(Response):
    id: uuid.UUID
    name: str
    slug: str
    configuration: dict[str, Any]
    access_level: AccessLevel
    pin_code: str | None = None
    accesses: list[RoomAccessOut] | None = None
    livekit: LiveKitOut | None = None


class UnregisteredRoomOut(Response):
    id: None
    slug: str
    is_administrable: Literal[False]
    access_level: Literal["public"]
    livekit: LiveKitOut


class RoomPage(Response):
    count: int
    next: str | None
    previous: str | None
    results: list[RoomOut]


class RoomRetrieveQuery(Request):
    model_config = ConfigDict(strict=False, extra="ignore")
    username: str | None = Field(default=None, max_length=255)


class CreationCallbackIn(Request):
    callback_id: StrictStr = Field(min_length=1, max_length=255)


class CreationCallbackOut(Response):
    status: Literal["success"]
    room: dict[str, str]


# -- resource accesses ---------------------------------------------------------------------


class AccessOut(Response):
    id: uuid.UUID
    user: uuid.UUID
    resource: uuid.UUID
    role: Role


class AccessCreate(Request):
    model_config = ConfigDict(strict=False, extra="ignore")
    user: uuid.UUID
    resource: uuid.UUID
    role: Role = "member"


class AccessUpdate(Request):
    model_config = ConfigDict(strict=False, extra="ignore")
    role: Role | None = None


class AccessPut(AccessUpdate):
    role: Role


class AccessPage(Response):
    count: int
    next: str | None
    previous: str | None
    results: list[AccessOut]


class PageQuery(Request):
    model_config = ConfigDict(strict=False, extra="ignore")
    page: int | None = Field(default=None, ge=1)


class SizedPageQuery(PageQuery):
    page_size: int | None = Field(default=None, ge=1, le=100)


class UserListQuery(PageQuery):
    q: str | None = Field(default=None, max_length=255)


# -- errors and misc -----------------------------------------------------------------------


class ErrorOut(BaseModel):
    """Error bodies: ``{"detail": ...}`` or DRF-style field errors ``{"field": [...]}``."""

    model_config = ConfigDict(extra="allow")


class StatusOut(Response):
    status: str


class VersionOut(Response):
    source: str
    version: str
    commit: str
    build: str


class HeartbeatOut(Response):
    database: Literal["ok", "error"]


# -- lobby and participants (§2.5) -----------------------------------------------------------

Identity = Annotated[StrictStr, Field(min_length=1, max_length=255)]
FORBIDDEN_PERMISSION_FIELDS = ("hidden", "recorder", "agent")


class RequestEntryIn(Request):
    username: StrictStr = Field(min_length=1, max_length=255)


class LobbyParticipantOut(Response):
    status: Literal["waiting", "accepted", "denied"]
    username: str
    id: str
    color: str


class RequestEntryOut(LobbyParticipantOut):
    livekit: LiveKitOut | None


class WaitingOut(Response):
    participants: list[LobbyParticipantOut]


class EnterIn(Request):
    model_config = ConfigDict(strict=False, extra="ignore")
    participant_id: uuid.UUID
    allow_entry: StrictBool


class MessageOut(Response):
    message: str


class MuteIn(Request):
    participant_identity: Identity
    track_sid: StrictStr = Field(min_length=1, max_length=255)


class PermissionIn(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    can_subscribe: StrictBool | None = None
    can_publish: StrictBool | None = None
    can_publish_data: StrictBool | None = None
    can_publish_sources: list[Source] | None = None
    hidden: StrictBool | None = None
    recorder: StrictBool | None = None
    can_update_metadata: StrictBool | None = None
    agent: StrictBool | None = None
    can_subscribe_metrics: StrictBool | None = None


class UpdateParticipantIn(Request):
    participant_identity: Identity
    metadata: dict[str, Any] | None = None
    attributes: dict[str, StrictStr] | None = None
    permission: PermissionIn | None = None
    name: StrictStr | None = Field(default=None, max_length=255)


class RemoveParticipantIn(Request):
    participant_identity: Identity


class RoleIn(Request):
    participant_identity: Identity
    role: Literal["member", "administrator"]


class RoleOut(Response):
    role: str
    livekit_synced: bool


class ToggleHandIn(Request):
    raised: StrictBool


class RenameIn(Request):
    name: StrictStr = Field(min_length=1, max_length=255)


class ActionStatusOut(Response):
    status: Literal["success"]


class LiveParticipantOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    identity: str
    name: str
    joined_at: int
    tracks: list[dict[str, Any]]


class LiveRoomOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    participants: list[LiveParticipantOut]
    lobby: list[dict[str, Any]]
    recording: dict[str, Any] | None


class WebhookOut(Response):
    status: Literal["success", "error"]
