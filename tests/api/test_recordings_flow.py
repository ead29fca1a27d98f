"""Recordings end to end: LiveKit stand-in, summary-service stand-in, SMTP server on loopback."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from livekit import api
from sqlalchemy import select

from api import keys
from api.app import create_app
from coordinator.settings import (
    EmailSettings,
    LiveKitSettings,
    OutboxSettings,
    S3Settings,
    Secret,
    Settings,
    SummarySettings,
)
from storage import outbox as outbox_store
from storage import recordings as recording_store
from storage.models import Recording, utcnow
from storage.records import RoomRecord, UserRecord
from tests.conftest import ENGINES, make_settings
from tests.livekit_standin import LiveKitStandin
from tests.smtp_server import SmtpServer
from tests.summary_standin import SummaryStandin
from tests.summary_standin.server import DEFAULT_TOKEN
from tests.support.factories import Factory, login

Client = TestClient[Any, Any]
HOOK_TOKEN = "storage-hook-token-" + "t" * 30
BUCKET = "meet-media-storage"


@dataclass
class Env:
    client: Client
    settings: Settings
    livekit: LiveKitStandin
    summary: SummaryStandin
    smtp: SmtpServer
    make_client: Callable[..., Awaitable[Client]]

    def log_in(self, user: UserRecord, client: Client | None = None) -> None:
        target = client or self.client
        login(target, target.app[keys.SESSIONS], user)


def recording_settings(
    database_url: str,
    standin: LiveKitStandin,
    summary_service: SummaryStandin,
    smtp: SmtpServer,
    **overrides: Any,
) -> Settings:
    values: dict[str, Any] = {
        "livekit": LiveKitSettings(
            api_key=standin.api_key,
            api_secret=Secret(standin.api_secret),
            api_url=standin.url,
            timeout_seconds=1.0,
        ),
        "recording_enable": True,
        "recording_storage_event_enable": True,
        "recording_storage_event_token": Secret(HOOK_TOKEN),
        "s3": S3Settings(
            endpoint_url="http://127.0.0.1:9000",
            bucket=BUCKET,
            access_key="minio-access",
            secret_key=Secret("minio-secret-key-" + "m" * 20),
        ),
        "summary": SummarySettings(
            version=2, endpoint=summary_service.v2_url, api_token=Secret(DEFAULT_TOKEN)
        ),
        "email": EmailSettings(host=smtp.host, port=smtp.port, from_email="meet@example.com"),
        "outbox": OutboxSettings(
            base_delay_seconds=0.05, max_delay_seconds=0.2, poll_seconds=0.05, max_attempts=50
        ),
        "recording_download_base_url": "https://meet.example.com/recording",
    }
    values.update(overrides)
    return make_settings(database_url, **values)


@pytest.fixture
async def env(
    aiohttp_client: Any,
    database_url: str,
    livekit_standin: LiveKitStandin,
    summary_standin: SummaryStandin,
    smtp_server: SmtpServer,
) -> Env:
    async def make_client(**overrides: Any) -> Client:
        settings = recording_settings(
            database_url, livekit_standin, summary_standin, smtp_server, **overrides
        )
        client: Client = await aiohttp_client(create_app(settings))
        livekit_standin.webhook_url = str(client.make_url("/api/v1.0/rooms/webhooks-livekit/"))
        return client

    client = await make_client()
    return Env(
        client,
        client.app[keys.SETTINGS],
        livekit_standin,
        summary_standin,
        smtp_server,
        make_client,
    )


def url(room: RoomRecord, action: str) -> str:
    return f"/api/v1.0/rooms/{room.id}/{action}/"


def storage_event(recording_id: uuid.UUID, ext: str) -> dict[str, Any]:
    content_type = "audio/ogg" if ext == "ogg" else "video/mp4"
    return {
        "Records": [
            {
                "s3": {
                    "bucket": {"name": BUCKET},
                    "object": {
                        "key": f"recordings%2F{recording_id}.{ext}",
                        "contentType": content_type,
                    },
                }
            }
        ]
    }


async def recording_of(env: Env, room: RoomRecord) -> Any:
    async with env.client.app[keys.SESSIONMAKER]() as session:
        rows = await session.execute(select(Recording).where(Recording.room_id == room.id))
        return [recording_store.recording_record(r) for r in rows.scalars()]


async def wait_status(
    env: Env, recording_id: uuid.UUID, status: str, max_wait: float = 5.0
) -> None:
    deadline = asyncio.get_running_loop().time() + max_wait
    while True:
        async with env.client.app[keys.SESSIONMAKER]() as session:
            record = await recording_store.get_recording(session, recording_id)
        if record is not None and record.status == status:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"recording is {record.status if record else None}, not {status}")
        await asyncio.sleep(0.05)


async def started(
    env: Env, mode: str, **room: Any
) -> tuple[RoomRecord, UserRecord, uuid.UUID, str]:
    room_record, owner = await env_factory(env).room_with_role("owner", **room)
    env.livekit.join(str(room_record.id), "speaker")
    await env.livekit.webhooks.drain()
    env.log_in(owner)
    response = await env.client.post(url(room_record, "start-recording"), json={"mode": mode})
    assert response.status == 201, await response.text()
    assert await response.json() == {
        "message": f"Recording successfully started for room {room_record.slug}"
    }
    [record] = await recording_of(env, room_record)
    assert record.status == "active" and record.worker_id
    return room_record, owner, record.id, record.worker_id


async def room_metadata(env: Env, room: RoomRecord, **expected: Any) -> dict[str, Any]:
    """The LiveKit room metadata once it holds ``expected`` (merges run after the reply)."""
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        info = env.livekit.room(str(room.id))
        metadata: dict[str, Any] = json.loads(info.metadata) if info and info.metadata else {}
        if all(metadata.get(k, "<absent>") == v for k, v in expected.items()):
            return metadata
        assert asyncio.get_running_loop().time() < deadline, metadata
        await asyncio.sleep(0.02)


def env_factory(env: Env) -> Factory:
    return Factory(env.client.app[keys.SESSIONMAKER])


# -- end to end ------------------------------------------------------------------------------


@ENGINES
async def test_transcript_end_to_end(env: Env) -> None:
    room, owner, recording_id, egress_id = await started(env, "transcript")
    call = env.livekit.calls_for("StartRoomCompositeEgress")[0]
    request: Any = call.request
    assert request.audio_only is True and request.room_name == str(room.id)
    output = request.file_outputs[0]
    assert output.filepath == f"recordings/{recording_id}.ogg"
    assert output.file_type == api.EncodedFileType.OGG
    assert output.s3.bucket == BUCKET and output.s3.force_path_style
    metadata = await room_metadata(env, room, recording_status="starting")
    assert metadata == {"recording_mode": "transcript", "recording_status": "starting"}

    env.livekit.advance_egress(egress_id, api.EgressStatus.EGRESS_ACTIVE)
    await env.livekit.webhooks.drain()
    await room_metadata(env, room, recording_status="started")

    response = await env.client.post(url(room, "stop-recording"))
    assert response.status == 200
    assert await response.json() == {"message": f"Recording stopped for room {room.slug}."}
    await wait_status(env, recording_id, "stopped")
    env.livekit.advance_egress(egress_id, api.EgressStatus.EGRESS_COMPLETE, duration=5)
    await env.livekit.webhooks.drain()
    await room_metadata(env, room, recording_status="<absent>", recording_mode="<absent>")

    hook = await env.client.post(
        "/api/v1.0/recordings/storage-hook/",
        json=storage_event(recording_id, "ogg"),
        headers={"Authorization": f"Bearer {HOOK_TOKEN}"},
    )
    assert hook.status == 200 and await hook.json() == {"message": "Event processed."}
    await wait_status(env, recording_id, "notification_succeeded")
    [payload] = env.summary.payloads()
    assert payload["user_sub"] == owner.sub and payload["user_email"] == owner.email
    assert f"recordings/{recording_id}.ogg" in payload["cloud_storage_url"]
    assert len(env.summary.accepted()) == 1
    async with env.client.app[keys.SESSIONMAKER]() as session:
        record = await recording_store.get_recording(session, recording_id)
    assert record is not None and record.external_process_id
    # A redelivered storage event is refused: the recording is already saved.
    again = await env.client.post(
        "/api/v1.0/recordings/storage-hook/",
        json=storage_event(recording_id, "ogg"),
        headers={"Authorization": f"Bearer {HOOK_TOKEN}"},
    )
    assert again.status == 403
    assert len(env.summary.calls) == 1


@ENGINES
async def test_screen_recording_with_egress_ended_fallback_and_owner_email(env: Env) -> None:
    await env.client.close()  # one dispatcher at a time: the replaced app stops its own
    client = await env.make_client(recording_storage_event_enable=False)
    env.client = client
    room, owner, recording_id, egress_id = await started(env, "screen_recording")
    request: Any = env.livekit.calls_for("StartRoomCompositeEgress")[0].request
    assert request.layout == "speaker-light" and not request.audio_only
    assert request.file_outputs[0].filepath == f"recordings/{recording_id}.mp4"
    env.livekit.advance_egress(egress_id, api.EgressStatus.EGRESS_ACTIVE)
    assert (await client.post(url(room, "stop-recording"))).status == 200
    env.livekit.advance_egress(egress_id, api.EgressStatus.EGRESS_COMPLETE)
    await env.livekit.webhooks.drain()
    await wait_status(env, recording_id, "notification_succeeded")
    [mail] = await env.smtp.wait_for(1)
    assert mail.subject == "Your recording is ready"
    assert owner.email in mail.rcpt_tos
    assert f"https://meet.example.com/recording/{recording_id}" in (mail.text or "")
    assert env.summary.calls == []  # no transcription asked


@ENGINES
async def test_limit_reached_stops_notifies_and_completes(env: Env) -> None:
    await env.client.close()  # one dispatcher at a time: the replaced app stops its own
    client = await env.make_client(recording_storage_event_enable=False)
    env.client = client
    _room, _, recording_id, egress_id = await started(env, "transcript")
    env.livekit.advance_egress(egress_id, api.EgressStatus.EGRESS_ACTIVE)
    env.livekit.advance_egress(egress_id, api.EgressStatus.EGRESS_LIMIT_REACHED)
    await env.livekit.webhooks.drain()
    await wait_status(env, recording_id, "notification_succeeded")
    messages = [json.loads(p.data) for p in env.livekit.data_packets]
    assert {"type": "transcriptionLimitReached"} in messages


async def test_notification_survives_outage_and_restarts_and_is_delivered_once(
    env: Env,
) -> None:
    room, _, recording_id, egress_id = await started(env, "transcript")
    env.livekit.advance_egress(egress_id, api.EgressStatus.EGRESS_ACTIVE)
    assert (await env.client.post(url(room, "stop-recording"))).status == 200
    await env.summary.go_down()
    hook = await env.client.post(
        "/api/v1.0/recordings/storage-hook/",
        json=storage_event(recording_id, "ogg"),
        headers={"Authorization": f"Bearer {HOOK_TOKEN}"},
    )
    assert hook.status == 200

    async def attempts() -> int:
        async with env.client.app[keys.SESSIONMAKER]() as session:
            messages = await outbox_store.list_messages(session)
        return max((m.attempts for m in messages), default=0)

    for _ in range(3):  # three process lifetimes, each failing at least once
        deadline = asyncio.get_running_loop().time() + 5
        before = await attempts()
        while await attempts() <= before:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
        await env.client.close()  # the process stops…
        env.client = await env.make_client()  # …and a new one starts on the same database
    assert (await attempts()) >= 3
    await env.summary.come_back()
    await wait_status(env, recording_id, "notification_succeeded")
    await asyncio.sleep(0.3)  # leave time for any duplicate to show up
    assert len(env.summary.accepted()) == 1
    assert len(env.summary.unique_payloads()) == 1


async def test_v2_answer_without_job_id_is_a_failed_attempt(env: Env) -> None:
    room, _, recording_id, egress_id = await started(env, "transcript")
    env.livekit.advance_egress(egress_id, api.EgressStatus.EGRESS_ACTIVE)
    await env.client.post(url(room, "stop-recording"))
    env.summary.reply_without_job_id(times=2)
    await env.client.post(
        "/api/v1.0/recordings/storage-hook/",
        json=storage_event(recording_id, "ogg"),
        headers={"Authorization": f"Bearer {HOOK_TOKEN}"},
    )
    await wait_status(env, recording_id, "notification_succeeded")
    assert len(env.summary.calls) == 3


async def test_notifications_give_up_after_the_limit_and_show_it(env: Env) -> None:
    await env.client.close()  # one dispatcher at a time: the replaced app stops its own
    client = await env.make_client(
        outbox=OutboxSettings(
            base_delay_seconds=0.01, max_delay_seconds=0.02, poll_seconds=0.02, max_attempts=3
        )
    )
    env.client = client
    room, _, recording_id, egress_id = await started(env, "transcript")
    env.livekit.advance_egress(egress_id, api.EgressStatus.EGRESS_ACTIVE)
    await client.post(url(room, "stop-recording"))
    env.summary.reply_error(500, times=10)
    await client.post(
        "/api/v1.0/recordings/storage-hook/",
        json=storage_event(recording_id, "ogg"),
        headers={"Authorization": f"Bearer {HOOK_TOKEN}"},
    )
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        async with client.app[keys.SESSIONMAKER]() as session:
            failed = await outbox_store.list_messages(session, status="failed")
        if failed:
            break
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)
    assert failed[0].attempts == 3 and "500" in (failed[0].last_error or "")
    await wait_status(env, recording_id, "saved")


# -- start and stop rules --------------------------------------------------------------------


async def test_1000_concurrent_starts_make_exactly_one_recording(env: Env) -> None:
    factory = env_factory(env)
    room, owner = await factory.room_with_role("owner")
    admins = [owner]
    for _ in range(3):
        admin = await factory.user()
        await factory.access(room, admin, "administrator")
        admins.append(admin)
    env.livekit.join(str(room.id), "speaker")
    clients = []
    # A command waits in the room's queue at most one LiveKit timeout, then answers 503. The
    # 1,000 requests, the app and the stand-in share this test's one event loop: on a loaded
    # CI machine (the other worker busy) they took more than 5 s once (101 answered 503).
    livekit = replace(env.settings.livekit, timeout_seconds=20.0)
    for admin in admins:
        client = await env.make_client(livekit=livekit)
        env.log_in(admin, client)
        clients.append(client)
    responses = await asyncio.gather(
        *(
            clients[i % len(clients)].post(
                url(room, "start-recording"), json={"mode": "transcript"}
            )
            for i in range(1000)
        )
    )
    statuses = [r.status for r in responses]
    assert statuses.count(201) == 1
    assert statuses.count(409) == 999
    conflict = next(r for r in responses if r.status == 409)
    assert await conflict.json() == {
        "error": f"A recording is already in progress for room {room.slug}"
    }
    assert len(env.livekit.calls_for("StartRoomCompositeEgress")) == 1
    assert len(await recording_of(env, room)) == 1


@ENGINES
@pytest.mark.parametrize(("code", "status"), [("internal", 502), ("unavailable", 503)])
async def test_start_failure_is_502_or_503_and_frees_the_room(
    env: Env, code: str, status: int
) -> None:
    from tests.livekit_standin import EgressScript

    room, owner = await env_factory(env).room_with_role("owner")
    env.livekit.join(str(room.id), "speaker")
    env.log_in(owner)
    env.livekit.script_next_egress(EgressScript.reject_start(code, "no egress worker"))
    response = await env.client.post(url(room, "start-recording"), json={"mode": "transcript"})
    assert response.status == status
    assert await response.json() == {"error": f"Recording failed to start for room {room.slug}"}
    [failed] = await recording_of(env, room)
    assert failed.status == "failed_to_start"
    response = await env.client.post(url(room, "start-recording"), json={"mode": "transcript"})
    assert response.status == 201


@ENGINES
async def test_stop_rules(env: Env) -> None:
    room, owner = await env_factory(env).room_with_role("owner")
    env.log_in(owner)
    response = await env.client.post(url(room, "stop-recording"))
    assert response.status == 404
    assert await response.json() == {"detail": "No active recording found for this room."}


@pytest.mark.parametrize(
    ("fault", "status"),
    [("error", 502), ("http", 502), ("stall", 503), ("drop", 503), ("unavailable", 503)],
)
async def test_stop_failures_map_like_every_livekit_failure(
    env: Env, fault: str, status: int
) -> None:
    """502 when LiveKit answered an error, 503 when unreachable or timed out (DESIGN §5),
    with the contract's body; the recording is marked failed_to_stop (fails before: 500)."""
    room, _, recording_id, _egress_id = await started(env, "transcript")
    if fault == "error":
        env.livekit.fail("StopEgress", "internal", "boom", status=500)
    elif fault == "http":
        env.livekit.http_error("StopEgress", 500)
    elif fault == "stall":
        env.livekit.stall("StopEgress", 3.0)  # beyond the 1 s LiveKit timeout
    elif fault == "drop":
        env.livekit.drop("StopEgress")
    else:
        env.livekit.fail("StopEgress", "unavailable", "egress service down")
    started_at = asyncio.get_running_loop().time()
    response = await env.client.post(url(room, "stop-recording"))
    assert response.status == status
    assert await response.json() == {"error": f"Recording failed to stop for room {room.slug}"}
    assert asyncio.get_running_loop().time() - started_at < 2.0
    await wait_status(env, recording_id, "failed_to_stop")


@ENGINES
async def test_stop_of_a_starting_egress_is_aborted(env: Env) -> None:
    room, _, recording_id, _ = await started(env, "transcript")
    response = await env.client.post(url(room, "stop-recording"))  # still EGRESS_STARTING
    assert response.status == 200
    await wait_status(env, recording_id, "aborted")


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"mode": "video"},
        {"mode": "transcript", "options": {"unknown": 1}},
        {"mode": "transcript", "options": {"transcribe": "maybe"}},
        {"mode": "transcript", "options": {"original_mode": "other"}},
        [],
    ],
)
async def test_start_body_is_validated_first(env: Env, payload: Any) -> None:
    room, member = await env_factory(env).room_with_role("member")
    env.log_in(member)  # a member would get 403, but the body is checked first
    response = await env.client.post(url(room, "start-recording"), json=payload)
    assert response.status == 400
    assert await response.json() == {"detail": "Invalid request."}
    assert await recording_of(env, room) == []


async def test_start_options_are_stored(env: Env) -> None:
    room, owner = await env_factory(env).room_with_role("owner")
    env.livekit.join(str(room.id), "speaker")
    env.log_in(owner)
    options = {"language": "fr", "transcribe": True, "original_mode": "transcript"}
    payload = {"mode": "screen_recording", "options": {**options, "collect_metadata": None}}
    response = await env.client.post(url(room, "start-recording"), json=payload)
    assert response.status == 201
    [record] = await recording_of(env, room)
    assert record.options == options
    await room_metadata(env, room, recording_mode="transcript")


@pytest.mark.parametrize(("role", "status"), [(None, 403), ("member", 403), ("administrator", 201)])
async def test_start_permissions(env: Env, role: str | None, status: int) -> None:
    room, user = await env_factory(env).room_with_role(role)
    env.livekit.join(str(room.id), "speaker")
    assert (
        await env.client.post(url(room, "start-recording"), json={"mode": "transcript"})
    ).status == 401
    env.log_in(user)
    response = await env.client.post(url(room, "start-recording"), json={"mode": "transcript"})
    assert response.status == status


async def test_feature_flag_off_is_404(env: Env) -> None:
    await env.client.close()  # one dispatcher at a time: the replaced app stops its own
    client = await env.make_client(recording_enable=False, recording_storage_event_enable=False)
    env.client = client
    room, owner = await env_factory(env).room_with_role("owner")
    env.log_in(owner, client)
    for action in ("start-recording", "stop-recording"):
        response = await client.post(url(room, action), json={"mode": "transcript"})
        assert response.status == 404
    hook = await client.post("/api/v1.0/recordings/storage-hook/", json={})
    assert hook.status == 404


# -- storage hook ----------------------------------------------------------------------------


@ENGINES
async def test_storage_hook_auth_and_ignored_events(env: Env) -> None:
    hook = "/api/v1.0/recordings/storage-hook/"
    event = storage_event(uuid.uuid4(), "ogg")
    assert (await env.client.post(hook, json=event)).status == 401
    bad = await env.client.post(hook, json=event, headers={"Authorization": "Bearer wrong"})
    assert bad.status == 401
    auth = {"Authorization": f"bearer   {HOOK_TOKEN}"}
    assert (await env.client.post(hook, json=event, headers=auth)).status == 404
    other_bucket = json.loads(json.dumps(event).replace(BUCKET, "other"))
    response = await env.client.post(hook, json=other_bucket, headers=auth)
    assert response.status == 403
    assert await response.json() == {"detail": "Invalid bucket specified."}
    unrelated = json.loads(json.dumps(event).replace("recordings%2F", "avatars%2F"))
    response = await env.client.post(hook, json=unrelated, headers=auth)
    assert response.status == 200 and await response.json() == {"message": "Notification ignored."}
    response = await env.client.post(hook, data=b"{not json", headers=auth)
    assert response.status == 403


# -- reconciliation --------------------------------------------------------------------------


@ENGINES
async def test_reconciliation_repairs_drift_from_lost_webhooks(env: Env) -> None:
    await env.client.close()  # one dispatcher at a time: the replaced app stops its own
    client = await env.make_client(recording_storage_event_enable=False)
    env.client = client
    room, _, recording_id, egress_id = await started(env, "transcript")
    env.livekit.webhook_url = None  # from now on webhooks are lost
    env.livekit.advance_egress(egress_id, api.EgressStatus.EGRESS_ACTIVE)
    env.livekit.advance_egress(egress_id, api.EgressStatus.EGRESS_LIMIT_REACHED)
    # A second room whose recording never got an egress (stuck in initiated).
    stuck_room = await env_factory(env).room()
    stuck = Recording(
        room_id=stuck_room.id,
        status="initiated",
        mode="transcript",
        created_at=utcnow() - timedelta(hours=1),
    )
    async with client.app[keys.SESSIONMAKER].begin() as session:
        session.add(stuck)
    repairs = await client.app[keys.RECONCILER].run_once()
    # The stuck room's actor resolves it as it activates (the pass's own check then finds
    # nothing left to repair).
    assert repairs.pop(str(stuck_room.id), "failed_to_start") == "failed_to_start"
    assert repairs == {str(room.id): "stopped"}
    await wait_status(env, stuck.id, "failed_to_start")
    await wait_status(env, recording_id, "notification_succeeded")  # completed by the fallback
    assert await client.app[keys.RECONCILER].run_once() == {}


# -- invitations -----------------------------------------------------------------------------


async def test_invitations_go_through_the_outbox(env: Env) -> None:
    room, owner = await env_factory(env).room_with_role("owner")
    env.log_in(owner)
    emails = ["a@example.com", "b@example.com", "a@example.com", "A@example.com"]
    response = await env.client.post(url(room, "invite"), json={"emails": emails})
    assert response.status == 200
    assert await response.json() == {"status": "success", "message": "invitations sent"}
    [mail] = await env.smtp.wait_for(1)
    assert sorted(mail.rcpt_tos) == ["A@example.com", "a@example.com", "b@example.com"]
    assert mail.subject == f"Video call in progress: {owner.email} is waiting for you to connect"
    assert "bcc" not in {k.lower() for k in mail.message.keys()}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({}, {"emails": ["This field is required."]}),
        ({"emails": []}, {"emails": ["This list may not be empty."]}),
        (
            {"emails": ["ok@example.com", "nope"]},
            {"emails": {"1": ["Enter a valid email address."]}},
        ),
    ],
)
async def test_invitation_validation(env: Env, payload: Any, expected: Any) -> None:
    room, owner = await env_factory(env).room_with_role("owner")
    env.log_in(owner)
    response = await env.client.post(url(room, "invite"), json=payload)
    assert response.status == 400 and await response.json() == expected


async def test_invitation_needs_privileges(env: Env) -> None:
    room, member = await env_factory(env).room_with_role("member")
    env.log_in(member)
    response = await env.client.post(url(room, "invite"), json={"emails": ["a@example.com"]})
    assert response.status == 403
    assert await response.json() == {
        "detail": "You must have privileges on room to perform this action."
    }


async def test_operators_see_failed_notifications_and_metrics(env: Env) -> None:
    factory = env_factory(env)
    room, owner = await factory.room_with_role("owner")
    env.log_in(owner)
    await env.client.close()  # one dispatcher at a time: the replaced app stops its own
    client = await env.make_client(summary=SummarySettings(version=2))  # not configured
    env.client = client
    factory = env_factory(env)
    env.log_in(owner)
    async with client.app[keys.SESSIONMAKER].begin() as session:
        recording = Recording(room_id=room.id, status="stopped", mode="transcript")
        session.add(recording)
        await session.flush()
        from storage.models import RecordingAccess

        session.add(RecordingAccess(recording_id=recording.id, user_id=owner.id, role="owner"))
    assert await client.app[keys.RECORDINGS].save(recording.id) == "saved"
    assert (await client.get("/api/v1.0/outbox/")).status == 403
    staff = await factory.user(is_staff=True)
    env.log_in(staff)
    body = await (await client.get("/api/v1.0/outbox/?status=failed")).json()
    assert body["counts"] == {"failed": 1}
    [message] = body["messages"]
    assert message["kind"] == "summary"
    assert message["last_error"] == "summary service not configured"
    metrics = await (await client.get("/metrics")).text()
    assert 'meet_outbox_messages{status="failed"} 1.0' in metrics
    assert "meet_active_rooms" in metrics
    await wait_status(env, recording.id, "saved")
