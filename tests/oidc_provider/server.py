"""An OpenID Connect provider stand-in served by aiohttp on loopback.

It implements the authorization code flow (PKCE S256, ``state``, ``nonce``,
``prompt=none``), the token endpoint (client_secret_post / client_secret_basic),
userinfo, JWKS, discovery and end-session: enough for a relying party built on
authlib / mozilla-django-oidc style libraries to log users in for real.
The user who "logs in" is chosen by the test (``next_user``, ``logged_in_user``).
"""

from __future__ import annotations

import ipaddress
import secrets
import time
from collections import deque
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from joserfc.jwk import KeySetSerialization, RSAKey

from . import endpoints, tokens
from .models import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REDIRECT_URI_PATTERNS,
    DENIAL,
    AuthorizationCode,
    AuthorizationRequest,
    Client,
    LoginOutcome,
    RecordedRequest,
    UserClaims,
)


def _check_user(user: UserClaims) -> UserClaims:
    if not isinstance(user.get("sub"), str) or not user["sub"]:
        raise ValueError(f"a user needs a non-empty string 'sub' claim: {user!r}")
    return dict(user)


def _check_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"the test OIDC provider only listens on loopback, not {host!r}")


class OIDCProvider:
    """A small but real OpenID provider for tests and local demos.

    ``clients`` maps client ids to a secret or a :class:`Client`; by default a single
    client ``meet-coordinator`` (secret :data:`DEFAULT_CLIENT_SECRET`) accepting the
    :data:`DEFAULT_REDIRECT_URI_PATTERNS`. Access tokens minted by the code flow are
    issued for ``access_token_audience`` (default: the client id).
    """

    def __init__(
        self,
        *,
        clients: Mapping[str, str | Client] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        key: RSAKey | None = None,
        logged_in_user: UserClaims | None = None,
        access_token_audience: str | None = None,
        access_token_ttl: int = 300,
        id_token_ttl: int = 300,
        code_ttl: int = 60,
        signed_userinfo: bool = False,
    ) -> None:
        _check_loopback(host)
        self.host = host
        self._port = port
        if clients is None:
            clients = {
                DEFAULT_CLIENT_ID: Client(
                    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, list(DEFAULT_REDIRECT_URI_PATTERNS)
                )
            }
        self.clients: dict[str, Client] = {}
        for client_id, client in clients.items():
            if isinstance(client, str):
                client = Client(client_id, client)
            elif client.client_id != client_id:
                raise ValueError(f"client {client.client_id!r} registered as {client_id!r}")
            self.clients[client_id] = client
        self._keys: list[RSAKey] = [key or tokens.generate_rsa_key()]
        self._foreign_key: RSAKey | None = None
        #: The user with an open session at the provider (SSO, ``prompt=none``); set by
        #: every successful login, cleared by ``/logout``.
        self.logged_in_user = _check_user(logged_in_user) if logged_in_user else None
        self.access_token_audience = access_token_audience
        self.access_token_ttl = access_token_ttl
        self.id_token_ttl = id_token_ttl
        self.code_ttl = code_ttl
        #: Serve ``/userinfo`` as a signed JWT (``application/jwt``) instead of JSON.
        self.signed_userinfo = signed_userinfo
        #: Extra members merged over every ``/introspect`` answer (e.g. ``{"iss": "x"}``).
        self.introspection_overrides: dict[str, Any] = {}
        #: Every HTTP request received, oldest first.
        self.requests: list[RecordedRequest] = []
        self._login_queue: deque[LoginOutcome] = deque()
        self._pending_logins: dict[str, AuthorizationRequest] = {}
        self._codes: dict[str, AuthorizationCode] = {}
        self._token_users: dict[str, UserClaims] = {}
        self._revoked: set[str] = set()
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("the OIDC provider is already running")
        runner = web.AppRunner(self._build_app(), handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self._port).start()
        except BaseException:
            await runner.cleanup()
            raise
        port = runner.addresses[0][1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        self._runner = runner
        self._url = f"http://{host}:{port}"

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> OIDCProvider:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _build_app(self) -> web.Application:
        @web.middleware
        async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
            form: dict[str, str] = {}
            if request.content_type == "application/x-www-form-urlencoded":
                form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
            self.requests.append(
                RecordedRequest(
                    request.method, request.path, dict(request.query), form, dict(request.headers)
                )
            )
            return await handler(request)

        app = web.Application(middlewares=[record])
        endpoints.add_routes(app, self)
        return app

    # -- addresses -------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234`` (also the issuer)."""
        if self._url is None:
            raise RuntimeError("the OIDC provider is not running; await start() first")
        return self._url

    @property
    def issuer(self) -> str:
        return self.url

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def discovery_url(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"

    @property
    def authorization_endpoint(self) -> str:
        return f"{self.url}/authorize"

    @property
    def token_endpoint(self) -> str:
        return f"{self.url}/token"

    @property
    def userinfo_endpoint(self) -> str:
        return f"{self.url}/userinfo"

    @property
    def jwks_uri(self) -> str:
        return f"{self.url}/jwks"

    @property
    def end_session_endpoint(self) -> str:
        return f"{self.url}/logout"

    @property
    def introspection_endpoint(self) -> str:
        return f"{self.url}/introspect"

    # -- clients ---------------------------------------------------------------------

    def register_client(
        self,
        client_id: str,
        secret: str,
        redirect_uris: Iterable[str] = (),
        *,
        require_pkce: bool = True,
    ) -> Client:
        """Add (or replace) a client; redirect URIs may use ``*`` (e.g. for the port)."""
        client = Client(client_id, secret, list(redirect_uris), require_pkce=require_pkce)
        self.clients[client_id] = client
        return client

    def add_redirect_uri(self, uri: str, *, client_id: str = DEFAULT_CLIENT_ID) -> None:
        """Allow one more redirect URI (or ``*`` pattern) for an existing client."""
        self.clients[client_id].redirect_uris.append(uri)

    # -- users -----------------------------------------------------------------------

    @property
    def next_user(self) -> UserClaims | None:
        """The user who logs in at the next authorization (consumed by it).

        Setting it replaces the queue; until it is consumed it also counts as the
        logged-in user for ``prompt=none``."""
        head = self._login_queue[0] if self._login_queue else None
        return head if isinstance(head, dict) else None

    @next_user.setter
    def next_user(self, user: UserClaims | None) -> None:
        self._login_queue.clear()
        if user is not None:
            self._login_queue.append(_check_user(user))

    def queue_user(self, *users: UserClaims) -> None:
        """Users who log in at the following authorizations, one each, in order."""
        self._login_queue.extend(_check_user(user) for user in users)

    def deny_next(self) -> None:
        """Queue a refusal: the next authorization redirects with ``error=access_denied``."""
        self._login_queue.append(DENIAL)

    def pop_login(self) -> LoginOutcome | None:
        return self._login_queue.popleft() if self._login_queue else None

    # -- keys and tokens -------------------------------------------------------------

    @property
    def signing_key(self) -> RSAKey:
        """The private key currently used to sign tokens (published in ``/jwks``)."""
        return self._keys[-1]

    @property
    def verification_keys(self) -> list[RSAKey]:
        return list(self._keys)

    @property
    def foreign_key(self) -> RSAKey:
        """A key unknown to the provider (not in ``/jwks``), generated on first use."""
        if self._foreign_key is None:
            self._foreign_key = tokens.generate_rsa_key()
        return self._foreign_key

    def rotate_key(self, key: RSAKey | None = None, *, keep_old: bool = True) -> RSAKey:
        """Sign with a new key from now on; the old one stays in ``/jwks`` if *keep_old*."""
        new_key = key or tokens.generate_rsa_key()
        self._keys = [*self._keys, new_key] if keep_old else [new_key]
        return new_key

    def jwks(self) -> KeySetSerialization:
        """The public JWK set served at ``/jwks``."""
        return {"keys": [key.as_dict(private=False) for key in self._keys]}

    def default_client_id(self) -> str:
        """``meet-coordinator`` if registered (or no client is), else the first client."""
        if DEFAULT_CLIENT_ID in self.clients or not self.clients:
            return DEFAULT_CLIENT_ID
        return next(iter(self.clients))

    def default_audience(self) -> str:
        """``aud`` of access tokens: ``access_token_audience``, else the default client id."""
        if self.access_token_audience is not None:
            return self.access_token_audience
        return self.default_client_id()

    def mint_access_token(
        self,
        claims: Mapping[str, Any],
        *,
        audience: str | list[str] | None = None,
        expires_in: int | None = None,
        issuer: str | None = None,
        key: RSAKey | None = None,
        kid: str | None = None,
        client_id: str | None = None,
        scope: str = "openid email profile",
    ) -> str:
        """An RS256 access token as the token endpoint would issue it, for API tests.

        *claims* (e.g. ``{"sub": ..., "email": ...}``) are merged over the defaults
        (``iss``, ``aud``, ``iat``, ``exp``, ``jti``, ``client_id``, ``scope``). Use a
        negative *expires_in* for an expired token, *key* (e.g. :attr:`foreign_key`)
        for a foreign signature and *kid* to override the ``kid`` header."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": issuer if issuer is not None else self.issuer,
            "aud": audience if audience is not None else self.default_audience(),
            "iat": now,
            "exp": now + (self.access_token_ttl if expires_in is None else expires_in),
            "jti": secrets.token_urlsafe(16),
            "client_id": client_id or self.default_client_id(),
            "scope": scope,
            **claims,
        }
        return tokens.sign(payload, key or self.signing_key, kid=kid, typ="at+jwt")

    def mint_forged_access_token(self, claims: Mapping[str, Any], **kwargs: Any) -> str:
        """Like :meth:`mint_access_token` but signed by :attr:`foreign_key` while
        claiming the provider's ``kid``: only the signature check can reject it."""
        kwargs.setdefault("kid", self.signing_key.kid)
        return self.mint_access_token(claims, key=self.foreign_key, **kwargs)

    def mint_id_token(
        self,
        claims: Mapping[str, Any],
        *,
        audience: str | None = None,
        nonce: str | None = None,
        expires_in: int | None = None,
        issuer: str | None = None,
        key: RSAKey | None = None,
        kid: str | None = None,
    ) -> str:
        """An RS256 ID token (e.g. for ``id_token_hint`` or ID token validation tests)."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": issuer if issuer is not None else self.issuer,
            "aud": audience or self.default_client_id(),
            "iat": now,
            "auth_time": now,
            "exp": now + (self.id_token_ttl if expires_in is None else expires_in),
        }
        if nonce is not None:
            payload["nonce"] = nonce
        payload.update(claims)
        return tokens.sign(payload, key or self.signing_key, kid=kid)

    # -- internal state used by the endpoints ------------------------------------------

    def issue_code(self, request: AuthorizationRequest, user: UserClaims) -> str:
        self.logged_in_user = user
        code = secrets.token_urlsafe(32)
        self._codes[code] = AuthorizationCode(
            code, request, user, int(time.time()), time.time() + self.code_ttl
        )
        return code

    def find_code(self, code: str) -> AuthorizationCode | None:
        return self._codes.get(code)

    def remember_login(self, request: AuthorizationRequest) -> str:
        login_id = secrets.token_urlsafe(16)
        self._pending_logins[login_id] = request
        return login_id

    def take_login(self, login_id: str) -> AuthorizationRequest | None:
        return self._pending_logins.pop(login_id, None)

    def issue_tokens(self, code: AuthorizationCode) -> dict[str, Any]:
        """The token endpoint response body for a verified authorization code."""
        client_id = code.request.client_id
        user = {k: v for k, v in code.user.items() if k not in tokens.REGISTERED_CLAIMS}
        jti = secrets.token_urlsafe(16)
        access_token = self.mint_access_token(
            {**user, "jti": jti, "auth_time": code.auth_time},
            audience=self.access_token_audience or client_id,
            client_id=client_id,
            scope=code.request.scope,
        )
        id_claims: dict[str, Any] = {
            **user,
            "auth_time": code.auth_time,
            "azp": client_id,
            "at_hash": tokens.at_hash(access_token),
        }
        id_token = self.mint_id_token(id_claims, audience=client_id, nonce=code.request.nonce)
        code.token_ids.append(jti)
        self._token_users[jti] = user
        return {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": self.access_token_ttl,
            "id_token": id_token,
            "scope": code.request.scope,
        }

    def revoke_tokens_of(self, code: AuthorizationCode) -> None:
        self._revoked.update(code.token_ids)

    def is_revoked(self, jti: object) -> bool:
        return isinstance(jti, str) and jti in self._revoked

    def userinfo_for(self, token_claims: Mapping[str, Any]) -> UserClaims:
        jti = token_claims.get("jti")
        if isinstance(jti, str) and jti in self._token_users:
            return dict(self._token_users[jti])
        return tokens.user_claims_from(token_claims)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """The recorded requests whose path is *path* (e.g. ``"/token"``)."""
        return [r for r in self.requests if r.path == path]
