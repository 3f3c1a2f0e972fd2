"""Offline room I/O: a graph hears a WAV file and speaks into another (``flowkit run``).

:class:`OfflineIO` is a :class:`~flowkit.room_io.RoomIO` bound to files. The room source
hears the input file, converted to the format it asks for, in 20 ms frames; the room sink's
audio goes to the output file. Both run on one *session clock*:

- as fast as possible (the default), the session time is the input seconds delivered so far:
  the conversation advances as the graph consumes the input;
- with ``realtime=True``, the session time is loop time since the session started: input
  frames are handed over when they would have been recorded, and ``write`` returns when its
  frame is due to play.

The output WAV is a faithful picture of the conversation, on the input's clock, so the two
files can be played side by side or mixed: **a frame is placed at max(end of the output so
far, session time now)**, silence filling any gap. Audio played on other tracks
(:meth:`OfflineIO.track_output`, e.g. background sound) is placed the same way on a timeline
of its own and mixed into the output file when the run ends. A reply that starts while the output is
idle therefore starts when (in input time) the agent began to speak; frames that follow one
another stay contiguous. Closing pads the output with silence to the session time, so it is
at least as long as the part of the input that was heard.

Keys pressed on a telephone keypad (DTMF) can be scripted too (``dtmf=``, ``flowkit run
--dtmf 4.0:1234#``): each entry's keys are pressed from its session time on, a quarter of a
second apart, as a caller types them, for a graph with a
:class:`~flowkit.nodes.dtmf.DTMFInput`.

Caveat of as-fast-as-possible runs: the input clock moves as fast as the graph reads, so a
node slower than the input (a model on a thread) lets the input race ahead, and the agent's
audio lands later in the picture than it would live. ``realtime=True`` gives true timings.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np
import soxr
from livekit import rtc

from flowkit.audio.frames import (
    duration_s,
    frame_format,
    frame_from_samples,
    samples,
    samples_for,
)
from flowkit.audio.wav import WavInfo, WavWriter, probe, read_frames
from flowkit.images import load_frame
from flowkit.messages import DTMF_DIGITS, DTMFDigit, Transcript, dtmf_code
from flowkit.nodes.audio import _Rechunker, _Resampler, mix_channels
from flowkit.ports import AudioFormat
from flowkit.room_io import VideoSource

__all__ = [
    "FRAME_MS",
    "KEY_GAP_S",
    "KeyEntry",
    "OfflineAudioInput",
    "OfflineAudioOutput",
    "OfflineIO",
]

FRAME_MS = 20.0
"""The duration of each input frame handed to the room source (the last may be shorter)."""

KEY_GAP_S = 0.25
"""Seconds between two keys of one scripted :class:`KeyEntry` (a caller's typing pace)."""

StrPath = str | os.PathLike[str]


class KeyEntry(NamedTuple):
    """Keys the offline participant presses: ``keys`` in turn from ``at`` seconds on.

    Attributes:
        at: Session seconds (input seconds) of the first key.
        keys: The keys, each one of :data:`~flowkit.messages.DTMF_DIGITS` (``"1234#"``).
    """

    at: float
    keys: str

# Silence is written in pieces of at most this many seconds: a long gap (the agent silent
# for minutes) must not allocate one huge frame.
_SILENCE_CHUNK_S = 1.0


class OfflineIO:
    """Room I/O on files: the user is read from one WAV file, the agent written to another.

    The input file is checked here (:func:`flowkit.audio.probe`), so a bad file fails before
    any graph starts. The input is one participant: ``participant`` is ignored.

    Args:
        input_path: The user's audio: a 16-bit PCM WAV file, any rate and channel count.
        output_path: Where the agent's audio is written (created or overwritten).
        realtime: Pace input and output at the audio's own speed instead of as fast as
            possible.
        camera: An image file the participant's camera shows for the whole session (read
            here, by :func:`flowkit.images.load_frame`), for a graph that looks through a
            :class:`~flowkit.nodes.video.VideoInput`; ``None``: no camera.
        dtmf: Keypad entries the participant presses, for a graph with a
            :class:`~flowkit.nodes.dtmf.DTMFInput`; the keys of an entry are
            :data:`KEY_GAP_S` apart. Empty: no keypad (the node then ends at once).

    Attributes:
        input_info: The input file's header (format, length).
        output_path: The output file.
        realtime: Whether the session runs in real time.
        transcripts: Every transcript published, in order (user and agent).
        clears: The session times at which the output was cleared (barge-ins).
        tracks: The outputs opened with :meth:`track_output`, by track name.
        file_duration: Seconds of audio in the output file once :meth:`aclose` wrote it
            (``None`` before, or when no file was made): the agent's voice with the other
            tracks mixed in, so longer than ``output.duration`` when a track outlasts it.

    Raises:
        AudioFileError: The input file is missing, empty, not a WAV, not 16-bit PCM, or holds
            no audio.
        ValueError: ``output_path`` is the input file, ``camera`` is not an image, or a
            ``dtmf`` entry has a key that is not on a keypad or starts outside the input.
        FileNotFoundError: There is no ``camera`` file.
    """

    def __init__(
        self,
        input_path: StrPath,
        output_path: StrPath,
        *,
        realtime: bool = False,
        camera: StrPath | None = None,
        dtmf: Sequence[KeyEntry | tuple[float, str]] = (),
    ) -> None:
        self.input_info: WavInfo = probe(input_path)
        self._presses = _presses_of(dtmf, self.input_info)
        self.camera: rtc.VideoFrame | None = None if camera is None else load_frame(camera)
        self.output_path = Path(output_path)
        if self.output_path.resolve() == Path(input_path).resolve():
            raise ValueError(
                f"{output_path}: the output file is the input file; writing it would destroy "
                "the input, so give another --output path"
            )
        self.realtime = realtime
        self.transcripts: list[Transcript] = []
        self.clears: list[float] = []
        self._inputs: list[OfflineAudioInput] = []
        self._output: OfflineAudioOutput | None = None
        self.tracks: dict[str, OfflineAudioOutput] = {}
        self._recordings: dict[str, _TrackRecording] = {}  # what each track wrote
        self._origin: float | None = None
        self._closed = False
        self.file_duration: float | None = None
        # As fast as possible, a scripted key press waits for the input to reach its time.
        self._input_moved: asyncio.Future[None] | None = None
        self._input_over = False

    @property
    def input_duration(self) -> float:
        """The input's length in seconds (the progress bar's total)."""
        return self.input_info.duration

    @property
    def input_position(self) -> float:
        """Seconds of input delivered to the graph so far (the progress bar's position)."""
        return max((i.position for i in self._inputs), default=0.0)

    @property
    def output(self) -> OfflineAudioOutput | None:
        """The agent's output, once a room sink opened it."""
        return self._output

    def session_time(self) -> float:
        """Seconds since the session started on its clock (see the module docs)."""
        if self.realtime:
            return asyncio.get_running_loop().time() - self.origin()
        return self.input_position

    def origin(self) -> float:
        """The loop time at which the session started (its first input frame or write)."""
        if self._origin is None:
            self._origin = asyncio.get_running_loop().time()
        return self._origin

    def audio_input(
        self, sample_rate: int, num_channels: int, participant: str | None = None
    ) -> OfflineAudioInput:
        """The input file's audio at ``sample_rate`` and ``num_channels``, in 20 ms frames.

        Args:
            sample_rate: The rate the room source wants; the file is resampled (soxr) if it
                differs.
            num_channels: The channel count wanted: N channels are averaged to mono, mono is
                copied to N.
            participant: Ignored: the file is the only participant.

        Raises:
            ValueError: 20 ms is not a whole number of samples at ``sample_rate``, or the
                file's channels cannot be mixed into ``num_channels`` (e.g. 6 to 2).
        """
        samples_for(FRAME_MS, sample_rate)  # a rate without whole 20 ms frames fails here
        have = self.input_info.format.num_channels
        try:
            mix_channels(np.zeros((0, have), np.int16), num_channels)
        except ValueError as exc:
            raise ValueError(f"{self.input_info.path}: {exc}") from None
        source = OfflineAudioInput(self, AudioFormat(sample_rate, num_channels))
        self._inputs.append(source)
        return source

    def audio_output(self, sample_rate: int, num_channels: int) -> OfflineAudioOutput:
        """The agent's output, writing ``output_path`` at this format.

        A second call with the same format returns the same output (a WAV file has one).

        Raises:
            ValueError: The output is already open at another format.
            RuntimeError: The output was closed.
        """
        fmt = AudioFormat(sample_rate, num_channels)
        if self._output is None:
            self._output = OfflineAudioOutput(self, fmt)
        elif self._output.format != fmt:
            raise ValueError(
                f"{self.output_path}: the output is open at {self._output.format}, not {fmt}; "
                "a WAV file has one format, so resample the agent's audio to it"
            )
        if self._output.closed:
            raise RuntimeError(
                f"{self.output_path}: the output was closed; an offline run writes one file"
            )
        return self._output

    def track_output(self, name: str, sample_rate: int, num_channels: int) -> OfflineAudioOutput:
        """Another track of audio (:class:`~flowkit.room_io.TrackOutputs`), e.g. background sound.

        It is kept in memory on the session clock like the agent's output and mixed into the
        output file by :meth:`aclose` (converted to the output's format), so the file holds
        what a listener in the room would hear. Memory: about 5.6 MiB per minute of 48 kHz
        mono audio played on the track.

        Raises:
            ValueError: ``name`` is already open at another format.
            RuntimeError: The run's output was closed.
        """
        if self._closed:
            raise RuntimeError(
                f"{self.output_path}: track_output({name!r}) after the run's output was closed"
            )
        fmt = AudioFormat(sample_rate, num_channels)
        output = self.tracks.get(name)
        if output is None:
            label = f"{self.output_path} (track {name!r})"
            recording = self._recordings[name] = _TrackRecording(fmt)
            output = self.tracks[name] = OfflineAudioOutput(self, fmt, recording, label)
        elif output.format != fmt:
            raise ValueError(
                f"{self.output_path}: track {name!r} is open at {output.format}, not {fmt}; "
                "play one format on a track, or give the other audio a track of its own"
            )
        return output

    def video_input(
        self, participant: str | None = None, source: VideoSource = "camera"
    ) -> AsyncIterator[rtc.VideoFrame]:
        """The ``camera`` image, once, as the participant's camera (nothing without one).

        A still image needs no more frames: the LLM shows the image to the model with the
        first user turn, and it stays in the conversation's history.
        """
        return self._camera_frames(source)

    async def _camera_frames(self, source: VideoSource) -> AsyncIterator[rtc.VideoFrame]:
        if self.camera is not None and source == "camera":
            yield self.camera

    def dtmf_input(self, participant: str | None = None) -> AsyncIterator[DTMFDigit]:
        """The ``dtmf`` entries' presses, each at its session time; ends after the last.

        Presses are the participant ``"user"``'s. In a run that is not real time a press
        comes once the input has been heard up to its time (or has ended).
        """
        return self._keypad()

    async def _keypad(self) -> AsyncIterator[DTMFDigit]:
        for at, digit in self._presses:
            await self._until(at)
            yield DTMFDigit(digit=digit, code=dtmf_code(digit))

    async def _until(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        if self.realtime:
            delay = self.origin() + seconds - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            return
        while self.input_position < seconds and not self._input_over:
            if self._input_moved is None:
                self._input_moved = loop.create_future()
            await asyncio.shield(self._input_moved)

    def _moved(self, *, over: bool = False) -> None:
        """The input advanced (or ended): wake the scripted presses waiting for it."""
        self._input_over = self._input_over or over
        moved, self._input_moved = self._input_moved, None
        if moved is not None and not moved.done():
            moved.set_result(None)

    def publish_transcript(self, transcript: Transcript) -> None:
        """Record a transcript (``transcripts``), for the run's printout."""
        self.transcripts.append(transcript)

    async def aclose(self) -> None:
        """Finish the output file; write silence as long as the input heard if no sink did.

        Audio played on other tracks is then mixed into it. Safe to call twice. With no
        input heard and no audio written, no file is made.
        """
        if self._closed:
            return
        self._closed = True
        for track in self.tracks.values():
            await track.aclose()
        played = [self._recordings[n] for n, t in self.tracks.items() if t.duration > 0]
        if self._output is None and (self.input_position > 0 or played):
            # No agent audio: the picture of the conversation is the agent staying silent.
            self._output = OfflineAudioOutput(self, self.input_info.format)
        if self._output is not None:
            await self._output.aclose()
            self.file_duration = self._output.duration
            if played:
                self.file_duration = _mix_into(self.output_path, self._output, played)


class OfflineAudioInput:
    """The input file as the room source asked for it (see :meth:`OfflineIO.audio_input`).

    Attributes:
        format: The format frames are delivered in.
        position: Seconds of audio delivered by the current :meth:`frames` iteration.
    """

    def __init__(self, io: OfflineIO, fmt: AudioFormat) -> None:
        self._io = io
        self.format = fmt
        self.position = 0.0

    async def frames(self) -> AsyncIterator[rtc.AudioFrame]:
        """The file's audio in 20 ms frames (the last may be shorter); ends with the file.

        As fast as possible, the loop gets a turn after every frame so the rest of the graph
        keeps up with the input (the session clock is the input). In real time, a frame is
        handed over once it would have been recorded: at the session time of its end.
        """
        io, fmt = self._io, self.format
        info = io.input_info
        resampler = _Resampler(fmt.sample_rate, fmt.num_channels, "HQ")
        rechunker = _Rechunker(FRAME_MS)
        self.position = 0.0
        for piece in read_frames(info.path, _read_ms(info.format.sample_rate)):
            for resampled in resampler.push(piece):
                for frame in rechunker.push(resampled):
                    yield await self._deliver(frame)
        for resampled in resampler.flush():
            for frame in rechunker.push(resampled):
                yield await self._deliver(frame)
        for frame in rechunker.flush():
            yield await self._deliver(frame)
        io._moved(over=True)

    async def _deliver(self, frame: rtc.AudioFrame) -> rtc.AudioFrame:
        end = self.position + duration_s(frame)
        if self._io.realtime:
            delay = self._io.origin() + end - asyncio.get_running_loop().time()
            if delay > 0:
                await asyncio.sleep(delay)
        else:
            await asyncio.sleep(0)
        self.position = end
        self._io._moved()
        return frame


def _presses_of(
    entries: Sequence[KeyEntry | tuple[float, str]], info: WavInfo
) -> list[tuple[float, str]]:
    """Each scripted key with its session time, in time order, checked against the input."""
    presses: list[tuple[float, str]] = []
    for at, keys in entries:
        wrong = sorted({key for key in keys if key not in DTMF_DIGITS})
        if not keys or wrong:
            raise ValueError(
                f"keypad entry {keys!r} at {at:g} s: "
                + (f"{', '.join(map(repr, wrong))} is not a keypad key" if wrong else "no keys")
                + f"; press keys of {DTMF_DIGITS!r}"
            )
        if not 0.0 <= at <= info.duration:
            raise ValueError(
                f"keypad entry {keys!r} at {at:g} s is outside {info.path} "
                f"({info.duration:.2f} s long); press keys while the input is heard"
            )
        presses.extend((at + i * KEY_GAP_S, key) for i, key in enumerate(keys))
    return sorted(presses, key=lambda press: press[0])


def _read_ms(rate: int) -> float:
    """A read size that is a whole number of samples at ``rate`` (rechunking fixes the rest)."""
    return FRAME_MS if (rate * FRAME_MS) % 1000 == 0 else 1000.0


class OfflineAudioOutput:
    """The agent's audio, written to the output file on the session clock.

    ``clear()`` cannot take back what was written (a file cannot unplay): it drops nothing
    and records the session time in :attr:`OfflineIO.clears`. In real time nothing is queued
    beyond the frame now playing anyway, since ``write`` returns only when its frame is due.

    Attributes:
        format: The output's format.
        closed: Whether :meth:`aclose` finished the file.
    """

    def __init__(
        self,
        io: OfflineIO,
        fmt: AudioFormat,
        writer: _FrameWriter | None = None,
        label: str | None = None,
    ) -> None:
        self._io = io
        self.format = fmt
        self.closed = False
        self._label = label if label is not None else str(io.output_path)
        self._writer = writer if writer is not None else WavWriter(io.output_path)
        self._end = 0  # samples per channel written, silence included

    @property
    def paced(self) -> bool:
        """Whether ``write`` returns only when its frame is due (real time)."""
        return self._io.realtime

    @property
    def duration(self) -> float:
        """Seconds written so far, silence included."""
        return self._end / self.format.sample_rate

    async def write(self, frame: rtc.AudioFrame) -> None:
        """Write ``frame`` at max(end of output, session time); in real time, wait until due.

        Raises:
            ValueError: The frame's format is not the output's (resample before the sink).
            RuntimeError: The output was closed.
        """
        if self.closed:
            raise RuntimeError(f"{self._label}: write() after aclose()")
        have = frame_format(frame)
        if have != self.format:
            raise ValueError(
                f"{self._label}: the output was opened at {self.format} but got a "
                f"{have} frame; resample the agent's audio to {self.format} before the sink"
            )
        self._pad_to(self._io.session_time())
        start = self._end
        self._writer.write(frame)
        self._end += frame.samples_per_channel
        if self.paced:
            await self._sleep_until(start)

    def clear(self) -> None:
        """Record a barge-in; nothing already written is dropped (see the class docs)."""
        self._io.clears.append(self._io.session_time())

    async def aclose(self) -> None:
        """Pad with silence to the session time, wait for the end in real time, finish."""
        if self.closed:
            return
        self._pad_to(self._io.session_time())
        if self.paced:
            await self._sleep_until(self._end)
        self.closed = True
        self._writer.close()

    def _pad_to(self, seconds: float) -> None:
        rate, channels = self.format.sample_rate, self.format.num_channels
        gap = round(seconds * rate) - self._end
        chunk = int(_SILENCE_CHUNK_S * rate)
        while gap > 0:
            count = min(gap, chunk)
            self._writer.write(rtc.AudioFrame.create(rate, channels, count))
            self._end += count
            gap -= count

    async def _sleep_until(self, position: int) -> None:
        due = self._io.origin() + position / self.format.sample_rate
        delay = due - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)


class _FrameWriter(Protocol):
    """Where an :class:`OfflineAudioOutput` puts its frames: a WAV file, or memory."""

    def write(self, frame: rtc.AudioFrame) -> None: ...

    def close(self) -> None: ...


class _TrackRecording:
    """A track's audio kept in memory until the run's end mixes it into the output file."""

    def __init__(self, fmt: AudioFormat) -> None:
        self.format = fmt
        self.blocks: list[np.ndarray] = []

    def write(self, frame: rtc.AudioFrame) -> None:
        # A copy: the frame's buffer may be reused by whoever made it.
        self.blocks.append(samples(frame).copy())

    def close(self) -> None:
        pass


def _mix_into(path: Path, output: OfflineAudioOutput, tracks: list[_TrackRecording]) -> float:
    """Add every track's audio to the closed output's WAV file at ``path``, in place.

    Each track is converted to the file's rate (soxr) and channel count; the sum is clipped
    to 16 bits. The file grows to the longest track.

    Returns:
        The file's length in seconds.
    """
    fmt = output.format
    mixed = np.zeros((0, fmt.num_channels), np.int32)
    if output.duration > 0:  # a WAV with no samples is refused by read_frames
        mixed = np.concatenate([samples(f).astype(np.int32) for f in read_frames(path, 1000.0)])
    for track in tracks:
        audio = mix_channels(np.concatenate(track.blocks), fmt.num_channels)
        if track.format.sample_rate != fmt.sample_rate:
            # In float: soxr dithers int16 output, which would put noise on the silence.
            resampled = soxr.resample(
                audio.astype(np.float32), track.format.sample_rate, fmt.sample_rate, "HQ"
            )
            audio = np.rint(resampled).astype(np.int32)
        if len(audio) > len(mixed):
            mixed = np.pad(mixed, ((0, len(audio) - len(mixed)), (0, 0)))
        mixed[: len(audio)] += audio
    out = np.clip(mixed, -32768, 32767).astype(np.int16)
    with WavWriter(path) as writer:
        writer.write(frame_from_samples(out, fmt.sample_rate))
    return len(out) / fmt.sample_rate
