"""LiveKit access tokens, minted locally with PyJWT (reference §3.1); no network involved."""

from __future__ import annotations

import hashlib
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


def encode_hs256(claims: dict[str, Any], secret: str) -> str:
    """PyJWT's JWS encoding of ``claims`` with HS256 (the LiveKit token format)."""
    payload = json.dumps(claims, separators=(",", ":")).encode()
    return _JWS.encode(payload, secret, algorithm="HS256")


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
