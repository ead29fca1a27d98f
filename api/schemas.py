"""Pydantic models: they validate requests and generate the OpenAPI document (one source)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictStr,
    field_validator,
)
from pydantic_core import PydanticCustomError

AccessLevel = Literal["public", "trusted", "restricted"]
Role = Literal["member", "administrator", "owner"]
Source = Literal["camera", "microphone", "screen_share", "screen_share_audio"]
Language = Literal["en-us", "fr-fr", "nl-nl", "de-de"]

# -- shared field types ----------------------------------------------------------------------
#
# Booleans are read the way Meet reads them. Where Meet validates with a pydantic model of its
# own (room configuration, participant permission, recording options) that is pydantic's lax
# bool: true/false, 0/1 (also 0.0/1.0), and "0"/"1", "true"/"false", "yes"/"no", "on"/"off",
# "y"/"n", "t"/"f" in any letter case. Where Meet uses a DRF ``BooleanField`` (``allow_entry``,
# ``raised``) the accepted strings are DRF's own sets, which list their casings one by one.

SchemaBool = Annotated[bool, Field(strict=False)]

_DRF_TRUE = frozenset(
    ["t", "T", "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON", "1"]
)
_DRF_FALSE = frozenset(
    ["f", "F", "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF", "0"]
)


def _drf_boolean(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if value is None:
        raise PydanticCustomError("null", "This field may not be null.")
    # DRF tests membership in sets holding 1 and 0, which 1.0 and 0.0 equal too.
    if isinstance(value, int | float) and value in (0, 1):
        return value == 1
    if isinstance(value, str):
        if value in _DRF_TRUE:
            return True
        if value in _DRF_FALSE:
            return False
    raise PydanticCustomError("bool_parsing", "Must be a valid boolean.")


FormBool = Annotated[bool, BeforeValidator(_drf_boolean)]


def _storable(value: Any) -> Any:
    """DRF's CharField refuses NUL and lone surrogates (PostgreSQL cannot store either).

    A before-validator, so that the string type and length checks keep their own errors.
    """
    if not isinstance(value, str):
        return value
    if "\x00" in value:
        raise PydanticCustomError("null_characters_not_allowed", "Null characters are not allowed.")
    for char in value:
        if "\ud800" <= char <= "\udfff":
            raise PydanticCustomError(
                "surrogate_characters_not_allowed",
                "Surrogate characters are not allowed: U+{code_point}.",
                {"code_point": f"{ord(char):X}"},
            )
    return value


# Every text a caller sends carries ``Storable``, after any length constraint (constraints
# placed after a validator lose their DRF-style messages): ``Annotated[StrictStr, Field(...),
# Storable]``.
Storable = BeforeValidator(_storable)
Name255 = Annotated[StrictStr, Field(min_length=1, max_length=255), Storable]
Text255 = Annotated[StrictStr, Field(max_length=255), Storable]
Query255 = Annotated[str, Field(max_length=255), Storable]


class Request(BaseModel):
    """Request bodies: strict types, unknown fields ignored (as DRF serializers do).

    ``schema_fields`` names the fields Meet validates with a pydantic model of its own; their
    errors keep pydantic's list shape (``[{"type", "loc", "msg", "input", ...}]``) as in Meet.
    """

    model_config = ConfigDict(strict=True, extra="ignore")
    schema_fields: ClassVar[frozenset[str]] = frozenset()


class Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RoomConfiguration(BaseModel):
    """Room configuration schema; unknown keys are rejected."""

    model_config = ConfigDict(strict=True, extra="forbid")

    can_publish_sources: list[Source] | None = None
    everyone_can_mute: SchemaBool | None = None


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
    schema_fields = frozenset({"default_room_configuration"})
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

RoomName = Annotated[StrictStr, Field(min_length=1, max_length=500), Storable]


class RoomCreate(Request):
    schema_fields = frozenset({"configuration"})
    name: RoomName
    access_level: AccessLevel | None = None
    configuration: RoomConfiguration | None = None
    callback_id: Text255 | None = None


class RoomUpdate(Request):
    schema_fields = frozenset({"configuration"})
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
    username: Query255 | None = None


class CreationCallbackIn(Request):
    callback_id: Name255


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
    q: Query255 | None = None


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

Identity = Name255
FORBIDDEN_PERMISSION_FIELDS = ("hidden", "recorder", "agent")


class RequestEntryIn(Request):
    username: Name255


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
    allow_entry: FormBool


class MessageOut(Response):
    message: str


class MuteIn(Request):
    participant_identity: Identity
    track_sid: Name255


class PermissionIn(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    can_subscribe: SchemaBool | None = None
    can_publish: SchemaBool | None = None
    can_publish_data: SchemaBool | None = None
    can_publish_sources: list[Source] | None = None
    hidden: SchemaBool | None = None
    recorder: SchemaBool | None = None
    can_update_metadata: SchemaBool | None = None
    agent: SchemaBool | None = None
    can_subscribe_metrics: SchemaBool | None = None


class UpdateParticipantIn(Request):
    schema_fields = frozenset({"permission"})
    participant_identity: Identity
    metadata: dict[str, Any] | None = None
    attributes: dict[str, StrictStr] | None = None
    permission: PermissionIn | None = None
    name: Text255 | None = None


class RemoveParticipantIn(Request):
    participant_identity: Identity


class RoleIn(Request):
    participant_identity: Identity
    role: Literal["member", "administrator"]


class RoleOut(Response):
    role: str
    livekit_synced: bool


class ToggleHandIn(Request):
    raised: FormBool


class RenameIn(Request):
    name: Name255


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
