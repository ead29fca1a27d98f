"""SIPService dispatch rules, driven by the real livekit-api client (protobuf on the wire)."""

from __future__ import annotations

import aiohttp
import pytest
from livekit import api

from tests.livekit_standin import LiveKitStandin
from tests.livekit_standin.helpers import token


def direct(room: str, pin: str, name: str = "") -> api.CreateSIPDispatchRuleRequest:
    rule = api.SIPDispatchRule(
        dispatch_rule_direct=api.SIPDispatchRuleDirect(room_name=room, pin=pin)
    )
    return api.CreateSIPDispatchRuleRequest(
        dispatch_rule=api.SIPDispatchRuleInfo(rule=rule, name=name)
    )


async def test_create_list_delete(lk: api.LiveKitAPI, livekit_standin: LiveKitStandin) -> None:
    created = await lk.sip.create_dispatch_rule(direct("room-a", "1234567890", "SIP_a"))
    assert created.sip_dispatch_rule_id.startswith("SDR_") and created.name == "SIP_a"
    assert created.rule.dispatch_rule_direct.room_name == "room-a"
    second = await lk.sip.create_dispatch_rule(direct("room-b", "0987654321", "SIP_b"))
    listed = await lk.sip.list_dispatch_rule(api.ListSIPDispatchRuleRequest())
    ids = sorted([created.sip_dispatch_rule_id, second.sip_dispatch_rule_id])
    assert [r.sip_dispatch_rule_id for r in listed.items] == ids
    only = await lk.sip.list_dispatch_rule(
        api.ListSIPDispatchRuleRequest(dispatch_rule_ids=[second.sip_dispatch_rule_id])
    )
    assert [r.name for r in only.items] == ["SIP_b"]
    deleted = await lk.sip.delete_dispatch_rule(
        api.DeleteSIPDispatchRuleRequest(sip_dispatch_rule_id=created.sip_dispatch_rule_id)
    )
    assert deleted.name == "SIP_a"
    assert [r.name for r in livekit_standin.sip.rules] == ["SIP_b"]


async def test_errors_follow_the_go_server(lk: api.LiveKitAPI) -> None:
    await lk.sip.create_dispatch_rule(direct("room-a", "1234567890", "SIP_a"))
    # Same PIN on the default trunk: a conflict, answered invalid_argument (not already_exists).
    with pytest.raises(api.TwirpError) as err:
        await lk.sip.create_dispatch_rule(direct("room-b", "1234567890", "SIP_b"))
    assert (err.value.code, err.value.status) == ("invalid_argument", 400)
    assert "already exists in dispatch rule" in err.value.message
    with pytest.raises(api.TwirpError) as err:
        await lk.sip.create_dispatch_rule(api.CreateSIPDispatchRuleRequest(name="no rule"))
    assert (err.value.code, err.value.message) == ("invalid_argument", "missing rule")
    with pytest.raises(api.TwirpError) as err:
        await lk.sip.delete_dispatch_rule(
            api.DeleteSIPDispatchRuleRequest(sip_dispatch_rule_id="SDR_unknown")
        )
    assert (err.value.code, err.value.status) == ("not_found", 404)
    with pytest.raises(api.TwirpError) as err:
        await lk.sip.delete_dispatch_rule(api.DeleteSIPDispatchRuleRequest())
    assert err.value.code == "invalid_argument"


async def test_legacy_fields_are_accepted(lk: api.LiveKitAPI) -> None:
    rule = api.SIPDispatchRule(
        dispatch_rule_direct=api.SIPDispatchRuleDirect(room_name="legacy", pin="42")
    )
    created = await lk.sip.create_dispatch_rule(
        api.CreateSIPDispatchRuleRequest(rule=rule, name="SIP_legacy")
    )
    assert created.name == "SIP_legacy" and created.rule.dispatch_rule_direct.pin == "42"


async def test_sip_admin_grant_is_required(
    livekit_standin: LiveKitStandin, session: aiohttp.ClientSession
) -> None:
    room_admin = token(
        livekit_standin.api_key,
        livekit_standin.api_secret,
        api.VideoGrants(room_admin=True, room="r", room_create=True),
    )
    lk = api.LiveKitAPI(livekit_standin.url, token=room_admin, session=session)
    for call in (
        lambda: lk.sip.list_dispatch_rule(api.ListSIPDispatchRuleRequest()),
        lambda: lk.sip.create_dispatch_rule(direct("r", "1")),
        lambda: lk.sip.delete_dispatch_rule(
            api.DeleteSIPDispatchRuleRequest(sip_dispatch_rule_id="SDR_x")
        ),
    ):
        with pytest.raises(api.TwirpError) as err:
            await call()
        assert (err.value.code, err.value.status) == ("unauthenticated", 401)
    assert livekit_standin.sip.rules == []
