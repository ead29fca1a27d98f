"""LiveKit tokens: our HS256 encoder makes exactly PyJWT's bytes."""

from __future__ import annotations

import json

import jwt

from coordinator.tokens import _JWS, encode_hs256, participant_color


def test_encode_hs256_is_byte_for_byte_pyjwt() -> None:
    secret = "livekit-secret-" + "x" * 40
    for claims in (
        {},
        {"iss": "key", "sub": "Zoé ✓", "exp": 1, "video": {"room": "r", "canPublishSources": []}},
        {"name": "a" * 500, "attributes": {"color": "hsl(1, 2%, 3%)", "room_role": ""}},
    ):
        payload = json.dumps(claims, separators=(",", ":")).encode()
        token = encode_hs256(claims, secret)
        assert token == _JWS.encode(payload, secret, algorithm="HS256")
        assert jwt.decode(token, secret, algorithms=["HS256"], options={"verify_exp": False}) == (
            claims
        )


def test_participant_color_is_stable() -> None:
    assert participant_color("someone") == participant_color("someone")
    assert participant_color("someone").startswith("hsl(")
