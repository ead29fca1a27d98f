"""``/ops/``: who may see it, what its JSON and event stream say, and the outbox retry."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from api import keys
from api.app import create_app
from api.ops import EVENTS
from api.session import CSRF_HEADER
from coordinator.settings import EmailSettings, LiveKitSettings, OutboxSettings, Secret
from storage import outbox as outbox_store
from tests.conftest import make_settings
from tests.livekit_standin import LiveKitStandin
from tests.smtp_server import SmtpServer
from tests.support.factories import Factory, login
from tests.support.stack import post_webhook

Client = TestClient[Any, Any]
OPS_TOKEN = "ops-token-" + "o" * 40


@pytest.fixture
async def ops(
    aiohttp_client: Any,
    database_url: str,
    livekit_standin: LiveKitStandin,
    smtp_server: SmtpServer,
) -> Client:
    livekit = LiveKitSettings(
        api_key=livekit_standin.api_key,
        api_secret=Secret(livekit_standin.api_secret),
        api_url=livekit_standin.url,
        timeout_seconds=1.0,
    )
    settings = make_settings(
        database_url,
        livekit=livekit,
        ops_token=Secret(OPS_TOKEN),
        email=EmailSettings(host="127.0.0.1", port=smtp_server.port),
        outbox=OutboxSettings(poll_seconds=60.0),  # only a wake-up makes it look at once
    )
    client: Client = await aiohttp_client(create_app(settings))
    return client


def bearer(token: str = OPS_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_anonymous_is_sent_to_login_and_back(ops: Client) -> None:
    response = await ops.get("/ops/", allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == "/api/v1.0/authenticate/?returnTo=/ops/"
    for path in ("/ops/api/state/", "/ops/api/events/", "/ops/api/rooms/r/"):
        response = await ops.get(path)
        assert response.status == 401, path
        assert "detail" in await response.json()
    slashless = await ops.get("/ops", allow_redirects=False)
    assert slashless.status == 301 and slashless.headers["Location"] == "/ops/"


async def test_non_staff_get_403(ops: Client, factory: Factory) -> None:
    login(ops, ops.app[keys.SESSIONS], await factory.user())
    page = await ops.get("/ops/")
    assert page.status == 403 and "staff" in await page.text()
    assert page.content_type == "text/html"
    state = await ops.get("/ops/api/state/")
    assert state.status == 403 and "detail" in await state.json()
    events = await ops.get("/ops/api/events/")
    assert events.status == 403


async def test_staff_page_and_state(ops: Client, factory: Factory) -> None:
    login(ops, ops.app[keys.SESSIONS], await factory.user(is_staff=True))
    page = await ops.get("/ops/")
    assert page.status == 200
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    html = await page.text()
    assert "/ops/static/ops.js" in html and "http" not in html.replace("http-equiv", "")
    for name in ("ops.js", "ops.css"):
        asset = await ops.get(f"/ops/static/{name}")
        assert asset.status == 200 and "https://" not in await asset.text()
    assert (await ops.get("/ops/static/../ops.py")).status == 404
    state = await (await ops.get("/ops/api/state/")).json()
    assert state["engine"]["engine"] == "local"
    assert state["engine"]["hosts"][0]["alive"] is True
    assert state["rooms"] == [] and len(state["series"]["webhooks"]) == 300
    assert "outbox" in state["pipeline"]


async def test_ops_token_bearer_and_forged_tokens(
    ops: Client, livekit_standin: LiveKitStandin, oidc_provider: Any
) -> None:
    room = f"ops-{uuid.uuid4().hex[:8]}"
    await post_webhook(ops, livekit_standin, room, "participant_joined", "ada")
    response = await ops.get("/ops/api/state/", headers=bearer())
    assert response.status == 200
    state = await response.json()
    assert [(r["room"], r["participants"]) for r in state["rooms"]] == [(room, 1)]
    assert state["totals"]["webhooks"] == 1
    detail = await ops.get(f"/ops/api/rooms/{room}/", headers=bearer())
    body = await detail.json()
    assert [p["identity"] for p in body["participants"]] == ["ada"]
    assert [e["type"] for e in body["events"]] == ["webhook", "participant_joined"]
    assert (await ops.get("/ops/api/rooms/not-live/", headers=bearer())).status == 404
    for forged in (OPS_TOKEN + "x", OPS_TOKEN[:-1], "", "\u00e9" * 8, "Bearer"):
        response = await ops.get("/ops/api/state/", headers=bearer(forged))
        assert response.status == 401, forged
    # An access token of a real but non-staff user is a 403, not the operator's access.
    token = oidc_provider.mint_access_token({"sub": "someone", "email": "someone@example.com"})
    assert (await ops.get("/ops/api/state/", headers=bearer(token))).status in (401, 403)


async def test_retry_now_needs_staff_and_csrf(
    ops: Client, factory: Factory, smtp_server: SmtpServer
) -> None:
    sessionmaker = ops.app[keys.SESSIONMAKER]
    async with sessionmaker.begin() as session:
        message = await outbox_store.enqueue(
            session,
            kind="invitation",
            idempotency_key=f"ops-{uuid.uuid4()}",
            payload={
                "room_slug": "abc-defg-hij",
                "sender_email": "host@example.com",
                "recipients": ["guest@example.com"],
                "language": "en-us",
            },
            failed_reason="SMTP refused: 550",  # given up earlier
        )
    url = f"/ops/api/outbox/{message.id}/retry/"
    login(ops, ops.app[keys.SESSIONS], await factory.user())
    response = await ops.post(url)
    assert response.status == 403  # not staff
    ops.session.cookie_jar.clear()
    login(ops, ops.app[keys.SESSIONS], await factory.user(is_staff=True))
    token = ops.session.headers.pop(CSRF_HEADER)
    response = await ops.post(url)
    assert response.status == 403 and "CSRF" in (await response.json())["detail"]
    response = await ops.post(url, headers={CSRF_HEADER: token, "Origin": "https://evil.example"})
    assert response.status == 403
    state = await (await ops.get("/ops/api/state/")).json()
    assert [m["id"] for m in state["pipeline"]["failed"]] == [str(message.id)]
    assert state["pipeline"]["failed"][0]["last_error"] == "SMTP refused: 550"
    assert smtp_server.messages == []
    bad = await ops.post("/ops/api/outbox/not-a-uuid/retry/", headers={CSRF_HEADER: token})
    assert bad.status == 400 and "detail" in await bad.json()
    unknown = await ops.post(f"/ops/api/outbox/{uuid.uuid4()}/retry/", headers={CSRF_HEADER: token})
    assert unknown.status == 404

    response = await ops.post(url, headers={CSRF_HEADER: token})
    assert response.status == 200 and (await response.json())["status"] == "pending"
    # Delivered by the dispatcher, woken at once (it would otherwise look in 60 s).
    [mail] = await smtp_server.wait_for(1, max_wait=5)
    assert "guest@example.com" in mail.rcpt_tos
    async with asyncio.timeout(5):
        while True:
            async with sessionmaker() as session:
                [row] = await outbox_store.list_messages(session)
            if row.status == "succeeded":
                break
            await asyncio.sleep(0.05)
    again = await ops.post(url, headers={CSRF_HEADER: token})
    assert again.status == 404  # delivered: nothing to retry
    ops.session.cookie_jar.clear()
    automated = await ops.post(url, headers=bearer())  # no cookie, no CSRF: reaches the check
    assert automated.status == 404


async def read_frame(content: Any) -> tuple[str, str]:
    kind, data = "", ""
    while True:
        line = (await content.readline()).decode()
        if line == "\n" and kind:
            return kind, data
        if line.startswith("event: "):
            kind = line[7:].strip()
        elif line.startswith("data: "):
            data = line[6:].strip()


async def test_events_stream_webhooks_and_ends_cleanly(
    ops: Client, livekit_standin: LiveKitStandin
) -> None:
    bus = ops.app[EVENTS]
    response = await ops.get("/ops/api/events/", headers=bearer())
    assert response.status == 200 and response.content_type == "text/event-stream"
    assert (await read_frame(response.content))[0] == "state"
    assert bus.subscribers == 1
    started = time.monotonic()
    await post_webhook(ops, livekit_standin, "sse-room", "participant_joined", "bob")
    kinds = []
    async with asyncio.timeout(1.0):  # a webhook reaches the dashboard within a second
        while "participant_joined" not in kinds:
            kind, data = await read_frame(response.content)
            if kind == "room":
                kinds.append(data.split('"type":"', 1)[1].split('"', 1)[0])
    assert time.monotonic() - started < 1.0
    response.close()  # the dashboard goes away
    async with asyncio.timeout(5):
        while bus.subscribers:  # noqa: ASYNC110 - polling the server's side
            await asyncio.sleep(0.05)


async def test_many_streams_do_not_slow_webhooks(
    ops: Client, livekit_standin: LiveKitStandin
) -> None:
    async def webhooks(n: int, prefix: str) -> float:
        started = time.monotonic()
        for i in range(n):
            await post_webhook(
                ops, livekit_standin, f"{prefix}-{i % 5}", "participant_joined", f"p{i}"
            )
        return time.monotonic() - started

    alone = await webhooks(40, "alone")
    streams = [await ops.get("/ops/api/events/", headers=bearer()) for _ in range(40)]
    assert all(s.status == 200 for s in streams)
    watched = await webhooks(40, "watched")
    assert ops.app[EVENTS].subscribers == 40
    # On a loaded 2-core machine only a gross slowdown is meaningful.
    assert watched < max(2.0, alone * 4), (alone, watched)
    for stream in streams:
        stream.close()


async def test_slow_subscriber_is_dropped_not_waited_for() -> None:
    from coordinator.events import EventBus

    bus = EventBus()
    slow = bus.subscribe(maxsize=4)
    fast = bus.subscribe(maxsize=64)
    for i in range(10):
        bus.publish({"type": "webhook", "room": "r", "at": i})
    assert slow.dropped and bus.subscribers == 1 and bus.dropped_subscribers == 1
    assert await slow.get() is None  # its iteration ends
    assert [e["at"] for e in [fast.poll() for _ in range(10)] if e] == list(range(10))


async def test_first_run_page(ops: Client) -> None:
    page = await ops.get("/", headers={"Accept": "text/html,*/*"})
    assert page.status == 200 and page.content_type == "text/html"
    html = await page.text()
    for needed in ("0.1.0", "local", "SQLite" if "sqlite" in ops.app[keys.SETTINGS].database_url
                   else "PostgreSQL", "reachable", "/api/v1.0/docs/", "/ops/", "/__heartbeat__",
                   "FRONTEND_DIST_DIR"):  # fmt: skip
        assert needed in html, needed
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    data = await (await ops.get("/", headers={"Accept": "application/json"})).json()
    assert data["livekit"] == {"url": ops.app[keys.SETTINGS].livekit.api_url, "reachable": True}
    assert data["engine"] == "local" and "/ops/" in data["links"]
    assert (await ops.get("/api/v1.0/docs/")).status == 200  # the page's links resolve


async def test_first_run_page_says_livekit_is_unreachable(
    aiohttp_client: Any, database_url: str
) -> None:
    from tests.support.postgres import free_port

    livekit = LiveKitSettings(
        api_key="devkey",
        api_secret=Secret("s" * 40),
        api_url=f"http://127.0.0.1:{free_port()}",  # nothing listens there
    )
    client: Client = await aiohttp_client(create_app(make_settings(database_url, livekit=livekit)))
    data = await (await client.get("/", headers={"Accept": "application/json"})).json()
    assert data["livekit"]["reachable"] is False
    assert "unreachable" in await (await client.get("/")).text()
