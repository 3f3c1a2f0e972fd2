"""What a simulated phone hears: the audio the room sends it, kept as 48 kHz mono PCM.

LiveKit's SIP service subscribes a call's participant to the room's audio and sends it down
the line. A simulated phone has no line: :class:`PhoneEar` reads one audio track the room
sends it (through the same relay the server's WebRTC subscribers read, so it gets the
decoded frames the others are sent) and appends each frame to its :class:`SentTrack`'s
``audio``, from the moment the room sends the track (once the call is answered) until it
stops or the call ends. A test then reads ``SentTrack.heard()``: what the person on the
phone would have heard of that participant, e.g. the agent's greeting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import numpy as np
import numpy.typing as npt
import soxr
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame

from flowkit.testing.livekit_server.media import relay_subscribe

__all__ = ["HEARD_RATE", "PhoneEar", "mono_pcm"]

HEARD_RATE = 48_000
"""The rate of what a phone keeps (Opus's: the decoder gives it without resampling)."""

log = logging.getLogger("flowkit.testing.sip")


def mono_pcm(frame: AudioFrame) -> npt.NDArray[np.int16]:
    """One decoded frame as mono int16 at :data:`HEARD_RATE` (channels averaged).

    Args:
        frame: A PyAV audio frame of packed s16 samples, as aiortc's decoders give.

    Raises:
        ValueError: The frame is not packed s16.
    """
    if frame.format.name != "s16":
        raise ValueError(
            f"a phone hears packed s16 frames, as aiortc decodes them; got {frame.format.name}"
        )
    channels = len(frame.layout.channels)
    samples = frame.to_ndarray().reshape(-1, channels)
    mono = samples[:, 0] if channels == 1 else samples.mean(axis=1)
    if frame.sample_rate != HEARD_RATE:
        mono = soxr.resample(mono.astype(np.float32), frame.sample_rate, HEARD_RATE)
    pcm: npt.NDArray[np.int16] = np.clip(np.round(mono), -32768, 32767).astype(np.int16)
    return pcm


class PhoneEar:
    """Reads one track sent to a phone into ``into`` until :meth:`stop`.

    Args:
        media: The published track's media (the server's decoded track).
        into: Where each frame goes, as :func:`mono_pcm` makes it.
        label: Who listens to what, for the log.
    """

    def __init__(
        self, media: MediaStreamTrack, into: list[npt.NDArray[np.int16]], label: str
    ) -> None:
        # Buffered: a busy test machine delays what the phone hears rather than losing it.
        self._proxy = relay_subscribe(media, buffered=True)
        self._label = label
        self._task = asyncio.create_task(self._listen(into), name=f"phone ear: {label}")

    async def _listen(self, into: list[npt.NDArray[np.int16]]) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await self._proxy.recv()
                assert isinstance(frame, AudioFrame)  # an audio track gives audio frames
                try:
                    into.append(mono_pcm(frame))
                except ValueError as exc:
                    log.warning("%s: frame not kept: %s", self._label, exc)

    def stop(self) -> None:
        """Stop listening: the track stopped being sent, or the call ended."""
        self._proxy.stop()
        self._task.cancel()
