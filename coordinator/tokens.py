"""LiveKit access tokens, minted locally with PyJWT (reference §3.1); no network involved."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from jwt.algorithms import HMACAlgorithm
from jwt.api_jws import PyJWS

from coordinator.cache import TTLCache
from coordinator.settings import LiveKitSettings

TOKEN_TTL_SECONDS = 6 * 3600
PRIVILEGED_ROLES = frozenset({"administrator", "owner"})


class _PreparedKeyHMAC(HMACAlgorithm):
    """HS256 whose key checks (PEM, SSH, JWK shapes…) run once per secret, not per token."""

    def __init__(self) -> None:
        super().__init__(HMACAlgorithm.SHA256)
        self._prepared: dict[str | bytes, bytes] = {}

    def prepare_key(self, key: str | bytes) -> bytes:
        prepared = self._prepared.get(key)
        if prepared is None:
            prepared = super().prepare_key(key)
            if len(self._prepared) < 16:
                self._prepared[key] = prepared
        return prepared


_JWS = PyJWS(algorithms=[])
_JWS.register_algorithm("HS256", _PreparedKeyHMAC())


# PyJWT's header segment for HS256: base64url of ``{"alg":"HS256","typ":"JWT"}``.
_HS256_HEADER = b"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def encode_hs256(claims: dict[str, Any], secret: str) -> str:
    """The JWS (HS256) of ``claims``, byte for byte what PyJWT's ``encode`` makes (the
    LiveKit token format), without its per-call key checks and header serialisation."""
    try:
        payload: bytes | None = orjson.dumps(claims)
    except TypeError:  # a lone surrogate: orjson refuses it
        payload = None
    if payload is None or not payload.isascii() or b"\x7f" in payload:
        # json.dumps writes non-ASCII characters and DEL as escapes, orjson as they are
        payload = json.dumps(claims, separators=(",", ":")).encode()
    signing_input = _HS256_HEADER + b"." + _b64url(payload)
    signature = hmac.digest(secret.encode(), signing_input, "sha256")
    return (signing_input + b"." + _b64url(signature)).decode()


@functools.lru_cache(maxsize=4096)
def participant_color(identity: str) -> str:
    """A stable ``hsl(H, S%, L%)`` colour derived from the identity (SHA-1 seeded PRNG)."""
    digest = hashlib.sha1(identity.encode(), usedforsecurity=False).hexdigest()
    rng = random.Random(int(digest[-4:], 16))
    hue = rng.randint(0, 360)
    saturation = rng.randint(50, 75)
    lightness = rng.randint(25, 60)
    return f"hsl({hue}, {saturation}%, {lightness}%)"


@dataclass(frozen=True, slots=True)
class Participant:
    """Who joins: the identity and display name LiveKit will show."""

    identity: str
    name: str
    is_authenticated: bool
    role: str | None = None
    color: str | None = None


def publish_sources(
    settings: LiveKitSettings, configuration: dict[str, object], role: str | None
) -> list[str]:
    if role in PRIVILEGED_ROLES:
        return list(settings.default_sources)
    sources = configuration.get("can_publish_sources")
    if isinstance(sources, list):
        return [str(source) for source in sources]
    return list(settings.default_sources)


class TokenMemory:
    """Tokens minted lately, by everything they grant: the same participant asking again for
    the same room with the same grants within ``reuse_seconds`` gets the same token, whose
    validity started at most that long ago (a list of 20 rooms is 20 signatures otherwise).
    Bounded, least recently used first out."""

    def __init__(self, *, size: int = 1024, reuse_seconds: int = 60) -> None:
        self.reuse_seconds = reuse_seconds
        # by grants: (issued, token); the issue time decides reuse, the cache's TTL frees it
        self._tokens: TTLCache[tuple[Any, ...], tuple[int, str]] = TTLCache(
            ttl=reuse_seconds, max_size=size
        )

    def __len__(self) -> int:
        return len(self._tokens)

    def get(self, key: tuple[Any, ...], now: int) -> str | None:
        found = self._tokens.get(key)
        if found is None:
            return None
        issued, token = found
        if not issued <= now < issued + self.reuse_seconds:
            self._tokens.discard(key)
            return None
        return token

    def put(self, key: tuple[Any, ...], issued: int, token: str) -> None:
        self._tokens.set(key, (issued, token))


def mint_token(
    settings: LiveKitSettings,
    *,
    room: str,
    participant: Participant,
    sources: Sequence[str],
    ttl_seconds: int = TOKEN_TTL_SECONDS,
    now: float | None = None,
    memory: TokenMemory | None = None,
) -> str:
    """``memory``: reuse a token minted lately for the same grants (stable identities only:
    an anonymous participant's identity is new on each call)."""
    issued = int(now if now is not None else time.time())
    key: tuple[Any, ...] = ()
    if memory is not None:
        key = (
            settings.api_key,
            settings.api_secret.get(),
            room,
            participant,
            tuple(sources),
            ttl_seconds,
        )
        token = memory.get(key, issued)
        if token is not None:
            return token
    video = {
        "room": room,
        "roomJoin": True,
        "roomAdmin": participant.role in PRIVILEGED_ROLES,
        "canUpdateOwnMetadata": False,
        "canPublish": bool(sources),
        "canPublishData": True,
        "canSubscribe": True,
        "canPublishSources": list(sources),
    }
    claims = {
        "iss": settings.api_key,
        "sub": participant.identity,
        "nbf": issued,
        "exp": issued + ttl_seconds,
        "name": participant.name,
        "video": video,
        "attributes": {
            "color": participant.color or participant_color(participant.identity),
            "room_role": participant.role or "",
            "is_authenticated": "true" if participant.is_authenticated else "false",
        },
    }
    token = encode_hs256(claims, settings.api_secret.get())
    if memory is not None:
        memory.put(key, issued, token)
    return token


def new_identity() -> str:
    return str(uuid.uuid4())
