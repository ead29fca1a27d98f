"""Notification payload builders (contract §4.7): exact shapes."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from uuid import UUID

import pytest

from coordinator.notifications import (
    EmailConfig,
    LinkConfig,
    MetadataCollectorConfig,
    OwnerInfo,
    RecordingInfo,
    SummaryServiceConfig,
    download_link,
    invitation_email,
    meeting_title,
    metadata_filename,
    notification_targets,
    recording_ready_email,
    summary_idempotency_key,
    summary_request_headers,
    summary_v1_payload,
    summary_v2_job_id,
    summary_v2_keys,
    summary_v2_payload,
)
from coordinator.settings import Secret

RID = UUID("0f0e8d3c-9a8b-4c2d-8e1f-123456789abc")
ROOM_ID = UUID("11111111-2222-3333-4444-555555555555")
OWNER_ID = UUID("99999999-8888-7777-6666-555555555555")
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
STARTED = datetime(2026, 3, 1, 8, 30, 5, 123456, tzinfo=UTC)
ENDED = datetime(2026, 3, 1, 9, 15, tzinfo=UTC)

RECORDING = RecordingInfo(
    id=RID,
    mode="transcript",
    key=f"recordings/{RID}.ogg",
    room_id=ROOM_ID,
    room_name="Standup",
    created_at=datetime(2026, 3, 1, 22, 45, tzinfo=UTC),
    started_at=STARTED,
    ended_at=ENDED,
)
OWNER = OwnerInfo(
    id=OWNER_ID, email="owner@example.com", sub="sub-1", language="en-us", timezone="Europe/Paris"
)
LINKS = LinkConfig(
    recording_download_base_url="https://meet.example.com/recording",
    transcription_satisfaction_form_base_url="https://forms.example.com/t",
)
NO_COLLECTOR = MetadataCollectorConfig()
COLLECTOR = MetadataCollectorConfig(enabled=True, output_folder="metadata")
EMAIL = EmailConfig(
    from_email="noreply@meet.example.com",
    brand_name="Visio",
    support_email="support@example.com",
    logo_img="https://meet.example.com/logo.png",
    domain="meet.example.com",
    app_base_url="https://meet.example.com",
)


def presigned(key: str, seconds: int = 86400) -> str:
    """The signer the payload is given (the outbox signs with the object-storage client)."""
    return f"http://minio:9000/meet-media-storage/{key}?X-Amz-Expires={seconds}&signed"


# ----------------------------------------------------------------------------- routing
@pytest.mark.parametrize(
    ("mode", "options", "targets"),
    [
        ("transcript", {}, {"summary"}),
        ("transcript", {"transcribe": False}, {"summary"}),
        ("screen_recording", {}, {"email"}),
        ("screen_recording", {"transcribe": True}, {"email", "summary"}),
        ("something_else", {"transcribe": True}, set()),
    ],
)
def test_notification_targets(mode: str, options: dict[str, bool], targets: set[str]) -> None:
    assert notification_targets(mode, options) == targets


def test_links_and_metadata_filename() -> None:
    assert download_link(LINKS, RID) == f"https://meet.example.com/recording/{RID}"
    collected = replace(RECORDING, options={"collect_metadata": True})
    assert metadata_filename(collected, COLLECTOR) == f"metadata/{RID}-metadata.json"
    assert metadata_filename(collected, NO_COLLECTOR) is None
    assert metadata_filename(RECORDING, COLLECTOR) is None


# ----------------------------------------------------------------------------- summary v1
def test_summary_v1_payload() -> None:
    recording = replace(RECORDING, options={"language": "fr", "collect_metadata": True})
    assert summary_v1_payload(recording, OWNER, links=LINKS, collector=COLLECTOR) == {
        "owner_id": str(OWNER_ID),
        "recording_filename": f"recordings/{RID}.ogg",
        "metadata_filename": f"metadata/{RID}-metadata.json",
        "email": "owner@example.com",
        "sub": "sub-1",
        "room": "Standup",
        "language": "fr",
        "owner_timezone": "Europe/Paris",
        "download_link": f"https://meet.example.com/recording/{RID}",
        "context_language": "en-us",
        "recording_start_at": "2026-03-01T08:30:05.123456+00:00",
        "recording_end_at": "2026-03-01T09:15:00+00:00",
    }


def test_summary_v1_payload_without_timestamps_is_json_serialisable() -> None:
    recording = replace(RECORDING, started_at=None, ended_at=None)
    owner = replace(OWNER, language=None)
    payload = summary_v1_payload(recording, owner, links=LINKS, collector=NO_COLLECTOR)
    assert json.loads(json.dumps(payload)) == payload
    assert payload["recording_start_at"] is None and payload["recording_end_at"] is None
    assert payload["metadata_filename"] is None and payload["language"] is None
    assert payload["context_language"] is None


# ----------------------------------------------------------------------------- summary v2
def test_summary_v2_payload_with_metadata() -> None:
    recording = replace(RECORDING, options={"language": "fr", "collect_metadata": True})
    payload = summary_v2_payload(
        recording,
        OWNER,
        links=LINKS,
        collector=COLLECTOR,
        signed_url=presigned,
        auto_create_summary=True,
    )
    assert payload == {
        "user_sub": "sub-1",
        "user_email": "owner@example.com",
        "cloud_storage_url": presigned(f"recordings/{RID}.ogg"),
        "language": "fr",
        "context_language": "en-us",
        "push_to_docs_config": {
            "user_email": "owner@example.com",
            "title": 'Meeting "Standup" on 2026-03-01 at 09:30',
            "download_link": f"https://meet.example.com/recording/{RID}",
            "form_link": f"https://forms.example.com/t?room_id={ROOM_ID}",
            "auto_create_summary": True,
        },
        "metadata": {
            "cloud_storage_url": presigned(f"metadata/{RID}-metadata.json"),
            "started_at": "2026-03-01T08:30:05.123456+00:00",
            "ended_at": "2026-03-01T09:15:00+00:00",
        },
    }
    assert summary_v2_keys(recording, COLLECTOR) == [
        f"recordings/{RID}.ogg",
        f"metadata/{RID}-metadata.json",
    ]


def test_summary_v2_payload_without_metadata_or_start_time() -> None:
    recording = replace(RECORDING, started_at=None, ended_at=None)
    owner = replace(OWNER, language="de-de")
    payload = summary_v2_payload(
        recording,
        owner,
        links=LINKS,
        collector=COLLECTOR,
        signed_url=presigned,
        expiry_seconds=600,
        request_language="nl-nl",
    )
    assert payload == {
        "user_sub": "sub-1",
        "user_email": "owner@example.com",
        "cloud_storage_url": presigned(f"recordings/{RID}.ogg", 600),
        "language": "nl",
        "context_language": "de-de",
        "push_to_docs_config": {
            "user_email": "owner@example.com",
            "title": "Transkription",
            "download_link": f"https://meet.example.com/recording/{RID}",
            "form_link": None,
            "auto_create_summary": False,
        },
        "metadata": None,
    }
    assert json.loads(json.dumps(payload)) == payload


def test_summary_v2_metadata_needs_both_timestamps() -> None:
    recording = replace(RECORDING, options={"collect_metadata": True}, ended_at=None)
    payload = summary_v2_payload(
        recording, OWNER, links=LINKS, collector=COLLECTOR, signed_url=presigned
    )
    assert payload["metadata"] is None
    assert payload["push_to_docs_config"]["form_link"] == (
        f"https://forms.example.com/t?room_id={ROOM_ID}"
    )


def test_summary_v2_form_link_needs_a_form_base_url() -> None:
    recording = replace(RECORDING, options={"collect_metadata": True})
    payload = summary_v2_payload(
        recording, OWNER, links=replace(LINKS, transcription_satisfaction_form_base_url=""),
        collector=COLLECTOR, signed_url=presigned,
    )  # fmt: skip
    assert payload["push_to_docs_config"]["form_link"] is None


@pytest.mark.parametrize(
    ("owner_language", "option", "request_language", "title"),
    [
        ("fr-fr", None, "en-us", 'Réunion "Standup" du 2026-03-01 à 09:30'),
        ("nl-nl", None, "en-us", 'Vergadering "Standup" op 2026-03-01 om 09:30'),
        ("de-de", None, "en-us", 'Besprechung "Standup" am 2026-03-01 um 09:30'),
        (None, "de", "fr-fr", 'Besprechung "Standup" am 2026-03-01 um 09:30'),
        (None, None, "nl-nl", 'Vergadering "Standup" op 2026-03-01 om 09:30'),
        ("es-es", None, "fr-fr", 'Meeting "Standup" on 2026-03-01 at 09:30'),
    ],
)
def test_summary_v2_title_language(
    owner_language: str | None, option: str | None, request_language: str, title: str
) -> None:
    recording = replace(RECORDING, options={"language": option} if option else {})
    payload = summary_v2_payload(
        recording,
        replace(OWNER, language=owner_language),
        links=LINKS,
        collector=NO_COLLECTOR,
        signed_url=presigned,
        request_language=request_language,
    )
    assert payload["push_to_docs_config"]["title"] == title


@pytest.mark.parametrize("zone", ["Not/AZone", "", "../../etc/passwd", "/abs", "UTC\x00"])
def test_unknown_time_zones_fall_back_to_utc(zone: str) -> None:
    title = meeting_title("R", STARTED, language="en", timezone=zone)
    assert title == 'Meeting "R" on 2026-03-01 at 08:30'


def test_meeting_title_in_another_zone_crosses_the_date() -> None:
    title = meeting_title("R", STARTED, language="fr", timezone="Pacific/Kiritimati")
    assert title == 'Réunion "R" du 2026-03-01 à 22:30'
    assert meeting_title("R", None, language="nl", timezone="UTC") == "Transcriptie"


@pytest.mark.parametrize(
    ("body", "job_id"),
    [
        ({"job_id": "abc"}, "abc"),
        ({"job_id": "abc", "status": "pending"}, "abc"),
        ({"job_id": ""}, None),
        ({"job_id": 5}, None),
        ({"id": "abc"}, None),
        (["abc"], None),
        (None, None),
    ],
)
def test_summary_v2_job_id(body: object, job_id: str | None) -> None:
    assert summary_v2_job_id(body) == job_id


def test_summary_request_headers() -> None:
    config = SummaryServiceConfig(endpoint="http://s/api/v1/tasks/", api_token=Secret("tok"))
    assert config.configured and not SummaryServiceConfig().configured
    assert summary_request_headers(config) == {
        "Content-Type": "application/json",
        "Authorization": "Bearer tok",
    }
    key = summary_idempotency_key(RID)
    assert key == f"recording-{RID}-summary"
    assert summary_request_headers(config, idempotency_key=key)["Idempotency-Key"] == key


# ----------------------------------------------------------------------------- e-mails
SCREEN = replace(RECORDING, mode="screen_recording", key=f"recordings/{RID}.mp4")


def test_recording_ready_email_in_english() -> None:
    email = recording_ready_email(
        SCREEN, OWNER, email=EMAIL, links=LINKS, expiration_days=7, default_language="fr-fr"
    )
    assert email.subject == "Your recording is ready"
    assert email.from_email == "noreply@meet.example.com"
    assert email.to == ("owner@example.com",) and email.bcc == ()
    # created_at 22:45 UTC is 23:45 in Paris
    assert email.text == (
        "Logo email Visio [https://meet.example.com/logo.png]\n\n"
        "Your recording is ready!\n\n"
        'Your recording of "Standup" on 2026-03-01 at 23:45 is now ready to download. '
        "The recording will expire in 7 days.\n\n"
        "Sharing the recording via link is not yet available. Only organizers can download it."
        "\n\n"
        "To keep this recording permanently:\n"
        '1. Click the "Open" button below\n'
        '2. Use the "Download" button in the interface\n'
        "3. Save the file to your preferred location\n\n"
        f"Open: https://meet.example.com/recording/{RID}\n\n"
        "If you have any questions or need assistance, please contact our support team at "
        "support@example.com.\n\n"
        "Thank you for using Visio.\n"
    )
    assert f'<a href="https://meet.example.com/recording/{RID}">Open</a>' in email.html
    assert '<img src="https://meet.example.com/logo.png" alt="Logo email Visio"' in email.html
    assert email.html.startswith('<!DOCTYPE html><html lang="en">')


def test_recording_ready_email_date_crosses_midnight_and_no_expiration() -> None:
    owner = replace(OWNER, language=None, timezone="Asia/Tokyo")
    email = recording_ready_email(
        SCREEN, owner, email=EMAIL, links=LINKS, expiration_days=None, default_language="fr-fr"
    )
    assert email.subject == "Votre enregistrement est prêt"
    assert 'de "Standup" du 2026-03-02 à 07:45 est maintenant prêt' in email.text
    assert "expirera" not in email.text and "expirera" not in email.html
    assert email.language == "fr"


@pytest.mark.parametrize(
    ("language", "subject", "open_label"),
    [
        ("en-us", "Your recording is ready", "Open"),
        ("fr-fr", "Votre enregistrement est prêt", "Ouvrir"),
        ("nl-nl", "Je opname is klaar", "Openen"),
        ("de-de", "Ihre Aufzeichnung ist bereit", "Öffnen"),
    ],
)
def test_recording_ready_email_languages(language: str, subject: str, open_label: str) -> None:
    owner = replace(OWNER, language=language)
    email = recording_ready_email(SCREEN, owner, email=EMAIL, links=LINKS, expiration_days=3)
    assert email.subject == subject
    assert f"{open_label}: https://meet.example.com/recording/{RID}" in email.text
    assert f">{open_label}</a>" in email.html
    assert " 3 " in email.text


def test_recording_ready_email_escapes_room_name_in_html() -> None:
    recording = replace(SCREEN, room_name='<script>alert("x")</script> {room}')
    email = recording_ready_email(
        recording, OWNER, email=replace(EMAIL, support_email="", logo_img=""), links=LINKS,
        expiration_days=None,
    )  # fmt: skip
    assert "<script>" not in email.html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; {room}" in email.html
    assert '"<script>alert("x")</script> {room}"' in email.text
    assert "support" not in email.text and "<img" not in email.html
    assert "Logo" not in email.text


def test_recording_ready_email_to_message() -> None:
    email = recording_ready_email(SCREEN, OWNER, email=EMAIL, links=LINKS, expiration_days=7)
    message = email.to_message()
    assert message["From"] == "noreply@meet.example.com"
    assert message["To"] == "owner@example.com"
    assert message["Subject"] == "Your recording is ready"
    assert message["Bcc"] is None
    assert message.get_content_type() == "multipart/alternative"
    text_part = message.get_body(("plain",))
    html_part = message.get_body(("html",))
    assert text_part is not None and html_part is not None
    assert text_part.get_content() == email.text
    assert html_part.get_content() == email.html
    assert email.recipients == ("owner@example.com",)
    assert message["Date"] is None and message["Message-ID"] is None
    dated = email.to_message(date=NOW, message_id="<1@meet.example.com>")
    assert dated["Date"] == "Sun, 01 Mar 2026 12:00:00 +0000"
    assert dated["Message-ID"] == "<1@meet.example.com>"


def test_invitation_email() -> None:
    recipients = ["a@example.com", "b@example.com"]
    email = invitation_email(
        room_slug="abc-defg-hij",
        sender_email="alice@example.com",
        recipients=recipients,
        email=EMAIL,
    )
    assert email.subject == (
        "Video call in progress: alice@example.com is waiting for you to connect"
    )
    assert email.to == () and email.bcc == ("a@example.com", "b@example.com")
    assert email.recipients == ("a@example.com", "b@example.com")
    assert email.text == (
        "Logo email Visio [https://meet.example.com/logo.png]\n\n"
        "alice@example.com invites you to join an ongoing video call\n\n"
        "JOIN THE CALL: https://meet.example.com/abc-defg-hij\n\n"
        "meet.example.com/abc-defg-hij\n\n"
        "If you can't click the button, copy and paste the URL into your browser to join the "
        "call.\n\n"
        "Tips for a better experience:\n"
        "- Use Chrome or Firefox for better call quality\n"
        "- Test your microphone and camera before joining\n"
        "- Make sure you have a stable internet connection\n\n"
        "Thank you for using Visio.\n"
    )
    assert '<a href="https://meet.example.com/abc-defg-hij">JOIN THE CALL</a>' in email.html
    assert '<a href="mailto:alice@example.com">alice@example.com</a>' in email.html
    message = email.to_message()
    assert message["To"] is None and message["Bcc"] is None
    assert message["Subject"] == email.subject


def test_invitation_email_body_follows_language_but_subject_stays_english() -> None:
    email = invitation_email(
        room_slug="r", sender_email="alice@example.com", recipients=["x@example.com"],
        email=EMAIL, language="fr-fr",
    )  # fmt: skip
    assert email.subject.startswith("Video call in progress: alice@example.com")
    assert "vous invite à rejoindre un appel vidéo en cours" in email.text
    assert "REJOINDRE L'APPEL: https://meet.example.com/r" in email.text


def test_invitation_subject_cannot_inject_headers() -> None:
    email = invitation_email(
        room_slug="r", sender_email="a@example.com\r\nBcc: evil@example.com",
        recipients=["x@example.com"], email=EMAIL,
    )  # fmt: skip
    assert "\n" not in email.subject and "\r" not in email.subject
    assert email.to_message()["Bcc"] is None


def test_invitation_logo_is_in_both_parts_or_neither() -> None:
    """Meet's text templates are its HTML ones through html-to-text: the logo URL stays."""
    email = invitation_email(
        room_slug="r", sender_email="a@example.com", recipients=["x@example.com"], email=EMAIL
    )
    assert "https://meet.example.com/logo.png" in email.text
    assert "https://meet.example.com/logo.png" in email.html
    bare = invitation_email(
        room_slug="r", sender_email="a@example.com", recipients=["x@example.com"],
        email=replace(EMAIL, logo_img=""),
    )  # fmt: skip
    assert bare.text.startswith("a@example.com invites you") and "<img" not in bare.html
