"""Response bodies are encoded by orjson: the same JSON as ``json.dumps`` gave, whatever the
values (including the ones orjson refuses)."""

from __future__ import annotations

import dataclasses
import enum
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from api.http import dumps, json_response


class Level(enum.StrEnum):
    PUBLIC = "public"


@dataclasses.dataclass
class Thing:
    n: int


VALUES: list[Any] = [
    {"id": uuid.UUID(int=7), "at": datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)},
    {1: "int key", "level": Level.PUBLIC, "f": 1.5, "none": None, "yes": True},
    {"text": 'é ü 漢字 \u2028 "quoted" \\ \x00'},
    {"huge": 10**30, "list": [2**64, -(2**70)]},  # past 64 bits: orjson refuses, json does not
    {"thing": Thing(3)},
    [],
]


@pytest.mark.parametrize("value", VALUES)
def test_bodies_decode_to_what_json_dumps_gave(value: Any) -> None:
    expected = json.loads(json.dumps(value, default=str))
    assert json.loads(dumps(value)) == expected
    response = json_response(value)
    assert response.content_type == "application/json" and response.charset == "utf-8"
    assert isinstance(response.body, bytes) and json.loads(response.body) == expected
