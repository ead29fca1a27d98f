"""Minting helpers: bearer tokens for API tests, verified like a resource server would."""

from __future__ import annotations

import aiohttp
import jwt as pyjwt
import pytest
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidKeyIdError,
    JoseError,
)

from tests.oidc_provider import DEFAULT_CLIENT_ID, OIDCProvider, generate_rsa_key
from tests.oidc_provider._flow import Flow, decode, fetch_jwks
from tests.oidc_provider.plugin import oidc_provider_fixture  # noqa: F401

USER = {"sub": "u-42", "email": "u42@example.com", "given_name": "Ada", "usual_name": "Lovelace"}


async def test_minted_access_token_verifies_against_jwks(
    oidc_provider: OIDCProvider, http: aiohttp.ClientSession
) -> None:
    token = oidc_provider.mint_access_token(USER)
    keys = await fetch_jwks(http, oidc_provider)
    claims = decode(token, keys, issuer=oidc_provider.issuer, audience=DEFAULT_CLIENT_ID)
    assert {k: claims[k] for k in USER} == USER
    assert claims["client_id"] == DEFAULT_CLIENT_ID
    assert claims["scope"] == "openid email profile"
    assert claims["exp"] - claims["iat"] == oidc_provider.access_token_ttl
    info = await Flow(oidc_provider, http).userinfo(token)
    assert (info.status, info.body) == (200, USER)


async def test_minted_access_token_verifies_with_pyjwt(
    oidc_provider: OIDCProvider, http: aiohttp.ClientSession
) -> None:
    async with http.get(oidc_provider.jwks_uri) as resp:
        jwk_set = pyjwt.PyJWKSet.from_dict(await resp.json())
    token = oidc_provider.mint_access_token(USER, audience="meet-api")
    kid = pyjwt.get_unverified_header(token)["kid"]
    key = next(k for k in jwk_set.keys if k.key_id == kid)
    claims = pyjwt.decode(
        token, key, algorithms=["RS256"], audience="meet-api", issuer=oidc_provider.issuer
    )
    assert claims["sub"] == "u-42"
    with pytest.raises(pyjwt.InvalidAudienceError):
        pyjwt.decode(token, key, algorithms=["RS256"], audience=DEFAULT_CLIENT_ID)


async def test_claims_override_defaults(oidc_provider: OIDCProvider) -> None:
    token = oidc_provider.mint_access_token(
        {**USER, "scope": "openid", "extra": [1, 2]}, audience=["a", "b"], client_id="cli"
    )
    claims = jwt.decode(token, oidc_provider.signing_key).claims
    assert (claims["scope"], claims["extra"], claims["aud"]) == ("openid", [1, 2], ["a", "b"])
    assert claims["client_id"] == "cli"


async def test_expired_access_token(
    oidc_provider: OIDCProvider, http: aiohttp.ClientSession
) -> None:
    token = oidc_provider.mint_access_token(USER, expires_in=-60)
    keys = await fetch_jwks(http, oidc_provider)
    with pytest.raises(ExpiredTokenError):
        decode(token, keys, issuer=oidc_provider.issuer, audience=DEFAULT_CLIENT_ID)
    assert (await Flow(oidc_provider, http).userinfo(token)).status == 401


async def test_wrong_issuer_and_audience(
    oidc_provider: OIDCProvider, http: aiohttp.ClientSession
) -> None:
    keys = await fetch_jwks(http, oidc_provider)
    other_issuer = oidc_provider.mint_access_token(USER, issuer="https://evil.example")
    with pytest.raises(InvalidClaimError):
        decode(other_issuer, keys, issuer=oidc_provider.issuer, audience=DEFAULT_CLIENT_ID)
    assert (await Flow(oidc_provider, http).userinfo(other_issuer)).status == 401
    other_audience = oidc_provider.mint_access_token(USER, audience="someone-else")
    with pytest.raises(InvalidClaimError):
        decode(other_audience, keys, issuer=oidc_provider.issuer, audience=DEFAULT_CLIENT_ID)


async def test_foreign_key_token_has_unknown_kid(
    oidc_provider: OIDCProvider, http: aiohttp.ClientSession
) -> None:
    token = oidc_provider.mint_access_token(USER, key=oidc_provider.foreign_key)
    keys = await fetch_jwks(http, oidc_provider)
    assert jwt.decode(token, oidc_provider.foreign_key).header["kid"] not in {k.kid for k in keys}
    with pytest.raises(InvalidKeyIdError):
        decode(token, keys, issuer=oidc_provider.issuer, audience=DEFAULT_CLIENT_ID)
    assert (await Flow(oidc_provider, http).userinfo(token)).status == 401


async def test_forged_token_claims_our_kid_but_fails_signature(
    oidc_provider: OIDCProvider, http: aiohttp.ClientSession
) -> None:
    token = oidc_provider.mint_forged_access_token(USER)
    keys = await fetch_jwks(http, oidc_provider)
    header = pyjwt.get_unverified_header(token)
    assert header["kid"] == oidc_provider.signing_key.kid
    with pytest.raises(BadSignatureError):
        decode(token, keys, issuer=oidc_provider.issuer, audience=DEFAULT_CLIENT_ID)
    info = await Flow(oidc_provider, http).userinfo(token)
    assert info.status == 401


async def test_any_key_and_kid_can_be_used(oidc_provider: OIDCProvider) -> None:
    key = generate_rsa_key(kid="my-kid")
    token = oidc_provider.mint_access_token(USER, key=key, kid="other-kid")
    decoded = jwt.decode(token, key)
    assert decoded.header == {"alg": "RS256", "typ": "at+jwt", "kid": "other-kid"}


async def test_code_flow_id_token_passes_authlib_validation(
    oidc_provider: OIDCProvider, http: aiohttp.ClientSession
) -> None:
    oidc_provider.next_user = USER
    flow = Flow(oidc_provider, http)
    body = await flow.login()
    keys = await fetch_jwks(http, oidc_provider)
    decoded = jwt.decode(body["id_token"], keys, algorithms=["RS256"])
    claims = CodeIDToken(
        decoded.claims,
        decoded.header,
        {"iss": {"values": [oidc_provider.issuer]}},
        {"nonce": flow.nonce, "client_id": DEFAULT_CLIENT_ID, "access_token": body["access_token"]},
    )
    claims.validate(leeway=120)
    assert claims["email"] == USER["email"]
    tampered = CodeIDToken(
        decoded.claims,
        decoded.header,
        None,
        {"nonce": "other", "client_id": DEFAULT_CLIENT_ID, "access_token": body["access_token"]},
    )
    with pytest.raises(JoseError):
        tampered.validate()


async def test_minted_id_token(oidc_provider: OIDCProvider, http: aiohttp.ClientSession) -> None:
    token = oidc_provider.mint_id_token(USER, nonce="n-1", expires_in=30)
    keys = await fetch_jwks(http, oidc_provider)
    claims = decode(token, keys, issuer=oidc_provider.issuer, audience=DEFAULT_CLIENT_ID)
    assert claims["nonce"] == "n-1"
    assert claims["exp"] - claims["iat"] == 30


def test_default_audience_and_client_id() -> None:
    provider = OIDCProvider(key=generate_rsa_key(kid="k"), access_token_audience="meet-api")
    access = jwt.decode(provider.mint_access_token(USER, issuer="i"), provider.signing_key)
    assert (access.claims["aud"], access.claims["client_id"]) == ("meet-api", DEFAULT_CLIENT_ID)
    id_token = jwt.decode(provider.mint_id_token(USER, issuer="i"), provider.signing_key)
    assert id_token.claims["aud"] == DEFAULT_CLIENT_ID


def test_minting_needs_a_running_provider_unless_issuer_given() -> None:
    provider = OIDCProvider(key=generate_rsa_key(kid="k"))
    with pytest.raises(RuntimeError):
        provider.mint_access_token(USER)
    token = provider.mint_access_token(USER, issuer="http://127.0.0.1:1")
    assert jwt.decode(token, provider.signing_key).claims["iss"] == "http://127.0.0.1:1"


def test_provider_refuses_non_loopback_hosts() -> None:
    with pytest.raises(ValueError, match="loopback"):
        OIDCProvider(host="0.0.0.0")


def test_users_need_a_sub() -> None:
    provider = OIDCProvider(clients={}, key=generate_rsa_key(kid="k"))
    with pytest.raises(ValueError, match="sub"):
        provider.next_user = {"email": "nobody@example.com"}
