"""The LiveKit binding of a graph's room I/O: tracks, transcripts, state, chat and RPC.

:class:`LiveKitRoomIO` implements :class:`flowkit.room_io.RoomIO` and
:class:`flowkit.room_io.TrackOutputs` on an ``rtc.Room``, and adds what only a LiveKit room
has:

- ``audio_input``: a participant's microphone at the rate the graph asks for, following the
  participant leaving and coming back (:class:`~flowkit.livekit.audio.LiveKitAudioInput`);
  ``set_on_hold`` silences it while the call is on hold (a warm transfer);
- ``audio_output``: the agent's track (:class:`~flowkit.livekit.audio.LiveKitAudioOutput`);
- ``avatar_output``: the agent's voice streamed to an avatar participant instead, which
  speaks it with a face (:mod:`flowkit.livekit.avatar`);
- ``track_output``: more tracks of the agent's own beside its voice, such as background
  sound, each published under its name with source unknown (listeners mix them);
- ``publish_transcript``: a text stream on ``lk.transcription`` with LiveKit's attributes
  (:mod:`flowkit.livekit.transcripts`);
- ``set_agent_state``: the agent's state as its participant attribute ``lk.agent.state``;
- ``text_input``: what participants type, from text streams on topic ``lk.chat``;
- ``video_input``: a participant's camera or screen share
  (:class:`~flowkit.livekit.video.LiveKitVideoInput`);
- ``dtmf_input``: keys pressed on a phone (SIP DTMF packets, the room's
  ``sip_dtmf_received``), and ``publish_dtmf`` to press keys as the agent;
- ``participant_updates``: a participant's presence and attributes (a SIP call's
  ``sip.callStatus`` among them), at every change;
- ``register_rpc``: RPC methods other participants can call on the agent;
- ``publish_data``: data packets to the room.

It may be made before the room connects (a job's graph is built while it joins): what needs
the agent's own participant waits until :meth:`LiveKitRoomIO.start` (called by
:meth:`flowkit.livekit.LiveKitJob.connect`, or at once when the room is already connected).
Transcripts and state changes are sent in the order they are given, one at a time, by a
background task; a failure to send one is logged and does not stop the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import NamedTuple

from livekit import rtc

from flowkit.livekit.audio import LiveKitAudioInput, LiveKitAudioOutput, audio_publication
from flowkit.livekit.avatar import AvatarAudioOutput
from flowkit.livekit.follow import choose_participant
from flowkit.livekit.transcripts import (
    AGENT_SPEAKER,
    TOPIC_TRANSCRIPTION,
    TranscriptPacket,
    TranscriptSegments,
)
from flowkit.livekit.video import LiveKitVideoInput
from flowkit.livekit.watch import RoomWatch
from flowkit.messages import DTMF_DIGITS, DTMFDigit, ParticipantUpdate, Transcript, dtmf_code
from flowkit.ports import AudioFormat
from flowkit.room_io import RpcHandler, VideoSource

__all__ = ["ATTR_AGENT_STATE", "TOPIC_CHAT", "ChatMessage", "LiveKitRoomIO", "RpcHandler"]

logger = logging.getLogger("flowkit.livekit")

ATTR_AGENT_STATE = "lk.agent.state"
TOPIC_CHAT = "lk.chat"

_FLUSH_TIMEOUT_S = 5.0


class ChatMessage(NamedTuple):
    """A text message a participant sent on ``lk.chat``.

    Attributes:
        identity: The sender's identity.
        text: What they wrote.
    """

    identity: str
    text: str


class LiveKitRoomIO:
    """Room I/O on a LiveKit room, with tracks beside the agent's voice (see the module docs).

    Args:
        room: The room (connected or not yet).
        participant: Whom an ``audio_input`` without a participant hears (a participant
            job's participant); ``None``: the first participant that is not an agent.
        frame_size_ms: The input frames' duration; ``None`` for the SDK's (10 ms).
        track_name: The name of the agent's audio track (its voice).
        output_queue_ms: The agent audio the SDK queues ahead of what is heard (on every
            track of the agent).
        subscription_timeout: How long the first agent audio waits for a listener.
        chat_topic: The text stream topic of typed input.
        chat_backlog: Chat messages kept while nobody reads ``text_input`` (oldest dropped).
        dtmf_backlog: Key presses kept while nobody reads ``dtmf_input`` (oldest dropped).

    Raises:
        ValueError: Another handler already reads ``chat_topic`` on this room (one
            LiveKitRoomIO per room).
    """

    def __init__(
        self,
        room: rtc.Room,
        *,
        participant: str | None = None,
        frame_size_ms: int | None = None,
        track_name: str = "agent-audio",
        output_queue_ms: int = 200,
        subscription_timeout: float = 3.0,
        chat_topic: str = TOPIC_CHAT,
        chat_backlog: int = 100,
        dtmf_backlog: int = 32,
    ) -> None:
        self.room = room
        self.participant = participant
        self.agent_state: str | None = None
        self._frame_size_ms = frame_size_ms
        self._output_options = (track_name, output_queue_ms, subscription_timeout)
        self._watch = RoomWatch(room)
        self._started = self._closed = False
        self._on_hold = False
        self._segments = TranscriptSegments()
        self._heard: dict[str, str] = {}  # identity -> sid of the track last heard
        self._last_heard: str | None = None
        self._output: LiveKitAudioOutput | None = None
        self._avatar: AvatarAudioOutput | None = None  # the voice, when an avatar speaks it
        self._tracks: dict[str, LiveKitAudioOutput] = {}  # track_output's, by name
        self._outbox: asyncio.Queue[Callable[[], Awaitable[object]]] = asyncio.Queue()
        self._sender: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._rpc: dict[str, RpcHandler] = {}
        self._chat_topic = chat_topic
        self._chat_readers: list[asyncio.Queue[ChatMessage | None]] = []
        self._chat_backlog: deque[ChatMessage] = deque(maxlen=chat_backlog)
        try:
            room.register_text_stream_handler(chat_topic, self._on_chat)
        except ValueError:
            self._watch.detach()
            raise ValueError(
                f"LiveKitRoomIO: a text stream handler for {chat_topic!r} is already set on "
                "this room; make one LiveKitRoomIO per room (or unregister the other handler)"
            ) from None
        self._dtmf_readers: list[_DTMFReader] = []
        self._dtmf_backlog: deque[DTMFDigit] = deque(maxlen=dtmf_backlog)
        room.on("sip_dtmf_received", self._on_dtmf)
        if room.isconnected():
            self.start()

    # --- lifecycle

    @property
    def closed(self) -> bool:
        """Whether the room closed or :meth:`aclose` was called (inputs have ended)."""
        return self._watch.closed

    @property
    def linked_participant(self) -> str | None:
        """Whom the room's inputs are for: the I/O's participant, else whom audio last came from.

        ``None`` while no participant was given and no audio input has heard anyone.
        """
        return self.participant or self._last_heard

    def start(self) -> None:
        """Begin using the agent's participant: the room is connected. Safe to call again."""
        if self._started or self._closed:
            return
        self._started = True
        for name, handler in self._rpc.items():
            self.room.local_participant.register_rpc_method(name, handler)
        self._watch.notify()

    async def wait_ready(self) -> None:
        """Wait until :meth:`start`.

        Raises:
            RuntimeError: The room closed (or this I/O was closed) first.
        """
        while not self._started or self._closed:
            if self._watch.closed:
                raise RuntimeError(
                    f"the LiveKit room I/O cannot be used: {self._watch.close_reason}"
                )
            await self._watch.changed()

    async def flush(self) -> None:
        """Wait until every transcript and state change given so far was sent (or failed)."""
        await self._outbox.join()

    async def aclose(self) -> None:
        """Send what is queued (up to 5 s), unpublish the agent's tracks, end every input.

        Safe to call twice. The room itself stays connected: its owner disconnects it.
        """
        if self._closed:
            return
        if self._started and self.room.isconnected():
            # Not wait_for, which can lose a cancellation on Python 3.11 (see audio.py).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_FLUSH_TIMEOUT_S):
                    await self.flush()
        self._closed = True
        if self._avatar is not None:
            await self._avatar.release()
        outputs = [*([] if self._output is None else [self._output]), *self._tracks.values()]
        # Together: each unpublish waits for the server, and none depends on another; one
        # that fails must not keep the others published or this I/O half closed.
        released = await asyncio.gather(
            *(output.release() for output in outputs), return_exceptions=True
        )
        for output, result in zip(outputs, released, strict=True):
            if isinstance(result, Exception):
                logger.warning("could not release track %r: %s", output.track_name, result)
        self._watch.close("the room I/O was closed")
        self._watch.detach()
        self.room.unregister_text_stream_handler(self._chat_topic)
        self.room.off("sip_dtmf_received", self._on_dtmf)
        for reader in self._chat_readers:
            reader.put_nowait(None)
        for dtmf_reader in self._dtmf_readers:
            dtmf_reader.queue.put_nowait(None)
        for task in [self._sender, *self._tasks]:
            if task is not None:
                task.cancel()

    # --- hold

    @property
    def on_hold(self) -> bool:
        """Whether the participants are on hold: the audio inputs deliver silence."""
        return self._on_hold

    def set_on_hold(self, on_hold: bool) -> None:
        """Put the participants on hold, or take them off it.

        While on hold every audio input of this I/O delivers silence in place of what it
        hears, frame for frame, so the graph's VAD, recogniser and turn detector hear nobody
        and the agent starts no reply; the tracks stay subscribed, and taking the hold off
        resumes with the next frame. This is LiveKit Agents' disabled audio input during a
        warm transfer (:mod:`flowkit.livekit.warm_transfer`). Typed chat (``text_input``) and
        keypad entries (``dtmf_input``) that arrive while on hold are dropped too, with a
        debug log: like the audio, they were meant for whoever had the call then (nobody, or
        a human agent being briefed), and a graph that acted on them once the hold was lifted
        would answer keys and words from minutes before.
        """
        if on_hold != self._on_hold:
            logger.info("room %s: %s hold", self.room.name, "on" if on_hold else "off")
        self._on_hold = on_hold

    # --- RoomIO

    def audio_input(
        self, sample_rate: int, num_channels: int, participant: str | None = None
    ) -> LiveKitAudioInput:
        """A participant's audio at ``sample_rate`` and ``num_channels``.

        Args:
            sample_rate: The rate to deliver (the SDK resamples).
            num_channels: The channels to deliver.
            participant: The identity to hear; ``None``: the I/O's default participant, or
                the first participant that is not an agent.
        """
        want = participant if participant is not None else self.participant
        return LiveKitAudioInput(
            self._watch,
            AudioFormat(sample_rate, num_channels),
            want,
            self._frame_size_ms,
            on_track=self._on_track,
            held=lambda: self._on_hold,
        )

    def audio_output(self, sample_rate: int, num_channels: int) -> LiveKitAudioOutput:
        """The agent's audio track at this format (published on the first write).

        Raises:
            ValueError: The output is already open at another format.
            RuntimeError: This I/O was closed.
        """
        if self._closed:
            raise RuntimeError("LiveKitRoomIO.audio_output() after aclose()")
        if self._avatar is not None:
            raise ValueError(
                f"the agent's voice goes to avatar {self._avatar.identity!r}; give every room "
                "sink of the graph the same avatar, or none"
            )
        fmt = AudioFormat(sample_rate, num_channels)
        if self._output is None:
            name, queue_ms, timeout = self._output_options
            self._output = LiveKitAudioOutput(
                self.room,
                fmt,
                self.wait_ready,
                track_name=name,
                queue_ms=queue_ms,
                subscription_timeout=timeout,
            )
        elif self._output.format != fmt:
            raise ValueError(
                f"the agent's audio track is open at {self._output.format}, not {fmt}; make "
                "every TTS feeding the room sink speak one format"
            )
        return self._output

    # --- AvatarOutputs

    def avatar_output(
        self, identity: str, sample_rate: int, num_channels: int
    ) -> AvatarAudioOutput:
        """The agent's voice at this format, streamed to the avatar ``identity`` to speak.

        The agent then publishes no voice track: the avatar publishes the audio (and its
        video) on the agent's behalf (:mod:`flowkit.livekit.avatar`).

        Raises:
            ValueError: The output is already open at another format or for another avatar,
                or the agent's own voice track is.
            RuntimeError: This I/O was closed.
        """
        if self._closed:
            raise RuntimeError("LiveKitRoomIO.avatar_output() after aclose()")
        if self._output is not None:
            raise ValueError(
                "the agent already publishes its voice on a track of its own; give every room "
                "sink of the graph the same avatar, or none"
            )
        fmt = AudioFormat(sample_rate, num_channels)
        if self._avatar is None:
            self._avatar = AvatarAudioOutput(self, identity, fmt)
        elif (self._avatar.identity, self._avatar.format) != (identity, fmt):
            raise ValueError(
                f"the agent's voice goes to avatar {self._avatar.identity!r} at "
                f"{self._avatar.format}, not to {identity!r} at {fmt}; one avatar, one format"
            )
        return self._avatar

    # --- TrackOutputs

    def track_output(self, name: str, sample_rate: int, num_channels: int) -> LiveKitAudioOutput:
        """The agent's audio track ``name`` at this format, beside its voice.

        Published on the first write, under ``name`` with source ``SOURCE_UNKNOWN`` (LiveKit
        clients look for the agent's voice as its microphone track), without waiting for a
        listener (background sound must hold nothing up). Unpublished by :meth:`aclose`.

        Raises:
            ValueError: ``name`` is already open at another format, or is the voice track's.
            RuntimeError: This I/O was closed.
        """
        if self._closed:
            raise RuntimeError("LiveKitRoomIO.track_output() after aclose()")
        voice, queue_ms, _ = self._output_options
        if name == voice:
            raise ValueError(
                f"the track name {name!r} is the agent's voice track's; give the other track "
                "another name (or LiveKitRoomIO another track_name), since one participant "
                "publishing two tracks of one name leaves listeners unable to tell them apart"
            )
        fmt = AudioFormat(sample_rate, num_channels)
        output = self._tracks.get(name)
        if output is None:
            output = self._tracks[name] = LiveKitAudioOutput(
                self.room,
                fmt,
                self.wait_ready,
                track_name=name,
                queue_ms=queue_ms,
                subscription_timeout=0,
                track_source=rtc.TrackSource.SOURCE_UNKNOWN,
            )
        elif output.format != fmt:
            raise ValueError(
                f"the agent's audio track {name!r} is open at {output.format}, not {fmt}; "
                "play everything on one track at one format (or open another track name)"
            )
        return output

    def publish_transcript(self, transcript: Transcript) -> None:
        """Send ``transcript`` on ``lk.transcription`` (in order, in the background).

        ``speaker="agent"`` is the agent's speech (transcribing its own track); an identity
        of a participant is theirs; any other speaker (such as the default ``"user"``) is
        the participant heard last by an audio input.
        """
        self._send(self._transcript_sender(self.transcript_packet(transcript)))

    def transcript_packet(self, transcript: Transcript) -> TranscriptPacket:
        """The text stream that :meth:`publish_transcript` sends for ``transcript`` now."""
        if transcript.speaker == AGENT_SPEAKER:
            output = self._output
            return self._segments.packet(
                transcript, AGENT_SPEAKER, None if output is None else output.track_sid
            )
        speaker = transcript.speaker
        if speaker not in self._heard and speaker not in self._remote():
            speaker = self._last_heard or self.participant or speaker
        return self._segments.packet(transcript, speaker, self._track_of(speaker))

    # --- LiveKit only

    def set_agent_state(self, state: str) -> None:
        """Show the agent's state (``listening``, ``thinking``, ...) as ``lk.agent.state``."""
        value = str(state)
        self.agent_state = value
        self.set_attributes({ATTR_AGENT_STATE: value})

    def set_attributes(self, attributes: dict[str, str]) -> None:
        """Set attributes of the agent's participant (in order, in the background)."""
        changes = dict(attributes)
        self._send(lambda: self.room.local_participant.set_attributes(changes))

    def text_input(self) -> AsyncIterator[ChatMessage]:
        """What participants type on ``lk.chat``, from now (and the backlog) until the end.

        Every reader gets every message sent after it was made; the first reader also gets
        the messages that arrived while there was none.
        """
        reader: asyncio.Queue[ChatMessage | None] = asyncio.Queue()
        while self._chat_backlog:
            reader.put_nowait(self._chat_backlog.popleft())
        if self._closed:
            reader.put_nowait(None)
        self._chat_readers.append(reader)
        return self._read_chat(reader)

    def dtmf_input(self, participant: str | None = None) -> AsyncIterator[DTMFDigit]:
        """Keys pressed on a phone (SIP DTMF), from now (and the backlog) until the end.

        Every reader gets every press after it was made; the first reader also gets the
        presses that arrived while there was none. A press sent by the server on nobody's
        behalf has participant ``""``.

        Args:
            participant: Only this identity's presses; ``None``: the participant this I/O
                is bound to (a participant job's), or everyone's when it is bound to none.
        """
        want = participant if participant is not None else self.participant
        reader = _DTMFReader(want, asyncio.Queue())
        while self._dtmf_backlog:
            press = self._dtmf_backlog.popleft()
            if reader.wants(press):
                reader.queue.put_nowait(press)
        if self._closed:
            reader.queue.put_nowait(None)
        self._dtmf_readers.append(reader)
        return self._read_dtmf(reader)

    def participant_updates(
        self, participant: str | None = None
    ) -> AsyncIterator[ParticipantUpdate]:
        """A participant as first seen, then at each change of attributes, leaving or return.

        Ends when the room closes (with an update saying the participant is gone, if they
        were there).

        Args:
            participant: The identity to follow; ``None``: the I/O's default participant, or
                whom the audio input hears, or the first participant that is not an agent
                (then followed, as that identity, from the moment they are found).
        """
        want = participant if participant is not None else self.participant
        return self._read_participant(want)

    def video_input(
        self, participant: str | None = None, source: VideoSource = "camera"
    ) -> AsyncIterator[rtc.VideoFrame]:
        """A participant's camera or screen share, as the SDK decodes it, until the room closes.

        Args:
            participant: The identity to watch; ``None``: the I/O's default participant, or
                whom the audio input hears, or the first participant that is not an agent.
            source: ``"camera"`` or ``"screen_share"``.

        Raises:
            ValueError: ``source`` is neither.
        """
        want = participant if participant is not None else self.participant
        return LiveKitVideoInput(self._watch, want, source, linked=self._last_heard).frames()

    async def publish_dtmf(self, digit: str) -> None:
        """Press ``digit`` as the agent: SIP participants play it as a tone on their line.

        Waits until the room is connected (:meth:`wait_ready`).

        Raises:
            ValueError: ``digit`` is not a keypad key (before anything is sent).
            RuntimeError: The room closed (or this I/O was closed) first.
        """
        code = dtmf_code(digit)
        await self.wait_ready()
        await self.room.local_participant.publish_dtmf(code=code, digit=digit)

    def register_rpc(self, name: str, handler: RpcHandler) -> None:
        """Let other participants call ``name`` on the agent (``perform_rpc``).

        Args:
            name: The method name.
            handler: Gets the ``rtc.RpcInvocationData`` and returns the response (sync or
                async); an ``rtc.RpcError`` it raises reaches the caller as is.
        """
        self._rpc[name] = handler
        if self._started and not self._closed:
            self.room.local_participant.register_rpc_method(name, handler)

    def unregister_rpc(self, name: str) -> None:
        """Remove the RPC method ``name`` (nothing happens when there is none)."""
        if self._rpc.pop(name, None) is not None and self._started and not self._closed:
            self.room.local_participant.unregister_rpc_method(name)

    async def publish_data(
        self,
        payload: bytes | str,
        *,
        topic: str = "",
        reliable: bool = True,
        destination_identities: list[str] | None = None,
    ) -> None:
        """Send a data packet to the room (or to the given identities)."""
        await self.wait_ready()
        await self.room.local_participant.publish_data(
            payload,
            topic=topic,
            reliable=reliable,
            destination_identities=list(destination_identities or []),
        )

    # --- internals

    def _remote(self) -> Mapping[str, rtc.RemoteParticipant]:
        return self.room.remote_participants if self._started else {}

    def _track_of(self, identity: str) -> str | None:
        if identity in self._heard:
            return self._heard[identity]
        participant = self._remote().get(identity)
        publication = None if participant is None else audio_publication(participant)
        return None if publication is None else publication.sid

    def _on_track(self, identity: str, sid: str) -> None:
        self._heard[identity] = sid
        self._last_heard = identity

    def _transcript_sender(self, packet: TranscriptPacket) -> Callable[[], Awaitable[None]]:
        async def send() -> None:
            writer = await self.room.local_participant.stream_text(
                topic=TOPIC_TRANSCRIPTION,
                attributes=packet.attributes,
                sender_identity=packet.sender_identity,
            )
            await writer.write(packet.text)
            await writer.aclose()

        return send

    def _send(self, operation: Callable[[], Awaitable[object]]) -> None:
        if self._closed:
            return
        self._outbox.put_nowait(operation)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(
                self._send_all(), name="room sends"
            )

    async def _send_all(self) -> None:
        while True:
            operation = await self._outbox.get()
            try:
                await self.wait_ready()
                if self.room.isconnected():
                    await operation()
            except RuntimeError as exc:  # the room closed: nothing more can be sent
                logger.debug("dropped a room update: %s", exc)
            except Exception as exc:
                logger.warning("could not send a room update (transcript or state): %s", exc)
            finally:
                self._outbox.task_done()

    def _on_chat(self, reader: rtc.TextStreamReader, identity: str) -> None:
        task = asyncio.get_running_loop().create_task(
            self._receive_chat(reader, identity), name=f"chat from {identity}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _receive_chat(self, reader: rtc.TextStreamReader, identity: str) -> None:
        try:
            text = await reader.read_all()
        except Exception as exc:
            logger.warning("could not read a chat message from %s: %s", identity, exc)
            return
        if self._on_hold:
            logger.debug("dropped a chat message from %s: the call is on hold", identity)
            return
        message = ChatMessage(identity, text)
        if not self._chat_readers:
            self._chat_backlog.append(message)
        for queue in self._chat_readers:
            queue.put_nowait(message)

    def _on_dtmf(self, event: rtc.SipDTMF) -> None:
        digit = event.digit
        if not digit and 0 <= event.code < len(DTMF_DIGITS):
            digit = DTMF_DIGITS[event.code]  # a sender that gave the code only
        if not digit:
            logger.debug("dropped a DTMF packet with neither digit nor known code")
            return
        who = "" if event.participant is None else event.participant.identity
        if self._on_hold:
            logger.debug("dropped key %r pressed by %s: the call is on hold", digit, who)
            return
        press = DTMFDigit(digit=digit, code=event.code, participant=who)
        if not self._dtmf_readers:
            self._dtmf_backlog.append(press)
        for reader in self._dtmf_readers:
            if reader.wants(press):
                reader.queue.put_nowait(press)

    async def _read_participant(self, want: str | None) -> AsyncIterator[ParticipantUpdate]:
        last: ParticipantUpdate | None = None
        while True:
            closed = self._watch.closed
            if want is None:
                found = choose_participant(self.room, None, self._last_heard)
                want = found.identity if found is not None else None
            person = self.room.remote_participants.get(want) if want is not None else None
            update: ParticipantUpdate | None = None
            if person is not None and not closed:
                update = ParticipantUpdate(
                    identity=person.identity, attributes=dict(person.attributes)
                )
            elif last is not None and last.present:
                update = dataclasses.replace(last, present=False)  # as they were last seen
            if update is not None and update != last:
                last = update
                yield update
                continue  # the room may have changed while the reader had the update
            if closed:
                return
            await self._watch.changed()

    async def _read_dtmf(self, reader: _DTMFReader) -> AsyncIterator[DTMFDigit]:
        try:
            while (press := await reader.queue.get()) is not None:
                yield press
        finally:
            with contextlib.suppress(ValueError):
                self._dtmf_readers.remove(reader)

    async def _read_chat(
        self, reader: asyncio.Queue[ChatMessage | None]
    ) -> AsyncIterator[ChatMessage]:
        try:
            while (message := await reader.get()) is not None:
                yield message
        finally:
            with contextlib.suppress(ValueError):
                self._chat_readers.remove(reader)


class _DTMFReader(NamedTuple):
    """One reader of key presses: whose it hears (``None``: everyone's) and its queue."""

    participant: str | None
    queue: asyncio.Queue[DTMFDigit | None]

    def wants(self, press: DTMFDigit) -> bool:
        return self.participant is None or press.participant == self.participant
