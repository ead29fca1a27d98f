"""Periodic reconciliation of recordings in flight with LiveKit's egresses (DESIGN §4.6).

Every pass lists the rooms with a recording in flight in the database and sends each room's
actor a ``ReconcileRecording`` command, which compares with ``ListEgress`` and repairs drift
left by lost webhooks (logging each repair). Repairs are conditional updates ("only from the
status I saw"), so passes running in several processes at once cannot undo each other.
"""

from __future__ import annotations

import asyncio
import logging
import random

from coordinator.actor import RoomDirectory
from coordinator.errors import CoordinatorError
from coordinator.room import ReconcileRecording
from storage import recordings as store
from storage.engine import SessionMaker, is_outage, outage_summary

log = logging.getLogger(__name__)


class Reconciler:
    def __init__(self, sessionmaker: SessionMaker, directory: RoomDirectory, every: float) -> None:
        self._sessionmaker = sessionmaker
        self._directory = directory
        self._every = every
        self._task: asyncio.Task[None] | None = None
        self.repairs = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="recording-reconciler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every * random.uniform(0.9, 1.1))
            try:
                await self.run_once()
            except Exception as exc:
                if is_outage(exc):  # one line a pass, no traceback (nor parameters)
                    log.warning("reconciliation: database unavailable: %s", outage_summary(exc))
                else:
                    log.exception("reconciliation pass failed")

    async def run_once(self) -> dict[str, str]:
        """One pass; returns the repairs made, by room."""
        async with self._sessionmaker() as session:
            rooms = await store.rooms_with_recordings_in_flight(session)
        repairs: dict[str, str] = {}
        for room_id in rooms:
            try:
                outcome = await self._directory.call(str(room_id), ReconcileRecording())
            except CoordinatorError as exc:
                log.warning("reconcile: room %s skipped: %s", room_id, exc)
                continue
            if outcome:
                repairs[str(room_id)] = outcome
        self.repairs += len(repairs)
        return repairs
