"""Session cookies are decrypted once and remembered only while valid: an expired cookie is
refused even from memory, a forged one is never remembered."""

from __future__ import annotations

import pytest

from api.session import SessionCodec


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    import time

    found = Clock(time.time())
    monkeypatch.setattr(time, "time", found.time)  # the codec's and Fernet's clock
    return found


def test_a_remembered_cookie_still_expires(clock: Clock) -> None:
    codec = SessionCodec("k" * 50, max_age=3600)
    cookie = codec.encode({"sid": "key", "uid": "user", "exp": clock.now + 60})
    assert codec.decode(cookie) == {"sid": "key", "uid": "user", "exp": clock.now + 60}
    first = codec.decode(cookie)
    assert first is not None
    first["uid"] = "tampered"  # a caller changing its copy changes nothing remembered
    assert codec.decode(cookie) == {"sid": "key", "uid": "user", "exp": clock.now + 60}
    clock.now += 61
    assert codec.decode(cookie) is None
    assert codec.decode(cookie) is None


def test_the_max_age_bounds_a_remembered_cookie(clock: Clock) -> None:
    codec = SessionCodec("k" * 50, max_age=10)
    cookie = codec.encode({"sid": "key", "uid": "user"})
    assert codec.decode(cookie) is not None
    clock.now += 11
    assert codec.decode(cookie) is None


def test_forged_values_are_not_remembered(clock: Clock) -> None:
    codec = SessionCodec("k" * 50, max_age=3600)
    other = SessionCodec("o" * 50, max_age=3600)
    forged = [other.encode({"sid": str(n), "uid": "x"}) for n in range(50)]
    forged += ["garbage", "\x00\xff", "a" * 5000]
    assert all(codec.decode(value) is None for value in forged)
    assert codec._decoded == {}
