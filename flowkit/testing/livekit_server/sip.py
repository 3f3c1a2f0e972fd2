"""Simulated phones, and LiveKit's SIP service over them: dialling out and transferring calls.

There is no phone network here: a test registers **simulated phones** on the server
(``server.sip.add_phone("+15550100", answer_after=0.2)``), each scripted to answer after some
ringing, to be busy (486 Busy Here), to decline (603 Decline), to fail with any other SIP
response, or never to answer; and, once answered, maybe to hang up by itself. The Twirp methods
``livekit.SIP/CreateSIPParticipant`` and ``livekit.SIP/TransferSIPParticipant`` then behave as
LiveKit's do, as far as a program calling them through ``livekit-api`` can tell:

- **CreateSIPParticipant** (SIP grant ``call``) creates the room if needed and puts a SIP
  participant in it at once: a :class:`SimulatedCall`, a participant without WebRTC whose far
  end is the phone. Its attributes are the request's plus those LiveKit's SIP service sets
  (``sip.callID``, ``sip.trunkID``, ``sip.phoneNumber``, ``sip.trunkPhoneNumber``,
  ``sip.hostname`` for an inline trunk, and ``sip.callStatus``: ``dialing``, ``ringing``,
  ``automation`` while ``dtmf`` digits are sent, ``active``, ``hangup``); each change reaches
  the room's clients. With ``wait_until_answered`` the reply waits for the answer, and a call
  that fails is a Twirp error (see :func:`twirp_code_of_sip`).
- **TransferSIPParticipant** (SIP ``call`` and ``roomAdmin``) hands a SIP participant's call to
  another phone (a cold transfer): when that phone answers, the participant leaves the room;
  when it does not, the reply is an error and the participant stays.

What LiveKit does, from its sources (livekit/sip ``pkg/sip``, livekit/protocol ``livekit/sip.go``
and ``rpc/sip.go``, livekit/livekit ``pkg/service/sip.go``), and what this double does alike:

- The default identity is ``sip_<sip_call_to>``; ``hide_phone_number`` leaves out the
  number attributes. A request needs ``sip_trunk_id``, an inline ``trunk`` (with a
  ``hostname``) or a ``sip_number``; ``sip_call_to`` (a number or SIP user, no ``@``); and
  ``room_name``.
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

Where this double differs: any ``sip_trunk_id`` is accepted (there are no trunks; the
trunk's number is :attr:`SimulatedSIP.trunk_number` unless the request sets ``sip_number``);
a transfer needs a participant of kind SIP (LiveKit looks for its ``sip.callID`` attribute, so
an SDK client that joined with a SIP-kind token can stand for a SIP bridge's participant here);
the ``sip_transfer_reason`` meta follows ``livekit-api``'s reading of it, as the open-source
server does not send it yet; a simulated call publishes no audio track.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from aiohttp import web
from google.protobuf.duration_pb2 import Duration
from livekit.protocol import models
from livekit.protocol import sip as sip_pb

from flowkit.testing.livekit_server.rooms import Participant, PublishedTrack, Room, new_sid
from flowkit.testing.livekit_server.twirp import (
    ROOM_ADMIN,
    SIP_CALL,
    TWIRP_KEY,
    TwirpAPI,
    TwirpError,
)

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
    "PhoneCall",
    "SIPResponse",
    "SIPService",
    "SentTrack",
    "SimulatedCall",
    "SimulatedPhone",
    "SimulatedSIP",
    "TransferError",
    "TransferResult",
    "mount",
    "twirp_code_of_sip",
]

log = logging.getLogger("flowkit.testing.sip")

DEFAULT_RINGING_TIMEOUT = 180.0
"""Seconds a dialled phone may ring when the request sets no ``ringing_timeout`` (LiveKit's SIP
service default, 3 minutes; ``livekit-api`` sets 30 s itself when waiting for the answer)."""
_TRANSFER_RINGING_TIMEOUT = 30.0  # LiveKit's server default for a transfer

# The participant attributes LiveKit's SIP service sets (livekit/protocol livekit/attrs.go).
ATTR_CALL_ID = "sip.callID"
ATTR_CALL_STATUS = "sip.callStatus"
ATTR_PHONE_NUMBER = "sip.phoneNumber"
ATTR_TRUNK_ID = "sip.trunkID"
ATTR_TRUNK_NUMBER = "sip.trunkPhoneNumber"
ATTR_HOSTNAME = "sip.hostname"


class CallStatus(StrEnum):
    """A SIP participant's ``sip.callStatus`` attribute, as LiveKit's SIP service sets it."""

    DIALING = "dialing"
    RINGING = "ringing"
    AUTOMATION = "automation"  # answered, still sending the request's DTMF digits
    ACTIVE = "active"
    HANGUP = "hangup"


@dataclass(frozen=True)
class SIPResponse:
    """A final SIP response: its code and reason phrase, e.g. ``SIPResponse(486, "Busy Here")``."""

    code: int
    status: str

    def __post_init__(self) -> None:
        if not 200 <= self.code <= 699:
            raise ValueError(f"a final SIP response code is 200 to 699, not {self.code}")

    def __str__(self) -> str:
        return f"{self.code} {self.status}"


OK = SIPResponse(200, "OK")
BUSY_HERE = SIPResponse(486, "Busy Here")
DECLINE = SIPResponse(603, "Decline")
NOT_FOUND = SIPResponse(404, "Not Found")

# LiveKit's mapping of SIP failure codes to errors (livekit/protocol livekit/sip.go,
# sipCodeToGRPCCode, turned into Twirp codes by utils/xtwirp): the 4xx to 6xx codes it names.
_TWIRP_CODE_OF_SIP = {
    400: "invalid_argument", 401: "permission_denied", 402: "permission_denied",
    403: "permission_denied", 404: "not_found", 405: "invalid_argument",
    406: "invalid_argument", 407: "unauthenticated", 408: "deadline_exceeded",
    409: "failed_precondition", 410: "not_found", 480: "resource_exhausted",
    481: "not_found", 482: "failed_precondition", 483: "failed_precondition",
    484: "invalid_argument", 485: "invalid_argument", 486: "resource_exhausted",
    487: "aborted", 488: "invalid_argument", 491: "aborted", 500: "failed_precondition",
    501: "failed_precondition", 502: "failed_precondition", 503: "failed_precondition",
    504: "deadline_exceeded", 600: "resource_exhausted", 603: "permission_denied",
    604: "not_found", 606: "invalid_argument", 607: "permission_denied", 608: "permission_denied",
}


def twirp_code_of_sip(code: int) -> str:
    """The Twirp error code LiveKit answers a failed call with, for its SIP status ``code``.

    The codes LiveKit names have their own mapping (486 Busy Here: ``resource_exhausted``, 603
    Decline: ``permission_denied``, 404: ``not_found``...); the others go by class, as in LiveKit:
    4xx and 6xx ``invalid_argument``, 5xx ``failed_precondition``.
    """
    named = _TWIRP_CODE_OF_SIP.get(code)
    if named is not None:
        return named
    return "failed_precondition" if 500 <= code < 600 else "invalid_argument"


def _disconnect_reason(response: SIPResponse | None) -> int:
    """Why a failed call's participant left, as LiveKit's SIP service says (pkg/sip/errors.go)."""
    reasons = models.DisconnectReason
    if response is None:  # no answer within the ringing timeout
        return reasons.USER_UNAVAILABLE
    code = response.code
    if code in (401, 403, 407, 486, 488) or 600 <= code < 700:
        return reasons.USER_REJECTED
    if 400 <= code < 500:
        return reasons.USER_UNAVAILABLE
    if 500 <= code < 600:
        return reasons.SIP_TRUNK_FAILURE
    return reasons.UNKNOWN_REASON


def _current_task() -> asyncio.Task[object] | None:
    """The running task, None outside the event loop (a call may be ended from plain code)."""
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


def _reason_name(reason: int | None) -> str:
    return "none" if reason is None else models.DisconnectReason.Name(reason)


# -- what a phone records -----------------------------------------------------------------------


class CallEnd(StrEnum):
    """How a call ended, as the phone saw it."""

    REJECTED = "rejected"
    """The phone answered with a failure response (busy, decline...): see ``response``."""
    NOT_ANSWERED = "not_answered"
    """Nobody answered within the ringing timeout: the caller gave up."""
    PHONE_HUNG_UP = "phone_hung_up"
    """The phone hung up (its ``hang_up_after``)."""
    ROOM_HUNG_UP = "room_hung_up"
    """LiveKit's side hung up: the room was deleted, the participant removed or replaced, the
    server stopped (see ``disconnect_reason``)."""
    MAX_DURATION = "max_call_duration"
    """The request's ``max_call_duration`` ran out."""
    TRANSFERRED = "transferred"
    """The call was handed to another phone (see ``transferred_to``)."""


@dataclass
class SentTrack:
    """A track the room sent to a simulated phone: whose, which, and whether it stopped."""

    publisher: str
    sid: str
    name: str
    kind: str  # "audio" or "video"
    stopped: bool = False


@dataclass(eq=False)
class PhoneCall:
    """One call a simulated phone got: dialled by CreateSIPParticipant, or transferred to it.

    Attributes:
        call_id: The call's id: the dialled participant's ``sip.callID``; for a transfer, the
            transfer's id.
        room: The room the call came from.
        identity: The SIP participant of the call: the phone's own participant for a dialled
            call, the participant handed over for a transfer.
        caller: The number calling: the trunk's number for a dialled call, the transferred
            participant's ``sip.phoneNumber`` for a transfer ("" when it has none).
        transferred: It came by TransferSIPParticipant.
        play_dialtone: The request asked for a dial tone.
        headers: The SIP headers the request added.
        answered_at: When the phone answered (``time.time()``), None if it did not.
        dtmf: The digits sent to the phone once it answered (the request's ``dtmf``).
        end: How the call ended; None while it goes on (a transferred-in call stays on:
            it left LiveKit).
        response: The failure response the phone gave, for a rejected call.
        disconnect_reason: The ``DisconnectReason`` the call's participant left the room with
            (the room's, when the room ended the call).
        transferred_to: Where the call was transferred to, for a transferred call.
        tracks: The tracks the room sent to the phone, in order.
        data: The data packets the room sent to the phone (DTMF, text...), in order.
    """

    call_id: str
    room: str
    identity: str
    caller: str
    transferred: bool = False
    play_dialtone: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    answered_at: float | None = None
    dtmf: str = ""
    end: CallEnd | None = None
    response: SIPResponse | None = None
    disconnect_reason: int | None = None
    transferred_to: str = ""
    tracks: list[SentTrack] = field(default_factory=list)
    data: list[models.DataPacket] = field(default_factory=list)
    _ended: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def answered(self) -> bool:
        """Whether the phone answered."""
        return self.answered_at is not None

    async def wait_ended(self, timeout: float = 5.0) -> CallEnd:
        """Wait until the call ends; how it ended.

        Raises:
            TimeoutError: It is still on after ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            await self._ended.wait()
        assert self.end is not None
        return self.end

    def finish(
        self, end: CallEnd, *, response: SIPResponse | None = None, reason: int | None = None
    ) -> None:
        """Record how the call ended (the simulation calls this; the first end counts)."""
        if self.end is not None:
            return
        self.end = end
        self.response = response
        self.disconnect_reason = reason
        self._ended.set()


@dataclass(eq=False)
class SimulatedPhone:
    """A phone registered on the test server: how it answers, and the calls it got.

    Create them with :meth:`SimulatedSIP.add_phone`, which documents the script.
    """

    number: str
    answer_after: float = 0.0
    busy: bool = False
    rejects: bool = False
    never_answers: bool = False
    fails_with: SIPResponse | None = None
    hang_up_after: float | None = None
    calls: list[PhoneCall] = field(default_factory=list)

    @property
    def last_call(self) -> PhoneCall:
        """The latest call the phone got.

        Raises:
            LookupError: It got none.
        """
        if not self.calls:
            raise LookupError(f"the simulated phone {self.number!r} got no call")
        return self.calls[-1]

    async def ring(self, timeout: float, ringing: Callable[[], None]) -> SIPResponse | None:
        """Play the phone's script for one call: its final response, None for no answer.

        Args:
            timeout: How long the caller lets it ring, in seconds.
            ringing: Called when the phone starts ringing (180 Ringing).

        Returns:
            200 OK when it answers; its failure response (busy at once, the others after
            ``answer_after`` seconds of ringing); None when it rings for ``timeout`` unanswered.
        """
        if self.busy:
            return BUSY_HERE  # a busy line answers at once, without ringing
        ringing()
        if self.never_answers or self.answer_after > timeout:
            await asyncio.sleep(timeout)
            return None
        await asyncio.sleep(self.answer_after)
        if self.rejects:
            return DECLINE
        return self.fails_with or OK


def _address_key(address: str) -> str:
    """A number or URI as phones are keyed: no ``<>``, no scheme, no URI parameters."""
    inner = address.strip().removeprefix("<").removesuffix(">")
    for scheme in ("tel:", "sips:", "sip:"):
        if inner.lower().startswith(scheme):
            inner = inner[len(scheme):]
            break
    return inner.split(";", 1)[0]


# -- a call in the room -------------------------------------------------------------------------


class DialError(Exception):
    """A dialled call did not get answered: how it ended, and the phone's response if any."""

    def __init__(self, end: CallEnd, message: str, response: SIPResponse | None = None) -> None:
        super().__init__(message)
        self.end = end
        self.response = response


class TransferError(Exception):
    """A transfer did not complete: its id, why (a ``SIPTransferReason``), the SIP status if any."""

    def __init__(
        self, transfer_id: str, reason: int, message: str, response: SIPResponse | None = None
    ) -> None:
        super().__init__(message)
        self.transfer_id = transfer_id
        self.reason = reason
        self.response = response


@dataclass(frozen=True)
class DialPlan:
    """A validated CreateSIPParticipant request: whom to call, as whom, and how.

    Attributes:
        address: What is dialled (``sip_call_to``).
        call_id: The call's ``sip.callID`` (``SCL_...``).
        identity, name, metadata, attributes: The SIP participant's, its ``sip.*`` attributes
            included (``sip.callStatus`` is added when it joins).
        caller: The number the call comes from (``sip_number``, or the trunk's number).
        ringing_timeout: Seconds the phone may ring.
        max_call_duration: Seconds the call may last from dialling, None for no limit.
        dtmf: Digits to send once answered.
        play_dialtone: Whether the request asked for a dial tone in the room.
        headers: The SIP headers the request adds.
    """

    address: str
    call_id: str
    identity: str
    name: str
    metadata: str
    attributes: dict[str, str]
    caller: str
    ringing_timeout: float
    max_call_duration: float | None
    dtmf: str
    play_dialtone: bool
    headers: dict[str, str]


class SimulatedCall:
    """A SIP participant whose far end is a simulated phone: a participant without WebRTC.

    It is the participant's :class:`~flowkit.testing.livekit_server.rooms.ParticipantLink`:
    signal messages are dropped; the tracks and data packets the room sends are recorded on
    the phone's :class:`PhoneCall` once it answered (LiveKit's SIP service subscribes then);
    ``close(reason)`` is the room hanging up. Its ``sip.callStatus`` follows the call, and
    every change reaches the room's clients.

    Attributes:
        participant: The SIP participant (kind SIP) it is the link of.
        room: The room it calls into.
        address: The number dialled.
        phone: The phone it reached, None when no phone has the number.
        record: That phone's record of the call, None without a phone.
        call_id: Its ``sip.callID``.
        status: The last ``sip.callStatus`` it set.
        ended: How it ended, None while it goes on.
        failure: Why it was not answered, for a call that was not.
        disconnect_reason: The ``DisconnectReason`` its participant left with.
    """

    def __init__(self, room: Room, dial: DialPlan, phone: SimulatedPhone | None) -> None:
        self.room = room
        self.address = dial.address
        self.phone = phone
        self.call_id = dial.call_id
        self.status = CallStatus.DIALING
        self.ended: CallEnd | None = None
        self.failure: DialError | None = None
        self.disconnect_reason: int | None = None
        self._dial = dial
        self._settled = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._started = time.monotonic()
        self.participant = Participant(
            sid=new_sid("PA"),
            identity=dial.identity,
            link=self,
            name=dial.name,
            metadata=dial.metadata,
            attributes={**dial.attributes, ATTR_CALL_STATUS: CallStatus.DIALING.value},
            kind=models.ParticipantInfo.Kind.SIP,
        )
        self.record: PhoneCall | None = None
        if phone is not None:
            self.record = PhoneCall(
                call_id=dial.call_id, room=room.name, identity=dial.identity, caller=dial.caller,
                play_dialtone=dial.play_dialtone, headers=dict(dial.headers),
            )
            phone.calls.append(self.record)

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The task that plays the call, once started."""
        return self._task

    def start(self) -> None:
        """Join the room (status ``dialing``) and dial in the background."""
        self.room.join(self.participant)
        self._task = asyncio.create_task(self._run(), name=f"sip call {self.call_id}")

    async def wait_answered(self) -> None:
        """Wait until the phone answers.

        Raises:
            DialError: The call ended before it was answered.
        """
        await self._settled.wait()
        if self.failure is not None:
            raise self.failure

    # ParticipantLink ----------------------------------------------------------------------------

    def send_signal(self, response: object) -> None:
        """Dropped: a phone hears no signal messages."""

    def subscribe_track(self, publisher: Participant, track: PublishedTrack) -> None:
        """Record that the phone is sent the track, if it is on the call."""
        if self.record is None or self.status != CallStatus.ACTIVE:
            return
        kind = "audio" if track.info.type == models.TrackType.AUDIO else "video"
        self.record.tracks.append(
            SentTrack(publisher.identity, track.info.sid, track.info.name, kind)
        )

    def unsubscribe_track(self, publisher: Participant, track: PublishedTrack) -> None:
        """Record that the track stopped."""
        for sent in self.record.tracks if self.record is not None else ():
            if sent.sid == track.info.sid and not sent.stopped:
                sent.stopped = True

    def send_data(self, label: str, payload: bytes) -> None:
        """Record a data packet sent to the phone."""
        if self.record is None:
            return
        packet = models.DataPacket()
        with contextlib.suppress(Exception):  # the room only relays packets it decoded
            packet.ParseFromString(payload)
            self.record.data.append(packet)

    def close(self, reason: int) -> None:
        """The room hangs up: the call ends (the phone records why) and leaves the room."""
        self._finish(CallEnd.ROOM_HUNG_UP, reason)

    # The call -----------------------------------------------------------------------------------

    def hand_over(self, transfer_to: str) -> None:
        """The call was transferred: ``hangup``, then the participant leaves, as in LiveKit."""
        if self.record is not None:
            self.record.transferred_to = transfer_to
        self._finish(
            CallEnd.TRANSFERRED, models.DisconnectReason.CLIENT_INITIATED, hangup=True
        )

    async def _run(self) -> None:
        try:
            response = await self._ring()
            if response == OK:
                self._answered()
                await self._talk()
            else:
                self._failed(response)
        except Exception:  # a bug in the simulation must not leave the call hanging
            log.exception("simulated SIP call %s failed", self.call_id)
            self._finish(CallEnd.ROOM_HUNG_UP, models.DisconnectReason.UNKNOWN_REASON)

    async def _ring(self) -> SIPResponse | None:
        if self.phone is None:
            return NOT_FOUND
        return await self.phone.ring(
            self._dial.ringing_timeout, lambda: self._set_status(CallStatus.RINGING)
        )

    def _answered(self) -> None:
        assert self.record is not None  # only a registered phone answers
        self.record.answered_at = time.time()
        if self._dial.dtmf:
            self._set_status(CallStatus.AUTOMATION)
            self.record.dtmf = self._dial.dtmf
        self._set_status(CallStatus.ACTIVE)
        # LiveKit's SIP service subscribes once the call is up: the tracks already published.
        for other in self.room.others(self.participant):
            for track in other.tracks.values():
                if track.media is not None:
                    self.subscribe_track(other, track)
        self._settled.set()

    async def _talk(self) -> None:
        """Wait for the phone to hang up, or the call's maximum duration."""
        assert self.phone is not None
        ends: list[tuple[float, CallEnd]] = []
        if self.phone.hang_up_after is not None:
            ends.append((self.phone.hang_up_after, CallEnd.PHONE_HUNG_UP))
        if self._dial.max_call_duration is not None:
            left = self._dial.max_call_duration - (time.monotonic() - self._started)
            ends.append((max(left, 0.0), CallEnd.MAX_DURATION))
        if not ends:
            return  # the call goes on until the room ends it
        delay, end = min(ends, key=lambda pair: pair[0])
        await asyncio.sleep(delay)
        self._finish(end, models.DisconnectReason.CLIENT_INITIATED, hangup=True)

    def _failed(self, response: SIPResponse | None) -> None:
        if response is None:
            end = CallEnd.NOT_ANSWERED
            message = (
                f"sip request timed out: {self.address!r} did not answer within "
                f"{self._dial.ringing_timeout:g} s (ringing_timeout)"
            )
        else:
            end = CallEnd.REJECTED
            message = f"sip status {response.code}: {response.status}: " + self._why(response)
        self.failure = DialError(end, message, response)
        log.info("simulated SIP call %s to %r failed: %s", self.call_id, self.address, message)
        self._finish(end, _disconnect_reason(response), response=response)

    def _why(self, response: SIPResponse) -> str:
        if self.phone is None:
            return (
                f"no simulated phone has the number {self.address!r}; register one with "
                f"server.sip.add_phone({self.address!r}, ...) (TestLiveKitServer.sip)"
            )
        if response == BUSY_HERE and self.phone.busy:
            return f"the simulated phone {self.address!r} is busy"
        if response == DECLINE and self.phone.rejects:
            return f"the simulated phone {self.address!r} declined the call"
        return f"the simulated phone {self.address!r} answered {response}"

    def _finish(
        self,
        end: CallEnd,
        reason: int,
        *,
        response: SIPResponse | None = None,
        hangup: bool = False,
    ) -> None:
        """End the call once: status, the phone's record, leaving the room, the waiters."""
        if self.ended is not None:
            return
        if hangup:
            self._set_status(CallStatus.HANGUP)  # before leaving, so the room hears it
        self.ended = end
        self.disconnect_reason = reason
        if self.record is not None:
            self.record.finish(end, response=response, reason=reason)
        self.room.leave(self.participant)
        if self.failure is None and not self._settled.is_set():
            self.failure = DialError(
                end,
                f"the call to {self.address!r} ended before it was answered: "
                f"{end.value} ({_reason_name(reason)})",
            )
        self._settled.set()
        if self._task is not None and self._task is not _current_task():
            self._task.cancel()

    def _set_status(self, status: CallStatus) -> None:
        self.status = status
        if self.room.participants.get(self.participant.identity) is self.participant:
            self.room.update_participant(
                self.participant, attributes={ATTR_CALL_STATUS: status.value}
            )


# -- the phones and the calls -------------------------------------------------------------------


@dataclass(frozen=True)
class TransferResult:
    """A completed transfer: its id, the phone that took the call, and that phone's record."""

    transfer_id: str
    phone: SimulatedPhone
    record: PhoneCall


class SimulatedSIP:
    """The simulated phone network of one test server: its phones and the calls made.

    ``TestLiveKitServer.sip`` is one; register phones on it before the code under test dials.

    Args:
        trunk_number: The number calls come from when a request sets no ``sip_number`` (in
            LiveKit, one of the outbound trunk's numbers).
        ringing_timeout: How long a dialled phone may ring when the request sets no
            ``ringing_timeout``, in seconds.
    """

    def __init__(
        self,
        *,
        trunk_number: str = "+15550000000",
        ringing_timeout: float = DEFAULT_RINGING_TIMEOUT,
    ) -> None:
        self.trunk_number = trunk_number
        self.ringing_timeout = ringing_timeout
        self.phones: dict[str, SimulatedPhone] = {}
        self.calls: list[SimulatedCall] = []

    def add_phone(
        self,
        number: str,
        *,
        answer_after: float = 0.0,
        busy: bool = False,
        rejects: bool = False,
        never_answers: bool = False,
        fails_with: SIPResponse | None = None,
        hang_up_after: float | None = None,
    ) -> SimulatedPhone:
        """Register a phone (replacing one with the same number) and return it.

        Args:
            number: What callers dial: a number (``+15550100``) or a SIP user or address
                (``alice@sip.example.com``). ``tel:``/``sip:`` URIs and ``<>`` match it too:
                ``tel:+15550100`` and ``sip:+15550100@trunk.example.com`` reach ``+15550100``.
            answer_after: Seconds it rings before it answers (or declines, or fails).
            busy: It answers 486 Busy Here at once, without ringing.
            rejects: It rings, then declines: 603 Decline.
            never_answers: It rings until the caller gives up (the ringing timeout).
            fails_with: It rings, then answers with this failure response, e.g.
                ``SIPResponse(480, "Temporarily Unavailable")``.
            hang_up_after: Seconds after answering when it hangs up by itself; None: never.

        Raises:
            ValueError: More than one of busy, rejects, never_answers, fails_with; a negative
                time; a ``fails_with`` that is not a failure.
        """
        scripts = [busy, rejects, never_answers, fails_with is not None]
        if sum(scripts) > 1:
            raise ValueError(
                f"the phone {number!r} can do one of busy, rejects, never_answers, fails_with: "
                "choose one"
            )
        if answer_after < 0 or (hang_up_after is not None and hang_up_after < 0):
            raise ValueError(f"the phone {number!r} needs times of 0 s or more")
        if fails_with is not None and fails_with.code < 300:
            raise ValueError(
                f"fails_with must be a failure response (3xx to 6xx), not {fails_with}"
            )
        if not _address_key(number):
            raise ValueError("a phone needs a number or SIP address, e.g. '+15550100'")
        phone = SimulatedPhone(
            number=number, answer_after=answer_after, busy=busy, rejects=rejects,
            never_answers=never_answers, fails_with=fails_with, hang_up_after=hang_up_after,
        )
        self.phones[_address_key(number)] = phone
        return phone

    def phone(self, address: str) -> SimulatedPhone | None:
        """The phone that ``address`` reaches (a number, or a ``tel:``/``sip:`` URI), or None."""
        key = _address_key(address)
        found = self.phones.get(key)
        if found is None and "@" in key:
            found = self.phones.get(key.split("@", 1)[0])  # sip:+15550100@host: its user part
        return found

    def call(self, room: str, identity: str) -> SimulatedCall | None:
        """The latest call dialled for participant ``identity`` of ``room``, or None."""
        for call in reversed(self.calls):
            if call.room.name == room and call.participant.identity == identity:
                return call
        return None

    def dial(self, room: Room, dial: DialPlan) -> SimulatedCall:
        """Put the call's participant in ``room`` and ring the phone ``dial.address``."""
        call = SimulatedCall(room, dial, self.phone(dial.address))
        self.calls.append(call)
        call.start()
        return call

    async def transfer(
        self,
        room: Room,
        participant: Participant,
        transfer_to: str,
        *,
        ringing_timeout: float,
        play_dialtone: bool,
        headers: Mapping[str, str],
    ) -> TransferResult:
        """Ring ``transfer_to``; when it answers, hand ``participant``'s call over to it.

        Raises:
            TransferError: The target rejected the call or did not answer, or the call ended
                while it rang; the participant stays (unless it left by itself).
        """
        transfer_id = new_sid("STR")
        phone = self.phone(transfer_to)
        if phone is None:
            raise TransferError(
                transfer_id, sip_pb.SIPTransferReason.STR_REJECTED,
                f"call transfer failed: sip status 404: Not Found: no simulated phone has the "
                f"address {transfer_to!r}; register one with server.sip.add_phone(...)",
                NOT_FOUND,
            )
        record = PhoneCall(
            call_id=transfer_id, room=room.name, identity=participant.identity,
            caller=participant.attributes.get(ATTR_PHONE_NUMBER, ""), transferred=True,
            play_dialtone=play_dialtone, headers=dict(headers),
        )
        phone.calls.append(record)
        response = await phone.ring(ringing_timeout, lambda: None)
        if response is None:
            record.finish(CallEnd.NOT_ANSWERED)
            raise TransferError(
                transfer_id, sip_pb.SIPTransferReason.STR_RINGING_TIMEOUT,
                f"call transfer failed: {transfer_to!r} did not answer within "
                f"{ringing_timeout:g} s (ringing_timeout); {participant.identity!r} stays in "
                "the room",
            )
        if response != OK:
            record.finish(CallEnd.REJECTED, response=response)
            raise TransferError(
                transfer_id, sip_pb.SIPTransferReason.STR_REJECTED,
                f"call transfer failed: sip status {response.code}: {response.status} from "
                f"{transfer_to!r}; {participant.identity!r} stays in the room",
                response,
            )
        if room.participants.get(participant.identity) is not participant:
            record.finish(CallEnd.ROOM_HUNG_UP)
            raise TransferError(
                transfer_id, sip_pb.SIPTransferReason.STR_CALL_ENDED,
                f"call transfer failed: {participant.identity!r} left room {room.name!r} "
                "before the transfer completed",
            )
        record.answered_at = time.time()
        link = participant.link
        if isinstance(link, SimulatedCall):
            link.hand_over(transfer_to)
        else:
            # An SDK client standing for a SIP bridge's participant: the bridge would leave
            # the room by itself after the transfer (CLIENT_INITIATED); here the server asks.
            room.leave(participant)
            link.close(models.DisconnectReason.CLIENT_INITIATED)
        return TransferResult(transfer_id, phone, record)

    async def aclose(self) -> None:
        """Hang up every call still on (``SERVER_SHUTDOWN``) and wait for their tasks."""
        for call in self.calls:
            call.close(models.DisconnectReason.SERVER_SHUTDOWN)
        tasks = [call.task for call in self.calls if call.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)


# -- the Twirp methods --------------------------------------------------------------------------


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
    """``livekit.SIP`` on the test server's Twirp API: the two call methods, over the phones.

    Args:
        twirp: The server's Twirp API (its rooms and lookups).
        sip: The simulated phones.
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
        """The validated request (LiveKit's checks, in its order), ``invalid_argument`` if not."""
        trunk = request.trunk if request.HasField("trunk") else None
        if not request.sip_trunk_id and trunk is None and not request.sip_number:
            raise TwirpError(
                "invalid_argument",
                "missing sip trunk id and sip number: set sip_trunk_id (any id works on the "
                "test server), trunk (an inline SIPOutboundConfig) or sip_number",
            )
        if trunk is not None and not trunk.hostname:
            raise TwirpError(
                "invalid_argument",
                "no outbound hostname specified: set trunk.hostname (e.g. 'sip.example.com')",
            )
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
        caller = request.sip_number or self.sip.trunk_number
        attributes = dict(request.participant_attributes)
        attributes[ATTR_CALL_ID] = call_id = new_sid("SCL")
        attributes[ATTR_TRUNK_ID] = request.sip_trunk_id
        if not request.hide_phone_number:
            attributes[ATTR_PHONE_NUMBER] = request.sip_call_to
            attributes[ATTR_TRUNK_NUMBER] = caller
            if trunk is not None:
                attributes[ATTR_HOSTNAME] = trunk.hostname
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
            attributes={key: value for key, value in attributes.items() if value},
            caller=caller,
            ringing_timeout=ringing or self.sip.ringing_timeout,
            max_call_duration=longest or None,
            dtmf=request.dtmf,
            play_dialtone=request.play_dialtone or request.play_ringtone,
            headers=dict(request.headers),
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
    """Serve ``livekit.SIP`` ``CreateSIPParticipant`` and ``TransferSIPParticipant`` over ``sip``.

    The application must serve the Twirp API already (:func:`~.twirp.mount`).

    Returns:
        The service; ``sip`` is also stored as ``app[SIP_KEY]``.
    """
    service = SIPService(app[TWIRP_KEY], sip)
    app[SIP_KEY] = sip
    twirp = app[TWIRP_KEY]
    twirp.add_method("livekit.SIP", "CreateSIPParticipant", service.create_sip_participant,
                     SIP_CALL)
    twirp.add_method("livekit.SIP", "TransferSIPParticipant", service.transfer_sip_participant,
                     SIP_CALL, ROOM_ADMIN)
    return service
