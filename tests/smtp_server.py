"""A real SMTP server on 127.0.0.1 for tests, built on aiosmtpd.

Unlike ``aiosmtpd.controller.Controller`` (which runs its own loop in a thread), the server
runs in the test's event loop, so nothing is left to join: :meth:`SmtpServer.stop` closes
the listening socket and every client connection and waits for their handler tasks. Code
under test must therefore send asynchronously (aiosmtplib) or from a worker thread, never
with a blocking client on the loop's own thread.

Every accepted message is parsed with the ``email`` package into a :class:`ReceivedMail`
(envelope sender and recipients, header From/To/Cc, ``bcc`` = envelope recipients absent from
To/Cc, subject, text and HTML bodies). :meth:`SmtpServer.fail_next` makes the next N
messages fail with a reply such as ``451`` at ``RCPT`` (every recipient refused) or at
``DATA``.

Use the ``smtp_server`` fixture (import ``smtp_server_fixture`` into a test module or
register this module as a plugin).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import getaddresses
from types import TracebackType
from typing import Any, Literal

import pytest_asyncio
from aiosmtpd.smtp import SMTP, Envelope, Session

__all__ = ["ReceivedMail", "Rejection", "SmtpServer", "smtp_server_fixture"]

HOST = "127.0.0.1"
FailureStage = Literal["RCPT", "DATA"]
DEFAULT_FAILURE = "451 4.3.0 Temporary failure, try again later"


@dataclass(frozen=True, slots=True)
class ReceivedMail:
    """One accepted message."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    from_: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    bcc: tuple[str, ...]
    subject: str
    text: str | None
    html: str | None
    message: EmailMessage
    raw: bytes


@dataclass(frozen=True, slots=True)
class Rejection:
    """One refused command of a scripted failure."""

    stage: FailureStage
    mail_from: str
    recipient: str | None
    reply: str


def _addresses(message: EmailMessage, header: str) -> tuple[str, ...]:
    values = [str(value) for value in message.get_all(header, [])]
    return tuple(address for _, address in getaddresses(values) if address)


def _body(message: EmailMessage, subtype: str) -> str | None:
    part = message.get_body((subtype,))
    if part is None or part.get_content_type() != f"text/{subtype}":
        return None
    content = part.get_content()
    return content if isinstance(content, str) else None


def parse_mail(mail_from: str, rcpt_tos: tuple[str, ...], raw: bytes) -> ReceivedMail:
    """Parse ``raw`` (as received after DATA) into a :class:`ReceivedMail`."""
    # The wire uses CRLF; parse with LF so bodies read back as Python strings were written.
    parsed = email.message_from_bytes(raw.replace(b"\r\n", b"\n"), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    to, cc = _addresses(parsed, "To"), _addresses(parsed, "Cc")
    visible = {address.lower() for address in (*to, *cc)}
    return ReceivedMail(
        mail_from=mail_from,
        rcpt_tos=rcpt_tos,
        from_=str(parsed.get("From", "")).strip(),
        to=to,
        cc=cc,
        bcc=tuple(rcpt for rcpt in rcpt_tos if rcpt.lower() not in visible),
        # strip(): Python keeps the space of a value folded right after "Subject:"
        subject=str(parsed.get("Subject", "")).strip(),
        text=_body(parsed, "plain"),
        html=_body(parsed, "html"),
        message=parsed,
        raw=raw,
    )


class _Handler:
    """aiosmtpd hooks; the state lives in the owning :class:`SmtpServer`."""

    def __init__(self, server: SmtpServer) -> None:
        self._server = server

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        self._server._start_transaction(envelope)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        reply = self._server._failure_for(envelope, "RCPT", address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = self._server._failure_for(envelope, "DATA", None)
        if reply is not None:
            return reply
        content = envelope.original_content or b""
        await self._server._accept(envelope.mail_from or "", tuple(envelope.rcpt_tos), content)
        return "250 Message accepted for delivery"


class SmtpServer:
    """An SMTP server on ``127.0.0.1:<port>`` (0: ephemeral) recording what it accepts."""

    def __init__(self, *, port: int = 0) -> None:
        self.host = HOST
        self.port = port
        self.messages: list[ReceivedMail] = []
        self.rejections: list[Rejection] = []
        self._handler = _Handler(self)
        self._server: asyncio.Server | None = None
        self._protocols: weakref.WeakSet[SMTP] = weakref.WeakSet()
        self._failing: weakref.WeakKeyDictionary[Envelope, tuple[FailureStage, str]] = (
            weakref.WeakKeyDictionary()
        )
        self._failures: list[tuple[FailureStage, str]] = []
        self._changed = asyncio.Condition()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> SmtpServer:
        if self._server is not None:
            raise RuntimeError("already started")
        loop = asyncio.get_running_loop()

        def factory() -> SMTP:
            protocol = SMTP(self._handler, hostname="localhost", enable_SMTPUTF8=True, loop=loop)
            self._protocols.add(protocol)
            return protocol

        self._server = await loop.create_server(factory, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        """Close the port and every connection; wait for their handler tasks to end."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        tasks: list[asyncio.Future[Any]] = []
        for protocol in list(self._protocols):
            if protocol.transport is not None:
                protocol.transport.close()
            # aiosmtpd keeps the per-connection task private; connection_lost cancels it.
            task = getattr(protocol, "_handler_coroutine", None)
            if isinstance(task, asyncio.Future):
                tasks.append(task)
        await server.wait_closed()
        if tasks:
            await asyncio.wait(tasks, timeout=5)

    async def __aenter__(self) -> SmtpServer:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------------ scripting
    def fail_next(
        self, count: int = 1, *, stage: FailureStage = "RCPT", reply: str = DEFAULT_FAILURE
    ) -> None:
        """Refuse the next ``count`` messages (MAIL transactions) at ``stage`` with ``reply``.

        At ``RCPT`` every recipient of the message is refused; at ``DATA`` the recipients are
        accepted and the content refused. Failures queue up in call order.
        """
        if count < 1:
            raise ValueError("count must be >= 1")
        self._failures.extend([(stage, reply)] * count)

    def clear(self) -> None:
        """Forget received messages, rejections and pending failures."""
        self.messages.clear()
        self.rejections.clear()
        self._failures.clear()

    async def wait_for(self, count: int, max_wait: float = 5.0) -> list[ReceivedMail]:
        """Wait until at least ``count`` messages were accepted; returns them all."""
        async with asyncio.timeout(max_wait), self._changed:
            await self._changed.wait_for(lambda: len(self.messages) >= count)
        return list(self.messages)

    # ------------------------------------------------------------------ handler side
    def _start_transaction(self, envelope: Envelope) -> None:
        if self._failures:
            self._failing[envelope] = self._failures.pop(0)

    def _failure_for(
        self, envelope: Envelope, stage: FailureStage, recipient: str | None
    ) -> str | None:
        failure = self._failing.get(envelope)
        if failure is None or failure[0] != stage:
            return None
        self.rejections.append(Rejection(stage, envelope.mail_from or "", recipient, failure[1]))
        return failure[1]

    async def _accept(self, mail_from: str, rcpt_tos: tuple[str, ...], raw: bytes) -> None:
        self.messages.append(parse_mail(mail_from, rcpt_tos, raw))
        async with self._changed:
            self._changed.notify_all()


@pytest_asyncio.fixture(name="smtp_server")
async def smtp_server_fixture() -> AsyncIterator[SmtpServer]:
    """A started :class:`SmtpServer` on an ephemeral loopback port, stopped after the test."""
    async with SmtpServer() as server:
        yield server
