"""Inbound calls: a simulated phone calls a trunk number, and LiveKit's rules route the call.

:func:`route_inbound_call` decides, as LiveKit's SIP service does, what becomes of a call from
``caller`` to ``number``: the inbound trunk it arrives on (:func:`match_inbound_trunk`), the
dispatch rule that takes it (:func:`match_dispatch_rule`), and from that rule the room and the
SIP participant (:func:`evaluate_dispatch_rule`), all in an :class:`InboundRoute`; a call no
rule takes is an :class:`InboundCallError`. :class:`InboundCall` is the call in the room: a
:class:`~flowkit.testing.livekit_server.sip.call.SimulatedCall` that joins answered.

LiveKit's rules, restated (livekit/protocol ``sip/sip.go``):

- **Trunk**: an inbound trunk whose ``allowed_numbers`` is set and lacks the caller is
  skipped. A trunk listing the called number in ``numbers`` matches it specifically; a
  trunk without ``numbers`` is a default trunk, used only when no specific one matched.
  Two specific matches, or two default ones, are an error. No trunk at all is allowed:
  then only the dispatch rules without ``trunk_ids`` can take the call. A trunk whose
  ``allowed_addresses`` is set is skipped unless one entry is the call's host or matches
  its source address (an IP, or a CIDR prefix); entries LiveKit takes as malformed (with
  a space, a comma, ``://``...) are left out, and a call without a source address
  (``call_in``'s default) passes every trunk, as in LiveKit.
- **Dispatch rule**: a rule is skipped when its ``inbound_numbers`` is set and lacks the
  caller, or its ``numbers`` is set and lacks the called number (compared as written). With
  a PIN sent, only the rules with that PIN are left; without, a PIN rule still matches, and
  the call then needs its PIN (LiveKit asks the caller for it by DTMF; here the call is
  refused, saying to pass ``pin=``). A rule listing the trunk in ``trunk_ids`` (specific)
  beats the rules without ``trunk_ids`` (default); among rules of one kind the highest
  priority wins (:func:`dispatch_rule_priority`), and for equal priorities the lowest room
  name or prefix.
- **Evaluation**: direct: the rule's ``room_name``; individual: the caller's number (after
  ``room_prefix`` and ``_``), then ``_`` and a random suffix unless ``no_randomness``;
  callee: the called number, likewise, with the suffix only if ``randomize``. The
  participant is ``sip_<caller>``, named ``Phone <caller>``; with ``hide_phone_number``,
  ``sip_`` and 16 hex digits of the number's SHA-256, named by its last 4 digits, and
  without the number attributes. Its metadata is the rule's, its attributes the rule's and
  ``sip.callID``, ``sip.trunkID``, ``sip.phoneNumber``, ``sip.hostname``,
  ``sip.trunkPhoneNumber``, ``sip.ruleID`` (empty values left out). The room is created
  with the rule's ``room_config`` (its ``agents`` are the room's dispatches), or joined as
  it is.

Where this double differs: the participant joins already ``active`` (in LiveKit it may show
``ringing`` first, while the SIP service answers); the rule's ``room_preset``, media and
Krisp settings, and the trunk's headers and ringing timeout, are ignored; the trunk's
``max_call_duration`` is kept.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import secrets
import string
import time
from collections.abc import Iterable
from dataclasses import dataclass

from livekit.protocol import room as room_pb
from livekit.protocol import sip as sip_pb

from flowkit.testing.livekit_server.rooms import Room
from flowkit.testing.livekit_server.sip.call import DialPlan, SimulatedCall
from flowkit.testing.livekit_server.sip.codes import (
    ATTR_CALL_ID,
    ATTR_HOSTNAME,
    ATTR_PHONE_NUMBER,
    ATTR_RULE_ID,
    ATTR_TRUNK_ID,
    ATTR_TRUNK_NUMBER,
    CallStatus,
)
from flowkit.testing.livekit_server.sip.phones import PhoneCall, SimulatedPhone
from flowkit.testing.livekit_server.sip.provisioning import (
    SIPProvisioning,
    number_in,
    rule_pin,
    rule_room,
)

__all__ = [
    "InboundCall",
    "InboundCallError",
    "InboundRoute",
    "dispatch_rule_priority",
    "evaluate_dispatch_rule",
    "match_dispatch_rule",
    "match_inbound_trunk",
    "route_inbound_call",
]

log = logging.getLogger("flowkit.testing.sip")

_KIND_RANK = {"dispatch_rule_direct": 0, "dispatch_rule_individual": 1, "dispatch_rule_callee": 2}
_LAST = 2**31 - 1  # a rule without a rule kind: never preferred
_SUFFIX = string.ascii_letters + string.digits


class InboundCallError(Exception):
    """An inbound call LiveKit would not take: no trunk or rule for it, or a conflict."""


@dataclass(frozen=True)
class InboundRoute:
    """Where an inbound call goes: its trunk and rule, its room, and its SIP participant.

    Attributes:
        caller: The number calling.
        number: The number called (a number of the trunk).
        trunk: The inbound trunk it arrived on, None when no trunk matched.
        rule: The dispatch rule that took it.
        room_name: The room it goes to.
        room_config: The rule's room configuration (its ``agents``: the room's dispatches),
            applied if the call creates the room.
        participant: The SIP participant: identity, name, metadata, attributes (without
            ``sip.callStatus``, which the call sets), the call's id, the caller's number.
    """

    caller: str
    number: str
    trunk: sip_pb.SIPInboundTrunkInfo | None
    rule: sip_pb.SIPDispatchRuleInfo
    room_name: str
    room_config: room_pb.RoomConfiguration
    participant: DialPlan


def address_allowed(source_ip: str, host: str, allowed: Iterable[str]) -> bool:
    """Whether a trunk's ``allowed_addresses`` take a call from ``source_ip`` (or ``host``).

    Args:
        source_ip: The address the call comes from; not an IP (e.g. ""): every trunk takes it.
        host: The host of the caller's SIP address; an entry equal to it matches too.
        allowed: The trunk's ``allowed_addresses``: IPs, CIDR prefixes, host names.

    Returns:
        True when the list (malformed entries left out) is empty, or an entry matches.
    """
    try:
        address = ipaddress.ip_address(source_ip)
    except ValueError:
        return True
    masks = [mask for mask in allowed if _well_formed_mask(mask)]
    if not masks:
        return True
    return any(mask == host or _in_mask(address, mask) for mask in masks)


def _well_formed_mask(mask: str) -> bool:
    # LiveKit drops such entries rather than refusing the trunk.
    return not any(char in mask for char in "()+*;, \t\n\r") and "://" not in mask


def _in_mask(address: ipaddress.IPv4Address | ipaddress.IPv6Address, mask: str) -> bool:
    try:
        if "/" not in mask:
            return address == ipaddress.ip_address(mask)
        # Host bits may be set ("10.1.2.3/8"), as LiveKit's prefix parser accepts.
        return address in ipaddress.ip_network(mask, strict=False)
    except ValueError:
        return False  # a host name, or not an address at all


def match_inbound_trunk(
    trunks: Iterable[sip_pb.SIPInboundTrunkInfo],
    caller: str,
    number: str,
    *,
    source_ip: str = "",
    host: str = "",
) -> sip_pb.SIPInboundTrunkInfo | None:
    """The inbound trunk a call from ``caller`` to ``number`` arrives on; None for none.

    Args:
        trunks: The inbound trunks, in creation order.
        caller: The number calling.
        number: The number called.
        source_ip: The address the call comes from ("" for none: no trunk refuses it).
        host: The host of the caller's SIP address.

    Raises:
        InboundCallError: Two trunks list ``number`` for this caller, or no trunk lists it
            and two default trunks (without numbers) take this caller.
    """
    specific: sip_pb.SIPInboundTrunkInfo | None = None
    defaults: list[sip_pb.SIPInboundTrunkInfo] = []
    for trunk in trunks:
        if trunk.allowed_numbers and not number_in(caller, trunk.allowed_numbers):
            continue
        if not address_allowed(source_ip, host, trunk.allowed_addresses):
            continue
        if not trunk.numbers:
            defaults.append(trunk)
        elif number_in(number, trunk.numbers):
            if specific is not None:
                raise InboundCallError(
                    f"Multiple SIP Trunks matched for {number!r}: {specific.sip_trunk_id} and "
                    f"{trunk.sip_trunk_id} both take calls to it from {caller!r}; set "
                    "allowed_numbers on them to tell their callers apart, or delete one "
                    "(DeleteSIPTrunk)"
                )
            specific = trunk
    if specific is not None:
        return specific
    if len(defaults) > 1:
        ids = " and ".join(trunk.sip_trunk_id for trunk in defaults[:2])
        raise InboundCallError(
            f"Multiple default SIP Trunks matched for {number!r}: {ids} list no numbers and "
            f"both take calls from {caller!r}; give one of them numbers, or delete one "
            "(DeleteSIPTrunk)"
        )
    return defaults[0] if defaults else None


def dispatch_rule_priority(rule: sip_pb.SIPDispatchRuleInfo) -> int:
    """A dispatch rule's priority among the rules a call matches: the lower, the better.

    PIN rules come before open ones (0 to 2, then 100 to 102), and within each direct before
    individual before callee; a rule without ``inbound_numbers`` gets 1000 more, and one
    without ``numbers`` 1000 more again, so that rules naming the numbers win.
    """
    kind = rule.rule.WhichOneof("rule")
    if kind is None:
        return _LAST
    priority = _KIND_RANK[kind] + (0 if rule_pin(rule) else 100)
    if not rule.inbound_numbers:
        priority += 1000
    if not rule.numbers:
        priority += 1000
    return priority


def _better(rule: sip_pb.SIPDispatchRuleInfo, best: sip_pb.SIPDispatchRuleInfo | None) -> bool:
    if best is None:
        return True
    return (dispatch_rule_priority(rule), rule_room(rule)) < (
        dispatch_rule_priority(best), rule_room(best)
    )


def match_dispatch_rule(
    trunk: sip_pb.SIPInboundTrunkInfo | None,
    rules: Iterable[sip_pb.SIPDispatchRuleInfo],
    caller: str,
    number: str,
    pin: str | None = None,
) -> sip_pb.SIPDispatchRuleInfo:
    """The dispatch rule that takes a call from ``caller`` to ``number`` on ``trunk``.

    Raises:
        InboundCallError: No rule takes the call.
    """
    specific: sip_pb.SIPDispatchRuleInfo | None = None
    default: sip_pb.SIPDispatchRuleInfo | None = None
    for rule in rules:
        if rule.inbound_numbers and caller not in rule.inbound_numbers:
            continue
        if rule.numbers and number not in rule.numbers:
            continue
        if rule.rule.WhichOneof("rule") is None:
            continue  # LiveKit logs such a rule as invalid and goes on
        if pin and rule_pin(rule) != pin:
            continue  # with a PIN sent, the open rules and the other PINs are left out
        if not rule.trunk_ids:
            default = rule if _better(rule, default) else default
        elif trunk is not None and trunk.sip_trunk_id in rule.trunk_ids:
            specific = rule if _better(rule, specific) else specific
        # A rule for other trunks, or for a trunk when the call matched none, is left out.
    chosen = specific or default
    if chosen is None:
        raise InboundCallError(_no_rule(trunk, caller, number, pin))
    return chosen


def _no_rule(
    trunk: sip_pb.SIPInboundTrunkInfo | None, caller: str, number: str, pin: str | None
) -> str:
    with_pin = f" with the PIN {pin!r}" if pin else ""
    if trunk is None:
        return (
            f"No SIP Trunk or Dispatch Rules matched for {number!r}: create an inbound trunk "
            f"for {number} and a dispatch rule{with_pin} (lkapi.sip.create_inbound_trunk, "
            f"create_dispatch_rule), or a dispatch rule without trunk_ids; a rule's "
            f"inbound_numbers, if set, must list {caller!r}, and its numbers {number!r}"
        )
    return (
        f"No SIP Dispatch Rules matched for {number!r} (trunk {trunk.sip_trunk_id}): create "
        f"a dispatch rule{with_pin} for trunk_ids=[{trunk.sip_trunk_id!r}], or without "
        f"trunk_ids (lkapi.sip.create_dispatch_rule); its inbound_numbers, if set, must list "
        f"{caller!r}, and its numbers {number!r}"
    )


def _random_suffix() -> str:
    return "".join(secrets.choice(_SUFFIX) for _ in range(12))


def _room_name(rule: sip_pb.SIPDispatchRuleInfo, caller: str, number: str) -> str:
    kind = rule.rule.WhichOneof("rule")
    if kind == "dispatch_rule_individual":
        individual = rule.rule.dispatch_rule_individual
        name = f"{individual.room_prefix}_{caller}" if individual.room_prefix else caller
        return name if individual.no_randomness else f"{name}_{_random_suffix()}"
    if kind == "dispatch_rule_callee":
        callee = rule.rule.dispatch_rule_callee
        name = f"{callee.room_prefix}_{number}" if callee.room_prefix else number
        return f"{name}_{_random_suffix()}" if callee.randomize else name
    return rule.rule.dispatch_rule_direct.room_name


def evaluate_dispatch_rule(
    trunk: sip_pb.SIPInboundTrunkInfo | None,
    rule: sip_pb.SIPDispatchRuleInfo,
    *,
    caller: str,
    number: str,
    host: str,
    call_id: str,
    pin: str | None = None,
) -> InboundRoute:
    """The room and SIP participant ``rule`` gives a call (see the module's docs).

    Raises:
        InboundCallError: The rule asks for a PIN and none was sent, or another one.
    """
    needed = rule_pin(rule)
    if needed and pin != needed:
        if pin:  # match_dispatch_rule leaves such a rule out: only a direct call gets here
            raise InboundCallError(
                f"incorrect PIN for dispatch rule {rule.sip_dispatch_rule_id}: {pin!r}"
            )
        raise InboundCallError(
            f"dispatch rule {rule.sip_dispatch_rule_id} asks callers for a PIN, which LiveKit "
            "prompts for by DTMF: pass the rule's PIN to call_in(..., pin=...)"
        )
    attributes = dict(rule.attributes)
    attributes[ATTR_CALL_ID] = call_id
    attributes[ATTR_TRUNK_ID] = trunk.sip_trunk_id if trunk is not None else ""
    if rule.hide_phone_number:
        identity = "sip_" + hashlib.sha256(caller.encode()).hexdigest()[:16]
        name = "Phone " + (caller[-4:] if len(caller) > 4 else caller[-1:])
    else:
        identity, name = f"sip_{caller}", f"Phone {caller}"
        attributes[ATTR_PHONE_NUMBER] = caller
        attributes[ATTR_HOSTNAME] = host
        attributes[ATTR_TRUNK_NUMBER] = number
    attributes[ATTR_RULE_ID] = rule.sip_dispatch_rule_id
    longest = None
    if trunk is not None and trunk.HasField("max_call_duration"):
        duration = trunk.max_call_duration
        longest = (duration.seconds + duration.nanos / 1e9) or None
    participant = DialPlan(
        address=caller,
        call_id=call_id,
        identity=identity,
        name=name,
        metadata=rule.metadata,
        # An empty value would mean "delete" to the SDK: left out, as for dialled calls.
        attributes={key: value for key, value in attributes.items() if value},
        caller=caller,
        ringing_timeout=0.0,
        max_call_duration=longest,
        dtmf="",
        play_dialtone=False,
        headers={},
    )
    return InboundRoute(
        caller=caller, number=number, trunk=trunk, rule=rule,
        room_name=_room_name(rule, caller, number), room_config=rule.room_config,
        participant=participant,
    )


def route_inbound_call(
    provisioning: SIPProvisioning,
    *,
    caller: str,
    number: str,
    host: str,
    call_id: str,
    pin: str | None = None,
    source_ip: str = "",
) -> InboundRoute:
    """Where the trunks and dispatch rules of ``provisioning`` send a call to ``number``.

    Raises:
        InboundCallError: No trunk or rule takes the call, trunks conflict, or a PIN is needed.
    """
    trunk = match_inbound_trunk(
        provisioning.inbound_trunks.values(), caller, number, source_ip=source_ip, host=host
    )
    rule = match_dispatch_rule(trunk, provisioning.dispatch_rules.values(), caller, number, pin)
    return evaluate_dispatch_rule(
        trunk, rule, caller=caller, number=number, host=host, call_id=call_id, pin=pin
    )


class InboundCall(SimulatedCall):
    """A call from a simulated phone to a trunk number: its SIP participant in the room.

    It joins answered (``sip.callStatus`` ``active``), takes the tracks already published, and
    records what the room sends on :attr:`record` (on the phone's ``calls`` too, when a phone
    has the caller's number). It ends when the caller hangs up (``hang_up_after``, or
    :meth:`hang_up`): ``hangup``, then the participant leaves (``CLIENT_INITIATED``), as an
    answered dialled call does; when the trunk's ``max_call_duration`` runs out, alike; or
    when the room ends it (``DeleteRoom``, ``RemoveParticipant``).

    Args:
        room: The room it goes to.
        route: Its route (the participant to be, the trunk, the rule).
        phone: The caller's simulated phone, None when no phone has the number.
        hang_up_after: Seconds after joining when the caller hangs up; None: never by itself.

    Attributes:
        route: How the call was routed: :attr:`InboundRoute.trunk`, :attr:`InboundRoute.rule`.
        caller: The number calling.
        number: The number called.
        record: The call's record (always set): ``inbound``, ``caller``, ``called``, the
            tracks and data the room sent, how it ended.
    """

    _JOINS_AS = CallStatus.ACTIVE

    def __init__(
        self,
        room: Room,
        route: InboundRoute,
        phone: SimulatedPhone | None,
        *,
        hang_up_after: float | None = None,
    ) -> None:
        self.route = route
        self.caller = route.caller
        self.number = route.number
        self._hangs_up_after = hang_up_after
        super().__init__(room, route.participant, phone)
        if self.record is None:  # no phone has the number: the call is recorded all the same
            self.record = self._new_record(route.participant)

    def _new_record(self, dial: DialPlan) -> PhoneCall:
        return PhoneCall(
            call_id=dial.call_id, room=self.room.name, identity=dial.identity,
            caller=self.caller, inbound=True, called=self.number, answered_at=time.time(),
        )

    def start(self) -> None:
        """Join the room (``active``), take the tracks already there, and talk in the background."""
        super().start()
        self._subscribe_published()
        self._settled.set()

    async def _play(self) -> None:
        await self._talk()  # answered already: nothing rings

    def _hang_up_after(self) -> float | None:
        return self._hangs_up_after
