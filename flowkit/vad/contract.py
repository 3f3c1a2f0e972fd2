"""The contract every voice activity detector (VAD) provider keeps.

A provider is a factory of per-stream detectors. One provider (say a Silero model loaded
once) serves many sessions at the same time, while each audio stream keeps its own state
in the :class:`VADStream` the provider made for it. Streams are fed 16-bit mono PCM as
numpy arrays of any length and answer with :class:`VADDecision` values.

Time in a decision is counted in samples pushed, not read from a clock, so the same audio
always gives the same decisions, however it is cut into pieces.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from flowkit.messages import VADEventKind

__all__ = [
    "DecisionCallback",
    "DeferredVADProvider",
    "PCMSamples",
    "VADDecision",
    "VADProvider",
    "VADStream",
    "check_pcm",
    "is_deferred",
]

PCMSamples = npt.NDArray[np.int16]
"""16-bit signed mono PCM samples, one dimension."""


@dataclass(frozen=True, slots=True, kw_only=True)
class VADDecision:
    """A detector decided that speech started or ended.

    All times are seconds of audio counted from the first sample pushed into the stream.

    Attributes:
        kind: Start or end of speech.
        timestamp: When the decision was made: the end of the audio window that settled it.
            A start comes ``min_speech_duration`` (or so) after speech began, an end
            ``min_silence_duration`` (or so) after it stopped.
        speech_duration: For a start, the speech heard so far (the part that satisfied
            ``min_speech_duration``). For an end, the whole utterance from its first speech
            window to its last one, short pauses included, trailing silence excluded.
        silence_duration: For an end, the trailing silence that ended the utterance (may be
            shorter than ``min_silence_duration`` when the stream was flushed); ``0.0`` for
            a start.
        probability: The speech probability of the window that settled the decision.
        speech_samples: For an end, when the provider was asked to keep audio: the
            utterance's samples, from ``prefix_padding_duration`` before speech began up to
            ``timestamp`` (so the trailing silence is included). ``None`` otherwise. The
            array is read-only, since a decision may be shared by several consumers.
    """

    kind: VADEventKind
    timestamp: float
    speech_duration: float = 0.0
    silence_duration: float = 0.0
    probability: float = 0.0
    # An array has no single truth value, so it must stay out of the generated __eq__.
    speech_samples: PCMSamples | None = field(default=None, compare=False, repr=False)


@runtime_checkable
class VADStream(Protocol):
    """The detector state of one audio stream, made by :meth:`VADProvider.stream`.

    A stream is not thread-safe; feed it from one task or thread.
    """

    def push(self, samples: PCMSamples, sample_rate: int) -> list[VADDecision]:
        """Feed audio and collect the decisions it settled.

        Args:
            samples: 16-bit mono PCM, one dimension, any length (even zero). The stream
                keeps what does not fill a whole window until the next push.
            sample_rate: The samples' rate in Hz; the same for every push into one stream.

        Returns:
            Zero or more decisions, in time order.

        Raises:
            TypeError: ``samples`` is not a numpy array of int16.
            ValueError: ``samples`` is not one-dimensional, or ``sample_rate`` is not
                positive, not supported, or differs from the rate of earlier pushes.
        """
        ...

    def flush(self) -> list[VADDecision]:
        """End the current segment: close an open utterance with an end of speech.

        Audio kept back for lack of a whole window is not classified; it counts toward the
        timestamp and the kept utterance audio, and as speech or silence like the window
        before it. The stream may be pushed into again after a
        flush; its clock goes on from where it was.

        Returns:
            An end of speech when an utterance was open, otherwise nothing.
        """
        ...


@runtime_checkable
class VADProvider(Protocol):
    """A factory of :class:`VADStream` detectors, shared by every session that uses it."""

    @property
    def sample_rate(self) -> int | None:
        """The sample rate the detector needs in Hz, or ``None`` when any rate works."""
        ...

    @property
    def window_ms(self) -> float:
        """The length of the audio window the detector classifies at once, in milliseconds.

        Decisions are made at window boundaries, so this is the resolution of timestamps.
        """
        ...

    def stream(self) -> VADStream:
        """Make a detector for one new audio stream, with fresh state."""
        ...


DecisionCallback = Callable[[list[VADDecision]], None]
"""Receives the decisions a deferred stream settled, in time order, never an empty list."""


@runtime_checkable
class DeferredVADProvider(VADProvider, Protocol):
    """A provider that can also make streams which deliver their decisions later.

    Some detectors are much cheaper when many streams' windows are classified together (one
    model call for a batch of sessions), which a ``push`` that must answer at once cannot
    do. Such a provider says so with :attr:`deferred` and takes ``on_decisions`` in
    :meth:`stream`. A stream made with a callback keeps the :class:`VADStream` methods, with
    these differences:

    - ``push`` returns what it can settle at once, possibly nothing (a batching provider
      always returns ``[]``); every other decision of that audio goes to ``on_decisions``
      later, on the same thread or event loop (a batching provider: within one event-loop
      iteration). Decisions reach the caller in time order across both paths.
    - ``flush`` first settles, synchronously, every decision still pending from earlier
      pushes, and returns them followed by its own; nothing of the audio before the flush
      reaches ``on_decisions`` after it returns.

    Without a callback, :meth:`stream` makes an ordinary synchronous stream. Consumers test
    for the capability with :func:`is_deferred`, since a plain provider may lack the
    attribute.
    """

    @property
    def deferred(self) -> bool:
        """``True`` when :meth:`stream` takes ``on_decisions``."""
        ...

    def stream(self, on_decisions: DecisionCallback | None = None) -> VADStream:
        """Make a detector for one new audio stream, with fresh state.

        Args:
            on_decisions: Where decisions settled after ``push`` returned go; ``None`` for
                an ordinary synchronous stream.
        """
        ...


def is_deferred(provider: object) -> bool:
    """Whether ``provider`` makes deferred streams (see :class:`DeferredVADProvider`).

    Args:
        provider: Any VAD provider.

    Returns:
        ``True`` only when the provider says ``deferred`` is ``True``; a wrapper that lacks
        the attribute is taken to be synchronous.
    """
    return getattr(provider, "deferred", False) is True


_INT16 = np.dtype(np.int16)
# Built once: `int | np.integer` written in the check made a new union on every call.
_RATE_TYPES = (int, np.integer)


def check_pcm(samples: object, sample_rate: object) -> PCMSamples:
    """Check that audio pushed into a :class:`VADStream` is 16-bit mono PCM.

    Providers call this at the top of :meth:`VADStream.push` so that every provider
    rejects bad input with the same explicit message.

    Args:
        samples: What was pushed.
        sample_rate: The rate that came with it.

    Returns:
        ``samples``, unchanged, typed as int16 PCM.

    Raises:
        TypeError: ``samples`` is not a numpy array of int16, or ``sample_rate`` is not an
            integer.
        ValueError: ``samples`` is not one-dimensional or ``sample_rate`` is not positive.
    """
    if not isinstance(samples, np.ndarray):
        raise TypeError(
            f"VAD audio must be a numpy int16 array, got {type(samples).__name__}; "
            "wrap PCM bytes with np.frombuffer(data, dtype=np.int16)"
        )
    # Native int16 is one dtype object: the identity test spares the comparison per frame.
    if samples.dtype is not _INT16 and samples.dtype != np.int16:
        raise TypeError(
            f"VAD audio must be int16 PCM, got dtype {samples.dtype}; convert float audio "
            "in [-1, 1] with (np.clip(x, -1, 1) * 32767).astype(np.int16)"
        )
    if samples.ndim != 1:
        raise ValueError(
            f"VAD audio must be one-dimensional mono, got shape {samples.shape}; pass one "
            "channel (samples[:, 0]), mix down first, or resample the track to mono; "
            "a (n, 1) array can be flattened with samples.ravel()"
        )
    # bool is an int subclass but never a sample rate.
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, _RATE_TYPES):
        raise TypeError(
            f"sample_rate must be an integer number of Hz, got {sample_rate!r}; pass e.g. 16000"
        )
    if sample_rate <= 0:
        raise ValueError(
            f"sample_rate must be positive, got {sample_rate}; pass the audio's rate in Hz, "
            "e.g. 16000"
        )
    return samples
