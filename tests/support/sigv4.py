"""An independent AWS Signature Version 4 for S3 GETs, without boto (pure functions, no I/O).

Test-side only: the service signs with botocore (``coordinator.object_storage``); this
hand-written signer, checked against AWS's published vectors in ``test_sigv4``, is the oracle
the media-auth tests compare the service's headers with.

Two ways to authorise a GET of one object:

* :func:`sign_get_headers` returns the headers (``Authorization``, ``X-Amz-Date``,
  ``X-Amz-Content-SHA256``, ``Host``) a reverse proxy forwards to the bucket; this is what
  ``GET /recordings/media-auth/`` answers. The payload hash is the SHA-256 of the empty body.
* :func:`presigned_get_url` returns a query-string-signed URL valid ``expires_in`` seconds
  (the summary service's ``cloud_storage_url``), signed with ``UNSIGNED-PAYLOAD``.

Both use path-style addressing by default (``<endpoint>/<bucket>/<key>``, what MinIO and most
S3-compatible stores expect); ``addressing_style="virtual"`` gives
``<scheme>://<bucket>.<endpoint host>/<key>``. The object key is URI-encoded once, keeping
``/`` (S3 does not double-encode nor normalise paths). The clock is an argument: pass an
aware ``datetime`` (naive values are refused).

The lower-level :func:`signing_key`, :func:`canonical_request`, :func:`string_to_sign` and
:func:`signature` are exposed so the AWS test vectors can be checked step by step.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import quote, urlsplit

from coordinator.settings import Secret

__all__ = [
    "ALGORITHM",
    "EMPTY_PAYLOAD_SHA256",
    "MAX_PRESIGN_EXPIRY_SECONDS",
    "UNSIGNED_PAYLOAD",
    "S3Config",
    "canonical_query",
    "canonical_request",
    "credential_scope",
    "object_url",
    "presigned_get_url",
    "sign_get_headers",
    "signature",
    "signing_key",
    "string_to_sign",
]

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "s3"
EMPTY_PAYLOAD_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
MAX_PRESIGN_EXPIRY_SECONDS = 7 * 24 * 3600  # S3's limit for SigV4 presigned URLs
_DEFAULT_PORTS = {"http": 80, "https": 443}

AddressingStyle = Literal["path", "virtual"]


@dataclass(frozen=True, slots=True)
class S3Config:
    """Where the bucket lives and the credentials that sign for it.

    Env (Meet's names): AWS_S3_ENDPOINT_URL, AWS_STORAGE_BUCKET_NAME, AWS_S3_ACCESS_KEY_ID,
    AWS_S3_SECRET_ACCESS_KEY, AWS_S3_REGION_NAME (default ``us-east-1``) and, optionally,
    AWS_S3_ADDRESSING_STYLE (``path`` by default).
    """

    endpoint_url: str
    bucket: str
    access_key: str
    secret_key: Secret = field(repr=False)
    region: str = "us-east-1"
    addressing_style: AddressingStyle = "path"

    def __post_init__(self) -> None:
        parts = urlsplit(self.endpoint_url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"S3 endpoint URL {self.endpoint_url!r} must be http(s)://host")
        if not self.bucket:
            raise ValueError("S3 bucket name must not be empty")


# ------------------------------------------------------------------ SigV4 primitives
def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def _uri_encode(value: str, *, keep_slash: bool) -> str:
    """AWS URI-encode: every byte but ``A-Za-z0-9-._~`` (and ``/`` for paths) as ``%XX``."""
    return quote(value.encode("utf-8"), safe="/~" if keep_slash else "~")


def signing_key(secret_key: str, date: str, region: str, service: str = SERVICE) -> bytes:
    """``kSigning`` = HMAC chain over ``AWS4<secret>``, ``YYYYMMDD``, region, service."""
    key = _hmac(f"AWS4{secret_key}".encode(), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def credential_scope(date: str, region: str, service: str = SERVICE) -> str:
    return f"{date}/{region}/{service}/aws4_request"


def canonical_query(params: Sequence[tuple[str, str]]) -> str:
    """Names and values URI-encoded (``/`` too), sorted by encoded name then value."""
    encoded = sorted(
        (_uri_encode(name, keep_slash=False), _uri_encode(value, keep_slash=False))
        for name, value in params
    )
    return "&".join(f"{name}={value}" for name, value in encoded)


def canonical_request(
    method: str,
    canonical_uri: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    payload_hash: str,
) -> tuple[str, str]:
    """The canonical request and its ``SignedHeaders`` list (every header in ``headers``).

    ``canonical_uri`` is already encoded. Header names are lower-cased and values trimmed
    with inner runs of spaces collapsed, as the SigV4 specification requires.
    """
    lowered = {name.lower(): " ".join(value.split()) for name, value in headers.items()}
    names = sorted(lowered)
    canonical_headers = "".join(f"{name}:{lowered[name]}\n" for name in names)
    signed_headers = ";".join(names)
    text = "\n".join(
        (
            method.upper(),
            canonical_uri,
            canonical_query(query),
            canonical_headers,
            signed_headers,
            payload_hash,
        )
    )
    return text, signed_headers


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def signature(key: bytes, text_to_sign: str) -> str:
    return hmac.new(key, text_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


# ------------------------------------------------------------------ S3 objects
@dataclass(frozen=True, slots=True)
class _Target:
    scheme: str
    host: str  # the Host header value (port omitted when it is the scheme's default)
    path: str  # canonical (encoded) URI


def _target(config: S3Config, key: str) -> _Target:
    parts = urlsplit(config.endpoint_url)
    hostname = parts.hostname or ""
    if ":" in hostname:  # IPv6 literal
        hostname = f"[{hostname}]"
    base = parts.path.rstrip("/")
    encoded_key = _uri_encode(key, keep_slash=True)
    if config.addressing_style == "virtual":
        hostname = f"{config.bucket}.{hostname}"
        path = f"{base}/{encoded_key}"
    else:
        path = f"{base}/{_uri_encode(config.bucket, keep_slash=False)}/{encoded_key}"
    port = parts.port
    host = (
        hostname if port is None or port == _DEFAULT_PORTS[parts.scheme] else f"{hostname}:{port}"
    )
    return _Target(scheme=parts.scheme, host=host, path=path)


def _amz_date(now: datetime) -> tuple[str, str]:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    stamp = now.astimezone(UTC)
    return stamp.strftime("%Y%m%dT%H%M%SZ"), stamp.strftime("%Y%m%d")


def object_url(config: S3Config, key: str) -> str:
    """The unsigned URL of ``key`` (what the signed requests below GET)."""
    target = _target(config, key)
    return f"{target.scheme}://{target.host}{target.path}"


def sign_get_headers(config: S3Config, key: str, now: datetime) -> dict[str, str]:
    """Headers authorising a body-less ``GET`` of ``key`` at :func:`object_url`.

    Returns ``Authorization``, ``X-Amz-Date``, ``X-Amz-Content-SHA256`` and ``Host``; the
    proxy must send them unchanged (the signature covers ``host``, ``x-amz-content-sha256``
    and ``x-amz-date``). S3 accepts them for 15 minutes around ``now``.
    """
    target = _target(config, key)
    amz_date, date = _amz_date(now)
    headers = {
        "host": target.host,
        "x-amz-content-sha256": EMPTY_PAYLOAD_SHA256,
        "x-amz-date": amz_date,
    }
    canonical, signed_headers = canonical_request(
        "GET", target.path, (), headers, EMPTY_PAYLOAD_SHA256
    )
    scope = credential_scope(date, config.region)
    key_bytes = signing_key(config.secret_key.get(), date, config.region)
    sig = signature(key_bytes, string_to_sign(amz_date, scope, canonical))
    authorization = (
        f"{ALGORITHM} Credential={config.access_key}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={sig}"
    )
    return {
        "Authorization": authorization,
        "X-Amz-Date": amz_date,
        "X-Amz-Content-SHA256": EMPTY_PAYLOAD_SHA256,
        "Host": target.host,
    }


def presigned_get_url(config: S3Config, key: str, expires_in: int, now: datetime) -> str:
    """A URL that GETs ``key`` without credentials for ``expires_in`` seconds after ``now``.

    ``expires_in`` must be within 1..604800 (S3's limit); raises ``ValueError`` otherwise.
    Only ``host`` is signed, so any client can use the URL as is (do not re-encode it).
    """
    if not 1 <= expires_in <= MAX_PRESIGN_EXPIRY_SECONDS:
        raise ValueError(f"expires_in must be within 1..{MAX_PRESIGN_EXPIRY_SECONDS} seconds")
    target = _target(config, key)
    amz_date, date = _amz_date(now)
    scope = credential_scope(date, config.region)
    query = [
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential", f"{config.access_key}/{scope}"),
        ("X-Amz-Date", amz_date),
        ("X-Amz-Expires", str(expires_in)),
        ("X-Amz-SignedHeaders", "host"),
    ]
    canonical, _ = canonical_request(
        "GET", target.path, query, {"host": target.host}, UNSIGNED_PAYLOAD
    )
    key_bytes = signing_key(config.secret_key.get(), date, config.region)
    sig = signature(key_bytes, string_to_sign(amz_date, scope, canonical))
    query_string = canonical_query([*query, ("X-Amz-Signature", sig)])
    return f"{target.scheme}://{target.host}{target.path}?{query_string}"
