"""What a user may do with a recording and its accesses (reference §1.4, §4.1, §4.8).

Pure functions over plain values: no I/O, no clock of their own (``now`` is an argument).

One deliberate departure from the reference (DESIGN §5): ``notification_succeeded`` counts as
final, so such a recording can be deleted and reports ``stop: false``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

OWNER = "owner"
ADMINISTRATOR = "administrator"
MEMBER = "member"
PRIVILEGED = frozenset({OWNER, ADMINISTRATOR})

FINAL_STATUSES = frozenset(
    {
        "stopped",
        "saved",
        "aborted",
        "failed_to_start",
        "failed_to_stop",
        "external_process_successful",
        "external_process_failed",
        "notification_succeeded",  # DESIGN §5 (the reference leaves it out)
    }
)
SAVED_STATUSES = frozenset(
    {
        "saved",
        "notification_succeeded",
        "external_process_successful",
        "external_process_failed",
    }
)
EXTENSIONS = {"screen_recording": "mp4", "transcript": "ogg"}
SUPPORTED_EXTENSIONS = frozenset(EXTENSIONS.values())


def is_final(status: str) -> bool:
    """The recording's worker is done with it (it may be deleted, not stopped)."""
    return status in FINAL_STATUSES


def is_saved(status: str) -> bool:
    """The file is confirmed in the bucket (it may be downloaded)."""
    return status in SAVED_STATUSES


def is_privileged(roles: Iterable[str]) -> bool:
    """Owner or administrator of the recording."""
    return not PRIVILEGED.isdisjoint(roles)


def recording_abilities(roles: Iterable[str], status: str) -> dict[str, bool]:
    """The abilities of a user holding ``roles`` on a recording in ``status``."""
    privileged = is_privileged(roles)
    final = is_final(status)
    return {
        "destroy": privileged and final,
        "partial_update": False,
        "retrieve": privileged,
        "stop": privileged and not final,
        "update": False,
    }


def access_abilities(
    requester_roles: Iterable[str], target_role: str, owners_count: int
) -> dict[str, Any]:
    """Abilities of a requester on one access object (the BaseAccess table of §1.4).

    ``requester_roles`` are the requester's roles on the resource (empty: anonymous or
    unrelated), ``target_role`` the role of the access looked at, ``owners_count`` the number
    of owner accesses on the resource. ``set_role_to`` is sorted and never holds the current
    role.
    """
    roles = set(requester_roles)
    privileged = is_privileged(roles)
    if target_role == OWNER:
        can_delete = OWNER in roles and owners_count > 1
        set_role_to = {ADMINISTRATOR, MEMBER} if can_delete else set()
    else:
        can_delete = privileged
        set_role_to = set()
        if OWNER in roles:
            set_role_to.add(OWNER)
        if privileged:
            set_role_to |= {ADMINISTRATOR, MEMBER}
    set_role_to.discard(target_role)
    return {
        "destroy": can_delete,
        "update": bool(set_role_to),
        "partial_update": bool(set_role_to),
        "retrieve": bool(roles),
        "set_role_to": sorted(set_role_to),
    }


def recording_extension(mode: str) -> str:
    """``ogg`` for transcripts, ``mp4`` for screen recordings and any unknown mode."""
    return EXTENSIONS.get(mode, "mp4")


def recording_key(folder: str, recording_id: uuid.UUID | str, mode: str) -> str:
    """The object key of the recording's file: ``{folder}/{id}.{ext}``."""
    return f"{folder}/{recording_id}.{recording_extension(mode)}"


def expired_at(created_at: datetime, days: int | None) -> datetime | None:
    """``created_at`` + ``days`` days, or None when no expiration is configured."""
    if not days:
        return None
    return created_at + timedelta(days=days)


def is_expired(created_at: datetime, days: int | None, now: datetime) -> bool:
    """Whether the expiration date is set and already past at ``now``."""
    moment = expired_at(created_at, days)
    return moment is not None and moment < now
