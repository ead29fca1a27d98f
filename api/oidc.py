"""OIDC login (authorization code + PKCE, with authlib helpers), callback and logout."""

from __future__ import annotations

import hmac
import logging
import re
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from yarl import URL

from api import keys
from api.auth import VERIFIER, check_csrf, session_key
from api.middlewares import set_csrf_cookie
from api.openapi import operation
from api.session import CSRF_COOKIE, SESSION_COOKIE
from coordinator.errors import CoordinatorError, NotFound
from coordinator.identity import resolve_user
from coordinator.settings import Settings

log = logging.getLogger(__name__)

PREFIX = "/api/v1.0"
STATE_COOKIE = "oidc_login"
STATE_TTL = 600
STATE_TYPE = "oidc_login"


# Characters a browser's URL parser (WHATWG) strips or reads differently from ours: a
# backslash is a slash in http(s) URLs, tabs and newlines are removed, controls are refused.
_UNSAFE_IN_RETURN_TO = re.compile(r"[\\\x00-\x20\x7f]")


def _safe_return_to(request: web.Request, settings: Settings, value: str | None) -> str | None:
    """``value`` when a browser would read it as this site or an allowed host; None otherwise.

    Anything holding a backslash, a space, a tab, CR/LF or another control character is
    refused outright; what is left is read the same way by ``urlsplit`` and by browsers.
    """
    if not value or _UNSAFE_IN_RETURN_TO.search(value):
        return None
    parts = urlsplit(value)
    if not parts.scheme and not parts.netloc:
        return value if value.startswith("/") and not value.startswith("//") else None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    if "@" in parts.netloc:
        return None  # credentials in a redirect target are never ours
    try:
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return None
    netloc = host if port is None else f"{host}:{port}"
    if netloc == request.host.lower() or host in settings.oidc.redirect_allowed_hosts:
        return value
    return None


def _absolute(request: web.Request, path: str) -> str:
    if urlsplit(path).scheme:
        return path
    return str(request.url.origin().join(URL(path)))


def _callback_url(request: web.Request) -> str:
    return _absolute(request, str(request.app.router["oidc_callback"].url_for()))


def redirect(location: str) -> web.Response:
    return web.Response(status=302, headers={"Location": location})


def _cookie_kwargs(settings: Settings) -> dict[str, Any]:
    return {
        "httponly": True,
        "samesite": "Lax",
        "secure": settings.session_cookie_secure,
        "path": "/",
    }


@operation(
    "GET",
    f"{PREFIX}/authenticate/",
    name="oidc_authenticate",
    summary="Start the OIDC login (redirects to the identity provider)",
    tag="auth",
    responses={302: None},
    document=False,
)
async def authenticate(request: web.Request) -> web.StreamResponse:
    settings = request.app[keys.SETTINGS]
    oidc = settings.oidc
    if not oidc.login_enabled:
        raise NotFound("OIDC login is not configured.")
    # authlib on the first login, not at import: a server without OIDC login never loads it.
    from authlib.common.security import generate_token
    from authlib.common.urls import add_params_to_uri
    from authlib.oauth2.rfc7636 import create_s256_code_challenge

    state = generate_token(32)
    nonce = generate_token(32)
    verifier = generate_token(64)
    params: dict[str, str] = {
        "response_type": "code",
        "client_id": oidc.client_id,
        "redirect_uri": _callback_url(request),
        "scope": oidc.scopes,
        "state": state,
        "nonce": nonce,
    }
    if oidc.use_pkce:
        params["code_challenge"] = create_s256_code_challenge(verifier)
        params["code_challenge_method"] = "S256"
    silent = request.query.get("silent", "").lower() in ("1", "true", "yes")
    if silent:
        params["prompt"] = "none"
    return_to = _safe_return_to(
        request, settings, request.query.get("returnTo") or request.query.get("next")
    )
    pending = {
        "typ": STATE_TYPE,
        "state": state,
        "nonce": nonce,
        "verifier": verifier,
        "return_to": return_to,
        "silent": silent,
        "exp": int(time.time()) + STATE_TTL,
    }
    response = redirect(add_params_to_uri(oidc.authorization_endpoint, params))
    response.set_cookie(
        STATE_COOKIE,
        request.app[keys.SESSIONS].encode(pending),
        max_age=STATE_TTL,
        **_cookie_kwargs(settings),
    )
    return response


async def _exchange_code(
    request: web.Request, settings: Settings, code: str, verifier: str
) -> dict[str, Any]:
    oidc = settings.oidc
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": _callback_url(request),
        "client_id": oidc.client_id,
        "client_secret": oidc.client_secret.get(),
    }
    if oidc.use_pkce:
        form["code_verifier"] = verifier
    timeout = aiohttp.ClientTimeout(total=oidc.timeout_seconds)
    async with request.app[keys.HTTP].post(oidc.token_endpoint, data=form, timeout=timeout) as resp:
        if resp.status != 200:
            raise LoginFailed(f"token endpoint answered {resp.status}")
        tokens: dict[str, Any] = await resp.json()
    return tokens


async def _userinfo(request: web.Request, settings: Settings, access_token: str) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=settings.oidc.timeout_seconds)
    headers = {"Authorization": f"Bearer {access_token}"}
    async with request.app[keys.HTTP].get(
        settings.oidc.user_endpoint, headers=headers, timeout=timeout
    ) as resp:
        if resp.status != 200:
            raise LoginFailed(f"userinfo endpoint answered {resp.status}")
        claims: dict[str, Any] = await resp.json(content_type=None)
    return claims


class LoginFailed(Exception):
    pass


def _state_matches(pending: dict[str, Any] | None, state: str | None) -> bool:
    """``pending`` is a login-state cookie of ours whose state equals ``state``."""
    if not pending or pending.get("typ") != STATE_TYPE or not state:
        return False
    expected = pending.get("state")
    fields_ok = all(isinstance(pending.get(k), str) for k in ("state", "nonce", "verifier"))
    return (
        fields_ok
        and isinstance(expected, str)
        and hmac.compare_digest(expected.encode(), state.encode("utf-8", "surrogatepass"))
    )


@operation(
    "GET",
    f"{PREFIX}/callback/",
    name="oidc_callback",
    summary="OIDC redirect target",
    tag="auth",
    responses={302: None},
    document=False,
)
async def callback(request: web.Request) -> web.StreamResponse:
    settings = request.app[keys.SETTINGS]
    oidc = settings.oidc
    codec = request.app[keys.SESSIONS]
    pending = codec.decode(request.cookies.get(STATE_COOKIE))
    failure = redirect(oidc.login_redirect_url_failure)
    failure.del_cookie(STATE_COOKIE, path="/")
    if not _state_matches(pending, request.query.get("state")):
        # Also a session cookie replayed as the state cookie: it is not a login in progress.
        log.warning("OIDC callback with a missing or mismatched state")
        return failure
    assert pending is not None
    if "error" in request.query or "code" not in request.query:
        if pending.get("silent") and pending.get("return_to"):
            silent = redirect(pending["return_to"])
            silent.del_cookie(STATE_COOKIE, path="/")
            return silent
        log.info("OIDC login ended with error %s", request.query.get("error"))
        return failure
    try:
        tokens = await _exchange_code(request, settings, request.query["code"], pending["verifier"])
        claims: dict[str, Any] = {}
        id_token = tokens.get("id_token")
        if id_token and oidc.jwks_endpoint:
            claims = await request.app[VERIFIER].claims(
                str(id_token), audience=oidc.client_id, nonce=pending["nonce"]
            )
        if oidc.user_endpoint and tokens.get("access_token"):
            userinfo = await _userinfo(request, settings, str(tokens["access_token"]))
            if claims and userinfo.get("sub") != claims.get("sub"):
                raise LoginFailed("userinfo subject differs from the ID token's")
            claims.update(userinfo)
        if not claims.get("sub"):
            raise LoginFailed("no subject in the provider's answer")
        user = await resolve_user(request.app[keys.SESSIONMAKER], oidc, claims)
        request.app[keys.ROOMS].cache.forget_user(user.id)
    except (LoginFailed, CoordinatorError, aiohttp.ClientError, TimeoutError, ValueError) as exc:
        log.warning("OIDC login refused: %s", exc)
        return failure
    target = pending.get("return_to") or oidc.login_redirect_url
    response = redirect(target)
    response.del_cookie(STATE_COOKIE, path="/")
    if CSRF_COOKIE not in request.cookies:
        set_csrf_cookie(request, response)
    sessions = request.app[keys.LOGIN_SESSIONS]
    previous = session_key(request)
    if previous is not None:
        await sessions.close(previous[0])  # as Django's login(): the old key ends
    key = await sessions.open(user.id, max_age=settings.session_cookie_age)
    session = {
        "sid": key,
        "uid": str(user.id),
        "exp": int(time.time()) + settings.session_cookie_age,
    }
    response.set_cookie(
        SESSION_COOKIE,
        codec.encode(session),
        max_age=settings.session_cookie_age,
        **_cookie_kwargs(settings),
    )
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    """Ends the login session on the server (a copied cookie is refused from now on), clears
    the cookie and redirects to the provider's logout. By POST, the CSRF checks apply."""
    found = session_key(request)
    if found is not None:
        if request.method == "POST":
            check_csrf(request)
        await request.app[keys.LOGIN_SESSIONS].close(found[0])
    settings = request.app[keys.SETTINGS]
    oidc = settings.oidc
    target = oidc.logout_redirect_url
    if oidc.logout_endpoint:
        from authlib.common.urls import add_params_to_uri

        target = add_params_to_uri(
            oidc.logout_endpoint,
            {
                "client_id": oidc.client_id,
                "post_logout_redirect_uri": _absolute(request, oidc.logout_redirect_url),
            },
        )
    response = redirect(target)
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


for _method in ("GET", "POST"):
    operation(
        _method,
        f"{PREFIX}/logout/",
        name=f"oidc_logout_{_method.lower()}",
        summary="Log out",
        tag="auth",
        responses={302: None},
        document=False,
    )(logout)
