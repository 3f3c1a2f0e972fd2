"""The SIP trunks and dispatch rules of one test server, kept as LiveKit's SIP service keeps them.

:class:`SIPProvisioning` holds the inbound trunks, outbound trunks and dispatch rules in
memory, gives them their ids (``ST_...``, ``SDR_...``) and refuses, with
:class:`ProvisioningError`, what LiveKit refuses when they are created:

- an inbound trunk with neither ``numbers``, ``allowed_addresses`` nor an
  ``auth_username``/``auth_password`` (LiveKit asks for one of them, for security), or one
  that would take the same calls as another: both list a common number (or neither lists
  any), for callers both accept (neither sets ``allowed_numbers``, or both list a common one);
- an outbound trunk without ``numbers`` or ``address``, or whose address is a SIP URI;
- a dispatch rule without a rule (``dispatch_rule_direct``, ``dispatch_rule_individual`` or
  ``dispatch_rule_callee``), or one that would take the same calls as another: the same PIN,
  and a common trunk, calling number and called number (an empty list standing for "any");
- an id set by the request (LiveKit assigns it).

Phone numbers are compared as LiveKit compares them: equal as written, or equal once
normalised (:func:`normalize_number`: ``(555) 010-0`` and ``+5550100`` are the same number).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TypeVar

from livekit.protocol import sip as sip_pb

from flowkit.testing.livekit_server.rooms import new_sid

__all__ = [
    "ProvisioningError",
    "SIPProvisioning",
    "dispatch_rule_of",
    "normalize_number",
    "number_in",
    "rule_pin",
    "rule_room",
]

_NUMBER = re.compile(r"\+?[\d\- ()]+")
_RULE_KINDS = ("dispatch_rule_direct", "dispatch_rule_individual", "dispatch_rule_callee")


def normalize_number(number: str) -> str:
    """A phone number as LiveKit compares it: digits (no spaces, ``-``, ``()``) after a ``+``.

    Anything that does not look like a phone number (a SIP user, ``alice``) is returned as it is.
    """
    if not _NUMBER.fullmatch(number):
        return number
    digits = re.sub(r"[\- ()]", "", number)
    return digits if digits.startswith("+") else "+" + digits


def number_in(number: str, numbers: Iterable[str]) -> bool:
    """Whether ``number`` is one of ``numbers``, as written or once normalised."""
    normal = normalize_number(number)
    return any(number == other or normal == normalize_number(other) for other in numbers)


def rule_pin(rule: sip_pb.SIPDispatchRuleInfo) -> str:
    """The PIN a dispatch rule asks callers for ("" for an open rule)."""
    kind = rule.rule.WhichOneof("rule")
    return str(getattr(rule.rule, kind).pin) if kind is not None else ""


def rule_room(rule: sip_pb.SIPDispatchRuleInfo) -> str:
    """A dispatch rule's room name (direct) or room prefix (individual, callee)."""
    kind = rule.rule.WhichOneof("rule")
    if kind is None:
        return ""
    if kind == "dispatch_rule_direct":
        return rule.rule.dispatch_rule_direct.room_name
    return str(getattr(rule.rule, kind).room_prefix)


class ProvisioningError(Exception):
    """A trunk or dispatch rule LiveKit would refuse, with the Twirp code it answers.

    Args:
        code: The Twirp error code (``invalid_argument``, ``not_found``).
        message: What was wrong, and what to do.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def dispatch_rule_of(request: sip_pb.CreateSIPDispatchRuleRequest) -> sip_pb.SIPDispatchRuleInfo:
    """The rule a CreateSIPDispatchRule request creates, in its new form or its deprecated one.

    New clients send it whole in ``dispatch_rule``; older ones in the request's own fields
    (``rule``, ``trunk_ids``, ``hide_phone_number``, ``inbound_numbers``, ``name``,
    ``metadata``, ``attributes``, ``room_preset``, ``room_config``). As in LiveKit, when
    ``dispatch_rule`` is set the other fields are ignored.
    """
    if request.HasField("dispatch_rule"):
        info = sip_pb.SIPDispatchRuleInfo()
        info.CopyFrom(request.dispatch_rule)
        return info
    info = sip_pb.SIPDispatchRuleInfo(
        trunk_ids=request.trunk_ids,
        hide_phone_number=request.hide_phone_number,
        inbound_numbers=request.inbound_numbers,
        name=request.name,
        metadata=request.metadata,
        attributes=request.attributes,
        room_preset=request.room_preset,
    )
    if request.HasField("rule"):
        info.rule.CopyFrom(request.rule)
    if request.HasField("room_config"):
        info.room_config.CopyFrom(request.room_config)
    return info


def _overlap(first: Iterable[str], second: Iterable[str]) -> str | None:
    """A value both lists take (normalised), "" when both are empty (any), None for none.

    An empty list takes anything, but LiveKit counts it as overlapping only another empty
    list: a trunk or rule that lists values is more specific, and wins over it.
    """
    mine = {normalize_number(value) for value in first}
    theirs = {normalize_number(value) for value in second}
    if not mine and not theirs:
        return ""
    common = sorted(mine & theirs)
    return common[0] if common else None


def _name(kind: str, ident: str, name: str) -> str:
    return f"{kind} {ident} ({name!r})" if name else f"{kind} {ident}"


class SIPProvisioning:
    """The inbound trunks, outbound trunks and dispatch rules of one test server.

    ``TestLiveKitServer.sip.provisioning`` is one; the Twirp methods (``CreateSIPInboundTrunk``,
    ``ListSIPDispatchRule``...) and inbound calls (:meth:`~.network.SimulatedSIP.call_in`) use
    it. Each mapping is keyed by id, in creation order.
    """

    def __init__(self) -> None:
        self.inbound_trunks: dict[str, sip_pb.SIPInboundTrunkInfo] = {}
        self.outbound_trunks: dict[str, sip_pb.SIPOutboundTrunkInfo] = {}
        self.dispatch_rules: dict[str, sip_pb.SIPDispatchRuleInfo] = {}

    # Trunks --------------------------------------------------------------------------------

    def create_inbound_trunk(self, trunk: sip_pb.SIPInboundTrunkInfo) -> sip_pb.SIPInboundTrunkInfo:
        """Store a copy of ``trunk`` with a new id (``ST_...``) and return it.

        Raises:
            ProvisioningError: ``invalid_argument``: the id is set; none of ``numbers``,
                ``allowed_addresses``, ``auth_username``/``auth_password`` is; another
                inbound trunk takes the same calls (see the module's docs).
        """
        if trunk.sip_trunk_id:
            raise _id_set("trunk", "sip_trunk_id", trunk.sip_trunk_id)
        if not (trunk.numbers or trunk.allowed_addresses or trunk.auth_username
                or trunk.auth_password):
            raise ProvisioningError(
                "invalid_argument",
                "an inbound trunk must say which calls it takes, for security: set numbers "
                "(the numbers callers dial, e.g. ['+15551234']), allowed_addresses, or "
                "auth_username and auth_password",
            )
        for other in self.inbound_trunks.values():
            self._check_trunks_apart(trunk, other)
        stored = sip_pb.SIPInboundTrunkInfo()
        stored.CopyFrom(trunk)
        stored.sip_trunk_id = new_sid("ST")
        self.inbound_trunks[stored.sip_trunk_id] = stored
        return _copy(stored)

    @staticmethod
    def _check_trunks_apart(
        trunk: sip_pb.SIPInboundTrunkInfo, other: sip_pb.SIPInboundTrunkInfo
    ) -> None:
        number = _overlap(trunk.numbers, other.numbers)
        caller = _overlap(trunk.allowed_numbers, other.allowed_numbers)
        if number is None or caller is None:
            return
        called = f"the number {number}" if number else "any number (neither sets numbers)"
        calling = (
            f"the caller {caller}" if caller else "any caller (neither sets allowed_numbers)"
        )
        new = f"the new trunk ({trunk.name!r})" if trunk.name else "the new trunk"
        raise ProvisioningError(
            "invalid_argument",
            f"conflicting inbound SIP trunks: {new} and "
            f"{_name('trunk', other.sip_trunk_id, other.name)} would both take calls to "
            f"{called} from {calling}; give the trunks different numbers, or different "
            f"allowed_numbers, or delete {other.sip_trunk_id} first (DeleteSIPTrunk)",
        )

    def create_outbound_trunk(
        self, trunk: sip_pb.SIPOutboundTrunkInfo
    ) -> sip_pb.SIPOutboundTrunkInfo:
        """Store a copy of ``trunk`` with a new id (``ST_...``) and return it.

        Raises:
            ProvisioningError: ``invalid_argument``: the id is set; ``numbers`` or
                ``address`` is not; the address is a SIP URI rather than a host.
        """
        if trunk.sip_trunk_id:
            raise _id_set("trunk", "sip_trunk_id", trunk.sip_trunk_id)
        if not trunk.numbers:
            raise ProvisioningError(
                "invalid_argument",
                "no trunk numbers specified: set numbers to the numbers calls come from, "
                "e.g. ['+15550000000']",
            )
        if not trunk.address:
            raise ProvisioningError(
                "invalid_argument",
                "no outbound address specified: set address to the SIP provider's host, "
                "e.g. 'sip.example.com'",
            )
        address = trunk.address
        if "@" in address or ";" in address or address.startswith(("sip:", "sips:")):
            raise ProvisioningError(
                "invalid_argument",
                f"the trunk address should be a host name or IP address, not a SIP URI: "
                f"{address!r} (e.g. 'sip.example.com'; the transport goes in transport)",
            )
        stored = sip_pb.SIPOutboundTrunkInfo()
        stored.CopyFrom(trunk)
        stored.sip_trunk_id = new_sid("ST")
        self.outbound_trunks[stored.sip_trunk_id] = stored
        return _copy(stored)

    def delete_trunk(self, trunk_id: str) -> sip_pb.SIPTrunkInfo:
        """Forget the inbound or outbound trunk ``trunk_id``; its id, as LiveKit answers.

        Raises:
            ProvisioningError: ``invalid_argument`` for no id, ``not_found`` for an unknown one.
        """
        if not trunk_id:
            raise ProvisioningError(
                "invalid_argument", "trunk ID is required: set sip_trunk_id to the trunk's id"
            )
        if self.inbound_trunks.pop(trunk_id, None) is None and (
            self.outbound_trunks.pop(trunk_id, None) is None
        ):
            known = ", ".join([*self.inbound_trunks, *self.outbound_trunks]) or "none"
            raise ProvisioningError(
                "not_found",
                f"requested SIP trunk does not exist: {trunk_id!r} (the trunks are: {known}; "
                "ListSIPInboundTrunk and ListSIPOutboundTrunk list them)",
            )
        return sip_pb.SIPTrunkInfo(sip_trunk_id=trunk_id)

    def list_inbound_trunks(
        self, trunk_ids: Iterable[str] = (), numbers: Iterable[str] = ()
    ) -> list[sip_pb.SIPInboundTrunkInfo]:
        """The inbound trunks, or those named in ``trunk_ids`` and taking one of ``numbers``.

        As in LiveKit, a trunk without numbers takes any number, so ``numbers`` keeps it.
        """
        return [
            _copy(trunk) for trunk in self.inbound_trunks.values()
            if _listed(trunk.sip_trunk_id, trunk_ids) and _takes(trunk.numbers, numbers)
        ]

    def list_outbound_trunks(
        self, trunk_ids: Iterable[str] = (), numbers: Iterable[str] = ()
    ) -> list[sip_pb.SIPOutboundTrunkInfo]:
        """The outbound trunks, or those named in ``trunk_ids`` and with one of ``numbers``."""
        return [
            _copy(trunk) for trunk in self.outbound_trunks.values()
            if _listed(trunk.sip_trunk_id, trunk_ids) and _takes(trunk.numbers, numbers)
        ]

    # Dispatch rules ------------------------------------------------------------------------

    def create_dispatch_rule(
        self, rule: sip_pb.SIPDispatchRuleInfo
    ) -> sip_pb.SIPDispatchRuleInfo:
        """Store a copy of ``rule`` with a new id (``SDR_...``) and return it.

        Raises:
            ProvisioningError: ``invalid_argument``: the id is set; there is no rule, or a
                direct rule without a room name; another rule takes the same calls.
        """
        if rule.sip_dispatch_rule_id:
            raise _id_set("dispatch rule", "sip_dispatch_rule_id", rule.sip_dispatch_rule_id)
        kind = rule.rule.WhichOneof("rule") if rule.HasField("rule") else None
        if kind is None:
            raise ProvisioningError(
                "invalid_argument",
                "missing rule: set the dispatch rule's rule to a SIPDispatchRule with one of "
                "dispatch_rule_direct (room_name=...), dispatch_rule_individual "
                "(room_prefix=...) or dispatch_rule_callee (room_prefix=...)",
            )
        if kind == "dispatch_rule_direct" and not rule.rule.dispatch_rule_direct.room_name:
            raise ProvisioningError(
                "invalid_argument",
                "a direct dispatch rule needs the room to send callers to: set "
                "dispatch_rule_direct.room_name",
            )
        for other in self.dispatch_rules.values():
            self._check_rules_apart(rule, other)
        stored = sip_pb.SIPDispatchRuleInfo()
        stored.CopyFrom(rule)
        stored.sip_dispatch_rule_id = new_sid("SDR")
        self.dispatch_rules[stored.sip_dispatch_rule_id] = stored
        return _copy(stored)

    @staticmethod
    def _check_rules_apart(
        rule: sip_pb.SIPDispatchRuleInfo, other: sip_pb.SIPDispatchRuleInfo
    ) -> None:
        if rule_pin(rule) != rule_pin(other):
            return
        mine, theirs = set(rule.trunk_ids) or {""}, set(other.trunk_ids) or {""}
        trunks = sorted(mine & theirs)
        caller = _overlap(rule.inbound_numbers, other.inbound_numbers)
        number = _overlap(rule.numbers, other.numbers)
        if not trunks or caller is None or number is None:
            return
        trunk = f"trunk {trunks[0]}" if trunks[0] else "any trunk (no trunk_ids)"
        raise ProvisioningError(
            "invalid_argument",
            f"a dispatch rule for the same trunk, calling number, called number and PIN "
            f"already exists: {_name('rule', other.sip_dispatch_rule_id, other.name)} takes "
            f"calls on {trunk} from {caller or 'any caller'} to {number or 'any number'}; "
            "set different trunk_ids, inbound_numbers, numbers or PIN, or delete it first "
            "(DeleteSIPDispatchRule)",
        )

    def delete_dispatch_rule(self, rule_id: str) -> sip_pb.SIPDispatchRuleInfo:
        """Forget the dispatch rule ``rule_id``; the rule it was.

        Raises:
            ProvisioningError: ``invalid_argument`` for no id, ``not_found`` for an unknown one.
        """
        if not rule_id:
            raise ProvisioningError(
                "invalid_argument",
                "dispatch rule ID is required: set sip_dispatch_rule_id to the rule's id",
            )
        rule = self.dispatch_rules.pop(rule_id, None)
        if rule is None:
            known = ", ".join(self.dispatch_rules) or "none"
            raise ProvisioningError(
                "not_found",
                f"requested SIP dispatch rule does not exist: {rule_id!r} (the rules are: "
                f"{known}; ListSIPDispatchRule lists them)",
            )
        return rule

    def list_dispatch_rules(
        self, rule_ids: Iterable[str] = (), trunk_ids: Iterable[str] = ()
    ) -> list[sip_pb.SIPDispatchRuleInfo]:
        """The dispatch rules, or those named in ``rule_ids`` and for one of ``trunk_ids``.

        As in LiveKit, a rule without trunk ids is for every trunk, so ``trunk_ids`` keeps it.
        """
        wanted = set(trunk_ids)
        return [
            _copy(rule) for rule in self.dispatch_rules.values()
            if _listed(rule.sip_dispatch_rule_id, rule_ids)
            and (not wanted or not rule.trunk_ids or bool(wanted & set(rule.trunk_ids)))
        ]


_Stored = TypeVar(
    "_Stored",
    sip_pb.SIPInboundTrunkInfo, sip_pb.SIPOutboundTrunkInfo, sip_pb.SIPDispatchRuleInfo,
)


def _copy(message: _Stored) -> _Stored:
    """A copy, so that what callers get cannot change what is stored."""
    copied = type(message)()
    copied.CopyFrom(message)
    return copied


def _listed(ident: str, ids: Iterable[str]) -> bool:
    wanted = list(ids)
    return not wanted or ident in wanted


def _takes(own: Iterable[str], numbers: Iterable[str]) -> bool:
    """Whether a trunk with numbers ``own`` is kept by a list filter on ``numbers``."""
    mine, wanted = list(own), list(numbers)
    return not mine or not wanted or any(number_in(number, wanted) for number in mine)


def _id_set(what: str, field: str, value: str) -> ProvisioningError:
    return ProvisioningError(
        "invalid_argument",
        f"{what} id must not be set ({field}={value!r}): the server assigns it; leave "
        f"{field} empty",
    )
