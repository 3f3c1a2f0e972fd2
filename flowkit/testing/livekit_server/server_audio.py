"""An audio track the server itself plays: PCM given to it, in real time, then silence.

:class:`ServerAudioTrack` is an aiortc ``MediaStreamTrack`` for a participant that has no
WebRTC connection of its own (a simulated SIP call): the room relays it to subscribers as it
relays a track a client published. It gives 20 ms frames of 48 kHz mono s16, paced with the
event loop's clock as aiortc's ``AudioStreamTrack`` paces its own, and plays the samples
queued with :meth:`ServerAudioTrack.play` in order, then silence, so the track stays live
until it is stopped.

Frames are made only when the track is read (the relay reads it for its subscribers), so
samples queued before anyone listens wait for the first listener rather than being lost.
"""

from __future__ import annotations

import asyncio
import fractions

import numpy as np
import numpy.typing as npt
import soxr
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame

__all__ = ["FRAME_SAMPLES", "SAMPLE_RATE", "ServerAudioTrack"]

SAMPLE_RATE = 48_000
"""The rate of the frames the track gives (Opus's, so the encoder does not resample)."""
FRAME_SAMPLES = SAMPLE_RATE // 50
"""Samples in one 20 ms frame."""
_TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)
# Behind the clock by more than this, the track starts its clock again instead of giving the
# missed frames at once: nobody read it for a while (no subscriber), and a burst of queued
# audio would reach the next listener faster than real time.
_MAX_LAG = 0.1


class ServerAudioTrack(MediaStreamTrack):
    """A live audio track playing queued PCM samples in real time, and silence in between."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._pending: npt.NDArray[np.int16] = np.zeros(0, dtype=np.int16)
        self._start: float | None = None
        self._timestamp = 0

    @property
    def pending_seconds(self) -> float:
        """Seconds of queued audio not yet played."""
        return len(self._pending) / SAMPLE_RATE

    def play(self, samples: npt.NDArray[np.int16], sample_rate: int) -> None:
        """Queue ``samples`` (mono int16 at ``sample_rate``) to play after what is queued.

        Raises:
            ValueError: The samples are not a one-dimensional int16 array, or the rate is
                not positive.
            RuntimeError: The track was stopped.
        """
        if self.readyState != "live":
            raise RuntimeError("this audio track was stopped: it can play nothing more")
        array = np.asarray(samples)
        if array.ndim != 1 or array.dtype != np.int16:
            raise ValueError(
                f"expected mono int16 samples (a 1-D numpy array), got shape {array.shape} "
                f"of {array.dtype}: mix down to one channel and convert with .astype(np.int16)"
            )
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        if sample_rate != SAMPLE_RATE and len(array):
            array = np.asarray(soxr.resample(array, sample_rate, SAMPLE_RATE), dtype=np.int16)
        self._pending = np.concatenate([self._pending, array])

    async def recv(self) -> AudioFrame:
        """The next 20 ms frame, when it is due: queued samples, or silence.

        Raises:
            MediaStreamError: The track was stopped.
        """
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._start is None:
            self._start = now
        else:
            self._timestamp += FRAME_SAMPLES
            due = self._start + self._timestamp / SAMPLE_RATE
            if now - due > _MAX_LAG:
                self._start = now - self._timestamp / SAMPLE_RATE
            elif due > now:
                await asyncio.sleep(due - now)
        if self.readyState != "live":  # stopped while it waited
            raise MediaStreamError
        pcm = self._pending[:FRAME_SAMPLES]
        self._pending = self._pending[FRAME_SAMPLES:]
        if len(pcm) < FRAME_SAMPLES:
            pcm = np.concatenate([pcm, np.zeros(FRAME_SAMPLES - len(pcm), dtype=np.int16)])
        frame = AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._timestamp
        frame.time_base = _TIME_BASE
        return frame
