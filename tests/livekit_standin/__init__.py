"""A protocol-faithful LiveKit server stand-in for tests (Twirp API, webhooks, egress).

Quick start::

    async with LiveKitStandin(webhook_url=sink.url) as fake:
        async with aiohttp.ClientSession() as session:
            lk = api.LiveKitAPI(fake.url, fake.api_key, fake.api_secret, session=session)
            await lk.room.create_room(api.CreateRoomRequest(name="r1"))
        fake.join("r1", "alice")
        await fake.webhooks.drain()

Or use the pytest fixture ``livekit_standin`` from :mod:`.plugin`, or run
``python -m tests.livekit_standin`` (see :mod:`.__main__`).
"""

from __future__ import annotations

from .auth import DEFAULT_API_KEY, DEFAULT_API_SECRET, MIN_SECRET_BYTES
from .egress import EgressMode, EgressScript, EgressTiming
from .faults import Fault
from .records import CallRecord, DataPacketRecord
from .server import LiveKitStandin
from .sink import ReceivedWebhook, WebhookSink
from .twirp import TwirpError
from .webhooks import (
    WebhookDelivery,
    WebhookEmitter,
    encode_webhook_body,
    event_key,
    sign_webhook,
)

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_API_SECRET",
    "MIN_SECRET_BYTES",
    "CallRecord",
    "DataPacketRecord",
    "EgressMode",
    "EgressScript",
    "EgressTiming",
    "Fault",
    "LiveKitStandin",
    "ReceivedWebhook",
    "TwirpError",
    "WebhookDelivery",
    "WebhookEmitter",
    "WebhookSink",
    "encode_webhook_body",
    "event_key",
    "sign_webhook",
]
