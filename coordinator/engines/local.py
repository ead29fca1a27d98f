"""The local engine: every room actor in this process (``coordinator.actor.LocalDirectory``)."""

from coordinator.actor import LocalDirectory

__all__ = ["LocalDirectory"]
