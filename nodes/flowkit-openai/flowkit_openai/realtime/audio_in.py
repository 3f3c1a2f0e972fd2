"""The user's audio on its way to the server: checked, and gathered into appends.

Each ``input_audio_buffer.append`` is a JSON message with base64 audio, so sending every
20 ms frame would mean 50 messages a second per session. :class:`AudioChunker` gathers
frames into chunks of ``chunk_ms`` (100 ms, as LiveKit Agents sends), at the cost of up to
that much delay before the server's VAD hears the audio.
"""

from __future__ import annotations

import sys

import numpy as np
from livekit import rtc

from flowkit.ports import AudioFormat
from flowkit_openai.realtime.options import SAMPLE_RATE

__all__ = ["AudioChunker", "format_problem"]

_WIDTH = 2  # bytes per 16-bit sample


def format_problem(frame: rtc.AudioFrame, node: str) -> str | None:
    """Why ``frame`` cannot go to the Realtime API as it is, or ``None`` when it can."""
    if frame.sample_rate == SAMPLE_RATE and frame.num_channels == 1:
        return None
    have = AudioFormat(frame.sample_rate, frame.num_channels)
    return (
        f"RealtimeModel {node!r} got {have} audio, but the Realtime API takes 24 kHz mono "
        "PCM16; put Resample(24_000, channels=1) before it (flowkit.nodes.audio). Frames "
        "in another format are dropped"
    )


class AudioChunker:
    """Gathers 24 kHz mono frames into chunks of ``chunk_ms`` of PCM16 bytes.

    Example:
        >>> chunker = AudioChunker(chunk_ms=100)
        >>> frame = rtc.AudioFrame(bytes(960), 24_000, 1, 480)  # 20 ms
        >>> [len(chunk) for f in range(6) for chunk in chunker.push(frame)]
        [4800]
        >>> len(chunker.flush())
        960
    """

    def __init__(self, chunk_ms: int = 100) -> None:
        """Start empty.

        Raises:
            ValueError: A chunk duration that is not positive.
        """
        if chunk_ms <= 0:
            raise ValueError(f"chunk_ms must be > 0, got {chunk_ms}")
        self._size = SAMPLE_RATE * chunk_ms // 1000 * _WIDTH
        self._buffer = bytearray()

    def push(self, frame: rtc.AudioFrame) -> list[bytes]:
        """Add a frame's samples; return the whole chunks they complete."""
        data = frame.data
        if sys.byteorder != "little":
            self._buffer += np.asarray(data, dtype=np.int16).astype("<i2").tobytes()
        else:
            self._buffer += data.cast("B")
        chunks: list[bytes] = []
        while len(self._buffer) >= self._size:
            chunks.append(bytes(self._buffer[: self._size]))
            del self._buffer[: self._size]
        return chunks

    def flush(self) -> bytes:
        """What is left (the input ended), possibly nothing."""
        rest, self._buffer = bytes(self._buffer), bytearray()
        return rest
