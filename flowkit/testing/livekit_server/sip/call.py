"""A dialled call in the room: the SIP participant whose far end is a simulated phone.

:class:`SimulatedCall` is the call's state machine (``dialing``, ``ringing``, ``automation``,
``active``, ``hangup``) and its participant's link to the room; :class:`DialPlan` is the
validated CreateSIPParticipant request it plays (merged with its outbound trunk), and
:class:`DialError` a call that was not answered. When the phone answers, the headers of its
answer set the attributes the trunk maps them to (before the call turns ``active``, as in
LiveKit). A call answered speaks with :meth:`SimulatedCall.say`, on an audio track it
publishes then (:data:`PHONE_TRACK_NAME`). ``RoomService.MoveParticipant`` moves a call to
another room (:meth:`SimulatedCall.move_to`), where it goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import numpy.typing as npt
from livekit.protocol import models

from flowkit.testing.livekit_server.rooms import Participant, PublishedTrack, Room, new_sid
from flowkit.testing.livekit_server.server_audio import ServerAudioTrack
from flowkit.testing.livekit_server.sip.codes import (
    ATTR_CALL_STATUS,
    BUSY_HERE,
    DECLINE,
    NOT_FOUND,
    OK,
    CallStatus,
    SIPResponse,
)
from flowkit.testing.livekit_server.sip.headers import attributes_from_headers
from flowkit.testing.livekit_server.sip.hearing import PhoneEar
from flowkit.testing.livekit_server.sip.phones import (
    CallEnd,
    PhoneCall,
    SentTrack,
    SimulatedPhone,
)

__all__ = [
    "PHONE_TRACK_NAME",
    "DialError",
    "DialPlan",
    "SimulatedCall",
]

log = logging.getLogger("flowkit.testing.sip")


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


PHONE_TRACK_NAME = "phone"
"""The name of the audio track a call publishes when it first speaks (:meth:`SimulatedCall.say`)."""


class DialError(Exception):
    """A dialled call did not get answered: how it ended, and the phone's response if any."""

    def __init__(self, end: CallEnd, message: str, response: SIPResponse | None = None) -> None:
        super().__init__(message)
        self.end = end
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
        headers: The SIP headers the INVITE adds (the trunk's and the request's).
        host: The SIP provider's address the call goes out through ("" for none).
        headers_to_attributes: Which headers of the phone's answer fill which attributes.
        include_headers: Which headers of the answer go to ``sip.h.*`` attributes (a
            ``SIPHeaderOptions`` value).
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
    host: str = ""
    headers_to_attributes: dict[str, str] = field(default_factory=dict)
    include_headers: int = 0


class SimulatedCall:
    """A SIP participant whose far end is a simulated phone: a participant without WebRTC.

    It is the participant's :class:`~flowkit.testing.livekit_server.rooms.ParticipantLink`:
    signal messages are dropped; the tracks and data packets the room sends are recorded on
    the phone's :class:`PhoneCall` once it answered (LiveKit's SIP service subscribes then);
    ``close(reason)`` is the room hanging up. Its ``sip.callStatus`` follows the call, and
    every change reaches the room's clients. Once answered, the phone can speak
    (:meth:`say`): the call then publishes a microphone track, which the room relays to its
    clients until the call ends. ``RoomService.MoveParticipant`` moves it to another room
    (:meth:`move_to`, the warm transfer's last step), where all of this goes on.

    Attributes:
        participant: The SIP participant (kind SIP) it is the link of.
        room: The room it is in: the one it called into, or the last it was moved to.
        address: The number dialled.
        phone: The phone it reached, None when no phone has the number.
        record: That phone's record of the call, None without a phone.
        call_id: Its ``sip.callID``.
        status: The last ``sip.callStatus`` it set.
        ended: How it ended, None while it goes on.
        failure: Why it was not answered, for a call that was not.
        disconnect_reason: The ``DisconnectReason`` its participant left with.
        microphone: The audio track it publishes, once it spoke (:meth:`say`); None before,
            and again once the call ended and the track was unpublished.
    """

    _JOINS_AS: ClassVar[CallStatus] = CallStatus.DIALING
    """The ``sip.callStatus`` its participant joins with: a dialled call is not answered yet."""

    def __init__(self, room: Room, dial: DialPlan, phone: SimulatedPhone | None) -> None:
        self.room = room
        self.address = dial.address
        self.phone = phone
        self.call_id = dial.call_id
        self.status = self._JOINS_AS
        self.ended: CallEnd | None = None
        self.failure: DialError | None = None
        self.disconnect_reason: int | None = None
        self._dial = dial
        self._settled = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._started = time.monotonic()
        self.microphone: PublishedTrack | None = None
        self._ears: dict[str, PhoneEar] = {}  # by track sid: the audio the phone hears
        self.participant = Participant(
            sid=new_sid("PA"),
            identity=dial.identity,
            link=self,
            name=dial.name,
            metadata=dial.metadata,
            attributes={**dial.attributes, ATTR_CALL_STATUS: self._JOINS_AS.value},
            kind=models.ParticipantInfo.Kind.SIP,
        )
        self.record: PhoneCall | None = None
        if phone is not None:
            self.record = self._new_record(dial)
            phone.calls.append(self.record)

    def _new_record(self, dial: DialPlan) -> PhoneCall:
        """The phone's record of this call."""
        return PhoneCall(
            call_id=dial.call_id, room=self.room.name, identity=dial.identity, caller=dial.caller,
            host=dial.host, play_dialtone=dial.play_dialtone, headers=dict(dial.headers),
        )

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

    def say(self, samples: npt.NDArray[np.int16], sample_rate: int) -> None:
        """The phone speaks: play ``samples`` (mono int16) into the room, after what is queued.

        The first time, the call publishes its microphone track (named ``phone``), which the
        room announces and relays to every other participant; after the samples it plays
        silence, so the track stays live until the call ends and unpublishes it. Samples at
        another rate than 48 kHz are resampled. Playing advances only while someone is sent
        the track, so what is said before anyone subscribed waits for the first subscriber.

        Raises:
            RuntimeError: The call has ended, or is not answered yet (await
                :meth:`wait_answered` first).
            ValueError: The samples are not a 1-D int16 array, or the rate is not positive.
        """
        if self.ended is not None:
            raise RuntimeError(
                f"the call {self.call_id} ({self.address!r}) has ended ({self.ended.value}): "
                "a phone that hung up cannot speak; start a new call"
            )
        if self.status != CallStatus.ACTIVE:
            raise RuntimeError(
                f"the call {self.call_id} to {self.address!r} is not answered yet "
                f"(sip.callStatus {self.status.value}): await call.wait_answered() before "
                "call.say(...)"
            )
        if self.microphone is None:
            self.microphone = self._publish_microphone()
        assert isinstance(self.microphone.media, ServerAudioTrack)
        self.microphone.media.play(samples, sample_rate)

    def _publish_microphone(self) -> PublishedTrack:
        """Publish the phone's audio as an SDK client's microphone track would be published."""
        info = models.TrackInfo(
            sid=new_sid("TR"),
            type=models.TrackType.AUDIO,
            source=models.TrackSource.MICROPHONE,
            name=PHONE_TRACK_NAME,
            mime_type="audio/opus",  # what a subscriber is sent (the relay encodes to Opus)
        )
        track = PublishedTrack(info=info, cid=info.sid, media=ServerAudioTrack())
        self.participant.tracks[info.sid] = track
        self.room.track_arrived(self.participant, track)
        return track

    def _unpublish_microphone(self) -> None:
        """Unpublish the phone's track, so subscribers see it go before the participant leaves."""
        track, self.microphone = self.microphone, None
        if track is None:
            return
        self.room.unpublish(self.participant, track.info.sid)
        if track.media is not None:
            track.media.stop()

    def move_to(self, destination: Room) -> None:
        """Move the call's participant to ``destination``: the call goes on there.

        What ``RoomService.MoveParticipant`` does to a SIP participant (see
        :meth:`~flowkit.testing.livekit_server.rooms.Room.move`): the room's clients see it
        leave, the destination's see it join with its identity, kind, name, metadata and
        attributes (``sip.callStatus`` unchanged) and its microphone track, if the phone has
        spoken. From then on the phone is sent what the destination sends (the tracks it was
        sent here stop), :meth:`say` speaks there, and hanging up, a transfer or the
        destination's ``DeleteRoom`` end the call there. The phone's record keeps the room
        the call came from (``PhoneCall.room``).

        Raises:
            RuntimeError: The call has ended.
            ValueError: ``destination`` is the call's room, or has a participant with the
                call's identity.
        """
        if self.ended is not None:
            raise RuntimeError(
                f"the call {self.call_id} ({self.address!r}) has ended ({self.ended.value}): "
                "an ended call cannot be moved"
            )
        self.room.move(self.participant, destination)
        self.room = destination

    # ParticipantLink ----------------------------------------------------------------------------

    def send_signal(self, response: object) -> None:
        """Dropped: a phone hears no signal messages."""

    def subscribe_track(self, publisher: Participant, track: PublishedTrack) -> None:
        """Record that the phone is sent the track, if it is on the call; hear an audio one."""
        if self.record is None or self.status != CallStatus.ACTIVE:
            return
        if any(sent.sid == track.info.sid and not sent.stopped for sent in self.record.tracks):
            return  # sent already: the room offers each track once
        kind = "audio" if track.info.type == models.TrackType.AUDIO else "video"
        sent = SentTrack(publisher.identity, track.info.sid, track.info.name, kind)
        self.record.tracks.append(sent)
        if kind == "audio" and track.media is not None:
            self._ears[track.info.sid] = PhoneEar(
                track.media, sent.audio, f"{self.address} hears {publisher.identity}"
            )

    def unsubscribe_track(self, publisher: Participant, track: PublishedTrack) -> None:
        """Record that the track stopped; the phone stops hearing it."""
        ear = self._ears.pop(track.info.sid, None)
        if ear is not None:
            ear.stop()
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

    def hang_up(self) -> None:
        """The phone hangs up now: ``hangup``, then the participant leaves its room.

        For a test that ends a call at a moment of its choosing (``hang_up_after`` counts
        from the answer).
        """
        self._finish(CallEnd.PHONE_HUNG_UP, models.DisconnectReason.CLIENT_INITIATED, hangup=True)

    def hand_over(self, transfer_to: str) -> None:
        """The call was transferred: ``hangup``, then the participant leaves, as in LiveKit."""
        if self.record is not None:
            self.record.transferred_to = transfer_to
        self._finish(
            CallEnd.TRANSFERRED, models.DisconnectReason.CLIENT_INITIATED, hangup=True
        )

    async def _run(self) -> None:
        try:
            await self._play()
        except Exception:  # a bug in the simulation must not leave the call hanging
            log.exception("simulated SIP call %s failed", self.call_id)
            self._finish(CallEnd.ROOM_HUNG_UP, models.DisconnectReason.UNKNOWN_REASON)

    async def _play(self) -> None:
        """Ring the phone; once it answers, talk until the call ends."""
        response = await self._ring()
        if response == OK:
            self._answered()
            await self._talk()
        else:
            self._failed(response)

    async def _ring(self) -> SIPResponse | None:
        if self.phone is None:
            return NOT_FOUND
        return await self.phone.ring(
            self._dial.ringing_timeout, lambda: self._set_status(CallStatus.RINGING)
        )

    def _answered(self) -> None:
        assert self.record is not None and self.phone is not None  # only a phone answers
        self.record.answered_at = time.time()
        # LiveKit sets the attributes the answer's headers give before the call turns
        # active (livekit/sip pkg/sip/outbound.go), so a client sees them by then.
        extra = attributes_from_headers(
            self.phone.answer_headers, self._dial.headers_to_attributes,
            self._dial.include_headers,
        )
        if extra:
            self.room.update_participant(self.participant, attributes=extra)
        if self._dial.dtmf:
            self._set_status(CallStatus.AUTOMATION)
            self.record.dtmf = self._dial.dtmf
        self._set_status(CallStatus.ACTIVE)
        self._subscribe_published()
        self._settled.set()

    def _subscribe_published(self) -> None:
        """Take the tracks already published (LiveKit's SIP service subscribes once it is up)."""
        for other in self.room.others(self.participant):
            for track in other.tracks.values():
                if track.media is not None:
                    self.subscribe_track(other, track)

    def _hang_up_after(self) -> float | None:
        """Seconds after the answer when the phone hangs up, None for never."""
        return self.phone.hang_up_after if self.phone is not None else None

    async def _talk(self) -> None:
        """Wait for the phone to hang up, or the call's maximum duration."""
        ends: list[tuple[float, CallEnd]] = []
        hang_up_after = self._hang_up_after()
        if hang_up_after is not None:
            ends.append((hang_up_after, CallEnd.PHONE_HUNG_UP))
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
        self._unpublish_microphone()
        for ear in self._ears.values():
            ear.stop()
        self._ears.clear()
        self.room.leave(self.participant, reason)
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
