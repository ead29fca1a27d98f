"""Plain values describing what LiveKit reports (participants, tracks, egresses, webhooks).

The LiveKit adapter (``coordinator.livekit``) converts protobuf messages into these, so the
rest of the project never handles protobuf or imports ``livekit``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

EGRESS_STATUSES = (
    "EGRESS_STARTING",
    "EGRESS_ACTIVE",
    "EGRESS_ENDING",
    "EGRESS_COMPLETE",
    "EGRESS_FAILED",
    "EGRESS_ABORTED",
    "EGRESS_LIMIT_REACHED",
)
EGRESS_FINAL = frozenset(
    {"EGRESS_COMPLETE", "EGRESS_FAILED", "EGRESS_ABORTED", "EGRESS_LIMIT_REACHED"}
)
WEBHOOK_EVENTS = frozenset(
    {
        "room_started",
        "room_finished",
        "participant_joined",
        "participant_left",
        "track_published",
        "track_unpublished",
        "egress_started",
        "egress_updated",
        "egress_ended",
        "ingress_started",
        "ingress_ended",
    }
)


def egress_rank(status: str) -> int:
    """Order of egress statuses in the lifecycle; later statuses never go back."""
    return EGRESS_STATUSES.index(status) if status in EGRESS_STATUSES else -1


@dataclass(frozen=True, slots=True)
class Track:
    sid: str
    kind: str  # AUDIO, VIDEO, DATA
    source: str  # CAMERA, MICROPHONE, SCREEN_SHARE, …
    name: str = ""
    muted: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "sid": self.sid,
            "type": self.kind,
            "source": self.source,
            "name": self.name,
            "muted": self.muted,
        }


@dataclass(frozen=True, slots=True)
class Participant:
    identity: str
    sid: str = ""
    name: str = ""
    state: str = "ACTIVE"
    joined_at: int = 0  # unix seconds
    tracks: tuple[Track, ...] = ()
    attributes: dict[str, str] = field(default_factory=dict)
    metadata: str = ""
    joined_at_ms: int = 0  # unix milliseconds (0 when LiveKit does not say)

    @property
    def present(self) -> bool:
        return self.state != "DISCONNECTED"


@dataclass(frozen=True, slots=True)
class FileResult:
    filename: str
    location: str = ""
    size: int = 0
    duration_ns: int = 0
    started_at_ns: int = 0
    ended_at_ns: int = 0


@dataclass(frozen=True, slots=True)
class Egress:
    egress_id: str
    room_name: str
    status: str
    error: str = ""
    started_at_ns: int = 0
    ended_at_ns: int = 0
    files: tuple[FileResult, ...] = ()


@dataclass(frozen=True, slots=True)
class RoomInfo:
    name: str
    sid: str = ""
    metadata: str = ""
    num_participants: int = 0


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """A verified LiveKit webhook, reduced to what the coordinator uses."""

    id: str
    event: str
    created_at: int
    room_name: str
    room_sid: str = ""
    participant: Participant | None = None
    track: Track | None = None
    egress: Egress | None = None
