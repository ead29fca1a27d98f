"""LiveKit access tokens, minted locally with PyJWT (reference §3.1); no network involved."""

from __future__ import annotations

import hashlib
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import jwt

from coordinator.settings import LiveKitSettings

TOKEN_TTL_SECONDS = 6 * 3600
PRIVILEGED_ROLES = frozenset({"administrator", "owner"})


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
    return jwt.encode(claims, settings.api_secret.get(), algorithm="HS256")


def new_identity() -> str:
    return str(uuid.uuid4())
