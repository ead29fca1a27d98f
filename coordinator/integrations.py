"""LiveKit integrations the web app announces behind flags (issue 8, reference §2.9, §3.2, §3.4).

- Connection test: a short-lived token for a fresh ``connection-test-<uuid4>`` room.
- Subtitles: the ``ROOM_SUBTITLE_AGENT_NAME`` agent dispatched to a room (it dedups itself).
- Metadata collector: the ``METADATA_COLLECTOR_AGENT_NAME`` agent dispatched at recording start
  (metadata = recording id) when enabled and asked for; its dispatch id is kept on the recording
  and the dispatch is deleted at the recording's ``egress_ended``.
- SIP dispatch rules (telephony, roomkit): one "direct" rule ``SIP_<room id>`` per room, routing
  callers who type the room's PIN to the LiveKit room ``<room id>``; ensured on ``room_started``
  and on roomkit joins, deleted on ``room_finished``.

The recording and webhook code call in through two functions only: :func:`start_metadata_collector`
(recording start) and :meth:`Integrations.on_webhook` (after the room's actor applied a webhook).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from coordinator.errors import CoordinatorError
from coordinator.livekit import LiveKitAdapter, LiveKitError, LiveKitNotFound
from coordinator.media import WebhookEvent
from coordinator.rooms import display_name
from coordinator.settings import Settings
from coordinator.slugs import parse_uuid
from coordinator.tokens import Participant, mint_token, new_identity
from storage import integrations as store
from storage import rooms as room_store
from storage.engine import SessionMaker
from storage.records import RoomRecord, UserRecord

log = logging.getLogger(__name__)

CONNECTION_TEST_NAME = "Connection Test"
_TRUE = {"true", "1", "yes", "on", "y", "t"}


def sip_rule_name(room_id: uuid.UUID | str) -> str:
    return f"SIP_{room_id}"


def sip_enabled(settings: Settings) -> bool:
    return settings.room_telephony_enabled or settings.roomkit_enabled


def telephony_config(settings: Settings) -> dict[str, Any]:
    """The ``telephony`` block of ``/config/`` (§5.1): the dial-in number, internationally.

    Enabled only with ROOM_TELEPHONY_ENABLED and a ROOM_TELEPHONY_PHONE_NUMBER that parses with
    ROOM_TELEPHONY_DEFAULT_COUNTRY; otherwise ``{"enabled": false}`` and a warning.
    """
    if not settings.room_telephony_enabled:
        return {"enabled": False}
    import phonenumbers  # only with telephony on: ~1 MiB of metadata a server without it saves

    raw = settings.room_telephony_phone_number
    country = settings.room_telephony_default_country
    try:
        if not raw or not country:
            raise phonenumbers.NumberParseException(0, "no number or no default country")
        parsed = phonenumbers.parse(raw, country)
    except phonenumbers.NumberParseException:
        log.warning(
            "telephony is enabled but ROOM_TELEPHONY_PHONE_NUMBER %r with default country %r "
            "cannot be formatted: telephony is announced as disabled",
            raw,
            country,
        )
        return {"enabled": False}
    return {
        "enabled": True,
        "default_country": phonenumbers.region_code_for_number(parsed),
        "international_phone_number": phonenumbers.format_number(
            parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL
        ),
    }


# -- connection test ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectionTest:
    url: str
    room: str
    token: str
    expires_in: int


def connection_test(settings: Settings, user: UserRecord | None) -> ConnectionTest:
    """A token for a room of its own: nobody else testing at the same time meets the caller."""
    room = f"{settings.connection_test_room_prefix}-{uuid.uuid4()}"
    ttl = settings.connection_test_token_ttl_seconds
    participant = Participant(
        identity=(user.sub or str(user.id)) if user else new_identity(),
        name=display_name(settings, user, CONNECTION_TEST_NAME),
        is_authenticated=user is not None,
    )
    token = mint_token(
        settings.livekit,
        room=room,
        participant=participant,
        sources=settings.livekit.default_sources,
        ttl_seconds=ttl,
    )
    return ConnectionTest(settings.livekit.api_url, room, token, ttl)


# -- agents --------------------------------------------------------------------------------


async def start_subtitles(settings: Settings, media: LiveKitAdapter, room: RoomRecord) -> None:
    """Dispatch the transcriber agent to the room; LiveKit errors propagate (502/503)."""
    await media.create_agent_dispatch(str(room.id), settings.room_subtitle_agent_name)


def _asked(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in _TRUE)


async def start_metadata_collector(
    settings: Settings,
    sessionmaker: SessionMaker,
    media: LiveKitAdapter,
    *,
    room: str,
    recording_id: uuid.UUID,
    options: Mapping[str, Any],
) -> str | None:
    """At recording start: dispatch the collector when enabled and asked for; best effort.

    A failure is logged and the recording goes on without it, as in Meet.
    """
    if not settings.metadata_collector_enabled or not _asked(options.get("collect_metadata")):
        return None
    try:
        dispatch_id = await media.create_agent_dispatch(
            room, settings.metadata_collector_agent_name, metadata=str(recording_id)
        )
    except CoordinatorError as exc:
        log.warning("room %s: metadata collector not started: %s", room, exc)
        return None
    try:
        async with sessionmaker.begin() as session:
            await store.set_metadata_dispatch(session, recording_id, dispatch_id)
    except Exception:
        # Unrecorded, it would never be deleted: withdraw it rather than leave it running.
        log.exception("room %s: metadata collector dispatch not stored, withdrawn", room)
        try:
            await media.delete_agent_dispatch(room, dispatch_id)
        except CoordinatorError as exc:
            log.warning("room %s: metadata collector %s not withdrawn: %s", room, dispatch_id, exc)
        return None
    return dispatch_id


# -- SIP dispatch rules --------------------------------------------------------------------


class _KeyedLocks:
    """One asyncio lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class Integrations:
    """SIP rules and agent dispatches over the LiveKit adapter and the database."""

    def __init__(
        self, settings: Settings, sessionmaker: SessionMaker, media: LiveKitAdapter
    ) -> None:
        self._settings = settings
        self._sessionmaker = sessionmaker
        self._media = media
        self._locks = _KeyedLocks()
        self._cleanups: set[asyncio.Task[None]] = set()

    # -- connection-test rooms ---------------------------------------------------------

    def schedule_connection_test_cleanup(self, room: str) -> None:
        """Delete the test room once its token expired (+ CONNECTION_TEST_ROOM_EXTRA_AGE_SECONDS).

        LiveKit refreshes the tokens of connected clients, so expiry alone does not end a test.
        Runs only with the server's background tasks on (Meet: only with Celery).
        """
        if not self._settings.background_tasks:
            return
        delay = (
            self._settings.connection_test_token_ttl_seconds
            + self._settings.connection_test_room_extra_age_seconds
        )
        task = asyncio.get_running_loop().create_task(self._delete_test_room(room, delay))
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def _delete_test_room(self, room: str, delay: float) -> None:
        await asyncio.sleep(delay)
        if not room.startswith(self._settings.connection_test_room_prefix):
            return  # only ever the rooms this module named
        try:
            await self._media.delete_room(room)
        except LiveKitNotFound:
            pass  # nobody connected, or already gone
        except CoordinatorError as exc:
            log.warning("connection-test room %s not deleted: %s", room, exc)

    async def close(self) -> None:
        """Cancel the pending cleanups (the rooms then end with their empty timeout)."""
        for task in list(self._cleanups):
            task.cancel()
        if self._cleanups:
            await asyncio.gather(*self._cleanups, return_exceptions=True)

    async def _rule_ids(self, name: str) -> list[str]:
        rules = await self._media.list_sip_dispatch_rules()
        return [rule.rule_id for rule in rules if rule.name == name]

    async def ensure_sip_rule(self, room: RoomRecord) -> bool:
        """Create the room's rule unless it exists; True when created. Idempotent.

        A room without a PIN gets no rule: a direct rule with an empty PIN would route every
        caller of the trunk into that room.
        """
        if not room.pin_code:
            log.warning("room %s has no PIN code: no SIP dispatch rule", room.id)
            return False
        name = sip_rule_name(room.id)
        async with self._locks.hold(name):
            if await self._rule_ids(name):
                return False
            try:
                await self._media.create_sip_dispatch_rule(
                    name, room_name=str(room.id), pin=room.pin_code
                )
            except LiveKitError as exc:
                # Another process created it meanwhile: LiveKit answers a conflict
                # (invalid_argument "... already exists ..."; already_exists on other builds).
                if exc.livekit_status in (400, 409) and await self._rule_ids(name):
                    return False
                raise
        return True

    async def delete_sip_rules(self, room_id: uuid.UUID) -> int:
        """Delete every rule named for the room; the number deleted."""
        name = sip_rule_name(room_id)
        async with self._locks.hold(name):
            rule_ids = await self._rule_ids(name)
            if len(rule_ids) > 1:
                log.error("room %s has %d SIP dispatch rules", room_id, len(rule_ids))
            deleted = 0
            for rule_id in rule_ids:
                try:
                    await self._media.delete_sip_dispatch_rule(rule_id)
                    deleted += 1
                except LiveKitNotFound:
                    pass  # deleted meanwhile
        return deleted

    async def room_by_pin(self, pin_code: str) -> RoomRecord | None:
        if not pin_code.isascii() or not pin_code.isdigit():
            return None  # PINs are digits; anything else (NUL bytes…) never reaches the database
        async with self._sessionmaker() as session:
            return await store.room_by_pin(session, pin_code)

    async def stop_metadata_collector(self, egress_id: str) -> None:
        """Delete the collector dispatched for the recording of ``egress_id``, if any."""
        async with self._sessionmaker() as session:
            found = await store.metadata_dispatch_by_worker(session, egress_id)
        if found is None:
            return
        room_id, dispatch_id = found
        try:
            await self._media.delete_agent_dispatch(str(room_id), dispatch_id)
        except LiveKitNotFound:
            log.info("metadata collector %s of room %s already gone", dispatch_id, room_id)

    async def on_webhook(self, event: WebhookEvent) -> None:
        """What a verified webhook means for the integrations; runs after the room's actor.

        Raises :class:`CoordinatorError` when LiveKit fails, so the webhook answers 503 and
        LiveKit delivers it again (the actor ignores the duplicate; these steps are idempotent).
        """
        kind = event.event
        if kind in ("room_started", "room_finished") and sip_enabled(self._settings):
            room_id = parse_uuid(event.room_name)
            if room_id is None or str(room_id) != event.room_name:
                return  # only rooms named by their canonical id (our tokens') have a rule
            if kind == "room_finished":
                await self.delete_sip_rules(room_id)
                return
            async with self._sessionmaker() as session:
                found = await room_store.get_room(session, room_id=room_id)
            if found is not None:
                await self.ensure_sip_rule(found[0])
        elif kind == "egress_ended" and event.egress is not None and event.egress.egress_id:
            await self.stop_metadata_collector(event.egress.egress_id)
