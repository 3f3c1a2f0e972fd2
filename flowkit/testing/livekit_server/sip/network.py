"""The simulated phone network of one test server: its phones, calls in and out, transfers.

:class:`SimulatedSIP` keeps the registered phones (keyed by number or SIP address), the
server's SIP trunks and dispatch rules (:attr:`SimulatedSIP.provisioning`) and the calls made;
it dials (a :class:`~flowkit.testing.livekit_server.sip.call.SimulatedCall`), takes a phone's
call to a trunk number (:meth:`SimulatedSIP.call_in`, an
:class:`~flowkit.testing.livekit_server.sip.inbound.InboundCall`) and transfers a call to
another phone (:class:`TransferResult`, or :class:`TransferError`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass

from livekit.protocol import models
from livekit.protocol import sip as sip_pb

from flowkit.testing.livekit_server.rooms import Participant, Room, Rooms, new_sid
from flowkit.testing.livekit_server.sip.call import DialPlan, SimulatedCall
from flowkit.testing.livekit_server.sip.codes import (
    ATTR_PHONE_NUMBER,
    NOT_FOUND,
    OK,
    SIPResponse,
)
from flowkit.testing.livekit_server.sip.inbound import InboundCall, route_inbound_call
from flowkit.testing.livekit_server.sip.phones import CallEnd, PhoneCall, SimulatedPhone
from flowkit.testing.livekit_server.sip.provisioning import SIPProvisioning

__all__ = [
    "DEFAULT_RINGING_TIMEOUT",
    "SimulatedSIP",
    "TransferError",
    "TransferResult",
]

DEFAULT_RINGING_TIMEOUT = 180.0
"""Seconds a dialled phone may ring when the request sets no ``ringing_timeout`` (LiveKit's SIP
service default, 3 minutes; ``livekit-api`` sets 30 s itself when waiting for the answer)."""


def _address_key(address: str) -> str:
    """A number or URI as phones are keyed: no ``<>``, no scheme, no URI parameters."""
    inner = address.strip().removeprefix("<").removesuffix(">")
    for scheme in ("tel:", "sips:", "sip:"):
        if inner.lower().startswith(scheme):
            inner = inner[len(scheme):]
            break
    return inner.split(";", 1)[0]


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
class TransferResult:
    """A completed transfer: its id, the phone that took the call, and that phone's record."""

    transfer_id: str
    phone: SimulatedPhone
    record: PhoneCall


class SimulatedSIP:
    """The simulated phone network of one test server: its phones, trunks, rules and calls.

    ``TestLiveKitServer.sip`` is one; register phones on it before the code under test dials,
    and make calls come in with :meth:`call_in` once the trunks and dispatch rules are there.

    Args:
        ringing_timeout: How long a dialled phone may ring when the request sets no
            ``ringing_timeout``, in seconds.
    """

    def __init__(self, *, ringing_timeout: float = DEFAULT_RINGING_TIMEOUT) -> None:
        self.ringing_timeout = ringing_timeout
        self.phones: dict[str, SimulatedPhone] = {}
        self.calls: list[SimulatedCall] = []
        """Every call, dialled or inbound (an :class:`InboundCall`), oldest first."""
        self.provisioning = SIPProvisioning()
        """The server's inbound and outbound trunks and dispatch rules."""
        self._rooms: Rooms | None = None

    def attach(self, rooms: Rooms) -> None:
        """Use ``rooms`` for inbound calls (:func:`~.service.mount` attaches the server's)."""
        self._rooms = rooms

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
        answer_headers: Mapping[str, str] | None = None,
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
            answer_headers: The headers its answer (200 OK) to a dialled call carries, e.g.
                ``{"X-Account": "42"}``: the outbound trunk's ``headers_to_attributes`` and
                ``include_headers`` turn them into the participant's attributes.

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
            answer_headers=dict(answer_headers or {}),
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

    async def call_in(
        self,
        caller: str,
        number: str,
        *,
        pin: str | None = None,
        hang_up_after: float | None = None,
        host: str = "sip.example.com",
        source_ip: str = "",
    ) -> InboundCall:
        """A phone calls ``number``: route the call as LiveKit does and put it in its room.

        The inbound trunks and dispatch rules (created with ``lkapi.sip``, or on
        :attr:`provisioning`) decide the room and the participant, see
        :mod:`~flowkit.testing.livekit_server.sip.inbound`. The room is created if needed
        (with the rule's ``room_config``: its ``agents`` are dispatched) and the SIP
        participant joins it answered, ``sip.callStatus`` ``active``.

        Args:
            caller: The number calling. If a phone has it (:meth:`add_phone`), the call goes on
                its ``calls`` and its ``hang_up_after`` applies unless this call sets one.
            number: The number called: one of an inbound trunk's ``numbers``.
            pin: The PIN the caller enters, for a dispatch rule that asks for one.
            hang_up_after: Seconds after joining when the caller hangs up; None: the phone's,
                or never (``call.hang_up()`` then ends it, or the room).
            host: The host the call comes from (the ``sip.hostname`` attribute).
            source_ip: The address the call's packets come from, for the trunks'
                ``allowed_addresses``; "" (the default): none, which every trunk takes.

        Returns:
            The call; it goes on in the background.

        Raises:
            InboundCallError: LiveKit would not take the call (no trunk or dispatch rule for
                it, conflicting trunks, a PIN needed); nothing was created.
            RuntimeError: This network is not attached to a server's rooms.
            ValueError: No caller or number, or a negative ``hang_up_after``.
        """
        if self._rooms is None:
            raise RuntimeError(
                "this SimulatedSIP is not attached to a server's rooms, so calls cannot come "
                "in: use TestLiveKitServer().sip, or call sip.attach(rooms) (the sip "
                "service's mount(app, sip) does)"
            )
        if not caller or not number:
            raise ValueError(
                "call_in needs the number calling and the number called, e.g. "
                "call_in(caller='+15550100', number='+15551234')"
            )
        if hang_up_after is not None and hang_up_after < 0:
            raise ValueError(f"hang_up_after must be 0 s or more, not {hang_up_after}")
        route = route_inbound_call(
            self.provisioning, caller=caller, number=number, host=host, source_ip=source_ip,
            call_id=new_sid("SCL"), pin=pin,
        )
        config = route.room_config
        room = self._rooms.create(
            route.room_name, metadata=config.metadata, agents=config.agents
        )
        phone = self.phone(caller)
        if hang_up_after is None and phone is not None:
            hang_up_after = phone.hang_up_after
        call = InboundCall(room, route, phone, hang_up_after=hang_up_after)
        self.calls.append(call)
        call.start()
        return call

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
            room.leave(participant, models.DisconnectReason.CLIENT_INITIATED)
            link.close(models.DisconnectReason.CLIENT_INITIATED)
        return TransferResult(transfer_id, phone, record)

    async def aclose(self) -> None:
        """Hang up every call still on (``SERVER_SHUTDOWN``) and wait for their tasks."""
        for call in self.calls:
            call.close(models.DisconnectReason.SERVER_SHUTDOWN)
        tasks = [call.task for call in self.calls if call.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
