"""No egress records a room without a recording the API shows (issue 9 point 2).

A start LiveKit answers after our timeout, a start whose process died, a reconciliation pass:
each ends with every live egress of the room tracked by the recording in flight (adopted by its
``<folder>/<recording id>.<ext>`` file) or stopped, and never a second egress.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from livekit import api

from api import keys
from storage.models import Recording, RecordingAccess, utcnow
from storage.records import RoomRecord
from tests.api import test_recordings_flow as flow
from tests.api.test_recordings_flow import Env, env_factory, recording_of, url, wait_status

env = flow.env  # the fixture: the app, the LiveKit stand-in, storage hook and notifications

LIVE = (api.EgressStatus.EGRESS_STARTING, api.EgressStatus.EGRESS_ACTIVE)


def live_egresses(env: Env, room: RoomRecord) -> list[Any]:
    return [
        e
        for e in env.livekit.egress.all_egresses()
        if e.room_name == str(room.id) and e.status in LIVE
    ]


async def until_no_live_egress(env: Env, room: RoomRecord, max_wait: float = 8.0) -> None:
    deadline = asyncio.get_running_loop().time() + max_wait
    while live_egresses(env, room):
        assert asyncio.get_running_loop().time() < deadline, live_egresses(env, room)
        await asyncio.sleep(0.05)


async def stuck_recording(env: Env, room: RoomRecord, owner: Any, **fields: Any) -> uuid.UUID:
    """A recording left ``initiated`` by a process that died mid-start."""
    async with env.client.app[keys.SESSIONMAKER].begin() as session:
        recording = Recording(
            room_id=room.id,
            status="initiated",
            mode="transcript",
            created_at=utcnow() - timedelta(minutes=1),
            **fields,
        )
        session.add(recording)
        await session.flush()
        session.add(RecordingAccess(recording_id=recording.id, user_id=owner.id, role="owner"))
    return recording.id


@pytest.mark.parametrize("webhooks", ["delivered", "lost"])
async def test_a_start_answered_after_the_timeout_leaves_no_egress_recording(
    env: Env, webhooks: str
) -> None:
    room, owner = await env_factory(env).room_with_role("owner")
    env.livekit.join(str(room.id), "speaker")
    await env.livekit.webhooks.drain()
    env.log_in(owner)
    if webhooks == "lost":
        env.livekit.webhook_url = None  # only the room's own sweeps can find the late egress
    env.livekit.stall("StartRoomCompositeEgress", 2.0)  # answers after our 1 s timeout
    started_at = asyncio.get_running_loop().time()
    response = await env.client.post(url(room, "start-recording"), json={"mode": "transcript"})
    assert asyncio.get_running_loop().time() - started_at < 1.8
    assert response.status == 503  # timed out (before: 502)
    assert await response.json() == {"error": f"Recording failed to start for room {room.slug}"}
    [failed] = await recording_of(env, room)
    assert failed.status == "failed_to_start"
    await asyncio.sleep(1.2)  # LiveKit creates the egress late, recording the room
    await until_no_live_egress(env, room)  # stopped: no recording tracks it
    [late] = env.livekit.egress.all_egresses()
    assert late.file_results[0].filename == f"recordings/{failed.id}.ogg"
    response = await env.client.post(url(room, "start-recording"), json={"mode": "transcript"})
    assert response.status == 201
    [egress] = live_egresses(env, room)  # one egress, the new recording's
    records = await recording_of(env, room)
    [active] = [r for r in records if r.status == "active"]
    assert active.worker_id == egress.egress_id


async def test_an_initiated_recording_of_a_dead_process_is_resolved_at_activation(
    env: Env,
) -> None:
    room, owner = await env_factory(env).room_with_role("owner")
    stuck = await stuck_recording(env, room, owner)  # then this process starts…
    env.livekit.join(str(room.id), "speaker")  # …and the room's actor activates
    await env.livekit.webhooks.drain()
    env.log_in(owner)
    # Before the fix: 409 for minutes (until a reconciliation pass gave up on it).
    response = await env.client.post(url(room, "start-recording"), json={"mode": "transcript"})
    assert response.status == 201, await response.text()
    await wait_status(env, stuck, "failed_to_start")
    assert len(env.livekit.calls_for("StartRoomCompositeEgress")) == 1
    assert len(live_egresses(env, room)) == 1


async def test_the_egress_of_a_dead_start_is_adopted_by_its_file_path(env: Env) -> None:
    room, owner = await env_factory(env).room_with_role("owner")
    stuck = await stuck_recording(env, room, owner)
    env.livekit.webhook_url = None  # the dead process never heard of its egress
    env.livekit.join(str(room.id), "speaker")
    async with api.LiveKitAPI(
        env.livekit.url, env.livekit.api_key, env.livekit.api_secret
    ) as client:
        egress = await client.egress.start_room_composite_egress(
            api.RoomCompositeEgressRequest(
                room_name=str(room.id),
                audio_only=True,
                file_outputs=[api.EncodedFileOutput(filepath=f"recordings/{stuck}.ogg")],
            )
        )
    env.log_in(owner)
    live = await (await env.client.get(url(room, "live"))).json()  # activation
    assert live["recording"]["id"] == str(stuck)
    await wait_status(env, stuck, "active")
    [record] = await recording_of(env, room)
    assert record.worker_id == egress.egress_id
    response = await env.client.post(url(room, "start-recording"), json={"mode": "transcript"})
    assert response.status == 409  # the adopted recording is the one in flight
    response = await env.client.post(url(room, "stop-recording"))
    assert response.status == 200
    await until_no_live_egress(env, room)


async def test_every_reconciliation_pass_stops_untracked_egresses(env: Env) -> None:
    factory = env_factory(env)
    room, _ = await factory.room_with_role("owner")
    other_app_room = "someone-elses-room"
    for name in (str(room.id), other_app_room):
        env.livekit.join(name, "speaker")
    await env.livekit.webhooks.drain()
    env.livekit.webhook_url = None  # webhooks lost: only the pass can see them
    ghost = uuid.uuid4()  # a file no recording of ours will ever claim
    async with api.LiveKitAPI(
        env.livekit.url, env.livekit.api_key, env.livekit.api_secret
    ) as client:
        for name in (str(room.id), other_app_room):
            await client.egress.start_room_composite_egress(
                api.RoomCompositeEgressRequest(
                    room_name=name,
                    audio_only=True,
                    file_outputs=[api.EncodedFileOutput(filepath=f"recordings/{ghost}.ogg")],
                )
            )
    repairs = await env.client.app[keys.RECONCILER].run_once()
    assert repairs == {str(room.id): "stopped_untracked_egress"}
    await until_no_live_egress(env, room)
    others = [e for e in env.livekit.egress.all_egresses() if e.room_name == other_app_room]
    assert [e.status for e in others] == [api.EgressStatus.EGRESS_STARTING]  # not ours: kept
    assert await env.client.app[keys.RECONCILER].run_once() == {}
