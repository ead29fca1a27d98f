"""The Ray engine (DESIGN §3): placement, what crosses processes, command ids deduplicated by
the host and the database, and a killed room host: its rooms serve again with their recording,
participants and lobby, and a command sent again is not applied twice."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import pickle
import signal
import time
import typing
import uuid
from typing import Any

import pytest

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
from tests.api import test_recordings_flow
from tests.api.test_lobby import ask, entry_url
from tests.api.test_recordings_flow import (
    Env,
    env_factory,
    recording_of,
    started,
)
from tests.conftest import ENGINES
from tests.coordinator.test_actor import joined

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


async def test_a_closing_front_end_leaves_no_batch_behind() -> None:
    """Webhooks queued or in flight to a host that does not answer: closing the front end
    cancels them all (their callers are told) and starts no batch afterwards."""
    from coordinator.engines.ray import RayDirectory
    from tests.conftest import make_settings

    class Hung:  # a host's handle whose calls (call, call_many) never answer
        def __init__(self) -> None:
            self.sent = 0
            self.call = self.call_many = self

        def remote(self, *_: Any) -> Any:
            self.sent += 1
            return asyncio.get_running_loop().create_future()

    directory = RayDirectory(make_settings("postgresql+asyncpg://u@127.0.0.1/meet"))
    handle = Hung()
    first = asyncio.ensure_future(
        directory._remote_call("h", handle, "r1", "c1", joined("r1", "ada", 0))
    )
    await asyncio.sleep(0)  # the first batch goes out and hangs
    queued = [
        asyncio.ensure_future(
            directory._remote_call("h", handle, f"r{n}", f"c{n}", joined(f"r{n}", "ada", 0))
        )
        for n in range(2, 5)
    ]
    await asyncio.sleep(0.01)
    assert handle.sent == 1  # one batch out per host: the others wait for it
    await directory.close()
    results = await asyncio.gather(first, *queued, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results), results
    await asyncio.sleep(0.01)
    assert handle.sent == 1 and not directory._in_flight


# -- on both engines ---------------------------------------------------------------------------


@ENGINES
async def test_health_shows_every_host(env: Env, engine: str) -> None:
    room, _, _, _ = await started(env, "transcript")
    directory = env.client.app[keys.DIRECTORY]
    deadline = time.monotonic() + 10  # the start's follow-up commands may still be queued
    while True:
        health = await directory.health()
        hosts = health["hosts"]
        if all(h["alive"] and h["queued"] == 0 for h in hosts):
            break
        assert time.monotonic() < deadline, hosts
        await asyncio.sleep(0.05)
    assert health["engine"] == engine
    assert len(hosts) == (1 if engine == "local" else 2)
    assert all(h["oldest_queued_seconds"] is None for h in hosts)
    assert sum(h["rooms"] for h in hosts) >= 1
    if engine == "ray":
        await directory.refresh()  # type: ignore[attr-defined]
    assert str(room.id) in directory.active_rooms()


# -- Ray only ----------------------------------------------------------------------------------


def test_a_local_ray_stays_on_loopback(ray_cluster: list[str]) -> None:
    """Started by ``connect`` for one machine, Ray advertises 127.0.0.1 (it advertised the
    machine's external address before ``connect`` set Ray's environment ahead of its import)."""
    from coordinator.engines.ray import node_address

    assert ray_cluster == ["room-host-0", "room-host-1"]
    assert node_address() == "127.0.0.1"


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
    timings = []
    for _ in range(20):
        before = loop.time()
        await directory.call(str(room.id), Snapshot())
        timings.append(loop.time() - before)
    median = sorted(timings)[len(timings) // 2]
    print(
        f"through Ray: start-recording {latency * 1000:.1f} ms, snapshot p50 {median * 1000:.1f} ms"
    )


async def _serves_again(directory: Any, room: str, max_wait: float = 30.0) -> tuple[Any, float]:
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


async def _room_on(env: Env, host: str, **fields: Any) -> tuple[Any, Any]:
    """A room (and its owner or administrator) that the placement puts on ``host``."""
    directory: Any = env.client.app[keys.DIRECTORY]
    role = "administrator" if fields else "owner"
    while True:
        room, user = await env_factory(env).room_with_role(role, **fields)
        if directory.host_of(str(room.id)) == host:
            return room, user


@RAY_ONLY
async def test_a_killed_host_restarts_its_rooms_and_nothing_is_applied_twice(env: Env) -> None:
    """One host process killed (SIGKILL) with, on it: a room recording with a participant,
    a restricted room with an accepted and a waiting guest, a start whose reply was lost, and
    a start under way. Ray restarts the host; every room serves again with its recording,
    participants and lobby; nothing ran twice; the start under way answered 201 or 503."""
    loop = asyncio.get_running_loop()
    directory: Any = env.client.app[keys.DIRECTORY]
    recorded, _, recording_id, egress_id = await started(env, "transcript")
    host = directory.host_of(str(recorded.id))
    # The lobby of a restricted room on the same host.
    restricted, admin = await _room_on(env, host, access_level="restricted")
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
    # A start that applied but whose reply will be lost with the host.
    lost, lost_owner = await _room_on(env, host)
    env.livekit.join(str(lost.id), "speaker")
    start = StartRecording("transcript", {}, lost_owner.id)
    first = await directory.send(str(lost.id), "lost-reply", start, loop.time() + 5)
    # A start under way when the host dies (LiveKit answers its egress start slowly).
    pending, pending_owner = await _room_on(env, host)
    env.livekit.join(str(pending.id), "speaker")
    await env.livekit.webhooks.drain()
    await directory.call(str(pending.id), Snapshot())  # active on the host
    before = await directory.call(str(recorded.id), Snapshot())
    assert before["recording"]["status"] == "active"
    env.livekit.stall("StartRoomCompositeEgress", 0.6)
    under_way = asyncio.ensure_future(
        directory.call(str(pending.id), StartRecording("transcript", {}, pending_owner.id))
    )
    await asyncio.sleep(0.3)

    old_pid = await directory.host_pid(host)
    killed_at = loop.time()
    os.kill(old_pid, signal.SIGKILL)
    try:
        outcome: Any = await under_way
    except Unavailable:
        outcome = 503
    while True:  # the host's new process
        try:
            if await asyncio.wait_for(directory.host_pid(host), 1.0) != old_pid:
                break
        except Exception:
            await asyncio.sleep(0.05)
    restarted = loop.time() - killed_at
    snapshot, serving = await _serves_again(directory, str(recorded.id))
    print(f"host process back after {restarted:.2f} s, its room serving {serving:.2f} s later")

    # The recording in flight and the participants, from the database and LiveKit.
    assert snapshot["recording"] == before["recording"]
    assert (snapshot["recording"]["id"], snapshot["recording"]["egress_id"]) == (
        str(recording_id),
        egress_id,
    )
    for _ in range(100):
        snapshot = await directory.call(str(recorded.id), Snapshot())
        if snapshot["participants"]:
            break
        await asyncio.sleep(0.05)
    assert [p["identity"] for p in snapshot["participants"]] == ["speaker"]
    assert await directory.call(str(recorded.id), start) == "conflict"  # still one in flight

    # The lost reply: resent with its command_id, answered from the database, not re-run.
    again = await directory.send(str(lost.id), "lost-reply", start, loop.time() + 5)
    assert again == first == {"message": f"Recording successfully started for room {lost.slug}"}
    assert [r.status for r in await recording_of(env, lost)] == ["active"]

    # The start under way: 201 (resent once and applied once) or 503, never two recordings.
    assert outcome == 503 or outcome == {
        "message": f"Recording successfully started for room {pending.slug}"
    }
    rows = await recording_of(env, pending)
    assert len(rows) <= 1
    if outcome != 503:
        assert [r.status for r in rows] == ["active"]

    # The lobby: the waiting guest is listed again, the accepted one gets in.
    listed = await (await env.client.get(entry_url(restricted, "waiting-participants"))).json()
    assert [p["id"] for p in listed["participants"]] == [waiting["id"]]
    env.client.session.cookie_jar.clear()
    back = await ask(env.client, restricted, accepted["cookie"])
    assert back["status"] == "accepted" and back["livekit"]["room"] == str(restricted.id)
    assert (await ask(env.client, restricted, waiting["cookie"]))["status"] == "waiting"
    assert len(env.livekit.calls_for("StartRoomCompositeEgress")) <= 3


@RAY_ONLY
async def test_a_host_gone_for_good_moves_its_rooms_to_the_others(env: Env) -> None:
    """A host killed without restart (ActorDiedError): its rooms are placed on the live hosts
    and serve there, recovered from the database and LiveKit; the host is used again once it
    exists again (the next front end to start creates it)."""
    from coordinator.engines.ray import remove_hosts

    directory: Any = env.client.app[keys.DIRECTORY]
    room, _, recording_id, _ = await started(env, "transcript")
    gone = directory.host_of(str(room.id))
    remove_hosts([gone], namespace=directory._namespace)
    snapshot, _ = await _serves_again(directory, str(room.id))
    assert directory.host_of(str(room.id)) != gone
    assert snapshot["recording"]["id"] == str(recording_id)
    assert snapshot["recording"]["status"] == "active"
    await directory.start()  # creates the missing host again (get_if_exists)
    await directory.refresh()
    assert directory.host_of(str(room.id)) == gone


async def _identities(directory: Any, room: str) -> list[str]:
    snapshot = await directory.call(room, Snapshot())
    return [p["identity"] for p in snapshot["participants"]]


@RAY_ONLY
async def test_webhooks_of_many_rooms_travel_to_their_host_together_and_apply_once(
    env: Env,
) -> None:
    """40 webhooks of 40 rooms at once: far fewer Ray calls than webhooks (a host's batch
    holds what came while its last one was out), every one applied once, a resend of one
    answered from its run."""
    directory: Any = env.client.app[keys.DIRECTORY]
    rooms = [str((await env_factory(env).room_with_role("owner"))[0].id) for _ in range(40)]
    for room in rooms:  # active on their hosts
        await directory.call(room, Snapshot())
    before = dict(directory.sent)
    replies = await asyncio.gather(
        *(directory.call(room, joined(room, "ada", 0)) for room in rooms)
    )
    calls = directory.sent["calls"] - before["calls"]
    assert directory.sent["batched_commands"] - before["batched_commands"] == 40
    assert calls <= 10, calls
    for room in rooms:
        assert await _identities(directory, room) == ["ada"]
    loop = asyncio.get_running_loop()
    again = joined(rooms[0], "bob", 1)
    first = await directory.send(rooms[0], "wh-again", again, loop.time() + 5)
    assert await directory.send(rooms[0], "wh-again", again, loop.time() + 5) == first
    assert await _identities(directory, rooms[0]) == ["ada", "bob"]
    assert replies == [replies[0]] * 40


@RAY_ONLY
async def test_a_slow_command_does_not_hold_back_the_others_sent_with_it(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch with one slow command (the snapshot of a room being activated waits for
    LiveKit's slow list of its participants) and ten quick ones: the host answers the ten
    at once and the slow one "pending"; the front end then awaits that one alone."""
    from coordinator.engines import ray as engine_module
    from coordinator.room import ApplyWebhook

    monkeypatch.setattr(engine_module, "BATCHED", (ApplyWebhook, Snapshot))
    directory: Any = env.client.app[keys.DIRECTORY]
    quick = [str((await env_factory(env).room_with_role("owner"))[0].id) for _ in range(10)]
    for room in quick:
        await directory.call(room, joined(room, "ada", 0))
    slow = str((await env_factory(env).room_with_role("owner"))[0].id)  # not active yet
    env.livekit.stall("ListParticipants", 1.0)
    loop = asyncio.get_running_loop()
    started_at = loop.time()
    calls = directory.sent["calls"]

    async def timed(room: str) -> tuple[float, Any]:
        snapshot = await directory.call(room, Snapshot())
        return loop.time() - started_at, snapshot

    (slow_took, _), *quick_ones = await asyncio.gather(timed(slow), *(timed(r) for r in quick))
    assert directory.sent["calls"] - calls <= 4  # they went together
    assert max(took for took, _ in quick_ones) < 0.6, quick_ones
    assert all([p["identity"] for p in s["participants"]] == ["ada"] for _, s in quick_ones)
    assert slow_took >= 1.0


@RAY_ONLY
async def test_webhooks_sent_together_to_a_host_that_forgot_its_settings_still_apply(
    env: Env,
) -> None:
    """The batch's host answers "configure" for each (it restarted with other settings): the
    front end configures it and sends them again; each applies once."""
    directory: Any = env.client.app[keys.DIRECTORY]
    rooms = [str((await env_factory(env).room_with_role("owner"))[0].id) for _ in range(12)]
    other = dataclasses.replace(env.settings, ray_hosts=env.settings.ray_hosts + 1)
    for name in directory.live_hosts():
        await directory._handle(name).configure.remote(other)
    await asyncio.gather(*(directory.call(room, joined(room, "ada", 0)) for room in rooms))
    for room in rooms:
        assert await _identities(directory, room) == ["ada"]
