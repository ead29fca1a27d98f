"""Recording persistence for the room actors (``RecordingPort``) over the database."""

from __future__ import annotations

import logging
import uuid

from coordinator.media import Egress
from coordinator.room import RecordingState
from coordinator.settings import Settings
from coordinator.slugs import parse_uuid
from storage import recordings as store
from storage.engine import SessionMaker
from storage.recordings import RecordingRecord

log = logging.getLogger(__name__)
SAVABLE = ("active", "stopped")


def recording_state(record: RecordingRecord | None) -> RecordingState | None:
    if record is None:
        return None
    return RecordingState(
        id=record.id, mode=record.mode, status=record.status, egress_id=record.worker_id
    )


class StoredRecordings:
    def __init__(self, settings: Settings, sessionmaker: SessionMaker) -> None:
        self._settings = settings
        self._sessionmaker = sessionmaker

    async def in_flight(self, room: str) -> RecordingState | None:
        room_id = parse_uuid(room)
        if room_id is None or str(room_id) != room:
            return None  # unregistered rooms (named by slug) never record
        async with self._sessionmaker() as session:
            return recording_state(await store.in_flight_recording(session, room_id))

    async def by_egress(self, egress_id: str) -> RecordingState | None:
        async with self._sessionmaker() as session:
            return recording_state(await store.recording_by_worker(session, egress_id))

    async def set_status(
        self, recording_id: uuid.UUID, status: str, only_from: tuple[str, ...]
    ) -> bool:
        async with self._sessionmaker.begin() as session:
            return await store.set_status(session, recording_id, status, only_from=only_from)

    async def complete(self, recording_id: uuid.UUID, egress: Egress) -> None:
        """The egress_ended fallback: only when storage events are off (§3.4, §4.6)."""
        if self._settings.recording_storage_event_enable:
            return
        async with self._sessionmaker.begin() as session:
            done = await store.set_status(session, recording_id, "saved", only_from=SAVABLE)
        if not done:
            log.info("recording %s not savable any more (redelivered egress_ended?)", recording_id)
