"""The sliding-log throttle: costs, waits and DRF's message."""

from __future__ import annotations

from coordinator.throttle import Rate, Throttle, throttled_message


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_costs_count_as_several_hits_and_refusals_record_nothing() -> None:
    clock = Clock()
    throttle = Throttle(5, 60.0, clock=clock)
    assert throttle.hit("u", 3) is None
    clock.now += 10
    assert throttle.hit("u", 2) is None
    assert throttle.hit("u") == 50.0  # the first 3 leave the window 60 s after they came
    clock.now += 50
    assert throttle.hit("u", 3) is None  # the refusal above took nothing
    assert throttle.hit("u", 6) == 60.0  # above the whole rate: never passes
    assert throttle.hit("other") is None


def test_of_none_is_no_throttle() -> None:
    assert Throttle.of(None) is None
    throttle = Throttle.of(Rate(2, 1.0))
    assert throttle is not None and (throttle.rate, throttle.per) == (2, 1.0)


def test_message_is_drfs() -> None:
    assert throttled_message(59.2) == "Request was throttled. Expected available in 60 seconds."
    assert throttled_message(0.3) == "Request was throttled. Expected available in 1 second."


def test_lobby_ids_read_only_what_they_signed() -> None:
    from coordinator.identity import LobbyIds

    ids = LobbyIds("k" * 40)
    participant_id = ids.new()
    cookie = ids.sign(participant_id)
    assert ids.read(cookie) == participant_id
    assert LobbyIds("other" * 10).read(cookie) is None  # another SECRET_KEY
    for bad in (None, "", participant_id, cookie + "x", cookie[:-1] + "é", "é.é", cookie.upper()):
        assert ids.read(bad) is None, bad
