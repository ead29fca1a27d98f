"""A recording start answers before its room metadata merge runs (issue 12 point 4).

The merge (``recording_status: starting``) is best effort and for the other participants:
it runs in the room's side lane once the start's reply is out, never ahead of it, and still
before any later metadata change of the room (the lane keeps their order). A merge another
request causes while a recording step is in flight (the egress webhooks during a stop) also
waits for that step's reply; a data message (lobby notifications) waits only for its own
request's (but keeps its place in the lane).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from coordinator.actor import LocalDirectory
from coordinator.room import (
    RECORDING_CONFLICT,
    RecordingState,
    SendData,
    StartRecording,
    StepResult,
    StopRecording,
    SyncRoomSettings,
    TrackRecording,
)
from coordinator.telemetry import REQUEST_ID
from tests.coordinator.test_actor import FakeMedia, FakeRecordings


class Starting(FakeRecordings):
    async def begin(
        self, room: str, *, mode: str, options: dict[str, Any], user_id: uuid.UUID
    ) -> StepResult:
        await asyncio.sleep(0.01)  # the database and the egress
        state = RecordingState(uuid.uuid4(), mode, "active", "EG_1", "EGRESS_STARTING")
        metadata = {"recording_mode": mode, "recording_status": "starting"}
        return StepResult({"message": "started"}, TrackRecording(state, metadata))


class Stopping(FakeRecordings):
    def __init__(self) -> None:
        super().__init__()
        self.writing = asyncio.Event()  # the stop's status write is under way
        self.written = asyncio.Event()

    async def end(self, room: str, *, recording: RecordingState | None = None) -> StepResult:
        self.writing.set()
        await self.written.wait()
        return StepResult({"message": "stopped"}, TrackRecording(None))


class Merges(FakeMedia):
    def __init__(self) -> None:
        super().__init__()
        self.merges: list[tuple[dict[str, Any], bool]] = []  # changes, reply already out
        self.reply: asyncio.Future[Any] | None = None

    async def merge_room_metadata(self, room: str, changes: dict[str, Any], **_: Any) -> bool:
        assert self.reply is not None
        self.merges.append((changes, self.reply.done()))
        await asyncio.sleep(0.005)
        return True


async def test_the_start_metadata_merge_waits_for_the_reply_and_keeps_its_order() -> None:
    media = Merges()
    directory = LocalDirectory(media, Starting())
    room = "room-reply-first"
    REQUEST_ID.set("req-start")  # as api/ sets it for the HTTP request
    start = asyncio.ensure_future(
        directory.call(room, StartRecording("transcript", {}, uuid.uuid4()))
    )
    media.reply = start
    assert await start == {"message": "started"}
    REQUEST_ID.set("req-settings")  # another request: its merge goes after the start's
    await directory.call(room, SyncRoomSettings({"access_level": "public"}))
    await directory.settle(room)
    assert media.merges == [
        ({"recording_mode": "transcript", "recording_status": "starting"}, True),
        ({"access_level": "public"}, True),
    ]
    await directory.close()


async def test_a_merge_caused_meanwhile_waits_for_the_stop_reply_a_data_message_does_not() -> None:
    media = Merges()
    recordings = Stopping()
    directory = LocalDirectory(media, recordings)
    room = "room-stop-first"
    REQUEST_ID.set("req-stop")
    stop = asyncio.ensure_future(directory.call(room, StopRecording()))
    media.reply = stop
    await recordings.writing.wait()
    REQUEST_ID.set("req-lobby")
    directory.actor(room)._side_effect(SendData({"type": "participantWaiting"}))
    for _ in range(50):  # the data message goes out while the stop is in flight
        if media.sent:
            break
        await asyncio.sleep(0.001)
    assert [payload for _, payload in media.sent] == [{"type": "participantWaiting"}]
    REQUEST_ID.set("req-webhook")  # e.g. egress_updated ENDING: recording_status saving
    await directory.call(room, SyncRoomSettings({"recording_status": "saving"}))
    await asyncio.sleep(0.02)
    assert media.merges == [] and not stop.done()
    recordings.written.set()
    assert await stop == {"message": "stopped"}
    await directory.settle(room)
    assert media.merges == [({"recording_status": "saving"}, True)]
    await directory.close()


class FailingOnce(FakeRecordings):
    """The first start fails (LiveKit refused the egress), the next ones start."""

    def __init__(self) -> None:
        super().__init__()
        self.begun = 0

    async def begin(
        self, room: str, *, mode: str, options: dict[str, Any], user_id: uuid.UUID
    ) -> StepResult:
        self.begun += 1
        if self.begun == 1:
            raise RuntimeError("egress refused")
        state = RecordingState(uuid.uuid4(), mode, "active", "EG_2", "EGRESS_STARTING")
        return StepResult({"message": "started"}, TrackRecording(state))


async def test_a_start_answered_before_it_settles_still_settles_before_the_next_command() -> None:
    """The start's answer does not wait for the mailbox to take its ``StartSettled``; a
    command sent the moment the answer arrives still finds the start settled: a retry after
    a failed start runs (it is not refused as a start in progress), and a second start after
    a successful one is the conflict."""
    recordings = FailingOnce()
    directory = LocalDirectory(FakeMedia(), recordings)
    room = "room-settled-first"
    try:
        await directory.call(room, StartRecording("transcript", {}, uuid.uuid4()))
    except RuntimeError:
        pass
    retry = await directory.call(room, StartRecording("transcript", {}, uuid.uuid4()))
    assert retry == {"message": "started"}
    assert recordings.begun == 2
    again = await directory.call(room, StartRecording("transcript", {}, uuid.uuid4()))
    assert again == RECORDING_CONFLICT
    assert recordings.begun == 2
    await directory.settle(room)
    assert directory.actor(room).state.starting is False
    await directory.close()
