"""``livekit.SIP`` on the test server's Twirp API: calls, transfers, trunks and dispatch rules.

:class:`SIPService` validates the requests as LiveKit does and plays them on the
:class:`~flowkit.testing.livekit_server.sip.network.SimulatedSIP`: CreateSIPParticipant
(through the stored outbound trunk ``sip_trunk_id`` names, refused ``not_found`` when there is
none, or an inline ``trunk``: see :mod:`~flowkit.testing.livekit_server.sip.outbound`) and
TransferSIPParticipant, turning failed calls and transfers into LiveKit's Twirp errors, and the
trunk and dispatch-rule methods over its
:class:`~flowkit.testing.livekit_server.sip.provisioning.SIPProvisioning`. :func:`mount` serves
it, attaches the server's rooms to the network (for inbound calls) and stores the network as
``app[SIP_KEY]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from aiohttp import web
from google.protobuf.duration_pb2 import Duration
from livekit.protocol import models
from livekit.protocol import sip as sip_pb

from flowkit.testing.livekit_server.rooms import new_sid
from flowkit.testing.livekit_server.sip.call import DialError, DialPlan, SimulatedCall
from flowkit.testing.livekit_server.sip.codes import (
    ATTR_CALL_ID,
    ATTR_HOSTNAME,
    ATTR_PHONE_NUMBER,
    ATTR_TRUNK_ID,
    ATTR_TRUNK_NUMBER,
    OK,
    CallStatus,
    SIPResponse,
    twirp_code_of_sip,
)
from flowkit.testing.livekit_server.sip.network import SimulatedSIP, TransferError
from flowkit.testing.livekit_server.sip.outbound import route_outbound_call
from flowkit.testing.livekit_server.sip.provisioning import ProvisioningError, dispatch_rule_of
from flowkit.testing.livekit_server.twirp import (
    ROOM_ADMIN,
    SIP_ADMIN,
    SIP_CALL,
    TWIRP_KEY,
    Grant,
    Run,
    TwirpAPI,
    TwirpError,
)

__all__ = [
    "SIP_KEY",
    "SIPService",
    "mount",
]

_TRANSFER_RINGING_TIMEOUT = 30.0  # LiveKit's server default for a transfer

_Reply = TypeVar("_Reply")


def _provisioned(change: Callable[[], _Reply]) -> _Reply:
    """``change()``'s result; a refused trunk or rule as the Twirp error LiveKit answers."""
    try:
        return change()
    except ProvisioningError as refused:
        raise TwirpError(refused.code, str(refused)) from None


def _check_host(host: str, field: str) -> None:
    """Refuse a host that is a SIP URI or carries a transport, as LiveKit does."""
    if "transport=" in host:
        raise TwirpError(
            "invalid_argument",
            f"{field} should not contain transport parameter ({host!r}): give the host alone "
            "and set trunk.transport",
        )
    if "@" in host or ";" in host or host.startswith(("sip:", "sips:")):
        raise TwirpError(
            "invalid_argument",
            f"{field} should be a hostname or IP, not SIP URI ({host!r}): e.g. "
            "'sip.example.com'",
        )


def _check_dial_request(request: sip_pb.CreateSIPParticipantRequest) -> None:
    """LiveKit's checks of a CreateSIPParticipant request, in its order: ``invalid_argument``."""
    if not request.sip_trunk_id and not request.HasField("trunk") and not request.sip_number:
        raise TwirpError(
            "invalid_argument",
            "missing sip trunk id and sip number: set sip_trunk_id (an outbound trunk's id, "
            "from CreateSIPOutboundTrunk), trunk (an inline SIPOutboundConfig) or sip_number",
        )
    if request.HasField("trunk"):
        if not request.trunk.hostname:
            raise TwirpError(
                "invalid_argument",
                "no outbound hostname specified: set trunk.hostname (e.g. 'sip.example.com')",
            )
        _check_host(request.trunk.hostname, "trunk hostname")
        _check_host(request.trunk.from_host, "from_host")
    if not request.sip_call_to:
        raise TwirpError(
            "invalid_argument",
            "missing sip callee number: set sip_call_to to the number to dial "
            "(e.g. '+15550100') or a SIP user",
        )
    if "@" in request.sip_call_to:
        raise TwirpError(
            "invalid_argument",
            f"sip_call_to should be a phone number or SIP user, not a full SIP URI "
            f"({request.sip_call_to!r}): set the host in the trunk",
        )
    if not request.room_name:
        raise TwirpError(
            "invalid_argument", "missing room name: set room_name to the room to call into"
        )


def _seconds(duration: Duration) -> float:
    return duration.seconds + duration.nanos / 1e9


def _transfer_uri(transfer_to: str) -> str:
    """``transfer_to`` if it is a SIP or TEL URI (in ``<>`` or not); ``invalid_argument`` if not."""
    if not transfer_to:
        raise TwirpError(
            "invalid_argument",
            "missing transfer to: set transfer_to to a SIP or TEL URI, e.g. 'tel:+15550100' "
            "or 'sip:+15550100@sip.example.com'",
        )
    inner = transfer_to.removeprefix("<").removesuffix(">")
    if not inner.startswith(("sip:", "sips:", "tel:")):
        raise TwirpError(
            "invalid_argument",
            f"transfer_to must be a SIP or TEL URI (sip:, sips: or tel:), not {transfer_to!r}: "
            f"e.g. 'tel:{inner}' or 'sip:{inner}@sip.example.com'",
        )
    return inner


class SIPService:
    """``livekit.SIP`` on the test server's Twirp API: calls over the phones, and provisioning.

    Args:
        twirp: The server's Twirp API (its rooms and lookups).
        sip: The simulated phones, and the trunks and dispatch rules.
    """

    def __init__(self, twirp: TwirpAPI, sip: SimulatedSIP) -> None:
        self.twirp = twirp
        self.sip = sip

    async def create_sip_participant(
        self, request: sip_pb.CreateSIPParticipantRequest
    ) -> sip_pb.SIPParticipantInfo:
        """Dial ``sip_call_to`` and put its SIP participant in the room (created if needed).

        The participant's identity defaults to ``sip_<sip_call_to>``, as in LiveKit
        (livekit/protocol ``rpc/sip.go``). With ``wait_until_answered`` the reply comes when
        the phone answers, or is the call's failure; without, it comes at once (``dialing``).
        A request refused (see :meth:`_dial`) creates nothing, the room included.
        """
        dial = self._dial(request)
        room = self.twirp.rooms.create(request.room_name)
        call = self.sip.dial(room, dial)
        if request.wait_until_answered:
            try:
                await call.wait_answered()
            except DialError as failure:
                raise _call_error(failure) from None
        return sip_pb.SIPParticipantInfo(
            participant_id=call.participant.sid,
            participant_identity=call.participant.identity,
            room_name=room.name,
            sip_call_id=call.call_id,
        )

    def _dial(self, request: sip_pb.CreateSIPParticipantRequest) -> DialPlan:
        """The call ``request`` places, as LiveKit's server checks and routes it.

        In LiveKit's order: the request's own checks (``invalid_argument``), then the stored
        outbound trunk ``sip_trunk_id`` names (``not_found`` for an unknown id), then the
        From number (``failed_precondition`` when there is none); see
        :mod:`~flowkit.testing.livekit_server.sip.outbound` for how they merge.
        """
        _check_dial_request(request)
        trunk = None
        if request.sip_trunk_id:
            trunk = _provisioned(lambda: self.sip.provisioning.outbound_trunk(request.sip_trunk_id))
        route = _provisioned(lambda: route_outbound_call(request, trunk))
        attributes = dict(request.participant_attributes)
        attributes[ATTR_CALL_ID] = call_id = new_sid("SCL")
        attributes[ATTR_TRUNK_ID] = route.trunk_id
        if not request.hide_phone_number:
            attributes[ATTR_PHONE_NUMBER] = request.sip_call_to
            attributes[ATTR_HOSTNAME] = route.host
            attributes[ATTR_TRUNK_NUMBER] = route.number
        ringing = _seconds(request.ringing_timeout) if request.HasField("ringing_timeout") else 0
        longest = (
            _seconds(request.max_call_duration) if request.HasField("max_call_duration") else 0
        )
        return DialPlan(
            address=request.sip_call_to,
            call_id=call_id,
            identity=request.participant_identity or f"sip_{request.sip_call_to}",
            name=request.participant_name,
            metadata=request.participant_metadata,
            # An empty value would mean "delete" to the SDK: left out (no trunk id, no host).
            attributes={key: value for key, value in attributes.items() if value},
            caller=route.number,
            ringing_timeout=ringing or self.sip.ringing_timeout,
            max_call_duration=longest or None,
            dtmf=request.dtmf,
            play_dialtone=request.play_dialtone or request.play_ringtone,
            headers=route.headers,
            host=route.host,
            headers_to_attributes=route.headers_to_attributes,
            include_headers=route.include_headers,
        )

    async def transfer_sip_participant(
        self, request: sip_pb.TransferSIPParticipantRequest
    ) -> sip_pb.TransferSIPParticipantResponse:
        """Hand a SIP participant's call to ``transfer_to``; it leaves the room once answered."""
        if not request.room_name:
            raise TwirpError("invalid_argument", "missing room name: set room_name")
        if not request.participant_identity:
            raise TwirpError(
                "invalid_argument",
                "missing participant identity: set participant_identity to the SIP participant "
                "to transfer",
            )
        transfer_to = _transfer_uri(request.transfer_to)
        room = self.twirp.require_room(request.room_name)
        participant = self.twirp.require_participant(room, request.participant_identity)
        if participant.kind != models.ParticipantInfo.Kind.SIP:
            kind = models.ParticipantInfo.Kind.Name(participant.kind)
            raise TwirpError(
                "invalid_argument",
                f"no SIP session associated with participant {participant.identity!r} (kind "
                f"{kind}): only SIP participants can be transferred (those CreateSIPParticipant "
                "makes, or clients whose token has kind 'sip')",
            )
        link = participant.link
        if isinstance(link, SimulatedCall) and link.status != CallStatus.ACTIVE:
            raise TwirpError(
                "failed_precondition",
                f"can't transfer non established call: {participant.identity!r} is "
                f"{link.status.value!r}; wait until it is 'active' (wait_until_answered=True)",
            )
        ringing = (
            _seconds(request.ringing_timeout) if request.HasField("ringing_timeout") else 0
        )
        try:
            transfer = await self.sip.transfer(
                room, participant, transfer_to,
                ringing_timeout=ringing or _TRANSFER_RINGING_TIMEOUT,
                play_dialtone=request.play_dialtone, headers=request.headers,
            )
        except TransferError as failure:
            raise _transfer_error(failure) from None
        return sip_pb.TransferSIPParticipantResponse(
            transfer_id=transfer.transfer_id,
            status=sip_pb.SIPTransferStatus.STS_TRANSFER_SUCCESSFUL,
            reason=sip_pb.SIPTransferReason.STR_COMPLETED,
            sip_status=sip_pb.SIPStatus(code=OK.code, status=OK.status),  # type: ignore[arg-type]
        )


    # Trunks and dispatch rules (SIP admin) -----------------------------------------------------

    async def create_sip_inbound_trunk(
        self, request: sip_pb.CreateSIPInboundTrunkRequest
    ) -> sip_pb.SIPInboundTrunkInfo:
        """Store an inbound trunk: the numbers callers dial, and whom it takes calls from."""
        if not request.HasField("trunk"):
            raise TwirpError(
                "invalid_argument",
                "missing trunk: set trunk to a SIPInboundTrunkInfo (numbers=['+15551234'], ...)",
            )
        return _provisioned(lambda: self.sip.provisioning.create_inbound_trunk(request.trunk))

    async def create_sip_outbound_trunk(
        self, request: sip_pb.CreateSIPOutboundTrunkRequest
    ) -> sip_pb.SIPOutboundTrunkInfo:
        """Store an outbound trunk: the provider's address and the numbers calls come from."""
        if not request.HasField("trunk"):
            raise TwirpError(
                "invalid_argument",
                "missing trunk: set trunk to a SIPOutboundTrunkInfo (address='sip.example.com', "
                "numbers=['+15550000000'], ...)",
            )
        return _provisioned(lambda: self.sip.provisioning.create_outbound_trunk(request.trunk))

    async def update_sip_inbound_trunk(
        self, request: sip_pb.UpdateSIPInboundTrunkRequest
    ) -> sip_pb.SIPInboundTrunkInfo:
        """Replace an inbound trunk (its id kept) or change some fields, as LiveKit does."""
        return _provisioned(lambda: self.sip.provisioning.update_inbound_trunk(request))

    async def update_sip_outbound_trunk(
        self, request: sip_pb.UpdateSIPOutboundTrunkRequest
    ) -> sip_pb.SIPOutboundTrunkInfo:
        """Replace an outbound trunk (its id kept) or change some fields, as LiveKit does."""
        return _provisioned(lambda: self.sip.provisioning.update_outbound_trunk(request))

    async def list_sip_inbound_trunk(
        self, request: sip_pb.ListSIPInboundTrunkRequest
    ) -> sip_pb.ListSIPInboundTrunkResponse:
        """The inbound trunks, filtered by ``trunk_ids`` and ``numbers`` if set (no paging)."""
        trunks = self.sip.provisioning.list_inbound_trunks(request.trunk_ids, request.numbers)
        return sip_pb.ListSIPInboundTrunkResponse(items=trunks)

    async def list_sip_outbound_trunk(
        self, request: sip_pb.ListSIPOutboundTrunkRequest
    ) -> sip_pb.ListSIPOutboundTrunkResponse:
        """The outbound trunks, filtered by ``trunk_ids`` and ``numbers`` if set (no paging)."""
        trunks = self.sip.provisioning.list_outbound_trunks(request.trunk_ids, request.numbers)
        return sip_pb.ListSIPOutboundTrunkResponse(items=trunks)

    async def delete_sip_trunk(self, request: sip_pb.DeleteSIPTrunkRequest) -> sip_pb.SIPTrunkInfo:
        """Forget an inbound or outbound trunk; ``not_found`` for an id there is not."""
        return _provisioned(lambda: self.sip.provisioning.delete_trunk(request.sip_trunk_id))

    async def create_sip_dispatch_rule(
        self, request: sip_pb.CreateSIPDispatchRuleRequest
    ) -> sip_pb.SIPDispatchRuleInfo:
        """Store a dispatch rule, given in ``dispatch_rule`` or in the deprecated fields."""
        rule = dispatch_rule_of(request)
        return _provisioned(lambda: self.sip.provisioning.create_dispatch_rule(rule))

    async def update_sip_dispatch_rule(
        self, request: sip_pb.UpdateSIPDispatchRuleRequest
    ) -> sip_pb.SIPDispatchRuleInfo:
        """Replace a dispatch rule (its id kept) or change some fields, as LiveKit does."""
        return _provisioned(lambda: self.sip.provisioning.update_dispatch_rule(request))

    async def list_sip_dispatch_rule(
        self, request: sip_pb.ListSIPDispatchRuleRequest
    ) -> sip_pb.ListSIPDispatchRuleResponse:
        """The dispatch rules, filtered by ``dispatch_rule_ids`` and ``trunk_ids`` if set."""
        rules = self.sip.provisioning.list_dispatch_rules(
            request.dispatch_rule_ids, request.trunk_ids
        )
        return sip_pb.ListSIPDispatchRuleResponse(items=rules)

    async def delete_sip_dispatch_rule(
        self, request: sip_pb.DeleteSIPDispatchRuleRequest
    ) -> sip_pb.SIPDispatchRuleInfo:
        """Forget a dispatch rule and return it; ``not_found`` for an id there is not."""
        return _provisioned(
            lambda: self.sip.provisioning.delete_dispatch_rule(request.sip_dispatch_rule_id)
        )


def _sip_meta(response: SIPResponse | None) -> dict[str, str]:
    """The error meta LiveKit sends for a SIP status (livekit/protocol SIPStatus.TwirpErrorMeta)."""
    if response is None:
        return {}
    return {"sip_status_code": str(response.code), "sip_status": response.status}


def _call_error(failure: DialError) -> TwirpError:
    if failure.response is not None:
        return TwirpError(
            twirp_code_of_sip(failure.response.code), str(failure), _sip_meta(failure.response)
        )
    # No SIP status (no answer, or the room ended the call): LiveKit's SIP service answers
    # psrpc Canceled, "sip request timed out" (pkg/sip/outbound.go), which carries no meta.
    return TwirpError("canceled", str(failure))


def _transfer_error(failure: TransferError) -> TwirpError:
    meta = _sip_meta(failure.response)
    meta["sip_transfer_reason"] = sip_pb.SIPTransferReason.Name(failure.reason)
    meta["sip_transfer_id"] = failure.transfer_id
    if failure.response is not None:
        code = twirp_code_of_sip(failure.response.code)
    elif failure.reason == sip_pb.SIPTransferReason.STR_RINGING_TIMEOUT:
        code = "deadline_exceeded"  # LiveKit's server gives up when the ringing timeout ends
    else:
        code = "aborted"
    return TwirpError(code, str(failure), meta)


SIP_KEY = web.AppKey("flowkit_simulated_sip", SimulatedSIP)
"""Where :func:`mount` puts the :class:`SimulatedSIP` in the application."""


def mount(app: web.Application, sip: SimulatedSIP) -> SIPService:
    """Serve ``livekit.SIP`` over ``sip``: calls, transfers, trunks and dispatch rules.

    The application must serve the Twirp API already (:func:`~.twirp.mount`); its rooms are
    attached to ``sip``, where inbound calls (:meth:`SimulatedSIP.call_in`) go.

    Returns:
        The service; ``sip`` is also stored as ``app[SIP_KEY]``.
    """
    twirp = app[TWIRP_KEY]
    service = SIPService(twirp, sip)
    app[SIP_KEY] = sip
    sip.attach(twirp.rooms)
    methods: dict[str, tuple[Run, tuple[Grant, ...]]] = {
        "CreateSIPParticipant": (service.create_sip_participant, (SIP_CALL,)),
        "TransferSIPParticipant": (service.transfer_sip_participant, (SIP_CALL, ROOM_ADMIN)),
        "CreateSIPInboundTrunk": (service.create_sip_inbound_trunk, (SIP_ADMIN,)),
        "UpdateSIPInboundTrunk": (service.update_sip_inbound_trunk, (SIP_ADMIN,)),
        "ListSIPInboundTrunk": (service.list_sip_inbound_trunk, (SIP_ADMIN,)),
        "CreateSIPOutboundTrunk": (service.create_sip_outbound_trunk, (SIP_ADMIN,)),
        "UpdateSIPOutboundTrunk": (service.update_sip_outbound_trunk, (SIP_ADMIN,)),
        "ListSIPOutboundTrunk": (service.list_sip_outbound_trunk, (SIP_ADMIN,)),
        "DeleteSIPTrunk": (service.delete_sip_trunk, (SIP_ADMIN,)),
        "CreateSIPDispatchRule": (service.create_sip_dispatch_rule, (SIP_ADMIN,)),
        "UpdateSIPDispatchRule": (service.update_sip_dispatch_rule, (SIP_ADMIN,)),
        "ListSIPDispatchRule": (service.list_sip_dispatch_rule, (SIP_ADMIN,)),
        "DeleteSIPDispatchRule": (service.delete_sip_dispatch_rule, (SIP_ADMIN,)),
    }
    for method, (run, grants) in methods.items():
        twirp.add_method("livekit.SIP", method, run, *grants)
    return service
