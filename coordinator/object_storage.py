"""The object storage (S3 API) through aiobotocore: one long-lived client per application.

What the service needs of the bucket, and nothing else:

* presigned URLs: a ``PUT`` to a temporary key (the browser uploads a background image with
  it, ``x-amz-acl: private`` signed) and a ``GET`` (the summary service's
  ``cloud_storage_url``);
* ``copy`` (temporary → final key, or in place to fix the stored ``Content-Type``), ``head``,
  the first bytes of an object (``Range``), ``put`` and ``delete``;
* :meth:`ObjectStorage.media_auth_headers`: the SigV4 headers a reverse proxy adds to its
  ``GET`` of one object after ``…/media-auth/`` said yes (botocore's ``S3SigV4Auth``, as Meet).

Every call has botocore's connect and read timeouts set to ``S3Settings.timeout_seconds``
(``MEET_S3_TIMEOUT_SECONDS``), an overall deadline of twice that plus one second, and no
retry: a storage that hangs or refuses gives :class:`Unavailable` (503), one that answers
with an error :class:`UpstreamError` (502), a missing object :class:`ObjectMissing`. Nothing
is created at import; :meth:`start` / :meth:`close` are called by the application's cleanup
context (or a command).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlsplit

from coordinator.errors import Unavailable, UpstreamError
from coordinator.settings import S3Settings

if TYPE_CHECKING:  # imported when a client is first made: ~8 MiB a server without S3 saves
    from aiobotocore.config import AioConfig
    from aiobotocore.session import AioSession

__all__ = ["NOT_CONFIGURED", "ObjectHead", "ObjectMissing", "ObjectStorage"]

T = TypeVar("T")
_log = logging.getLogger(__name__)

NOT_CONFIGURED = "Object storage is not configured."
UNREACHABLE = "Object storage is unavailable."
FAILED = "Object storage failed."
_MISSING_CODES = {"NoSuchKey", "404", "NotFound"}
_DEFAULT_PORTS = {"http": 80, "https": 443}

_session: AioSession | None = None


def _shared_session() -> AioSession:
    """One botocore session for the process (it caches the loaded S3 service model)."""
    global _session
    if _session is None:
        from aiobotocore.session import AioSession

        _session = AioSession()
    return _session


class ObjectMissing(UpstreamError):
    """The key does not exist in the bucket."""

    status = 404
    default_message = "No object with this key."


@dataclass(frozen=True, slots=True)
class ObjectHead:
    size: int
    content_type: str
    metadata: dict[str, str] = field(default_factory=dict)


class ObjectStorage:
    """The bucket of ``S3Settings``; unconfigured, every call is :class:`Unavailable`."""

    def __init__(self, settings: S3Settings, *, presign_endpoint: str = "") -> None:
        self.settings = settings
        self._presign_endpoint = presign_endpoint or settings.endpoint_url
        self._stack = AsyncExitStack()
        self._client: Any = None
        self._presign_client: Any = None

    @property
    def configured(self) -> bool:
        return self.settings.configured

    @property
    def bucket(self) -> str:
        return self.settings.bucket

    def _config(self) -> AioConfig:
        from aiobotocore.config import AioConfig

        timeout = self.settings.timeout_seconds
        return AioConfig(
            signature_version="s3v4",
            s3={"addressing_style": self.settings.addressing_style},
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"total_max_attempts": 1},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )

    def _create(self, endpoint_url: str) -> Any:
        return _shared_session().create_client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=self.settings.region,
            aws_access_key_id=self.settings.access_key,
            aws_secret_access_key=self.settings.secret_key.get(),
            config=self._config(),
        )

    async def start(self) -> None:
        if not self.configured or self._client is not None:
            return
        self._client = await self._stack.enter_async_context(
            self._create(self.settings.endpoint_url)
        )
        if self._presign_endpoint != self.settings.endpoint_url:
            self._presign_client = await self._stack.enter_async_context(
                self._create(self._presign_endpoint)
            )
        else:
            self._presign_client = self._client

    async def close(self) -> None:
        self._client = self._presign_client = None
        await self._stack.aclose()

    async def __aenter__(self) -> ObjectStorage:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -------------------------------------------------------------- calls
    def _require(self) -> Any:
        if not self.configured:
            raise Unavailable(NOT_CONFIGURED)
        if self._client is None:
            raise Unavailable(UNREACHABLE)
        return self._client

    async def _call(self, call: Awaitable[T]) -> T:
        # botocore's timeouts apply per read; the overall deadline bounds a trickling answer.
        deadline = self.settings.timeout_seconds * 2 + 1
        # Here, not at import: a call means a client, so botocore is loaded already.
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
            ReadTimeoutError,
        )
        from botocore.exceptions import ConnectionError as BotoConnectionError

        try:
            async with asyncio.timeout(deadline):
                return await call
        except ClientError as exc:
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if str(error.get("Code")) in _MISSING_CODES or status == 404:
                raise ObjectMissing() from None
            _log.warning("object storage answered %s %s", status, error.get("Code"))
            raise UpstreamError(FAILED) from None
        except (
            TimeoutError,
            ConnectTimeoutError,
            ReadTimeoutError,
            EndpointConnectionError,
            BotoConnectionError,
        ):
            raise Unavailable(UNREACHABLE) from None
        except (BotoCoreError, OSError) as exc:
            _log.warning("object storage call failed: %s", type(exc).__name__, exc_info=True)
            raise UpstreamError(FAILED) from None

    async def presigned_put_url(self, key: str, expires_in: int) -> str:
        """A URL the browser PUTs the bytes to, with ``x-amz-acl: private`` (signed)."""
        self._require()
        client = self._presign_client
        url: str = await self._call(
            client.generate_presigned_url(
                ClientMethod="put_object",
                Params={"Bucket": self.bucket, "Key": key, "ACL": "private"},
                ExpiresIn=expires_in,
            )
        )
        return url

    async def presigned_get_url(self, key: str, expires_in: int) -> str:
        """A URL that GETs ``key`` without credentials for ``expires_in`` seconds."""
        client = self._require()
        url: str = await self._call(
            client.generate_presigned_url(
                ClientMethod="get_object",
                Params={"Bucket": self.bucket, "Key": key},
                ExpiresIn=expires_in,
            )
        )
        return url

    async def put(self, key: str, body: bytes, content_type: str) -> None:
        client = self._require()
        await self._call(
            client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)
        )

    async def copy(
        self,
        source: str,
        target: str,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        """Server-side copy; with ``content_type`` the metadata is replaced (kept as given)."""
        client = self._require()
        extra: dict[str, Any] = {}
        if content_type is not None:
            extra = {
                "ContentType": content_type,
                "Metadata": metadata or {},
                "MetadataDirective": "REPLACE",
            }
        await self._call(
            client.copy_object(
                Bucket=self.bucket,
                Key=target,
                CopySource={"Bucket": self.bucket, "Key": source},
                **extra,
            )
        )

    async def head(self, key: str) -> ObjectHead:
        client = self._require()
        answer = await self._call(client.head_object(Bucket=self.bucket, Key=key))
        return ObjectHead(
            size=int(answer.get("ContentLength", 0)),
            content_type=str(answer.get("ContentType", "")),
            metadata=dict(answer.get("Metadata", {})),
        )

    async def read_start(self, key: str, length: int) -> bytes:
        """The first ``length`` bytes of ``key`` (fewer when it is shorter)."""
        client = self._require()

        async def read() -> bytes:
            answer = await client.get_object(
                Bucket=self.bucket, Key=key, Range=f"bytes=0-{length - 1}"
            )
            async with answer["Body"] as body:
                data: bytes = await body.read()
            return data[:length]

        return await self._call(read())

    async def read(self, key: str) -> bytes:
        client = self._require()

        async def read() -> bytes:
            answer = await client.get_object(Bucket=self.bucket, Key=key)
            async with answer["Body"] as body:
                data: bytes = await body.read()
            return data

        return await self._call(read())

    async def delete(self, key: str) -> None:
        client = self._require()
        await self._call(client.delete_object(Bucket=self.bucket, Key=key))

    async def create_bucket(self) -> None:
        client = self._require()
        await self._call(client.create_bucket(Bucket=self.bucket))

    # -------------------------------------------------------------- media-auth
    def object_url(self, key: str) -> str:
        """The unsigned URL of ``key`` (path-style unless ``AWS_S3_ADDRESSING_STYLE=virtual``)."""
        parts = urlsplit(self.settings.endpoint_url)
        host = parts.netloc
        base = parts.path.rstrip("/")
        encoded = quote(key.encode("utf-8"), safe="/~")
        if self.settings.addressing_style == "virtual":
            return f"{parts.scheme}://{self.bucket}.{host}{base}/{encoded}"
        return f"{parts.scheme}://{host}{base}/{quote(self.bucket, safe='')}/{encoded}"

    def media_auth_headers(self, key: str) -> dict[str, str]:
        """``Authorization``, ``X-Amz-Date``, ``X-Amz-Content-SHA256`` and ``Host`` for a GET.

        The proxy forwards them unchanged to :meth:`object_url`; S3 accepts them for 15 minutes.
        """
        if not self.configured:
            raise Unavailable(NOT_CONFIGURED)
        url = self.object_url(key)
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        request = AWSRequest(method="GET", url=url)
        credentials = Credentials(self.settings.access_key, self.settings.secret_key.get())
        S3SigV4Auth(credentials, "s3", self.settings.region).add_auth(request)
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme):
            host = f"{host}:{parts.port}"
        return {
            "Authorization": str(request.headers["Authorization"]),
            "X-Amz-Date": str(request.headers["X-Amz-Date"]),
            "X-Amz-Content-SHA256": str(request.headers["X-Amz-Content-SHA256"]),
            "Host": host,
        }
