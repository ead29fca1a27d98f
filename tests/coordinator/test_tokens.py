"""LiveKit tokens: our HS256 encoder makes exactly PyJWT's bytes."""

from __future__ import annotations

import json

import jwt

from coordinator.settings import LiveKitSettings, Secret
from coordinator.tokens import (
    _JWS,
    Participant,
    TokenMemory,
    encode_hs256,
    mint_token,
    participant_color,
)


def test_encode_hs256_is_byte_for_byte_pyjwt() -> None:
    secret = "livekit-secret-" + "x" * 40
    for claims in (
        {},
        {"iss": "key", "sub": "Zoé ✓", "exp": 1, "video": {"room": "r", "canPublishSources": []}},
        {"name": "a" * 500, "attributes": {"color": "hsl(1, 2%, 3%)", "room_role": ""}},
        {"name": 'del \x7f, controls \x00\x1f\n, quote " and \\'},
        {"name": "\u2028, a lone surrogate \ud83d, \U0001f600"},
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


def _settings() -> LiveKitSettings:
    return LiveKitSettings(
        api_key="key", api_secret=Secret("secret-" + "s" * 40), api_url="ws://lk", verify_ssl=True
    )


def _mint(memory: TokenMemory, now: float, **changes: object) -> str:
    fields: dict[str, object] = {"identity": "sub-1", "name": "Ann", "is_authenticated": True}
    fields.update(changes)
    sources = fields.pop("sources", ["camera"])
    room = fields.pop("room", "room-1")
    return mint_token(
        _settings(),
        room=str(room),
        participant=Participant(**fields),  # type: ignore[arg-type]
        sources=sources,  # type: ignore[arg-type]
        now=now,
        memory=memory,
    )


def test_a_token_is_reused_for_the_same_grants_within_the_window_only() -> None:
    memory = TokenMemory(size=8, reuse_seconds=60)
    first = _mint(memory, 1000.0)
    assert _mint(memory, 1059.9) == first
    claims = jwt.decode(
        first,
        "secret-" + "s" * 40,
        algorithms=["HS256"],
        options={"verify_nbf": False, "verify_exp": False},
    )
    assert claims["nbf"] == 1000
    # anything the token says but its times gives another token
    others = {
        _mint(memory, 1001.0, room="room-2"),
        _mint(memory, 1001.0, role="owner"),
        _mint(memory, 1001.0, name="Bob"),
        _mint(memory, 1001.0, identity="sub-2"),
        _mint(memory, 1001.0, color="hsl(1, 2%, 3%)"),
        _mint(memory, 1001.0, sources=[]),
        _mint(memory, 1001.0, is_authenticated=False),
    }
    assert first not in others and len(others) == 7
    later = _mint(memory, 1060.0)  # the window is over: a new token, valid from now
    assert later != first
    assert jwt.decode(later, options={"verify_signature": False})["nbf"] == 1060
    assert _mint(memory, 999.0) != later  # a clock going back never gets a future nbf


def test_the_token_memory_is_bounded() -> None:
    memory = TokenMemory(size=3, reuse_seconds=60)
    tokens = [_mint(memory, 1000.0, room=f"room-{n}") for n in range(10)]
    assert len(memory) == 3
    assert _mint(memory, 1001.0, room="room-9") == tokens[9]
    assert _mint(memory, 1001.0, room="room-0") != tokens[0]
