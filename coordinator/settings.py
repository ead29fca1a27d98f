"""Configuration: one frozen typed object, built once from the environment and passed down.

Variable names follow La Suite Meet's wherever Meet has the setting, so an operator's Meet env
file works unchanged. Parse errors raise :class:`ConfigurationError` naming the variable.
Secrets are wrapped in :class:`Secret`, whose ``repr``/``str`` never show the value.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

from coordinator.errors import ConfigurationError
from coordinator.throttle import Rate, parse_rate

ACCESS_LEVELS = ("public", "trusted", "restricted")
DEFAULT_SOURCES = ("camera", "microphone", "screen_share", "screen_share_audio")
LANGUAGES = ("en-us", "fr-fr", "nl-nl", "de-de")
ENGINES = ("local", "ray")


class Secret:
    """A string that does not show itself in logs, reprs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('**********')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class _Env:
    """Typed reads of an environment mapping; every error names the variable."""

    _TRUE = {"1", "true", "yes", "on", "t", "y"}
    _FALSE = {"0", "false", "no", "off", "f", "n", ""}

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def raw(self, *names: str) -> str | None:
        for name in names:
            value = self._environ.get(name)
            if value is not None:
                return value
        return None

    def text(self, name: str, default: str = "", *aliases: str) -> str:
        value = self.raw(name, *aliases)
        return default if value is None else value.strip()

    def optional_str(self, name: str) -> str | None:
        value = self.raw(name)
        return value.strip() or None if value is not None else None

    def secret(self, name: str, *aliases: str) -> Secret:
        return Secret(self.text(name, "", *aliases))

    def flag(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.strip().lower()
        if lowered in self._TRUE:
            return True
        if lowered in self._FALSE:
            return False
        raise ConfigurationError(f"{name}={value!r} is not a valid boolean (use true or false).")

    def integer(self, name: str, default: int | None, *, minimum: int | None = None) -> int | None:
        value = self.raw(name)
        if value is None or value.strip() == "":
            return default
        try:
            number = int(value.strip())
        except ValueError:
            raise ConfigurationError(f"{name}={value!r} is not a valid integer.") from None
        if minimum is not None and number < minimum:
            raise ConfigurationError(f"{name}={value!r} must be at least {minimum}.")
        return number

    def number(self, name: str, default: float, *, allow_zero: bool = False) -> float:
        value = self.raw(name)
        if value is None or value.strip() == "":
            return default
        try:
            number = float(value.strip())
        except ValueError:
            raise ConfigurationError(f"{name}={value!r} is not a valid number.") from None
        if number < 0 or (number == 0 and not allow_zero):
            raise ConfigurationError(f"{name}={value!r} must be positive.")
        return number

    def rate(self, name: str, default: str) -> Rate | None:
        """A DRF throttle rate (``150/minute``, ``10/s``…); ``none`` disables the throttle."""
        value = self.raw(name)
        try:
            return parse_rate(default if value is None or not value.strip() else value)
        except ValueError as exc:
            raise ConfigurationError(f"{name}: {exc}") from None

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(name, default)
        if value not in choices:
            raise ConfigurationError(f"{name}={value!r} must be one of {', '.join(choices)}.")
        return value

    def items(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.raw(name)
        if value is None:
            return default
        return tuple(item.strip() for item in value.split(",") if item.strip())

    def header_pair(self, name: str) -> tuple[str, str] | None:
        """Django's ``SECURE_PROXY_SSL_HEADER``: ``HTTP_X_FORWARDED_PROTO,https`` (or the HTTP
        spelling ``X-Forwarded-Proto,https``, or a JSON pair); empty or unset: None."""
        value = self.raw(name)
        if value is None or not value.strip():
            return None
        text = value.strip()
        parts: list[Any] = []
        if text.startswith(("[", "(")):
            try:
                parts = list(json.loads(text.replace("(", "[").replace(")", "]")))
            except ValueError:
                parts = []
        else:
            parts = [part.strip() for part in text.split(",")]
        if len(parts) != 2 or not all(isinstance(p, str) and p.strip() for p in parts):
            raise ConfigurationError(
                f"{name}={value!r} must be a header and a value, e.g. HTTP_X_FORWARDED_PROTO,https."
            )
        header, expected = (str(p).strip() for p in parts)
        if header.upper().startswith("HTTP_"):
            header = header[5:].replace("_", "-")
        if not re.fullmatch(r"[A-Za-z0-9-]+", header):
            raise ConfigurationError(f"{name}={value!r}: {header!r} is not a header name.")
        return header, expected

    def json_object(self, name: str) -> dict[str, Any]:
        value = self.raw(name)
        if value is None or value.strip() == "":
            return {}
        try:
            parsed = json.loads(value)
        except ValueError:
            raise ConfigurationError(f"{name} is not valid JSON.") from None
        if not isinstance(parsed, dict):
            raise ConfigurationError(f"{name} must be a JSON object.")
        return parsed


def normalize_database_url(url: str, *, variable: str = "DATABASE_URL") -> str:
    """Accept the plain ``sqlite://`` and ``postgresql://`` forms and pick the async driver."""
    url = url.strip()
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigurationError(f"{variable}={url!r} is not a SQLAlchemy URL.")
    drivers = {
        "sqlite": "sqlite+aiosqlite",
        "sqlite+aiosqlite": "sqlite+aiosqlite",
        "postgres": "postgresql+asyncpg",
        "postgresql": "postgresql+asyncpg",
        "postgresql+asyncpg": "postgresql+asyncpg",
        "postgresql+psycopg2": "postgresql+asyncpg",
        "postgresql+psycopg": "postgresql+asyncpg",
    }
    if scheme not in drivers:
        raise ConfigurationError(
            f"{variable} uses the unsupported scheme {scheme!r}: use sqlite:/// or postgresql://."
        )
    return f"{drivers[scheme]}://{rest}"


def require_shared_database(database_url: str) -> None:
    """The Ray engine's hosts and front ends are separate processes, maybe on several
    machines: they must share one PostgreSQL database."""
    if not database_url.startswith("postgresql"):
        raise ConfigurationError(
            "MEET_ENGINE=ray needs PostgreSQL: set DATABASE_URL to a postgresql:// URL "
            "(SQLite cannot be shared by the room hosts and the front ends)."
        )


@dataclass(frozen=True, slots=True)
class LiveKitSettings:
    api_key: str = "devkey"
    api_secret: Secret = field(default_factory=lambda: Secret(""))
    api_url: str = "http://127.0.0.1:7880"
    verify_ssl: bool = True
    default_sources: tuple[str, ...] = DEFAULT_SOURCES
    webhook_events_filter_regex: str | None = None
    timeout_seconds: float = 5.0
    force_wss_protocol: bool = False
    enable_firefox_proxy_workaround: bool = False


@dataclass(frozen=True, slots=True)
class OIDCSettings:
    client_id: str = ""
    client_secret: Secret = field(default_factory=lambda: Secret(""))
    authorization_endpoint: str = ""
    token_endpoint: str = ""
    user_endpoint: str = ""
    jwks_endpoint: str = ""
    logout_endpoint: str = ""
    issuer: str = ""
    scopes: str = "openid email"
    sign_algo: str = "RS256"
    use_pkce: bool = True
    create_user: bool = True
    fallback_to_email_for_identification: bool = False
    rs_audience: str = ""
    fullname_fields: tuple[str, ...] = ("given_name", "usual_name")
    shortname_field: str = "given_name"
    redirect_allowed_hosts: tuple[str, ...] = ()
    login_redirect_url: str = "/"
    login_redirect_url_failure: str = "/"
    logout_redirect_url: str = "/"
    timeout_seconds: float = 10.0

    @property
    def login_enabled(self) -> bool:
        return bool(self.client_id and self.authorization_endpoint and self.token_endpoint)

    @property
    def audience(self) -> str:
        return self.rs_audience or self.client_id


@dataclass(frozen=True, slots=True)
class S3Settings:
    endpoint_url: str = ""
    bucket: str = ""
    access_key: str = ""
    secret_key: Secret = field(default_factory=lambda: Secret(""))
    region: str = "us-east-1"
    addressing_style: str = "path"

    @property
    def configured(self) -> bool:
        return bool(self.endpoint_url and self.bucket)


@dataclass(frozen=True, slots=True)
class SummarySettings:
    version: int = 1
    endpoint: str = ""
    api_token: Secret = field(default_factory=lambda: Secret(""))
    webhook_api_token: Secret = field(default_factory=lambda: Secret(""))
    signed_url_expiry_seconds: int = 86400
    timeout_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class EmailSettings:
    host: str = "localhost"
    port: int = 25
    user: str = ""
    password: Secret = field(default_factory=lambda: Secret(""))
    use_tls: bool = False
    use_ssl: bool = False
    from_email: str = "meet@example.com"
    brand_name: str = "Meet"
    support_email: str = ""
    logo_img: str = ""
    domain: str = ""
    app_base_url: str = ""
    timeout_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class EncodingSettings:
    enabled: bool = False
    width: int = 1280
    height: int = 720
    framerate: int = 30
    video_bitrate: int = 3000
    audio_bitrate: int = 128
    key_frame_interval: float = 4.0


_PER_MINUTE_150 = Rate(150, 60.0)
_PER_MINUTE_600 = Rate(600, 60.0)
_PER_MINUTE_30 = Rate(30, 60.0)
_PER_HOUR_200 = Rate(200, 3600.0)


@dataclass(frozen=True, slots=True)
class ThrottleSettings:
    """Abuse limits (DRF rate syntax; a ``None`` rate throttles nothing).

    ``request_entry`` and ``creation_callback`` are Meet's rates (per lobby cookie or user, per
    IP). The others are ours: new lobby participants (request-entry without a valid lobby
    cookie) per IP, invitation e-mails per user, and recipients per invite call.
    """

    request_entry: Rate | None = _PER_MINUTE_150
    creation_callback: Rate | None = _PER_MINUTE_600
    request_entry_new_participant: Rate | None = _PER_MINUTE_30
    invite: Rate | None = _PER_HOUR_200
    invite_max_recipients: int = 50


@dataclass(frozen=True, slots=True)
class OutboxSettings:
    max_attempts: int = 8
    base_delay_seconds: float = 2.0
    max_delay_seconds: float = 600.0
    poll_seconds: float = 1.0
    lease_seconds: float = 60.0
    batch_size: int = 200


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the service reads from its environment. Tests construct it directly."""

    # repr=False: a PostgreSQL URL may carry a password.
    database_url: str = field(default="sqlite+aiosqlite:///meet.db", repr=False)
    secret_key: Secret = field(default_factory=lambda: Secret(""))
    engine: str = "local"
    # The Ray engine (DESIGN §3): the cluster to join (None or "local": start one for this
    # machine), the namespace of our named actors, and how many room hosts there are.
    ray_address: str | None = None
    ray_namespace: str = "meet-coordinator"
    ray_hosts: int = 2
    livekit: LiveKitSettings = field(default_factory=LiveKitSettings)
    oidc: OIDCSettings = field(default_factory=OIDCSettings)
    language_code: str = "en-us"
    resource_default_access_level: str = "public"
    allow_unregistered_rooms: bool = True
    allow_unsecure_user_listing: bool = False
    authenticated_participants_can_edit_display_name: bool = True
    recording_enable: bool = False
    recording_storage_event_enable: bool = False
    recording_expiration_days: int | None = None
    recording_max_duration: int | None = None
    recording_output_folder: str = "recordings"
    room_subtitle_enabled: bool = False
    connection_test_enabled: bool = False
    file_upload_enabled: bool = False
    room_telephony_enabled: bool = False
    roomkit_enabled: bool = False
    room_telephony_pin_length: int = 10
    room_telephony_pin_max_retries: int = 5
    room_creation_callback_cache_timeout: int = 600
    session_cookie_age: int = 12 * 3600
    session_cookie_secure: bool = False
    # The csrftoken cookie is Secure when this or session_cookie_secure is set.
    csrf_cookie_secure: bool = False
    csrf_trusted_origins: tuple[str, ...] = ()
    # When set, /metrics asks for "Authorization: Bearer <OPS_TOKEN>".
    ops_token: Secret = field(default_factory=lambda: Secret(""))
    # Django's pair: (header, value) meaning "the client spoke https to the trusted proxy";
    # None: forwarded headers are ignored. Header names are HTTP ones ("X-Forwarded-Proto").
    secure_proxy_ssl_header: tuple[str, str] | None = None
    use_x_forwarded_host: bool = False
    frontend_configuration: dict[str, Any] = field(default_factory=dict)
    frontend_dist_dir: str | None = None
    lookup_cache_seconds: float = 2.0
    s3: S3Settings = field(default_factory=S3Settings)
    summary: SummarySettings = field(default_factory=SummarySettings)
    email: EmailSettings = field(default_factory=EmailSettings)
    encoding: EncodingSettings = field(default_factory=EncodingSettings)
    outbox: OutboxSettings = field(default_factory=OutboxSettings)
    recording_event_parser: str = "minio"
    recording_enable_storage_event_auth: bool = True
    recording_storage_event_token: Secret = field(default_factory=lambda: Secret(""))
    recording_download_base_url: str = ""
    transcription_satisfaction_form_base_url: str = ""
    metadata_collector_enabled: bool = False
    metadata_collector_output_folder: str = "metadata"
    recording_reconcile_seconds: float = 60.0
    recording_stuck_initiated_seconds: float = 120.0
    # The outbox dispatcher and reconciler run in the server; tests drive them by hand.
    background_tasks: bool = True
    room_idle_seconds: float = 300.0
    # ``serve``: a connection that has not sent a complete request head by then is closed;
    # at most this many connections are open (None: as the open-file limit allows).
    header_timeout_seconds: float = 10.0
    max_connections: int | None = None
    connection_test_room_prefix: str = "connection-test"
    version: str = "0.1.0"
    throttles: ThrottleSettings = field(default_factory=ThrottleSettings)
    # Issue 8 point 4: diagnostics, subtitles, metadata collector, telephony/roomkit SIP.
    connection_test_token_ttl_seconds: int = 300
    connection_test_room_extra_age_seconds: int = 10
    connection_test_throttle_rate: tuple[int, float] = (30, 60.0)
    room_subtitle_agent_name: str = "multi-user-transcriber"
    metadata_collector_agent_name: str = "metadata-collector"
    roomkit_server_to_server_api_token: Secret = field(default_factory=lambda: Secret(""))
    roomkit_join_throttle_rate: tuple[int, float] = (300, 60.0)
    room_telephony_phone_number: str | None = None
    room_telephony_default_country: str = "US"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build the settings; raises :class:`ConfigurationError` naming a bad variable."""
        env = _Env(environ)
        livekit = LiveKitSettings(
            api_key=env.text("LIVEKIT_API_KEY", "devkey"),
            api_secret=env.secret("LIVEKIT_API_SECRET"),
            api_url=env.text("LIVEKIT_API_URL", "http://127.0.0.1:7880"),
            verify_ssl=env.flag("LIVEKIT_VERIFY_SSL", True),
            default_sources=env.items("LIVEKIT_DEFAULT_SOURCES", DEFAULT_SOURCES),
            webhook_events_filter_regex=env.optional_str("LIVEKIT_WEBHOOK_EVENTS_FILTER_REGEX"),
            timeout_seconds=env.number("LIVEKIT_TIMEOUT_SECONDS", 5.0),
            force_wss_protocol=env.flag("LIVEKIT_FORCE_WSS_PROTOCOL", False),
            enable_firefox_proxy_workaround=env.flag(
                "LIVEKIT_ENABLE_FIREFOX_PROXY_WORKAROUND", False
            ),
        )
        for source in livekit.default_sources:
            if source not in DEFAULT_SOURCES:
                raise ConfigurationError(
                    f"LIVEKIT_DEFAULT_SOURCES holds {source!r}; "
                    f"allowed: {', '.join(DEFAULT_SOURCES)}."
                )
        if livekit.webhook_events_filter_regex:
            try:
                re.compile(livekit.webhook_events_filter_regex)
            except re.error:
                # Meet's rule: an invalid regex disables the filter.
                livekit = replace(livekit, webhook_events_filter_regex=None)
        oidc = OIDCSettings(
            client_id=env.text("OIDC_RP_CLIENT_ID"),
            client_secret=env.secret("OIDC_RP_CLIENT_SECRET"),
            authorization_endpoint=env.text("OIDC_OP_AUTHORIZATION_ENDPOINT"),
            token_endpoint=env.text("OIDC_OP_TOKEN_ENDPOINT"),
            user_endpoint=env.text("OIDC_OP_USER_ENDPOINT"),
            jwks_endpoint=env.text("OIDC_OP_JWKS_ENDPOINT"),
            logout_endpoint=env.text("OIDC_OP_LOGOUT_ENDPOINT"),
            issuer=env.text("OIDC_OP_ISSUER"),
            scopes=env.text("OIDC_RP_SCOPES", "openid email"),
            sign_algo=env.text("OIDC_RP_SIGN_ALGO", "RS256"),
            use_pkce=env.flag("OIDC_USE_PKCE", True),
            create_user=env.flag("OIDC_CREATE_USER", True),
            fallback_to_email_for_identification=env.flag(
                "OIDC_FALLBACK_TO_EMAIL_FOR_IDENTIFICATION", False
            ),
            rs_audience=env.text("OIDC_RS_AUDIENCE"),
            fullname_fields=env.items(
                "OIDC_USERINFO_FULLNAME_FIELDS", ("given_name", "usual_name")
            ),
            shortname_field=env.text("OIDC_USERINFO_SHORTNAME_FIELD", "given_name"),
            redirect_allowed_hosts=env.items("OIDC_REDIRECT_ALLOWED_HOSTS", ()),
            login_redirect_url=env.text("LOGIN_REDIRECT_URL", "/"),
            login_redirect_url_failure=env.text("LOGIN_REDIRECT_URL_FAILURE", "/"),
            logout_redirect_url=env.text("LOGOUT_REDIRECT_URL", "/"),
            timeout_seconds=env.number("OIDC_TIMEOUT_SECONDS", 10.0),
        )
        if oidc.authorization_endpoint and not oidc.client_id:
            raise ConfigurationError("OIDC_RP_CLIENT_ID must be set when OIDC login is configured.")
        secret_key = env.secret("SECRET_KEY", "DJANGO_SECRET_KEY")
        if not secret_key:
            raise ConfigurationError(
                "SECRET_KEY (or DJANGO_SECRET_KEY) must be set: it signs sessions and CSRF tokens."
            )
        if len(secret_key.get()) < 32:
            raise ConfigurationError("SECRET_KEY must be at least 32 characters long.")
        if not livekit.api_secret:
            raise ConfigurationError("LIVEKIT_API_SECRET must be set: it signs LiveKit tokens.")
        pin_length = env.integer("ROOM_TELEPHONY_PIN_LENGTH", 10, minimum=4)
        database_url = _database_url(env)
        engine = env.choice("MEET_ENGINE", "local", ENGINES)
        if engine == "ray":
            require_shared_database(database_url)
        return cls(
            database_url=database_url,
            secret_key=secret_key,
            engine=engine,
            ray_address=env.optional_str("RAY_ADDRESS"),
            ray_namespace=env.text("RAY_NAMESPACE", "meet-coordinator") or "meet-coordinator",
            ray_hosts=env.integer("RAY_HOSTS", 2, minimum=1) or 2,
            livekit=livekit,
            oidc=oidc,
            language_code=env.choice("LANGUAGE_CODE", "en-us", LANGUAGES),
            resource_default_access_level=env.choice(
                "RESOURCE_DEFAULT_ACCESS_LEVEL", "public", ACCESS_LEVELS
            ),
            allow_unregistered_rooms=env.flag("ALLOW_UNREGISTERED_ROOMS", True),
            allow_unsecure_user_listing=env.flag("ALLOW_UNSECURE_USER_LISTING", False),
            authenticated_participants_can_edit_display_name=env.flag(
                "AUTHENTICATED_PARTICIPANTS_CAN_EDIT_DISPLAY_NAME", True
            ),
            recording_enable=env.flag("RECORDING_ENABLE", False),
            recording_storage_event_enable=env.flag("RECORDING_STORAGE_EVENT_ENABLE", False),
            recording_expiration_days=env.integer("RECORDING_EXPIRATION_DAYS", None, minimum=1),
            recording_max_duration=env.integer("RECORDING_MAX_DURATION", None, minimum=1),
            recording_output_folder=env.text("RECORDING_OUTPUT_FOLDER", "recordings"),
            room_subtitle_enabled=env.flag("ROOM_SUBTITLE_ENABLED", False),
            connection_test_enabled=env.flag("CONNECTION_TEST_ENABLED", False),
            file_upload_enabled=env.flag("FILE_UPLOAD_ENABLED", False),
            room_telephony_enabled=env.flag("ROOM_TELEPHONY_ENABLED", False),
            roomkit_enabled=env.flag("ROOMKIT_ENABLED", False),
            room_telephony_pin_length=pin_length or 10,
            room_telephony_pin_max_retries=env.integer(
                "ROOM_TELEPHONY_PIN_MAX_RETRIES", 5, minimum=1
            )
            or 5,
            room_creation_callback_cache_timeout=env.integer(
                "ROOM_CREATION_CALLBACK_CACHE_TIMEOUT", 600, minimum=1
            )
            or 600,
            session_cookie_age=env.integer("SESSION_COOKIE_AGE", 12 * 3600, minimum=60) or 43200,
            session_cookie_secure=env.flag("SESSION_COOKIE_SECURE", False),
            csrf_cookie_secure=env.flag("CSRF_COOKIE_SECURE", False),
            csrf_trusted_origins=env.items(
                "CSRF_TRUSTED_ORIGINS", env.items("DJANGO_CSRF_TRUSTED_ORIGINS", ())
            ),
            ops_token=env.secret("OPS_TOKEN"),
            secure_proxy_ssl_header=env.header_pair("SECURE_PROXY_SSL_HEADER"),
            use_x_forwarded_host=env.flag("USE_X_FORWARDED_HOST", False),
            frontend_configuration=env.json_object("FRONTEND_CONFIGURATION"),
            frontend_dist_dir=env.optional_str("FRONTEND_DIST_DIR"),
            lookup_cache_seconds=env.number("MEET_LOOKUP_CACHE_SECONDS", 2.0, allow_zero=True),
            room_idle_seconds=env.number("MEET_ROOM_IDLE_SECONDS", 300.0),
            header_timeout_seconds=env.number("MEET_HEADER_TIMEOUT_SECONDS", 10.0),
            max_connections=env.integer("MEET_MAX_CONNECTIONS", None, minimum=1),
            connection_test_room_prefix=env.text("CONNECTION_TEST_ROOM_PREFIX", "connection-test"),
            s3=S3Settings(
                endpoint_url=env.text("AWS_S3_ENDPOINT_URL"),
                bucket=env.text("AWS_STORAGE_BUCKET_NAME"),
                access_key=env.text("AWS_S3_ACCESS_KEY_ID"),
                secret_key=env.secret("AWS_S3_SECRET_ACCESS_KEY"),
                region=env.text("AWS_S3_REGION_NAME", "us-east-1") or "us-east-1",
                addressing_style=env.choice("AWS_S3_ADDRESSING_STYLE", "path", ("path", "virtual")),
            ),
            summary=SummarySettings(
                version=env.integer("SUMMARY_SERVICE_VERSION", 1, minimum=1) or 1,
                endpoint=env.text("SUMMARY_SERVICE_ENDPOINT"),
                api_token=env.secret("SUMMARY_SERVICE_API_TOKEN"),
                webhook_api_token=env.secret("SUMMARY_SERVICE_WEBHOOK_API_TOKEN"),
                signed_url_expiry_seconds=env.integer(
                    "SUMMARY_SERVICE_CLOUD_STORAGE_SIGNED_URL_EXPIRY_SECONDS", 86400, minimum=1
                )
                or 86400,
                timeout_seconds=env.number("SUMMARY_SERVICE_TIMEOUT_SECONDS", 30.0),
            ),
            email=EmailSettings(
                host=env.text("EMAIL_HOST", "localhost"),
                port=env.integer("EMAIL_PORT", 25, minimum=1) or 25,
                user=env.text("EMAIL_HOST_USER"),
                password=env.secret("EMAIL_HOST_PASSWORD"),
                use_tls=env.flag("EMAIL_USE_TLS", False),
                use_ssl=env.flag("EMAIL_USE_SSL", False),
                from_email=env.text("EMAIL_FROM", "meet@example.com"),
                brand_name=env.text("EMAIL_BRAND_NAME", "Meet"),
                support_email=env.text("EMAIL_SUPPORT_EMAIL"),
                logo_img=env.text("EMAIL_LOGO_IMG"),
                domain=env.text("EMAIL_DOMAIN"),
                app_base_url=env.text("EMAIL_APP_BASE_URL"),
            ),
            encoding=EncodingSettings(
                enabled=env.flag("RECORDING_ENCODING_ENABLED", False),
                width=env.integer("RECORDING_ENCODING_WIDTH", 1280, minimum=16) or 1280,
                height=env.integer("RECORDING_ENCODING_HEIGHT", 720, minimum=16) or 720,
                framerate=env.integer("RECORDING_ENCODING_FRAMERATE", 30, minimum=1) or 30,
                video_bitrate=env.integer("RECORDING_ENCODING_VIDEO_BITRATE", 3000, minimum=1)
                or 3000,
                audio_bitrate=env.integer("RECORDING_ENCODING_AUDIO_BITRATE", 128, minimum=1)
                or 128,
                key_frame_interval=env.number("RECORDING_ENCODING_KEY_FRAME_INTERVAL", 4.0),
            ),
            throttles=ThrottleSettings(
                request_entry=env.rate("REQUEST_ENTRY_THROTTLE_RATES", "150/minute"),
                creation_callback=env.rate("CREATION_CALLBACK_THROTTLE_RATES", "600/minute"),
                request_entry_new_participant=env.rate(
                    "REQUEST_ENTRY_NEW_PARTICIPANT_THROTTLE_RATES", "30/minute"
                ),
                invite=env.rate("INVITE_THROTTLE_RATES", "200/hour"),
                invite_max_recipients=env.integer("INVITE_MAX_RECIPIENTS", 50, minimum=1) or 50,
            ),
            outbox=OutboxSettings(
                max_attempts=env.integer("MEET_OUTBOX_MAX_ATTEMPTS", 8, minimum=1) or 8,
                base_delay_seconds=env.number("MEET_OUTBOX_BASE_DELAY_SECONDS", 2.0),
                max_delay_seconds=env.number("MEET_OUTBOX_MAX_DELAY_SECONDS", 600.0),
                poll_seconds=env.number("MEET_OUTBOX_POLL_SECONDS", 1.0),
            ),
            recording_event_parser=_parser_name(env.text("RECORDING_EVENT_PARSER_CLASS", "minio")),
            recording_enable_storage_event_auth=env.flag(
                "RECORDING_ENABLE_STORAGE_EVENT_AUTH", True
            ),
            recording_storage_event_token=env.secret("RECORDING_STORAGE_EVENT_TOKEN"),
            recording_download_base_url=env.text(
                "RECORDING_DOWNLOAD_BASE_URL", env.text("SCREEN_RECORDING_BASE_URL")
            ),
            transcription_satisfaction_form_base_url=env.text(
                "TRANSCRIPTION_SATISFACTION_FORM_BASE_URL"
            ),
            metadata_collector_enabled=env.flag("METADATA_COLLECTOR_ENABLED", False),
            metadata_collector_output_folder=env.text(
                "METADATA_COLLECTOR_OUTPUT_FOLDER", "metadata"
            ),
            recording_reconcile_seconds=env.number("MEET_RECORDING_RECONCILE_SECONDS", 60.0),
            connection_test_token_ttl_seconds=env.integer(
                "CONNECTION_TEST_TOKEN_TTL_SECONDS", 300, minimum=1
            )
            or 300,
            connection_test_room_extra_age_seconds=env.integer(
                "CONNECTION_TEST_ROOM_EXTRA_AGE_SECONDS", 10, minimum=1
            )
            or 10,
            connection_test_throttle_rate=_drf_rate(
                env, "CONNECTION_TEST_THROTTLE_RATES", (30, 60.0)
            ),
            room_subtitle_agent_name=env.text("ROOM_SUBTITLE_AGENT_NAME", "multi-user-transcriber"),
            metadata_collector_agent_name=env.text(
                "METADATA_COLLECTOR_AGENT_NAME", "metadata-collector"
            ),
            roomkit_server_to_server_api_token=_secret_or_file(
                env, "ROOMKIT_SERVER_TO_SERVER_API_TOKEN"
            ),
            roomkit_join_throttle_rate=_drf_rate(env, "ROOMKIT_JOIN_THROTTLE_RATES", (300, 60.0)),
            room_telephony_phone_number=env.optional_str("ROOM_TELEPHONY_PHONE_NUMBER"),
            room_telephony_default_country=env.text("ROOM_TELEPHONY_DEFAULT_COUNTRY", "US"),
        )


def _drf_rate(env: _Env, name: str, default: tuple[int, float]) -> tuple[int, float]:
    """A DRF throttle rate (``30/minute``, ``5/s``…) as ``(requests, seconds)``; ``none``
    lifts the limit."""
    if not env.text(name):
        return default
    rate = env.rate(name, "none")
    if rate is None:
        return sys.maxsize, 1.0
    if rate.count < 1:
        raise ConfigurationError(f"{name}={env.text(name)!r} must allow at least one request.")
    return rate.count, rate.seconds


def _secret_or_file(env: _Env, name: str) -> Secret:
    """A secret given directly or, as Meet's SecretFileValue allows, in ``<NAME>_FILE``."""
    path = env.optional_str(f"{name}_FILE")
    if path and not env.raw(name):
        try:
            with open(path, encoding="utf-8") as handle:
                return Secret(handle.read().strip())
        except OSError as exc:
            raise ConfigurationError(f"{name}_FILE={path!r} cannot be read: {exc}") from None
    return env.secret(name)


def _parser_name(value: str) -> str:
    from coordinator.storage_events import parse_parser_name

    return str(parse_parser_name(value))


def _database_url(env: _Env) -> str:
    url = env.optional_str("DATABASE_URL")
    if url:
        return normalize_database_url(url)
    engine = env.optional_str("DB_ENGINE")
    name = env.optional_str("DB_NAME")
    if engine is None and name is None:
        return "sqlite+aiosqlite:///meet.db"
    if engine and "sqlite" in engine:
        return f"sqlite+aiosqlite:///{name or 'meet.db'}"
    if engine and "postgres" not in engine:
        raise ConfigurationError(f"DB_ENGINE={engine!r} is not supported: use PostgreSQL.")
    user = quote(env.text("DB_USER", "meet"), safe="")
    password = quote(env.text("DB_PASSWORD", "pass"), safe="")
    host = env.text("DB_HOST", "localhost")
    port = env.integer("DB_PORT", 5432, minimum=1)
    return f"postgresql+asyncpg://{user}:{password}@{host}:{port}/{name or 'meet'}"
