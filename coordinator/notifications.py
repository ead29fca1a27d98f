"""Notification payloads for a saved recording and for room invitations (contract §4.7).

Pure builders: no I/O, no clock (URLs are signed by the caller), no settings
lookup. Inputs are small frozen dataclasses; the caller gathers them from storage (first
owner access for the summary service, every owner access oldest first for e-mails) and
LiveKit (file ``started_at``/``ended_at``, ``None`` when unknown).

* :func:`notification_targets`: who is told for a recording mode and options (§4.4).
* :func:`summary_v1_payload` / :func:`summary_v2_payload`: the JSON the summary service
  receives; :func:`summary_request_headers` and :func:`summary_v2_job_id` go around them.
* :func:`recording_ready_email` and :func:`invitation_email`: :class:`OutgoingEmail` values
  (subject, text, HTML, envelope) turned into a MIME message by
  :meth:`OutgoingEmail.to_message`.

Languages: ``en``, ``fr``, ``nl``, ``de`` (any ``xx-yy`` code is reduced to ``xx``; anything
else falls back to English, as Django does for a missing catalogue). Unknown time zones fall
back to UTC.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any, Final, Literal
from uuid import UUID
from zoneinfo import ZoneInfo

from coordinator.settings import Secret

__all__ = [
    "EmailConfig",
    "LinkConfig",
    "MetadataCollectorConfig",
    "NotificationTarget",
    "OutgoingEmail",
    "OwnerInfo",
    "RecordingInfo",
    "SummaryServiceConfig",
    "download_link",
    "invitation_email",
    "meeting_title",
    "metadata_filename",
    "notification_targets",
    "recording_ready_email",
    "summary_idempotency_key",
    "summary_request_headers",
    "summary_v1_payload",
    "summary_v2_job_id",
    "summary_v2_keys",
    "summary_v2_payload",
]

NotificationTarget = Literal["summary", "email"]
DEFAULT_SIGNED_URL_EXPIRY_SECONDS: Final = 86400


# ----------------------------------------------------------------------------- inputs
@dataclass(frozen=True, slots=True)
class RecordingInfo:
    """The recording as the notifications see it. ``options`` are the stored options."""

    id: UUID
    mode: str
    key: str
    room_id: UUID
    room_name: str
    created_at: datetime
    options: Mapping[str, Any] = field(default_factory=dict)
    started_at: datetime | None = None
    ended_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class OwnerInfo:
    """An owner of the recording. ``language`` like ``fr-fr`` (None: not chosen)."""

    id: UUID
    email: str
    sub: str | None
    language: str | None = None
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class SummaryServiceConfig:
    """Env: SUMMARY_SERVICE_ENDPOINT, SUMMARY_SERVICE_API_TOKEN, SUMMARY_SERVICE_VERSION (1),
    SUMMARY_SERVICE_CLOUD_STORAGE_SIGNED_URL_EXPIRY_SECONDS (86400)."""

    endpoint: str = ""
    api_token: Secret = field(default_factory=lambda: Secret(""))
    version: Literal[1, 2] = 1
    signed_url_expiry_seconds: int = DEFAULT_SIGNED_URL_EXPIRY_SECONDS

    @property
    def configured(self) -> bool:
        """Both endpoint and token are set (otherwise the notification fails, §4.7)."""
        return bool(self.endpoint and self.api_token)


@dataclass(frozen=True, slots=True)
class LinkConfig:
    """Env: RECORDING_DOWNLOAD_BASE_URL (legacy SCREEN_RECORDING_BASE_URL),
    TRANSCRIPTION_SATISFACTION_FORM_BASE_URL."""

    recording_download_base_url: str = ""
    transcription_satisfaction_form_base_url: str = ""


@dataclass(frozen=True, slots=True)
class MetadataCollectorConfig:
    """Env: METADATA_COLLECTOR_ENABLED (false), METADATA_COLLECTOR_OUTPUT_FOLDER (metadata)."""

    enabled: bool = False
    output_folder: str = "metadata"


@dataclass(frozen=True, slots=True)
class EmailConfig:
    """Env: EMAIL_FROM, EMAIL_BRAND_NAME, EMAIL_SUPPORT_EMAIL, EMAIL_LOGO_IMG, EMAIL_DOMAIN,
    EMAIL_APP_BASE_URL."""

    from_email: str
    brand_name: str = ""
    support_email: str = ""
    logo_img: str = ""
    domain: str = ""
    app_base_url: str = ""


# ----------------------------------------------------------------------------- helpers
def _language(*candidates: str | None) -> str:
    """The first non-empty candidate reduced to ``en|fr|nl|de`` (English otherwise)."""
    for candidate in candidates:
        if candidate:
            prefix = candidate.split("-")[0].split("_")[0].lower()
            return prefix if prefix in _CATALOGUE else "en"
    return "en"


def _zone(name: str | None) -> tzinfo:
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError
        return UTC


def _local(moment: datetime, timezone: str | None) -> datetime:
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(_zone(timezone))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def download_link(links: LinkConfig, recording_id: UUID) -> str:
    """``<RECORDING_DOWNLOAD_BASE_URL>/<recording id>``."""
    return f"{links.recording_download_base_url}/{recording_id}"


def metadata_filename(recording: RecordingInfo, collector: MetadataCollectorConfig) -> str | None:
    """``<folder>/<id>-metadata.json`` when the collector ran for this recording, else None."""
    if collector.enabled and recording.options.get("collect_metadata"):
        return f"{collector.output_folder}/{recording.id}-metadata.json"
    return None


def notification_targets(mode: str, options: Mapping[str, Any]) -> frozenset[NotificationTarget]:
    """transcript → summary; screen_recording → e-mail (+ summary with ``transcribe``)."""
    if mode == "transcript":
        return frozenset({"summary"})
    if mode == "screen_recording":
        return frozenset({"email", "summary"} if options.get("transcribe") else {"email"})
    return frozenset()


# ----------------------------------------------------------------------------- summary
def summary_idempotency_key(recording_id: UUID) -> str:
    """A stable ``Idempotency-Key`` for the summary request of one recording."""
    return f"recording-{recording_id}-summary"


def summary_request_headers(
    config: SummaryServiceConfig, *, idempotency_key: str | None = None
) -> dict[str, str]:
    """``Content-Type``, ``Authorization: Bearer <token>`` and optionally ``Idempotency-Key``."""
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {config.api_token.get()}",
    }
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    return headers


def summary_v2_job_id(body: object) -> str | None:
    """The ``job_id`` of a v2 answer, or None (a 2xx without it is a failed attempt)."""
    if isinstance(body, dict):
        job_id = body.get("job_id")
        if isinstance(job_id, str) and job_id:
            return job_id
    return None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def summary_v1_payload(
    recording: RecordingInfo,
    owner: OwnerInfo,
    *,
    links: LinkConfig,
    collector: MetadataCollectorConfig,
) -> dict[str, Any]:
    """The deprecated v1 body (``POST …/api/v1/tasks/``)."""
    return {
        "owner_id": str(owner.id),
        "recording_filename": recording.key,
        "metadata_filename": metadata_filename(recording, collector),
        "email": owner.email,
        "sub": owner.sub,
        "room": recording.room_name,
        "language": recording.options.get("language"),
        "owner_timezone": owner.timezone,
        "download_link": download_link(links, recording.id),
        "context_language": owner.language,
        "recording_start_at": _iso(recording.started_at),
        "recording_end_at": _iso(recording.ended_at),
    }


def meeting_title(
    room_name: str, started_at: datetime | None, *, language: str | None, timezone: str | None
) -> str:
    """'Meeting "<room>" on <YYYY-MM-DD> at <HH:MM>' localised, in ``timezone``; without a
    start time the localised "Transcription"."""
    strings = _CATALOGUE[_language(language)]
    if started_at is None:
        return strings["transcription"]
    local = _local(started_at, timezone)
    return strings["title"].format(
        room=room_name, date=local.strftime("%Y-%m-%d"), time=local.strftime("%H:%M")
    )


SignedUrl = Callable[[str, int], str]
"""``signed_url(key, expiry_seconds)``: a presigned GET URL of ``key``."""


def summary_v2_keys(recording: RecordingInfo, collector: MetadataCollectorConfig) -> list[str]:
    """The object keys :func:`summary_v2_payload` asks ``signed_url`` for."""
    meta_key = metadata_filename(recording, collector)
    return [recording.key, *([meta_key] if meta_key else [])]


def summary_v2_payload(
    recording: RecordingInfo,
    owner: OwnerInfo,
    *,
    links: LinkConfig,
    collector: MetadataCollectorConfig,
    signed_url: SignedUrl,
    expiry_seconds: int = DEFAULT_SIGNED_URL_EXPIRY_SECONDS,
    request_language: str = "en-us",
    auto_create_summary: bool = False,
) -> dict[str, Any]:
    """The v2 body (``POST …/api/v2/async-jobs/transcribe/``).

    ``cloud_storage_url`` is ``signed_url(key, expiry_seconds)``: a presigned GET of the key
    (the caller signs the keys of :func:`summary_v2_keys` beforehand, with the internal S3
    endpoint). ``language`` is the recording option, else the
    2-letter prefix of ``request_language``. The title uses the owner's language (else the
    option, else ``request_language``) and time zone. ``form_link`` and ``metadata`` only
    appear when metadata was collected (``metadata`` also needs both timestamps).
    """
    meta_key = metadata_filename(recording, collector)
    form_base = links.transcription_satisfaction_form_base_url
    form_link = f"{form_base}?room_id={recording.room_id}" if form_base and meta_key else None
    metadata: dict[str, Any] | None = None
    if meta_key and recording.started_at is not None and recording.ended_at is not None:
        metadata = {
            "cloud_storage_url": signed_url(meta_key, expiry_seconds),
            "started_at": recording.started_at.isoformat(),
            "ended_at": recording.ended_at.isoformat(),
        }
    option_language = recording.options.get("language")
    language = option_language or request_language.split("-")[0].lower()
    return {
        "user_sub": owner.sub,
        "user_email": owner.email,
        "cloud_storage_url": signed_url(recording.key, expiry_seconds),
        "language": language,
        "context_language": owner.language,
        "push_to_docs_config": {
            "user_email": owner.email,
            "title": meeting_title(
                recording.room_name,
                recording.started_at,
                language=owner.language or option_language or request_language,
                timezone=owner.timezone,
            ),
            "download_link": download_link(links, recording.id),
            "form_link": form_link,
            "auto_create_summary": auto_create_summary,
        },
        "metadata": metadata,
    }


# ----------------------------------------------------------------------------- e-mails
@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    """One message: ``to`` recipients appear in the headers, ``bcc`` only in the envelope."""

    subject: str
    text: str
    html: str
    from_email: str
    to: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    language: str = "en"

    @property
    def recipients(self) -> tuple[str, ...]:
        """Envelope recipients (``RCPT TO``): ``to`` then ``bcc``."""
        return self.to + self.bcc

    def to_message(
        self, *, date: datetime | None = None, message_id: str | None = None
    ) -> EmailMessage:
        """multipart/alternative (text, then HTML) with From, To (when any), Subject and,
        when given, Date and Message-ID (e.g. ``email.utils.make_msgid(domain=...)``).

        No Bcc header: send with ``recipients=email.recipients``.
        """
        message = EmailMessage()
        message["From"] = self.from_email
        if self.to:
            message["To"] = ", ".join(self.to)
        message["Subject"] = self.subject
        if date is not None:
            message["Date"] = format_datetime(date)
        if message_id is not None:
            message["Message-ID"] = message_id
        message["Content-Language"] = self.language
        message.set_content(self.text)
        message.add_alternative(self.html, subtype="html")
        return message


def recording_ready_email(
    recording: RecordingInfo,
    owner: OwnerInfo,
    *,
    email: EmailConfig,
    links: LinkConfig,
    expiration_days: int | None,
    default_language: str = "en-us",
) -> OutgoingEmail:
    """ "Your recording is ready" for one owner, in their language (else ``default_language``)
    with the recording's creation date (``YYYY-MM-DD``) and time (``HH:MM``) in their time
    zone, the expiration notice when ``expiration_days`` is set, and the download link."""
    language = _language(owner.language, default_language)
    s = _CATALOGUE[language]
    local = _local(recording.created_at, owner.timezone)
    link = download_link(links, recording.id)
    values = {
        "room": recording.room_name,
        "date": local.strftime("%Y-%m-%d"),
        "time": local.strftime("%H:%M"),
        "days": expiration_days,
        "support": email.support_email,
        "brand": email.brand_name,
    }
    intro = [s["ready"].format(**values)]
    if expiration_days:
        intro.append(s["expire"].format(**values))
    steps = [s["step1"], s["step2"], s["step3"]]
    support = s["support"].format(**values) if email.support_email else ""
    thanks = s["thanks"].format(**values)
    text_parts = [
        _text_logo(email, s),
        s["heading"],
        " ".join(intro),
        s["sharing"],
        "\n".join([s["keep"], *(f"{n}. {step}" for n, step in enumerate(steps, 1))]),
        f"{s['open']}: {link}",
        support,
        thanks,
    ]
    html_body = "".join(
        [
            _logo(email, s),
            f"<h1>{_e(s['heading'])}</h1>",
            f"<p>{_e(' '.join(intro))}</p>",
            f"<p>{_e(s['sharing'])}</p>",
            f"<p>{_e(s['keep'])}</p><ol>",
            "".join(f"<li>{_e(step)}</li>" for step in steps),
            f'</ol><p><a href="{_e(link)}">{_e(s["open"])}</a></p>',
            f"<p>{_e(support)}</p>" if support else "",
            f"<p>{_e(thanks)}</p>",
        ]
    )
    return OutgoingEmail(
        subject=_one_line(s["subject"]),
        text="\n\n".join(part for part in text_parts if part) + "\n",
        html=_page(language, html_body),
        from_email=email.from_email,
        to=(owner.email,),
        language=language,
    )


def invitation_email(
    *,
    room_slug: str,
    sender_email: str,
    recipients: Sequence[str],
    email: EmailConfig,
    language: str = "en-us",
) -> OutgoingEmail:
    """ "Video call in progress: <sender> is waiting for you to connect", every recipient in
    BCC, button to ``<EMAIL_APP_BASE_URL>/<slug>`` and ``<EMAIL_DOMAIN>/<slug>`` as text.

    The subject stays English in every language, as in the reference (its translation
    lookup never matches); the body follows ``language``.
    """
    code = _language(language)
    s = _CATALOGUE[code]
    room_url = f"{email.app_base_url}/{room_slug}"
    room_link = f"{email.domain}/{room_slug}"
    thanks = s["thanks"].format(brand=email.brand_name)
    tips = [s["tip1"], s["tip2"], s["tip3"]]
    text = "\n\n".join(
        part
        for part in [
            _text_logo(email, s),
            f"{sender_email} {s['invites']}",
            f"{s['join']}: {room_url}",
            room_link,
            s["copy"],
            "\n".join([s["tips"], *(f"- {tip}" for tip in tips)]),
            thanks,
        ]
        if part
    )
    html_body = "".join(
        [
            _logo(email, s),
            f'<p><a href="mailto:{_e(sender_email)}">{_e(sender_email)}</a> {_e(s["invites"])}</p>',
            f'<p><a href="{_e(room_url)}">{_e(s["join"])}</a></p>',
            f"<p>{_e(room_link)}</p>",
            f"<p>{_e(s['copy'])}</p>",
            f"<p>{_e(s['tips'])}</p><ul>",
            "".join(f"<li>{_e(tip)}</li>" for tip in tips),
            f"</ul><p>{_e(thanks)}</p>",
        ]
    )
    return OutgoingEmail(
        subject=_one_line(f"Video call in progress: {sender_email} is waiting for you to connect"),
        text=text + "\n",
        html=_page(code, html_body),
        from_email=email.from_email,
        bcc=tuple(recipients),
        language=code,
    )


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _logo_alt(email: EmailConfig, strings: Mapping[str, str]) -> str:
    return f"{strings['logo']} {email.brand_name}".strip()


def _logo(email: EmailConfig, strings: Mapping[str, str]) -> str:
    if not email.logo_img:
        return ""
    alt = _logo_alt(email, strings)
    return f'<p><img src="{_e(email.logo_img)}" alt="{_e(alt)}" width="320"></p>'


def _text_logo(email: EmailConfig, strings: Mapping[str, str]) -> str:
    """The logo in the text part, as Meet's html-to-text renders an image: ``alt [src]``."""
    return f"{_logo_alt(email, strings)} [{email.logo_img}]" if email.logo_img else ""


def _page(language: str, body: str) -> str:
    return (
        f'<!DOCTYPE html><html lang="{language}"><head><meta charset="utf-8"></head>'
        f"<body>{body}</body></html>\n"
    )


# ----------------------------------------------------------------------------- strings
# From Meet's backend catalogues (django.po) and the summary service's title templates.
_CATALOGUE: Final[dict[str, dict[str, str]]] = {
    "en": {
        "title": 'Meeting "{room}" on {date} at {time}',
        "transcription": "Transcription",
        "subject": "Your recording is ready",
        "heading": "Your recording is ready!",
        "ready": 'Your recording of "{room}" on {date} at {time} is now ready to download.',
        "expire": "The recording will expire in {days} days.",
        "sharing": "Sharing the recording via link is not yet available. "
        "Only organizers can download it.",
        "keep": "To keep this recording permanently:",
        "step1": 'Click the "Open" button below',
        "step2": 'Use the "Download" button in the interface',
        "step3": "Save the file to your preferred location",
        "open": "Open",
        "support": "If you have any questions or need assistance, "
        "please contact our support team at {support}.",
        "thanks": "Thank you for using {brand}.",
        "logo": "Logo email",
        "invites": "invites you to join an ongoing video call",
        "join": "JOIN THE CALL",
        "copy": "If you can't click the button, copy and paste the URL into your browser "
        "to join the call.",
        "tips": "Tips for a better experience:",
        "tip1": "Use Chrome or Firefox for better call quality",
        "tip2": "Test your microphone and camera before joining",
        "tip3": "Make sure you have a stable internet connection",
    },
    "fr": {
        "title": 'Réunion "{room}" du {date} à {time}',
        "transcription": "Transcription",
        "subject": "Votre enregistrement est prêt",
        "heading": "Votre enregistrement est prêt !",
        "ready": 'Votre enregistrement de "{room}" du {date} à {time} est maintenant prêt '
        "à être téléchargé.",
        "expire": "L'enregistrement expirera dans {days} jours.",
        "sharing": "Le partage de l'enregistrement via lien n'est pas encore disponible. "
        "Seuls les organisateurs peuvent le télécharger.",
        "keep": "Pour conserver cet enregistrement de façon permanente :",
        "step1": 'Cliquez sur le bouton "Ouvrir" ci-dessous',
        "step2": 'Utilisez le bouton "Télécharger" dans l\'interface',
        "step3": "Enregistrez le fichier à l'emplacement de votre choix",
        "open": "Ouvrir",
        "support": "Si vous avez des questions ou besoin d'assistance, veuillez contacter "
        "notre équipe d'assistance à {support}.",
        "thanks": "Merci d'utiliser {brand}.",
        "logo": "Logo email",
        "invites": "vous invite à rejoindre un appel vidéo en cours",
        "join": "REJOINDRE L'APPEL",
        "copy": "Si vous ne pouvez pas cliquer sur le bouton, copiez et collez l'URL dans "
        "votre navigateur pour rejoindre l'appel.",
        "tips": "Conseils pour une meilleure expérience :",
        "tip1": "Utilisez Chrome ou Firefox pour une meilleure qualité d'appel",
        "tip2": "Testez votre microphone et votre caméra avant de rejoindre",
        "tip3": "Assurez-vous d'avoir une connexion Internet stable",
    },
    "nl": {
        "title": 'Vergadering "{room}" op {date} om {time}',
        "transcription": "Transcriptie",
        "subject": "Je opname is klaar",
        "heading": "Je opname is klaar!",
        "ready": 'Je opname van "{room}" op {date} om {time} is nu klaar om te downloaden.',
        "expire": "De opname verloopt over {days} dagen.",
        "sharing": "Het delen van de opname via een link is nog niet beschikbaar. "
        "Alleen organisatoren kunnen deze downloaden.",
        "keep": "Om deze opname permanent te bewaren:",
        "step1": 'Klik op de knop "Openen" hieronder',
        "step2": 'Gebruik de "Download"-knop in de interface',
        "step3": "Sla het bestand op naar je gewenste locatie",
        "open": "Openen",
        "support": "Als je vragen hebt of hulp nodig hebt, neem dan contact op met ons "
        "support team via {support}.",
        "thanks": "Bedankt voor het gebruik van {brand}.",
        "logo": "Logo e-mail",
        "invites": "nodigt je uit om deel te nemen aan een lopende video-oproep",
        "join": "NEEM DEEL AAN DE OPROEP",
        "copy": "Als je niet op de knop kunt klikken, kopieer en plak dan de URL in je "
        "browser om deel te nemen aan de oproep.",
        "tips": "Tips voor een betere ervaring:",
        "tip1": "Gebruik Chrome of Firefox voor betere gesprekskwaliteit",
        "tip2": "Test je microfoon en camera voordat je deelneemt",
        "tip3": "Zorg ervoor dat je een stabiele internetverbinding hebt",
    },
    "de": {
        "title": 'Besprechung "{room}" am {date} um {time}',
        "transcription": "Transkription",
        "subject": "Ihre Aufzeichnung ist bereit",
        "heading": "Ihre Aufzeichnung ist fertig!",
        "ready": 'Ihre Aufzeichnung von "{room}" am {date} um {time} steht nun zum '
        "Herunterladen bereit.",
        "expire": "Die Aufzeichnung wird in {days} Tagen ablaufen.",
        "sharing": "Die Freigabe der Aufzeichnung per Link ist noch nicht verfügbar. "
        "Nur Organisatoren können sie herunterladen.",
        "keep": "So speichern Sie diese Aufzeichnung dauerhaft:",
        "step1": "Klicken Sie auf den Button „Öffnen“ unten",
        "step2": "Verwenden Sie den Button „Herunterladen“ in der Oberfläche",
        "step3": "Speichern Sie die Datei an einem gewünschten Ort",
        "open": "Öffnen",
        "support": "Wenn Sie Fragen haben oder Unterstützung benötigen, wenden Sie sich "
        "bitte an unser Support-Team unter {support}.",
        "thanks": "Vielen Dank für die Nutzung von {brand}.",
        "logo": "Logo-E-Mail",
        "invites": "lädt Sie zu einem laufenden Videoanruf ein",
        "join": "AM ANRUF TEILNEHMEN",
        "copy": "Wenn Sie den Button nicht anklicken können, kopieren Sie die URL und fügen "
        "Sie sie in Ihren Browser ein, um am Anruf teilzunehmen.",
        "tips": "Tipps für ein besseres Erlebnis:",
        "tip1": "Verwenden Sie Chrome oder Firefox für eine bessere Anrufqualität",
        "tip2": "Testen Sie Ihr Mikrofon und Ihre Kamera vor dem Beitritt",
        "tip3": "Stellen Sie sicher, dass Sie eine stabile Internetverbindung haben",
    },
}
