"""Webhook signing, ordering, retries and re-delivery, verified by the real WebhookReceiver."""

from __future__ import annotations

import base64
import hashlib
import socket

import jwt
import pytest
from google.protobuf import json_format
from livekit import api

from tests.livekit_standin import LiveKitStandin, WebhookSink, sign_webhook
from tests.livekit_standin.webhooks import SignVariant, encode_webhook_body, event_key


async def test_signature_headers_and_body(
    livekit_standin: LiveKitStandin, sink: WebhookSink
) -> None:
    fake = livekit_standin
    fake.join("r", "alice")
    await fake.webhooks.drain()
    assert sink.names() == ["room_started", "participant_joined"]
    received = sink.received[1]
    token = received.headers["Authorization"]
    assert not token.startswith("Bearer ")
    assert received.headers["Content-Type"] == "application/webhook+json"
    assert received.headers["User-Agent"] == "LiveKit"
    claims = jwt.decode(token, fake.api_secret, algorithms=["HS256"])
    assert set(claims) == {"iss", "sha256", "iat", "nbf", "exp"}
    assert claims["iss"] == fake.api_key and claims["exp"] - claims["nbf"] == 300
    digest = base64.b64encode(hashlib.sha256(received.body.encode()).digest()).decode()
    assert claims["sha256"] == digest
    event = fake.events[1]
    assert received.body == json_format.MessageToJson(event, indent=None)
    assert '"createdAt": "' in received.body  # int64 as a string
    assert sink.events[1] == event


async def test_no_url_records_without_delivering(livekit_standin: LiveKitStandin) -> None:
    livekit_standin.join("r", "alice")
    await livekit_standin.webhooks.drain()
    assert [e.event for e in livekit_standin.events] == ["room_started", "participant_joined"]
    assert livekit_standin.webhooks.deliveries == []


async def test_order_within_key_and_hold_across_keys(
    livekit_standin: LiveKitStandin, sink: WebhookSink
) -> None:
    fake = livekit_standin
    fake.webhooks.hold("a")
    fake.join("a", "alice")
    fake.join("b", "bob")
    await fake.webhooks.drain()
    assert [e.room.name for e in sink.events] == ["b", "b"]
    fake.webhooks.release("a")
    await fake.webhooks.drain()
    assert [(e.room.name, e.event) for e in sink.events] == [
        ("b", "room_started"),
        ("b", "participant_joined"),
        ("a", "room_started"),
        ("a", "participant_joined"),
    ]


async def test_retry_on_5xx_and_not_on_4xx(
    livekit_standin: LiveKitStandin, sink: WebhookSink
) -> None:
    fake = livekit_standin
    sink.fail_next(2, status=503)
    fake.create_room("r")
    await fake.webhooks.drain()
    assert [(d.attempt, d.status) for d in fake.webhooks.deliveries] == [
        (1, 503),
        (2, 503),
        (3, 200),
    ]
    assert len({d.headers["Authorization"] for d in fake.webhooks.deliveries}) == 1
    sink.fail_next(1, status=400)
    fake.create_room("s")
    await fake.webhooks.drain()
    assert [(d.attempt, d.status) for d in fake.webhooks.deliveries[3:]] == [(1, 400)]


async def test_connection_errors_are_retried_then_dropped() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with LiveKitStandin(webhook_url=f"http://127.0.0.1:{port}/hook") as fake:
        fake.create_room("r")
        await fake.webhooks.drain()
        attempts = fake.webhooks.deliveries
        assert [d.attempt for d in attempts] == [1, 2, 3, 4, 5]
        assert all(d.status is None and d.error for d in attempts)


async def test_duplicate_and_redeliver(livekit_standin: LiveKitStandin, sink: WebhookSink) -> None:
    fake = livekit_standin
    fake.webhooks.duplicate("participant_joined")
    fake.join("r", "alice")
    fake.join("r", "bob")
    await fake.webhooks.drain()
    names = sink.names()
    assert names == [
        "room_started",
        "participant_joined",
        "participant_joined",
        "participant_joined",
    ]
    assert sink.events[1].id == sink.events[2].id != sink.events[3].id
    fake.webhooks.redeliver(fake.events[0].id)
    await fake.webhooks.drain()
    assert sink.events[-1].id == fake.events[0].id
    assert [d.redelivery for d in fake.webhooks.deliveries] == [False, False, True, False, True]


@pytest.mark.parametrize(
    ("variant", "error"),
    [
        ("tampered", "hash mismatch"),
        ("hex_sha256", "hash mismatch"),
        ("no_sha256", "sha256 was not found in the token"),
        ("expired", "ExpiredSignatureError"),
        ("wrong_key", "InvalidIssuerError"),
        ("wrong_secret", "InvalidSignatureError"),
        ("bearer", "DecodeError"),
    ],
)
def test_sign_webhook_variants(variant: SignVariant, error: str) -> None:
    key, secret = "wh-key", "w" * 40
    event = api.WebhookEvent(event="room_started", room=api.Room(sid="RM_x", name="r"))
    receiver = api.WebhookReceiver(api.TokenVerifier(key, secret))
    body, headers = sign_webhook(event, key, secret)
    parsed = receiver.receive(body, headers["Authorization"])
    assert parsed.room.name == "r" and parsed.id.startswith("EV_") and parsed.created_at > 0
    assert headers["Content-Type"] == "application/webhook+json"
    body, headers = sign_webhook(event, key, secret, variant=variant)
    with pytest.raises(Exception) as err:
        receiver.receive(body, headers["Authorization"])
    assert error in f"{type(err.value).__name__}: {err.value}"


def test_event_keys() -> None:
    egress = api.WebhookEvent(
        event="egress_updated",
        room=api.Room(name="r"),
        egress_info=api.EgressInfo(egress_id="EG_1"),
    )
    assert event_key(egress) == "EG_1"
    assert event_key(api.WebhookEvent(event="x", room=api.Room(name="r"))) == "r"
    assert event_key(api.WebhookEvent(event="x")) == "default"
    assert encode_webhook_body(api.WebhookEvent(event="x")) == '{"event": "x"}'
