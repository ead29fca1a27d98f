"""The Ray engine (DESIGN §3): K room hosts, each a Ray actor holding many room actors.

A room host is a named, detached, restartable async Ray actor that runs a ``LocalDirectory`` (the
very same ``RoomActor``/``decide`` as the local engine) over ports it builds in its own process
from the settings: a database engine, a LiveKit adapter with its own HTTP session, the recording
lifecycle, and the idle sweep. Front ends (``RayDirectory``) are stateless Ray drivers: a room is
placed on a host by rendezvous hashing of its name over the live host names, and each command
goes there as one Ray call bounded by the command deadline (past it: 503).

Order and duplicates (Ray reorders calls to async actors and re-executes them on retry): the
host's per-room mailbox applies a room's commands one at a time, and a front end sends a room's
next command only once the previous one answered. Every command carries a ``command_id``: the
host keeps a bounded map of command ids to their replies (or to the run still under way), so a
resent command is answered, not run again; the database deduplicates what writes (a recording
started by command ``c`` has the id ``recording_id_for(c)``, so a re-run after a host restart
finds it instead of inserting a second one).

Failures: when a host's process dies Ray restarts it (``max_restarts=-1``) and its rooms
re-activate through recovery (the recording in flight from the database, participants and
egresses from LiveKit, lobby entries from the database). A command whose host died under it is
sent once more with the same ``command_id`` when it is safe to (``RESENDABLE``), else answered
503: never a wrong answer, never applied twice.

This is the only module that imports ``ray``, and only when first used (``connect`` sets the
environment Ray reads at import: on one machine it then stays on 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import pickle
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from coordinator.actor import LocalDirectory
from coordinator.engines.lobby import LobbyJournal
from coordinator.errors import ConfigurationError, CoordinatorError, Unavailable
from coordinator.livekit import LiveKitAdapter
from coordinator.recordings import RecordingLifecycle
from coordinator.room import (
    ApplyWebhook,
    CheckPresence,
    Command,
    DecideEntry,
    ListWaiting,
    MuteParticipant,
    ReconcileRecording,
    RemoveParticipant,
    RequestEntry,
    Snapshot,
    StartRecording,
    SyncRoomSettings,
    UpdateParticipant,
)
from coordinator.rooms import RoomService
from coordinator.settings import Settings, require_shared_database
from storage.engine import create_engine, create_sessionmaker

log = logging.getLogger(__name__)

HOST_PREFIX = "room-host-"
REPLIES_KEPT = 10_000  # command ids remembered per host (with their replies)
HOST_LOST_MESSAGE = "The room's host is restarting; try again."
BUSY_MESSAGE = "The room is busy; try again."
HEALTH_TIMEOUT = 2.0
REFRESH_SECONDS = 5.0
# Commands a front end may send again (same command_id) when their host died under them:
# reads, and writes that are idempotent or deduplicated by the database. The others (stop a
# recording, remove a participant, finish a recording) answer 503 instead: their second run
# would answer differently (404, "not savable") although the first one applied.
RESENDABLE = (
    Snapshot,
    ListWaiting,
    CheckPresence,
    RequestEntry,
    DecideEntry,
    ApplyWebhook,
    StartRecording,
    ReconcileRecording,
    SyncRoomSettings,
    MuteParticipant,
    UpdateParticipant,
)
LOBBY_COMMANDS = (RequestEntry, DecideEntry, RemoveParticipant, ApplyWebhook)
# Commands a front end sends to a host together, one Ray call for all of those queued while
# its last batch to that host was out (each keeping its command_id): webhooks, the ingestion
# path, of many rooms at once. A Ray call costs milliseconds of CPU over the process tree; a
# webhook's work, a fraction of one.
BATCHED = (ApplyWebhook,)
# How long a host's reply to a batch waits for its slowest command (one that reads the
# database on its way: an egress's recording, the lobby of a room the host activates): a
# command not done by then is answered "pending", and its front end awaits it alone (the
# resend of its command_id returns its run's reply).
BATCH_WAIT_SECONDS = 0.05
# Batch calls out per host and front end; what comes meanwhile makes the next batch. One pair
# against 2 (--workers 2, two hosts): 680 / 1,222 against 552 / 1,109 webhooks/s at c=16 / 64.
BATCHES_IN_FLIGHT = 1
LOBBY_SWEEP_SECONDS = 60.0
RECORDING_IDS = uuid.UUID("5b0f6f55-3c55-4d0e-9a7e-1f3c8f0b6a21")  # uuid5 namespace


def _ray() -> Any:
    import ray

    return ray


def _host_failure() -> tuple[type[BaseException], type[BaseException]]:
    """Ray's errors for a host that failed under a call: (any failure, died for good)."""
    from ray.exceptions import ActorDiedError, RayActorError

    return RayActorError, ActorDiedError


def host_names(count: int) -> list[str]:
    return [f"{HOST_PREFIX}{index}" for index in range(count)]


def place(room: str, hosts: list[str]) -> str:
    """Rendezvous (highest random weight) hashing: the host of ``room`` among ``hosts``.

    Adding a host moves only the rooms it now wins (~1/K of them); removing one moves only its
    own rooms."""
    if not hosts:
        raise Unavailable(HOST_LOST_MESSAGE)
    return max(hosts, key=lambda host: _weight(host, room))


def _weight(host: str, room: str) -> bytes:
    return hashlib.blake2b(f"{host}\0{room}".encode(), digest_size=8).digest()


def recording_id_for(command_id: str) -> uuid.UUID:
    """The id of the recording a start command creates: a re-run conflicts with the first."""
    return uuid.uuid5(RECORDING_IDS, command_id)


def fingerprint(settings: Settings) -> str:
    """Equal for equal settings, in any process (secrets included, sets sorted)."""
    canonical = json.dumps(_canonical(settings), sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _canonical(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "get") and type(value).__name__ == "Secret":
        return {"secret": value.get()}
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted(repr(v) for v in value)
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


# -- connecting and creating the hosts ------------------------------------------------------


def connect(address: str | None, *, namespace: str, num_cpus: int | None = None) -> None:
    """Join the Ray cluster at ``address`` as a driver; None or "local": start one for this
    machine (no dashboard, loopback only). Token auth is off unless RAY_AUTH_TOKEN is set."""
    if not os.environ.get("RAY_AUTH_TOKEN"):
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    local = address in (None, "", "local")
    if local:  # read when ray is imported: Ray then advertises 127.0.0.1, not the external IP
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray = _ray()
    if ray.is_initialized():
        return
    if local:
        ray.init(
            address="local",
            namespace=namespace,
            include_dashboard=False,
            log_to_driver=False,
            num_cpus=num_cpus,
            _node_ip_address="127.0.0.1",
        )
        return
    ray.init(address=address, namespace=namespace, log_to_driver=False)


def _host_class() -> Any:
    return _ray().remote(RoomHost)


def host_handle(name: str, *, namespace: str) -> Any:
    return _ray().get_actor(name, namespace=namespace)


def remove_hosts(names: list[str], *, namespace: str) -> None:
    """Kill the hosts for good (no restart) and leave Ray (tests; operators' teardown)."""
    for name in names:
        try:
            _ray().kill(host_handle(name, namespace=namespace), no_restart=True)
        except ValueError:
            pass


def node_address() -> str:
    """The address this driver's Ray node advertises (127.0.0.1 for a local Ray)."""
    address: str = _ray().util.get_node_ip_address()
    return address


def disconnect() -> None:
    """Leave Ray; a Ray started by :func:`connect` for this machine stops with it."""
    _ray().shutdown()


def ensure_hosts(count: int, settings_env: Mapping[str, str], *, namespace: str) -> list[str]:
    """Create (or find) the ``count`` room hosts; their names. ``settings_env``: the environment
    a host builds its settings from when it starts or restarts (a front end whose settings
    differ configures it on its first call)."""
    names = host_names(count)
    remote = _host_class()
    handles = [
        remote.options(
            name=name,
            namespace=namespace,
            lifetime="detached",
            get_if_exists=True,
            max_restarts=-1,
            max_task_retries=0,  # resends are ours, with the same command_id
            num_cpus=0,
            scheduling_strategy=host_placement(name, names),
        ).remote(dict(settings_env))
        for name in names
    ]
    _ray().get([handle.ready.remote() for handle in handles])
    return names


# -- the room host ----------------------------------------------------------------------------


class HostPorts:
    """What a host's rooms use, built in the host's process from the settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = create_engine(settings.database_url)
        self.sessionmaker = create_sessionmaker(self.engine)
        self.http = aiohttp.ClientSession()
        self.media = LiveKitAdapter(settings.livekit, self.http)
        rooms = RoomService(settings, self.sessionmaker)
        self.recordings = RecordingLifecycle(
            settings, self.sessionmaker, self.media, slug_of=rooms.slug_of
        )
        self.directory = LocalDirectory(
            self.media,
            self.recordings,
            idle_after=settings.room_idle_seconds,
            timeout=settings.livekit.timeout_seconds,
        )
        self.directory.start()
        self.lobby = LobbyJournal(self.sessionmaker)
        self._sweeper = asyncio.create_task(self._sweep_lobby(), name="lobby-sweeper")

    async def _sweep_lobby(self) -> None:
        while True:
            await asyncio.sleep(LOBBY_SWEEP_SECONDS)
            try:
                await self.lobby.forget_expired()
            except Exception as exc:
                log.warning("lobby sweep failed: %s", exc)

    async def close(self) -> None:
        self._sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._sweeper
        await self.directory.close()
        await self.http.close()
        await self.engine.dispose()


class RoomHost:
    """One room host (a Ray actor; every method is called through Ray)."""

    def __init__(self, settings_env: Mapping[str, str]) -> None:
        self._settings: Settings | None
        try:
            self._settings = Settings.from_env(settings_env)
        except ConfigurationError as exc:  # configured by its first front end instead
            log.info("room host waits for its configuration: %s", exc)
            self._settings = None
        self._fingerprint = fingerprint(self._settings) if self._settings else ""
        self._ports: HostPorts | None = None
        self._replies: OrderedDict[str, asyncio.Future[tuple[str, Any]]] = OrderedDict()
        self._configuring = asyncio.Lock()

    async def ready(self) -> bool:
        return True

    async def pid(self) -> int:
        return os.getpid()

    async def configure(self, settings: Settings) -> str:
        """Use ``settings`` (rebuilding the ports and forgetting the rooms if they changed)."""
        async with self._configuring:
            wanted = fingerprint(settings)
            if wanted != self._fingerprint or self._ports is None:
                require_shared_database(settings.database_url)
                if self._ports is not None:
                    await self._ports.close()
                    self._ports = None
                self._settings, self._fingerprint = settings, wanted
                self._replies.clear()
            return self._fingerprint

    async def _open(self) -> HostPorts:
        if self._ports is None:
            async with self._configuring:
                if self._ports is None:
                    assert self._settings is not None
                    self._ports = HostPorts(self._settings)
        return self._ports

    async def call(
        self, room: str, command_id: str, command: Command, settings_fingerprint: str
    ) -> tuple[str, Any]:
        """("ok", reply), ("error", exception) or ("configure", None): the caller's settings
        are not this host's (it restarted from its environment, or the front end changed)."""
        if settings_fingerprint != self._fingerprint or self._settings is None:
            return ("configure", None)
        known = self._replies.get(command_id)
        if known is not None:  # a resend: its first run's reply, never a second run
            self._replies.move_to_end(command_id)
            return await asyncio.shield(known)
        future: asyncio.Future[tuple[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[command_id] = future
        self._forget_old_replies()
        try:
            outcome: tuple[str, Any] = ("ok", await self._apply(room, command_id, command))
        except CoordinatorError as exc:
            outcome = ("error", exc)
        except Exception as exc:
            log.exception("room %s: %s failed", room, type(command).__name__)
            outcome = ("error", _portable(exc))
        future.set_result(outcome)
        return outcome

    async def call_many(self, commands: bytes, settings_fingerprint: str) -> bytes:
        """Each (room, command_id, command) of the pickled list as :meth:`call`, concurrently,
        in one Ray call (rooms differ: a front end sends a room's next command once the last
        one answered); their outcomes, pickled, in order. Pickled by the caller and here: Ray
        would cloudpickle each object, several times slower. A command not answered within
        ``BATCH_WAIT_SECONDS`` is ("pending", None): it goes on, and :meth:`call` with its
        command_id returns its reply."""
        runs = [
            asyncio.ensure_future(self.call(room, command_id, command, settings_fingerprint))
            for room, command_id, command in pickle.loads(commands)
        ]
        await asyncio.wait(runs, timeout=BATCH_WAIT_SECONDS)
        return pickle.dumps([run.result() if run.done() else ("pending", None) for run in runs])

    def _forget_old_replies(self) -> None:
        while len(self._replies) > REPLIES_KEPT:
            oldest_id, oldest = next(iter(self._replies.items()))
            if not oldest.done():
                break  # still running: kept until it answers
            del self._replies[oldest_id]

    async def _apply(self, room: str, command_id: str, command: Command) -> Any:
        ports = await self._open()
        directory = ports.directory
        if isinstance(command, StartRecording) and command.recording_id is None:
            command = dataclasses.replace(command, recording_id=recording_id_for(command_id))
        if not directory.is_active(room):  # (re)activated here: its lobby comes back first
            restore = await ports.lobby.restore(room)
            if restore is not None:
                await directory.call(room, restore)
        reply = await directory.call(room, command)
        if isinstance(command, LOBBY_COMMANDS):
            try:
                await ports.lobby.sync(room, directory.actor(room).state)
            except Exception as exc:
                log.warning("room %s: lobby not written: %s", room, exc)
                if isinstance(command, DecideEntry):  # applied, but would not survive a restart
                    raise Unavailable(BUSY_MESSAGE) from exc
        return reply

    async def health(self, name: str) -> dict[str, Any]:
        if self._ports is None:
            return {
                "name": name,
                "alive": True,
                "rooms": 0,
                "queued": 0,
                "oldest_queued_seconds": None,
            }
        return self._ports.directory.host_health(name)

    async def active_rooms(self) -> list[str]:
        return [] if self._ports is None else self._ports.directory.active_rooms()

    async def drop(self, room: str) -> None:
        if self._ports is not None:
            await self._ports.directory.drop(room)

    async def settle(self, room: str) -> None:
        if self._ports is not None:
            await self._ports.directory.settle(room)

    async def shutdown(self) -> None:
        """Close the ports (tests and orderly stops; a crash simply loses them)."""
        if self._ports is not None:
            await self._ports.close()
            self._ports = None


def _portable(exc: Exception) -> Exception:
    """``exc`` if it survives pickling (it crosses processes), else a plain RuntimeError."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


# -- the front end's directory ----------------------------------------------------------------


class RayDirectory:
    """The ``RoomDirectory`` of a front end: commands go to the room's host through Ray."""

    def __init__(self, settings: Settings) -> None:
        require_shared_database(settings.database_url)
        self._settings = settings
        self._fingerprint = fingerprint(settings)
        self._namespace = settings.ray_namespace
        self._names = host_names(settings.ray_hosts)
        self._dead: set[str] = set()
        self._handles: dict[str, Any] = {}
        self._turns: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        # A command's deadline: its LiveKit calls, its queueing, one resend after a restart.
        self.timeout = 2 * settings.livekit.timeout_seconds + 1.0
        self._active: list[str] = []
        self._refresher: asyncio.Task[None] | None = None
        # BATCHED commands waiting for their host's next batch call, by host name.
        self._batches: dict[str, tuple[Any, list[tuple[str, str, Command, Any]]]] = {}
        self._flushing: set[str] = set()  # hosts whose batch goes at the next loop turn
        self._flying: dict[str, int] = {}  # batch calls out, by host
        self._in_flight: set[asyncio.Task[None]] = set()
        self.sent = {"calls": 0, "batched_commands": 0}  # Ray calls of BATCHED commands

    async def start(self) -> None:
        settings = self._settings
        await asyncio.to_thread(connect, settings.ray_address, namespace=self._namespace)
        environment = dict(os.environ)
        await asyncio.to_thread(
            ensure_hosts, settings.ray_hosts, environment, namespace=self._namespace
        )
        await asyncio.gather(*(self._configure(name) for name in self._names))
        if self._refresher is None:
            self._refresher = asyncio.create_task(self._refresh_forever(), name="ray-refresh")

    def live_hosts(self) -> list[str]:
        return [name for name in self._names if name not in self._dead]

    def host_of(self, room: str) -> str:
        return place(room, self.live_hosts())

    def _handle(self, name: str) -> Any:
        handle = self._handles.get(name)
        if handle is None:
            try:
                handle = host_handle(name, namespace=self._namespace)
            except ValueError:  # not found: gone for good
                self._dead.add(name)
                raise Unavailable(HOST_LOST_MESSAGE) from None
            self._handles[name] = handle
        return handle

    async def _configure(self, name: str) -> None:
        await self._handle(name).configure.remote(self._settings)

    @contextlib.asynccontextmanager
    async def _turn(self, room: str, deadline: float) -> AsyncIterator[None]:
        """One command of ``room`` at a time from this front end (Ray does not keep order)."""
        turn = self._turns.get(room)
        if turn is None:
            turn = self._turns[room] = (asyncio.Lock(), [0])
        lock, users = turn
        users[0] += 1
        try:
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                await asyncio.wait_for(lock.acquire(), max(0.0, remaining))
            except TimeoutError:
                raise Unavailable(BUSY_MESSAGE) from None
            try:
                yield
            finally:
                lock.release()
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._turns[room]

    async def call(self, room: str, command: Command) -> Any:
        """The command's reply, or 503 past its deadline or when its host was lost."""
        deadline = asyncio.get_running_loop().time() + self.timeout
        async with self._turn(room, deadline):
            return await self.send(room, uuid.uuid4().hex, command, deadline)

    async def send(self, room: str, command_id: str, command: Command, deadline: float) -> Any:
        """Send ``command`` as ``command_id``; once more after its host died if resendable."""
        loop = asyncio.get_running_loop()
        resends = 1 if isinstance(command, RESENDABLE) else 0
        configured = False
        failed, died = _host_failure()
        while True:
            name = self.host_of(room)
            try:
                handle = self._handle(name)
            except Unavailable:  # gone for good: its rooms go to the other hosts
                if not self.live_hosts():
                    raise
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise Unavailable(BUSY_MESSAGE)
            reference = self._remote_call(name, handle, room, command_id, command)
            try:
                kind, value = await asyncio.wait_for(reference, remaining)
            except TimeoutError:
                raise Unavailable(BUSY_MESSAGE) from None
            except failed as exc:
                if isinstance(exc, died):
                    self._dead.add(name)  # its rooms move to the other hosts
                self._handles.pop(name, None)
                log.warning("room %s: host %s failed: %s", room, name, type(exc).__name__)
                if resends == 0:
                    raise Unavailable(HOST_LOST_MESSAGE) from None
                resends -= 1
                continue
            if kind == "configure" and not configured:
                configured = True  # the host restarted from its environment: tell it ours
                await asyncio.wait_for(self._configure(name), max(0.0, deadline - loop.time()))
                continue
            if kind == "ok":
                return value
            if kind == "error":
                raise value
            raise Unavailable(HOST_LOST_MESSAGE)

    def _remote_call(
        self, name: str, handle: Any, room: str, command_id: str, command: Command
    ) -> Any:
        """The host's ("ok" | "error" | "configure", value) for the command, an awaitable
        that raises as the Ray call does. BATCHED commands share one call to their host:
        those queued in a loop turn, or while ``BATCHES_IN_FLIGHT`` calls to it are out (so
        that batches grow with the load, as group commits do)."""
        if not isinstance(command, BATCHED):
            return handle.call.remote(room, command_id, command, self._fingerprint)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        _, batch = self._batches.get(name) or (handle, [])
        self._batches[name] = (handle, batch)  # the newest handle of the host
        batch.append((room, command_id, command, future))
        self._flush_soon(name)
        return self._batched_reply(future, handle, room, command_id, command)

    async def _batched_reply(
        self, future: asyncio.Future[Any], handle: Any, room: str, command_id: str, command: Any
    ) -> Any:
        kind, value = await future
        if kind == "pending":  # still running on the host: its own call awaits its reply
            kind, value = await handle.call.remote(room, command_id, command, self._fingerprint)
        return kind, value

    def _flush_soon(self, name: str) -> None:
        if name in self._batches and name not in self._flushing:
            if self._flying.get(name, 0) < BATCHES_IN_FLIGHT:
                self._flushing.add(name)
                asyncio.get_running_loop().call_soon(self._flush, name)

    def _flush(self, name: str) -> None:
        self._flushing.discard(name)
        handle, batch = self._batches.pop(name, (None, []))
        if batch:
            self._flying[name] = self._flying.get(name, 0) + 1
            task = asyncio.ensure_future(self._send_batch(handle, batch))
            self._in_flight.add(task)
            task.add_done_callback(lambda t: self._landed(name, t))

    def _landed(self, name: str, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._flying[name] -= 1
        self._flush_soon(name)  # what queued meanwhile

    async def _send_batch(
        self, handle: Any, batch: list[tuple[str, str, Command, asyncio.Future[Any]]]
    ) -> None:
        """One Ray call for the batch; its outcomes (or its failure) to each command."""
        self.sent["calls"] += 1
        self.sent["batched_commands"] += len(batch)
        try:
            if len(batch) == 1:
                room, command_id, command, _ = batch[0]
                reference = handle.call.remote(room, command_id, command, self._fingerprint)
                outcomes = [await asyncio.wait_for(reference, self.timeout)]
            else:
                commands = [(room, command_id, command) for room, command_id, command, _ in batch]
                reference = handle.call_many.remote(pickle.dumps(commands), self._fingerprint)
                # Bounded: the host's next batch waits for this one's slot.
                outcomes = pickle.loads(await asyncio.wait_for(reference, self.timeout))
        except BaseException as exc:
            for *_, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (*_, future), outcome in zip(batch, outcomes, strict=True):
            if not future.done():
                future.set_result(outcome)

    async def health(self) -> dict[str, Any]:
        hosts = await asyncio.gather(*(self._host_health(name) for name in self._names))
        return {"engine": "ray", "hosts": list(hosts)}

    async def _host_health(self, name: str) -> dict[str, Any]:
        try:
            handle = self._handle(name)
            health: dict[str, Any] = await asyncio.wait_for(
                handle.health.remote(name), HEALTH_TIMEOUT
            )
        except (_host_failure()[0], CoordinatorError, TimeoutError):
            self._handles.pop(name, None)
            return {
                "name": name,
                "alive": False,
                "rooms": 0,
                "queued": 0,
                "oldest_queued_seconds": None,
            }
        return health

    def active_rooms(self) -> list[str]:
        """The rooms the hosts held at the last refresh (every few seconds; ``health()`` and
        ``refresh()`` ask them now)."""
        return list(self._active)

    async def refresh(self) -> list[str]:
        """Ask the hosts for their rooms; a host seen dead that exists again is used again."""
        for name in list(self._dead):
            try:
                handle = host_handle(name, namespace=self._namespace)
                await asyncio.wait_for(handle.ready.remote(), HEALTH_TIMEOUT)
            except (ValueError, _host_failure()[0], TimeoutError):
                continue
            self._handles[name] = handle
            self._dead.discard(name)
        rooms: list[str] = []
        for name in self.live_hosts():
            try:
                handle = self._handle(name)
                rooms += await asyncio.wait_for(handle.active_rooms.remote(), HEALTH_TIMEOUT)
            except (_host_failure()[0], CoordinatorError, TimeoutError):
                self._handles.pop(name, None)
        self._active = rooms
        return rooms

    async def _refresh_forever(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:
                log.exception("refreshing the hosts' rooms failed")
            await asyncio.sleep(REFRESH_SECONDS)

    async def drop(self, room: str) -> None:
        """Forget a room's actor on its host, as a crash would (tests and tools)."""
        await self._handle(self.host_of(room)).drop.remote(room)

    async def settle(self, room: str) -> None:
        await self._handle(self.host_of(room)).settle.remote(room)

    async def host_pid(self, name: str) -> int:
        pid: int = await self._handle(name).pid.remote()
        return pid

    async def close(self) -> None:
        """The front end goes; the hosts (detached) and their rooms stay."""
        for _, batch in self._batches.values():  # not sent: their callers are told
            for *_, future in batch:
                future.cancel()
        self._batches.clear()
        for task in list(self._in_flight):
            task.cancel()
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None


# -- for `meet-coordinator ray-hosts` (serve_command) ------------------------------------------


def host_pids(names: list[str], *, namespace: str) -> dict[str, int]:
    """Each host's process id (a driver connected with :func:`connect`)."""
    handles = [host_handle(name, namespace=namespace) for name in names]
    pids = _ray().get([handle.pid.remote() for handle in handles], timeout=30)
    return dict(zip(names, pids, strict=True))


def host_placement(name: str, names: list[str]) -> Any:
    """Where a new host goes: the hosts dealt round-robin over the live nodes (ordered by
    address). Ray's "SPREAD" put both hosts of two on one node of two in every trial on our
    machines, and a *soft* node affinity was not kept for detached actors (1 in 4 landed
    elsewhere), so the affinity is hard: a host restarts on its own node. (Not tested: a
    host whose whole node is gone cannot restart; the front ends then re-place its rooms
    over the live hosts once Ray reports it dead.)"""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = sorted(
        (n for n in _ray().nodes() if n.get("Alive")),  # type: ignore[no-untyped-call]
        key=lambda n: (n.get("NodeManagerAddress", ""), n["NodeID"]),
    )
    if not nodes:
        return "SPREAD"
    node = nodes[names.index(name) % len(nodes)]
    return NodeAffinitySchedulingStrategy(node_id=node["NodeID"], soft=False)
