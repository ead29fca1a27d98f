"""In-process parts of ``bench.actors``: actor command throughput and the memory of live rooms.

Both use ``LocalDirectory`` with ports that answer at once (no network, no database), so they
measure the actor shell and ``decide`` alone. The memory measurement runs in a fresh child
process (``python -m bench.actors_local memory ...``) so that its RSS baseline is not inflated by
whatever the parent allocated before.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import sys
import time
import tracemalloc
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.actors_events import churn, event, participant
from coordinator.actor import LocalDirectory
from coordinator.media import Egress, Participant, RoomInfo, WebhookEvent
from coordinator.room import (
    ApplyWebhook,
    RecordingState,
    RoomState,
    Snapshot,
    StepResult,
    decide,
)


class InstantMedia:
    """A LiveKit that knows nothing and answers every call at once."""

    async def list_participants(self, room: str) -> list[Participant]:
        return []

    async def list_egress(
        self, *, room: str | None = None, egress_id: str | None = None, active: bool = False
    ) -> list[Egress]:
        return []

    async def get_room(self, room: str) -> RoomInfo | None:
        return RoomInfo(room)

    async def get_participant(self, room: str, identity: str) -> Participant | None:
        return None

    async def remove_participant(self, room: str, identity: str) -> None:
        return None

    async def mute_track(self, room: str, identity: str, track_sid: str) -> None:
        return None

    async def update_participant(
        self,
        room: str,
        identity: str,
        *,
        metadata: str | None = None,
        attributes: dict[str, str] | None = None,
        name: str | None = None,
        permission: dict[str, Any] | None = None,
    ) -> Participant:
        return Participant(identity=identity)

    async def send_data(self, room: str, payload: dict[str, Any]) -> None:
        return None

    async def merge_room_metadata(
        self, room: str, changes: dict[str, Any], *, remove: tuple[str, ...] = ()
    ) -> bool:
        return True


class InstantRecordings:
    """No recording anywhere."""

    async def in_flight(self, room: str) -> RecordingState | None:
        return None

    async def by_egress(self, egress_id: str) -> RecordingState | None:
        return None

    async def set_status(
        self, recording_id: uuid.UUID, status: str, only_from: tuple[str, ...]
    ) -> bool:
        return True

    async def complete(self, recording_id: uuid.UUID, egress: Egress) -> None:
        return None

    async def begin(
        self, room: str, *, mode: str, options: dict[str, Any], user_id: uuid.UUID
    ) -> StepResult:
        return StepResult()

    async def end(self, room: str, *, recording: Any = None) -> StepResult:
        return StepResult()

    async def finish(self, room: str, *, recording_id: uuid.UUID) -> StepResult:
        return StepResult()

    async def reconcile(self, room: str, *, egresses: Any = None) -> StepResult:
        return StepResult()


def directory() -> LocalDirectory:
    return LocalDirectory(InstantMedia(), InstantRecordings())


# -- command throughput ------------------------------------------------------------------


@dataclass(frozen=True)
class Rate:
    scenario: str
    commands: int
    seconds: float  # wall clock
    cpu: float  # this process's CPU time: robust when other processes share the cores

    @property
    def per_second(self) -> float:
        return self.commands / self.seconds if self.seconds else 0.0

    @property
    def per_cpu_second(self) -> float:
        return self.commands / self.cpu if self.cpu else 0.0


def commands(events: list[WebhookEvent]) -> list[ApplyWebhook]:
    return [ApplyWebhook(e) for e in events]


def pure_decide(name: str, batch: list[ApplyWebhook]) -> Rate:
    """The baseline: ``decide`` in a loop, reading the clock as the shell does."""
    state = RoomState(name=name)
    clock = time.monotonic
    gc.collect()
    started, cpu = time.perf_counter(), time.process_time()
    for command in batch:
        state = decide(state, command, clock()).state
    wall = time.perf_counter() - started
    scenario = "baseline: `decide()` in a loop (pure)"
    return Rate(scenario, len(batch), wall, time.process_time() - cpu)


async def timed(scenario: str, count: int, run: Callable[[], Awaitable[None]]) -> Rate:
    gc.collect()
    started, cpu = time.perf_counter(), time.process_time()
    await run()
    return Rate(scenario, count, time.perf_counter() - started, time.process_time() - cpu)


async def throughput(count: int, rooms: int, per_room: int, in_flight: int) -> list[Rate]:
    """Commands/s through ``LocalDirectory.call`` (``ApplyWebhook`` of join/publish/leave)."""
    rng = random.Random(7)
    results = []

    # The pure baseline and (a) apply the same command list to a fresh room each.
    sequence = commands(churn(rng, "room-seq", count))
    results.append(pure_decide("room-seq", sequence))
    rooms_dir = directory()
    await rooms_dir.call("room-seq", Snapshot())  # activation is not what is measured

    async def sequential() -> None:
        for command in sequence:
            await rooms_dir.call("room-seq", command)

    results.append(await timed("(a) 1 room, sequential awaits", count, sequential))

    concurrent = commands(churn(rng, "room-burst", count))
    await rooms_dir.call("room-burst", Snapshot())

    async def bursts() -> None:
        for start in range(0, count, in_flight):
            batch = concurrent[start : start + in_flight]
            await asyncio.gather(*(rooms_dir.call("room-burst", c) for c in batch))

    scenario = f"(b) 1 room, {in_flight:,} concurrent callers (one task each)"
    results.append(await timed(scenario, count, bursts))

    futures_batch = commands(churn(rng, "room-futures", count))
    actor = rooms_dir.actor("room-futures")
    await actor.submit(Snapshot())

    async def futures() -> None:
        for start in range(0, count, in_flight):
            batch = futures_batch[start : start + in_flight]
            await asyncio.gather(*[actor.submit(c) for c in batch])

    scenario = f"(b') 1 room, {in_flight:,} in flight as futures (no caller tasks)"
    results.append(await timed(scenario, count, futures))
    await rooms_dir.close()

    many_dir = directory()
    names = [f"room-{n:05d}" for n in range(rooms)]
    per_room_commands = {name: commands(churn(rng, name, per_room)) for name in names}
    await asyncio.gather(*(many_dir.call(name, Snapshot()) for name in names))

    async def many() -> None:
        calls = [
            many_dir.call(name, per_room_commands[name][n])
            for n in range(per_room)
            for name in names
        ]
        await asyncio.gather(*calls)

    scenario = f"(c) {rooms:,} rooms x {per_room} commands, all concurrent"
    results.append(await timed(scenario, rooms * per_room, many))
    await many_dir.close()
    return results


# -- memory of live rooms ----------------------------------------------------------------


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("VmRSS not found in /proc/self/status")


async def settle() -> int:
    # Yield once first: the loop's handle that resumed this coroutine still references what
    # it was awaiting (the last gather and its finished tasks) until the next iteration.
    await asyncio.sleep(0)
    gc.collect()
    gc.collect()
    return rss_bytes()


async def fill(rooms: int, participants: int, trace: bool) -> dict[str, Any]:
    """Activate ``rooms`` rooms, then join ``participants`` participants through webhooks."""
    rng = random.Random(11)
    names = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(rooms)]
    chunk = 1000
    local = directory()
    figures: dict[str, Any] = {"rooms": rooms, "participants": participants}
    figures["rss_before"] = await settle()
    if trace:
        tracemalloc.start()
    for start in range(0, rooms, chunk):
        await asyncio.gather(
            *(local.call(name, Snapshot()) for name in names[start : start + chunk])
        )
    figures["rss_rooms"] = await settle()
    if trace:
        figures["traced_rooms"] = tracemalloc.get_traced_memory()[0]
    per_room, extra = divmod(participants, rooms)
    tracks = 0
    building = applying = 0.0
    applied = 0
    for start in range(0, rooms, chunk):
        began = time.perf_counter()
        batch: list[Awaitable[Any]] = []
        for index in range(start, min(rooms, start + chunk)):
            name = names[index]
            for n in range(per_room + (1 if index < extra else 0)):
                who = participant(rng, name, n, 1 + (n + index) % 2)  # 1 or 2 tracks
                tracks += len(who.tracks)
                joined = event(rng, "participant_joined", name, who, n)
                batch.append(local.call(name, ApplyWebhook(joined)))
                for track in who.tracks:
                    published = WebhookEvent(
                        id=f"EV_{rng.getrandbits(64):016x}",
                        event="track_published",
                        created_at=1_700_000_000 + n,
                        room_name=name,
                        room_sid="RM_bench",
                        participant=Participant(identity=who.identity, sid=who.sid),
                        track=track,
                    )
                    batch.append(local.call(name, ApplyWebhook(published)))
        applied += len(batch)
        built = time.perf_counter()
        await asyncio.gather(*batch)
        building += built - began
        applying += time.perf_counter() - built
        del batch
    figures["build_seconds"] = building
    figures["apply_seconds"] = applying
    figures["webhooks"] = applied
    figures["rss_after"] = await settle()
    if trace:
        figures["traced_after"] = tracemalloc.get_traced_memory()[0]
        snapshot = tracemalloc.take_snapshot()
        tracemalloc.stop()
        top = snapshot.statistics("lineno")[:8]
        figures["top"] = [
            [f"{Path(s.traceback[0].filename).name}:{s.traceback[0].lineno}", s.size, s.count]
            for s in top
        ]
    held = [local.actor(name).state for name in names]
    figures["held_participants"] = sum(len(s.participants) for s in held)
    figures["held_tracks"] = sum(len(p.tracks) for s in held for p in s.participants.values())
    figures["expected_tracks"] = tracks
    figures["actors"] = len(local.active_rooms())
    await local.close()
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="bench.actors child: memory of live rooms")
    parser.add_argument("what", choices=["memory"])
    parser.add_argument("--rooms", type=int, default=10_000)
    parser.add_argument("--participants", type=int, default=50_000)
    parser.add_argument("--tracemalloc", action="store_true")
    args = parser.parse_args(argv)
    figures = asyncio.run(fill(args.rooms, args.participants, args.tracemalloc))
    json.dump(figures, sys.stdout)


if __name__ == "__main__":
    main()
