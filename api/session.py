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


class SessionCodec:
    """Encrypts session dictionaries into cookie values and back; expired or forged → None."""

    def __init__(self, secret_key: str, *, max_age: int) -> None:
        digest = hashlib.sha256(b"meet-coordinator session\x00" + secret_key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))
        self.max_age = max_age

    def encode(self, data: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(data, separators=(",", ":")).encode()).decode()

    def decode(self, value: str | None) -> dict[str, Any] | None:
        if not value:
            return None
        try:
            raw = self._fernet.decrypt(value.encode(), ttl=self.max_age)
            data = json.loads(raw)
        except (InvalidToken, ValueError, UnicodeError):
            return None
        if not isinstance(data, dict):
            return None
        expires = data.get("exp")
        if isinstance(expires, int | float) and expires < time.time():
            return None
        return data
