"""``GET /api/v1.0/config/``: the frontend configuration (reference §5.1), and health checks."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from api import keys
from api.http import json_response
from api.openapi import REGISTRY, build_document, operation
from api.schemas import HeartbeatOut, VersionOut
from coordinator.integrations import telephony_config
from coordinator.settings import Settings
from storage.engine import is_outage, outage_summary, probe_writes

log = logging.getLogger(__name__)

RECORDING_MODES = ["screen_recording", "transcript"]


class ConfigOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    LANGUAGE_CODE: str
    recording: dict[str, Any]
    background_image: dict[str, Any]
    telephony: dict[str, Any]
    resource: dict[str, Any]
    subtitle: dict[str, Any]
    diagnostics: dict[str, Any]
    livekit: dict[str, Any]
    authenticated_users_can_edit_display_name: bool


FRONTEND_DEFAULTS: dict[str, Any] = {
    "custom_css_url": None,
    "analytics": {},
    "support": {},
    "silence_livekit_debug_logs": False,
    "is_silent_login_enabled": True,
    "idle_disconnect_warning_delay": None,
    "feedback": {},
    "documentation_url": None,
    "external_home_url": None,
    "use_french_gov_footer": False,
    "use_proconnect_button": False,
    "manifest_link": None,
    "transcription_destination": None,
    "max_participants_for_sound": 5,
    "auto_mute_on_join_threshold": 50,
}


def background_image_config(settings: Settings) -> dict[str, Any]:
    limits = settings.files.restrictions.get("background_image")
    config: dict[str, Any] = {"upload_is_enabled": settings.file_upload_enabled}
    if limits is not None:
        config.update(
            max_count_by_user=limits.max_count_by_user,
            max_size=limits.max_size,
            allowed_extensions=list(limits.allowed_extensions),
            allowed_mimetypes=list(limits.allowed_mimetypes),
        )
    return config


def frontend_config(settings: Settings) -> dict[str, Any]:
    config: dict[str, Any] = {
        "LANGUAGE_CODE": settings.language_code,
        "recording": {
            "is_enabled": settings.recording_enable,
            "available_modes": RECORDING_MODES,
            "expiration_days": settings.recording_expiration_days,
            "max_duration": settings.recording_max_duration,
        },
        "background_image": background_image_config(settings),
        "telephony": telephony_config(settings),
        "resource": {"default_access_level": settings.resource_default_access_level},
        "subtitle": {"enabled": settings.room_subtitle_enabled},
        "diagnostics": {"connection_test_enabled": settings.connection_test_enabled},
        "livekit": {
            "url": settings.livekit.api_url,
            "force_wss_protocol": settings.livekit.force_wss_protocol,
            "enable_firefox_proxy_workaround": settings.livekit.enable_firefox_proxy_workaround,
            "default_sources": list(settings.livekit.default_sources),
        },
        "authenticated_users_can_edit_display_name": (
            settings.authenticated_participants_can_edit_display_name
        ),
    }
    config.update(FRONTEND_DEFAULTS)
    config.update(settings.frontend_configuration)
    return config


CONFIG_BODY = web.AppKey("config_body", str)


@operation(
    "GET",
    "/api/v1.0/config/",
    name="config",
    summary="Frontend configuration",
    tag="config",
    responses={200: ConfigOut},
)
async def config(request: web.Request) -> web.Response:
    return web.Response(text=request.app[CONFIG_BODY], content_type="application/json")


@operation(
    "GET",
    "/__heartbeat__",
    name="heartbeat",
    summary="Health including the database",
    tag="health",
    responses={200: HeartbeatOut, 503: HeartbeatOut},
)
async def heartbeat(request: web.Request) -> web.Response:
    """Fails (503) whenever a write would: the probe commits a write that changes nothing."""
    try:
        await probe_writes(request.app[keys.SESSIONMAKER])
    except Exception as exc:
        if not is_outage(exc):
            log.exception("heartbeat: database check failed")
        else:
            log.warning("heartbeat: database unavailable: %s", outage_summary(exc))
        return json_response({"database": "error"}, status=503)
    return json_response({"database": "ok"})


@operation(
    "GET",
    "/__lbheartbeat__",
    name="lbheartbeat",
    summary="Load-balancer liveness",
    tag="health",
    responses={200: None},
)
async def lbheartbeat(request: web.Request) -> web.Response:
    return web.Response(status=200)


@operation(
    "GET",
    "/__version__",
    name="version",
    summary="Build information",
    tag="health",
    responses={200: VersionOut},
)
async def version(request: web.Request) -> web.Response:
    settings = request.app[keys.SETTINGS]
    return json_response(
        {
            "source": "https://github.com/meet-coordinator/meet-coordinator",
            "version": settings.version,
            "commit": "unknown",
            "build": "local",
        }
    )


@operation(
    "GET",
    "/api/v1.0/openapi.json",
    name="openapi",
    summary="This document",
    tag="docs",
    responses={200: None},
    document=False,
)
async def openapi(request: web.Request) -> web.Response:
    return json_response(request.app[keys.OPENAPI])


DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>meet-coordinator API</title>
<style>body{font:15px system-ui,sans-serif;margin:2rem;max-width:60rem}
code{background:#eee;padding:0 .2rem}h2{margin-top:2rem}.op{margin:.3rem 0}
.m{display:inline-block;width:4.5rem;font-weight:bold}</style></head>
<body><h1>meet-coordinator API</h1>
<p>Machine-readable document: <a href="/api/v1.0/openapi.json">openapi.json</a>.</p>
<div id="ops">Loading…</div>
<script>
fetch('/api/v1.0/openapi.json').then(r => r.json()).then(doc => {
  const byTag = {};
  for (const [path, ops] of Object.entries(doc.paths))
    for (const [method, op] of Object.entries(ops))
      (byTag[op.tags[0]] ||= []).push([method.toUpperCase(), path, op]);
  const root = document.getElementById('ops'); root.textContent = '';
  for (const [tag, ops] of Object.entries(byTag)) {
    const h = document.createElement('h2'); h.textContent = tag; root.append(h);
    for (const [method, path, op] of ops) {
      const d = document.createElement('div'); d.className = 'op';
      const statuses = Object.keys(op.responses).join(', ');
      d.innerHTML = '<span class="m"></span><code></code> <span></span>';
      d.children[0].textContent = method; d.children[1].textContent = path;
      d.children[2].textContent = op.summary + ' (' + statuses + ')';
      root.append(d);
    }
  }
});
</script></body></html>
"""


@operation(
    "GET",
    "/api/v1.0/docs/",
    name="docs",
    summary="API documentation page",
    tag="docs",
    responses={200: None},
    document=False,
)
async def docs(request: web.Request) -> web.Response:
    return web.Response(text=DOCS_PAGE, content_type="text/html")


def openapi_document(settings: Settings) -> dict[str, Any]:
    return build_document(REGISTRY, version=settings.version)
