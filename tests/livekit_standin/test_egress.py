"""Egress: validation, lifecycle (manual and auto), files, scripts and webhooks."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from google.protobuf.message import Message
from livekit import api

from tests.livekit_standin import EgressScript, EgressTiming, LiveKitStandin, WebhookSink

Status = api.EgressStatus
S3 = api.S3Upload(access_key="AK", secret="SK", session_token="T", bucket="bkt")


def _file(
    filepath: str = "",
    file_type: api.EncodedFileType = api.EncodedFileType.DEFAULT_FILETYPE,
    **storage: Message,
) -> api.EncodedFileOutput:
    output = api.EncodedFileOutput(file_type=file_type, filepath=filepath)
    for name, upload in storage.items():
        getattr(output, name).CopyFrom(upload)
    return output


def _room_request(room: str = "r", **kwargs: Any) -> api.RoomCompositeEgressRequest:
    kwargs.setdefault("file_outputs", [_file("rec/{room_name}", s3=S3)])
    return api.RoomCompositeEgressRequest(room_name=room, **kwargs)


def _room(fake: LiveKitStandin, name: str = "r") -> api.Room:
    room = fake.room(name)
    assert room is not None
    return room


async def _error(coro: Awaitable[object]) -> tuple[str, str, int]:
    with pytest.raises(api.TwirpError) as err:
        await coro
    return err.value.code, err.value.message, err.value.status


async def _until(predicate: Callable[[], bool], limit: float = 2.0) -> None:
    async with asyncio.timeout(limit):
        for _ in itertools.count():
            if predicate():
                return
            await asyncio.sleep(0.005)


async def test_manual_lifecycle_and_webhooks(
    livekit_standin: LiveKitStandin, lk: api.LiveKitAPI, sink: WebhookSink
) -> None:
    fake = livekit_standin
    fake.join("r", "alice")
    room = _room(fake)
    info = await lk.egress.start_room_composite_egress(_room_request(layout="speaker-light"))
    assert info.egress_id.startswith("EG_") and info.room_id == room.sid
    assert info.source_type == api.EgressSourceType.EGRESS_SOURCE_TYPE_WEB
    assert info.status == Status.EGRESS_STARTING and info.started_at == info.updated_at > 0
    s3 = info.room_composite.file_outputs[0].s3
    assert (s3.access_key, s3.secret, s3.bucket) == ("{access_key}", "{secret}", "bkt")
    assert s3.session_token == ""  # protocol's RedactUpload quirk (keyed on external id)
    assert info.file_results[0].filename == "rec/r"  # default file type: resolved when active
    assert _room(fake).active_recording

    fake.advance_egress(info.egress_id, Status.EGRESS_ACTIVE)
    active = fake.egress_info(info.egress_id)
    assert active.file_results[0].filename == "rec/r.mp4"
    ending = await lk.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
    assert (ending.status, ending.details) == (Status.EGRESS_ENDING, "End reason: StopEgress API")
    again = await lk.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
    assert again.status == Status.EGRESS_ENDING
    done = fake.advance_egress(info.egress_id, Status.EGRESS_COMPLETE, duration=12.5, size=4242)
    (result,) = done.file_results
    assert result.filename == "rec/r.mp4" and result.size == 4242
    assert result.duration == 12_500_000_000 == result.ended_at - result.started_at
    assert result.location == "https://bkt.s3.amazonaws.com/rec/r.mp4"
    assert done.file == result and done.ended_at >= done.started_at
    assert not _room(fake).active_recording
    assert await _error(lk.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))) == (
        "failed_precondition",
        "egress with status EGRESS_COMPLETE cannot be stopped",
        412,
    )

    await fake.webhooks.drain()
    egress_events = [e for e in sink.events if e.HasField("egress_info")]
    assert [e.event for e in egress_events] == [
        "egress_started",
        "egress_updated",
        "egress_updated",
        "egress_ended",
    ]
    assert [e.egress_info.status for e in egress_events] == [0, 1, 2, 3]
    assert egress_events[0].room == api.Room(sid=room.sid, name="r")
    started_body = next(r.body for r in sink.received if '"egress_started"' in r.body)
    assert '"status"' not in started_body  # STARTING is the zero value: omitted


async def test_file_type_and_filename_resolution(
    livekit_standin: LiveKitStandin, lk: api.LiveKitAPI
) -> None:
    fake = livekit_standin
    fake.create_room("r")
    audio = await lk.egress.start_room_composite_egress(
        _room_request(audio_only=True, file_outputs=[_file("a/{room_id}/", s3=S3)])
    )
    info = fake.advance_egress(audio.egress_id, Status.EGRESS_ACTIVE)
    room_sid = _room(fake).sid
    assert re.fullmatch(
        rf"a/{room_sid}/r-\d{{4}}-\d\d-\d\dT\d{{6}}\.ogg", info.file_results[0].filename
    )
    cases = [
        (_file("", api.EncodedFileType.MP4), r"r-\d{4}-\d\d-\d\dT\d{6}\.mp4"),
        (_file("x/{utc}.ogg", api.EncodedFileType.MP4), r"x/\d{17}\.mp4"),
        (_file("x/{time}", api.EncodedFileType.OGG), r"x/\d{4}-\d\d-\d\dT\d{6}\.ogg"),
        (_file("../../x/y.mp4", api.EncodedFileType.MP4), r"x/y\.mp4"),
    ]
    for output, pattern in cases:
        started = await lk.egress.start_room_composite_egress(_room_request(file_outputs=[output]))
        assert re.fullmatch(pattern, started.file_results[0].filename), output
        # An explicit file type fixes the name at start; it does not change later.
        if not output.filepath:
            await asyncio.sleep(1.01)  # the generated time part must not move either
        active = fake.advance_egress(started.egress_id, Status.EGRESS_ACTIVE)
        assert active.file_results[0].filename == started.file_results[0].filename


@pytest.mark.parametrize(
    ("storage", "expected"),
    [
        ({"s3": api.S3Upload(bucket="b", endpoint="minio:9000")}, "https://b.minio:9000/k.mp4"),
        (
            {"s3": api.S3Upload(bucket="b", endpoint="http://minio:9000", force_path_style=True)},
            "http://minio:9000/b/k.mp4",
        ),
        ({"gcp": api.GCPUpload(bucket="g")}, "https://g.storage.googleapis.com/k.mp4"),
        (
            {"azure": api.AzureBlobUpload(account_name="acct", container_name="c")},
            "https://acct.blob.core.windows.net/c/k.mp4",
        ),
        ({}, "k.mp4"),
    ],
)
async def test_locations(
    livekit_standin: LiveKitStandin, lk: api.LiveKitAPI, storage: dict[str, Message], expected: str
) -> None:
    livekit_standin.create_room("r")
    req = _room_request(file_outputs=[_file("k", api.EncodedFileType.MP4, **storage)])
    info = await lk.egress.start_room_composite_egress(req)
    livekit_standin.advance_egress(info.egress_id, Status.EGRESS_ACTIVE)
    done = livekit_standin.advance_egress(info.egress_id, Status.EGRESS_COMPLETE)
    assert done.file_results[0].location == expected


async def test_validation_errors(livekit_standin: LiveKitStandin, lk: api.LiveKitAPI) -> None:
    start = lk.egress.start_room_composite_egress
    assert await _error(start(_room_request("missing"))) == (
        "not_found",
        "requested room does not exist",
        404,
    )
    livekit_standin.create_room("r")
    prefix = "request has missing or invalid field: "
    cases = [
        (_room_request(audio_only=True, video_only=True), "audio_only and video_only"),
        (_room_request(file_outputs=[]), "output"),
        (_room_request(file_outputs=[_file("a"), _file("b")]), "multiple file outputs"),
        (_room_request(custom_base_url="ftp://x"), "template base url"),
    ]
    for req, field in cases:
        assert await _error(start(req)) == ("invalid_argument", prefix + field, 400)
    assert livekit_standin.egress.all_egresses() == []


async def test_stop_and_list_semantics(livekit_standin: LiveKitStandin, lk: api.LiveKitAPI) -> None:
    fake = livekit_standin
    fake.create_room("r")
    fake.create_room("other")
    first = await lk.egress.start_room_composite_egress(_room_request())
    second = await lk.egress.start_room_composite_egress(_room_request("other"))
    aborted = await lk.egress.stop_egress(api.StopEgressRequest(egress_id=first.egress_id))
    assert aborted.status == Status.EGRESS_ABORTED
    assert (aborted.error, aborted.error_code) == ("Stop called before pipeline could start", 412)
    assert await _error(lk.egress.stop_egress(api.StopEgressRequest(egress_id="EG_x"))) == (
        "not_found",
        "egress does not exist",
        404,
    )
    by_room = await lk.egress.list_egress(api.ListEgressRequest(room_name="r"))
    assert [i.egress_id for i in by_room.items] == [first.egress_id]
    active = await lk.egress.list_egress(api.ListEgressRequest(active=True))
    assert [i.egress_id for i in active.items] == [second.egress_id]
    one = await lk.egress.list_egress(api.ListEgressRequest(egress_id=second.egress_id))
    assert [i.egress_id for i in one.items] == [second.egress_id]
    missing = lk.egress.list_egress(api.ListEgressRequest(egress_id="EG_missing"))
    assert (await _error(missing))[0] == "not_found"
    layout = await lk.egress.update_layout(
        api.UpdateLayoutRequest(egress_id=second.egress_id, layout="grid")
    )
    assert layout.room_composite.layout == "grid"
    with pytest.raises(ValueError):
        fake.advance_egress(first.egress_id, Status.EGRESS_ACTIVE)
    with pytest.raises(ValueError):
        fake.advance_egress(second.egress_id, Status.EGRESS_STARTING)


async def test_room_close_ends_egress(livekit_standin: LiveKitStandin, lk: api.LiveKitAPI) -> None:
    fake = livekit_standin
    fake.join("r", "alice")
    active = await lk.egress.start_room_composite_egress(_room_request())
    starting = await lk.egress.start_room_composite_egress(_room_request())
    fake.advance_egress(active.egress_id, Status.EGRESS_ACTIVE)
    fake.close_room("r")
    ending = fake.egress_info(active.egress_id)
    assert (ending.status, ending.details) == (Status.EGRESS_ENDING, "End reason: Source closed")
    assert fake.egress_info(starting.egress_id).status == Status.EGRESS_ABORTED


async def test_auto_mode(session: aiohttp.ClientSession) -> None:
    timing = EgressTiming(start_delay=0.01, finalize_delay=0.01, max_duration=None)
    async with LiveKitStandin(egress_mode="auto", egress_timing=timing) as fake:
        lk = api.LiveKitAPI(fake.url, fake.api_key, fake.api_secret, session=session)
        fake.create_room("r")
        info = await lk.egress.start_room_composite_egress(_room_request())
        await asyncio.sleep(0.05)  # an empty room never gives the start signal
        assert fake.egress_info(info.egress_id).status == Status.EGRESS_STARTING
        fake.join("r", "alice")
        await _until(lambda: fake.egress_info(info.egress_id).status == Status.EGRESS_ACTIVE)
        await lk.egress.stop_egress(api.StopEgressRequest(egress_id=info.egress_id))
        await _until(lambda: fake.egress_info(info.egress_id).status == Status.EGRESS_COMPLETE)
        done = fake.egress_info(info.egress_id)
        assert done.file_results[0].size > 0 and done.file_results[0].location.startswith("https")
    timing = EgressTiming(start_delay=0.0, finalize_delay=0.0, max_duration=0.02)
    async with LiveKitStandin(egress_mode="auto", egress_timing=timing) as fake:
        lk = api.LiveKitAPI(fake.url, fake.api_key, fake.api_secret, session=session)
        fake.join("r", "alice")
        info = await lk.egress.start_room_composite_egress(_room_request())
        await _until(lambda: fake.egress_info(info.egress_id).status == Status.EGRESS_LIMIT_REACHED)
        final = fake.egress_info(info.egress_id)
        assert (final.error, final.error_code) == ("Session limit reached", 413)
        assert [e.event for e in fake.events if e.HasField("egress_info")] == [
            "egress_started",
            "egress_updated",
            "egress_ended",
        ]


async def test_scripted_failures(livekit_standin: LiveKitStandin, lk: api.LiveKitAPI) -> None:
    fake = livekit_standin
    fake.join("r", "alice")
    fake.script_next_egress(EgressScript.reject_start("unavailable", "no egress workers"))
    assert await _error(lk.egress.start_room_composite_egress(_room_request())) == (
        "unavailable",
        "no egress workers",
        503,
    )
    fake.script_next_egress(EgressScript.fail("upload failed", error_code=400, after=0.01))
    invalid = lk.egress.start_room_composite_egress(_room_request(file_outputs=[]))
    assert (await _error(invalid))[0] == "invalid_argument"  # the script waits for a real start
    failing = await lk.egress.start_room_composite_egress(_room_request())
    fake.advance_egress(failing.egress_id, Status.EGRESS_ACTIVE)
    await _until(lambda: fake.egress_info(failing.egress_id).status == Status.EGRESS_FAILED)
    failed = fake.egress_info(failing.egress_id)
    assert (failed.error, failed.error_code, failed.details) == (
        "upload failed",
        400,
        "End reason: Failure",
    )
    limited = await lk.egress.start_room_composite_egress(_room_request())
    fake.script_egress(limited.egress_id, EgressScript.limit_reached())
    await _until(lambda: fake.egress_info(limited.egress_id).status == Status.EGRESS_LIMIT_REACHED)
    assert fake.egress_info(limited.egress_id).file_results[0].location
    aborted = await lk.egress.start_room_composite_egress(_room_request())
    fake.script_egress(aborted.egress_id, EgressScript.abort())
    await _until(lambda: fake.egress_info(aborted.egress_id).status == Status.EGRESS_ABORTED)


async def test_track_composite_and_local_files(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    async with LiveKitStandin(output_dir=tmp_path) as fake:
        lk = api.LiveKitAPI(fake.url, fake.api_key, fake.api_secret, session=session)
        fake.join("r", "alice")
        mic = fake.publish("r", "alice")
        info = await lk.egress.start_track_composite_egress(
            api.TrackCompositeEgressRequest(
                room_name="r", audio_track_id=mic.sid, file_outputs=[_file("local/{room_name}")]
            )
        )
        assert info.source_type == api.EgressSourceType.EGRESS_SOURCE_TYPE_SDK
        fake.advance_egress(info.egress_id, Status.EGRESS_ACTIVE)
        done = fake.advance_egress(info.egress_id, Status.EGRESS_COMPLETE, duration=1.0)
        (result,) = done.file_results
        assert result.filename == "local/r.ogg"
        written = tmp_path / "local" / "r.ogg"
        assert result.location == str(written) and written.stat().st_size == result.size


async def test_per_request_webhook_config(
    livekit_standin: LiveKitStandin, lk: api.LiveKitAPI, sink: WebhookSink
) -> None:
    fake = livekit_standin
    fake.create_room("r")
    async with WebhookSink(fake.api_key, fake.api_secret) as extra:
        req = _room_request(webhooks=[api.WebhookConfig(url=extra.url, signing_key=fake.api_key)])
        info = await lk.egress.start_room_composite_egress(req)
        await fake.webhooks.drain()
        assert [e.egress_info.egress_id for e in extra.events] == [info.egress_id]
        assert "egress_started" in sink.names()
