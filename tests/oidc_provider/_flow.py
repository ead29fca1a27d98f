"""Test helpers: walk the authorization code flow like a relying party would."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import aiohttp
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.jwk import KeySet

from .models import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from .server import OIDCProvider

CALLBACK = "http://127.0.0.1:8071/api/v1.0/callback/"


@dataclass
class AuthorizeResult:
    status: int
    location: str | None
    params: dict[str, str]
    body: str

    @property
    def redirect_target(self) -> str:
        assert self.location is not None
        parts = urlsplit(self.location)
        return f"{parts.scheme}://{parts.netloc}{parts.path}"


@dataclass
class Reply:
    status: int
    body: Any  # parsed JSON, or text for other content types
    headers: dict[str, str]


async def reply(resp: aiohttp.ClientResponse) -> Reply:
    body = await resp.json() if resp.content_type == "application/json" else await resp.text()
    return Reply(resp.status, body, dict(resp.headers))


def _token() -> str:
    return str(generate_token(48))


@dataclass
class Flow:
    """One relying-party login attempt against *provider* (fresh state, nonce, verifier)."""

    provider: OIDCProvider
    http: aiohttp.ClientSession
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    redirect_uri: str = CALLBACK
    verifier: str = field(default_factory=_token)
    state: str = field(default_factory=_token)
    nonce: str = field(default_factory=_token)

    def authorize_params(self, **overrides: str | None) -> dict[str, str]:
        params: dict[str, str] = {
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "response_type": "code",
            "scope": "openid email profile",
            "state": self.state,
            "nonce": self.nonce,
            "code_challenge": str(create_s256_code_challenge(self.verifier)),
            "code_challenge_method": "S256",
        }
        for key, value in overrides.items():
            if value is None:
                params.pop(key, None)
            else:
                params[key] = value
        return params

    async def authorize(self, **overrides: str | None) -> AuthorizeResult:
        async with self.http.get(
            self.provider.authorization_endpoint,
            params=self.authorize_params(**overrides),
            allow_redirects=False,
        ) as resp:
            location = resp.headers.get("Location")
            params = dict(parse_qsl(urlsplit(location).query)) if location else {}
            return AuthorizeResult(resp.status, location, params, await resp.text())

    async def code(self, **overrides: str | None) -> str:
        result = await self.authorize(**overrides)
        assert result.status == 302, result.body
        assert result.params["state"] == self.state
        return result.params["code"]

    async def token(self, code: str, *, auth: str = "post", **overrides: str | None) -> Reply:
        form: dict[str, str] = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": self.verifier,
        }
        headers: dict[str, str] = {}
        if auth == "post":
            form |= {"client_id": self.client_id, "client_secret": self.client_secret}
        elif auth == "basic":
            raw = f"{quote(self.client_id, safe='')}:{quote(self.client_secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(raw.encode()).decode()
        for key, value in overrides.items():
            if value is None:
                form.pop(key, None)
            else:
                form[key] = value
        async with self.http.post(self.provider.token_endpoint, data=form, headers=headers) as resp:
            return await reply(resp)

    async def login(self, **overrides: str | None) -> dict[str, Any]:
        """authorize + token exchange; returns the token response body."""
        result = await self.token(await self.code(**overrides))
        assert result.status == 200, result.body
        body: dict[str, Any] = result.body
        return body

    async def userinfo(self, access_token: str) -> Reply:
        async with self.http.get(
            self.provider.userinfo_endpoint,
            headers={"Authorization": f"Bearer {access_token}"},
        ) as resp:
            return await reply(resp)


async def fetch_jwks(http: aiohttp.ClientSession, provider: OIDCProvider) -> KeySet:
    async with http.get(provider.discovery_url) as resp:
        jwks_uri = (await resp.json())["jwks_uri"]
    async with http.get(jwks_uri) as resp:
        return KeySet.import_key_set(await resp.json())


def decode(token: str, keys: KeySet, *, issuer: str, audience: str) -> dict[str, Any]:
    """Verify signature (RS256), iss, aud and exp like a relying party."""
    decoded = jwt.decode(token, keys, algorithms=["RS256"])
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": audience},
        exp={"essential": True},
        iat={"essential": True},
        sub={"essential": True},
    ).validate(decoded.claims)
    return decoded.claims
