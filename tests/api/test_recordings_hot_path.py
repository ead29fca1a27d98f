"""Recording start/stop on the request path (issue 12 point 4): one write per step, no re-read.

A start is two writes of one round trip each (the recording with its owner access, then
``active`` with the egress id), a stop one; neither reads the recording back. The egress's
webhooks that arrive before the egress id is written, or after the stop, are answered by the
process that started or stopped it (no read), and a late or replayed one never revives it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from livekit import api
from livekit.protocol.webhook import WebhookEvent
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError

from api import keys
from coordinator import recordings as lifecycle_module
from coordinator.room import Snapshot
from storage import recordings as store
from storage.engine import SQLiteSessionMaker, observe_statements
from tests.api import test_recordings_flow as flow
from tests.api.test_recordings_flow import Env, env_factory, recording_of, room_metadata, url
from tests.livekit_standin import sign_webhook
from tests.support.recordings import count_recording_accesses

env = flow.env  # the fixture: the app, the LiveKit stand-in, storage hook and notifications

WEBHOOK = "/api/v1.0/rooms/webhooks-livekit/"


@contextmanager
def statements(env: Env) -> Iterator[list[str]]:
    """The SQL the app runs meanwhile: on its engine, and on the raw drivers (the SQLite
    group commit's, prefixed ``group:``; PostgreSQL writes on the asyncpg pool)."""
    engine = env.client.app[keys.SESSIONMAKER].kw["bind"].sync_engine
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(" ".join(statement.split()))

    def raw(channel: str, statement: str) -> None:
        prefix = "group: " if channel == "group" else ""
        seen.append(prefix + " ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", record)
    try:
        with observe_statements(raw):
            yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def on_recordings(seen: list[str], *, postgresql: bool) -> list[str]:
    """The statements on recordings; on SQLite each must have gone through the group commit."""
    found = [s for s in seen if "meet_recording" in s]
    if not postgresql:
        assert all(s.startswith("group: ") for s in found), found
    return [s.removeprefix("group: ") for s in found]


async def test_start_and_stop_write_once_per_step_and_never_read_the_recording(env: Env) -> None:
    """PostgreSQL: the start's insert is one statement (recording and owner access), its
    ``active`` one more, the stop one, each its own round trip; SQLite: the same writes, as
    group-commit units. No SELECT of a recording on either request (the stop uses the
    actor's state)."""
    room, owner = await env_factory(env).room_with_role("owner")
    env.livekit.join(str(room.id), "speaker")
    await env.livekit.webhooks.drain()
    env.log_in(owner)
    env.livekit.webhook_url = None  # only the requests' own statements are counted
    postgresql = not isinstance(env.client.app[keys.SESSIONMAKER], SQLiteSessionMaker)
    with statements(env) as seen:
        response = await env.client.post(url(room, "start-recording"), json={"mode": "transcript"})
        assert response.status == 201
    start = on_recordings(seen, postgresql=postgresql)
    assert not [s for s in start if s.startswith("SELECT")], start
    inserts = [s for s in start if "INSERT" in s]
    updates = [s for s in start if s.startswith("UPDATE")]
    assert len(inserts) == (1 if postgresql else 2), start
    assert "meet_recording_access" in inserts[-1]
    assert len(updates) == 1 and len(start) == len(inserts) + 1, start
    [record] = await recording_of(env, room)
    assert record.status == "active" and record.worker_id
    async with env.client.app[keys.SESSIONMAKER]() as session:
        assert await store.owner_ids(session, record.id) == [owner.id]

    env.livekit.advance_egress(record.worker_id, api.EgressStatus.EGRESS_ACTIVE)
    with statements(env) as seen:
        response = await env.client.post(url(room, "stop-recording"))
        assert response.status == 200
    stop = on_recordings(seen, postgresql=postgresql)
    assert len(stop) == 1 and stop[0].startswith("UPDATE meet_recording "), stop
    [record] = await recording_of(env, room)
    assert record.status == "stopped"


async def test_the_insert_is_atomic_and_refuses_a_second_recording_in_flight(env: Env) -> None:
    """The one-statement insert keeps the partial unique index's word: a second recording
    in flight for the room, or the same id again, fails whole (no orphan access row)."""
    sessionmaker = env.client.app[keys.SESSIONMAKER]
    room, owner = await env_factory(env).room_with_role("owner")
    fields: dict[str, Any] = {"room_id": room.id, "mode": "transcript", "options": {}}
    first = await store.insert_recording(
        sessionmaker, recording_id=uuid.uuid4(), owner_id=owner.id, **fields
    )
    for recording_id in (uuid.uuid4(), first.id):
        with pytest.raises(IntegrityError):
            await store.insert_recording(
                sessionmaker, recording_id=recording_id, owner_id=owner.id, **fields
            )
    [only] = await recording_of(env, room)
    assert only.id == first.id and only.status == "initiated"
    async with sessionmaker() as session:
        assert await store.owner_ids(session, first.id) == [owner.id]
        other = await store.get_recording(session, uuid.uuid4())
    assert other is None
    assert await count_recording_accesses(sessionmaker, first.id) == 1


async def test_a_webhook_before_the_egress_id_is_written_needs_no_read(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The egress's first webhook often arrives while ``active`` is being written: the
    starting process names the recording (``initiated``, with its egress) without a read,
    where the database would not know the egress yet (and a reconciliation would follow)."""
    lifecycle = env.client.app[keys.RECORDINGS]
    reads: list[str] = []
    seen_meanwhile: list[Any] = []
    read_by_worker = store.read_by_worker
    write_status = store.write_status

    async def counted_read(source: Any, worker_id: str) -> Any:
        reads.append(worker_id)
        return await read_by_worker(source, worker_id)

    async def webhook_meanwhile(*args: Any, **kwargs: Any) -> None:
        if kwargs.get("worker_id"):
            seen_meanwhile.append(await lifecycle.by_egress(kwargs["worker_id"]))
        await write_status(*args, **kwargs)

    monkeypatch.setattr(store, "read_by_worker", counted_read)
    monkeypatch.setattr(store, "write_status", webhook_meanwhile)
    _, _, recording_id, egress_id = await flow.started(env, "transcript")
    [meanwhile] = seen_meanwhile
    assert meanwhile is not None and reads == []
    assert (meanwhile.id, meanwhile.status, meanwhile.egress_id) == (
        recording_id,
        "initiated",
        egress_id,
    )
    after = await lifecycle.by_egress(egress_id)  # written now: the database says
    assert reads == [egress_id]
    assert after is not None and (after.status, after.egress_id) == ("active", egress_id)
    assert env.livekit.calls_for("ListEgress") == []  # no reconciliation was needed


async def test_late_webhooks_of_a_stopped_egress_never_revive_it(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hostile: after the stop, validly signed but stale events of its egress (a late
    ``egress_updated`` ACTIVE, a replayed ``egress_started`` with a new id) are answered
    from what the stopping process knows: the recording stays stopped, the room metadata
    stays ``saving`` (read from the database, the stale ACTIVE turned it back to
    ``started``), and a new start works. What is remembered is bounded."""
    monkeypatch.setattr(lifecycle_module, "ENDED_KEPT", 1)
    room, _, recording_id, egress_id = await flow.started(env, "transcript")
    env.livekit.advance_egress(egress_id, api.EgressStatus.EGRESS_ACTIVE)
    await env.livekit.webhooks.drain()
    await room_metadata(env, room, recording_status="started")
    stale = {
        e.event: e
        for e in env.livekit.webhooks.events
        if e.HasField("egress_info") and e.egress_info.egress_id == egress_id
    }
    assert (await env.client.post(url(room, "stop-recording"))).status == 200
    await env.livekit.webhooks.drain()
    await room_metadata(env, room, recording_status="saving")

    directory = env.client.app[keys.DIRECTORY]
    for name in ("egress_updated", "egress_started"):
        await post_stale(env, stale[name])
    await directory.settle(str(room.id))  # type: ignore[union-attr]
    snapshot = await directory.call(str(room.id), Snapshot())
    assert snapshot["recording"] is None
    await still_saving(env, room)
    [record] = await recording_of(env, room)
    assert (record.id, record.status) == (recording_id, "stopped")

    # A second recording: the first egress is forgotten (bounded), the database answers,
    # and a stale event of it is still recognised as such.
    response = await env.client.post(url(room, "start-recording"), json={"mode": "transcript"})
    assert response.status == 201
    second = next(r for r in await recording_of(env, room) if r.id != recording_id)
    assert second.worker_id
    env.livekit.advance_egress(second.worker_id, api.EgressStatus.EGRESS_ACTIVE)
    assert (await env.client.post(url(room, "stop-recording"))).status == 200
    await env.livekit.webhooks.drain()
    await room_metadata(env, room, recording_status="saving")
    lifecycle = env.client.app[keys.RECORDINGS]
    assert list(lifecycle._ended) == [second.worker_id]
    forgotten = await lifecycle.by_egress(egress_id)
    assert forgotten is not None and forgotten.status == "stopped"
    await post_stale(env, stale["egress_updated"])
    await directory.settle(str(room.id))  # type: ignore[union-attr]
    await still_saving(env, room)


async def post_stale(env: Env, original: WebhookEvent) -> None:
    """``original`` again, with a new id (not deduplicated) and its egress back to where
    it was then, validly signed."""
    forged = WebhookEvent()
    forged.CopyFrom(original)
    forged.id = ""
    forged.egress_info.status = (
        api.EgressStatus.EGRESS_ACTIVE
        if original.event == "egress_updated"
        else api.EgressStatus.EGRESS_STARTING
    )
    body, headers = sign_webhook(forged, env.livekit.api_key, env.livekit.api_secret)
    response = await env.client.post(WEBHOOK, data=body, headers=headers)
    assert response.status == 200


async def still_saving(env: Env, room: Any) -> None:
    info = env.livekit.room(str(room.id))
    assert info is not None
    assert json.loads(info.metadata)["recording_status"] == "saving"
