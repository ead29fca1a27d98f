"""Meet's web-app calls (frontend-calls.md), made by a real browser against the real stack.

Each scenario runs the page's JS (tests/browser/page/meet-calls.js) through ``page.evaluate``
and asserts here what the web app would conclude from the answers.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from livekit.api import TokenVerifier

from tests.browser.conftest import Stack, Visitor

ME = "/api/v1.0/users/me"


async def log_in(
    stack: Stack, visitor: Visitor, sub: str, given: str, usual: str
) -> dict[str, Any]:
    """Through the provider's login form, as a user would; returns ``users/me``."""
    await visitor.navigate("login")
    page = visitor.page
    assert page.url.startswith(stack.provider.authorization_endpoint)
    await page.fill("input[name=sub]", sub)
    await page.fill("input[name=email]", f"{sub}@example.com")
    await page.fill("input[name=given_name]", given)
    await page.fill("input[name=usual_name]", usual)
    async with page.expect_navigation(url=f"{stack.base_url}/"):
        await page.click("button[value=login]")
    await visitor.ready()
    me: dict[str, Any] = await visitor.call("whoAmI")
    assert me["loggedIn"] is True, me
    body: dict[str, Any] = me["body"]
    return body


async def wait_for(
    predicate: Any, visitor: Visitor, expression: str, *args: Any, seconds: float = 10
) -> Any:
    """``meet.<expression>(*args)`` until ``predicate(result)``: the app's polling, from here."""
    last: Any = None
    try:
        async with asyncio.timeout(seconds):
            while True:
                last = await visitor.call(expression, *args)
                if predicate(last):
                    return last
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"timed out; last: {last}") from None


def token_claims(stack: Stack, token: str) -> Any:
    return TokenVerifier(stack.livekit.api_key, stack.livekit.api_secret).verify(token)


def new_slug() -> str:
    letters = uuid.uuid4().hex.translate(str.maketrans("0123456789", "ghijklmnop"))
    return f"{letters[:3]}-{letters[3:7]}-{letters[7:10]}"


async def test_anonymous_load_decides_logged_out(stack: Stack) -> None:
    visitor = await stack.visitor()
    config = await visitor.call("config")
    assert config["status"] == 200 and config["body"]["livekit"]["url"]
    me = await visitor.call("whoAmI")
    assert me["loggedIn"] is False, me  # 401, not "undecided": the pages do not load forever
    assert me["redirected"] and me["url"] == f"{stack.base_url}{ME}/"
    assert visitor.seen(ME) == [301]
    assert visitor.seen(f"{ME}/") == [401]
    assert await visitor.call("csrfToken") is None


async def test_login_through_the_provider(stack: Stack) -> None:
    visitor = await stack.visitor()
    me = await log_in(stack, visitor, "ada", "Ada", "Lovelace")
    assert me["email"] == "ada@example.com" and me["full_name"] == "Ada Lovelace"
    assert set(me) >= {
        "id",
        "language",
        "timezone",
        "default_room_access_level",
        "default_room_configuration",
    }
    assert await visitor.call("csrfToken")  # readable by JS, sent back as X-CSRFToken
    cookies = await visitor.page.evaluate("document.cookie")
    assert "sessionid" not in cookies  # HttpOnly


async def test_silent_login_comes_back_with_or_without_an_idp_session(stack: Stack) -> None:
    visitor = await stack.visitor()
    config = await visitor.call("config")
    assert config["body"]["is_silent_login_enabled"] is True
    page_url = f"{stack.base_url}/some-room-abc"
    await visitor.page.goto(page_url)
    await visitor.ready()
    await visitor.navigate("silentLogin")  # the provider has no session: login_required
    assert visitor.page.url == page_url
    await visitor.ready()
    assert (await visitor.call("whoAmI"))["loggedIn"] is False  # the next 401 = logged out
    stack.provider.logged_in_user = {"sub": "ada", "email": "ada@example.com"}
    await visitor.navigate("silentLogin")  # an IdP session: logged in without a form
    assert visitor.page.url == page_url
    await visitor.ready()
    me = await visitor.call("whoAmI")
    assert me["loggedIn"] is True and me["body"]["email"] == "ada@example.com"


async def test_create_a_room_and_a_guest_joins(stack: Stack) -> None:
    owner = await stack.visitor()
    await log_in(stack, owner, "ada", "Ada", "Lovelace")
    slug = new_slug()
    created = await owner.call("createRoom", slug, "Ada")
    assert created["status"] == 201, created
    room = created["body"]
    assert room["slug"] == slug and room["livekit"]["room"] == room["id"]
    assert token_claims(stack, room["livekit"]["token"]).name == "Ada"
    patched = await owner.call("patchRoom", slug, {"access_level": "public"})
    assert patched["status"] == 200, patched

    guest = await stack.visitor()
    joined = await guest.call("join", slug, "Grace")
    assert joined["status"] == 200 and joined["decision"] == "enter", joined
    claims = token_claims(stack, joined["body"]["livekit"]["token"])
    assert claims.name == "Grace" and claims.video.room == room["id"]
    unknown = await guest.call("join", new_slug(), "Grace")
    assert unknown["status"] == 200 and unknown["decision"] == "enter"  # unregistered room
    refused = await guest.call("createRoom", new_slug(), "Grace")
    assert refused["status"] == 401  # creating needs a login


async def test_lobby_wait_admit_and_deny(stack: Stack) -> None:
    owner = await stack.visitor()
    await log_in(stack, owner, "ada", "Ada", "Lovelace")
    slug = new_slug()
    room = (await owner.call("createRoom", slug, "Ada"))["body"]
    patched = await owner.call("patchRoom", slug, {"access_level": "restricted"})
    assert patched["status"] == 200, patched

    grace = await stack.visitor()
    joined = await grace.call("join", slug, "Grace")
    assert joined["status"] == 200 and joined["decision"] == "lobby", joined
    await grace.call("startLobby", slug, "Grace")
    # Polled every second, with the lobbyParticipantId cookie: one waiting entry, one id.
    state = await wait_for(lambda s: len(s["polls"]) >= 3, grace, "lobbyState", seconds=15)
    assert {(p["status"], p["entry"]) for p in state["polls"]} == {(200, "waiting")}
    assert len({p["id"] for p in state["polls"]}) == 1, state
    grace_id = state["polls"][0]["id"]
    waiting = await owner.call("waitingParticipants", room["id"])
    assert waiting["status"] == 200
    assert [(p["id"], p["username"]) for p in waiting["body"]["participants"]] == [
        (grace_id, "Grace")
    ]
    assert (await owner.call("enter", room["id"], grace_id, True))["status"] == 200
    admitted = await wait_for(lambda s: s["result"] is not None, grace, "lobbyState")
    assert admitted["result"]["status"] == "accepted"
    claims = token_claims(stack, admitted["result"]["livekit"]["token"])
    assert claims.identity == grace_id and claims.video.room == room["id"]

    linus = await stack.visitor()
    await linus.call("startLobby", slug, "Linus")
    waiting = await wait_for(
        lambda w: len(w["body"]["participants"]) == 1, owner, "waitingParticipants", room["id"]
    )
    linus_id = waiting["body"]["participants"][0]["id"]
    assert waiting["body"]["participants"][0]["username"] == "Linus"
    assert (await owner.call("enter", room["id"], linus_id, False))["status"] == 200
    denied = await wait_for(lambda s: s["result"] is not None, linus, "lobbyState")
    assert denied["result"]["status"] == "denied" and denied["result"]["livekit"] is None
    left = await owner.call("waitingParticipants", room["id"])
    assert left["body"]["participants"] == []


async def test_language_change_is_echoed(stack: Stack) -> None:
    visitor = await stack.visitor(timezone_id="Europe/Paris", locale="fr-FR")
    me = await log_in(stack, visitor, "ada", "Ada", "Lovelace")
    synced = await visitor.call("syncPreferences", me["id"], "fr-fr")
    assert synced["status"] == 200 and synced["echoed"], synced  # else the app PUTs again
    assert synced["sent"]["timezone"] == "Europe/Paris"
    again = await visitor.call("whoAmI")
    assert (again["body"]["language"], again["body"]["timezone"]) == ("fr-fr", "Europe/Paris")
    other = await visitor.call("syncPreferences", str(uuid.uuid4()), "de-de")
    assert other["status"] in (403, 404)  # never someone else's preferences


async def test_logout_comes_back_logged_out(stack: Stack) -> None:
    visitor = await stack.visitor()
    await log_in(stack, visitor, "ada", "Ada", "Lovelace")
    await visitor.navigate("logout")
    assert visitor.page.url == f"{stack.base_url}/"
    assert visitor.seen("/api/v1.0/logout") == [301]
    assert stack.provider.logged_in_user is None  # the provider's session ended too
    await visitor.ready()
    me = await visitor.call("whoAmI")
    assert me["loggedIn"] is False, me
