"""Issue 11: /metrics after a scripted scenario, request ids through actors and LiveKit, JSON
log lines without secrets, and the Grafana dashboard's queries against what is exposed."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from api import keys
from api.access_log import JsonAccessLogger
from api.app import create_app
from coordinator.logs import JsonFormatter, guard_secret_loggers
from coordinator.settings import EmailSettings, LiveKitSettings, OutboxSettings, Secret, Settings
from tests.api.test_oidc import oidc_settings
from tests.conftest import make_settings
from tests.livekit_standin import Fault, LiveKitStandin
from tests.oidc_provider import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, OIDCProvider
from tests.smtp_server import SmtpServer, smtp_server_fixture  # noqa: F401
from tests.support.factories import Factory, login

Client = TestClient[Any, Any]
OPS_TOKEN = "ops-token-" + "o" * 30
ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "meet-coordinator.json"
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@dataclass
class Env:
    client: Client
    livekit: LiveKitStandin
    smtp: SmtpServer
    factory: Factory

    def log_in(self, user: Any) -> None:
        login(self.client, self.client.app[keys.SESSIONS], user)

    async def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        response = await self.client.get(
            "/metrics", headers={"Authorization": f"Bearer {OPS_TOKEN}"}
        )
        assert response.status == 200
        return samples(await response.text())


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def observability_settings(
    database_url: str, livekit: LiveKitStandin, smtp: SmtpServer
) -> Settings:
    return make_settings(
        database_url,
        livekit=LiveKitSettings(
            api_key=livekit.api_key,
            api_secret=Secret(livekit.api_secret),
            api_url=livekit.url,
            # No call here is meant to time out: 1 s did once on a loaded CI run (a 503
            # where the injected error's 502 was expected).
            timeout_seconds=5.0,
        ),
        email=EmailSettings(host=smtp.host, port=smtp.port, from_email="meet@example.com"),
        outbox=OutboxSettings(base_delay_seconds=0.05, max_delay_seconds=0.2, poll_seconds=0.05),
        ops_token=Secret(OPS_TOKEN),
    )


@pytest.fixture
async def env(
    aiohttp_client: Any,
    database_url: str,
    livekit_standin: LiveKitStandin,
    smtp_server: SmtpServer,
    factory: Factory,
) -> Env:
    settings = observability_settings(database_url, livekit_standin, smtp_server)
    client: Client = await aiohttp_client(create_app(settings))
    livekit_standin.webhook_url = str(client.make_url("/api/v1.0/rooms/webhooks-livekit/"))
    return Env(client, livekit_standin, smtp_server, factory)


class Lines(logging.Handler):
    """Every record formatted by the production JSON formatter, kept as text."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def parsed(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]


@pytest.fixture
def log_lines() -> Iterator[Lines]:
    handler = Lines()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    guard_secret_loggers()
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def test_metrics_after_a_scripted_scenario(env: Env) -> None:
    client = env.client
    owner = await env.factory.user()
    env.log_in(owner)
    created = await client.post("/api/v1.0/rooms/", json={"name": "Weekly"})
    assert created.status == 201, await created.text()
    room = (await created.json())["id"]
    for _ in range(3):
        assert (await client.get(f"/api/v1.0/rooms/{room}/")).status == 200
    assert (await client.get("/api/v1.0/no-such-thing/")).status == 404
    # Webhooks through the real signed path: room_started, participant_joined x2.
    env.livekit.join(room, "ada")
    env.livekit.join(room, "bob")
    await env.livekit.webhooks.drain()
    # LiveKit calls: one removal answered with an error, one that succeeds.
    env.livekit.inject_fault("RemoveParticipant", Fault.error("internal", "boom"))
    remove = f"/api/v1.0/rooms/{room}/remove-participant/"
    assert (await client.post(remove, json={"participant_identity": "bob"})).status == 502
    env.livekit.drop("RemoveParticipant")  # the connection closes without an answer
    assert (await client.post(remove, json={"participant_identity": "bob"})).status == 503
    assert (await client.post(remove, json={"participant_identity": "bob"})).status == 200
    # A webhook whose signature does not verify.
    forged = await client.post(
        "/api/v1.0/rooms/webhooks-livekit/", data=b"{}", headers={"Authorization": "forged"}
    )
    assert forged.status == 400
    # An outbox delivery: an invitation e-mail.
    invite = await client.post(f"/api/v1.0/rooms/{room}/invite/", json={"emails": ["a@x.org"]})
    assert invite.status == 200
    await env.smtp.wait_for(1)
    await client.app[keys.DIRECTORY].settle(room)

    found: dict[Any, float] = {}

    async def delivered() -> bool:
        nonlocal found
        found = await env.scrape()
        attempts = {"kind": "invitation", "outcome": "delivered"}
        done = {"kind": "invitation", "status": "succeeded"}  # committed after the count
        # Every gauge of the delivery, the older names too (they are refreshed apart: one
        # scrape read the backlog before ``meet_outbox_delivered`` on a loaded CI run).
        return (
            value(found, "meet_outbox_attempts_total", **attempts) == 1
            and value(found, "meet_outbox_backlog", **done) == 1
            and value(found, "meet_outbox_delivered") == 1
        )

    async with asyncio.timeout(5):
        while not await delivered():  # noqa: ASYNC110 - polls the scrape
            await asyncio.sleep(0.02)

    http = "meet_http_request_duration_seconds"
    retrieve = {"route": "/api/v1.0/rooms/{lookup}/", "method": "GET", "status": "200"}
    assert value(found, f"{http}_count", **retrieve) == 3
    assert value(found, f"{http}_bucket", **retrieve, le="+Inf") == 3
    assert value(found, f"{http}_bucket", **retrieve, le="10.0") == 3
    assert value(found, f"{http}_count", route="unmatched", method="GET", status="404") == 1
    routes = {dict(labels).get("route") for name, labels in found if name.startswith(http)}
    assert all(r == "unmatched" or room not in str(r) for r in routes), routes  # templates only
    assert value(found, f"{http}_count", route="/api/v1.0/rooms/", method="POST", status="201") == 1

    joined = {"event": "participant_joined", "outcome": "applied"}
    assert value(found, "meet_webhooks_total", **joined) == 2
    assert value(found, "meet_webhook_lag_seconds_count", event="participant_joined") == 2
    assert (
        value(found, "meet_webhook_lag_seconds_bucket", event="participant_joined", le="+Inf") == 2
    )
    assert (
        value(found, "meet_webhook_lag_seconds_bucket", event="participant_joined", le="5.0") == 2
    )

    lk = "meet_livekit_call_duration_seconds"
    assert value(found, f"{lk}_count", method="RemoveParticipant") == 3
    assert (
        value(found, "meet_livekit_call_errors_total", method="RemoveParticipant", kind="error")
        == 1
    )
    errors = {"method": "RemoveParticipant"}
    assert value(found, "meet_livekit_call_errors_total", **errors, kind="unreachable") == 1
    assert value(found, "meet_livekit_call_errors_total", **errors, kind="timeout") == 0
    refused = {"event": "unverified", "outcome": "refused"}
    assert value(found, "meet_webhooks_total", **refused) == 1

    webhook_ok = value(found, "meet_actor_commands_total", command="ApplyWebhook", outcome="ok")
    assert webhook_ok == value(
        found, "meet_actor_command_duration_seconds_count", command="ApplyWebhook"
    )
    assert webhook_ok >= 3  # room_started and two joins
    removals = {"command": "RemoveParticipant"}
    assert (
        value(found, "meet_actor_commands_total", **removals, outcome="error")
        + value(found, "meet_actor_commands_total", **removals, outcome="ok")
        + value(found, "meet_actor_commands_total", **removals, outcome="unavailable")
        == 3
    )
    assert value(found, "meet_actor_mailbox_depth") == 0

    assert value(found, "meet_outbox_backlog", kind="invitation", status="succeeded") == 1
    assert value(found, "meet_outbox_oldest_pending_seconds") == 0
    assert value(found, "meet_outbox_messages", status="succeeded") == 1  # the older name
    assert value(found, "meet_outbox_delivered") == 1  # the older name
    assert value(found, "meet_rooms_live") == 1
    assert value(found, "meet_participants_live") == 1  # ada (bob was removed)
    assert value(found, "meet_active_rooms") >= 1
    assert value(found, "meet_db_pool_size") >= 1
    assert ("meet_db_pool_in_use", ()) in found


@sqlite_only
async def test_metrics_need_the_ops_token(env: Env) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": OPS_TOKEN}):
        response = await env.client.get("/metrics", headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert "detail" in await response.json()


@sqlite_only
async def test_request_id_reaches_the_actor_effect_and_the_livekit_call(
    env: Env, log_lines: Lines
) -> None:
    room, owner = await env.factory.room_with_role("owner")
    name = str(room.id)
    env.livekit.join(name, "ada")
    await env.livekit.webhooks.drain()
    env.log_in(owner)
    response = await env.client.post(
        f"/api/v1.0/rooms/{room.id}/remove-participant/",
        json={"participant_identity": "ada"},
        headers={"X-Request-ID": "req-7f3a.remove:1"},
    )
    assert response.status == 200
    assert response.headers["X-Request-ID"] == "req-7f3a.remove:1"
    await env.client.app[keys.DIRECTORY].settle(name)
    lines = log_lines.parsed()
    effect = [
        line
        for line in lines
        if line["message"] == "effect" and line["effect"] == "CallLiveKit.remove_participant"
    ]
    assert len(effect) == 1
    assert effect[0]["request_id"] == "req-7f3a.remove:1"
    assert effect[0]["command"] == "RemoveParticipant" and effect[0]["room"] == name
    assert effect[0]["outcome"] == "ok" and effect[0]["duration_ms"] >= 0
    [call] = [
        line
        for line in lines
        if line["message"] == "livekit call" and line["method"] == "RemoveParticipant"
    ]
    assert call["request_id"] == "req-7f3a.remove:1" and call["outcome"] == "ok"
    [twirp] = env.livekit.calls_for("RemoveParticipant")
    assert twirp.headers.get("X-Request-ID") == "req-7f3a.remove:1"


@sqlite_only
async def test_hostile_request_ids_are_replaced(env: Env) -> None:
    fresh = re.compile(r"[0-9a-f]{32}")
    for supplied in ("x" * 129, "two words", "<script>", "é", "a\tb", ""):
        response = await env.client.get("/api/v1.0/config/", headers={"X-Request-ID": supplied})
        assert response.status == 200
        assert fresh.fullmatch(response.headers["X-Request-ID"]), supplied
    # Raw bytes the HTTP client would refuse to send: CR without LF, NUL, latin-1.
    host, port = env.client.host, env.client.port
    for raw in (b"abc\rdef", b"abc\x00def", b"caf\xe9"):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            b"GET /api/v1.0/config/ HTTP/1.1\r\nHost: x\r\nX-Request-ID: "
            + raw
            + b"\r\nConnection: close\r\n\r\n"
        )
        head = (await reader.read(65536)).split(b"\r\n\r\n")[0].decode("latin-1")
        writer.close()
        status = int(head.split(" ")[1])
        assert status in (200, 400), head
        if status == 200:
            [echoed] = re.findall(r"(?im)^X-Request-ID: (.*)$", head)
            assert fresh.fullmatch(echoed.strip()), head
    ok = await env.client.get("/api/v1.0/config/", headers={"X-Request-ID": "A" * 128})
    assert ok.headers["X-Request-ID"] == "A" * 128


@sqlite_only
async def test_no_secret_in_any_log_line(
    aiohttp_client: Any,
    database_url: str,
    livekit_standin: LiveKitStandin,
    smtp_server: SmtpServer,
    oidc_provider: OIDCProvider,
    log_lines: Lines,
    factory: Factory,
) -> None:
    """A login, a bearer call, a room token and a webhook: every line parses as JSON, the
    access lines say who asked what, and no credential appears anywhere."""
    settings = replace(
        observability_settings(database_url, livekit_standin, smtp_server),
        oidc=oidc_settings(oidc_provider),
    )
    server = TestServer(create_app(settings))  # with serve's JSON access log
    await server.start_server(access_log_class=JsonAccessLogger)
    client: Client = await aiohttp_client(server)
    livekit_standin.webhook_url = str(client.make_url("/api/v1.0/rooms/webhooks-livekit/"))
    oidc_provider.next_user = {
        "sub": "sub-ada-7c1e",
        "email": "ada@example.com",
        "given_name": "Ada",
    }
    start = await client.get("/api/v1.0/authenticate/?returnTo=/", allow_redirects=False)
    async with aiohttp.ClientSession() as browser:
        at_provider = await browser.get(start.headers["Location"], allow_redirects=False)
    callback = urlsplit(at_provider.headers["Location"])
    query = parse_qs(callback.query)
    logged_in = await client.get(f"{callback.path}?{callback.query}", allow_redirects=False)
    assert logged_in.status == 302
    session_cookie = logged_in.cookies["sessionid"].value
    csrf = logged_in.cookies["csrftoken"].value
    client.session.headers["X-CSRFToken"] = csrf
    created = await client.post("/api/v1.0/rooms/", json={"name": "Standup"})
    assert created.status == 201
    room = (await created.json())["id"]
    retrieved = await (await client.get(f"/api/v1.0/rooms/{room}/")).json()
    room_token = retrieved["livekit"]["token"]
    bearer = oidc_provider.mint_access_token(
        {"sub": "bot", "email": "bot@example.com"}, audience=DEFAULT_CLIENT_ID
    )
    me = await client.get("/api/v1.0/users/me/", headers={"Authorization": f"Bearer {bearer}"})
    assert me.status == 200
    livekit_standin.join(room, "ada")
    await livekit_standin.webhooks.drain()
    webhook_jwt = livekit_standin.webhooks.deliveries[0].headers["Authorization"]
    await client.get("/metrics", headers={"Authorization": f"Bearer {OPS_TOKEN}"})
    forbidden = {
        "OIDC code": query["code"][0],
        "OIDC state": query["state"][0],
        "session cookie": session_cookie,
        "login session key": client.app[keys.SESSIONS].decode(session_cookie)["sid"],
        "CSRF token": csrf,
        "LiveKit room token": room_token,
        "bearer access token": bearer,
        "webhook signature": webhook_jwt,
        "LiveKit secret": livekit_standin.api_secret,
        "OIDC client secret": DEFAULT_CLIENT_SECRET,
        "OPS token": OPS_TOKEN,
        "secret key": settings.secret_key.get(),
        "SQL parameter (the user's sub)": "sub-ada-7c1e",  # aiosqlite's DEBUG lines hold them
    }
    text = "\n".join(log_lines.lines)
    for what, secret in forbidden.items():
        assert len(secret) >= 8 and secret not in text, what
    lines = log_lines.parsed()  # every line is one JSON object
    requests = [line for line in lines if line["message"] == "request"]
    callback_line = next(line for line in requests if line["route"] == "/api/v1.0/callback/")
    assert callback_line["status"] == 302 and callback_line["method"] == "GET"
    retrieve_line = next(line for line in requests if line["path"] == f"/api/v1.0/rooms/{room}/")
    assert retrieve_line["route"] == "/api/v1.0/rooms/{lookup}/"
    assert retrieve_line["user_id"] and retrieve_line["remote"] == "127.0.0.1"
    assert re.fullmatch(r"[0-9a-f]{32}", retrieve_line["request_id"])
    assert isinstance(retrieve_line["duration_ms"], float)
    assert any(line["message"] == "livekit call" for line in lines)


def test_dashboard_queries_only_exposed_metrics() -> None:
    from coordinator.telemetry import Metrics

    dashboard = json.loads(DASHBOARD.read_text())
    exposed: set[str] = set()
    for family in Metrics().registry.collect():
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
        exposed.add(family.name)
        exposed.update(family.name + s for s in suffixes.get(family.type, ()))
    panels = [p for row in dashboard["panels"] for p in (row, *row.get("panels", ()))]
    exprs = [t["expr"] for p in panels for t in p.get("targets", ())]
    assert len(exprs) >= 12
    used = {name for expr in exprs for name in re.findall(r"\bmeet_[a-z_]+\b", expr)}
    assert used <= exposed, used - exposed
    families = {name.removesuffix(s) for name in used for s in ("_bucket", "_total", "")}
    for required in (
        "meet_http_request_duration_seconds",
        "meet_actor_commands",
        "meet_actor_mailbox_depth",
        "meet_webhooks",
        "meet_webhook_lag_seconds",
        "meet_livekit_call_duration_seconds",
        "meet_livekit_call_errors",
        "meet_outbox_backlog",
        "meet_outbox_attempts",
        "meet_rooms_live",
        "meet_participants_live",
        "meet_db_pool_in_use",
    ):
        assert any(f.startswith(required) for f in families), required
    datasources = {json.dumps(p.get("datasource")) for p in panels if "targets" in p}
    assert datasources == {json.dumps({"type": "prometheus", "uid": "${datasource}"})}
    [variable] = [v for v in dashboard["templating"]["list"] if v["name"] == "datasource"]
    assert variable["type"] == "datasource" and variable["query"] == "prometheus"
