"""Slugs and ids: the only place that turns room names into URL segments."""

from __future__ import annotations

import re
import unicodedata
import uuid

_NON_WORD = re.compile(r"[^\w\s-]")
_SEPARATORS = re.compile(r"[-\s]+")


def slugify(value: str) -> str:
    """ASCII-fold, lowercase, drop non-alphanumerics, spaces to ``-`` (Django's rules)."""
    folded = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")
    folded = _NON_WORD.sub("", folded.lower())
    return _SEPARATORS.sub("-", folded).strip("-_")


def parse_uuid(value: str) -> uuid.UUID | None:
    """``value`` as a UUID when it is one (any of the forms Python accepts), else None."""
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return None
