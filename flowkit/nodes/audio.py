"""Audio nodes: resample, rechunk, downmix, and WAV files as sources and sinks.

Every node here takes and gives :class:`livekit.rtc.AudioFrame` and works on zero-copy numpy
views of the frames (:func:`flowkit.audio.samples`). A copy is made only where the output
is new audio (resampled, mixed) or where samples from several frames must sit in one
buffer (rechunking); a frame that needs no change is passed on as it is.

Importing this module registers :class:`Resample` as the converter for ``AudioFrame`` ports,
so a graph inserts one wherever a producer's format differs from what a consumer declares
(see :func:`resample_converter` for which differences it handles).
"""

from __future__ import annotations

import asyncio
import functools
import typing
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import pydantic
import soxr
from livekit import rtc
from numpy.typing import NDArray
from reactivex import Observable

from flowkit.audio.frames import duration_s, frame_from_samples, samples, samples_for
from flowkit.audio.wav import WavInfo, WavWriter, probe, read_frames
from flowkit.converters import register_converter
from flowkit.node import Node, NodeParams
from flowkit.policy import ErrorPolicy
from flowkit.ports import AudioFormat, In, Out
from flowkit.runtime.stage import Stage

__all__ = [
    "Downmix",
    "Rechunk",
    "Resample",
    "ResampleQuality",
    "WavSink",
    "WavSource",
    "convert_recording",
    "converted_recording",
    "mix_channels",
    "resample_converter",
]

T = TypeVar("T")
R = TypeVar("R")

ResampleQuality = Literal["QQ", "LQ", "MQ", "HQ", "VHQ"]
"""soxr's quality presets, from quick cubic interpolation (QQ) to very high (VHQ)."""

# Measured, the longest filter (VHQ, 44.1 to 16 kHz) settles in 136 ms; tests/nodes hold
# every preset to this.
SILENCE_SETTLES_MS = 250
"""Milliseconds of digital silence (input time) after which every soxr filter holds only
zeros, and :class:`Resample` makes the output of more silence without calling soxr."""

# The longest period (in frames) of soxr's output counts looked for: the common presets and
# rates repeat within 500 frames (HQ 44.1 to 16 kHz in 10 ms frames: 496).
_MAX_PATTERN_FRAMES = 1200


class _OutputPattern:
    """How many samples a soxr stream gives for each frame of one length, by frame index.

    soxr works in blocks of its own, so a stream's output per frame follows a pattern set by
    the input's position alone (48 to 16 kHz at LQ in 20 ms frames: 300 samples 16 times in
    15 frames, none the rest). Resample's silence shortcut follows it, so that a stream's
    frames come out as long as soxr's would: then many sessions' VAD windows still complete
    in the same loop iterations, and batch together.
    """

    __slots__ = ("counts", "period")

    def __init__(self, counts: list[int], period: int) -> None:
        self.counts = counts
        self.period = period

    def at(self, frame: int) -> int:
        """The output samples of the frame with this index (0 is the stream's first)."""
        counts = self.counts
        if frame < len(counts):
            return counts[frame]
        start = len(counts) - self.period
        return counts[start + (frame - start) % self.period]


@functools.lru_cache(maxsize=32)
def _output_pattern(
    rate_in: int, rate_out: int, channels: int, quality: str, length: int
) -> _OutputPattern | None:
    """The output counts of a soxr stream for frames of ``length`` samples, learnt on zeros.

    ``None`` when they do not repeat within :data:`_MAX_PATTERN_FRAMES` frames.
    """
    stream = soxr.ResampleStream(rate_in, rate_out, channels, dtype="int16", quality=quality)
    zeros = np.zeros((length, channels), np.int16)
    counts: list[int] = []
    while len(counts) < 3 * _MAX_PATTERN_FRAMES + 64:
        counts += [stream.resample_chunk(zeros).shape[0] for _ in range(64)]
        for period in range(1, len(counts) // 3 + 1):
            last = counts[-period:]
            if (
                sum(last) * rate_in == period * length * rate_out
                and last == counts[-2 * period : -period]
                and last == counts[-3 * period : -2 * period]
            ):
                return _OutputPattern(counts, period)
    return None

# A non-realtime WavSource yields to the loop this often, so a long file read in one go
# does not starve the other tasks of the job (timers, the room connection).
_YIELD_EVERY = 50


def mix_channels(block: NDArray[np.int16], channels: int) -> NDArray[np.int16]:
    """Convert ``(n, c)`` samples to ``channels`` channels: average down, or copy mono up.

    Only the conversions with one obvious meaning are done: ``c`` to 1 (the mean of the
    channels, rounded down), 1 to ``channels`` (the mono signal on every channel), and ``c``
    to ``c`` (``block`` itself, no copy).

    Args:
        block: Samples, shape ``(n, c)``.
        channels: The channel count wanted.

    Returns:
        Samples of shape ``(n, channels)``; a new array unless nothing changes.

    Raises:
        ValueError: Any other conversion (e.g. 6 to 2 needs a mixing matrix that depends on
            the speaker layout); downmix to mono first, or mix with your own node.
    """
    have = block.shape[1]
    if have == channels:
        return block
    if channels == 1:
        # int32 sum: the int16 sum of two loud channels would wrap around.
        total = block.sum(axis=1, dtype=np.int32, keepdims=True)
        return typing.cast(NDArray[np.int16], (total // have).astype(np.int16))
    if have == 1:
        return typing.cast(NDArray[np.int16], np.repeat(block, channels, axis=1))
    raise ValueError(
        f"cannot mix {have} channels into {channels}: only N to 1 (average) and 1 to N (copy) "
        "have one meaning; downmix to mono first (Downmix(channels=1)), or write a node with "
        "the mixing matrix for your speaker layout"
    )


def _can_mix(have: int, want: int) -> bool:
    return have == want or want == 1 or have == 1


class _Resampler:
    """One resampling stream: soxr's state for one input format, created at the first frame."""

    __slots__ = (
        "channels",
        "frames_in",
        "in_format",
        "length",
        "pattern",
        "quality",
        "rate",
        "settle",
        "shortcut",
        "silent_for",
        "soxr_frames",
        "stream",
    )

    def __init__(
        self, rate: int, channels: int | None, quality: ResampleQuality, shortcut: bool = True
    ) -> None:
        self.rate = rate
        self.channels = channels
        self.quality = quality
        self.shortcut = shortcut
        self.in_format: tuple[int, int] | None = None
        self.stream: Any = None  # soxr.ResampleStream; None when the rate already matches
        self.settle = 0  # input samples of silence after which soxr holds only zeros
        self.silent_for = 0  # input samples of digital silence since the last sound
        self.length = 0  # the frames' length, which the shortcut needs to stay the same
        self.pattern: _OutputPattern | None = None
        self.frames_in = 0  # frames taken in
        self.soxr_frames = 0  # of which soxr has seen (the others were settled silence)

    def push(self, frame: rtc.AudioFrame) -> tuple[rtc.AudioFrame, ...]:
        # The SDK's fields are properties: read each once (this runs per frame and session).
        rate, channels = frame.sample_rate, frame.num_channels
        in_format = self.in_format
        if in_format is None:
            self._start((rate, channels))
        elif rate != in_format[0] or channels != in_format[1]:
            raise ValueError(
                f"Resample: got a {AudioFormat(rate, channels)} frame after "
                f"{AudioFormat(*in_format)} frames; one resampler stream has one input "
                "format, so give each source its own Resample node"
            )
        want = self.channels or channels
        stream = self.stream
        if stream is None and want == channels:
            return (frame,)  # nothing to do: pass the frame itself, zero copy
        block = samples(frame)
        if want < channels:  # mix down before resampling: less to resample
            block = mix_channels(block, want)
        if stream is not None:
            block = self._resample(stream, block, rate)
            if block.shape[0] == 0:  # soxr holds the first samples back (filter delay)
                return ()
        if want > block.shape[1]:
            block = mix_channels(block, want)
        return (frame_from_samples(block, self.rate),)

    def _resample(self, stream: Any, block: NDArray[np.int16], rate: int) -> NDArray[np.int16]:
        # Once soxr has taken in enough digital silence its filters hold only zeros, so more
        # silence would come out as zeros (plus soxr's dither on int16, which is all it
        # would add): make them here instead, for a fraction of the call, as many per frame
        # as soxr would give (its pattern). When sound comes back, soxr is fed the silence
        # it missed, less whole periods of its pattern, and what that gives was already
        # made: its phase then is what the silence would have left, and what it gives next
        # is what it would have given.
        if self.shortcut:
            length = block.shape[0]
            if not np.count_nonzero(block):
                if self.silent_for >= self.settle and length == self.length:
                    pattern = self.pattern or self._learn_pattern(rate, block.shape[1])
                    if pattern is not None:
                        made = pattern.at(self.frames_in)
                        self.frames_in += 1
                        return np.zeros((made, block.shape[1]), np.int16)
                self.silent_for += length
            else:
                self.silent_for = 0
            if self.frames_in != self.soxr_frames:
                self._catch_up(stream, block.shape[1])
            if length != self.length:  # the first frame, or frames of varying length
                self.length = length if self.frames_in == 0 else -1  # -1: no shortcut
            self.frames_in += 1
            self.soxr_frames = self.frames_in
        result: NDArray[np.int16] = stream.resample_chunk(block)
        return result

    def _learn_pattern(self, rate: int, channels: int) -> _OutputPattern | None:
        pattern = _output_pattern(rate, self.rate, channels, self.quality, self.length)
        if pattern is None:
            self.shortcut = False  # no pattern to follow: soxr makes every frame
        self.pattern = pattern
        return pattern

    def _catch_up(self, stream: Any, channels: int) -> None:
        behind = self.frames_in - self.soxr_frames
        if behind and self.pattern is not None:  # frames were made without soxr
            # Its output lies where this node already made zeros. A frame at a time: a
            # longer chunk would grow soxr's buffers for good (50 KiB a stream at LQ).
            zeros = np.zeros((self.length, channels), np.int16)
            for _ in range(behind % self.pattern.period):
                stream.resample_chunk(zeros)
            self.soxr_frames = self.frames_in

    def flush(self) -> tuple[rtc.AudioFrame, ...]:
        if self.stream is None or self.in_format is None:
            return ()
        channels = min(self.channels or self.in_format[1], self.in_format[1])
        self._catch_up(self.stream, channels)
        tail = self.stream.resample_chunk(np.zeros((0, channels), np.int16), last=True)
        self.stream = None
        if tail.shape[0] == 0:
            return ()
        want = self.channels or self.in_format[1]
        return (frame_from_samples(mix_channels(tail, want), self.rate),)

    def _start(self, have: tuple[int, int]) -> None:
        rate, channels = have
        want = self.channels or channels
        if not _can_mix(channels, want):
            mix_channels(np.zeros((0, channels), np.int16), want)  # raises the explained error
        self.in_format = have
        if rate != self.rate:
            self.stream = soxr.ResampleStream(
                rate, self.rate, min(channels, want), dtype="int16", quality=self.quality
            )
            self.settle = rate * SILENCE_SETTLES_MS // 1000


class Resample(Node):
    """Resamples audio to ``rate`` (and optionally converts it to ``channels``).

    Uses python-soxr's streaming resampler, one stream per node run: its filter state carries
    across frames, so there are no clicks at frame edges, and it is flushed when the input
    completes, so the tail is not lost. The input's rate is read from the first frame (any
    rate is accepted); later frames must keep that format. Frames already at the target
    format pass through untouched.

    Channels: with ``channels`` set, N channels are averaged down to mono, or mono is copied
    up to N (see :func:`mix_channels`); the output port then declares
    ``AudioFormat(rate, channels)`` for the graph's format check. With ``channels=None`` the
    channel count is kept and, since it is not known before the audio arrives, the output
    declares no format.

    Quality: ``"HQ"`` (default) costs about 20% more CPU than ``"QQ"`` (see
    ``bench/resample.py``) and filters out what lies above the new Nyquist frequency; ``"QQ"``
    is cubic interpolation without that filter, so 48 kHz audio with content above 8 kHz
    aliases into the speech band at 16 kHz. Never use ``"QQ"`` for speech recognition.
    A steeper filter holds more audio back: going 48 to 16 kHz in 20 ms frames, ``"HQ"`` and
    ``"MQ"`` hold back 21 ms on average (up to 37 ms), ``"LQ"`` 11 ms (up to 20), which
    delays every decision made on the output (a VAD's end of speech). ``"LQ"`` still rejects
    aliases by more than 100 dB but starts rolling off earlier (-0.3 dB at 6 kHz, -13 dB at
    7 kHz for a 16 kHz output): right for the VAD and STT path of a voice agent, where latency
    counts and speech above 6 kHz does not; keep ``"HQ"`` for audio people listen to.

    Digital silence: after 250 ms of input whose samples are all zero (a muted microphone, a
    caller on hold, the gaps of a file), soxr's filters hold only zeros, and the node makes
    the zeros that would come out itself instead of calling soxr (``silence_shortcut``): the
    same samples in frames of the same lengths, except that soxr would add its ±1 LSB
    dither to them (it dithers every 16-bit output). When sound comes back, soxr is fed the
    frames of silence it missed less whole periods of its block pattern (15 frames at LQ
    from 48 to 16 kHz in 20 ms frames, but 197 at MQ and 367 at HQ, so those spare soxr
    little in silences of a few seconds). Downstream, a Silero VAD then sees exact zeros,
    which it classifies for a fifth of the model's work
    (:class:`flowkit_local.silero.SileroVADProvider`). Frames must keep one length for this
    (transports' frames do); frames of varying length go through soxr.

    Args:
        rate: The output sample rate in Hz.
        channels: The output channel count, or ``None`` to keep the input's.
        quality: soxr's quality preset.
        silence_shortcut: Make settled digital silence's output without soxr; ``False``
            calls soxr on every frame (its dither then stays on the silence).
    """

    class Params(NodeParams):
        """Parameters of :class:`Resample`."""

        rate: int = pydantic.Field(gt=0, description="output sample rate (Hz)")
        channels: int | None = pydantic.Field(
            default=None, ge=1, description="output channels; None keeps the input's"
        )
        quality: ResampleQuality = pydantic.Field(default="HQ", description="soxr quality")
        silence_shortcut: bool = pydantic.Field(
            default=True,
            description="make the output of settled digital silence without calling soxr",
        )

    audio: In[rtc.AudioFrame] = In(doc="audio at any rate; each frame carries its own")
    out: Out[rtc.AudioFrame] = Out(doc="audio at the target rate")

    def __init__(
        self,
        rate: int,
        channels: int | None = None,
        *,
        quality: ResampleQuality = "HQ",
        silence_shortcut: bool = True,
    ) -> None:
        super().__init__(
            rate=rate, channels=channels, quality=quality, silence_shortcut=silence_shortcut
        )
        if channels is not None:
            self.out.format = AudioFormat(rate, channels)

    @property
    def settings(self) -> Resample.Params:
        """The validated parameters, typed."""
        return typing.cast(Resample.Params, self.params)

    def wire(self, audio: Observable[rtc.AudioFrame]) -> Observable[rtc.AudioFrame]:
        """Resample each frame as it arrives; emit soxr's buffered tail on completion."""
        p = self.settings
        resampler = _Resampler(p.rate, p.channels, p.quality, p.silence_shortcut)
        return Stage(audio, resampler.push, resampler.flush)


def resample_converter(src: AudioFormat, dst: AudioFormat) -> Resample | None:
    """The converter factory registered for ``AudioFrame`` ports.

    Args:
        src: The producer's format.
        dst: The consumer's format.

    Returns:
        A :class:`Resample` to ``dst`` (rate and channels), or ``None`` when the channel
        conversion has no single meaning (neither side mono, e.g. 6 to 2 channels), in which
        case the graph reports the mismatch.
    """
    if not _can_mix(src.num_channels, dst.num_channels):
        return None
    return Resample(dst.sample_rate, dst.num_channels)


def convert_recording(
    frames: Iterable[rtc.AudioFrame], sample_rate: int, num_channels: int
) -> list[rtc.AudioFrame]:
    """A whole recording's frames converted to ``sample_rate`` and ``num_channels``.

    soxr HQ: the recording is converted at once, so the filter's delay costs nothing, and
    every sample comes out (the stream is flushed). For speech recorded ahead (a ``say``
    with ``audio``), played where a voice of another format plays.

    Args:
        frames: 16-bit PCM frames of one format.
        sample_rate: The rate to convert to, in Hz.
        num_channels: The channel count to convert to (one side mono, or equal).

    Raises:
        ValueError: The frames change format, or the channels cannot be mixed.
    """
    resampler = _Resampler(sample_rate, num_channels, "HQ")
    converted = [out for frame in frames for out in resampler.push(frame)]
    converted.extend(resampler.flush())
    return converted


async def converted_recording(
    frames: Iterable[rtc.AudioFrame],
    sample_rate: int,
    num_channels: int,
    *,
    chunk_s: float = 1.0,
) -> AsyncGenerator[rtc.AudioFrame, None]:
    """:func:`convert_recording`'s frames, converted on a worker thread as they are needed.

    The recording is converted ``chunk_s`` seconds of audio at a time, each chunk on a
    worker thread: a long recording neither stalls the event loop every session shares (a
    minute of 44.1 kHz stereo takes about 90 ms of CPU, `bench/resample.py`) nor waits to
    be converted whole before its first frame plays. The frames are the same as
    :func:`convert_recording`'s.

    Args:
        frames: 16-bit PCM frames of one format.
        sample_rate: The rate to convert to, in Hz.
        num_channels: The channel count to convert to (one side mono, or equal).
        chunk_s: Seconds of the recording converted per step.

    Raises:
        ValueError: The frames change format, or the channels cannot be mixed.
    """
    resampler = _Resampler(sample_rate, num_channels, "HQ")
    chunk: list[rtc.AudioFrame] = []
    seconds = 0.0
    for frame in frames:
        chunk.append(frame)
        seconds += frame.samples_per_channel / frame.sample_rate
        if seconds >= chunk_s:
            for out in await asyncio.to_thread(_push_all, resampler, chunk):
                yield out
            chunk, seconds = [], 0.0
    for out in await asyncio.to_thread(_push_all, resampler, chunk, flush=True):
        yield out


def _push_all(
    resampler: _Resampler, frames: list[rtc.AudioFrame], *, flush: bool = False
) -> list[rtc.AudioFrame]:
    """``frames`` through ``resampler`` (then its flush): one step of a worker thread."""
    converted = [out for frame in frames for out in resampler.push(frame)]
    if flush:
        converted.extend(resampler.flush())
    return converted


class _Rechunker:
    """Cuts a stream of frames into frames of ``size`` samples, carrying the remainder."""

    __slots__ = ("buffer", "duration_ms", "fill", "format", "size", "view")

    def __init__(self, duration_ms: float) -> None:
        self.duration_ms = duration_ms
        self.format: tuple[int, int] | None = None
        self.size = 0
        self.fill = 0
        self.buffer = bytearray()
        self.view: NDArray[np.int16] = np.zeros((0, 1), np.int16)

    def _new_buffer(self) -> None:
        assert self.format is not None
        channels = self.format[1]
        # A fresh buffer per emitted frame: the emitted frame owns the old one.
        self.buffer = bytearray(self.size * channels * 2)
        self.view = np.frombuffer(self.buffer, np.int16).reshape(self.size, channels)
        self.fill = 0

    def push(self, frame: rtc.AudioFrame) -> list[rtc.AudioFrame]:
        have = (frame.sample_rate, frame.num_channels)
        if self.format is None:
            self.size = samples_for(self.duration_ms, frame.sample_rate)
            self.format = have
            self._new_buffer()
        elif have != self.format:
            raise ValueError(
                f"Rechunk: got a {AudioFormat(*have)} frame after {AudioFormat(*self.format)} "
                "frames; put a Resample before Rechunk so the stream has one format"
            )
        if self.fill == 0 and frame.samples_per_channel == self.size:
            return [frame]  # already the right size: pass it on, zero copy
        out: list[rtc.AudioFrame] = []
        block = samples(frame)
        start = 0
        while start < block.shape[0]:
            take = min(self.size - self.fill, block.shape[0] - start)
            self.view[self.fill : self.fill + take] = block[start : start + take]
            self.fill += take
            start += take
            if self.fill == self.size:
                out.append(rtc.AudioFrame(self.buffer, have[0], have[1], self.size))
                self._new_buffer()
        return out

    def flush(self) -> list[rtc.AudioFrame]:
        if self.format is None or self.fill == 0:
            return []
        # The last frame is exact too: a frame over a longer buffer would show its zeros to
        # consumers that read frame.data whole.
        data = self.buffer[: self.fill * self.format[1] * 2]
        frame = rtc.AudioFrame(data, self.format[0], self.format[1], self.fill)
        self.fill = 0
        return [frame]


class Rechunk(Node):
    """Re-slices audio into frames of exactly ``duration_ms``.

    Samples left over from one input frame are carried into the next output frame; when the
    input completes, what is left is emitted as one last, shorter frame, so no sample is lost.
    An input frame that already has the right size (and no remainder is pending) is passed on
    untouched; otherwise samples are copied once into the output frame's buffer (a frame
    cannot view several input buffers, and ``livekit.rtc`` copies sliced buffers anyway).

    Args:
        duration_ms: The output frames' duration; it must be a whole number of samples at the
            input's rate (e.g. 10, 20 or 32 ms at 16 kHz).
    """

    class Params(NodeParams):
        """Parameters of :class:`Rechunk`."""

        duration_ms: float = pydantic.Field(gt=0, description="output frame duration (ms)")

    audio: In[rtc.AudioFrame] = In(doc="audio in frames of any size")
    out: Out[rtc.AudioFrame] = Out(doc="audio in frames of duration_ms (the last may be shorter)")

    def __init__(self, duration_ms: float) -> None:
        super().__init__(duration_ms=duration_ms)

    def wire(self, audio: Observable[rtc.AudioFrame]) -> Observable[rtc.AudioFrame]:
        """Cut frames to size as they arrive; emit the remainder on completion."""
        p = typing.cast(Rechunk.Params, self.params)
        rechunker = _Rechunker(p.duration_ms)
        return Stage(audio, rechunker.push, rechunker.flush)


class Downmix(Node):
    """Mixes audio down to ``channels`` channels (by default mono, the mean of the channels).

    Stateless, so it transforms each frame where it is delivered. A frame that already has
    ``channels`` channels is passed on untouched; a mix makes a new frame. Only N to 1 (and
    N to N) is done; see :func:`mix_channels` for why other counts are refused.

    Args:
        channels: The output channel count.
    """

    class Params(NodeParams):
        """Parameters of :class:`Downmix`."""

        channels: int = pydantic.Field(default=1, ge=1, description="output channels")

    audio: In[rtc.AudioFrame] = In(doc="audio with any channel count")
    out: Out[rtc.AudioFrame] = Out(doc="audio with `channels` channels")

    def __init__(self, channels: int = 1) -> None:
        super().__init__(channels=channels)

    def wire(self, audio: Observable[rtc.AudioFrame]) -> Observable[rtc.AudioFrame]:
        """Mix each frame down as it arrives."""
        channels = typing.cast(Downmix.Params, self.params).channels

        def mix(frame: rtc.AudioFrame) -> tuple[rtc.AudioFrame, ...]:
            if frame.num_channels == channels:
                return (frame,)
            if channels != 1:
                raise ValueError(
                    f"Downmix(channels={channels}) got a {frame.num_channels}-channel frame; "
                    "it mixes down to mono (channels=1) or passes frames that already have "
                    f"{channels} channels; for other layouts write a node with a mixing matrix"
                )
            mono = mix_channels(samples(frame), 1)
            return (frame_from_samples(mono, frame.sample_rate),)

        return Stage(audio, mix)


class WavSource(Node):
    """Plays a 16-bit PCM WAV file as frames of ``frame_ms``; completes at the end of the file.

    The header is read when the node is made, so the output port declares the file's format
    for the graph's check, and a missing or unusable file fails while the graph is built
    (:class:`~flowkit.audio.AudioFileError`), not in the middle of a run.

    With ``realtime=True`` frames are paced like a live source: frame *k* is sent when
    *k* frames' worth of audio time has passed since the first (deadlines accumulate, so the
    pace does not drift). Otherwise frames are sent as fast as downstream takes them.

    A failure mid-file ends the graph (``END_GRAPH``): restarting would replay the file from
    the beginning.

    Args:
        path: The WAV file.
        frame_ms: Each frame's duration (the last frame may be shorter).
        realtime: Pace frames at the audio's own speed.

    Attributes:
        info: The file's header (format, length).
    """

    error_policy = ErrorPolicy.END_GRAPH

    class Params(NodeParams):
        """Parameters of :class:`WavSource`."""

        path: Path = pydantic.Field(description="the WAV file")
        frame_ms: float = pydantic.Field(default=20, gt=0, description="frame duration (ms)")
        realtime: bool = pydantic.Field(default=False, description="pace at audio speed")

    out: Out[rtc.AudioFrame] = Out(doc="the file's audio, in the file's format")

    def __init__(
        self, path: str | Path, frame_ms: float = 20, realtime: bool = False
    ) -> None:
        super().__init__(path=path, frame_ms=frame_ms, realtime=realtime)
        self.info: WavInfo = probe(path)
        samples_for(frame_ms, self.info.format.sample_rate)  # a bad frame_ms fails now too
        self.out.format = self.info.format

    async def run(self) -> None:
        """Read the file and send its frames, paced when ``realtime``."""
        p = typing.cast(WavSource.Params, self.params)
        loop = asyncio.get_running_loop()
        start = loop.time()
        audio_time = 0.0
        for index, frame in enumerate(read_frames(p.path, p.frame_ms), start=1):
            if p.realtime:
                delay = start + audio_time - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                audio_time += duration_s(frame)
            elif index % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
            await self.out.put(frame)


class WavSink(Node):
    """Writes every frame it receives to a 16-bit PCM WAV file.

    The first frame sets the file's rate and channels; the file is finished (header sizes
    written) when the input completes or the graph closes. A frame in another format is an
    error that ends the graph, since a WAV file has one format (put a :class:`Resample` in
    front). If no frame arrives, no file is written.

    Args:
        path: The file to create (overwritten if it exists).

    Attributes:
        num_samples: Samples per channel written so far.
    """

    error_policy = ErrorPolicy.END_GRAPH

    class Params(NodeParams):
        """Parameters of :class:`WavSink`."""

        path: Path = pydantic.Field(description="the WAV file to write")

    audio: In[rtc.AudioFrame] = In(doc="audio of one format")

    def __init__(self, path: str | Path) -> None:
        super().__init__(path=path)
        self.num_samples = 0

    async def run(self, audio: AsyncIterator[rtc.AudioFrame]) -> None:
        """Write frames until the input completes, then finish the file."""
        writer = WavWriter(typing.cast(WavSink.Params, self.params).path)
        try:
            async for frame in audio:
                writer.write(frame)
                self.num_samples = writer.num_samples
        finally:
            writer.close()


register_converter(rtc.AudioFrame, resample_converter)
