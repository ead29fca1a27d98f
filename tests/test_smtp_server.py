"""The loopback SMTP server, exercised with a real client (aiosmtplib)."""

from __future__ import annotations

import asyncio
import threading
from email.message import EmailMessage

import aiosmtplib
import pytest

from coordinator.notifications import EmailConfig, invitation_email
from tests.smtp_server import SmtpServer, smtp_server_fixture  # noqa: F401


def make_message(to: str = "bob@example.com", subject: str = "Hello") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Alice <alice@example.com>"
    message["To"] = to
    message["Subject"] = subject
    message.set_content("plain body")
    message.add_alternative("<p>html body</p>", subtype="html")
    return message


async def send(
    server: SmtpServer, message: EmailMessage, recipients: list[str] | None = None
) -> None:
    await aiosmtplib.send(
        message, hostname=server.host, port=server.port, start_tls=False, recipients=recipients
    )


async def test_records_a_multipart_message(smtp_server: SmtpServer) -> None:
    await send(smtp_server, make_message())
    [mail] = smtp_server.messages
    assert mail.mail_from == "alice@example.com"
    assert mail.rcpt_tos == ("bob@example.com",)
    assert mail.from_ == "Alice <alice@example.com>"
    assert mail.to == ("bob@example.com",) and mail.cc == () and mail.bcc == ()
    assert mail.subject == "Hello"
    assert mail.text == "plain body\n"
    assert mail.html == "<p>html body</p>\n"
    assert b"Subject: Hello" in mail.raw


async def test_bcc_recipients_are_envelope_only(smtp_server: SmtpServer) -> None:
    message = make_message()
    message["Cc"] = "carol@example.com"
    message["Bcc"] = "dave@example.com, eve@example.com"
    await send(smtp_server, message)  # aiosmtplib strips the Bcc header
    [mail] = smtp_server.messages
    assert set(mail.rcpt_tos) == {
        "bob@example.com",
        "carol@example.com",
        "dave@example.com",
        "eve@example.com",
    }
    assert mail.cc == ("carol@example.com",)
    assert set(mail.bcc) == {"dave@example.com", "eve@example.com"}
    assert mail.message["Bcc"] is None


async def test_invitation_email_reaches_only_the_envelope(smtp_server: SmtpServer) -> None:
    email = invitation_email(
        room_slug="abc-defg-hij",
        sender_email="alice@example.com",
        recipients=["x@example.com", "y@example.com"],
        email=EmailConfig(from_email="noreply@example.com", app_base_url="https://m.example"),
    )
    await send(smtp_server, email.to_message(), recipients=list(email.recipients))
    [mail] = smtp_server.messages
    assert mail.to == () and mail.bcc == ("x@example.com", "y@example.com")
    assert mail.subject == email.subject
    assert mail.text == email.text and mail.html == email.html
    assert "https://m.example/abc-defg-hij" in (mail.text or "")


async def test_utf8_subject_and_body(smtp_server: SmtpServer) -> None:
    message = EmailMessage()
    message["From"] = "alice@example.com"
    message["To"] = "bob@example.com"
    message["Subject"] = "Votre enregistrement est prêt ✓"
    message.set_content("Réunion à 09:30")
    await send(smtp_server, message)
    [mail] = smtp_server.messages
    assert mail.subject == "Votre enregistrement est prêt ✓"
    assert mail.text == "Réunion à 09:30\n" and mail.html is None


async def test_fail_next_at_rcpt_then_recover(smtp_server: SmtpServer) -> None:
    smtp_server.fail_next(2)
    for _ in range(2):
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as info:
            await send(smtp_server, make_message())
        [refused] = info.value.recipients
        assert refused.code == 451
    await send(smtp_server, make_message(subject="third"))
    assert [mail.subject for mail in smtp_server.messages] == ["third"]
    assert [(r.stage, r.recipient) for r in smtp_server.rejections] == [
        ("RCPT", "bob@example.com"),
        ("RCPT", "bob@example.com"),
    ]


async def test_fail_at_rcpt_refuses_every_recipient_of_the_message(
    smtp_server: SmtpServer,
) -> None:
    smtp_server.fail_next(1, reply="550 5.1.1 No such user")
    message = make_message(to="a@example.com, b@example.com")
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as info:
        await send(smtp_server, message)
    assert sorted(r.recipient for r in info.value.recipients) == [
        "a@example.com",
        "b@example.com",
    ]
    assert {r.code for r in info.value.recipients} == {550}
    assert smtp_server.messages == []


async def test_fail_next_at_data(smtp_server: SmtpServer) -> None:
    smtp_server.fail_next(1, stage="DATA")
    with pytest.raises(aiosmtplib.SMTPDataError) as info:
        await send(smtp_server, make_message())
    assert info.value.code == 451
    await send(smtp_server, make_message())
    assert len(smtp_server.messages) == 1
    assert [r.stage for r in smtp_server.rejections] == ["DATA"]


async def test_failures_count_per_message_on_one_connection(smtp_server: SmtpServer) -> None:
    smtp_server.fail_next(1)
    async with aiosmtplib.SMTP(
        hostname=smtp_server.host, port=smtp_server.port, start_tls=False
    ) as client:
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
            await client.send_message(make_message(subject="first"))
        await client.send_message(make_message(subject="second"))
        await client.send_message(make_message(subject="third"))
    assert [mail.subject for mail in smtp_server.messages] == ["second", "third"]


async def test_wait_for_and_clear(smtp_server: SmtpServer) -> None:
    waiter = asyncio.create_task(smtp_server.wait_for(2))
    await send(smtp_server, make_message(subject="one"))
    await send(smtp_server, make_message(subject="two"))
    mails = await waiter
    assert [mail.subject for mail in mails] == ["one", "two"]
    smtp_server.fail_next(3)
    smtp_server.clear()
    await send(smtp_server, make_message())
    assert len(smtp_server.messages) == 1 and smtp_server.rejections == []
    with pytest.raises(TimeoutError):
        await smtp_server.wait_for(5, max_wait=0.05)


async def test_fail_next_validates_count(smtp_server: SmtpServer) -> None:
    with pytest.raises(ValueError, match="count"):
        smtp_server.fail_next(0)


async def test_stop_closes_idle_connections_and_the_port() -> None:
    server = await SmtpServer().start()
    client = aiosmtplib.SMTP(hostname=server.host, port=server.port, start_tls=False)
    await client.connect()
    await client.ehlo()
    threads = threading.active_count()
    await server.stop()
    assert threading.active_count() == threads  # nothing to join: no thread was started
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await client.noop()
    client.close()
    with pytest.raises(aiosmtplib.SMTPConnectError):
        await aiosmtplib.send(
            make_message(), hostname=server.host, port=server.port, start_tls=False, timeout=2
        )
    await server.stop()  # idempotent


async def test_blocking_client_in_a_worker_thread(smtp_server: SmtpServer) -> None:
    import smtplib

    def blocking_send() -> None:
        with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as client:
            client.send_message(make_message(subject="from a thread"))

    await asyncio.to_thread(blocking_send)
    assert [mail.subject for mail in smtp_server.messages] == ["from a thread"]
