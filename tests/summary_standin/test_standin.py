"""The summary-service stand-in over real HTTP."""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.summary_standin import DEFAULT_TOKEN, Reply, SummaryStandin
from tests.summary_standin.plugin import summary_standin_fixture  # noqa: F401

AUTH = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
PAYLOAD = {"user_sub": "sub-1", "cloud_storage_url": "http://minio/x.ogg"}


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def post(
    session: aiohttp.ClientSession,
    url: str,
    payload: Any = PAYLOAD,
    headers: dict[str, str] | None = None,
    total: float = 5.0,
) -> tuple[int, Any]:
    async with session.post(
        url,
        json=payload,
        headers=AUTH if headers is None else headers,
        timeout=aiohttp.ClientTimeout(total=total),
    ) as resp:
        return resp.status, await resp.json()


async def test_v1_default_reply_and_recording(
    summary_standin: SummaryStandin, session: aiohttp.ClientSession
) -> None:
    headers = {**AUTH, "Idempotency-Key": "k-1", "X-Extra": "1"}
    status, body = await post(session, summary_standin.v1_url, headers=headers)
    assert status == 200
    assert body["message"] == "Task created" and isinstance(body["id"], str)
    [call] = summary_standin.calls
    assert (call.api, call.method, call.path) == ("v1", "POST", "/api/v1/tasks/")
    assert call.json == PAYLOAD and call.json_valid and call.authorized
    assert call.idempotency_key == "k-1"
    assert call.headers["x-extra"] == "1"
    assert call.headers["Content-Type"] == "application/json"
    assert (call.status, call.response, call.reply) == (200, body, "default")
    assert call.job_id is None


async def test_v2_default_reply_has_a_job_id(
    summary_standin: SummaryStandin, session: aiohttp.ClientSession
) -> None:
    status, body = await post(session, summary_standin.v2_url)
    assert status == 200
    assert body["type"] == "transcript" and body["status"] == "pending"
    assert summary_standin.calls[0].job_id == body["job_id"]
    # without the trailing slash too
    status, _ = await post(session, summary_standin.v2_url.rstrip("/"))
    assert status == 200
    assert [c.path for c in summary_standin.calls] == [
        "/api/v2/async-jobs/transcribe/",
        "/api/v2/async-jobs/transcribe",
    ]


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "Not authenticated"),
        ({"Authorization": "Bearer wrong"}, "Invalid token"),
        ({"Authorization": DEFAULT_TOKEN}, "Invalid token"),
    ],
)
async def test_unauthorised_calls_are_recorded_and_refused(
    summary_standin: SummaryStandin,
    session: aiohttp.ClientSession,
    headers: dict[str, str],
    detail: str,
) -> None:
    summary_standin.reply_error(500)
    assert await post(session, summary_standin.v2_url, headers=headers) == (
        401,
        {"detail": detail},
    )
    assert not summary_standin.calls[0].authorized
    assert summary_standin.accepted() == [] and summary_standin.payloads() == []
    # the scripted reply was not consumed
    assert (await post(session, summary_standin.v2_url))[0] == 500


async def test_scripted_replies_in_order(
    summary_standin: SummaryStandin, session: aiohttp.ClientSession
) -> None:
    summary_standin.reply_job("job-1")
    summary_standin.reply_without_job_id()
    summary_standin.reply_error(502, {"detail": "bad gateway"})
    summary_standin.fail_next(2)
    summary_standin.reply_job(times=2)
    summary_standin.add_reply(Reply.json({"job_id": 5}, status=201))
    url = summary_standin.v2_url
    results = [await post(session, url) for _ in range(8)]
    assert results[:5] == [
        (200, {"job_id": "job-1"}),
        (200, {"message": "Task created"}),
        (502, {"detail": "bad gateway"}),
        (503, {"detail": "Service Unavailable"}),
        (503, {"detail": "Service Unavailable"}),
    ]
    fresh = [body["job_id"] for _, body in results[5:7]]
    assert len(set(fresh)) == 2 and all(isinstance(job, str) for job in fresh)
    assert results[7] == (201, {"job_id": 5})
    assert (await post(session, url))[1]["status"] == "pending"  # back to the default
    assert [call.reply for call in summary_standin.calls] == [
        "job",
        "body",
        "error",
        "error",
        "error",
        "job",
        "job",
        "body",
        "default",
    ]


async def test_invalid_json_is_recorded_and_refused(
    summary_standin: SummaryStandin, session: aiohttp.ClientSession
) -> None:
    async with session.post(summary_standin.v1_url, data=b"{not json", headers=AUTH) as resp:
        assert resp.status == 422
    [call] = summary_standin.calls
    assert call.body == b"{not json" and not call.json_valid and call.json is None


async def test_stall_then_answer(
    summary_standin: SummaryStandin, session: aiohttp.ClientSession
) -> None:
    summary_standin.stall(0.2)
    started = time.monotonic()
    status, body = await post(session, summary_standin.v2_url)
    assert status == 200 and "job_id" in body
    assert time.monotonic() - started >= 0.2
    assert summary_standin.calls[0].reply == "stall"


async def test_stall_beyond_the_client_timeout(
    summary_standin: SummaryStandin, session: aiohttp.ClientSession
) -> None:
    summary_standin.stall(30)
    with pytest.raises(TimeoutError):
        await post(session, summary_standin.v2_url, total=0.2)
    await summary_standin.wait_for_calls(1)
    assert summary_standin.calls[0].reply == "pending"


async def test_drop(summary_standin: SummaryStandin, session: aiohttp.ClientSession) -> None:
    summary_standin.drop()
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post(session, summary_standin.v2_url)
    assert summary_standin.calls[0].status is None
    assert summary_standin.calls[0].reply == "drop"
    assert (await post(session, summary_standin.v2_url))[0] == 200


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            assert exc.errno == errno.EADDRINUSE
            return False
        return True


async def test_go_down_refuses_connections_and_comes_back_on_the_same_port(
    summary_standin: SummaryStandin, session: aiohttp.ClientSession
) -> None:
    url, port = summary_standin.v2_url, summary_standin.port
    assert (await post(session, url))[0] == 200  # leaves a keep-alive connection
    await summary_standin.go_down()
    assert not summary_standin.is_up
    # the pooled keep-alive connection was closed by the server: any client error
    with pytest.raises(aiohttp.ClientError):
        await post(session, url)
    for _ in range(2):  # new connections are refused
        with pytest.raises(aiohttp.ClientConnectorError) as info:
            await post(session, url)
        assert isinstance(info.value.os_error, ConnectionRefusedError)
    assert not _port_is_free(port)  # still reserved
    await summary_standin.go_down()  # idempotent
    await summary_standin.come_back()
    await summary_standin.come_back()  # idempotent
    assert summary_standin.port == port and summary_standin.is_up
    assert (await post(session, url))[0] == 200
    assert len(summary_standin.calls) == 2  # refused connections never reach it


async def test_going_down_drops_stalled_calls(
    summary_standin: SummaryStandin, session: aiohttp.ClientSession
) -> None:
    summary_standin.stall(30)
    request = asyncio.create_task(post(session, summary_standin.v2_url))
    await summary_standin.wait_for_calls(1)
    started = time.monotonic()
    await summary_standin.go_down()
    assert time.monotonic() - started < 2
    with pytest.raises(aiohttp.ClientError):
        await request
    assert summary_standin.calls[0].reply == "drop"


async def test_unique_payloads_by_idempotency_key(
    summary_standin: SummaryStandin, session: aiohttp.ClientSession
) -> None:
    summary_standin.fail_next(2)
    sends = [("a", {"n": 1}), ("a", {"n": 1}), ("a", {"n": 1}), ("b", {"n": 2}), (None, {"n": 3})]
    sends.append((None, {"n": 3}))
    for key, payload in sends:
        headers = dict(AUTH) if key is None else {**AUTH, "Idempotency-Key": key}
        await post(session, summary_standin.v1_url, payload, headers=headers)
    assert len(summary_standin.payloads()) == 6
    assert summary_standin.unique_payloads() == [{"n": 1}, {"n": 2}, {"n": 3}, {"n": 3}]


async def test_wait_for_calls_and_clear(
    summary_standin: SummaryStandin, session: aiohttp.ClientSession
) -> None:
    waiter = asyncio.create_task(summary_standin.wait_for_calls(2))
    await post(session, summary_standin.v1_url)
    await post(session, summary_standin.v1_url)
    assert len(await waiter) == 2
    summary_standin.reply_error(500)
    summary_standin.clear()
    assert summary_standin.calls == []
    assert (await post(session, summary_standin.v1_url))[0] == 200
    with pytest.raises(TimeoutError):
        await summary_standin.wait_for_calls(5, max_wait=0.05)


async def test_lifecycle_errors_and_port_release() -> None:
    standin = SummaryStandin(token="t")
    with pytest.raises(RuntimeError):
        _ = standin.url
    with pytest.raises(RuntimeError):
        await standin.come_back()
    await standin.start()
    port = standin.port
    with pytest.raises(RuntimeError):
        await standin.start()
    await standin.go_down()
    await standin.stop()  # from the down state
    await standin.stop()
    assert _port_is_free(port)


async def test_explicit_port_and_token(session: aiohttp.ClientSession) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    async with SummaryStandin(token="other", port=port) as standin:
        assert standin.url == f"http://127.0.0.1:{port}"
        headers = {"Authorization": "Bearer other"}
        assert (await post(session, standin.v1_url, headers=headers))[0] == 200


def test_reply_times_must_be_positive() -> None:
    standin = SummaryStandin()
    with pytest.raises(ValueError, match="times"):
        standin.reply_job(times=0)
