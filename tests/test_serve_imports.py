"""What a serving process loads: libraries of features it does not use stay unimported.

Telephony's phone-number metadata, the SMTP client, authlib and joserfc (OIDC) and botocore (S3)
are imported on first use, not by ``serve`` (about 6 MiB of the process's memory, issue 12
point 7). The process runs the app's startup and answers requests, in a fresh interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.test_cli import env_for

LAZY = ("phonenumbers", "aiosmtplib", "authlib", "botocore", "aiobotocore", "joserfc")

SERVE = """
import asyncio, json, sys

from aiohttp.test_utils import TestClient, TestServer

from coordinator import cli
from storage.migrate import upgrade

cli.build_parser()  # what `serve` imports before the app
from api.app import create_app


async def main() -> None:
    settings = cli._settings()
    await upgrade(settings.database_url)
    async with TestClient(TestServer(create_app(settings))) as client:
        for path in ("/api/v1.0/config/", "/__heartbeat__", "/api/v1.0/rooms/nope/"):
            async with client.get(path) as response:
                assert response.status in (200, 404), (path, response.status)


asyncio.run(main())
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[1:]))))
"""


def test_serving_does_not_import_the_libraries_of_unused_features(tmp_path: Path) -> None:
    env = env_for(tmp_path, DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'meet.db'}")
    done = subprocess.run(
        [sys.executable, "-c", SERVE, *LAZY],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parent.parent,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []
