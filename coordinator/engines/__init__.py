"""The engines that host room actors (DESIGN §3): ``local`` (in this process) and ``ray``.

``open_directory`` builds the one the settings name. Both run the very same ``RoomActor`` and
``decide``: the Ray engine's room hosts each hold a ``LocalDirectory``. Only
``coordinator.engines.ray`` imports ``ray``, and only when the Ray engine is chosen.
"""

from __future__ import annotations

from typing import Any, Protocol

from coordinator.actor import LocalDirectory, MediaPort, RecordingPort
from coordinator.room import Command
from coordinator.settings import Settings


class Directory(Protocol):
    """What ``api/`` and the background tasks use of an engine."""

    async def call(self, room: str, command: Command) -> Any: ...
    async def close(self) -> None: ...
    def active_rooms(self) -> list[str]: ...
    async def health(self) -> dict[str, Any]: ...
    async def drop(self, room: str) -> None: ...
    async def settle(self, room: str) -> None: ...


async def open_directory(
    settings: Settings, media: MediaPort, recordings: RecordingPort
) -> Directory:
    """The started engine ``settings.engine`` names; ``media``/``recordings``: this process's
    ports (the Ray engine's hosts build their own from the settings)."""
    if settings.engine == "ray":
        from coordinator.engines import ray as ray_engine  # imports ray: only in Ray mode

        directory = ray_engine.RayDirectory(settings)
        await directory.start()
        return directory
    local = LocalDirectory(
        media,
        recordings,
        idle_after=settings.room_idle_seconds,
        timeout=settings.livekit.timeout_seconds,
    )
    local.start()
    return local
