"""Zero-copy numpy views of :class:`livekit.rtc.AudioFrame`, and frames made from arrays.

An ``AudioFrame`` holds interleaved 16-bit PCM in a buffer (``bytes``, ``bytearray`` or a
``memoryview``). :func:`samples` views that buffer as an ``int16`` array of shape
``(samples_per_channel, num_channels)`` without copying it, and :func:`frame_from_samples`
wraps an ``int16`` array in a frame without copying it. Where a copy cannot be avoided, the
function says so in its docstring.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np
from livekit import rtc
from numpy.typing import NDArray

from flowkit.ports import AudioFormat

__all__ = [
    "duration_ms",
    "duration_s",
    "frame_format",
    "frame_from_samples",
    "samples",
    "samples_for",
    "silence",
]

# WAV files and LiveKit frames are little-endian int16; numpy's native int16 matches that on
# every platform LiveKit ships for, and this check keeps a big-endian host from silently
# reading byte-swapped audio.
if sys.byteorder != "little":  # pragma: no cover - no big-endian CI
    raise ImportError("flowkit.audio assumes a little-endian host (LiveKit frames are LE int16)")


def _sdk_frame_fields() -> frozenset[str]:
    """The attributes ``rtc.AudioFrame.__init__`` sets, seen on a probe frame."""
    return frozenset(vars(rtc.AudioFrame(bytearray(4), 8000, 1, 2)))


# What _ArrayFrame sets itself instead of running the SDK's constructor. If a livekit release
# sets anything else, the frames go through the SDK's constructor as before.
_FAST_FIELDS = frozenset(
    ("_data", "_sample_rate", "_num_channels", "_samples_per_channel", "_userdata")
)
_FAST_INIT = _sdk_frame_fields() == _FAST_FIELDS


class _ArrayFrame(rtc.AudioFrame):
    """A frame made from numpy samples that keeps its ``(n, channels)`` view of them.

    Every audio node reads its input with :func:`samples`; for a frame a node made with
    :func:`frame_from_samples` (a resampled or mixed frame, passed on to the VAD and the STT
    at once) that view is returned as it is, instead of being rebuilt from ``frame.data``
    by each consumer (about a microsecond each, per 20 ms frame and session). The frame
    shares memory with the view, as every zero-copy frame shares it with its array.

    The SDK's constructor re-checks a buffer that :func:`frame_from_samples` has just made
    valid (a contiguous byte view as long as its owner) and wraps it once more; for every
    resampled 20 ms frame of every session that is about a microsecond. So the fields it
    would set are set here directly, when a probe frame shows they are the only ones
    (``_FAST_INIT``); otherwise the constructor runs.
    """

    def __init__(
        self,
        array: NDArray[np.int16],
        data: memoryview,
        sample_rate: int,
        num_channels: int,
        samples_per_channel: int,
    ) -> None:
        if _FAST_INIT:
            self._data = data
            self._sample_rate = sample_rate
            self._num_channels = num_channels
            self._samples_per_channel = samples_per_channel
            self._userdata: dict[str, Any] = {}
        else:  # a livekit release whose constructor sets other fields
            super().__init__(data, sample_rate, num_channels, samples_per_channel)
        self.array = array


def samples(frame: rtc.AudioFrame) -> NDArray[np.int16]:
    """View a frame's audio as ``int16`` samples, without copying.

    The array shares memory with the frame: writing to it changes ``frame.data``. It is
    read-only when the frame wraps an immutable buffer (``bytes``, e.g. frames read from a WAV
    file); treat frames as immutable messages anyway, since other consumers of the same edge
    see the same buffer.

    Args:
        frame: The frame.

    Returns:
        An array of shape ``(samples_per_channel, num_channels)`` (one row per sample instant,
        one column per channel).
    """
    if type(frame) is _ArrayFrame:
        return frame.array  # made by frame_from_samples: its view is already there
    count = frame.samples_per_channel * frame.num_channels
    # count= trims a buffer longer than the frame (AudioFrame allows that) without copying.
    flat = np.frombuffer(frame.data, dtype=np.int16, count=count)
    return flat.reshape(frame.samples_per_channel, frame.num_channels)


def frame_from_samples(array: NDArray[np.int16], sample_rate: int) -> rtc.AudioFrame:
    """Wrap ``int16`` samples in an :class:`~livekit.rtc.AudioFrame`, without copying if possible.

    No copy is made when ``array`` is C-contiguous and writable: the frame keeps a reference
    to it and shares its memory. A non-contiguous array (a strided slice, a transposed view)
    or a read-only one is copied once, because LiveKit hands the frame's address to its native
    code, which needs one contiguous buffer it can address (read-only numpy buffers are not
    addressable by ``livekit.rtc``).

    Args:
        array: Samples, shape ``(n,)`` for mono or ``(n, num_channels)`` interleaved by row.
        sample_rate: Samples per second per channel.

    Returns:
        The frame.

    Raises:
        TypeError: ``array`` is not ``int16`` (convert float audio first, e.g.
            ``(x * 32767).clip(-32768, 32767).astype(np.int16)``).
        ValueError: ``array`` has more than two dimensions or ``sample_rate`` is not positive.
    """
    if array.dtype != np.int16:
        raise TypeError(
            f"frame_from_samples: expected int16 samples, got {array.dtype}; convert first, "
            "e.g. (x * 32767).clip(-32768, 32767).astype(np.int16) for float audio in [-1, 1]"
        )
    if array.ndim not in (1, 2):
        raise ValueError(
            f"frame_from_samples: expected shape (n,) or (n, channels), got {array.shape}"
        )
    if sample_rate <= 0:
        raise ValueError(f"frame_from_samples: sample_rate must be positive, got {sample_rate}")
    num_channels = 1 if array.ndim == 1 else array.shape[1]
    if array.flags.c_contiguous and array.flags.writeable:
        # A 1-D uint8 view: AudioFrame copies a memoryview whose byte length differs from
        # len() of its owner, which for an int16 or 2-D owner it always would.
        data = np.frombuffer(array, np.uint8).data  # half the cost of reshape(-1).view()
        view = array if array.ndim == 2 else array.reshape(-1, 1)
        return _ArrayFrame(view, data, sample_rate, num_channels, array.shape[0])
    return rtc.AudioFrame(
        np.ascontiguousarray(array).tobytes(), sample_rate, num_channels, array.shape[0]
    )


def silence(duration_ms: float, sample_rate: int, num_channels: int = 1) -> rtc.AudioFrame:
    """A frame of digital silence.

    Args:
        duration_ms: Its duration (must be a whole number of samples at ``sample_rate``).
        sample_rate: Samples per second per channel.
        num_channels: Channels.

    Returns:
        A zeroed, writable frame.
    """
    return rtc.AudioFrame.create(
        sample_rate, num_channels, samples_for(duration_ms, sample_rate)
    )


def samples_for(duration_ms: float, sample_rate: int) -> int:
    """How many samples per channel last ``duration_ms`` at ``sample_rate``.

    Args:
        duration_ms: A duration in milliseconds.
        sample_rate: Samples per second.

    Returns:
        The sample count.

    Raises:
        ValueError: The duration is not a positive whole number of samples at that rate
            (e.g. 1 ms at 22.05 kHz); choose a duration that divides evenly.
    """
    exact = duration_ms * sample_rate / 1000
    count = round(exact)
    if count <= 0 or not math.isclose(exact, count, abs_tol=1e-6):
        raise ValueError(
            f"{duration_ms} ms at {sample_rate} Hz is {exact:g} samples, not a positive whole "
            "number; choose a duration that is a whole number of samples (e.g. 10 or 20 ms)"
        )
    return count


def duration_ms(frame: rtc.AudioFrame) -> float:
    """The frame's duration in milliseconds."""
    return frame.samples_per_channel * 1000 / frame.sample_rate


def duration_s(frame: rtc.AudioFrame) -> float:
    """The frame's duration in seconds."""
    return frame.samples_per_channel / frame.sample_rate


def frame_format(frame: rtc.AudioFrame) -> AudioFormat:
    """The frame's :class:`~flowkit.ports.AudioFormat` (sample rate and channels)."""
    return AudioFormat(frame.sample_rate, frame.num_channels)
