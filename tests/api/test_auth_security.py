"""Issue 9 (3, 4, 7, 11, 12) and issue 8 (e-mail fallback): sessions end at logout and at
deactivation, no open redirect, Django's CSRF origin checks, operator data stays with
operators, races and odd bytes in claims are never 500s. Real server, real provider stand-in,
both databases."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from sqlalchemy import func, select

from api import keys
from api.access_log import RedactingAccessLogger
from api.app import create_app
from api.auth import check_csrf
from api.oidc import STATE_COOKIE
from coordinator.errors import PermissionDenied
from coordinator.settings import Secret
from storage import reads
from storage import users as user_store
from storage.engine import create_engine
from storage.models import User
from tests.api.test_oidc import USER, Client, MakeClient, make_client, walk_login
from tests.conftest import make_settings
from tests.oidc_provider import DEFAULT_CLIENT_ID, OIDCProvider
from tests.support.factories import Factory

__all__ = ["make_client"]  # the fixture, imported for this module's tests

ME = "/api/v1.0/users/me/"
ROOMS = "/api/v1.0/rooms/"


def cookies_of(client: Client) -> dict[str, str]:
    jar = client.session.cookie_jar.filter_cookies(client.make_url("/"))
    return {name: morsel.value for name, morsel in jar.items()}


async def replay(
    client: Client, method: str, path: str, cookies: dict[str, str], **kwargs: Any
) -> aiohttp.ClientResponse:
    """A request from another browser holding copied cookies (and the CSRF header)."""
    headers = {"X-CSRFToken": cookies.get("csrftoken", ""), **kwargs.pop("headers", {})}
    async with aiohttp.ClientSession(cookies=cookies) as thief:
        response = await thief.request(
            method, client.make_url(path), headers=headers, allow_redirects=False, **kwargs
        )
        await response.read()
        return response


async def logged_in(
    make_client: MakeClient, oidc_provider: OIDCProvider, **overrides: Any
) -> Client:
    client = await make_client(**overrides)
    oidc_provider.next_user = dict(USER)
    assert (await walk_login(client)).status == 302
    assert (await client.get(ME)).status == 200
    return client


# --- 3. Sessions end at logout and at deactivation ------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_copied_cookies_are_refused_after_logout(
    make_client: MakeClient, oidc_provider: OIDCProvider, method: str
) -> None:
    client = await logged_in(make_client, oidc_provider)
    stolen = cookies_of(client)
    assert (await replay(client, "GET", ME, stolen)).status == 200
    csrf = {"X-CSRFToken": stolen["csrftoken"]}
    logout = await client.request(method, "/api/v1.0/logout/", allow_redirects=False, headers=csrf)
    assert logout.status == 302
    read = await replay(client, "GET", ME, stolen)
    assert read.status == 401
    write = await replay(client, "POST", ROOMS, stolen, json={"name": "after logout"})
    assert write.status == 401


async def test_logout_ends_only_its_own_session(
    make_client: MakeClient, oidc_provider: OIDCProvider
) -> None:
    laptop = await logged_in(make_client, oidc_provider)
    phone = await logged_in(make_client, oidc_provider)  # same person, same database
    await laptop.get("/api/v1.0/logout/", allow_redirects=False)
    assert (await laptop.get(ME)).status == 401
    assert (await phone.get(ME)).status == 200


async def test_a_new_login_ends_the_browser_previous_session(
    make_client: MakeClient, oidc_provider: OIDCProvider
) -> None:
    client = await logged_in(make_client, oidc_provider)
    before = cookies_of(client)
    oidc_provider.next_user = dict(USER)
    assert (await walk_login(client)).status == 302
    assert cookies_of(client)["sessionid"] != before["sessionid"]
    assert (await client.get(ME)).status == 200
    assert (await replay(client, "GET", ME, before)).status == 401


async def test_logout_by_post_requires_the_csrf_token(
    make_client: MakeClient, oidc_provider: OIDCProvider
) -> None:
    client = await logged_in(make_client, oidc_provider)
    stolen = cookies_of(client)
    no_token = await replay(
        client, "POST", "/api/v1.0/logout/", stolen, headers={"X-CSRFToken": ""}
    )
    assert no_token.status == 403
    assert await no_token.json() == {"detail": "CSRF Failed: CSRF token missing."}
    foreign = await replay(
        client, "POST", "/api/v1.0/logout/", stolen, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status == 403
    assert (await client.get(ME)).status == 200  # neither ended the session
    done = await client.post(
        "/api/v1.0/logout/", allow_redirects=False, headers={"X-CSRFToken": stolen["csrftoken"]}
    )
    assert done.status == 302
    assert (await replay(client, "GET", ME, stolen)).status == 401


async def eventually(check: Any, *, within: float) -> float:
    """Seconds until ``await check()`` is true; fails after ``within`` seconds."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < within, "not refused in time"
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def test_deactivation_ends_sessions_and_bearer_access_within_seconds(
    make_client: MakeClient, oidc_provider: OIDCProvider, factory: Factory
) -> None:
    client = await logged_in(make_client, oidc_provider)
    token = oidc_provider.mint_access_token(dict(USER), audience=DEFAULT_CLIENT_ID)
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await client.get(ME, headers=bearer)).status == 200
    async with factory.sessionmaker.begin() as session:
        user = await user_store.get_user_by_sub(session, USER["sub"])
        assert user is not None
        # Out of band, as an administrator would: another process, no cache invalidation.
        await user_store.update_user(session, user.id, is_active=False)

    async def session_refused() -> bool:
        return (await client.get(ME)).status == 401

    async def bearer_refused() -> bool:
        return (await client.get(ME, headers=bearer)).status in (401, 403)

    await eventually(session_refused, within=4)
    await eventually(bearer_refused, within=4)
    async with factory.sessionmaker.begin() as session:
        await user_store.update_user(session, user.id, is_active=True)
    await asyncio.sleep(2.5)  # past the lookup cache
    # Reactivation does not resurrect the sessions deactivation ended (bearer tokens are
    # checked against the provider, they work again).
    assert (await client.get(ME)).status == 401
    assert (await client.get(ME, headers=bearer)).status == 200


async def test_staff_flag_changes_reach_bearer_clients_within_seconds(
    make_client: MakeClient, oidc_provider: OIDCProvider, factory: Factory
) -> None:
    client = await make_client()
    token = oidc_provider.mint_access_token(dict(USER), audience=DEFAULT_CLIENT_ID)
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/v1.0/outbox/", headers=bearer)).status == 403
    async with factory.sessionmaker.begin() as session:
        user = await user_store.get_user_by_sub(session, USER["sub"])
        assert user is not None
        await user_store.update_user(session, user.id, is_staff=True)

    async def staff() -> bool:
        return (await client.get("/api/v1.0/outbox/", headers=bearer)).status == 200

    await eventually(staff, within=4)


# --- 4. No open redirect ----------------------------------------------------------------------

HOSTILE_RETURN_TO = [
    "/\\evil.example/",
    "/\\/evil.example",
    "http://evil.example\\@127.0.0.1/",
    "/\t/evil.example",
    "/\r\nSet-Cookie: x=y",
    "/ok\x00",
    "//evil.example/",
    "https://evil.example/",
    "javascript:alert(1)",
    "http://127.0.0.1@evil.example/",
    "http://evil.example:80\\@127.0.0.1/",
]


@pytest.mark.parametrize("return_to", HOSTILE_RETURN_TO)
async def test_hostile_return_to_lands_on_the_default(
    make_client: MakeClient, oidc_provider: OIDCProvider, return_to: str
) -> None:
    client = await make_client()
    oidc_provider.next_user = dict(USER)
    response = await walk_login(client, return_to=quote(return_to, safe=""))
    assert response.status == 302
    assert response.headers["Location"] == "/"
    assert (await client.get(ME)).status == 200


async def test_safe_return_to_is_kept(make_client: MakeClient, oidc_provider: OIDCProvider) -> None:
    client = await make_client()
    for target in ("/rooms/abc-defg-hij?x=1", str(client.make_url("/dashboard"))):
        oidc_provider.next_user = dict(USER)
        response = await walk_login(client, return_to=quote(target, safe=""))
        assert response.headers["Location"] == target


# --- 7. Races and bad bytes -------------------------------------------------------------------


async def test_parallel_first_requests_of_a_new_bearer_user_make_one_account(
    make_client: MakeClient, oidc_provider: OIDCProvider, factory: Factory
) -> None:
    client = await make_client()
    claims = {"sub": "racer", "email": "racer@example.com", "given_name": "Racer"}
    token = oidc_provider.mint_access_token(claims, audience=DEFAULT_CLIENT_ID)
    headers = {"Authorization": f"Bearer {token}"}
    responses = await asyncio.gather(*(client.get(ME, headers=headers) for _ in range(30)))
    assert [r.status for r in responses] == [200] * 30
    async with factory.sessionmaker() as session:
        count = await session.scalar(select(func.count()).where(User.sub == "racer"))
    assert count == 1


async def test_parallel_login_callbacks_of_a_new_user_make_one_account(
    make_client: MakeClient, oidc_provider: OIDCProvider, factory: Factory
) -> None:
    clients = [await make_client() for _ in range(8)]
    oidc_provider.queue_user(*[dict(USER, sub="twin") for _ in clients])

    async def callback_url(client: Client) -> str:
        start = await client.get("/api/v1.0/authenticate/", allow_redirects=False)
        async with aiohttp.ClientSession() as browser:
            async with browser.get(start.headers["Location"], allow_redirects=False) as answer:
                location = urlsplit(answer.headers["Location"])
            return f"{location.path}?{location.query}"

    urls = [await callback_url(c) for c in clients]
    responses = await asyncio.gather(
        *(c.get(u, allow_redirects=False) for c, u in zip(clients, urls, strict=True))
    )
    assert [r.headers["Location"] for r in responses] == ["/"] * len(clients)
    async with factory.sessionmaker() as session:
        count = await session.scalar(select(func.count()).where(User.sub == "twin"))
    assert count == 1


@pytest.mark.parametrize(
    ("claims", "status"),
    [
        ({"sub": "nul\x00sub"}, 403),
        ({"sub": "nul-mail", "email": "a\x00b@example.com"}, 403),
        ({"sub": "nul-name", "given_name": "Ada\x00", "usual_name": "Love\x00lace"}, 200),
    ],
)
async def test_nul_bytes_in_claims_are_never_500(
    make_client: MakeClient, oidc_provider: OIDCProvider, claims: dict[str, str], status: int
) -> None:
    client = await make_client()
    token = oidc_provider.mint_access_token(claims, audience=DEFAULT_CLIENT_ID)
    response = await client.get(ME, headers={"Authorization": f"Bearer {token}"})
    assert response.status == status, await response.text()
    if status == 200:
        assert (await response.json())["full_name"] == "Ada Lovelace"
    # The login callback refuses the same claims cleanly, or logs in.
    oidc_provider.next_user = dict(claims, email=claims.get("email", "n@example.com"))
    callback = await walk_login(client)
    assert callback.status == 302
    expected = "/dashboard" if status == 200 else "/login-failed"
    assert callback.headers["Location"] == expected


async def test_session_cookie_replayed_as_login_state_is_refused(
    make_client: MakeClient, oidc_provider: OIDCProvider
) -> None:
    client = await logged_in(make_client, oidc_provider)
    session_cookie = cookies_of(client)["sessionid"]
    for query in ("code=x", "code=x&state=", "error=x", ""):
        response = await replay(
            client, "GET", f"/api/v1.0/callback/?{query}", {STATE_COOKIE: session_cookie}
        )
        assert response.status == 302
        assert response.headers["Location"] == "/login-failed"


# --- issue 8: the e-mail fallback matches the e-mail as sent ------------------------------------


async def test_email_fallback_does_not_strip_the_address(
    make_client: MakeClient, oidc_provider: OIDCProvider, factory: Factory
) -> None:
    existing = await factory.user(sub="old-sub", email="ada@example.com")
    client = await make_client(fallback_to_email_for_identification=True)
    oidc_provider.next_user = dict(USER, email=" ada@example.com ")
    assert (await walk_login(client)).headers["Location"] == "/dashboard"
    me = await (await client.get(ME)).json()
    assert me["id"] != str(existing.id)


# --- 11. CSRF: Origin, Referer, Secure cookie ---------------------------------------------------


async def test_unsafe_requests_check_the_origin(
    make_client: MakeClient, oidc_provider: OIDCProvider
) -> None:
    client = await logged_in(make_client, oidc_provider)
    client.session.headers["X-CSRFToken"] = cookies_of(client)["csrftoken"]
    own = str(client.make_url("/").origin())
    refused = await client.post(
        ROOMS, json={"name": "a"}, headers={"Origin": "https://evil.example"}
    )
    assert refused.status == 403
    assert await refused.json() == {
        "detail": "CSRF Failed: Origin checking failed - https://evil.example does not match "
        "any trusted origins."
    }
    other_port = own.rsplit(":", 1)[0] + ":1"
    assert (
        await client.post(ROOMS, json={"name": "b"}, headers={"Origin": other_port})
    ).status == 403
    assert (await client.post(ROOMS, json={"name": "c"}, headers={"Origin": "null"})).status == 403
    assert (await client.post(ROOMS, json={"name": "d"}, headers={"Origin": own})).status == 201
    # No Origin over plain HTTP: Django accepts it (the token still applies).
    assert (await client.post(ROOMS, json={"name": "e"})).status == 201


async def test_csrf_trusted_origins_are_accepted(
    aiohttp_client: Any, database_url: str, oidc_provider: OIDCProvider, factory: Factory
) -> None:
    from tests.api.test_oidc import oidc_settings
    from tests.support.factories import login

    settings = make_settings(
        database_url,
        oidc=oidc_settings(oidc_provider),
        csrf_trusted_origins=("https://meet.example", "https://*.example.org"),
    )
    client: Client = await aiohttp_client(create_app(settings))
    login(client, client.app[keys.SESSIONS], await factory.user())
    for origin, status in [
        ("https://meet.example", 201),
        ("https://a.b.example.org", 201),
        ("https://example.org", 201),
        ("http://meet.example", 403),
        ("https://evil-example.org", 403),
    ]:
        response = await client.post(ROOMS, json={"name": origin}, headers={"Origin": origin})
        assert response.status == status, origin


def _https_request(headers: dict[str, str], trusted: tuple[str, ...] = ()) -> web.Request:
    import ssl

    app = web.Application()
    app[keys.SETTINGS] = make_settings("sqlite://", csrf_trusted_origins=trusted)
    base = {"Host": "meet.example", "X-CSRFToken": "t", "Cookie": "csrftoken=t"}
    return make_mocked_request(
        "POST", ROOMS, headers={**base, **headers}, app=app, sslcontext=ssl.create_default_context()
    )


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "CSRF Failed: Referer checking failed - no Referer."),
        ({"Referer": "nonsense"}, "CSRF Failed: Referer checking failed - Referer is malformed."),
        (
            {"Referer": "http://meet.example/"},
            "CSRF Failed: Referer checking failed - Referer is insecure while host is secure.",
        ),
        (
            {"Referer": "https://evil.example/x"},
            "CSRF Failed: Referer checking failed - https://evil.example/x does not match any "
            "trusted origins.",
        ),
        ({"Referer": "https://meet.example/rooms/"}, None),
        ({"Origin": "https://meet.example"}, None),
    ],
)
def test_over_https_without_origin_the_referer_is_checked(
    headers: dict[str, str], detail: str | None
) -> None:
    request = _https_request(headers)
    if detail is None:
        check_csrf(request)
        return
    with pytest.raises(PermissionDenied) as raised:
        check_csrf(request)
    assert raised.value.body == {"detail": detail}


def test_referer_of_a_trusted_origin_passes() -> None:
    check_csrf(_https_request({"Referer": "https://app.example/x"}, ("https://app.example",)))


async def test_csrf_cookie_is_secure_when_sessions_are(
    aiohttp_client: Any, database_url: str
) -> None:
    for secure in (False, True):
        settings = make_settings(database_url, session_cookie_secure=secure)
        client: Client = await aiohttp_client(create_app(settings))
        # A browser holding a session cookie but no csrftoken is handed one.
        response = await client.get("/api/v1.0/config/", cookies={"sessionid": "x"})
        assert bool(response.cookies["csrftoken"]["secure"]) is secure
    settings = make_settings(database_url, csrf_cookie_secure=True)
    client = await aiohttp_client(create_app(settings))
    response = await client.get("/api/v1.0/config/", cookies={"sessionid": "x"})
    assert response.cookies["csrftoken"]["secure"]


# --- 12. Operator data stays with operators -----------------------------------------------------


async def test_metrics_need_the_ops_token_when_set(aiohttp_client: Any, database_url: str) -> None:
    open_client: Client = await aiohttp_client(create_app(make_settings(database_url)))
    assert (await open_client.get("/metrics")).status == 200
    settings = make_settings(database_url, ops_token=Secret("ops-" + "o" * 30))
    client: Client = await aiohttp_client(create_app(settings))
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "ops-" + "o" * 30}):
        response = await client.get("/metrics", headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert await response.json() == {"detail": "Invalid token."}
    good = await client.get("/metrics", headers={"Authorization": "Bearer ops-" + "o" * 30})
    assert good.status == 200
    assert "meet_active_rooms" in await good.text()


async def test_access_log_never_carries_oidc_codes_or_states(
    database_url: str, oidc_provider: OIDCProvider, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.api.test_oidc import oidc_settings
    from tests.support.postgres import free_port

    settings = make_settings(database_url, oidc=oidc_settings(oidc_provider))
    # As ``meet-coordinator serve`` runs it (coordinator/cli.py).
    runner = web.AppRunner(
        create_app(settings),
        access_log=logging.getLogger("aiohttp.access"),
        access_log_class=RedactingAccessLogger,
    )
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    try:
        with caplog.at_level(logging.INFO, logger="aiohttp.access"):
            async with aiohttp.ClientSession() as browser:
                for path in (
                    "/api/v1.0/callback/?code=SECRETCODE&state=SECRETSTATE",
                    "/api/v1.0/authenticate/?returnTo=/SECRETRETURN",
                    "/api/v1.0/logout/?state=SECRETSTATE",
                    "/api/v1.0/callback?code=SECRETCODE",
                ):
                    await browser.get(base + path, allow_redirects=False)
                await browser.get(
                    base + "/api/v1.0/config/",
                    headers={"Referer": base + "/api/v1.0/callback/?code=SECRETCODE"},
                )
                await browser.get(base + "/api/v1.0/config/?kept=1")
            await asyncio.sleep(0.1)
    finally:
        await runner.cleanup()
    lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert len(lines) == 6, lines
    assert not [line for line in lines if "SECRET" in line], lines
    assert any("/api/v1.0/callback/?[redacted]" in line for line in lines)
    assert any("/api/v1.0/config/?kept=1" in line for line in lines)


async def test_sql_errors_in_tracebacks_carry_no_parameters(
    client: Client,
    log_in: Any,
    factory: Factory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A real database error (a duplicate key) raised under a request: the logged traceback
    names the statement, never its values (e-mails, subs)."""
    victim = await factory.user(sub="secret-sub-value", email="secret-mail@example.com")
    log_in(victim)

    async def failing_get_user(source: Any, *args: Any) -> Any:
        async with client.app[keys.SESSIONMAKER]() as session:
            session.add(User(id=victim.id, sub="secret-sub-value", email="secret-mail@example.com"))
            await session.flush()

    monkeypatch.setattr(reads, "user", failing_get_user)
    monkeypatch.setattr(reads, "session_user", failing_get_user)
    client.app[keys.ROOMS].cache.users.clear()
    client.app[keys.ROOMS].cache.sessions.clear()
    with caplog.at_level(logging.ERROR):
        response = await client.get(ME)
    assert response.status == 500
    formatter = logging.Formatter()
    logged = "\n".join(formatter.format(record) for record in caplog.records)
    assert "IntegrityError" in logged or "UniqueViolation" in logged
    assert "secret-mail@example.com" not in logged
    assert "secret-sub-value" not in logged
    assert "[SQL parameters hidden due to hide_parameters=True]" in logged


async def test_engine_hides_parameters(database_url: str) -> None:
    engine = create_engine(database_url)
    assert engine.sync_engine.hide_parameters
    await engine.dispose()
