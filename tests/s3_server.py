"""A real S3-compatible HTTP server for the tests: moto's server mode, on loopback.

``s3_server`` (session scope) starts ``python -m moto.server`` on 127.0.0.1 and a free port in
its own process, waits until it answers and stops it by its PID at the end. ``s3_settings``
gives a fresh bucket on it for one test, created through the production client
(:class:`coordinator.object_storage.ObjectStorage`). moto does not check signatures (its IAM
mode cannot serve presigned URLs), so the media-auth tests also check the signature against
the independent SigV4 of ``tests.support.sigv4``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from coordinator.object_storage import ObjectStorage
from coordinator.settings import S3Settings, Secret

ACCESS_KEY = "meet"
SECRET_KEY = "moto-secret-key-for-tests"


@dataclass(frozen=True)
class S3Server:
    url: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    port = _free_port()
    env = {**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"}
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError("moto's S3 server exited at start")
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto's S3 server did not answer in 30 s") from None
                time.sleep(0.05)
        yield S3Server(url)
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
async def s3_settings(s3_server: S3Server) -> AsyncIterator[S3Settings]:
    """A new, empty bucket on the session's server."""
    settings = S3Settings(
        endpoint_url=s3_server.url,
        bucket=f"meet-{uuid.uuid4().hex[:12]}",
        access_key=ACCESS_KEY,
        secret_key=Secret(SECRET_KEY),
        region="us-east-1",
        timeout_seconds=5.0,
    )
    async with ObjectStorage(settings) as storage:
        await storage.create_bucket()
    yield settings
