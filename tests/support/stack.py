"""The app wired to both stand-ins (OIDC provider, LiveKit), and signed webhooks for it."""

from __future__ import annotations

import time
from typing import Any

from aiohttp.test_utils import TestClient
from livekit.protocol import models
from livekit.protocol.webhook import WebhookEvent

from coordinator.settings import LiveKitSettings, OIDCSettings, Secret, Settings
from tests.conftest import make_settings
from tests.livekit_standin import LiveKitStandin, sign_webhook
from tests.oidc_provider import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, OIDCProvider

WEBHOOK = "/api/v1.0/rooms/webhooks-livekit/"


def stack_settings(
    database_url: str, provider: OIDCProvider, standin: LiveKitStandin, **overrides: Any
) -> Settings:
    oidc = OIDCSettings(
        client_id=DEFAULT_CLIENT_ID,
        client_secret=Secret(DEFAULT_CLIENT_SECRET),
        authorization_endpoint=provider.authorization_endpoint,
        token_endpoint=provider.token_endpoint,
        user_endpoint=provider.userinfo_endpoint,
        jwks_endpoint=provider.jwks_uri,
        logout_endpoint=provider.end_session_endpoint,
        issuer=provider.issuer,
    )
    livekit = LiveKitSettings(
        api_key=standin.api_key,
        api_secret=Secret(standin.api_secret),
        api_url=standin.url,
        timeout_seconds=1.0,
    )
    return make_settings(database_url, oidc=oidc, livekit=livekit, **overrides)


async def post_webhook(
    client: TestClient[Any, Any], standin: LiveKitStandin, room: str, kind: str, identity: str
) -> None:
    event = WebhookEvent(
        event=kind,
        room=models.Room(name=room, sid=f"RM_{room[:8]}"),
        participant=models.ParticipantInfo(
            identity=identity,
            sid=f"PA_{identity}",
            name=identity.title(),
            state=models.ParticipantInfo.State.ACTIVE,
            joined_at=int(time.time()),
        ),
    )
    body, headers = sign_webhook(event, standin.api_key, standin.api_secret)
    response = await client.post(WEBHOOK, data=body, headers=headers)
    assert response.status == 200, await response.text()
