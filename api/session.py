"""Session cookies: signed and encrypted (Fernet), HttpOnly, SameSite=Lax."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

SESSION_COOKIE = "sessionid"
CSRF_COOKIE = "csrftoken"
CSRF_HEADER = "X-CSRFToken"
DECODED_CACHE_SIZE = 10_000


class SessionCodec:
    """Encrypts session dictionaries into cookie values and back; expired or forged → None."""

    def __init__(self, secret_key: str, *, max_age: int) -> None:
        digest = hashlib.sha256(b"meet-coordinator session\x00" + secret_key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))
        self.max_age = max_age
        # Cookie values already decrypted and verified (0.1 ms each), until they expire;
        # only valid ones are kept, so forged values cannot fill it.
        self._decoded: dict[str, tuple[dict[str, Any], float]] = {}

    def encode(self, data: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(data, separators=(",", ":")).encode()).decode()

    def decode(self, value: str | None) -> dict[str, Any] | None:
        if not value:
            return None
        now = time.time()
        known = self._decoded.get(value)
        if known is not None:
            if now < known[1]:
                return dict(known[0])
            del self._decoded[value]
        try:
            raw = self._fernet.decrypt(value.encode(), ttl=self.max_age)
            data = json.loads(raw)
            issued = self._fernet.extract_timestamp(value.encode())
        except (InvalidToken, ValueError, UnicodeError):
            return None
        if not isinstance(data, dict):
            return None
        expires = data.get("exp")
        if isinstance(expires, int | float) and expires < now:
            return None
        until: float = issued + self.max_age
        if isinstance(expires, int | float):
            until = min(until, expires)
        if len(self._decoded) >= DECODED_CACHE_SIZE:
            self._decoded.clear()
        self._decoded[value] = (dict(data), until)
        return data
