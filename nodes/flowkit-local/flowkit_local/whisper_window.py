"""Whisper's encoder on a window fitted to the utterance instead of its whole 30 s.

faster-whisper pads every segment's log-mel features to Whisper's 30 s window before the
encoder, so a 3 s turn costs the encoder as much as 30 s of speech: for tiny.en, 535 of the
570 ms a 4 s question took here. CTranslate2's encoder accepts a shorter input, and the
decoder then attends over fewer frames. Cut to the audio alone, the decoder runs past the end
of the speech and repeats it ("Turn off the lights. Turn off the lights. ..."); with some
seconds of the padding kept it does not. On 90 utterances of Piper's speech, clean and with
white noise at 15 and 8 dB SNR (an ad-hoc comparison, 2026-11-22), the audio plus 3 s, at
least 10 s, read at a word error rate of 0.091 against 0.099 for the whole window, with no
repetition, at 133 ms of CPU per utterance against 541; 1 s of margin and 5 s at least
(0.096) needed the decoder's temperature fallback more often (222 ms). Audio longer than the
window minus the margin is encoded as faster-whisper does it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import ctranslate2  # type: ignore[import-untyped]
import numpy as np
from faster_whisper import WhisperModel  # type: ignore[import-untyped]
from numpy.typing import NDArray

__all__ = ["FittedWindowWhisper", "fitted_frames"]

FRAMES_PER_SECOND = 100  # Whisper's log-mel hop is 10 ms
WINDOW_FRAMES = 3000  # the model's 30 s
MARGIN_FRAMES = 300  # 3 s of the padding kept after the audio
MIN_FRAMES = 1000  # 10 s: shorter contexts are the least like what the model was trained on


def fitted_frames(samples: int, sample_rate: int = 16000) -> int | None:
    """The encoder frames an utterance of ``samples`` gets, or ``None`` for the whole window.

    Args:
        samples: The utterance's length at ``sample_rate``.
        sample_rate: Its rate in Hz (Whisper's 16 kHz).

    Returns:
        The audio's frames plus the margin, at least :data:`MIN_FRAMES`; ``None`` when that
        is not shorter than Whisper's window, which the audio then gets as before.
    """
    frames = samples * FRAMES_PER_SECOND // sample_rate + 1 + MARGIN_FRAMES
    frames = max(frames, MIN_FRAMES)
    return frames if frames < WINDOW_FRAMES else None


class FittedWindowWhisper(WhisperModel):  # type: ignore[misc]  # faster-whisper is untyped
    """A ``WhisperModel`` whose encoder gets only the frames :meth:`fitted` allows.

    Everything else (the decoding, its temperature fallback, timestamps) is faster-whisper's
    own. The allowance is per thread, so concurrent transcriptions (``num_workers``) each
    keep their own.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._allowance = threading.local()

    @contextmanager
    def fitted(self, samples: int) -> Iterator[None]:
        """Encode at most the fitted window for an utterance of ``samples`` (16 kHz) within.

        Args:
            samples: The utterance's length; see :func:`fitted_frames`.
        """
        self._allowance.frames = fitted_frames(samples)
        try:
            yield
        finally:
            self._allowance.frames = None

    def encode(self, features: NDArray[np.float32]) -> ctranslate2.StorageView:
        """faster-whisper's encode, on the first frames of the padded window only."""
        frames: int | None = getattr(self._allowance, "frames", None)
        if frames is not None and features.shape[-1] > frames:
            features = np.ascontiguousarray(features[..., :frames])
        return super().encode(features)
