"""The external API (reference §2.10): ``/external-api/v1.0/``, mounted when EXTERNAL_API_ENABLED.

``POST application/token/`` is the client-credentials grant of an application acting for a
user (``scope`` = the user's e-mail). The room routes accept, in Meet's order: an application
JWT (when APPLICATION_ENABLED), an add-on JWT (when ADDONS_ENABLED), then an OIDC access token
introspected at the provider. A JWT that is not ours (signature, algorithm, format) falls through
to the next; an expired one or one with a wrong issuer/audience is 401. Every action needs its
scope (``rooms:list``, ``rooms:retrieve``, ``rooms:create``).
"""

from __future__ import annotations

import logging
import secrets
import string
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from api import keys
from api.auth import load_user
from api.http import (
    MAX_BODY_BYTES,
    UnsupportedMediaType,
    json_response,
    page_params,
    paginated,
    read_json,
    validate,
)
from api.openapi import Registry, error_responses
from api.schemas import AccessLevel, RoomConfiguration, dump_configuration
from api.schemas import Request as RequestModel
from api.schemas import Response as ResponseModel
from coordinator.addons import addons_jwt
from coordinator.applications import (
    ApplicationService,
    JwtService,
    TokenExpired,
    TokenInvalid,
    TokenUnreadable,
    scopes_of,
)
from coordinator.errors import (
    InvalidRequest,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    Throttled,
)
from coordinator.introspection import Introspector, bearer_value
from coordinator.slugs import parse_uuid
from coordinator.throttle import Throttle, throttled_message
from storage import rooms as room_store
from storage.records import Page, RoomRecord, UserRecord

log = logging.getLogger(__name__)

PREFIX = "/external-api/v1.0"
EXTERNAL = Registry()
GRANT_TYPE = "client_credentials"


class BearerNotAuthenticated(NotAuthenticated):
    www_authenticate = "Bearer"


@dataclass(frozen=True, slots=True)
class Caller:
    user: UserRecord
    claims: dict[str, Any]
    method: str  # "application", "addons" or "resource_server"


class ExternalAPI:
    """What the external routes share: the application service, the verifiers, the throttle."""

    def __init__(self, app: web.Application) -> None:
        settings = app[keys.SETTINGS]
        external = settings.external_api
        self.settings = settings
        self.applications = ApplicationService(external, settings.oidc, app[keys.SESSIONMAKER])
        self.application_jwt = self.applications.jwt if external.application_enabled else None
        self.addons_jwt: JwtService | None = (
            addons_jwt(settings.addons) if settings.addons.enabled else None
        )
        self.introspector = Introspector(external.resource_server, app[keys.HTTP])
        self.token_throttle = Throttle.of(external.token_throttle_rate)


EXTERNAL_API = web.AppKey("external_api", ExternalAPI)


async def external_api_ctx(app: web.Application) -> AsyncIterator[None]:
    app[EXTERNAL_API] = ExternalAPI(app)
    yield


# -- authentication --------------------------------------------------------------------------


def _bearer(request: web.Request) -> str | None:
    """The bearer token; None without a Bearer header; 401 when the header is malformed."""
    parts = request.headers.get("Authorization", "").split()
    if not parts or parts[0].lower() != "bearer":
        return None
    if len(parts) != 2:
        raise BearerNotAuthenticated("Invalid token header.")
    return parts[1]


def _decode(jwt: JwtService, token: str) -> dict[str, Any] | None:
    try:
        return jwt.decode(token)
    except TokenExpired:
        raise BearerNotAuthenticated("Token expired.") from None
    except TokenInvalid:
        raise BearerNotAuthenticated("Invalid token.") from None
    except TokenUnreadable:
        return None


async def _token_user(request: web.Request, claims: dict[str, Any]) -> UserRecord:
    user_id = parse_uuid(str(claims.get("user_id") or ""))
    if not claims.get("user_id"):
        raise BearerNotAuthenticated("Invalid token claims.")
    user = await load_user(request, user_id) if user_id is not None else None
    if user is None:
        raise BearerNotAuthenticated("User not found.")
    if not user.is_active:
        raise BearerNotAuthenticated("User account is disabled.")
    return user


async def _application_claims(external: ExternalAPI, claims: dict[str, Any]) -> None:
    client_id = claims.get("client_id")
    if not client_id or not isinstance(client_id, str):
        raise BearerNotAuthenticated("Invalid token claims.")
    application = await external.applications.get(client_id)
    if application is None:
        raise BearerNotAuthenticated("Application not found.")
    if not application.is_active:
        raise BearerNotAuthenticated("Application is disabled.")
    if claims.get("delegated") is not True:
        raise BearerNotAuthenticated("Invalid token type.")


async def authenticate(request: web.Request) -> Caller:
    external = request.app[EXTERNAL_API]
    token = _bearer(request)
    if token is None:
        raise BearerNotAuthenticated()
    if external.application_jwt is not None:
        claims = _decode(external.application_jwt, token)
        if claims is not None:
            await _application_claims(external, claims)
            return Caller(await _token_user(request, claims), claims, "application")
    if external.addons_jwt is not None:
        claims = _decode(external.addons_jwt, token)
        if claims is not None:
            return Caller(await _token_user(request, claims), claims, "addons")
    claims = await external.introspector.claims(bearer_value(token))
    user = await external.introspector.user(
        request.app[keys.SESSIONMAKER], claims, create=external.settings.oidc.create_user
    )
    return Caller(user, claims, "resource_server")


def require_scope(request: web.Request, caller: Caller, scope: str) -> None:
    prefix = request.app[keys.SETTINGS].external_api.resource_server.scopes_prefix
    granted = scopes_of(caller.claims, prefix)
    if not granted:
        raise PermissionDenied("Insufficient permissions.")
    if scope not in granted:
        raise PermissionDenied(f"Insufficient permissions. Required scope: {scope}")


# -- application token -----------------------------------------------------------------------


class TokenIn(RequestModel):
    client_id: str
    client_secret: str
    grant_type: str
    scope: str


class TokenOut(ResponseModel):
    access_token: str
    token_type: str
    expires_in: int
    scope: str | None = None


def _char_field(data: dict[str, Any], name: str, errors: dict[str, list[str]]) -> str:
    """DRF's ``CharField``: required, numbers read as text, whitespace trimmed, not blank."""
    if name not in data:
        errors[name] = ["This field is required."]
        return ""
    value = data[name]
    if value is None:
        errors[name] = ["This field may not be null."]
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        errors[name] = ["Not a valid string."]
        return ""
    text = str(value).strip()
    if not text:
        errors[name] = ["This field may not be blank."]
    elif "\x00" in text:
        errors[name] = ["Null characters are not allowed."]
    else:
        surrogate = next((c for c in text if "\ud800" <= c <= "\udfff"), None)
        if surrogate is not None:
            errors[name] = [f"Surrogate characters are not allowed: U+{ord(surrogate):X}."]
    return text


async def _token_body(request: web.Request) -> dict[str, Any]:
    """JSON or ``application/x-www-form-urlencoded`` (as Meet's parsers); others are 415."""
    if request.content_type == "application/x-www-form-urlencoded":
        if request.content_length and request.content_length > MAX_BODY_BYTES:
            raise InvalidRequest("Request body too large.")
        form = await request.post()
        return {key: value for key, value in form.items() if isinstance(value, str)}
    if request.content_type == "multipart/form-data":
        raise UnsupportedMediaType(f'Unsupported media type "{request.content_type}" in request.')
    data = await read_json(request)
    if not isinstance(data, dict):
        raise InvalidRequest.fields(
            {"non_field_errors": ["Invalid data. Expected a dictionary, but got a list."]}
            if isinstance(data, list)
            else {"non_field_errors": ["Invalid data."]}
        )
    return data


@EXTERNAL.operation(
    "POST",
    f"{PREFIX}/application/token/",
    name="external_application_token",
    summary="Client-credentials grant: a JWT for an application acting for a user (by e-mail)",
    tag="external-api",
    body=TokenIn,
    responses={200: TokenOut, **error_responses(400, 401, 403, 404, 409, 415, 429)},
)
async def application_token(request: web.Request) -> web.Response:
    external = request.app[EXTERNAL_API]
    if external.token_throttle is not None:
        wait = external.token_throttle.hit(f"ip:{request.remote}")
        if wait is not None:
            raise Throttled(throttled_message(wait))
    if not external.settings.external_api.application_enabled:
        raise NotFound()
    data = await _token_body(request)
    errors: dict[str, list[str]] = {}
    fields = {name: _char_field(data, name, errors) for name in TokenIn.model_fields}
    if "grant_type" not in errors and fields["grant_type"] != GRANT_TYPE:
        errors["grant_type"] = [f'"{fields["grant_type"]}" is not a valid choice.']
    if errors:
        raise InvalidRequest.fields(errors)
    body = await external.applications.token(
        fields["client_id"], fields["client_secret"], fields["scope"]
    )
    response = json_response(body)
    response.headers["Cache-Control"] = "no-store"  # RFC 6749 §5.1
    return response


# -- rooms -----------------------------------------------------------------------------------


class ExternalRoomCreate(RequestModel):
    schema_fields = frozenset({"configuration"})
    access_level: AccessLevel | None = None
    configuration: RoomConfiguration | None = None


class TelephonyOut(ResponseModel):
    enabled: bool
    phone_number: str | None
    pin_code: str | None
    default_country: str


class ExternalRoomOut(ResponseModel):
    id: uuid.UUID
    name: str
    slug: str
    access_level: AccessLevel
    configuration: dict[str, Any]
    url: str | None = None
    telephony: TelephonyOut | None = None


class ExternalRoomPage(ResponseModel):
    count: int
    next: str | None
    previous: str | None
    results: list[ExternalRoomOut]


def room_json(request: web.Request, room: RoomRecord) -> dict[str, Any]:
    settings = request.app[keys.SETTINGS]
    data: dict[str, Any] = {
        "id": str(room.id),
        "name": room.name,
        "slug": room.slug,
        "access_level": room.access_level,
        "configuration": room.configuration,
    }
    if settings.external_api.base_url:
        data["url"] = f"{settings.external_api.base_url}/{room.slug}"
    if settings.room_telephony_enabled:
        data["telephony"] = {
            "enabled": True,
            "phone_number": settings.room_telephony_phone_number,
            "pin_code": room.pin_code,
            "default_country": settings.room_telephony_default_country,
        }
    return data


@EXTERNAL.operation(
    "GET",
    f"{PREFIX}/rooms/",
    name="external_list_rooms",
    summary="Rooms where the user the token acts for has a role (scope rooms:list)",
    tag="external-api",
    responses={200: ExternalRoomPage, **error_responses(400, 401, 403, 404, 503)},
    security=True,
)
async def list_rooms(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    require_scope(request, caller, "rooms:list")
    page, size = page_params(request, sized=False)
    async with request.app[keys.SESSIONMAKER]() as session:
        result = await room_store.list_user_rooms(
            session, caller.user.id, offset=(page - 1) * size, limit=size
        )
    rooms: Page[RoomRecord] = Page([room for room, _ in result.items], result.count)
    results = [room_json(request, room) for room in rooms.items]
    return json_response(paginated(request, page, size, rooms, results))


@EXTERNAL.operation(
    "GET",
    f"{PREFIX}/rooms/{{room_id}}/",
    name="external_retrieve_room",
    summary="A room the user has a role in (scope rooms:retrieve)",
    tag="external-api",
    responses={200: ExternalRoomOut, **error_responses(400, 401, 403, 404, 503)},
    security=True,
)
async def retrieve_room(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    require_scope(request, caller, "rooms:retrieve")
    room_id = parse_uuid(request.match_info["room_id"])
    if room_id is None:
        raise NotFound("No Room matches the given query.")
    room, role = await request.app[keys.ROOMS].get(str(room_id), caller.user, fresh=True)
    if role is None:
        raise PermissionDenied()
    return json_response(room_json(request, room))


_SLUG_LETTERS = string.ascii_lowercase


def random_room_slug() -> str:
    """``xxx-xxxx-xxx``, the shape of the web app's own room names."""
    return "-".join("".join(secrets.choice(_SLUG_LETTERS) for _ in range(n)) for n in (3, 4, 3))


@EXTERNAL.operation(
    "POST",
    f"{PREFIX}/rooms/",
    name="external_create_room",
    summary="Create a room owned by the user (scope rooms:create); default access trusted",
    tag="external-api",
    body=ExternalRoomCreate,
    responses={201: ExternalRoomOut, **error_responses(400, 401, 403, 415, 503)},
    security=True,
)
async def create_room(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    require_scope(request, caller, "rooms:create")
    body = validate(ExternalRoomCreate, await read_json(request))
    external = request.app[keys.SETTINGS].external_api
    access_level = body.access_level or external.default_access_level
    if (
        body.access_level == "public"
        and external.default_access_level != "public"
        and not external.allow_public_access
    ):
        raise InvalidRequest.fields(
            {"access_level": ["Public rooms are disabled for the external API."]}
        )
    view = await request.app[keys.ROOMS].create(
        caller.user,
        name=random_room_slug(),
        access_level=access_level,
        configuration=dump_configuration(body.configuration),
        callback_id=None,
        apply_user_defaults=False,
    )
    client_id = caller.claims.get("client_id", "unknown")
    log.info(
        "Room created via application: room_id=%s, user_id=%s, client_id=%s, auth_method=%s",
        view.room.id,
        caller.user.id,
        client_id if isinstance(client_id, str) else "unknown",
        caller.method,
    )
    return json_response(room_json(request, view.room), status=201)
