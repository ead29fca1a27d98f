"""SIP dispatch rules (``livekit.SIP`` Create/List/DeleteSIPDispatchRule), as livekit-server.

Semantics follow ``pkg/service/sip.go`` and ``livekit/protocol`` (``sip/sip.go``,
``livekit/sip.go``):

* every method needs the ``sip.admin`` grant, else ``unauthenticated`` "permissions denied";
* Create validates the rule (``invalid_argument`` "missing rule", "rule id must not be set",
  "unsupported SIP Dispatch Rule"), then checks conflicts against the stored rules: two rules
  with the same (trunk, inbound number, number, PIN) key conflict, an empty list standing for
  "any" — ``invalid_argument`` "Dispatch rule for the same trunk, inbound number, number, and PIN
  combination already exists in dispatch rule "<id>" "<name>"". The new rule gets an ``SDR_`` id;
* List returns every rule (sorted by id; ``page.after_id`` honoured), filtered by
  ``dispatch_rule_ids`` and ``trunk_ids`` (a rule without trunks matches any trunk);
* Delete needs an id (``invalid_argument`` "dispatch rule ID is required"); an unknown one is
  ``not_found`` "requested sip dispatch rule does not exist"; it answers the deleted rule.

Rules are global to the server (not tied to a room), as in LiveKit's store.
"""

from __future__ import annotations

import json
import re

from google.protobuf.timestamp_pb2 import Timestamp
from livekit.protocol import sip as sip_pb

from .ids import new_id
from .twirp import TwirpError

SIP_DISPATCH_RULE_PREFIX = "SDR_"
RULE_NOT_FOUND = "requested sip dispatch rule does not exist"
_NUMBER = re.compile(r"^\+?[\d\- ()]+$")


def _copy(info: sip_pb.SIPDispatchRuleInfo) -> sip_pb.SIPDispatchRuleInfo:
    out = sip_pb.SIPDispatchRuleInfo()
    out.CopyFrom(info)
    return out


def _normalize_number(number: str) -> str:
    """``livekit.NormalizeNumber``: strip formatting, add a leading ``+`` to numbers."""
    if not number:
        return ""
    if not _NUMBER.match(number):
        return number
    stripped = "".join(c for c in number if c not in " -()")
    return stripped if stripped.startswith("+") else "+" + stripped


def _pin(info: sip_pb.SIPDispatchRuleInfo) -> str:
    kind = info.rule.WhichOneof("rule")
    if kind == "dispatch_rule_direct":
        return str(info.rule.dispatch_rule_direct.pin)
    if kind == "dispatch_rule_individual":
        return str(info.rule.dispatch_rule_individual.pin)
    if kind == "dispatch_rule_callee":
        return str(info.rule.dispatch_rule_callee.pin)
    raise TwirpError("invalid_argument", "unsupported SIP Dispatch Rule: <nil>")


def _keys(info: sip_pb.SIPDispatchRuleInfo) -> set[tuple[str, str, str, str]]:
    pin = _pin(info)
    return {
        (pin, trunk, _normalize_number(inbound), _normalize_number(number))
        for trunk in (list(info.trunk_ids) or [""])
        for inbound in (list(info.inbound_numbers) or [""])
        for number in (list(info.numbers) or [""])
    }


def _from_legacy(req: sip_pb.CreateSIPDispatchRuleRequest) -> sip_pb.SIPDispatchRuleInfo:
    """``CreateSIPDispatchRuleRequest.DispatchRuleInfo``: the deprecated top-level fields."""
    info = sip_pb.SIPDispatchRuleInfo(
        trunk_ids=req.trunk_ids,
        inbound_numbers=req.inbound_numbers,
        hide_phone_number=req.hide_phone_number,
        name=req.name,
        metadata=req.metadata,
        room_preset=req.room_preset,
    )
    if req.HasField("rule"):
        info.rule.CopyFrom(req.rule)
    if req.HasField("room_config"):
        info.room_config.CopyFrom(req.room_config)
    info.attributes.update(req.attributes)
    return info


class SIPDispatchRules:
    """The SIP dispatch rule store and its Twirp semantics."""

    def __init__(self) -> None:
        self._rules: dict[str, sip_pb.SIPDispatchRuleInfo] = {}

    @property
    def rules(self) -> list[sip_pb.SIPDispatchRuleInfo]:
        """Copies of every stored rule, sorted by id."""
        return [_copy(self._rules[key]) for key in sorted(self._rules)]

    def create(self, req: sip_pb.CreateSIPDispatchRuleRequest) -> sip_pb.SIPDispatchRuleInfo:
        if req.HasField("dispatch_rule"):
            if req.dispatch_rule.sip_dispatch_rule_id:
                raise TwirpError("invalid_argument", "rule id must not be set")
            info = _copy(req.dispatch_rule)
        else:
            info = _from_legacy(req)
        if not info.HasField("rule"):
            raise TwirpError("invalid_argument", "missing rule")
        taken: dict[tuple[str, str, str, str], sip_pb.SIPDispatchRuleInfo] = {}
        for existing in self.rules:
            for key in _keys(existing):
                taken.setdefault(key, existing)
        for key in _keys(info):
            other = taken.get(key)
            if other is not None:
                raise TwirpError(
                    "invalid_argument",
                    "Dispatch rule for the same trunk, inbound number, number, and PIN "
                    "combination already exists in dispatch rule "
                    f"{json.dumps(other.sip_dispatch_rule_id)} "
                    f"{json.dumps(other.name or '<blank name>')}",
                )
        info.sip_dispatch_rule_id = new_id(SIP_DISPATCH_RULE_PREFIX)
        now = Timestamp()
        now.GetCurrentTime()
        info.created_at.CopyFrom(now)
        info.updated_at.CopyFrom(now)
        self._rules[info.sip_dispatch_rule_id] = info
        return _copy(info)

    def list(self, req: sip_pb.ListSIPDispatchRuleRequest) -> list[sip_pb.SIPDispatchRuleInfo]:
        items = self.rules
        if req.HasField("page") and req.page.after_id:
            items = [i for i in items if i.sip_dispatch_rule_id > req.page.after_id]
        if req.dispatch_rule_ids:
            wanted = list(req.dispatch_rule_ids)
            by_id = {i.sip_dispatch_rule_id: i for i in items}
            items = [by_id[rule_id] for rule_id in wanted if rule_id in by_id]
        if req.trunk_ids:
            trunks = set(req.trunk_ids)
            items = [i for i in items if not i.trunk_ids or trunks & set(i.trunk_ids)]
        return items

    def delete(self, req: sip_pb.DeleteSIPDispatchRuleRequest) -> sip_pb.SIPDispatchRuleInfo:
        if not req.sip_dispatch_rule_id:
            raise TwirpError("invalid_argument", "dispatch rule ID is required")
        info = self._rules.pop(req.sip_dispatch_rule_id, None)
        if info is None:
            raise TwirpError("not_found", RULE_NOT_FOUND)
        return _copy(info)
