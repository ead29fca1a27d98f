"""Identifier generation in the style of the LiveKit server (prefix + 12 shortuuid chars)."""

from __future__ import annotations

import secrets

#: The alphabet of ``github.com/lithammer/shortuuid``, used by ``guid.New`` in livekit/protocol.
ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

ROOM_PREFIX = "RM_"
PARTICIPANT_PREFIX = "PA_"
TRACK_PREFIX = "TR_"
EGRESS_PREFIX = "EG_"
EVENT_PREFIX = "EV_"
AGENT_DISPATCH_PREFIX = "AD_"


def new_id(prefix: str) -> str:
    """Return ``prefix`` followed by 12 random characters of :data:`ALPHABET`."""
    return prefix + "".join(secrets.choice(ALPHABET) for _ in range(12))
