"""Simulated phones: how each answers, and what it records of its calls.

:class:`SimulatedPhone` plays its script for a call (:meth:`SimulatedPhone.ring`); each call
it gets or makes is a :class:`PhoneCall`, with the tracks the room sent it
(:class:`SentTrack`) and how it ended (:class:`CallEnd`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt
from livekit.protocol import models

from flowkit.testing.livekit_server.sip.codes import BUSY_HERE, DECLINE, OK, SIPResponse

__all__ = [
    "CallEnd",
    "PhoneCall",
    "SentTrack",
    "SimulatedPhone",
]

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
    """A track the room sent to a simulated phone: whose, which, whether it stopped.

    Attributes:
        audio: The decoded frames the phone heard, in order: mono int16 at 48 kHz
            (:data:`~flowkit.testing.livekit_server.sip.hearing.HEARD_RATE`); empty for video.
    """

    publisher: str
    sid: str
    name: str
    kind: str  # "audio" or "video"
    stopped: bool = False
    audio: list[npt.NDArray[np.int16]] = field(default_factory=list, repr=False)

    def heard(self) -> npt.NDArray[np.int16]:
        """Everything the phone heard of this track so far, as one 48 kHz mono array."""
        if not self.audio:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(self.audio)


@dataclass(eq=False)
class PhoneCall:
    """One call of a simulated phone: dialled, transferred to it, or made by it (inbound).

    Dialled by CreateSIPParticipant, transferred to it by TransferSIPParticipant, or made by
    the phone to a number of an inbound trunk (:meth:`~.network.SimulatedSIP.call_in`).

    Attributes:
        call_id: The call's id: the SIP participant's ``sip.callID``; for a transfer, the
            transfer's id.
        room: The room the call came from (or, for an inbound call, went to).
        identity: The SIP participant of the call: the phone's own participant for a dialled
            or inbound call, the participant handed over for a transfer.
        caller: The number calling: for a dialled call the From number (the request's
            ``sip_number``, or one of its outbound trunk's ``numbers``), for a transfer the
            transferred participant's ``sip.phoneNumber`` ("" when it has none), for an
            inbound call the phone's own number.
        host: For a dialled call, the SIP provider's address the call went out through (the
            outbound trunk's ``address``, or the inline trunk's ``hostname``; "" for a call
            placed by ``sip_number`` alone); "" for the other calls.
        transferred: It came by TransferSIPParticipant.
        inbound: The phone made the call, to ``called`` (a number of an inbound trunk).
        called: The number an inbound call dialled; "" for the other calls.
        play_dialtone: The request asked for a dial tone.
        headers: The SIP headers the call's INVITE added: for a dialled call its outbound
            trunk's ``headers`` and the request's (the request's win); for a transfer, the
            request's.
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
    host: str = ""
    transferred: bool = False
    inbound: bool = False
    called: str = ""
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
    """A phone registered on the test server: how it answers, and its calls (in and out).

    Create them with :meth:`~.network.SimulatedSIP.add_phone`, which documents the script.
    """

    number: str
    answer_after: float = 0.0
    busy: bool = False
    rejects: bool = False
    never_answers: bool = False
    fails_with: SIPResponse | None = None
    hang_up_after: float | None = None
    answer_headers: dict[str, str] = field(default_factory=dict)
    """The headers its 200 OK carries (``X-Account: 42``...), for the outbound trunk's
    ``headers_to_attributes`` and ``include_headers``."""
    calls: list[PhoneCall] = field(default_factory=list)

    @property
    def last_call(self) -> PhoneCall:
        """The latest call of the phone.

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
