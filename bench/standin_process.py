"""The LiveKit stand-in in a process of its own, driven through its ``/_fake/*`` control API.

A real LiveKit server runs apart from the coordinator: its handling of the API calls, the
signing and sending of its webhooks, cost the coordinator nothing. In the bench's process the
stand-in shares the app's event loop, so that work lands inside the requests being timed (an
egress's first webhooks are sent while its start request is still in flight). Here it runs
as ``python -m tests.livekit_standin`` on an ephemeral loopback port.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import aiohttp

from tests.livekit_standin.auth import DEFAULT_API_KEY, DEFAULT_API_SECRET

START_SECONDS = 60.0  # a loaded machine imports slowly


class StandinError(RuntimeError):
    pass


class StandinProcess:
    """``async with StandinProcess() as livekit``: ``url``, the API key pair, and the
    control calls the benches use (webhook target, joins, egress progress, draining)."""

    def __init__(
        self, api_key: str = DEFAULT_API_KEY, api_secret: str = DEFAULT_API_SECRET
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.url = ""
        self._process: asyncio.subprocess.Process | None = None
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> StandinProcess:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.livekit_standin",
            "--port",
            "0",
            "--keys",
            f"{self.api_key}:{self.api_secret}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            self.url = await asyncio.wait_for(self._listening(), START_SECONDS)
        except BaseException:
            await self._stop()
            raise
        self._http = aiohttp.ClientSession(self.url)
        return self

    async def _listening(self) -> str:
        assert self._process is not None and self._process.stdout is not None
        while line := (await self._process.stdout.readline()).decode():
            if line.startswith("listening on "):
                return line.split()[2]
        raise StandinError("the LiveKit stand-in exited before listening")

    async def __aexit__(self, *exc_info: object) -> None:
        if self._http is not None:
            await self._http.close()
        await self._stop()

    async def _stop(self) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def _control(self, path: str, body: dict[str, Any], wait: float = 30) -> Any:
        assert self._http is not None
        async with self._http.post(
            f"/_fake/{path}", json=body, timeout=aiohttp.ClientTimeout(total=wait + 5)
        ) as response:
            answer = await response.json()
            if response.status != 200:
                raise StandinError(f"/_fake/{path}: {response.status} {answer}")
            return answer

    async def set_webhook_url(self, url: str) -> None:
        await self._control("webhook_url", {"url": url})

    async def join(self, room: str, identity: str) -> None:
        """A participant connects (the room is created with the first)."""
        await self._control("join", {"room": room, "identity": identity})

    async def advance_egress(self, egress_id: str, status: str) -> None:
        """``status``: an ``EgressStatus`` name (``EGRESS_ACTIVE``...)."""
        await self._control("advance_egress", {"egress_id": egress_id, "status": status})

    async def drain(self, max_wait: float) -> None:
        """Every webhook sent so far delivered (``StandinError`` past ``max_wait``)."""
        await self._control("drain", {"max_wait": max_wait}, wait=max_wait)
