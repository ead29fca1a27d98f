"""What the stand-in received."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from multidict import CIMultiDictProxy

ApiVersion = Literal["v1", "v2"]


@dataclass
class ReceivedCall:
    """One request to a task endpoint, recorded before any reply is chosen.

    ``json`` is the decoded body (``None`` when it is not JSON: see ``json_valid``);
    ``status`` is the answered status (``None`` when the connection was dropped) and
    ``response`` the answered JSON body.
    """

    api: ApiVersion
    method: str
    path: str
    headers: CIMultiDictProxy[str]
    body: bytes
    json: Any
    json_valid: bool
    authorized: bool
    status: int | None = None
    response: Any = None
    reply: str = "default"

    @property
    def idempotency_key(self) -> str | None:
        """The ``Idempotency-Key`` header, if sent."""
        return self.headers.get("Idempotency-Key")

    @property
    def job_id(self) -> str | None:
        """The ``job_id`` answered, if any."""
        if isinstance(self.response, dict):
            value = self.response.get("job_id")
            return value if isinstance(value, str) else None
        return None
