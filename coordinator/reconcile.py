"""Periodic reconciliation of recordings with LiveKit's egresses (DESIGN §4.6).

Every pass asks LiveKit once for every live egress (``ListEgress`` active) and lists the rooms
with a recording in flight in the database; each of those rooms' actor gets a
``ReconcileRecording`` command with the room's live egresses, which repairs drift left by lost
webhooks and stops (or adopts) every egress no recording tracks (logging each repair). Repairs
are conditional updates ("only from the status I saw"), so passes running in several processes
at once cannot undo each other.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Protocol

from coordinator.actor import RoomDirectory
from coordinator.errors import CoordinatorError
from coordinator.media import Egress
from coordinator.room import ReconcileRecording
from coordinator.slugs import parse_uuid
from storage import recordings as store
from storage.engine import SessionMaker, is_outage, outage_summary

log = logging.getLogger(__name__)


class EgressLister(Protocol):
    async def list_egress(
        self, *, room: str | None = None, egress_id: str | None = None, active: bool = False
    ) -> list[Egress]: ...


class Reconciler:
    def __init__(
        self,
        sessionmaker: SessionMaker,
        directory: RoomDirectory,
        every: float,
        media: EgressLister | None = None,
    ) -> None:
        self._media = media
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
            in_flight = [str(r) for r in await store.rooms_with_recordings_in_flight(session)]
        live: dict[str, list[Egress]] | None = None
        if self._media is not None:
            try:
                egresses = await self._media.list_egress(active=True)
            except CoordinatorError as exc:
                log.warning("reconcile: live egresses unknown: %s", exc)
            else:
                live = {}
                for egress in egresses:
                    if parse_uuid(egress.room_name) is not None:
                        live.setdefault(egress.room_name, []).append(egress)
        rooms = list(dict.fromkeys([*in_flight, *(live or {})]))
        repairs: dict[str, str] = {}
        for room_id in rooms:
            command = ReconcileRecording(None if live is None else tuple(live.get(room_id, ())))
            try:
                outcome = await self._directory.call(room_id, command)
            except CoordinatorError as exc:
                log.warning("reconcile: room %s skipped: %s", room_id, exc)
                continue
            if outcome:
                repairs[str(room_id)] = outcome
        self.repairs += len(repairs)
        return repairs
