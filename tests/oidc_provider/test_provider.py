"""The authorization code flow, walked over HTTP against a real provider instance."""

from __future__ import annotations

import aiohttp
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.oidc_provider import (
    DEFAULT_CLIENT_ID,
    OIDCProvider,
    redirect_uri_matches,
)
from tests.oidc_provider._flow import CALLBACK, Flow, decode, fetch_jwks
from tests.oidc_provider.plugin import oidc_provider_fixture  # noqa: F401
from tests.oidc_provider.tokens import at_hash

ALICE = {
    "sub": "alice",
    "email": "alice@example.com",
    "given_name": "Alice",
    "usual_name": "Liddell",
}
BOB = {"sub": "bob", "email": "bob@example.com", "given_name": "Bob", "usual_name": "Marley"}


@pytest.fixture
def flow(oidc_provider: OIDCProvider, http: aiohttp.ClientSession) -> Flow:
    return Flow(oidc_provider, http)


async def test_discovery_document(oidc_provider: OIDCProvider, http: aiohttp.ClientSession) -> None:
    async with http.get(oidc_provider.discovery_url) as resp:
        assert resp.status == 200
        doc = await resp.json()
    base = oidc_provider.url
    assert base.startswith("http://127.0.0.1:")
    assert doc["issuer"] == oidc_provider.issuer == base
    assert doc["authorization_endpoint"] == f"{base}/authorize"
    assert doc["token_endpoint"] == f"{base}/token"
    assert doc["userinfo_endpoint"] == f"{base}/userinfo"
    assert doc["jwks_uri"] == f"{base}/jwks"
    assert doc["end_session_endpoint"] == f"{base}/logout"
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert doc["response_types_supported"] == ["code"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert set(doc["token_endpoint_auth_methods_supported"]) == {
        "client_secret_post",
        "client_secret_basic",
    }


async def test_jwks_publishes_public_key_with_kid(
    oidc_provider: OIDCProvider, http: aiohttp.ClientSession
) -> None:
    async with http.get(oidc_provider.jwks_uri) as resp:
        jwks = await resp.json()
    [key] = jwks["keys"]
    assert key["kid"] == oidc_provider.signing_key.kid
    assert (key["kty"], key["alg"], key["use"]) == ("RSA", "RS256", "sig")
    assert "d" not in key and "p" not in key


@pytest.mark.parametrize("auth", ["post", "basic"])
async def test_code_flow_issues_verifiable_tokens(
    flow: Flow, oidc_provider: OIDCProvider, http: aiohttp.ClientSession, auth: str
) -> None:
    oidc_provider.next_user = ALICE
    authorized = await flow.authorize()
    assert authorized.status == 302
    assert authorized.redirect_target == CALLBACK
    assert authorized.params["state"] == flow.state
    assert authorized.params["iss"] == oidc_provider.issuer

    result = await flow.token(authorized.params["code"], auth=auth)
    assert result.status == 200, result.body
    assert result.headers["Cache-Control"] == "no-store"
    body = result.body
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == oidc_provider.access_token_ttl
    assert body["scope"] == "openid email profile"

    keys = await fetch_jwks(http, oidc_provider)
    id_claims = decode(
        body["id_token"], keys, issuer=oidc_provider.issuer, audience=DEFAULT_CLIENT_ID
    )
    assert id_claims["nonce"] == flow.nonce
    assert id_claims["at_hash"] == at_hash(body["access_token"])
    assert {k: id_claims[k] for k in ALICE} == ALICE

    access = decode(
        body["access_token"], keys, issuer=oidc_provider.issuer, audience=DEFAULT_CLIENT_ID
    )
    assert access["client_id"] == DEFAULT_CLIENT_ID
    assert access["scope"] == "openid email profile"
    assert access["exp"] - access["iat"] == oidc_provider.access_token_ttl
    assert {k: access[k] for k in ALICE} == ALICE
    assert jwt.decode(body["access_token"], keys).header["typ"] == "at+jwt"

    info = await flow.userinfo(body["access_token"])
    assert info.status == 200
    assert info.body == ALICE
    assert oidc_provider.logged_in_user == ALICE


async def test_access_token_audience_can_be_configured(http: aiohttp.ClientSession) -> None:
    async with OIDCProvider(access_token_audience="meet-api") as provider:
        provider.next_user = ALICE
        body = await Flow(provider, http).login()
        keys = await fetch_jwks(http, provider)
        claims = decode(body["access_token"], keys, issuer=provider.issuer, audience="meet-api")
    assert claims["client_id"] == DEFAULT_CLIENT_ID


async def test_pkce_mismatch_is_invalid_grant(flow: Flow, oidc_provider: OIDCProvider) -> None:
    oidc_provider.next_user = ALICE
    code = await flow.code()
    result = await flow.token(code, code_verifier="x" * 43)
    assert (result.status, result.body["error"]) == (400, "invalid_grant")


async def test_missing_code_verifier_is_rejected(flow: Flow, oidc_provider: OIDCProvider) -> None:
    oidc_provider.next_user = ALICE
    result = await flow.token(await flow.code(), code_verifier=None)
    assert (result.status, result.body["error"]) == (400, "invalid_request")


async def test_code_is_single_use_and_replay_revokes_tokens(
    flow: Flow, oidc_provider: OIDCProvider
) -> None:
    oidc_provider.next_user = ALICE
    code = await flow.code()
    first = await flow.token(code)
    assert first.status == 200
    replay = await flow.token(code)
    assert (replay.status, replay.body["error"]) == (400, "invalid_grant")
    info = await flow.userinfo(first.body["access_token"])
    assert info.status == 401
    assert 'error="invalid_token"' in info.headers["WWW-Authenticate"]


async def test_expired_code_is_invalid_grant(flow: Flow, oidc_provider: OIDCProvider) -> None:
    oidc_provider.next_user = ALICE
    oidc_provider.code_ttl = 0
    result = await flow.token(await flow.code())
    assert (result.status, result.body["error"]) == (400, "invalid_grant")


async def test_unknown_code_is_invalid_grant(flow: Flow) -> None:
    result = await flow.token("not-a-code")
    assert (result.status, result.body["error"]) == (400, "invalid_grant")


@pytest.mark.parametrize("auth", ["post", "basic"])
async def test_wrong_client_secret_is_invalid_client(
    flow: Flow, oidc_provider: OIDCProvider, auth: str
) -> None:
    oidc_provider.next_user = ALICE
    code = await flow.code()
    flow.client_secret = "wrong-" + flow.client_secret
    result = await flow.token(code, auth=auth)
    assert (result.status, result.body["error"]) == (401, "invalid_client")
    assert result.headers["WWW-Authenticate"].startswith("Basic ")


async def test_missing_client_authentication_is_invalid_client(
    flow: Flow, oidc_provider: OIDCProvider
) -> None:
    oidc_provider.next_user = ALICE
    result = await flow.token(await flow.code(), auth="none")
    assert (result.status, result.body["error"]) == (401, "invalid_client")


async def test_code_of_another_client_is_invalid_grant(
    flow: Flow, oidc_provider: OIDCProvider, http: aiohttp.ClientSession
) -> None:
    other_secret = "another-client-secret-that-is-long-enough-0123456789"
    oidc_provider.register_client("other", other_secret, [CALLBACK])
    oidc_provider.next_user = ALICE
    code = await flow.code()
    other = Flow(oidc_provider, http, client_id="other", client_secret=other_secret)
    other.verifier = flow.verifier
    result = await other.token(code)
    assert (result.status, result.body["error"]) == (400, "invalid_grant")


async def test_wrong_redirect_uri_is_refused_without_redirecting(flow: Flow) -> None:
    result = await flow.authorize(redirect_uri="http://127.0.0.1:8071/evil/")
    assert result.status == 400
    assert result.location is None
    assert "not registered" in result.body


async def test_unknown_client_is_refused_without_redirecting(flow: Flow) -> None:
    result = await flow.authorize(client_id="nobody")
    assert (result.status, result.location) == (400, None)


async def test_token_redirect_uri_must_match_authorization(
    flow: Flow, oidc_provider: OIDCProvider
) -> None:
    oidc_provider.next_user = ALICE
    code = await flow.code()
    result = await flow.token(code, redirect_uri="http://127.0.0.1:9999/api/v1.0/callback/")
    assert (result.status, result.body["error"]) == (400, "invalid_grant")


async def test_redirect_uris_can_be_added_after_start(
    flow: Flow, oidc_provider: OIDCProvider
) -> None:
    flow.redirect_uri = "http://127.0.0.1:43210/custom/callback"
    assert (await flow.authorize()).status == 400
    oidc_provider.add_redirect_uri("http://127.0.0.1:*/custom/callback")
    oidc_provider.next_user = ALICE
    assert (await flow.login())["token_type"] == "Bearer"


@pytest.mark.parametrize(
    ("pattern", "uri", "matches"),
    [
        ("http://127.0.0.1:*/api/v1.0/callback/", "http://127.0.0.1:8071/api/v1.0/callback/", True),
        ("http://127.0.0.1:*/api/v1.0/callback/", "http://127.0.0.1:1/api/v1.0/callback/x", False),
        (
            "http://127.0.0.1:*/api/v1.0/callback/",
            "http://127.0.0.1:1/evil/api/v1.0/callback/",
            False,
        ),
        ("http://127.0.0.1:*/api/v1.0/callback/", "http://evil.test/api/v1.0/callback/", False),
        ("http://127.0.0.1:8071/cb", "http://127.0.0.1:8071/cb", True),
        ("http://127.0.0.1:8071/cb", "http://127.0.0.1:8071/cb?x=1", False),
    ],
)
def test_redirect_uri_patterns(pattern: str, uri: str, matches: bool) -> None:
    assert redirect_uri_matches(pattern, uri) is matches


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": "too-short"}, "invalid_request"),
        ({"scope": "email profile"}, "invalid_scope"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": None}, "invalid_request"),
        ({"prompt": "none login"}, "invalid_request"),
    ],
)
async def test_invalid_authorization_requests_redirect_with_error(
    flow: Flow, oidc_provider: OIDCProvider, overrides: dict[str, str | None], error: str
) -> None:
    oidc_provider.next_user = ALICE
    result = await flow.authorize(**overrides)
    assert result.status == 302
    assert result.redirect_target == CALLBACK
    assert result.params["error"] == error
    assert result.params["state"] == flow.state
    assert "code" not in result.params


async def test_pkce_is_optional_for_clients_that_do_not_require_it(
    oidc_provider: OIDCProvider, http: aiohttp.ClientSession
) -> None:
    secret = "legacy-client-secret-long-enough-for-everyone-0123"
    oidc_provider.register_client("legacy", secret, [CALLBACK], require_pkce=False)
    oidc_provider.next_user = ALICE
    flow = Flow(oidc_provider, http, client_id="legacy", client_secret=secret)
    code = await flow.code(code_challenge=None, code_challenge_method=None)
    result = await flow.token(code, code_verifier=None)
    assert result.status == 200, result.body


async def test_repeated_parameter_is_refused(
    oidc_provider: OIDCProvider, http: aiohttp.ClientSession
) -> None:
    flow = Flow(oidc_provider, http)
    params = [*flow.authorize_params().items(), ("state", "again")]
    async with http.get(
        oidc_provider.authorization_endpoint, params=params, allow_redirects=False
    ) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"] == "invalid_request"


async def test_prompt_none_without_session_is_login_required(flow: Flow) -> None:
    result = await flow.authorize(prompt="none")
    assert result.params["error"] == "login_required"
    assert result.params["state"] == flow.state


async def test_prompt_none_uses_the_session_until_logout(
    flow: Flow, oidc_provider: OIDCProvider, http: aiohttp.ClientSession
) -> None:
    oidc_provider.next_user = ALICE
    await flow.login()
    again = Flow(oidc_provider, http)
    body = await again.login(prompt="none")
    info = await again.userinfo(body["access_token"])
    assert info.body["sub"] == "alice"

    async with http.get(oidc_provider.end_session_endpoint, allow_redirects=False) as resp:
        assert resp.status == 200
    assert oidc_provider.logged_in_user is None
    result = await Flow(oidc_provider, http).authorize(prompt="none")
    assert result.params["error"] == "login_required"


async def test_logged_in_user_can_be_preset(http: aiohttp.ClientSession) -> None:
    async with OIDCProvider(logged_in_user=BOB) as provider:
        body = await Flow(provider, http).login(prompt="none")
        assert (await Flow(provider, http).userinfo(body["access_token"])).body == BOB


async def test_queued_users_log_in_in_order(
    oidc_provider: OIDCProvider, http: aiohttp.ClientSession
) -> None:
    oidc_provider.queue_user(ALICE, BOB)
    subs = []
    for _ in range(2):
        flow = Flow(oidc_provider, http)
        body = await flow.login(prompt="login")
        subs.append((await flow.userinfo(body["access_token"])).body["sub"])
    assert subs == ["alice", "bob"]
    assert oidc_provider.next_user is None


async def test_user_can_deny(flow: Flow, oidc_provider: OIDCProvider) -> None:
    oidc_provider.logged_in_user = ALICE
    oidc_provider.deny_next()
    result = await flow.authorize()
    assert result.params["error"] == "access_denied"
    assert result.params["state"] == flow.state
    assert (await flow.authorize()).params.get("code")  # the denial was consumed


async def test_login_form_when_nobody_is_logged_in(
    flow: Flow, oidc_provider: OIDCProvider, http: aiohttp.ClientSession
) -> None:
    page = await flow.authorize()
    assert page.status == 200
    assert "<form" in page.body
    login_id = page.body.split('name="login_id" value="')[1].split('"')[0]
    form = {"login_id": login_id, "action": "login", "sub": "carol", "email": "carol@example.com"}
    async with http.post(
        oidc_provider.authorization_endpoint, data=form, allow_redirects=False
    ) as resp:
        assert resp.status == 302
    assert oidc_provider.logged_in_user == {"sub": "carol", "email": "carol@example.com"}

    denied = await Flow(oidc_provider, http).authorize(prompt="login")
    login_id = denied.body.split('name="login_id" value="')[1].split('"')[0]
    async with http.post(
        oidc_provider.authorization_endpoint,
        data={"login_id": login_id, "action": "deny"},
        allow_redirects=False,
    ) as resp:
        assert resp.status == 302
        assert "error=access_denied" in resp.headers["Location"]


async def test_userinfo_requires_a_valid_bearer_token(
    flow: Flow, http: aiohttp.ClientSession
) -> None:
    async with http.get(flow.provider.userinfo_endpoint) as resp:
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer ")
    garbage = await flow.userinfo("not.a.jwt")
    assert garbage.status == 401
    assert garbage.body["error"] == "invalid_token"


async def test_signed_userinfo(http: aiohttp.ClientSession) -> None:
    async with OIDCProvider(signed_userinfo=True) as provider:
        provider.next_user = ALICE
        flow = Flow(provider, http)
        info = await flow.userinfo((await flow.login())["access_token"])
        keys = await fetch_jwks(http, provider)
    assert info.headers["Content-Type"].startswith("application/jwt")
    claims = jwt.decode(info.body, keys, algorithms=["RS256"]).claims
    assert (claims["iss"], claims["aud"]) == (provider.issuer, DEFAULT_CLIENT_ID)
    assert {k: claims[k] for k in ALICE} == ALICE


async def test_key_rotation_keeps_old_tokens_valid(
    flow: Flow, oidc_provider: OIDCProvider, http: aiohttp.ClientSession
) -> None:
    old_token = oidc_provider.mint_access_token({"sub": "alice"})
    old_kid = oidc_provider.signing_key.kid
    new_key = oidc_provider.rotate_key()
    keys = await fetch_jwks(http, oidc_provider)
    assert [k.kid for k in keys] == [old_kid, new_key.kid]
    new_token = oidc_provider.mint_access_token({"sub": "alice"})
    assert jwt.decode(new_token, keys).header["kid"] == new_key.kid
    assert (await flow.userinfo(old_token)).status == 200

    oidc_provider.rotate_key(keep_old=False)
    assert (await flow.userinfo(old_token)).status == 401


async def test_logout_redirects_with_state(
    flow: Flow, oidc_provider: OIDCProvider, http: aiohttp.ClientSession
) -> None:
    oidc_provider.next_user = ALICE
    body = await flow.login()
    params = {
        "id_token_hint": body["id_token"],
        "post_logout_redirect_uri": "http://127.0.0.1:3000/",
        "state": "bye",
    }
    async with http.get(
        oidc_provider.end_session_endpoint, params=params, allow_redirects=False
    ) as resp:
        assert resp.status == 302
        assert resp.headers["Location"] == "http://127.0.0.1:3000/?state=bye"
    assert oidc_provider.logged_in_user is None


async def test_logout_rejects_foreign_id_token_hint(
    oidc_provider: OIDCProvider, http: aiohttp.ClientSession
) -> None:
    oidc_provider.logged_in_user = ALICE
    forged = oidc_provider.mint_id_token({"sub": "alice"}, key=oidc_provider.foreign_key)
    async with http.get(
        oidc_provider.end_session_endpoint, params={"id_token_hint": forged}
    ) as resp:
        assert resp.status == 400
    assert oidc_provider.logged_in_user == ALICE


async def test_requests_are_recorded(flow: Flow, oidc_provider: OIDCProvider) -> None:
    oidc_provider.next_user = ALICE
    await flow.login()
    [authorize] = oidc_provider.requests_to("/authorize")
    assert authorize.query["nonce"] == flow.nonce
    [token] = oidc_provider.requests_to("/token")
    assert token.method == "POST"
    assert token.form["client_id"] == DEFAULT_CLIENT_ID
    assert token.form["grant_type"] == "authorization_code"


async def test_keyset_import_roundtrip(oidc_provider: OIDCProvider) -> None:
    keys = KeySet.import_key_set(oidc_provider.jwks())
    assert [k.kid for k in keys] == [oidc_provider.signing_key.kid]


async def test_introspection_vouches_only_for_its_live_tokens(
    oidc_provider: OIDCProvider, http: aiohttp.ClientSession
) -> None:
    from tests.oidc_provider import DEFAULT_CLIENT_SECRET

    url = oidc_provider.introspection_endpoint
    token = oidc_provider.mint_access_token({"sub": "alice"}, scope="openid lasuite_meet")
    credentials = {"client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET}
    async with http.post(url, data={**credentials, "token": token}) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["active"] is True and body["iss"] == oidc_provider.issuer
    assert (body["sub"], body["aud"], body["scope"]) == (
        "alice",
        DEFAULT_CLIENT_ID,
        "openid lasuite_meet",
    )
    for bad in (
        oidc_provider.mint_access_token({"sub": "alice"}, expires_in=-60),
        oidc_provider.mint_forged_access_token({"sub": "alice"}),
        "opaque",
    ):
        async with http.post(url, data={**credentials, "token": bad}) as resp:
            assert await resp.json() == {"active": False}
    async with http.post(url, data={"client_id": DEFAULT_CLIENT_ID, "token": token}) as resp:
        assert resp.status == 401
    async with http.post(url, data={**credentials}) as resp:
        assert resp.status == 400
