"""Simulated phones, and LiveKit's SIP service over them: calls out and in, transfers, trunks.

There is no phone network here: a test registers **simulated phones** on the server
(``server.sip.add_phone("+15550100", answer_after=0.2)``), each scripted to answer after some
ringing, to be busy (486 Busy Here), to decline (603 Decline), to fail with any other SIP
response, or never to answer; and, once answered, maybe to hang up by itself. A test also
makes a phone **call in** (``await server.sip.call_in("+15550100", "+15551234")``), to a
number of the inbound trunks created through the server API. The Twirp methods of
``livekit.SIP`` then behave as LiveKit's do, as far as a program calling them through
``livekit-api`` can tell:

- **CreateSIPParticipant** (SIP grant ``call``) places the call through the outbound trunk
  it names: a stored one (``sip_trunk_id``, created with ``CreateSIPOutboundTrunk`` or
  :meth:`SIPProvisioning.add_outbound_trunk`; an unknown id is refused ``not_found``), an
  inline ``trunk``, or ``sip_number`` alone (:func:`route_outbound_call`). It creates the
  room if needed and puts a SIP participant in it at once: a :class:`SimulatedCall`, a
  participant without WebRTC whose far end is the phone (it speaks when the test says so:
  :meth:`SimulatedCall.say`). Its attributes are the request's plus those LiveKit's SIP
  service sets (``sip.callID``, ``sip.trunkID``, ``sip.phoneNumber``, ``sip.hostname``: the
  trunk's address, ``sip.trunkPhoneNumber``: the From number, those the phone's answer
  headers give through the trunk's ``headers_to_attributes`` and ``include_headers``, and
  ``sip.callStatus``: ``dialing``, ``ringing``, ``automation`` while ``dtmf`` digits are
  sent, ``active``, ``hangup``); each change reaches the room's clients. The phone records
  the From number, the trunk's address and the INVITE's headers (the trunk's and the
  request's). With ``wait_until_answered`` the reply waits for the answer, and a call that
  fails is a Twirp error (see :func:`twirp_code_of_sip`).
- **TransferSIPParticipant** (SIP ``call`` and ``roomAdmin``) hands a SIP participant's call to
  another phone (a cold transfer): when that phone answers, the participant leaves the room;
  when it does not, the reply is an error and the participant stays.
- **MoveParticipant** (``livekit.RoomService``, ``roomAdmin`` and ``destinationRoom``; see
  :meth:`~flowkit.testing.livekit_server.twirp.TwirpAPI.move_participant`) moves a call,
  dialled or inbound, into another room, where it goes on
  (:meth:`SimulatedCall.move_to`): the warm transfer's last step. The phone then hears the
  destination, its microphone track is relayed there, and it ends there.
- **Trunks and dispatch rules** (SIP ``admin``): ``CreateSIPInboundTrunk``,
  ``CreateSIPOutboundTrunk``, ``ListSIPInboundTrunk``, ``ListSIPOutboundTrunk``,
  ``DeleteSIPTrunk``, ``CreateSIPDispatchRule``, ``ListSIPDispatchRule``,
  ``DeleteSIPDispatchRule`` keep them in memory (:class:`SIPProvisioning`), with LiveKit's ids
  (``ST_``, ``SDR_``), list filters and checks on create: conflicting inbound trunks or
  dispatch rules, a rule without a rule, are ``invalid_argument``; deleting an unknown id is
  ``not_found``.
- **Inbound calls** (:meth:`SimulatedSIP.call_in`) are routed as LiveKit routes them: the
  inbound trunk for the caller and the number called, then the best dispatch rule (specific
  to the trunk before default, PIN rules first, rules naming the numbers first), which names
  the room (direct, individual, callee) and the participant (``sip_<caller>``, ``Phone
  <caller>``, the rule's metadata and attributes, ``sip.callID``, ``sip.trunkID``,
  ``sip.ruleID``, the number attributes unless ``hide_phone_number``). The room is created
  with the rule's ``room_config`` (its ``agents`` are dispatched) and the call joins it
  answered (:class:`InboundCall`, ``active``), until the caller hangs up
  (``hang_up_after``, :meth:`InboundCall.hang_up`: ``hangup``, then it leaves) or the room
  ends it. A call LiveKit would not take raises :class:`InboundCallError` and creates nothing.

What LiveKit does, from its sources (livekit/sip ``pkg/sip``, livekit/protocol ``livekit/sip.go``,
``sip/sip.go`` and ``rpc/sip.go``, livekit/livekit ``pkg/service/sip.go``), and what this double
does alike:

- The default identity is ``sip_<sip_call_to>``; ``hide_phone_number`` leaves out the
  number and host attributes. A request needs ``sip_trunk_id``, an inline ``trunk`` (with a
  ``hostname`` that is a host, not a SIP URI) or a ``sip_number``; ``sip_call_to`` (a number
  or SIP user, no ``@``); and ``room_name`` (``invalid_argument``). Then ``sip_trunk_id``
  must name a stored outbound trunk (``not_found``, "requested sip trunk does not exist"),
  which wins over an inline ``trunk``; the From number is ``sip_number`` as given, or one of
  the stored trunk's ``numbers`` at random, and without either (an inline trunk and no
  ``sip_number``) the call is refused ``failed_precondition``, "no numbers on outbound
  trunk". The INVITE carries the trunk's ``headers`` and the request's (which win); see
  :mod:`~flowkit.testing.livekit_server.sip.outbound`.
- A failed dial is a Twirp error carrying the SIP status in ``meta`` (``sip_status_code``,
  ``sip_status``), with the Twirp code LiveKit maps that SIP code to (486 ``resource_exhausted``,
  603 ``permission_denied``, 404 ``not_found``...), so ``livekit-api`` raises
  ``api.SipCallError``. A phone that does not answer within ``ringing_timeout`` gives no SIP
  status: LiveKit answers ``canceled`` ("sip request timed out"), a plain ``api.TwirpError``.
- A call that fails leaves the room without a ``hangup`` status (LiveKit sets none for a
  rejected or unanswered call; the room hears the participant leave). A call that ends after
  being answered (the phone hangs up, ``max_call_duration``, a transfer) is set to ``hangup``
  first. A call the room ends (``DeleteRoom``, ``RemoveParticipant``) is hung up on the phone,
  which records the room's ``DisconnectReason``.
- A transfer's target answers: ``STS_TRANSFER_SUCCESSFUL``, reason ``STR_COMPLETED``, SIP 200;
  it rejects: the SIP status and ``sip_transfer_reason`` ``STR_REJECTED`` in ``meta``; it does not
  answer: ``deadline_exceeded`` with ``STR_RINGING_TIMEOUT``. ``transfer_to`` is a ``sip:``,
  ``sips:`` or ``tel:`` URI, optionally in ``<>``. A call not yet answered cannot be
  transferred (``failed_precondition``).

Where this double differs: a call placed by ``sip_number`` alone (no trunk) is dialled,
where the open-source SIP service refuses it for want of an address to send the INVITE to
(livekit/sip ``pkg/sip/client.go``, "address must be set");
the trunks' ``transport``, auth, ``destination_country``, ``from_host``, media settings and
``attributes_to_headers`` are stored but change nothing here, and a 200 OK's headers are only
the phone's ``answer_headers`` (no ``Via``, ``From``..., no ``sip.callIDFull`` or
``sip.callTag``); the Get trunk methods and the deprecated ListSIPTrunk answer
``unimplemented``, and the lists are not paged; deleting an
unknown trunk is ``not_found`` (the open-source server says nothing); an inbound call joins
already ``active``, and a PIN rule refuses a call without ``pin=`` (LiveKit would ask the
caller for it by DTMF); the trunks' ``allowed_addresses`` are ignored; a transfer needs a
participant of kind SIP (LiveKit looks for its ``sip.callID`` attribute, so an SDK client that
joined with a SIP-kind token can stand for a SIP bridge's participant here); the
``sip_transfer_reason`` meta follows ``livekit-api``'s reading of it, as the open-source server
does not send it yet; a simulated call, dialled or inbound, publishes no audio track until
the test makes its phone speak: :meth:`SimulatedCall.say` (once answered) publishes the
call's microphone track (``phone``) on first use and plays the samples given in real time,
then silence, until the call ends and unpublishes it.

The package, one concept a module:

- :mod:`~flowkit.testing.livekit_server.sip.codes`: SIP's vocabulary: :class:`SIPResponse` and
  the common responses, :class:`CallStatus`, the ``sip.*`` attribute names, and
  :func:`twirp_code_of_sip`;
- :mod:`~flowkit.testing.livekit_server.sip.phones`: the simulated phones
  (:class:`SimulatedPhone`) and their records of calls (:class:`PhoneCall`, :class:`SentTrack`,
  :class:`CallEnd`);
- :mod:`~flowkit.testing.livekit_server.sip.call`: a dialled call in the room, its state
  machine, participant link and voice (:class:`SimulatedCall`, :class:`DialPlan`,
  :class:`DialError`; its audio track is a
  :class:`~flowkit.testing.livekit_server.server_audio.ServerAudioTrack`);
- :mod:`~flowkit.testing.livekit_server.sip.outbound`: the outbound trunk and the request
  merged into how a dialled call goes out (:class:`OutboundRoute`,
  :func:`route_outbound_call`);
- :mod:`~flowkit.testing.livekit_server.sip.headers`: the answer's headers as participant
  attributes (:func:`attributes_from_headers`);
- :mod:`~flowkit.testing.livekit_server.sip.provisioning`: the trunks and dispatch rules and
  the checks on them (:class:`SIPProvisioning`, :class:`ProvisioningError`), and how numbers
  compare (:func:`normalize_number`);
- :mod:`~flowkit.testing.livekit_server.sip.inbound`: an inbound call, how it is routed
  (:func:`route_inbound_call`, :class:`InboundRoute`, :class:`InboundCallError`) and its
  participant in the room (:class:`InboundCall`);
- :mod:`~flowkit.testing.livekit_server.sip.network`: the phone network of one server
  (:class:`SimulatedSIP`): its phones, trunks and rules, dialling, inbound calls and
  transfers (:class:`TransferResult`, :class:`TransferError`);
- :mod:`~flowkit.testing.livekit_server.sip.service`: the Twirp methods (:class:`SIPService`)
  and :func:`mount` (:data:`SIP_KEY`).
"""

from flowkit.testing.livekit_server.sip.call import DialError, DialPlan, SimulatedCall
from flowkit.testing.livekit_server.sip.codes import (
    BUSY_HERE,
    DECLINE,
    NOT_FOUND,
    OK,
    CallStatus,
    SIPResponse,
    twirp_code_of_sip,
)
from flowkit.testing.livekit_server.sip.headers import attributes_from_headers
from flowkit.testing.livekit_server.sip.inbound import (
    InboundCall,
    InboundCallError,
    InboundRoute,
    route_inbound_call,
)
from flowkit.testing.livekit_server.sip.network import (
    DEFAULT_RINGING_TIMEOUT,
    SimulatedSIP,
    TransferError,
    TransferResult,
)
from flowkit.testing.livekit_server.sip.outbound import OutboundRoute, route_outbound_call
from flowkit.testing.livekit_server.sip.phones import (
    CallEnd,
    PhoneCall,
    SentTrack,
    SimulatedPhone,
)
from flowkit.testing.livekit_server.sip.provisioning import (
    ProvisioningError,
    SIPProvisioning,
    normalize_number,
)
from flowkit.testing.livekit_server.sip.service import SIP_KEY, SIPService, mount

__all__ = [
    "BUSY_HERE",
    "DECLINE",
    "DEFAULT_RINGING_TIMEOUT",
    "NOT_FOUND",
    "OK",
    "SIP_KEY",
    "CallEnd",
    "CallStatus",
    "DialError",
    "DialPlan",
    "InboundCall",
    "InboundCallError",
    "InboundRoute",
    "OutboundRoute",
    "PhoneCall",
    "ProvisioningError",
    "SIPProvisioning",
    "SIPResponse",
    "SIPService",
    "SentTrack",
    "SimulatedCall",
    "SimulatedPhone",
    "SimulatedSIP",
    "TransferError",
    "TransferResult",
    "attributes_from_headers",
    "mount",
    "normalize_number",
    "route_inbound_call",
    "route_outbound_call",
    "twirp_code_of_sip",
]
