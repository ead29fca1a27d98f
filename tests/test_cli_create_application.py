"""``meet-coordinator create-application``: one JSON line, the secret shown once and stored
hashed, and the credentials work on the real token endpoint. Both databases."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sqlalchemy import select

from api import keys
from api.app import create_app
from coordinator.cli import main
from storage.models import Application, ApplicationDomain
from tests.support.external import TOKEN_URL, Client, external_settings
from tests.support.factories import Factory


async def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    def call() -> int:
        try:
            return main(["create-application", *args])
        except SystemExit as exc:
            return int(exc.code or 0)

    code = await asyncio.to_thread(call)
    out, err = capsys.readouterr()
    return code, out, err


async def test_create_application_prints_working_credentials_once(
    aiohttp_client: Any,
    database_url: str,
    factory: Factory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("APPLICATION_SECRET_HASH_ITERATIONS", "1000")
    monkeypatch.setenv("APPLICATION_ENABLED", "true")  # its JWT key is not needed here
    code, out, err = await run(
        capsys,
        "--name", "Calendar",
        "--domain", " Example.COM ",
        "--domain", "other.org",
        "--domain", "EXAMPLE.com",
        "--scope", "rooms:create",
        "--scope", "rooms:list",
    )  # fmt: skip
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert len(lines) == 1
    credentials = json.loads(lines[0])
    assert set(credentials) == {"client_id", "client_secret"}
    assert len(credentials["client_id"]) == 40 and len(credentials["client_secret"]) == 128
    code, out, _ = await run(capsys, "--name", "Dormant", "--inactive")
    dormant = json.loads(out)

    client: Client = await aiohttp_client(create_app(external_settings(database_url)))
    async with client.app[keys.SESSIONMAKER]() as session:
        stored = {app.name: app for app in await session.scalars(select(Application))}
        domains = sorted(await session.scalars(select(ApplicationDomain.domain)))
    assert stored["Calendar"].client_secret.startswith("pbkdf2_sha256$1000$")
    assert credentials["client_secret"] not in stored["Calendar"].client_secret
    assert stored["Calendar"].scopes == ["rooms:create", "rooms:list"]
    assert (stored["Calendar"].is_active, stored["Dormant"].is_active) == (True, False)
    assert domains == ["example.com", "other.org"]

    await factory.user(email="someone@example.com")
    grant = {"grant_type": "client_credentials", "scope": "someone@example.com"}
    response = await client.post(TOKEN_URL, json={**credentials, **grant})
    assert response.status == 200
    assert (await response.json())["scope"] == "rooms:create rooms:list"
    response = await client.post(TOKEN_URL, json={**dormant, **grant})
    assert (response.status, await response.json()) == (
        401,
        {"detail": "Application is inactive"},
    )

    # Bad arguments: exit status 2, a message on stderr, nothing on stdout, nothing stored.
    for args in (
        ("--name", "X", "--domain", "not a domain"),
        ("--name", "X", "--scope", "rooms:everything"),
        ("--name", "   "),
        ("--name", "x" * 256),
        ("--domain", "example.com"),
    ):
        code, out, err = await run(capsys, *args)
        assert (code, out) == (2, "") and err, args
    async with client.app[keys.SESSIONMAKER]() as session:
        assert len(list(await session.scalars(select(Application)))) == 2

    code, out, _ = await run(capsys, "--help")
    assert code == 0
    for text in ("--name NAME", "--domain DOMAIN", "--scope SCOPE", "--inactive", "client_secret"):
        assert text in out
