"""SigV4: the test-side signer ``tests.support.sigv4`` (AWS's published vectors,
botocore-made vectors) and a loopback S3 verifier checking the production client.

The verifier (:class:`FakeS3`) re-implements SigV4 verification independently (its own
encoding, canonicalisation and HMAC chain) and serves objects over HTTP. moto does not check
signatures, so the media-auth headers and presigned GETs of
:class:`coordinator.object_storage.ObjectStorage` (aiobotocore/botocore) are proven here.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from yarl import URL

from coordinator.object_storage import ObjectStorage
from coordinator.settings import S3Settings, Secret
from tests.support.sigv4 import (
    EMPTY_PAYLOAD_SHA256,
    S3Config,
    canonical_request,
    credential_scope,
    object_url,
    presigned_get_url,
    sign_get_headers,
    signature,
    signing_key,
    string_to_sign,
)

AWS_ACCESS = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def at(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


# ------------------------------------------------------------------ AWS documented vectors
def test_signing_key_vectors_from_the_aws_documentation() -> None:
    secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    assert (
        signing_key(secret, "20150830", "us-east-1", "iam").hex()
        == "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
    )
    assert (
        signing_key(secret, "20120215", "us-east-1", "iam").hex()
        == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
    )


def test_sigv4_test_suite_get_vanilla() -> None:
    headers = {"Host": "example.amazonaws.com", "X-Amz-Date": "20150830T123600Z"}
    canonical, signed = canonical_request("GET", "/", (), headers, EMPTY_PAYLOAD_SHA256)
    assert canonical == (
        "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
        "host;x-amz-date\n" + EMPTY_PAYLOAD_SHA256
    )
    assert signed == "host;x-amz-date"
    text = string_to_sign(
        "20150830T123600Z", credential_scope("20150830", "us-east-1", "service"), canonical
    )
    assert text.endswith("bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63")
    key = signing_key(
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830", "us-east-1", "service"
    )
    assert signature(key, text) == (
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    )


def test_s3_documentation_get_object_example() -> None:
    headers = {
        "Host": "examplebucket.s3.amazonaws.com",
        "Range": "bytes=0-9",
        "x-amz-content-sha256": EMPTY_PAYLOAD_SHA256,
        "x-amz-date": "20130524T000000Z",
    }
    canonical, signed = canonical_request("GET", "/test.txt", (), headers, EMPTY_PAYLOAD_SHA256)
    assert signed == "host;range;x-amz-content-sha256;x-amz-date"
    text = string_to_sign("20130524T000000Z", credential_scope("20130524", "us-east-1"), canonical)
    assert text.endswith("7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972")
    assert signature(signing_key(AWS_SECRET, "20130524", "us-east-1"), text) == (
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


def test_s3_documentation_presigned_url_example() -> None:
    config = S3Config(
        "https://s3.amazonaws.com",
        "examplebucket",
        AWS_ACCESS,
        Secret(AWS_SECRET),
        addressing_style="virtual",
    )
    url = presigned_get_url(config, "test.txt", 86400, at("20130524T000000Z"))
    assert url == (
        "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
        "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400"
        "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        "&X-Amz-SignedHeaders=host"
    )


# ------------------------------------------------------------------ botocore 1.44.8 vectors
# Produced with botocore's generate_presigned_url (s3v4) and S3SigV4Auth.add_auth on the
# unsigned URL with a body hash (what Meet's media-auth does), then frozen here.
BOTO_CASES = [
    (
        S3Config("http://minio:9000", "meet-media-storage", AWS_ACCESS, Secret(AWS_SECRET)),
        "recordings/0f0e8d3c-9a8b-4c2d-8e1f-123456789abc.ogg",
        "20261126T001515Z",
        "http://minio:9000/meet-media-storage/recordings/0f0e8d3c-9a8b-4c2d-8e1f-123456789abc.ogg",
        "e936798fff7f46912663fd938b3a5dcdc9de75624f3d00ad0dc27281fdc6896e",
        "d50a2c27919a6dfbd219a5858375b5659dad54aee11d081764d34b1472cd96a0",
    ),
    (
        S3Config("https://s3.fr-par.scw.cloud", "meet", AWS_ACCESS, Secret(AWS_SECRET), "fr-par"),
        "dir with space/é+%25#?.mp4",
        "20261126T001516Z",
        "https://s3.fr-par.scw.cloud/meet/dir%20with%20space/%C3%A9%2B%2525%23%3F.mp4",
        "b9c539f991872c5be6e8ad6c81b4daf98eab76d730c1c9240ad24a5b7a15a937",
        "3bdd542bcde2f7930b8e26b86eacfb0b9effbae46c5c6baa8007864bc5f53390",
    ),
    (
        S3Config(
            "https://s3.amazonaws.com",
            "examplebucket",
            AWS_ACCESS,
            Secret(AWS_SECRET),
            addressing_style="virtual",
        ),
        "recordings/x.mp4",
        "20261126T001516Z",
        "https://examplebucket.s3.amazonaws.com/recordings/x.mp4",
        "03506c4806295556b6932e1c272fadabd24e3fb72828031ba42baffd741b0b6a",
        "2e9769ca204c2da115842abc9382f5ee5265a8f3948284295460f09e0d6f4cf9",
    ),
]


@pytest.mark.parametrize(
    ("config", "key", "stamp", "url", "presigned_sig", "header_sig"), BOTO_CASES
)
def test_matches_botocore(
    config: S3Config, key: str, stamp: str, url: str, presigned_sig: str, header_sig: str
) -> None:
    assert object_url(config, key) == url
    presigned = presigned_get_url(config, key, 86400, at(stamp))
    base, _, query = presigned.partition("?")
    assert base == url
    params = dict(parse_qsl(query))
    assert params["X-Amz-Signature"] == presigned_sig
    assert params["X-Amz-Credential"] == f"{AWS_ACCESS}/{stamp[:8]}/{config.region}/s3/aws4_request"
    headers = sign_get_headers(config, key, at(stamp))
    assert headers == {
        "Authorization": (
            f"AWS4-HMAC-SHA256 Credential={AWS_ACCESS}/{stamp[:8]}/{config.region}/s3/"
            f"aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
            f"Signature={header_sig}"
        ),
        "X-Amz-Date": stamp,
        "X-Amz-Content-SHA256": EMPTY_PAYLOAD_SHA256,
        "Host": urlsplit(url).netloc,
    }


# ------------------------------------------------------------------ argument checks
CONFIG = S3Config("http://minio:9000", "bucket", "key", Secret("secret"))
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        sign_get_headers(CONFIG, "k", datetime(2026, 3, 1))
    with pytest.raises(ValueError, match="aware"):
        presigned_get_url(CONFIG, "k", 60, datetime(2026, 3, 1))


@pytest.mark.parametrize("expires_in", [0, -1, 604801])
def test_expiry_bounds(expires_in: int) -> None:
    with pytest.raises(ValueError, match="expires_in"):
        presigned_get_url(CONFIG, "k", expires_in, NOW)


def test_other_timezones_are_converted_to_utc() -> None:
    paris = NOW.astimezone(timezone(timedelta(hours=1)))
    assert sign_get_headers(CONFIG, "k", paris) == sign_get_headers(CONFIG, "k", NOW)
    assert sign_get_headers(CONFIG, "k", NOW)["X-Amz-Date"] == "20260301T120000Z"


@pytest.mark.parametrize("endpoint", ["minio:9000", "ftp://minio", "http://"])
def test_invalid_endpoint(endpoint: str) -> None:
    with pytest.raises(ValueError, match="endpoint"):
        S3Config(endpoint, "bucket", "key", Secret("secret"))


def test_default_ports_are_left_out_of_host_and_endpoint_path_is_kept() -> None:
    assert sign_get_headers(
        S3Config("https://s3.example.com:443", "b", "k", Secret("s")), "a", NOW
    )["Host"] == ("s3.example.com")
    assert object_url(S3Config("http://s3.example.com:80/prefix/", "b", "k", Secret("s")), "a") == (
        "http://s3.example.com/prefix/b/a"
    )
    assert object_url(S3Config("http://[::1]:9000", "b", "k", Secret("s")), "a") == (
        "http://[::1]:9000/b/a"
    )


def test_secret_is_not_in_repr() -> None:
    assert "secret" not in repr(CONFIG).replace("secret_key", "")


# ------------------------------------------------------------------ loopback verifier
_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<access>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/s3/"
    r"aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<sig>[0-9a-f]{64})"
)


def _enc(text: str, safe: str) -> str:
    return quote(text, safe=safe + "-_.~")


def _hm(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


class FakeS3:
    """A path-style S3 that serves ``objects`` to correctly signed GETs (own verifier)."""

    def __init__(self, access: str, secret: str, region: str, now: datetime) -> None:
        self.access, self.secret, self.region, self.now = access, secret, region, now
        self.objects: dict[tuple[str, str], bytes] = {}
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> FakeS3:
        app = web.Application()
        app.router.add_get("/{bucket}/{key:.+}", self._get)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    def _verify(self, canonical: str, date: str, amz_date: str, sig: str) -> bool:
        scope = f"{date}/{self.region}/s3/aws4_request"
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        text = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{digest}"
        key = _hm(f"AWS4{self.secret}".encode(), date)
        for part in (self.region, "s3", "aws4_request"):
            key = _hm(key, part)
        expected = hmac.new(key, text.encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, sig)

    async def _get(self, request: web.Request) -> web.Response:
        raw_path, _, raw_query = request.raw_path.partition("?")
        _, bucket, raw_key = raw_path.split("/", 2)
        key = unquote(raw_key)
        canonical_uri = f"/{_enc(bucket, '')}/{_enc(key, '/')}"
        params = parse_qsl(raw_query, keep_blank_values=True)
        query = dict(params)
        host = request.headers.get("Host", "")
        if "X-Amz-Signature" in query:
            access, date, region, *_ = query["X-Amz-Credential"].split("/")
            amz_date = query["X-Amz-Date"]
            issued = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            if self.now > issued + timedelta(seconds=int(query["X-Amz-Expires"])):
                return web.Response(status=403, text="AccessDenied: Request has expired")
            signed_query = "&".join(
                f"{_enc(k, '')}={_enc(v, '')}" for k, v in sorted(params) if k != "X-Amz-Signature"
            )
            canonical = (
                f"GET\n{canonical_uri}\n{signed_query}\nhost:{host}\n\nhost\nUNSIGNED-PAYLOAD"
            )
            sig = query["X-Amz-Signature"]
        else:
            match = _AUTH.fullmatch(request.headers.get("Authorization", ""))
            if match is None:
                return web.Response(status=403, text="AccessDenied")
            access, date, region, sig = (
                match["access"],
                match["date"],
                match["region"],
                match["sig"],
            )
            amz_date = request.headers.get("x-amz-date", "")
            issued = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            if abs(self.now - issued) > timedelta(minutes=15):
                return web.Response(status=403, text="RequestTimeTooSkewed")
            names = match["signed"].split(";")
            lines = "".join(f"{n}:{request.headers.get(n, '').strip()}\n" for n in names)
            payload = request.headers.get("x-amz-content-sha256", "")
            canonical = f"GET\n{canonical_uri}\n\n{lines}\n{match['signed']}\n{payload}"
        if access != self.access or region != self.region or amz_date[:8] != date:
            return web.Response(status=403, text="InvalidAccessKeyId")
        if not self._verify(canonical, date, amz_date, sig):
            return web.Response(status=403, text="SignatureDoesNotMatch")
        body = self.objects.get((bucket, key))
        if body is None:
            return web.Response(status=404, text="NoSuchKey")
        return web.Response(body=body)


@pytest_asyncio.fixture
async def fake_s3() -> AsyncIterator[FakeS3]:
    async with FakeS3("minio-access", "minio/secret+key", "us-east-1", NOW) as fake:
        yield fake


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def config_for(fake: FakeS3, secret: str = "minio/secret+key") -> S3Config:
    return S3Config(fake.url, "meet-media-storage", "minio-access", Secret(secret))


KEYS = ["recordings/0f0e8d3c-9a8b-4c2d-8e1f-123456789abc.mp4", "odd/ké y+%20&=?#~.ogg"]


@pytest.mark.parametrize("key", KEYS)
async def test_signed_headers_fetch_the_object(
    fake_s3: FakeS3, session: aiohttp.ClientSession, key: str
) -> None:
    fake_s3.objects[("meet-media-storage", key)] = b"media"
    config = config_for(fake_s3)
    headers = sign_get_headers(config, key, NOW - timedelta(minutes=5))
    async with session.get(URL(object_url(config, key), encoded=True), headers=headers) as resp:
        assert (resp.status, await resp.read()) == (200, b"media")


@pytest.mark.parametrize("key", KEYS)
async def test_presigned_url_fetches_the_object(
    fake_s3: FakeS3, session: aiohttp.ClientSession, key: str
) -> None:
    fake_s3.objects[("meet-media-storage", key)] = b"audio"
    url = presigned_get_url(config_for(fake_s3), key, 86400, NOW - timedelta(hours=23))
    async with session.get(URL(url, encoded=True)) as resp:
        assert (resp.status, await resp.read()) == (200, b"audio")


async def test_verifier_rejects_wrong_secret_tampering_and_expiry(
    fake_s3: FakeS3, session: aiohttp.ClientSession
) -> None:
    key = KEYS[0]
    fake_s3.objects[("meet-media-storage", key)] = b"media"
    wrong = sign_get_headers(config_for(fake_s3, "other"), key, NOW)
    good = config_for(fake_s3)
    other_key = object_url(good, "recordings/other.mp4")
    cases: list[tuple[str, dict[str, str], str]] = [
        (object_url(good, key), wrong, "SignatureDoesNotMatch"),
        (other_key, sign_get_headers(good, key, NOW), "SignatureDoesNotMatch"),
        (object_url(good, key), sign_get_headers(good, key, NOW - timedelta(hours=1)), "Skewed"),
        (presigned_get_url(good, key, 60, NOW - timedelta(seconds=61)), {}, "expired"),
        (presigned_get_url(good, key, 60, NOW).replace("Expires=60", "Expires=99"), {}, "Signa"),
    ]
    for url, headers, reason in cases:
        async with session.get(URL(url, encoded=True), headers=headers) as resp:
            assert resp.status == 403, reason
            assert reason in await resp.text()


@pytest.mark.parametrize("key", KEYS)
async def test_the_production_client_signs_what_the_verifier_accepts(
    session: aiohttp.ClientSession, key: str
) -> None:
    """ObjectStorage.media_auth_headers and presigned_get_url against the own verifier."""
    async with FakeS3("minio-access", "minio/secret+key", "us-east-1", datetime.now(UTC)) as fake:
        fake.objects[("meet-media-storage", key)] = b"media"
        settings = S3Settings(
            endpoint_url=fake.url,
            bucket="meet-media-storage",
            access_key="minio-access",
            secret_key=Secret("minio/secret+key"),
        )
        async with ObjectStorage(settings) as storage:
            headers = storage.media_auth_headers(key)
            url = URL(storage.object_url(key), encoded=True)
            async with session.get(url, headers=headers) as resp:
                assert (resp.status, await resp.read()) == (200, b"media")
            presigned = await storage.presigned_get_url(key, 600)
            async with session.get(URL(presigned, encoded=True)) as resp:
                assert (resp.status, await resp.read()) == (200, b"media")
            wrong = ObjectStorage(
                S3Settings(
                    endpoint_url=fake.url,
                    bucket="meet-media-storage",
                    access_key="minio-access",
                    secret_key=Secret("another secret"),
                )
            )
            async with session.get(url, headers=wrong.media_auth_headers(key)) as resp:
                assert resp.status == 403
