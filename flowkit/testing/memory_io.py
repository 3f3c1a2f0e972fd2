"""An in-memory :class:`~flowkit.room_io.RoomIO`: scripted user audio in, recorded agent audio out.

Tests and the test harness bind a graph's room nodes to a :class:`MemoryIO` through
``JobContext(io=MemoryIO(...))``. The user's audio is given up front (a list of frames, or one
list per participant) and can also be pushed while the graph runs (:meth:`MemoryIO.push_audio`,
:meth:`MemoryIO.end_audio`), so a test can script a user who speaks at given times. Keypad
presses (DTMF) are given and pushed the same way (:meth:`MemoryIO.push_dtmf`,
:meth:`MemoryIO.end_dtmf`), and so are camera frames (:meth:`MemoryIO.push_video`) and
participant updates (:meth:`MemoryIO.push_participant`: a SIP call's ``sip.callStatus``
going from ``dialing`` to ``active``, say). Participants call the agent's RPC methods
with :meth:`MemoryIO.call_rpc`.
Everything the agent plays is recorded with the loop time it was played at.

With ``paced=True`` both directions keep real time on the event loop's clock: input frame
``k`` is delivered at ``t0 + k * duration`` and an output ``write`` returns when its frame is
due. All waits are :func:`asyncio.sleep` to accumulated deadlines, so under virtual time
(``@pytest.mark.looptime``) a minute of audio takes no real time and the timings are exact.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Generic, TypeVar

import numpy as np
import soxr
from livekit import rtc

from flowkit.audio.frames import duration_s, frame_from_samples, samples
from flowkit.messages import DTMFDigit, ParticipantUpdate, Transcript, dtmf_code
from flowkit.nodes.audio import mix_channels
from flowkit.ports import AudioFormat
from flowkit.room_io import RpcHandler, VideoSource

__all__ = [
    "DEFAULT_PARTICIPANT",
    "MemoryAudioInput",
    "MemoryAudioOutput",
    "MemoryIO",
    "QueuedMemoryAudioOutput",
]

T = TypeVar("T")

DEFAULT_PARTICIPANT = "user"
"""The participant identity of audio given as a plain list of frames."""


def _now() -> float:
    return asyncio.get_running_loop().time()


class _Changes:
    """Wakes every reader waiting for more of something (frames, key presses)."""

    def __init__(self, ended: bool) -> None:
        self.ended = ended
        self._changed: asyncio.Event | None = None

    def notify(self) -> None:
        # A fresh event per change: every reader waiting on the old one wakes, none misses it.
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def changed(self) -> None:
        if self._changed is None:
            self._changed = asyncio.Event()
        await self._changed.wait()


class _Track(_Changes):
    """One participant's audio: frames so far, and whether more may come."""

    def __init__(self, frames: Sequence[rtc.AudioFrame], ended: bool) -> None:
        super().__init__(ended)
        self.frames = list(frames)


class _Feed(_Changes, Generic[T]):
    """Everything pushed on one input so far (key presses, camera frames), and what may come.

    Each reader reads it all, in order, from the first.

    Args:
        items: What was given up front.
        ended: Whether nothing more may be pushed.
        kind: The input's name in the push and end methods (``"dtmf"``, ``"video"``).
        what: What it is called in an error (``"keypad input"``).
    """

    def __init__(self, items: Sequence[T], ended: bool, kind: str, what: str) -> None:
        super().__init__(ended)
        self.items = list(items)
        self.kind, self.what = kind, what

    def push(self, item: T) -> None:
        if self.ended:
            raise RuntimeError(
                f"MemoryIO: push_{self.kind}() after the {self.what} ended; create the "
                f"MemoryIO with live=True and call end_{self.kind}() only after the last one"
            )
        self.items.append(item)
        self.notify()

    def end(self) -> None:
        self.ended = True
        self.notify()

    async def read(self) -> AsyncIterator[T]:
        index = 0
        while True:
            while index >= len(self.items):
                if self.ended:
                    return
                await self.changed()
            index += 1
            yield self.items[index - 1]


class _Converter:
    """Converts frames of one input format to the format a reader asked for (soxr, streaming)."""

    def __init__(self, want: AudioFormat) -> None:
        self.want = want
        self.have: AudioFormat | None = None
        self.stream: Any = None  # soxr.ResampleStream when the rates differ

    def push(self, frame: rtc.AudioFrame) -> rtc.AudioFrame | None:
        have = AudioFormat(frame.sample_rate, frame.num_channels)
        if self.have is None:
            self._start(have)
        elif have != self.have:
            raise ValueError(
                f"MemoryIO: a participant's audio changed format from {self.have} to {have}; "
                "give each participant frames of one format"
            )
        if have == self.want:
            return frame  # nothing to convert: the frame itself, zero copy
        block = samples(frame)
        if self.want.num_channels < have.num_channels:  # mix first: less to resample
            block = mix_channels(block, self.want.num_channels)
        if self.stream is not None:
            block = self.stream.resample_chunk(block)
            if block.shape[0] == 0:  # soxr holds the first samples back (filter delay)
                return None
        block = mix_channels(block, self.want.num_channels)
        return frame_from_samples(np.ascontiguousarray(block), self.want.sample_rate)

    def flush(self) -> rtc.AudioFrame | None:
        if self.stream is None or self.have is None:
            return None
        channels = min(self.have.num_channels, self.want.num_channels)
        tail = self.stream.resample_chunk(np.zeros((0, channels), np.int16), last=True)
        self.stream = None
        if tail.shape[0] == 0:
            return None
        block = mix_channels(tail, self.want.num_channels)
        return frame_from_samples(np.ascontiguousarray(block), self.want.sample_rate)

    def _start(self, have: AudioFormat) -> None:
        # Fail on the first frame, with mix_channels' explanation, not halfway through.
        mix_channels(np.zeros((0, have.num_channels), np.int16), self.want.num_channels)
        self.have = have
        if have.sample_rate != self.want.sample_rate:
            channels = min(have.num_channels, self.want.num_channels)
            self.stream = soxr.ResampleStream(
                have.sample_rate, self.want.sample_rate, channels, dtype="int16"
            )


class MemoryAudioInput:
    """One reader of a participant's audio, converted to the format it asked for.

    Each :meth:`frames` call reads the participant's audio from its first frame (like a file),
    then waits for pushed frames until :meth:`MemoryIO.end_audio`.
    """

    def __init__(self, track: _Track, want: AudioFormat, paced: bool) -> None:
        self._track = track
        self._want = want
        self._paced = paced

    @property
    def format(self) -> AudioFormat:
        """The format the frames are delivered in."""
        return self._want

    def frames(self) -> AsyncIterator[rtc.AudioFrame]:
        """The audio in the asked format; ends after the last frame once the input ended."""
        return self._read()

    async def _read(self) -> AsyncIterator[rtc.AudioFrame]:
        track, converter = self._track, _Converter(self._want)
        deadline: float | None = None
        index = 0
        while True:
            waited = False
            while index >= len(track.frames):
                if track.ended:
                    tail = converter.flush()
                    if tail is not None:
                        yield tail
                    return
                await track.changed()
                waited = True
            frame = track.frames[index]
            index += 1
            if self._paced:
                now = _now()
                # After waiting for a pushed frame the clock restarts from now, as a live
                # track does after a gap; otherwise deadlines accumulate, so no drift.
                if deadline is None or (waited and deadline < now):
                    deadline = now
                if deadline > now:
                    await asyncio.sleep(deadline - now)
                deadline += duration_s(frame)
            converted = converter.push(frame)
            if converted is not None:
                yield converted


class MemoryAudioOutput:
    """The agent's audio output: records each frame with the loop time it is played at.

    Paced, a frame starts playing when the one before it ends (or at once after a gap or a
    :meth:`clear`), and :meth:`write` returns at that moment: at most the frame being played
    is ahead of the writer, so a barge-in stops the audio within one frame.
    """

    def __init__(
        self,
        io: MemoryIO,
        fmt: AudioFormat,
        record: list[tuple[float, rtc.AudioFrame]] | None = None,
    ) -> None:
        self._io = io
        self.format = fmt
        # The agent's voice goes to io.played; a named track (track_output) to its own list.
        self._record = io.played if record is None else record
        self.closed = False
        self._head = float("-inf")  # when the audio written so far ends (paced)

    @property
    def paced(self) -> bool:
        """Whether ``write`` returns only when the frame is due."""
        return self._io.paced

    async def write(self, frame: rtc.AudioFrame) -> None:
        """Play ``frame`` after the frames written before it (see the class).

        Raises:
            ValueError: The frame's format is not the one the output was opened at.
            RuntimeError: The output was closed.
        """
        self._check(frame)
        now = _now()
        if self.paced:
            start = max(self._head, now)
            if start > now:
                await asyncio.sleep(start - now)
            self._head = start + duration_s(frame)
        self._record.append((_now(), frame))

    def _check(self, frame: rtc.AudioFrame) -> None:
        if self.closed:
            raise RuntimeError("MemoryIO: write() after aclose(); open a new audio_output()")
        have = AudioFormat(frame.sample_rate, frame.num_channels)
        if have != self.format:
            raise ValueError(
                f"MemoryIO: the output was opened at {self.format} but got a {have} frame; "
                "resample to one format before playing, or open another output"
            )

    def clear(self) -> None:
        """Stop the frame being played now; the next write plays at once."""
        now = _now()
        self._io.cleared.append(now)
        self._head = min(self._head, now)

    async def aclose(self) -> None:
        """Wait (paced) until the last frame has played, then close."""
        if self.paced and self._head > _now():
            await asyncio.sleep(self._head - _now())
        self.closed = True


class QueuedMemoryAudioOutput(MemoryAudioOutput):
    """A paced output that queues up to ``queue`` seconds ahead, as LiveKit's source does.

    ``rtc.AudioSource`` takes frames into a playout queue and returns from ``capture_frame``
    once a frame is queued; this output does the same on the loop's clock, so tests can see
    what a room sink does with audio written but not yet heard
    (:class:`~flowkit.room_io.QueuedAudioOutput`). Each frame is recorded with the loop time
    it starts playing; :meth:`clear` drops the frames not yet started and cuts the one
    playing where it was, so the record holds exactly what was heard.
    """

    def __init__(
        self,
        io: MemoryIO,
        fmt: AudioFormat,
        queue: float,
        record: list[tuple[float, rtc.AudioFrame]] | None = None,
    ) -> None:
        super().__init__(io, fmt, record)
        self.queue = queue
        self._in_flight = 0.0  # the frame of a write that has not returned (as LiveKit's)

    @property
    def queued_seconds(self) -> float:
        """Seconds written and not yet heard, less a write that has not returned."""
        return max(self._head - _now() - self._in_flight, 0.0)

    async def write(self, frame: rtc.AudioFrame) -> None:
        """Queue ``frame`` after the frames before it; return once at most ``queue`` is queued.

        Raises:
            ValueError: The frame's format is not the one the output was opened at.
            RuntimeError: The output was closed.
        """
        self._check(frame)
        now = _now()
        start = max(self._head, now)
        self._head = start + duration_s(frame)
        self._record.append((start, frame))
        self._in_flight = duration_s(frame)
        try:
            if self._head - self.queue > now:
                await asyncio.sleep(self._head - self.queue - now)
        finally:
            self._in_flight = 0.0

    def clear(self) -> None:
        """Drop what is queued: frames not yet started go, the one playing is cut."""
        now = _now()
        self._io.cleared.append(now)
        record = self._record
        while record and record[-1][0] >= now:
            record.pop()
        if record:
            start, frame = record[-1]
            heard = round((now - start) * frame.sample_rate)
            if heard < frame.samples_per_channel:
                pcm = samples(frame)[:heard].copy()
                record[-1] = (start, frame_from_samples(pcm, frame.sample_rate))
        self._head = min(self._head, now)


class MemoryIO:
    """A :class:`~flowkit.room_io.RoomIO` in memory, for tests and the test harness.

    Attributes:
        paced: Input and output keep real time on the loop's clock (see the module).
        output_queue: Seconds the outputs queue ahead of what is heard (see ``__init__``).
        played: Every frame the agent played, with the loop time it started playing (with
            a queue: what was heard; a frame cut by a clear is cut in the record too).
        cleared: The loop times at which the output was cleared (barge-ins).
        transcripts: Every transcript published, in order.
        output: The last output opened by :meth:`audio_output`, if any.
        tracks: Every frame played on each named track (:meth:`track_output`), with the
            loop time it started playing.
        dtmf_sent: Every key the agent pressed (:meth:`publish_dtmf`), in order.

    Example:
        >>> io = MemoryIO([frame] * 50, paced=True)  # doctest: +SKIP
        >>> await fk.GraphRunner(g, job=fk.JobContext(io=io)).run()  # doctest: +SKIP
    """

    def __init__(
        self,
        audio: Sequence[rtc.AudioFrame] | Mapping[str, Sequence[rtc.AudioFrame]] = (),
        *,
        paced: bool = False,
        live: bool = False,
        output_queue: float = 0.0,
        dtmf: Sequence[str | DTMFDigit] = (),
        video: Sequence[rtc.VideoFrame] = (),
        participants: Sequence[ParticipantUpdate] = (),
    ) -> None:
        """Script the user's audio.

        Args:
            audio: The user's frames (participant :data:`DEFAULT_PARTICIPANT`), or frames per
                participant identity; the first participant is the default one.
            paced: Deliver input and play output in real time on the loop's clock; when
                ``False`` both go as fast as the graph takes them.
            live: Keep every participant's input open after the given frames, for
                :meth:`push_audio`, until :meth:`end_audio`, and the keypad open after the
                given presses, for :meth:`push_dtmf`, until :meth:`end_dtmf`, and the video
                open for :meth:`push_video` until :meth:`end_video`, and the participant
                updates open for :meth:`push_participant` until :meth:`end_participants`.
                Otherwise each input ends after what was given.
            output_queue: Seconds of audio the agent's output (and each named track) may
                queue ahead of what is heard, as LiveKit's ``rtc.AudioSource`` does (200 ms
                there): ``write`` then returns up to that long before its frame plays (see
                :class:`QueuedMemoryAudioOutput`). ``0``: ``write`` returns as its frame
                starts. Needs ``paced=True``.
            dtmf: Keys pressed before anything runs: digits (pressed by the default
                participant) or whole :class:`~flowkit.messages.DTMFDigit` presses.
            video: The default participant's camera frames, delivered at once to a reader.
            participants: Participant updates that happened before anything runs. Every
                participant with audio is present from the start, without attributes:
                these come after that.

        Raises:
            ValueError: A digit in ``dtmf`` is not a keypad key, or ``output_queue`` is
                negative or set without ``paced``.
        """
        if output_queue < 0 or (output_queue > 0 and not paced):
            raise ValueError(
                f"MemoryIO: output_queue={output_queue!r} needs to be >= 0, and only a paced "
                "output has a queue: pass paced=True with it"
            )
        self.output_queue = output_queue
        tracks = dict(audio) if isinstance(audio, Mapping) else {DEFAULT_PARTICIPANT: audio}
        self.paced = paced
        self._live = live
        self._tracks = {who: _Track(frames, ended=not live) for who, frames in tracks.items()}
        self.played: list[tuple[float, rtc.AudioFrame]] = []
        self.cleared: list[float] = []
        self.transcripts: list[Transcript] = []
        self.output: MemoryAudioOutput | None = None
        self.tracks: dict[str, list[tuple[float, rtc.AudioFrame]]] = {}
        self._track_outputs: dict[str, MemoryAudioOutput] = {}
        self.dtmf_sent: list[DTMFDigit] = []
        self._keypad = _Feed(
            [self._press(key, None) for key in dtmf], not live, "dtmf", "keypad input"
        )
        self._camera = _Feed(video, not live, "video", "video input")
        present = [ParticipantUpdate(identity=who) for who in tracks]
        self._people = _Feed(
            [*present, *participants], not live, "participant", "participant updates"
        )
        self._rpc: dict[str, RpcHandler] = {}
        self._rpc_calls = 0

    @property
    def participants(self) -> list[str]:
        """The participant identities with audio, the default one first."""
        return list(self._tracks)

    def audio_input(
        self, sample_rate: int, num_channels: int, participant: str | None = None
    ) -> MemoryAudioInput:
        """A participant's audio at ``sample_rate`` and ``num_channels``, resampled if needed.

        Raises:
            KeyError: ``participant`` has no audio here.
        """
        return MemoryAudioInput(
            self._track(participant, "audio_input"),
            AudioFormat(sample_rate, num_channels),
            self.paced,
        )

    def audio_output(self, sample_rate: int, num_channels: int) -> MemoryAudioOutput:
        """The agent's output at that format (frames of another format are refused)."""
        self.output = self._open(AudioFormat(sample_rate, num_channels), None)
        return self.output

    def track_output(self, name: str, sample_rate: int, num_channels: int) -> MemoryAudioOutput:
        """The named track's output (:class:`~flowkit.room_io.TrackOutputs`), recorded apart.

        Frames played on it are kept in ``tracks[name]``, not in :attr:`played`.

        Raises:
            ValueError: ``name`` is already open at another format.
        """
        fmt = AudioFormat(sample_rate, num_channels)
        output = self._track_outputs.get(name)
        if output is None or output.closed:
            record = self.tracks.setdefault(name, [])
            output = self._track_outputs[name] = self._open(fmt, record)
        elif output.format != fmt:
            raise ValueError(
                f"MemoryIO: track {name!r} is open at {output.format}, not {fmt}; play one "
                "format on a track, or give the other audio a track of its own"
            )
        return output

    def _open(
        self, fmt: AudioFormat, record: list[tuple[float, rtc.AudioFrame]] | None
    ) -> MemoryAudioOutput:
        if self.output_queue > 0:
            return QueuedMemoryAudioOutput(self, fmt, self.output_queue, record)
        return MemoryAudioOutput(self, fmt, record)

    def publish_transcript(self, transcript: Transcript) -> None:
        """Record ``transcript`` in :attr:`transcripts`."""
        self.transcripts.append(transcript)

    def push_audio(self, frame: rtc.AudioFrame, participant: str | None = None) -> None:
        """Add a frame to a participant's input (a new identity becomes a participant).

        Raises:
            RuntimeError: That input has ended (``live=False``, or after :meth:`end_audio`).
        """
        who = participant if participant is not None else self._default()
        track = self._tracks.get(who)
        if track is None:
            track = self._tracks[who] = _Track((), ended=not self._live)
        if track.ended:
            raise RuntimeError(
                f"MemoryIO: push_audio() for {who!r} after its input ended; create the "
                "MemoryIO with live=True and call end_audio() only after the last frame"
            )
        track.frames.append(frame)
        track.notify()

    def end_audio(self, participant: str | None = None) -> None:
        """End a participant's input (every participant's when ``participant`` is ``None``)."""
        chosen = self._tracks.values() if participant is None else [self._track(participant)]
        for track in chosen:
            track.ended = True
            track.notify()

    # --- video (flowkit.room_io.VideoInputSource)

    def video_input(
        self, participant: str | None = None, source: VideoSource = "camera"
    ) -> AsyncIterator[rtc.VideoFrame]:
        """The camera's frames from the first (each reader reads all), whoever is asked for.

        Frames given to the constructor come at once; pushed ones as they are pushed, until
        :meth:`end_video` (at once after the given frames without ``live=True``).
        """
        return self._camera.read()

    def push_video(self, frame: rtc.VideoFrame) -> None:
        """Show a frame on the camera.

        Raises:
            RuntimeError: The video input has ended (``live=False``, or after
                :meth:`end_video`).
        """
        self._camera.push(frame)

    def end_video(self) -> None:
        """End the video input: readers end after the frames so far."""
        self._camera.end()

    # --- DTMF (flowkit.room_io.DTMFInputSource and DTMFOutput)

    def dtmf_input(self, participant: str | None = None) -> AsyncIterator[DTMFDigit]:
        """Every key press from the first (like :meth:`audio_input`, each reader reads all).

        Presses given to the constructor come at once; pushed ones as they are pushed, until
        :meth:`end_dtmf` (at once after the given presses without ``live=True``).

        Args:
            participant: Only this identity's presses; ``None``: everyone's.
        """
        return self._read_dtmf(participant)

    def push_dtmf(self, press: str | DTMFDigit, participant: str | None = None) -> None:
        """Press a key as ``participant`` (the default participant when ``None``).

        Args:
            press: A digit of :data:`~flowkit.messages.DTMF_DIGITS` (its code is filled in),
                or a whole :class:`~flowkit.messages.DTMFDigit` (sent as it is, for odd
                packets; ``participant`` is then ignored).
            participant: Who pressed it.

        Raises:
            ValueError: ``press`` is not a keypad key.
            RuntimeError: The keypad input has ended (``live=False``, or after
                :meth:`end_dtmf`).
        """
        self._keypad.push(self._press(press, participant))

    def end_dtmf(self) -> None:
        """End the keypad input: readers end after the presses so far."""
        self._keypad.end()

    async def publish_dtmf(self, digit: str) -> None:
        """Record a key the agent pressed in :attr:`dtmf_sent` (participant ``"agent"``).

        Raises:
            ValueError: ``digit`` is not a keypad key.
        """
        self.dtmf_sent.append(DTMFDigit(digit=digit, code=dtmf_code(digit), participant="agent"))

    # --- participants (flowkit.room_io.ParticipantUpdates)

    def participant_updates(
        self, participant: str | None = None
    ) -> AsyncIterator[ParticipantUpdate]:
        """One participant's updates from the first, skipping one equal to the one before.

        Given updates come at once; pushed ones as they are pushed, until
        :meth:`end_participants` (at once after the given ones without ``live=True``).

        Args:
            participant: The identity to follow; ``None``: the default participant (the
                first one with audio, else :data:`DEFAULT_PARTICIPANT`).
        """
        return self._read_people(participant if participant is not None else self._default())

    def push_participant(
        self,
        identity: str,
        attributes: Mapping[str, str] | None = None,
        *,
        present: bool = True,
    ) -> ParticipantUpdate:
        """Say where a participant is now: their attributes, or that they left.

        Args:
            identity: Who.
            attributes: All their attributes now (e.g. ``{"sip.callStatus": "active"}``).
            present: ``False``: they left the room.

        Returns:
            The update pushed.

        Raises:
            RuntimeError: The participant updates have ended (``live=False``, or after
                :meth:`end_participants`).
        """
        update = ParticipantUpdate(
            identity=identity, attributes=dict(attributes or {}), present=present
        )
        self._people.push(update)
        return update

    def end_participants(self) -> None:
        """End the participant updates (the room closed): readers end after those so far."""
        self._people.end()

    def register_rpc(self, name: str, handler: RpcHandler) -> None:
        """Let :meth:`call_rpc` call ``name`` (as participants call the agent in a room)."""
        self._rpc[name] = handler

    def unregister_rpc(self, name: str) -> None:
        """Remove the RPC method ``name`` (nothing happens when there is none)."""
        self._rpc.pop(name, None)

    @property
    def rpc_methods(self) -> list[str]:
        """The RPC methods registered now."""
        return list(self._rpc)

    async def call_rpc(
        self, name: str, payload: str = "", participant: str | None = None
    ) -> str:
        """Call the agent's RPC method ``name`` as ``participant``; its response.

        Raises:
            rtc.RpcError: No such method (``UNSUPPORTED_METHOD``, as LiveKit answers), or what
                the handler raised.
        """
        handler = self._rpc.get(name)
        if handler is None:
            raise rtc.RpcError(
                rtc.RpcError.ErrorCode.UNSUPPORTED_METHOD,
                f"no RPC method {name!r}; registered: {sorted(self._rpc)}",
            )
        who = participant if participant is not None else self._default()
        self._rpc_calls += 1
        call = rtc.RpcInvocationData(
            request_id=f"RPC_{self._rpc_calls}", caller_identity=who, payload=payload,
            response_timeout=10.0, method=name,
        )
        response = handler(call)
        return await response if not isinstance(response, str) else response

    async def _read_people(self, identity: str) -> AsyncIterator[ParticipantUpdate]:
        last: ParticipantUpdate | None = None
        async for update in self._people.read():
            if update.identity == identity and update != last:
                last = update
                yield update

    def _press(self, press: str | DTMFDigit, participant: str | None) -> DTMFDigit:
        if isinstance(press, DTMFDigit):
            return press
        who = participant if participant is not None else self._default()
        return DTMFDigit(digit=press, code=dtmf_code(press), participant=who)

    async def _read_dtmf(self, participant: str | None) -> AsyncIterator[DTMFDigit]:
        async for press in self._keypad.read():
            if participant is None or press.participant == participant:
                yield press

    @property
    def played_duration(self) -> float:
        """Seconds of agent audio played."""
        return sum(duration_s(frame) for _, frame in self.played)

    def _default(self) -> str:
        return next(iter(self._tracks), DEFAULT_PARTICIPANT)

    def _track(self, participant: str | None, method: str = "end_audio") -> _Track:
        who = participant if participant is not None else self._default()
        track = self._tracks.get(who)
        if track is None:
            if participant is None:  # no audio at all: an input that ends at once
                track = self._tracks[who] = _Track((), ended=not self._live)
                return track
            known = ", ".join(repr(p) for p in self._tracks) or "none"
            raise KeyError(
                f"MemoryIO.{method}: no participant {participant!r} (participants: {known}); "
                "give its frames in MemoryIO({identity: frames}) or push_audio(frame, identity)"
            )
        return track
