"""Bounded demonstration traffic against a running server, so ``/ops/`` has something to show.

    python -m bench.demo_traffic --server http://127.0.0.1:8071 \\
        --livekit http://127.0.0.1:7880 --provider http://127.0.0.1:8083 --seconds 60

Everything goes through the outside interfaces, as real clients would: a host logs in through
the OIDC provider stand-in's form, creates rooms (one restricted, with a lobby) with the REST
API, starts and stops a recording; participants join, publish and leave through the LiveKit
stand-in's controls (``/_fake/*``), which send the server signed webhooks; guests knock on the
lobby with ``request-entry`` every second and the host lets some in. It stops after
``--seconds`` (or at Ctrl-C). A demonstration, not a load test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

API = "/api/v1.0"
ROOM_NAMES = ("Daily standup", "Design review", "All hands", "Support desk")
PEOPLE = (
    "ada", "grace", "alan", "edsger", "barbara", "ken", "dennis", "margaret", "linus", "guido",
    "frances", "john", "donald", "radia", "leslie", "tim",
)  # fmt: skip
LOBBY_COOKIE = "lobbyParticipantId"
RECORDING_ON, RECORDING_OFF = 30.0, 10.0
_LOGIN_ID = re.compile(r'name="login_id" value="([^"]+)"')


@dataclass
class Counters:
    rooms: int = 0
    joins: int = 0
    leaves: int = 0
    knocks: int = 0
    admitted: int = 0
    recordings: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class Guest:
    session: aiohttp.ClientSession
    room: str
    name: str
    cookie: str = ""  # the lobby cookie: the same waiting entry from one poll to the next


def _jar() -> aiohttp.CookieJar:
    return aiohttp.CookieJar(unsafe=True)  # loopback IP addresses keep their cookies


async def log_in(
    server: str, provider: str, sub: str, *, name: str = "Demo Host"
) -> aiohttp.ClientSession:
    """A session logged in as ``sub`` through the provider's login form (then signed out of
    the provider, so the next browser login gets the form too)."""
    session = aiohttp.ClientSession(cookie_jar=_jar())
    given, _, usual = name.partition(" ")
    try:
        async with session.get(f"{server}{API}/authenticate/", allow_redirects=False) as r:
            authorize = r.headers["Location"]
        async with session.get(authorize, allow_redirects=False) as r:
            if r.status == 302:
                callback = r.headers["Location"]  # someone is logged in at the provider
            else:
                found = _LOGIN_ID.search(await r.text())
                if found is None:
                    raise RuntimeError(f"no login form at {authorize} ({r.status})")
                form = {
                    "login_id": found.group(1),
                    "sub": sub,
                    "email": f"{sub}@example.com",
                    "given_name": given,
                    "usual_name": usual,
                    "action": "login",
                }
                async with session.post(
                    f"{provider}/authorize", data=form, allow_redirects=False
                ) as posted:
                    callback = posted.headers["Location"]
        async with session.get(callback, allow_redirects=False) as r:
            if r.status != 302:
                raise RuntimeError(f"login callback answered {r.status}")
        async with session.get(f"{provider}/logout", allow_redirects=False):
            pass
    except BaseException:
        await session.close()
        raise
    return session


def _csrf(session: aiohttp.ClientSession) -> dict[str, str]:
    for cookie in session.cookie_jar:
        if cookie.key == "csrftoken":
            return {"X-CSRFToken": cookie.value}
    return {}


class Traffic:
    def __init__(
        self, server: str, livekit: str, host: aiohttp.ClientSession, *, seed: int = 7
    ) -> None:
        self.server = server
        self.livekit = livekit
        self.host = host
        self.random = random.Random(seed)
        self.control = aiohttp.ClientSession()
        self.rooms: list[dict[str, Any]] = []
        self.present: dict[str, set[str]] = {}
        self.guests: list[Guest] = []
        self.recording_egress: str | None = None
        self.counters = Counters()

    async def close(self) -> None:
        for guest in self.guests:
            await guest.session.close()
        await self.control.close()

    async def _api(self, method: str, path: str, body: Any = None) -> Any:
        async with self.host.request(
            method, f"{self.server}{API}{path}", json=body, headers=_csrf(self.host)
        ) as response:
            data = await response.json(content_type=None) if response.content_length else None
            if response.status >= 400:
                raise RuntimeError(f"{method} {path}: {response.status} {data}")
            return data

    async def _fake(self, action: str, body: dict[str, Any]) -> Any:
        async with self.control.post(f"{self.livekit}/_fake/{action}", json=body) as response:
            data = await response.json(content_type=None)
            if response.status >= 400:
                raise RuntimeError(f"/_fake/{action}: {response.status} {data}")
            return data

    async def setup(self, rooms: int) -> None:
        for index in range(rooms):
            name = f"{ROOM_NAMES[index % len(ROOM_NAMES)]} {self.random.randrange(100, 999)}"
            room = await self._api("POST", "/rooms/", {"name": name})
            if index == 1:  # the restricted one: guests wait in its lobby
                room = await self._api(
                    "PATCH", f"/rooms/{room['id']}/", {"access_level": "restricted"}
                )
            self.rooms.append(room)
            self.present[str(room["id"])] = set()
            self.counters.rooms += 1
            await self.join(str(room["id"]))  # every room is live from the start

    async def join(self, room: str) -> None:
        free = [p for p in PEOPLE if p not in self.present[room]]
        if not free:
            return
        who = self.random.choice(free)
        await self._fake("join", {"room": room, "identity": who, "name": who.title()})
        self.present[room].add(who)
        self.counters.joins += 1
        if self.random.random() < 0.7:
            await self._fake("publish", {"room": room, "identity": who, "type": "AUDIO"})
        if self.random.random() < 0.4:
            await self._fake("publish", {"room": room, "identity": who, "type": "VIDEO"})

    async def leave(self, room: str) -> None:
        if not self.present[room]:
            return
        who = self.random.choice(sorted(self.present[room]))
        await self._fake("leave", {"room": room, "identity": who})
        self.present[room].discard(who)
        self.counters.leaves += 1

    async def knock(self) -> None:
        """A new guest at the restricted room's lobby; every waiting guest polls again."""
        room = self.rooms[1] if len(self.rooms) > 1 else self.rooms[0]
        if len(self.guests) < 6:
            name = f"Guest {self.random.randrange(1000, 9999)}"
            self.guests.append(Guest(aiohttp.ClientSession(), str(room["id"]), name))
        for guest in self.guests:
            url = f"{self.server}{API}/rooms/{guest.room}/request-entry/"
            # The lobby cookie is Secure: browsers keep it on http://127.0.0.1, aiohttp does not.
            cookies = {LOBBY_COOKIE: guest.cookie} if guest.cookie else None
            async with guest.session.post(
                url, json={"username": guest.name}, cookies=cookies
            ) as response:
                if response.status == 200:
                    self.counters.knocks += 1
                    issued = response.cookies.get(LOBBY_COOKIE)
                    if issued is not None:
                        guest.cookie = issued.value

    async def admit(self) -> None:
        room = self.rooms[1] if len(self.rooms) > 1 else self.rooms[0]
        waiting = await self._api("GET", f"/rooms/{room['id']}/waiting-participants/")
        entries = (waiting or {}).get("participants", [])
        if not entries:
            return
        entry = self.random.choice(entries)
        allow = self.random.random() < 0.75
        body = {"participant_id": entry["id"], "allow_entry": allow}
        await self._api("POST", f"/rooms/{room['id']}/enter/", body)
        self.counters.admitted += int(allow)
        for guest in [g for g in self.guests if g.name == entry["username"]]:
            self.guests.remove(guest)
            await guest.session.close()

    async def start_recording(self) -> None:
        room = str(self.rooms[0]["id"])
        await self._api("POST", f"/rooms/{room}/start-recording/", {"mode": "screen_recording"})
        self.counters.recordings += 1
        state = await (await self.control.get(f"{self.livekit}/_fake/state")).json()
        active = [e for e in state["egresses"] if e.get("roomName") == room]
        if active:
            self.recording_egress = active[-1]["egressId"]
            if active[-1].get("status", "EGRESS_STARTING") == "EGRESS_STARTING":
                # A stand-in in manual egress mode: move it along as LiveKit would.
                await self._fake(
                    "advance_egress",
                    {"egress_id": self.recording_egress, "status": "EGRESS_ACTIVE"},
                )

    async def stop_recording(self) -> None:
        room = str(self.rooms[0]["id"])
        await self._api("POST", f"/rooms/{room}/stop-recording/")

    async def step(self) -> None:
        room = str(self.random.choice(self.rooms)["id"])
        roll = self.random.random()
        crowd = sum(len(p) for p in self.present.values())
        if roll < 0.55 or crowd < 4:
            await self.join(room)
        else:
            await self.leave(room)
        await self.knock()
        if self.random.random() < 0.25:
            await self.admit()

    async def run(self, seconds: float, *, rooms: int = 4, interval: float = 0.25) -> Counters:
        """Traffic for ``seconds``; in runs of 20 s or more, the recording cycles (30 s on,
        10 s off) so the pipeline and the outbox have something to show."""
        started = time.monotonic()
        await self.setup(rooms)
        start_at = min(2.0, seconds / 4)
        stop_at: float | None = None
        while (elapsed := time.monotonic() - started) < seconds:
            try:
                await self.step()
                if stop_at is None and elapsed >= start_at:
                    await self.start_recording()
                    stop_at = elapsed + RECORDING_ON if seconds >= 20 else float("inf")
                elif stop_at is not None and elapsed >= stop_at:
                    await self.stop_recording()
                    stop_at, start_at = None, elapsed + RECORDING_OFF
            except (RuntimeError, aiohttp.ClientError) as exc:
                self.counters.errors.append(str(exc))
                if len(self.counters.errors) > 50:
                    raise
            await asyncio.sleep(interval)
        return self.counters


async def main(args: argparse.Namespace) -> None:
    host = await log_in(args.server, args.provider, args.host_sub)
    traffic = Traffic(args.server, args.livekit, host)
    try:
        counters = await traffic.run(args.seconds)
    finally:
        await traffic.close()
        await host.close()
    print(
        f"demo traffic done: {counters.rooms} rooms, {counters.joins} joins, "
        f"{counters.leaves} leaves, {counters.knocks} lobby polls, {counters.admitted} admitted, "
        f"{counters.recordings} recording(s); {len(counters.errors)} error(s)"
    )
    for error in counters.errors[:5]:
        print(f"  {error}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="http://127.0.0.1:8071")
    parser.add_argument("--livekit", default="http://127.0.0.1:7880")
    parser.add_argument("--provider", default="http://127.0.0.1:8083")
    parser.add_argument("--host-sub", default="demo-host")
    parser.add_argument("--seconds", type=float, default=60.0)
    return parser


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(build_parser().parse_args()))
