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

:meth:`SIPProvisioning.add_outbound_trunk` stores an outbound trunk under an id of the test's
choosing (a trunk made elsewhere, whose id the code under test is configured with);
:meth:`SIPProvisioning.outbound_trunk` finds the trunk a call is dialled through, or refuses
an unknown id as LiveKit does (``not_found``, "requested sip trunk does not exist").

Updates (UpdateSIPInboundTrunk, UpdateSIPOutboundTrunk, UpdateSIPDispatchRule) either replace
a trunk or rule whole, keeping its id, or change the fields their ``update`` sets (see
:mod:`~flowkit.testing.livekit_server.sip.updates`). As in LiveKit, the request is checked
first, then the trunk or rule looked up (``not_found``), then the result must be one that
create would take, apart from the *other* trunks or rules. A refused update changes nothing.

Phone numbers are compared as LiveKit compares them: equal as written, or equal once
normalised (:func:`normalize_number`: ``(555) 010-0`` and ``+5550100`` are the same number).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TypeAlias, TypeVar

from livekit.protocol import sip as sip_pb

from flowkit.testing.livekit_server.rooms import new_sid
from flowkit.testing.livekit_server.sip.updates import (
    InvalidUpdateError,
    apply_lists,
    apply_map_diff,
    apply_media,
    apply_scalars,
    check_list_updates,
)

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

# The fields each kind of update changes, as LiveKit applies them (livekit/protocol sip.go).
_INBOUND_LISTS = ("numbers", "allowed_addresses", "allowed_numbers")
_INBOUND_SCALARS = ("auth_username", "auth_password", "auth_realm", "name", "metadata")
_OUTBOUND_LISTS = ("numbers",)
_OUTBOUND_SCALARS = (
    "address", "transport", "destination_country", "auth_username", "auth_password", "name",
    "metadata", "from_host",
)
_RULE_LISTS = ("trunk_ids",)
_RULE_SCALARS = ("name", "metadata")

_UpdateRequest: TypeAlias = (
    sip_pb.UpdateSIPInboundTrunkRequest
    | sip_pb.UpdateSIPOutboundTrunkRequest
    | sip_pb.UpdateSIPDispatchRuleRequest
)


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
        _check_inbound(trunk)
        self._check_against_other_trunks(trunk)
        stored = sip_pb.SIPInboundTrunkInfo()
        stored.CopyFrom(trunk)
        stored.sip_trunk_id = new_sid("ST")
        self.inbound_trunks[stored.sip_trunk_id] = stored
        return _copy(stored)

    def _check_against_other_trunks(self, trunk: sip_pb.SIPInboundTrunkInfo) -> None:
        """Refuse ``trunk`` if it takes the same calls as another stored inbound trunk."""
        for other in self.inbound_trunks.values():
            if other.sip_trunk_id != trunk.sip_trunk_id:  # an update's old form is no rival
                self._check_trunks_apart(trunk, other)

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
        if trunk.sip_trunk_id:  # an update: the trunk as it would be, against another one
            new = f"{_name('trunk', trunk.sip_trunk_id, trunk.name)}, as updated,"
        else:
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
        return self.add_outbound_trunk(trunk)

    def add_outbound_trunk(
        self, trunk: sip_pb.SIPOutboundTrunkInfo
    ) -> sip_pb.SIPOutboundTrunkInfo:
        """Store a copy of ``trunk`` under its own id (a new ``ST_...`` if it has none).

        CreateSIPOutboundTrunk always gives a new id. A trunk made elsewhere (LiveKit Cloud's
        console, ``lk sip outbound create``) has its id already, and the code under test
        reads it from its configuration: a test stores the trunk under that id with this,
        so that calls dialled through it (``sip_trunk_id``) find it.

        Returns:
            The trunk as stored.

        Raises:
            ProvisioningError: ``invalid_argument``: ``numbers`` or ``address`` is not set,
                or the address is a SIP URI; ``already_exists``: a trunk has the id.
        """
        _check_outbound(trunk)
        trunk_id = trunk.sip_trunk_id
        if trunk_id in self.outbound_trunks or trunk_id in self.inbound_trunks:
            raise ProvisioningError(
                "already_exists",
                f"a SIP trunk with the id {trunk_id!r} exists already: give the new one "
                f"another id, or delete {trunk_id} first (DeleteSIPTrunk)",
            )
        stored = _copy(trunk)
        stored.sip_trunk_id = trunk_id or new_sid("ST")
        self.outbound_trunks[stored.sip_trunk_id] = stored
        return _copy(stored)

    def outbound_trunk(self, trunk_id: str) -> sip_pb.SIPOutboundTrunkInfo:
        """A copy of the outbound trunk ``trunk_id``, which a call is dialled through.

        Raises:
            ProvisioningError: ``not_found``, LiveKit's "requested sip trunk does not exist",
                naming the outbound trunks there are and how to make one: no outbound trunk
                has the id (an inbound trunk's id included).
        """
        trunk = self.outbound_trunks.get(trunk_id)
        if trunk is not None:
            return _copy(trunk)
        known = ", ".join(self.outbound_trunks) or "none"
        inbound = " (an inbound trunk's, which only takes calls in)" if (
            trunk_id in self.inbound_trunks) else ""
        raise ProvisioningError(
            "not_found",
            f"requested sip trunk does not exist: no outbound trunk has the id {trunk_id!r}"
            f"{inbound} (the outbound trunks are: {known}); create one with "
            "CreateSIPOutboundTrunk (lkapi.sip.create_outbound_trunk) and dial through its "
            "id, or leave sip_trunk_id empty and set trunk to an inline "
            "SIPOutboundConfig(hostname=...) with a sip_number",
        )

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

    def update_inbound_trunk(
        self, request: sip_pb.UpdateSIPInboundTrunkRequest
    ) -> sip_pb.SIPInboundTrunkInfo:
        """Replace the inbound trunk ``sip_trunk_id`` whole (its id kept), or change some fields.

        Args:
            request: The trunk's id, and ``replace`` (a SIPInboundTrunkInfo) or ``update`` (a
                SIPInboundTrunkUpdate: list updates, and the fields to set).

        Returns:
            The trunk as it is now.

        Raises:
            ProvisioningError: ``invalid_argument``: no id or no action, a replacement with
                another id, an invalid list update, or a result that create would refuse (it
                takes no calls, or the same calls as another inbound trunk); ``not_found``: no
                inbound trunk has the id. Nothing changes then.
        """
        trunk = self._updated_inbound(request)
        self._check_against_other_trunks(trunk)
        self.inbound_trunks[trunk.sip_trunk_id] = trunk
        return _copy(trunk)

    def _updated_inbound(
        self, request: sip_pb.UpdateSIPInboundTrunkRequest
    ) -> sip_pb.SIPInboundTrunkInfo:
        """The trunk ``request`` makes, checked by itself; what is stored is left as it is."""
        if _action(request, "trunk", "sip_trunk_id", "SIPInboundTrunk") == "replace":
            trunk = _replacement(request.replace, request.sip_trunk_id, "sip_trunk_id")
            _check_inbound(trunk)
            self._inbound(request.sip_trunk_id)
            return trunk
        _check_lists(request.update, _INBOUND_LISTS)
        trunk = _copy(self._inbound(request.sip_trunk_id))
        _apply(trunk, request.update, _INBOUND_LISTS, _INBOUND_SCALARS)
        _check_inbound(trunk)
        return trunk

    def update_outbound_trunk(
        self, request: sip_pb.UpdateSIPOutboundTrunkRequest
    ) -> sip_pb.SIPOutboundTrunkInfo:
        """Replace the outbound trunk ``sip_trunk_id`` whole (its id kept), or change some fields.

        Args:
            request: The trunk's id, and ``replace`` (a SIPOutboundTrunkInfo) or ``update`` (a
                SIPOutboundTrunkUpdate: a list update of ``numbers``, and the fields to set).

        Returns:
            The trunk as it is now.

        Raises:
            ProvisioningError: ``invalid_argument``: no id or no action, a replacement with
                another id, an invalid list update, or a result that create would refuse (no
                numbers, no address, a SIP URI for an address); ``not_found``: no outbound
                trunk has the id. Nothing changes then.
        """
        if _action(request, "trunk", "sip_trunk_id", "SIPOutboundTrunk") == "replace":
            trunk = _replacement(request.replace, request.sip_trunk_id, "sip_trunk_id")
            _check_outbound(trunk)
            self._outbound(request.sip_trunk_id)
        else:
            _check_lists(request.update, _OUTBOUND_LISTS)
            trunk = _copy(self._outbound(request.sip_trunk_id))
            _apply(trunk, request.update, _OUTBOUND_LISTS, _OUTBOUND_SCALARS)
            _check_outbound(trunk)
        # As in LiveKit, outbound trunks may overlap: nothing to check against the others.
        self.outbound_trunks[trunk.sip_trunk_id] = trunk
        return _copy(trunk)

    def _inbound(self, trunk_id: str) -> sip_pb.SIPInboundTrunkInfo:
        hint = "UpdateSIPOutboundTrunk" if trunk_id in self.outbound_trunks else ""
        return _stored(self.inbound_trunks, trunk_id, "inbound trunk", "ListSIPInboundTrunk",
                       hint)

    def _outbound(self, trunk_id: str) -> sip_pb.SIPOutboundTrunkInfo:
        hint = "UpdateSIPInboundTrunk" if trunk_id in self.inbound_trunks else ""
        return _stored(self.outbound_trunks, trunk_id, "outbound trunk", "ListSIPOutboundTrunk",
                       hint)

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
        _check_rule(rule)
        self._check_against_other_rules(rule)
        stored = sip_pb.SIPDispatchRuleInfo()
        stored.CopyFrom(rule)
        stored.sip_dispatch_rule_id = new_sid("SDR")
        self.dispatch_rules[stored.sip_dispatch_rule_id] = stored
        return _copy(stored)

    def _check_against_other_rules(self, rule: sip_pb.SIPDispatchRuleInfo) -> None:
        """Refuse ``rule`` if it takes the same calls as another stored dispatch rule."""
        for other in self.dispatch_rules.values():
            if other.sip_dispatch_rule_id != rule.sip_dispatch_rule_id:  # its old form
                self._check_rules_apart(rule, other)

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
        updated = rule.sip_dispatch_rule_id  # set for an update: name the rule it would change
        subject = (
            f"{_name('rule', updated, rule.name)}, as updated, would take the same calls as "
            "another: " if updated else ""
        )
        raise ProvisioningError(
            "invalid_argument",
            f"{subject}a dispatch rule for the same trunk, calling number, called number and PIN "
            f"already exists: {_name('rule', other.sip_dispatch_rule_id, other.name)} takes "
            f"calls on {trunk} from {caller or 'any caller'} to {number or 'any number'}; "
            "set different trunk_ids, inbound_numbers, numbers or PIN, or delete it first "
            "(DeleteSIPDispatchRule)",
        )

    def update_dispatch_rule(
        self, request: sip_pb.UpdateSIPDispatchRuleRequest
    ) -> sip_pb.SIPDispatchRuleInfo:
        """Replace the dispatch rule ``sip_dispatch_rule_id`` whole (its id kept), or change some.

        Args:
            request: The rule's id, and ``replace`` (a SIPDispatchRuleInfo) or ``update`` (a
                SIPDispatchRuleUpdate: a list update of ``trunk_ids``, a new ``rule``, the
                ``name`` and ``metadata`` to set, an ``attributes`` diff).

        Returns:
            The rule as it is now.

        Raises:
            ProvisioningError: ``invalid_argument``: no id or no action, a replacement with
                another id, an invalid list update, or a result that create would refuse (no
                rule, a direct rule without a room, the same calls as another rule);
                ``not_found``: no dispatch rule has the id. Nothing changes then.
        """
        rule = self._updated_rule(request)
        self._check_against_other_rules(rule)
        self.dispatch_rules[rule.sip_dispatch_rule_id] = rule
        return _copy(rule)

    def _updated_rule(
        self, request: sip_pb.UpdateSIPDispatchRuleRequest
    ) -> sip_pb.SIPDispatchRuleInfo:
        """The rule ``request`` makes, checked by itself; what is stored is left as it is."""
        rule_id = request.sip_dispatch_rule_id
        if _action(request, "rule", "sip_dispatch_rule_id", "SIPDispatchRule") == "replace":
            rule = _replacement(request.replace, rule_id, "sip_dispatch_rule_id")
            _check_rule(rule)
            _stored(self.dispatch_rules, rule_id, "dispatch rule", "ListSIPDispatchRule")
            return rule
        update = request.update
        _check_lists(update, _RULE_LISTS)
        rule = _copy(_stored(self.dispatch_rules, rule_id, "dispatch rule", "ListSIPDispatchRule"))
        _apply(rule, update, _RULE_LISTS, _RULE_SCALARS)
        if update.HasField("rule"):
            rule.rule.CopyFrom(update.rule)  # the rule goes whole, as LiveKit replaces it
        apply_map_diff(rule.attributes, update.attributes)
        _check_rule(rule)
        return rule

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
        _stored(self.dispatch_rules, rule_id, "dispatch rule", "ListSIPDispatchRule")
        return self.dispatch_rules.pop(rule_id)

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


_Update = TypeVar(
    "_Update",
    sip_pb.SIPInboundTrunkUpdate, sip_pb.SIPOutboundTrunkUpdate, sip_pb.SIPDispatchRuleUpdate,
)


def _check_inbound(trunk: sip_pb.SIPInboundTrunkInfo) -> None:
    """Refuse an inbound trunk open to every call (LiveKit asks for a limit, for security)."""
    if not (trunk.numbers or trunk.allowed_addresses or trunk.auth_username
            or trunk.auth_password):
        raise ProvisioningError(
            "invalid_argument",
            "an inbound trunk must say which calls it takes, for security: set numbers "
            "(the numbers callers dial, e.g. ['+15551234']), allowed_addresses, or "
            "auth_username and auth_password",
        )


def _check_outbound(trunk: sip_pb.SIPOutboundTrunkInfo) -> None:
    """Refuse an outbound trunk without numbers or address, or whose address is a SIP URI."""
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


def _check_rule(rule: sip_pb.SIPDispatchRuleInfo) -> None:
    """Refuse a dispatch rule without a rule, or a direct rule without a room."""
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


def _action(request: _UpdateRequest, what: str, id_field: str, message: str) -> str:
    """The update's action (``replace`` or ``update``), once its id and action are there.

    Args:
        request: An Update... request.
        what: ``trunk`` or ``rule``, for the messages.
        id_field: The request's id field (``sip_trunk_id``, ``sip_dispatch_rule_id``).
        message: The messages' common name (``SIPInboundTrunk`` for ``...Info``/``...Update``).
    """
    if not getattr(request, id_field):
        raise ProvisioningError(
            "invalid_argument",
            f"{what} id must be set: set {id_field} to the id of the {what} to update",
        )
    action: str | None = request.WhichOneof("action")
    if action is None:
        raise ProvisioningError(
            "invalid_argument",
            f"missing or unsupported update action: set replace (a whole {message}Info) or "
            f"update (a {message}Update with the fields to change)",
        )
    return action


def _replacement(info: _Stored, ident: str, id_field: str) -> _Stored:
    """A copy of a replace action's ``info`` with the id ``ident`` it replaces."""
    given = getattr(info, id_field)
    if given and given != ident:
        raise ProvisioningError(
            "invalid_argument",
            f"the replacement's {id_field} must be empty or match the one updated: it is "
            f"{given!r}, the request's is {ident!r}; leave replace.{id_field} empty",
        )
    replaced = _copy(info)
    setattr(replaced, id_field, ident)
    return replaced


def _check_lists(update: _Update, fields: Iterable[str]) -> None:
    try:
        check_list_updates(update, fields)
    except InvalidUpdateError as refused:
        raise ProvisioningError("invalid_argument", str(refused)) from None


def _apply(info: _Stored, update: _Update, lists: Iterable[str], scalars: Iterable[str]) -> None:
    """Apply the list updates, scalar fields and media settings that ``update`` sets."""
    apply_lists(info, update, lists)
    apply_scalars(info, update, scalars)
    apply_media(info, update)


def _stored(
    items: dict[str, _Stored], ident: str, what: str, lister: str, elsewhere: str = ""
) -> _Stored:
    """``items[ident]`` (not a copy); ``not_found`` naming the ids there are if none.

    Args:
        items: The stored trunks or rules of one kind.
        ident: The id asked for.
        what: Their kind, for the message (``inbound trunk``).
        lister: The method that lists them (``ListSIPInboundTrunk``).
        elsewhere: The method to use instead, when the id is one of another kind.
    """
    found = items.get(ident)
    if found is not None:
        return found
    known = ", ".join(items) or "none"
    other = f"; {ident} is another kind of trunk: use {elsewhere}" if elsewhere else ""
    raise ProvisioningError(
        "not_found",
        f"requested SIP {what} does not exist: {ident!r} (the {what}s are: {known}; {lister} "
        f"lists them{other})",
    )


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
