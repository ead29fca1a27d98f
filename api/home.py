"""``/`` without ``FRONTEND_DIST_DIR``: what is running, and where to go from here.

Browsers get a small HTML page; a client asking for JSON (``Accept: application/json``) gets
the same facts as JSON. LiveKit's reachability is a short probe, cached.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from html import escape
from typing import Any

import aiohttp
from aiohttp import web

from api import keys
from api.http import json_response

PROBE_TIMEOUT = 1.0
PROBE_CACHE_SECONDS = 15.0
LINKS = (
    ("/api/v1.0/docs/", "API documentation", "browsable, generated from the request models"),
    ("/api/v1.0/openapi.json", "OpenAPI document", "machine-readable"),
    ("/ops/", "Operations dashboard", "live rooms, recordings, rates (staff accounts)"),
    ("/api/v1.0/config/", "Frontend configuration", "what Meet's web app reads at load"),
    ("/__heartbeat__", "Heartbeat", "health including the database"),
    ("/__lbheartbeat__", "Load-balancer heartbeat", "process liveness"),
    ("/__version__", "Version", "build information"),
)


@dataclass
class _Probe:
    reachable: bool | None = None
    detail: str = ""
    at: float = float("-inf")
    running: asyncio.Task[None] | None = None


PROBE = web.AppKey("home_livekit_probe", _Probe)


def database_kind(url: str) -> str:
    scheme = url.split(":", 1)[0].lower()
    if scheme.startswith("sqlite"):
        return "SQLite"
    if scheme.startswith("postgres"):
        return "PostgreSQL"
    return scheme.split("+", 1)[0]


async def _probe_livekit(app: web.Application, probe: _Probe) -> None:
    url = app[keys.SETTINGS].livekit.api_url
    try:
        timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT)
        async with app[keys.HTTP].get(url, timeout=timeout, allow_redirects=False) as response:
            probe.reachable, probe.detail = True, f"answered HTTP {response.status}"
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        probe.reachable = False
        probe.detail = "no answer within 1 s" if isinstance(exc, TimeoutError) else "unreachable"
    probe.at = time.monotonic()


async def livekit_reachable(app: web.Application) -> _Probe:
    probe = app[PROBE]
    if time.monotonic() - probe.at > PROBE_CACHE_SECONDS:
        if probe.running is None or probe.running.done():
            probe.running = asyncio.create_task(_probe_livekit(app, probe))
        await asyncio.wait([probe.running], timeout=PROBE_TIMEOUT + 0.5)
    return probe


async def facts(app: web.Application) -> dict[str, Any]:
    settings = app[keys.SETTINGS]
    probe = await livekit_reachable(app)
    return {
        "service": "meet-coordinator",
        "version": settings.version,
        "engine": settings.engine,
        "database": database_kind(settings.database_url),
        "livekit": {"url": settings.livekit.api_url, "reachable": probe.reachable},
        "frontend": None,
        "links": {path: title for path, title, _ in LINKS},
    }


def _wants_json(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>meet-coordinator</title><link rel="stylesheet" href="/ops/static/ops.css"></head>
<body class="home"><main>
<h1>meet-coordinator <small>{version}</small></h1>
<p>The backend of a LiveKit video-meeting product, compatible with La Suite Meet's REST API.
This page is what <code>/</code> shows while no web app is configured.</p>
<h2>Running</h2>
<table class="facts">
<tr><th>Version</th><td>{version}</td></tr>
<tr><th>Room engine</th><td>{engine}</td></tr>
<tr><th>Database</th><td>{database}</td></tr>
<tr><th>LiveKit</th><td><code>{livekit_url}</code> <span class="pill {probe_class}">{probe}</span>
 <span class="muted">{probe_detail}</span></td></tr>
</table>
<h2>Go to</h2>
<ul class="links">{links}</ul>
<h2>Serve Meet's web app</h2>
<p>Build La Suite Meet's frontend and point <code>FRONTEND_DIST_DIR</code> at the directory
holding its <code>index.html</code>; this process then serves it at <code>/</code>, with unknown
paths outside <code>/api/</code> answered by its <code>index.html</code>:</p>
<pre>FRONTEND_DIST_DIR=/path/to/meet/src/frontend/dist meet-coordinator serve</pre>
<p>No identity provider or LiveKit server at hand? <code>make demo</code> starts this server
with the project's stand-ins and some traffic: a demonstration, not a deployment.</p>
</main></body></html>
"""


async def home(request: web.Request) -> web.Response:
    data = await facts(request.app)
    if _wants_json(request):
        return json_response(data)
    reachable = data["livekit"]["reachable"]
    probe = request.app[PROBE]
    links = "".join(
        f'<li><a href="{path}">{escape(title)}</a> <span class="muted">{escape(note)}</span></li>'
        for path, title, note in LINKS
    )
    body = PAGE.format(
        version=escape(data["version"]),
        engine=escape(data["engine"]),
        database=escape(data["database"]),
        livekit_url=escape(data["livekit"]["url"]),
        probe={True: "reachable", False: "unreachable", None: "checking"}[reachable],
        probe_class={True: "ok", False: "bad", None: "warn"}[reachable],
        probe_detail=escape(probe.detail),
        links=links,
    )
    response = web.Response(text=body, content_type="text/html", charset="utf-8")
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
        "frame-ancestors 'none'"
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def install_home(app: web.Application) -> None:
    """``GET /`` (only when no web app is served there)."""
    app[PROBE] = _Probe()
    app.add_routes([web.get("/", home, name="home")])
