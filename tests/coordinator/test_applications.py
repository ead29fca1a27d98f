"""The application rules without a database: secret hashes (Django's format), domains,
e-mails, delegation, scopes (reference §1.1; Meet's test_models_applications)."""

from __future__ import annotations

import base64
import hashlib
import uuid

import pytest

from coordinator.applications import (
    can_delegate_email,
    hash_secret,
    is_hashed,
    is_valid_email,
    normalize_domain,
    normalize_scopes,
    random_string,
    scopes_of,
    verify_secret,
)
from storage.applications import ApplicationRecord


def application(*domains: str) -> ApplicationRecord:
    return ApplicationRecord(uuid.uuid4(), "Calendar", True, "id", "hash", (), domains)


def test_secret_hashes_are_djangos_pbkdf2_and_never_hashed_twice() -> None:
    encoded = hash_secret("s3cret", iterations=1000, salt="salt")
    assert encoded.startswith("pbkdf2_sha256$1000$salt$")
    assert verify_secret("s3cret", encoded) and not verify_secret("s3creT", encoded)
    assert is_hashed(encoded) and not is_hashed("s3cret")
    # Django's layout: algorithm$iterations$salt$base64(PBKDF2-HMAC-SHA256), so the rows of a
    # Meet database keep working.
    digest = hashlib.pbkdf2_hmac("sha256", b"x", b"salt", 1000)
    assert verify_secret("x", "pbkdf2_sha256$1000$salt$" + base64.b64encode(digest).decode())
    for broken in ("", "md5$1$s$h", "pbkdf2_sha256$x$s$h", "pbkdf2_sha256$1000$salt$!!", "$$$"):
        assert not verify_secret("x", broken) and not is_hashed(broken)
    assert hash_secret("same", iterations=1000) != hash_secret("same", iterations=1000)
    assert len(random_string(128)) == 128 and random_string(40).isalnum()
    assert len({random_string(40) for _ in range(50)}) == 50


@pytest.mark.parametrize(
    "domain",
    ["example.com", "sub.example.com", "deep.sub.example.com", "example-with-dash.com",
     "123.example.com", "  EXAMPLE.COM  ", "xn--bcher-kva.example"],
)  # fmt: skip
def test_valid_domains_are_normalized(domain: str) -> None:
    assert normalize_domain(domain) == domain.strip().lower()


@pytest.mark.parametrize(
    "domain",
    ["not a domain", "example..com", "-example.com", "example-.com", "example.com-", "",
     "localhost", "a" * 64 + ".com", "exa\x00mple.com", "example.c"],
)  # fmt: skip
def test_invalid_domains_are_refused(domain: str) -> None:
    with pytest.raises(ValueError):
        normalize_domain(domain)


def test_delegation_follows_the_domains() -> None:
    assert can_delegate_email(application(), "anyone@anywhere.org")
    restricted = application("example.com", "other.org")
    for email in ("user@example.com", "user@EXAMPLE.COM", "admin@Other.Org"):
        assert can_delegate_email(restricted, email)
    for email in ("test@denied.com", "user@sub.example.com", "user@example.com.evil.org"):
        assert not can_delegate_email(restricted, email)


def test_emails_and_scopes() -> None:
    for good in ("user@example.com", "first.last+tag@sub.example.org", "o'neil@example.fr"):
        assert is_valid_email(good)
    for bad in ("", "user", "user@", "@example.com", "user@example", "us er@example.com",
                "user@exa mple.com", "a..b@example.com", "x" * 65 + "@example.com"):  # fmt: skip
        assert not is_valid_email(bad), bad
    assert normalize_scopes(["Rooms:List", "rooms:list", "rooms:create"]) == [
        "rooms:list",
        "rooms:create",
    ]
    with pytest.raises(ValueError):
        normalize_scopes(["rooms:everything"])
    assert scopes_of({"scope": "A b  A"}, None) == ["a", "b"]
    assert scopes_of({"scope": ["X", 3]}, None) == ["x"]
    assert scopes_of({"scope": 7}, None) == []
    assert scopes_of({"scope": "lasuite_meet lasuite_meet:rooms:list"}, "lasuite_meet") == [
        "lasuite_meet",
        "rooms:list",
    ]
