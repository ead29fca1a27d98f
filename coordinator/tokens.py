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

from jwt.algorithms import HMACAlgorithm
from jwt.api_jws import PyJWS

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


def mint_token(
    settings: LiveKitSettings,
    *,
    room: str,
    participant: Participant,
    sources: Sequence[str],
    ttl_seconds: int = TOKEN_TTL_SECONDS,
    now: float | None = None,
) -> str:
    issued = int(now if now is not None else time.time())
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
    return encode_hs256(claims, settings.api_secret.get())


def new_identity() -> str:
    return str(uuid.uuid4())
