"""Records kept by the stand-in for assertions: Twirp calls and data packets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import Message
from livekit.api.access_token import Claims


@dataclass
class CallRecord:
    """One Twirp request that reached a known route.

    ``request`` is the decoded message (``None`` if the body did not decode);
    ``claims`` the verified token claims (``None`` without a token or when the
    middleware rejected it). ``status`` is the HTTP status answered (``None`` when
    the connection was dropped), ``error_code`` the Twirp code of an error answer
    (``"unauthenticated_http"`` for a plain-text 401), ``fault`` the injected fault kind.
    """

    service: str
    method: str
    content_type: str
    headers: Mapping[str, str]
    request: Message | None = None
    claims: Claims | None = None
    raw_claims: Mapping[str, Any] = field(default_factory=dict)
    api_key: str | None = None
    status: int | None = None
    error_code: str | None = None
    fault: str | None = None

    @property
    def key(self) -> str:
        """``"<Service>/<Method>"``."""
        return f"{self.service}/{self.method}"

    def matches(self, method: str) -> bool:
        """True for ``"Service/Method"`` or a bare ``"Method"`` naming this call."""
        return method in (self.key, self.method)


@dataclass(frozen=True)
class DataPacketRecord:
    """A ``SendData`` payload as the room would forward it."""

    room: str
    data: bytes
    kind: int
    destination_identities: tuple[str, ...]
    destination_sids: tuple[str, ...]
    topic: str | None
    nonce: bytes
