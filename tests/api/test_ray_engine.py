"""The Ray engine (DESIGN §3): placement, what crosses processes, command ids deduplicated by
the host and the database, and a killed room host: its rooms serve again with their recording,
participants and lobby, and a command sent again is not applied twice."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import pickle
import signal
import typing
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from api import keys
from coordinator.errors import Conflict, Unavailable
from coordinator.livekit import LiveKitError
from coordinator.media import Egress, Participant, Track, WebhookEvent
from coordinator.room import (
    Command,
    LobbyEntry,
    RecordingState,
    Snapshot,
    StartRecording,
)
from storage.models import Recording
from tests.api import test_recordings_flow
from tests.api.test_lobby import ask, entry_url
from tests.api.test_recordings_flow import (
    Env,
    env_factory,
    recording_of,
    started,
    url,
)
from tests.conftest import ENGINES

env = test_recordings_flow.env  # the fixture: an app with recordings, LiveKit and the outbox
RAY_ONLY = pytest.mark.parametrize("engine", ["ray"], indirect=True)


# -- no Ray needed -----------------------------------------------------------------------------


def test_rendezvous_placement_moves_about_one_in_k_rooms() -> None:
    from coordinator.engines.ray import host_names, place

    rooms = [str(uuid.UUID(int=n)) for n in range(4000)]
    three, four = host_names(3), host_names(4)
    before = {room: place(room, three) for room in rooms}
    after = {room: place(room, four) for room in rooms}
    moved = [room for room in rooms if before[room] != after[room]]
    assert all(after[room] == "room-host-3" for room in moved)  # only to the new host
    assert 0.2 < len(moved) / len(rooms) < 0.3  # ~1/4
    counts = [list(before.values()).count(name) for name in three]
    assert min(counts) > 0.28 * len(rooms)  # balanced
    # Removing a host moves only its own rooms.
    two = host_names(2)
    assert all(place(room, two) == before[room] for room in rooms if before[room] != "room-host-2")


def _sample(kind: type) -> Any:
    """An instance of ``kind`` with every field filled (nested values included)."""
    samples: dict[Any, Any] = {
        str: "x",
        int: 1,
        float: 1.5,
        bool: True,
        uuid.UUID: uuid.uuid4(),
        Participant: Participant(
            identity="ada", sid="PA_1", tracks=(Track("TR_1", "AUDIO", "MICROPHONE"),)
        ),
        Egress: Egress(egress_id="EG_1", room_name="r", status="EGRESS_ACTIVE"),
        RecordingState: RecordingState(uuid.uuid4(), "transcript", "active", "EG_1"),
        LobbyEntry: LobbyEntry("p", "Guest", "#fff", "waiting", 1.0, "p"),
        WebhookEvent: WebhookEvent(
            id="EV_1", event="participant_joined", created_at=1, room_name="r"
        ),
    }
    values = {}
    hints = typing.get_type_hints(kind)
    for field in dataclasses.fields(kind):
        hint = hints[field.name]
        text = str(hint)
        if hint in samples:
            values[field.name] = samples[hint]
        elif "tuple" in text and "Participant" in text:
            values[field.name] = (samples[Participant],)
        elif "tuple" in text and "Egress" in text:
            values[field.name] = (samples[Egress],)
        elif "tuple" in text and "LobbyEntry" in text:
            values[field.name] = (samples[LobbyEntry],)
        elif "RecordingState" in text:
            values[field.name] = samples[RecordingState]
        elif "Mapping" in text:
            values[field.name] = {"k": "v"}
        elif "UUID" in text:
            values[field.name] = samples[uuid.UUID]
        elif "float" in text:
            values[field.name] = 2.5
        elif "str" in text:
            values[field.name] = "y"
    return kind(**values)


def test_every_command_reply_and_error_crosses_processes() -> None:
    commands = typing.get_args(Command)
    assert len(commands) > 15
    for kind in commands:
        command = _sample(kind)
        assert pickle.loads(pickle.dumps(command)) == command, kind
    for error in (
        Conflict(body={"error": "A recording is already in progress for room x"}),
        LiveKitError("no", status=503, code="unavailable"),
        Unavailable(body={"error": "Recording failed to start for room x"}),
    ):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and copy.body == error.body and copy.status == error.status
    assert pickle.loads(pickle.dumps(LiveKitError("no", status=503))).livekit_status == 503


def test_settings_fingerprint_follows_every_value() -> None:
    from coordinator.engines.ray import fingerprint
    from coordinator.settings import LiveKitSettings, Secret
    from tests.conftest import make_settings

    one = make_settings("postgresql+asyncpg://u@127.0.0.1/meet")
    assert fingerprint(one) == fingerprint(pickle.loads(pickle.dumps(one)))
    other = dataclasses.replace(one, livekit=LiveKitSettings(api_secret=Secret("s" * 40)))
    assert fingerprint(other) != fingerprint(one)


# -- on both engines ---------------------------------------------------------------------------


@ENGINES
async def test_health_shows_every_host(env: Env, engine: str) -> None:
    room, _, _, _ = await started(env, "transcript")
    directory = env.client.app[keys.DIRECTORY]
    health = await directory.health()
    assert health["engine"] == engine
    hosts = health["hosts"]
    assert len(hosts) == (1 if engine == "local" else 2)
    assert all(h["alive"] and h["queued"] == 0 for h in hosts)
    assert all(h["oldest_queued_seconds"] is None for h in hosts)
    assert sum(h["rooms"] for h in hosts) >= 1
    if engine == "ray":
        await directory.refresh()  # type: ignore[attr-defined]
    assert str(room.id) in directory.active_rooms()


# -- Ray only ----------------------------------------------------------------------------------


async def _one_recording(env: Env, room: Any) -> Any:
    [record] = await recording_of(env, room)
    return record


@RAY_ONLY
async def test_a_command_sent_twice_runs_once(env: Env) -> None:
    """The host answers a resent command_id from its first run (the second start would be a
    409 if it ran again); the database holds one recording, LiveKit one egress."""
    room, owner = await env_factory(env).room_with_role("owner")
    env.livekit.join(str(room.id), "speaker")
    await env.livekit.webhooks.drain()
    directory: Any = env.client.app[keys.DIRECTORY]
    command = StartRecording("transcript", {}, owner.id)
    loop = asyncio.get_running_loop()
    started_at = loop.time()
    first = await directory.send(str(room.id), "cmd-1", command, loop.time() + 5)
    latency = loop.time() - started_at
    again = await directory.send(str(room.id), "cmd-1", command, loop.time() + 5)
    assert first == again == {"message": f"Recording successfully started for room {room.slug}"}
    record = await _one_recording(env, room)
    assert record.status == "active"
    assert len(env.livekit.calls_for("StartRoomCompositeEgress")) == 1
    other = await directory.send(str(room.id), "cmd-2", command, loop.time() + 5)
    assert other == "conflict"  # a new command is a new start: refused as usual
    print(f"start-recording through Ray: {latency * 1000:.1f} ms")


async def _serves_again(directory: Any, room: str, max_wait: float = 10.0) -> tuple[Any, float]:
    loop = asyncio.get_running_loop()
    started_at = loop.time()
    while True:
        try:
            snapshot = await directory.call(room, Snapshot())
            return snapshot, loop.time() - started_at
        except Unavailable:
            assert loop.time() - started_at < max_wait, "the room did not come back"
            await asyncio.sleep(0.05)


async def _kill_host_of(directory: Any, room: str) -> str:
    name: str = directory.host_of(room)
    os.kill(await directory.host_pid(name), signal.SIGKILL)
    return name


@RAY_ONLY
async def test_a_killed_host_restarts_with_its_rooms_recording_participants_and_lobby(
    env: Env,
) -> None:
    factory = env_factory(env)
    room, owner, recording_id, egress_id = await started(env, "transcript")
    # The lobby: the room goes restricted, one guest accepted, one waiting.
    restricted, admin = await factory.room_with_role("administrator", access_level="restricted")
    env.livekit.join(str(restricted.id), "host-inside")
    await env.livekit.webhooks.drain()
    env.client.session.cookie_jar.clear()
    accepted = await ask(env.client, restricted)
    waiting = await ask(env.client, restricted)
    env.log_in(admin)
    response = await env.client.post(
        entry_url(restricted, "enter"), json={"participant_id": accepted["id"], "allow_entry": True}
    )
    assert response.status == 200
    directory: Any = env.client.app[keys.DIRECTORY]
    command = StartRecording("transcript", {}, owner.id)
    before = await directory.call(str(room.id), Snapshot())
    assert before["recording"]["status"] == "active"

    killed = await _kill_host_of(directory, str(room.id))
    if directory.host_of(str(restricted.id)) != killed:
        await _kill_host_of(directory, str(restricted.id))
    snapshot, failover = await _serves_again(directory, str(room.id))
    print(f"failover of a killed host: {failover:.2f} s")
    assert snapshot["recording"] == before["recording"]  # from the database and LiveKit
    assert snapshot["recording"]["id"] == str(recording_id)
    assert snapshot["recording"]["egress_id"] == egress_id
    for _ in range(100):  # participants come back from LiveKit's list
        snapshot = await directory.call(str(room.id), Snapshot())
        if snapshot["participants"]:
            break
        await asyncio.sleep(0.05)
    assert [p["identity"] for p in snapshot["participants"]] == ["speaker"]

    # The recovered recording in flight still refuses a second start.
    assert await directory.call(str(room.id), command) == "conflict"

    # The lobby came back: the waiting guest is listed, the accepted one gets in.
    await _serves_again(directory, str(restricted.id))
    listed = await (await env.client.get(entry_url(restricted, "waiting-participants"))).json()
    assert [p["id"] for p in listed["participants"]] == [waiting["id"]]
    env.client.session.cookie_jar.clear()
    back = await ask(env.client, restricted, accepted["cookie"])
    assert back["status"] == "accepted" and back["livekit"]["room"] == str(restricted.id)
    still = await ask(env.client, restricted, waiting["cookie"])
    assert still["status"] == "waiting"
    assert len(await recording_of(env, room)) == 1


@RAY_ONLY
async def test_a_start_resent_after_its_host_died_is_not_applied_twice(env: Env) -> None:
    """The start ran, its reply was lost with the host; sent again with the same command_id
    to the restarted host (no memory of it), the database's row answers: one recording."""
    room, owner = await env_factory(env).room_with_role("owner")
    env.livekit.join(str(room.id), "speaker")
    await env.livekit.webhooks.drain()
    directory: Any = env.client.app[keys.DIRECTORY]
    command = StartRecording("transcript", {}, owner.id)
    loop = asyncio.get_running_loop()
    first = await directory.send(str(room.id), "lost-reply", command, loop.time() + 5)
    name = directory.host_of(str(room.id))
    old_pid = await directory.host_pid(name)
    killed_at = loop.time()
    await _kill_host_of(directory, str(room.id))
    while True:
        try:
            if await asyncio.wait_for(directory.host_pid(name), 1.0) != old_pid:
                break
        except Exception:
            await asyncio.sleep(0.05)
    restarted = loop.time() - killed_at
    _, serving = await _serves_again(directory, str(room.id))
    print(f"host process back after {restarted:.2f} s, room serving {serving:.2f} s later")
    again = await directory.send(str(room.id), "lost-reply", command, loop.time() + 5)
    assert again == first == {"message": f"Recording successfully started for room {room.slug}"}
    record = await _one_recording(env, room)
    assert record.status == "active" and len(env.livekit.calls_for("StartRoomCompositeEgress")) == 1


@RAY_ONLY
async def test_a_host_killed_during_a_start_answers_201_or_503_never_twice(env: Env) -> None:
    room, owner = await env_factory(env).room_with_role("owner")
    env.livekit.join(str(room.id), "speaker")
    await env.livekit.webhooks.drain()
    env.log_in(owner)
    directory: Any = env.client.app[keys.DIRECTORY]
    await directory.call(str(room.id), Snapshot())  # the room is active on its host
    env.livekit.stall("StartRoomCompositeEgress", 0.6)
    request = asyncio.ensure_future(
        env.client.post(url(room, "start-recording"), json={"mode": "transcript"})
    )
    await asyncio.sleep(0.3)  # the start is under way in the host
    await _kill_host_of(directory, str(room.id))
    response = await request
    assert response.status in (201, 503), await response.text()
    await _serves_again(directory, str(room.id))
    async with env.client.app[keys.SESSIONMAKER]() as session:
        rows = (await session.scalars(select(Recording).where(Recording.room_id == room.id))).all()
    assert len(rows) <= 1
    in_flight = [r for r in rows if r.status in ("initiated", "active")]
    assert len(in_flight) <= 1
    if response.status == 201:
        assert [r.status for r in rows] == ["active"]
