"""Call recording: both sides of a job's conversation in one stereo WAV, written as it goes.

LiveKit Agents records a session's audio (``record=True``) for review. Here a
:class:`RecordingIO` wraps a job's room I/O: what the room source hears of the user goes to
the left channel when it arrives, and the agent's voice to the right channel when the
listener hears it (a queued output's ``queued_seconds`` says when that is; audio a barge-in
cleared from the queue was never heard, and is taken out again). Everything else the graph
does with the room goes straight through to the wrapped I/O.

The file is 16-bit PCM at 16 kHz by default (3.8 MB a minute), written a second or two
behind the conversation, with its header brought up to date at each write, so a process
that dies leaves a file that plays up to that point. A file that cannot be written (a full
disk, a folder that cannot be made) stops the recording with an error in the log, never
the call. ``flowkit start --record-dir DIR``
records every job to ``DIR/<job id>.wav`` (``Worker(record_dir=...)``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import wave
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
from livekit import rtc
from numpy.typing import NDArray

from flowkit.nodes.audio import _Resampler
from flowkit.room_io import AudioInput, AudioOutput, PushAudioInput, QueuedAudioOutput, RoomIO

__all__ = ["ConversationRecorder", "RecordingIO"]

log = logging.getLogger(__name__)

_USER, _AGENT = 0, 1
_JOIN_S = 0.06  # a frame starting this close to where its track ends continues it


class _Track:
    """One side of the recording: pieces of audio at their sample positions."""

    __slots__ = ("end", "pieces", "resampler")

    def __init__(self, rate: int) -> None:
        self.pieces: list[tuple[int, NDArray[np.int16]]] = []
        self.end = 0  # where the last piece ends
        self.resampler = _Resampler(rate, 1, "HQ")

    def add(self, frame: rtc.AudioFrame, at: int, join: int) -> None:
        converted = self.resampler.push(frame)
        if not converted:
            return
        pcm = np.concatenate([np.frombuffer(f.data, np.int16) for f in converted])
        start = self.end if abs(at - self.end) <= join else at
        self.pieces.append((start, pcm))
        self.end = start + pcm.size

    def cut(self, at: int) -> None:
        kept = []
        for start, pcm in self.pieces:
            if start >= at:
                continue
            kept.append((start, pcm[: at - start] if start + pcm.size > at else pcm))
        self.pieces = kept
        self.end = min(self.end, at)

    def take(self, begin: int, end: int, into: NDArray[np.int16]) -> None:
        """Paste what lies in ``[begin, end)`` into ``into``; forget what ends before ``end``."""
        left = []
        for start, pcm in self.pieces:
            lo, hi = max(start, begin), min(start + pcm.size, end)
            if lo < hi:
                into[lo - begin:hi - begin] = pcm[lo - start:hi - start]
            if start + pcm.size > end:
                left.append((start, pcm))
        self.pieces = left


class ConversationRecorder:
    """Both sides of a conversation on one clock, written to a stereo WAV (see the module).

    Args:
        path: The WAV file to write (its folder is made; an existing file is replaced).
        sample_rate: The recording's rate.
        clock: The time source (the running loop's clock by default); its time at
            construction is the recording's start.
        hold_s: How far behind the clock the file is written: a frame that comes later than
            this is placed as early as the file still allows, and a cut that reaches back
            further leaves what was written.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        sample_rate: int = 16_000,
        clock: Callable[[], float] | None = None,
        hold_s: float = 2.0,
    ) -> None:
        self.path = Path(path)
        self.sample_rate = sample_rate
        self._clock = clock or asyncio.get_running_loop().time
        self._origin = self._clock()
        self._hold = round(hold_s * sample_rate)
        self._join = round(_JOIN_S * sample_rate)
        self._tracks = (_Track(sample_rate), _Track(sample_rate))
        self._written = 0  # samples per channel in the file
        self._file: wave.Wave_write | None = None
        self.closed = False
        self.failed: OSError | None = None
        """Why the file could not be written (the recording stopped there), or ``None``."""

    @property
    def seconds(self) -> float:
        """The length of the file so far, in seconds."""
        return self._written / self.sample_rate

    def user(self, frame: rtc.AudioFrame) -> None:
        """The user's ``frame``, heard now."""
        self._add(_USER, frame, self._clock())

    def agent(self, frame: rtc.AudioFrame, heard_at: float) -> None:
        """The agent's ``frame``, which the listener hears from ``heard_at`` (clock time)."""
        self._add(_AGENT, frame, heard_at)

    def cut_agent(self, at: float) -> None:
        """The agent's audio from ``at`` on was not heard (a barge-in cleared it)."""
        self._tracks[_AGENT].cut(self._index(at))

    def close(self) -> None:
        """Write what is left and finish the file. Safe to call twice."""
        if self.closed:
            return
        self.closed = True
        end = max(track.end for track in self._tracks)
        self._write_until(end)
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:
                self._fail(exc)
            self._file = None

    def _index(self, at: float) -> int:
        return max(round((at - self._origin) * self.sample_rate), 0)

    def _add(self, side: int, frame: rtc.AudioFrame, at: float) -> None:
        if self.closed or self.failed is not None:
            return
        self._tracks[side].add(frame, max(self._index(at), self._written), self._join)
        self._write_until(self._index(self._clock()) - self._hold)

    def _write_until(self, end: int) -> None:
        if end <= self._written or self.failed is not None:
            return
        try:
            self._write(end)
        except OSError as exc:
            self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        # A full disk must not end the call: the recording stops, the conversation goes on.
        self.failed = exc
        log.error("cannot write the recording %s (%s); the call goes on unrecorded",
                  self.path, exc)
        for track in self._tracks:
            track.pieces.clear()

    def _write(self, end: int) -> None:
        stereo = np.zeros((end - self._written, 2), np.int16)
        for side, track in enumerate(self._tracks):
            channel = np.zeros(end - self._written, np.int16)
            track.take(self._written, end, channel)
            stereo[:, side] = channel
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = wave.open(os.fspath(self.path), "wb")  # noqa: SIM115 - close()
            self._file.setnchannels(2)
            self._file.setsampwidth(2)
            self._file.setframerate(self.sample_rate)
        # writeframes (not ...raw) updates the header's sizes: the file plays if we die.
        self._file.writeframes(stereo.tobytes())
        self._written = end


class RecordingIO:
    """A room I/O whose user audio and agent voice are recorded (see the module).

    Args:
        io: The job's room I/O; everything is passed to it.
        recorder: Where the audio goes.
    """

    def __init__(self, io: RoomIO, recorder: ConversationRecorder) -> None:
        self._io = io
        self.recorder = recorder

    def __getattr__(self, name: str) -> Any:
        # Every optional protocol of the wrapped I/O (tracks, DTMF, RPC, ...) as it is, and
        # only what it has: the room sink checks for an avatar output with isinstance.
        attribute = getattr(self._io, name)
        if name != "avatar_output":
            return attribute

        def avatar_output(identity: str, sample_rate: int, num_channels: int) -> AudioOutput:
            return _recorded_output(attribute(identity, sample_rate, num_channels),
                                    self.recorder)

        return avatar_output

    @property
    def wrapped(self) -> RoomIO:
        """The room I/O being recorded."""
        return self._io

    def audio_input(
        self, sample_rate: int, num_channels: int, participant: str | None = None
    ) -> AudioInput:
        """The wrapped input, each frame recorded on the user's side as it arrives."""
        inner = self._io.audio_input(sample_rate, num_channels, participant)
        if isinstance(inner, PushAudioInput):
            return _RecordedPushInput(inner, self.recorder)
        return _RecordedInput(inner, self.recorder)

    def audio_output(self, sample_rate: int, num_channels: int) -> AudioOutput:
        """The wrapped voice output, each frame recorded when it will be heard."""
        return _recorded_output(self._io.audio_output(sample_rate, num_channels), self.recorder)

    def publish_transcript(self, transcript: Any) -> None:
        """Passed to the wrapped I/O."""
        self._io.publish_transcript(transcript)


class _RecordedInput:
    def __init__(self, inner: AudioInput, recorder: ConversationRecorder) -> None:
        self._inner, self._recorder = inner, recorder

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def frames(self) -> AsyncIterator[rtc.AudioFrame]:
        async for frame in self._inner.frames():
            self._recorder.user(frame)
            yield frame


class _RecordedPushInput(_RecordedInput):
    def __init__(self, inner: PushAudioInput, recorder: ConversationRecorder) -> None:
        super().__init__(inner, recorder)
        self._push = inner

    async def deliver(self, on_frame: Callable[[rtc.AudioFrame], None]) -> None:
        record = self._recorder.user

        def recorded(frame: rtc.AudioFrame) -> None:
            record(frame)
            on_frame(frame)

        await self._push.deliver(recorded)


def _recorded_output(inner: AudioOutput, recorder: ConversationRecorder) -> AudioOutput:
    if isinstance(inner, QueuedAudioOutput):
        return _RecordedQueuedOutput(inner, recorder)
    return _RecordedOutput(inner, recorder)


class _RecordedOutput:
    """A voice output whose frames are recorded: heard as ``write`` returns."""

    def __init__(self, inner: AudioOutput, recorder: ConversationRecorder) -> None:
        self._inner, self._recorder = inner, recorder
        self._clock = asyncio.get_running_loop().time

    def __getattr__(self, name: str) -> Any:
        # end_segment, release, ...: the wrapped output's own.
        return getattr(self._inner, name)

    @property
    def paced(self) -> bool:
        return self._inner.paced

    def _heard_at(self, frame: rtc.AudioFrame) -> float:
        # A paced output returns when the frame is due: it starts playing now.
        return self._clock()

    async def write(self, frame: rtc.AudioFrame) -> None:
        await self._inner.write(frame)
        self._recorder.agent(frame, self._heard_at(frame))

    def clear(self) -> None:
        self._recorder.cut_agent(self._clock())
        self._inner.clear()

    async def aclose(self) -> None:
        await self._inner.aclose()


class _RecordedQueuedOutput(_RecordedOutput):
    """A queued output: a frame is heard once the audio queued before it has played."""

    def __init__(self, inner: QueuedAudioOutput, recorder: ConversationRecorder) -> None:
        super().__init__(inner, recorder)
        self._queued = inner

    @property
    def queued_seconds(self) -> float:
        return self._queued.queued_seconds

    def _heard_at(self, frame: rtc.AudioFrame) -> float:
        # Just written, so last in the queue: it starts when the rest has played.
        return self._clock() + max(self._queued.queued_seconds - frame.duration, 0.0)
