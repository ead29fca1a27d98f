"""Verify and read LiveKit webhooks without the protobuf JSON parser (the ingestion hot path).

``verify_and_read(body, authorization, key, secret)`` performs the checks of livekit-api's
``WebhookReceiver`` — an HS256 JWT whose issuer is our API key, ``exp`` required, 60 s leeway,
and a base64 ``sha256`` claim equal to the SHA-256 of the raw body — then maps the protojson
body straight to :class:`WebhookEvent`. The token LiveKit sends (header
``{"alg":"HS256","typ":"JWT"}``, the only one its signer writes) is checked here with one
``hmac.digest`` on the prepared key, its signature compared in canonical base64url and its
payload decoded as strictly as PyJWT does; any other header goes through PyJWT's generic path
(``alg`` allow-list, ``kid``/``crit``/``b64`` rules), so both accept exactly the same tokens.
The body is what Go's ``protojson.Marshal`` writes (livekit.md §5.1): lowerCamelCase names
(snake_case accepted too, as protobuf's parser does), enums as names, int64 as strings, zero
values omitted — so every absent field takes the protobuf default here. A differential test
checks this reader against the protobuf path on every event shape the stand-in emits.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

import jwt

from coordinator.media import EGRESS_STATUSES, Egress, FileResult, Participant, Track, WebhookEvent
from coordinator.tokens import _JWS

LEEWAY_SECONDS = 60


class InvalidWebhook(Exception):
    """The webhook's signature, token or body did not verify."""


def verify_and_read(body: str | bytes, authorization: str, key: str, secret: str) -> WebhookEvent:
    """The event of a verified webhook; ``body`` is the raw body (bytes, or its text)."""
    raw = body.encode() if isinstance(body, str) else body
    claims = _verify_token(authorization, key, secret)
    expected = claims.get("sha256")
    if not isinstance(expected, str) or not expected:
        raise InvalidWebhook("sha256 was not found in the token")
    digest = base64.b64encode(hashlib.sha256(raw).digest()).decode()
    if not hmac.compare_digest(digest, expected):
        raise InvalidWebhook("hash mismatch")
    try:
        data = json.loads(raw.decode() if isinstance(body, bytes) else body)
    except ValueError as exc:  # UnicodeDecodeError included
        raise InvalidWebhook(f"invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidWebhook("the body is not a JSON object")
    try:
        return _event(data)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise InvalidWebhook(f"malformed event: {exc}") from None


# PyJWT's and LiveKit's (go-jose) header segment: base64url of ``{"alg":"HS256","typ":"JWT"}``.
HS256_HEADER = b"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_+/", b"+/-_")  # "+" and "/" become invalid
_KEYS: dict[str, bytes] = {}  # secret → its bytes, prepared once


def _prepared(secret: str) -> bytes:
    prepared = _KEYS.get(secret)
    if prepared is None:
        prepared = secret.encode()
        if len(_KEYS) < 16:
            _KEYS[secret] = prepared
    return prepared


def _unpadded(segment: bytes) -> bytes | None:
    """``segment`` without its ``=`` padding; None when the padding is malformed (PyJWT's
    rule: at most two, and only on a segment whose length is a multiple of 4)."""
    stripped = segment.rstrip(b"=")
    padding = len(segment) - len(stripped)
    if padding > 2 or (padding and len(segment) % 4):
        return None
    return stripped


def b64url_strict(segment: bytes) -> bytes:
    """Decode a base64url segment as PyJWT does: alphabet only, canonical, ``ValueError`` else."""
    stripped = _unpadded(segment)
    if stripped is None or len(stripped) % 4 == 1:
        raise ValueError("invalid base64url padding")
    translated = stripped.translate(_URLSAFE_TO_STANDARD) + b"=" * (-len(stripped) % 4)
    decoded = base64.b64decode(translated, validate=True)  # binascii.Error is a ValueError
    if base64.urlsafe_b64encode(decoded).rstrip(b"=") != stripped:
        raise ValueError("non-canonical base64url")
    return decoded


def _signed_payload(token: str, secret: str) -> bytes:
    """The payload of an HS256 token whose signature verifies; ``InvalidWebhook`` else."""
    try:
        raw = token.encode()
    except UnicodeError:
        raise InvalidWebhook("Invalid token bytes") from None
    signing_input, dot, signature = raw.rpartition(b".")
    header, _, payload = signing_input.partition(b".")
    if header != HS256_HEADER or not dot:
        # Any other header (or no header at all): PyJWT's generic checks decide.
        try:
            decoded: bytes = _JWS.decode_complete(token, secret, algorithms=["HS256"])["payload"]
        except jwt.InvalidTokenError as exc:
            raise InvalidWebhook(str(exc) or type(exc).__name__) from None
        return decoded
    # Comparing canonical encodings is PyJWT's strict decode of the signature + compare.
    expected = base64.urlsafe_b64encode(hmac.digest(_prepared(secret), signing_input, "sha256"))
    stripped = _unpadded(signature)
    if stripped is None or not hmac.compare_digest(stripped, expected.rstrip(b"=")):
        raise InvalidWebhook("Signature verification failed")
    try:
        return b64url_strict(payload)
    except ValueError:
        raise InvalidWebhook("Invalid payload padding") from None


def _verify_token(token: str, key: str, secret: str) -> dict[str, Any]:
    try:
        payload = _signed_payload(token, secret)
        # A JSON object in UTF-8 (what every signer writes) read as text: ``json.loads`` on
        # bytes first sniffs UTF-16/32 in Python, which costs more than the parse itself.
        claims = json.loads(payload.decode() if payload[:1] == b"{" else payload)
    except ValueError as exc:
        raise InvalidWebhook(str(exc) or type(exc).__name__) from None
    if not isinstance(claims, dict):
        raise InvalidWebhook("invalid claims")
    now = time.time()
    if claims.get("iss") != key:
        raise InvalidWebhook("Invalid issuer")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise InvalidWebhook('Token is missing the "exp" claim')
    if exp + LEEWAY_SECONDS < now:
        raise InvalidWebhook("Signature has expired")
    nbf = claims.get("nbf")
    if nbf is not None and (not isinstance(nbf, int | float) or nbf - LEEWAY_SECONDS > now):
        raise InvalidWebhook("The token is not yet valid (nbf)")
    return claims


# -- protojson → values ----------------------------------------------------------------------


def _get(data: Mapping[str, Any], camel: str, snake: str | None = None) -> Any:
    value = data.get(camel)
    if value is None and snake is not None:
        value = data.get(snake)
    return value


def _str(data: Mapping[str, Any], camel: str, snake: str | None = None) -> str:
    value = _get(data, camel, snake)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError(f"{camel} must be a string")
    return value


def _int(data: Mapping[str, Any], camel: str, snake: str | None = None) -> int:
    value = _get(data, camel, snake)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | str | float):
        raise TypeError(f"{camel} must be an integer")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{camel} must be an integer")
    return int(value)


def _bool(data: Mapping[str, Any], name: str) -> bool:
    value = data.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a boolean")
    return value


def _enum(data: Mapping[str, Any], name: str, names: tuple[str, ...]) -> str:
    value = data.get(name)
    if value is None:
        return names[0]
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
        return names[value]
    if isinstance(value, str) and value in names:
        return names[names.index(value)]  # the constant: one string, not one per event kept
    raise ValueError(f"{name}: unknown value {value!r}")


def _object(data: Mapping[str, Any], camel: str, snake: str | None = None) -> dict[str, Any] | None:
    value = _get(data, camel, snake)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise TypeError(f"{camel} must be an object")
    return value


def _list(data: Mapping[str, Any], camel: str, snake: str | None = None) -> list[Any]:
    value = _get(data, camel, snake)
    if value is None:
        return []
    if not isinstance(value, list):
        raise TypeError(f"{camel} must be a list")
    return value


TRACK_TYPES = ("AUDIO", "VIDEO", "DATA")
TRACK_SOURCES = ("UNKNOWN", "CAMERA", "MICROPHONE", "SCREEN_SHARE", "SCREEN_SHARE_AUDIO")
PARTICIPANT_STATES = ("JOINING", "JOINED", "ACTIVE", "DISCONNECTED")


def _track(data: dict[str, Any]) -> Track:
    return Track(
        sid=_str(data, "sid"),
        kind=_enum(data, "type", TRACK_TYPES),
        source=_enum(data, "source", TRACK_SOURCES),
        name=_str(data, "name"),
        muted=_bool(data, "muted"),
    )


def _participant(data: dict[str, Any]) -> Participant:
    attributes = _object(data, "attributes") or {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()):
        raise TypeError("attributes must map strings to strings")
    tracks = []
    for track in _list(data, "tracks"):
        if not isinstance(track, dict):
            raise TypeError("tracks must hold objects")
        tracks.append(_track(track))
    return Participant(
        identity=_str(data, "identity"),
        sid=_str(data, "sid"),
        name=_str(data, "name"),
        state=_enum(data, "state", PARTICIPANT_STATES),
        joined_at=_int(data, "joinedAt", "joined_at"),
        tracks=tuple(tracks),
        attributes=dict(attributes),
        metadata=_str(data, "metadata"),
        joined_at_ms=_int(data, "joinedAtMs", "joined_at_ms"),
    )


def _egress(data: dict[str, Any]) -> Egress:
    files = []
    for item in _list(data, "fileResults", "file_results"):
        if not isinstance(item, dict):
            raise TypeError("fileResults must hold objects")
        files.append(
            FileResult(
                filename=_str(item, "filename"),
                location=_str(item, "location"),
                size=_int(item, "size"),
                duration_ns=_int(item, "duration"),
                started_at_ns=_int(item, "startedAt", "started_at"),
                ended_at_ns=_int(item, "endedAt", "ended_at"),
            )
        )
    return Egress(
        egress_id=_str(data, "egressId", "egress_id"),
        room_name=_str(data, "roomName", "room_name"),
        status=_enum(data, "status", EGRESS_STATUSES),
        error=_str(data, "error"),
        started_at_ns=_int(data, "startedAt", "started_at"),
        ended_at_ns=_int(data, "endedAt", "ended_at"),
        files=tuple(files),
    )


def _event(data: dict[str, Any]) -> WebhookEvent:
    room = _object(data, "room") or {}
    participant = _object(data, "participant")
    track = _object(data, "track")
    egress = _object(data, "egressInfo", "egress_info")
    room_name = _str(room, "name") or (_str(egress, "roomName", "room_name") if egress else "")
    return WebhookEvent(
        id=_str(data, "id"),
        event=_str(data, "event"),
        created_at=_int(data, "createdAt", "created_at"),
        room_name=room_name,
        room_sid=_str(room, "sid"),
        participant=_participant(participant) if participant is not None else None,
        track=_track(track) if track is not None else None,
        egress=_egress(egress) if egress is not None else None,
    )
