"""HTTP endpoints of the OIDC provider stand-in (state lives in ``OIDCProvider``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from aiohttp import web
from joserfc.errors import JoseError
from yarl import URL

from . import pages, tokens
from .models import (
    DEFAULT_USER,
    AuthorizationCode,
    AuthorizationRequest,
    Client,
    Denial,
    OAuthError,
    UserClaims,
)

if TYPE_CHECKING:
    from .server import OIDCProvider

PKCE_PATTERN = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
REALM = "oidc-test-provider"


def add_routes(app: web.Application, provider: OIDCProvider) -> None:
    endpoints = Endpoints(provider)
    app.router.add_get("/.well-known/openid-configuration", endpoints.discovery)
    app.router.add_get("/authorize", endpoints.authorize)
    app.router.add_post("/authorize", endpoints.login_form_submitted)
    app.router.add_post("/token", endpoints.token)
    app.router.add_get("/userinfo", endpoints.userinfo)
    app.router.add_post("/userinfo", endpoints.userinfo)
    app.router.add_get("/jwks", endpoints.jwks)
    app.router.add_post("/introspect", endpoints.introspect)
    app.router.add_get("/logout", endpoints.logout)
    app.router.add_post("/logout", endpoints.logout)


# -- helpers ---------------------------------------------------------------------------


def single_params(items: Iterable[tuple[str, object]]) -> dict[str, str]:
    """Request parameters as a dict; empty values count as absent (RFC 6749 3.1) and a
    repeated parameter is an ``invalid_request``."""
    params: dict[str, str] = {}
    seen: set[str] = set()
    for key, value in items:
        if key in seen:
            raise OAuthError("invalid_request", f"parameter {key!r} is repeated")
        seen.add(key)
        if isinstance(value, str) and value:
            params[key] = value
    return params


def error_json(exc: OAuthError, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(
        exc.as_dict(), status=exc.status, headers={**NO_STORE, **(headers or {})}
    )


def redirect_with(uri: str, params: dict[str, str | None]) -> web.Response:
    location = URL(uri).extend_query({k: v for k, v in params.items() if v is not None})
    return web.Response(status=302, headers={"Location": str(location), **NO_STORE})


def html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", headers=NO_STORE)


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def parse_authorization_request(
    client: Client, redirect_uri: str, params: dict[str, str]
) -> AuthorizationRequest:
    """Validate what comes after client_id/redirect_uri; errors are sent to the client."""
    if "request" in params:
        raise OAuthError("request_not_supported", "request objects are not supported")
    if "request_uri" in params:
        raise OAuthError("request_uri_not_supported", "request_uri is not supported")
    response_type = params.get("response_type")
    if response_type is None:
        raise OAuthError("invalid_request", "response_type is missing")
    if response_type != "code":
        raise OAuthError("unsupported_response_type", "only response_type=code is supported")
    if params.get("response_mode", "query") != "query":
        raise OAuthError("invalid_request", "only response_mode=query is supported")
    scope = params.get("scope", "")
    if "openid" not in scope.split():
        raise OAuthError("invalid_scope", "scope must include openid")
    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method")
    if challenge is None:
        if method is not None:
            raise OAuthError("invalid_request", "code_challenge_method without code_challenge")
        if client.require_pkce:
            raise OAuthError("invalid_request", "code_challenge (PKCE, S256) is required")
    else:
        if method != "S256":
            raise OAuthError("invalid_request", "transform algorithm not supported, use S256")
        if not PKCE_PATTERN.fullmatch(challenge):
            raise OAuthError("invalid_request", "malformed code_challenge")
    return AuthorizationRequest(
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        scope=scope,
        state=params.get("state"),
        nonce=params.get("nonce"),
        code_challenge=challenge,
        code_challenge_method=method,
    )


def check_pkce(request: AuthorizationRequest, verifier: str | None) -> None:
    if request.code_challenge is None:
        if verifier is not None:
            raise OAuthError("invalid_request", "code_verifier sent but no code_challenge was")
        return
    if verifier is None:
        raise OAuthError("invalid_request", "code_verifier is missing")
    if not PKCE_PATTERN.fullmatch(verifier):
        raise OAuthError("invalid_request", "malformed code_verifier")
    if not hmac.compare_digest(s256(verifier), request.code_challenge):
        raise OAuthError("invalid_grant", "PKCE verification failed")


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """``(client_id, secret)`` from an ``Authorization: Basic`` header, if any."""
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except ValueError:
        decoded = ""
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise OAuthError("invalid_client", "malformed Basic credentials", 401)
    return client_id, secret


def secret_matches(client: Client, secret: str, *, form_encoded: bool) -> bool:
    candidates = {secret, unquote_plus(secret)} if form_encoded else {secret}
    expected = client.client_secret.encode()
    return any(hmac.compare_digest(expected, c.encode()) for c in candidates)


def bearer_error(error: str | None, description: str) -> web.Response:
    challenge = f'Bearer realm="{REALM}"'
    if error is not None:
        challenge += f', error="{error}", error_description="{description}"'
    body = {"error": error or "invalid_request", "error_description": description}
    return web.json_response(body, status=401, headers={"WWW-Authenticate": challenge, **NO_STORE})


# -- endpoints -------------------------------------------------------------------------


class Endpoints:
    def __init__(self, provider: OIDCProvider) -> None:
        self.provider = provider

    async def discovery(self, request: web.Request) -> web.Response:
        p = self.provider
        return web.json_response(
            {
                "issuer": p.issuer,
                "authorization_endpoint": p.authorization_endpoint,
                "token_endpoint": p.token_endpoint,
                "userinfo_endpoint": p.userinfo_endpoint,
                "jwks_uri": p.jwks_uri,
                "end_session_endpoint": p.end_session_endpoint,
                "introspection_endpoint": p.introspection_endpoint,
                "scopes_supported": ["openid", "email", "profile"],
                "response_types_supported": ["code"],
                "response_modes_supported": ["query"],
                "grant_types_supported": ["authorization_code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": [tokens.ALGORITHM],
                "userinfo_signing_alg_values_supported": [tokens.ALGORITHM],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "client_secret_basic",
                ],
                "code_challenge_methods_supported": ["S256"],
                "prompt_values_supported": ["none", "login"],
                "claims_supported": ["sub", "email", "given_name", "usual_name"],
                "authorization_response_iss_parameter_supported": True,
                "request_parameter_supported": False,
                "request_uri_parameter_supported": False,
            }
        )

    async def jwks(self, request: web.Request) -> web.Response:
        return web.json_response(self.provider.jwks())

    # -- /authorize --------------------------------------------------------------------

    async def authorize(self, request: web.Request) -> web.Response:
        try:
            params = single_params(request.query.items())
        except OAuthError as exc:
            return error_json(exc)
        client = self.provider.clients.get(params.get("client_id", ""))
        if client is None:
            return error_json(OAuthError("invalid_client", "unknown or missing client_id"))
        redirect_uri = params.get("redirect_uri")
        if redirect_uri is None or not client.allows_redirect_uri(redirect_uri):
            description = (
                f"redirect_uri {redirect_uri!r} is not registered for {client.client_id!r}"
            )
            return error_json(OAuthError("invalid_request", description))
        try:
            auth = parse_authorization_request(client, redirect_uri, params)
            user = self.choose_user(params.get("prompt", ""))
        except OAuthError as exc:
            return self.error_redirect(redirect_uri, exc, params.get("state"))
        if user is None:
            return self.login_page(auth)
        return self.finish_login(auth, user)

    def choose_user(self, prompt: str) -> UserClaims | None:
        """The user who is (or gets) logged in; ``None`` means "show the login form"."""
        prompts = set(prompt.split())
        if "none" in prompts and len(prompts) > 1:
            raise OAuthError("invalid_request", "prompt=none cannot be combined")
        outcome = self.provider.pop_login()
        if outcome is None and "login" not in prompts:
            outcome = self.provider.logged_in_user
        if isinstance(outcome, Denial):
            raise OAuthError("access_denied", "the user refused the authorization")
        if outcome is None and "none" in prompts:
            raise OAuthError("login_required", "no user is logged in")
        return outcome

    def finish_login(self, auth: AuthorizationRequest, user: UserClaims) -> web.Response:
        code = self.provider.issue_code(auth, user)
        return redirect_with(
            auth.redirect_uri, {"code": code, "state": auth.state, "iss": self.provider.issuer}
        )

    def error_redirect(self, redirect_uri: str, exc: OAuthError, state: str | None) -> web.Response:
        return redirect_with(
            redirect_uri,
            {
                "error": exc.error,
                "error_description": exc.description or None,
                "state": state,
                "iss": self.provider.issuer,
            },
        )

    def login_page(self, auth: AuthorizationRequest) -> web.Response:
        login_id = self.provider.remember_login(auth)
        page = pages.login_form(
            action="/authorize", login_id=login_id, client_id=auth.client_id, prefill=DEFAULT_USER
        )
        return html(page)

    async def login_form_submitted(self, request: web.Request) -> web.Response:
        form = await request.post()
        login_id = form.get("login_id")
        auth = self.provider.take_login(login_id) if isinstance(login_id, str) else None
        if auth is None:
            return error_json(OAuthError("invalid_request", "unknown or already used login form"))
        if form.get("action") == "deny":
            denied = OAuthError("access_denied", "the user refused the authorization")
            return self.error_redirect(auth.redirect_uri, denied, auth.state)
        user: UserClaims = {}
        for name in pages.LOGIN_FIELDS:
            value = form.get(name)
            if isinstance(value, str) and value.strip():
                user[name] = value.strip()
        if "sub" not in user:
            return self.login_page(auth)
        return self.finish_login(auth, user)

    # -- /token ------------------------------------------------------------------------

    async def token(self, request: web.Request) -> web.Response:
        try:
            if request.content_type != "application/x-www-form-urlencoded":
                raise OAuthError("invalid_request", "expected application/x-www-form-urlencoded")
            form = single_params((await request.post()).items())
            client = self.authenticate_client(request, form)
            code = self.redeem_code(client, form)
            body = self.provider.issue_tokens(code)
        except OAuthError as exc:
            headers = {"WWW-Authenticate": f'Basic realm="{REALM}"'} if exc.status == 401 else {}
            return error_json(exc, headers)
        return web.json_response(body, headers=NO_STORE)

    def authenticate_client(self, request: web.Request, form: dict[str, str]) -> Client:
        """client_secret_basic or client_secret_post, exactly one of them."""
        basic = basic_credentials(request.headers.get("Authorization"))
        secret: str | None
        if basic is not None:
            if "client_secret" in form:
                raise OAuthError("invalid_request", "more than one client authentication method")
            raw_id, secret = basic
            client_id = raw_id if raw_id in self.provider.clients else unquote_plus(raw_id)
            if form.get("client_id", client_id) != client_id:
                raise OAuthError("invalid_request", "client_id does not match the credentials")
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret")
        client = self.provider.clients.get(client_id)
        if client is None or secret is None:
            raise OAuthError("invalid_client", "client authentication failed", 401)
        if not secret_matches(client, secret, form_encoded=basic is not None):
            raise OAuthError("invalid_client", "client authentication failed", 401)
        return client

    def redeem_code(self, client: Client, form: dict[str, str]) -> AuthorizationCode:
        grant_type = form.get("grant_type")
        if grant_type is None:
            raise OAuthError("invalid_request", "grant_type is missing")
        if grant_type != "authorization_code":
            raise OAuthError("unsupported_grant_type", f"{grant_type!r} is not supported")
        value = form.get("code")
        if value is None:
            raise OAuthError("invalid_request", "code is missing")
        code = self.provider.find_code(value)
        if code is None:
            raise OAuthError("invalid_grant", "unknown authorization code")
        if code.request.client_id != client.client_id:
            raise OAuthError("invalid_grant", "the code was issued to another client")
        if code.used:
            self.provider.revoke_tokens_of(code)
            raise OAuthError("invalid_grant", "the code was already used")
        code.used = True
        if code.expired():
            raise OAuthError("invalid_grant", "the code has expired")
        if form.get("redirect_uri") != code.request.redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri does not match the authorization")
        check_pkce(code.request, form.get("code_verifier"))
        return code

    # -- /introspect (RFC 7662) ----------------------------------------------------------

    async def introspect(self, request: web.Request) -> web.Response:
        """A registered client (client_secret_post or _basic) asks about ``token``: our own,
        unexpired, unrevoked access tokens are active; anything else is ``{"active": false}``."""
        p = self.provider
        try:
            if request.content_type != "application/x-www-form-urlencoded":
                raise OAuthError("invalid_request", "expected application/x-www-form-urlencoded")
            form = single_params((await request.post()).items())
            client = self.authenticate_client(request, form)
            token = form.get("token")
            if not token:
                raise OAuthError("invalid_request", "token is missing")
        except OAuthError as exc:
            headers = {"WWW-Authenticate": f'Basic realm="{REALM}"'} if exc.status == 401 else {}
            return error_json(exc, headers)
        try:
            claims = tokens.verify(token, p.verification_keys, issuer=p.issuer)
        except (JoseError, ValueError):
            claims = None
        if claims is None or p.is_revoked(claims.get("jti")):
            inactive: dict[str, Any] = {"active": False, **p.introspection_overrides}
            return web.json_response(inactive)
        body: dict[str, Any] = {
            "active": True,
            "iss": p.issuer,
            "aud": client.client_id,
            **{
                k: claims[k]
                for k in ("sub", "client_id", "scope", "exp", "iat", "jti")
                if k in claims
            },
            **p.introspection_overrides,
        }
        return web.json_response(body, headers=NO_STORE)

    # -- /userinfo and /logout -----------------------------------------------------------

    async def userinfo(self, request: web.Request) -> web.Response:
        p = self.provider
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return bearer_error(None, "a bearer access token is required")
        try:
            claims = tokens.verify(token, p.verification_keys, issuer=p.issuer)
        except (JoseError, ValueError) as exc:
            return bearer_error("invalid_token", str(exc).replace('"', "'"))
        if p.is_revoked(claims.get("jti")):
            return bearer_error("invalid_token", "the token was revoked")
        user = p.userinfo_for(claims)
        if not p.signed_userinfo:
            return web.json_response(user, headers=NO_STORE)
        audience = claims.get("client_id") or claims.get("aud")
        signed = tokens.sign({**user, "iss": p.issuer, "aud": audience}, p.signing_key)
        return web.Response(text=signed, content_type="application/jwt", headers=NO_STORE)

    async def logout(self, request: web.Request) -> web.Response:
        p = self.provider
        items = request.query.items() if request.method == "GET" else (await request.post()).items()
        try:
            params = single_params(items)
            hint = params.get("id_token_hint")
            if hint is not None:
                try:
                    tokens.verify(hint, p.verification_keys, issuer=p.issuer, allow_expired=True)
                except (JoseError, ValueError) as exc:
                    raise OAuthError("invalid_request", "id_token_hint is not ours") from exc
            target = params.get("post_logout_redirect_uri")
            if target is not None and not _absolute_http_url(target):
                raise OAuthError("invalid_request", "post_logout_redirect_uri must be absolute")
        except OAuthError as exc:
            return error_json(exc)
        p.logged_in_user = None
        if target is None:
            return html(pages.logged_out_page())
        return redirect_with(target, {"state": params.get("state")})


def _absolute_http_url(value: str) -> bool:
    try:
        url = URL(value)
    except ValueError:
        return False
    return url.absolute and url.scheme in ("http", "https")
