"""A voice activity detector that needs no model: loudness above an adaptive noise floor.

:class:`EnergyVAD` lets a voice graph run with nothing but numpy. It is much less
discerning than a neural VAD (a door slam or music counts as speech), so it is the
fallback, not the default, when a model is at hand.

How it decides, window by window (``window_ms`` of audio, 30 ms by default):

1. **Level.** The window's RMS level in dBFS, where a full-scale square wave is 0 dBFS and
   a full-scale sine -3 dBFS. Sums are taken in integers, so a window's level does not
   depend on how the audio was cut into pushes.
2. **Noise floor.** The floor drops at once to any quieter window and otherwise rises at
   most ``noise_floor_rise_db_per_s``; it never goes below ``min_noise_floor_db``. Falling
   fast and rising slowly keeps the floor on the quiet gaps between words, so speech stays
   above it, while a room that gets louder for good (a fan switched on) is absorbed after a
   few seconds. The floor starts at the first window's level, but no higher than
   ``min_noise_floor_db + speech_snr_db`` (-40 dBFS by default), so that a stream which
   opens in the middle of speech still hears it.
3. **Probability.** ``(level - floor) / speech_snr_db``, clipped to ``[0, 1]``: 0 at the
   floor, 1 at ``speech_snr_db`` above it. With the defaults, a window is speech when it
   is 10 dB above the floor (``activation_threshold`` 0.5 of 20 dB) and quieter windows
   than -50 dBFS never are.
4. **Level gate.** A window whose RMS level is below ``min_speech_level_db`` (-60 dBFS by
   default) is silence whatever its probability, as Pipecat's ``min_volume`` does it.
5. **Hysteresis**, as LiveKit Agents' Silero plugin does it. Outside speech, a window is
   speech when its probability reaches ``activation_threshold``; inside, while it stays
   above ``deactivation_threshold``. ``min_speech_duration`` of consecutive speech
   windows starts an utterance, ``min_silence_duration`` of consecutive silent windows
   ends it. Both are rounded up to whole windows.

Steps 1 to 3 are :class:`EnergyVADStream`'s own; the windowing and steps 4 and 5 live in
:class:`WindowedVADStream`, which any detector that gives one probability per window can
build on (flowkit-local's Silero VAD does), so that every such detector decides alike.

Known limits: background noise louder than the starting cap when the stream opens, or a
lasting rise in background noise of more than ``speech_snr_db * activation_threshold`` dB,
is heard as one utterance of a few seconds while the floor catches up.
"""

from __future__ import annotations

import abc
import math
import numbers
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from flowkit.messages import VADEventKind
from flowkit.vad.contract import PCMSamples, VADDecision, check_pcm

__all__ = [
    "EnergyVAD",
    "EnergyVADOptions",
    "EnergyVADStream",
    "SpeechOptions",
    "WindowedVADStream",
]

# Below this rate a window holds too little of the speech band to mean anything; a rate
# this low is far more likely a channel count or frame size passed by mistake.
_MIN_SAMPLE_RATE = 8000
# RMS of a full-scale int16 square wave, squared: the 0 dBFS reference.
_FULL_SCALE_SQUARED = 32768.0**2
# Tolerance for turning durations into whole windows: 0.06 s of 30 ms windows is 2, not 3.
_EPSILON = 1e-9


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeechOptions:
    """The options every windowed detector shares; the names follow LiveKit Agents' Silero.

    Attributes:
        activation_threshold: Speech probability (0..1] at which a window outside speech
            counts as speech.
        deactivation_threshold: Probability above which a window inside speech still
            counts as speech; must not exceed ``activation_threshold``. ``None`` means
            ``max(activation_threshold - 0.15, 0.01)``, as in LiveKit.
        min_speech_duration: Seconds of consecutive speech before a start of speech.
        min_silence_duration: Seconds of consecutive silence that end an utterance.
        prefix_padding_duration: Seconds of audio kept before the first speech window when
            ``keep_speech_samples`` is on.
        keep_speech_samples: Attach the utterance audio to each end of speech. Off by
            default because it holds up to ``max_buffered_speech`` of audio per stream.
        max_buffered_speech: Seconds of utterance audio kept at most; a longer utterance
            keeps its first part only.
        min_speech_level_db: The level gate: a window whose RMS level is below this many
            dBFS (a full-scale square wave is 0 dBFS) counts as silence whatever its
            probability, both for starting speech and for ending it; ``None`` turns the gate
            off. A neural model's probability lags the end of the voice: on espeak-ng and
            Piper speech followed by silence, Silero stays above the deactivation threshold
            for up to three 32 ms windows after the last word, and each of them delays the
            end of speech by a window. With the gate, the silence count starts at the first
            window that really is silent. Decisions still report the model's probability.

            The default, -60 dBFS (an RMS of 33 in 16-bit samples), is deliberately
            conservative: speech reaching a microphone is typically -40 to -15 dBFS, and a
            quiet room heard through an ordinary microphone about -60 to -50 dBFS, so the
            gate only silences audio far below speech and, in a room noisier than it,
            never closes (the model decides alone, as without the gate). It acts where
            silence is really silent: noise-suppressed WebRTC audio, digital silence in
            synthetic or recorded audio, and the decaying tail of a voice. Set ``None`` for
            input so quiet that speech itself sits near -60 dBFS (a microphone with very
            low gain and no automatic gain control); raise it (towards -50 dBFS) where a
            steady hiss or hum below that level keeps the model's probability up.
    """

    # What the probability means, for the error message (each detector says it its way).
    _threshold_meaning: ClassVar[str] = "a speech probability"

    activation_threshold: float = 0.5
    deactivation_threshold: float | None = None
    min_speech_duration: float = 0.05
    min_silence_duration: float = 0.55
    prefix_padding_duration: float = 0.5
    keep_speech_samples: bool = False
    max_buffered_speech: float = 60.0
    min_speech_level_db: float | None = -60.0

    def __post_init__(self) -> None:
        self._check_speech_options()

    def _check_speech_options(self) -> None:
        if not 0.0 < self.activation_threshold <= 1.0:
            raise ValueError(
                f"activation_threshold must be in (0, 1], got {self.activation_threshold}; "
                f"it is {self._threshold_meaning}"
            )
        deactivation = self.effective_deactivation_threshold
        if not 0.0 < deactivation <= self.activation_threshold:
            raise ValueError(
                f"deactivation_threshold must be in (0, activation_threshold="
                f"{self.activation_threshold}], got {deactivation}; lower it, or leave it "
                "None for activation_threshold - 0.15"
            )
        for name in (
            "min_speech_duration",
            "min_silence_duration",
            "prefix_padding_duration",
            "max_buffered_speech",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        self._check_level_gate()

    def _check_level_gate(self) -> None:
        # Typed as object: a caller may pass anything, and numpy numbers are Real, not float.
        gate: object = self.min_speech_level_db
        if gate is None:
            return
        if isinstance(gate, bool) or not isinstance(gate, numbers.Real):
            raise TypeError(
                f"min_speech_level_db must be a number of dBFS or None, got {gate!r}; "
                "try -60, or None to turn the level gate off"
            )
        level = float(gate)
        if not (math.isfinite(level) and level < 0.0):
            hint = f" (did you mean {-level:g}?)" if math.isfinite(level) and level > 0.0 else ""
            raise ValueError(
                f"min_speech_level_db must be a level below 0 dBFS (full scale), got "
                f"{gate}{hint}; windows quieter than it count as silence, so -60 gates "
                "only near-silence, and None turns the gate off"
            )

    @property
    def effective_deactivation_threshold(self) -> float:
        """The deactivation threshold in force, with ``None`` resolved."""
        if self.deactivation_threshold is None:
            return max(self.activation_threshold - 0.15, 0.01)
        return self.deactivation_threshold


@dataclass(frozen=True, slots=True, kw_only=True)
class EnergyVADOptions(SpeechOptions):
    """Settings of :class:`EnergyVAD`: the shared :class:`SpeechOptions`, and these.

    Attributes:
        window_ms: Length of the window classified at once, in milliseconds.
        speech_snr_db: Decibels above the noise floor at which the probability reaches 1.
        min_noise_floor_db: The lowest the noise floor goes, in dBFS. Windows quieter than
            this never count as speech, however silent the stream was before.
        noise_floor_rise_db_per_s: How fast the noise floor may rise, in dB per second.
    """

    _threshold_meaning: ClassVar[str] = (
        "a speech probability (0.5 means 10 dB above the noise floor)"
    )

    window_ms: float = 30.0
    speech_snr_db: float = 20.0
    min_noise_floor_db: float = -60.0
    noise_floor_rise_db_per_s: float = 3.0

    def __post_init__(self) -> None:
        self._check_speech_options()
        rise = self.noise_floor_rise_db_per_s
        if not (math.isfinite(rise) and rise >= 0.0):
            raise ValueError(f"noise_floor_rise_db_per_s must be a finite number >= 0, got {rise}")
        if not (math.isfinite(self.window_ms) and 5.0 <= self.window_ms <= 100.0):
            raise ValueError(
                f"window_ms must be between 5 and 100 ms, got {self.window_ms}; "
                "10 to 32 ms suits speech"
            )
        if not (math.isfinite(self.speech_snr_db) and self.speech_snr_db > 0.0):
            raise ValueError(
                f"speech_snr_db must be a positive number of dB, got {self.speech_snr_db}; try 20"
            )
        if not (math.isfinite(self.min_noise_floor_db) and self.min_noise_floor_db < 0.0):
            raise ValueError(
                f"min_noise_floor_db must be below 0 dBFS, got {self.min_noise_floor_db}; try -60"
            )


class EnergyVAD:
    """A model-free VAD provider: speech is sound well above the stream's noise floor.

    Implements :class:`~flowkit.vad.contract.VADProvider`; see the module documentation for
    how a window is classified. Works at any sample rate from 8 kHz up.

    Example:
        >>> vad = EnergyVAD(EnergyVADOptions(min_silence_duration=0.3))
        >>> stream = vad.stream()
        >>> stream.push(np.zeros(320, dtype=np.int16), 16000)
        []
    """

    def __init__(self, options: EnergyVADOptions | None = None) -> None:
        """Make a provider.

        Args:
            options: Detector settings; the defaults when omitted.
        """
        self._options = options if options is not None else EnergyVADOptions()

    @property
    def options(self) -> EnergyVADOptions:
        """The settings every stream of this provider uses."""
        return self._options

    @property
    def sample_rate(self) -> int | None:
        """``None``: any rate from 8 kHz up works."""
        return None

    @property
    def window_ms(self) -> float:
        """The classification window in milliseconds."""
        return self._options.window_ms

    def stream(self) -> EnergyVADStream:
        """Make a detector with fresh state for one audio stream."""
        return EnergyVADStream(self._options)

    def __repr__(self) -> str:
        return f"EnergyVAD({self._options!r})"


class WindowedVADStream(abc.ABC):
    """A VAD stream that classifies fixed windows and turns their probabilities into decisions.

    The shared half of every windowed detector: cutting pushed audio into whole windows
    (keeping the remainder for the next push), the hysteresis state machine described in
    the module documentation, prefix padding and the kept utterance audio, the clock and
    :meth:`flush`. A subclass says only how long a window is at a given rate
    (:meth:`_bind`) and how likely each window is to be speech (:meth:`_probabilities`),
    so that every detector built on it decides in the same way from its probabilities.

    Implements :class:`~flowkit.vad.contract.VADStream`. The sample rate is fixed by the
    first push.
    """

    def __init__(self, options: SpeechOptions) -> None:
        """Set up the state machine.

        Args:
            options: The shared detector options (already checked when they were made).
        """
        self._activation = options.activation_threshold
        self._deactivation = options.effective_deactivation_threshold
        self._min_speech = options.min_speech_duration
        self._min_silence = options.min_silence_duration
        self._prefix_duration = options.prefix_padding_duration
        self._keep = options.keep_speech_samples
        self._max_buffered = options.max_buffered_speech
        self._min_level_db = options.min_speech_level_db
        # The level gate as a sum of squared samples per window, set with the rate.
        self._quiet_energy: float | None = None
        self._rate: int | None = None
        self._window = 0
        self._speech_windows_needed = 1
        self._silence_windows_needed = 1
        self._prefix_samples = 0
        self._max_kept = 0
        self._rest: PCMSamples = np.zeros(0, dtype=np.int16)
        # Samples accounted for so far (classified or flushed): the stream's clock.
        self._clock = 0
        self._last_probability = 0.0
        self._speaking = False
        self._speech_run = 0
        self._silence_run = 0
        self._onset = 0
        self._last_speech_end = 0
        # Recent audio, so that an utterance can start with its prefix padding.
        self._recent: deque[PCMSamples] = deque()
        self._recent_len = 0
        self._utterance: list[PCMSamples] = []
        self._utterance_len = 0

    @property
    def sample_rate(self) -> int | None:
        """The rate fixed by the first push, or ``None`` before it."""
        return self._rate

    @property
    def speaking(self) -> bool:
        """``True`` between a start of speech and its end."""
        return self._speaking

    @abc.abstractmethod
    def _bind(self, rate: int) -> int:
        """Check the rate of the first push and prepare for it.

        Args:
            rate: The sample rate in Hz (already known to be a positive integer).

        Returns:
            The window length in samples at that rate.

        Raises:
            ValueError: The detector does not work at this rate; say what to do instead.
        """

    @abc.abstractmethod
    def _probabilities(self, blocks: npt.NDArray[np.int16]) -> Sequence[float]:
        """The speech probability of each window, in order.

        Args:
            blocks: ``[count, window]`` samples, the windows that follow those given
                before. Rows must not be kept: the caller may reuse their memory.

        Returns:
            ``count`` probabilities in ``[0, 1]``.
        """

    def push(self, samples: PCMSamples, sample_rate: int) -> list[VADDecision]:
        """Feed audio and collect the decisions it settled.

        Args:
            samples: 16-bit mono PCM, one dimension, any length.
            sample_rate: The rate in Hz, one the detector supports and the same for every
                push.

        Returns:
            Zero or more decisions, in time order.

        Raises:
            TypeError: ``samples`` is not an int16 numpy array.
            ValueError: ``samples`` is not one-dimensional, or the rate is not supported or
                differs from the first push's.
        """
        blocks = self._cut_windows(samples, sample_rate, own=self._keep)
        if blocks is None:
            return []
        quiet = self._quiet_windows(blocks)
        probabilities = self._probabilities(blocks)
        decisions: list[VADDecision] = []
        for index, probability in enumerate(probabilities):
            decision = self._step(
                float(probability), blocks[index] if self._keep else None, quiet[index]
            )
            if decision is not None:
                decisions.append(decision)
        return decisions

    def flush(self) -> list[VADDecision]:
        """End the current segment, closing an open utterance with an end of speech.

        Audio kept back for lack of a whole window is not classified: it counts toward the
        timestamp and the kept audio, and as speech or silence like the window before it.
        The detector's own state and the clock carry on after a flush.

        Returns:
            An end of speech when an utterance was open, otherwise nothing.
        """
        if self._rate is None:
            return []
        rest, self._rest = self._rest, np.zeros(0, dtype=np.int16)
        if rest.size:
            self._keep_audio(rest)
            self._clock += rest.size
            # Unjudged audio is taken to continue the last window: speech if it was speech.
            if self._speaking and self._silence_run == 0:
                self._last_speech_end = self._clock
        self._speech_run = 0
        self._silence_run = 0
        if not self._speaking:
            return []
        return [self._end()]

    def _bind_rate(self, rate: int) -> None:
        if self._rate == rate:
            return
        if self._rate is not None:
            raise ValueError(
                f"this VAD stream runs at {self._rate} Hz but got audio at {rate} Hz; make "
                "a new stream with provider.stream() for the new audio, or resample it to "
                f"{self._rate} Hz"
            )
        window = self._bind(rate)
        self._rate = rate
        self._window = window
        window_s = window / rate
        self._speech_windows_needed = max(1, math.ceil(self._min_speech / window_s - _EPSILON))
        self._silence_windows_needed = max(1, math.ceil(self._min_silence / window_s - _EPSILON))
        self._prefix_samples = round(self._prefix_duration * rate)
        self._max_kept = round(self._max_buffered * rate)
        if self._min_level_db is not None:
            self._quiet_energy = window * _FULL_SCALE_SQUARED * 10.0 ** (self._min_level_db / 10)

    def _cut_windows(
        self, samples: PCMSamples, sample_rate: int, *, own: bool
    ) -> npt.NDArray[np.int16] | None:
        """Check a push, append it to the audio held back, and cut off the whole windows.

        Args:
            samples: What was pushed (checked with :func:`~flowkit.vad.contract.check_pcm`).
            sample_rate: Its rate (bound to the stream at the first push).
            own: The windows will be kept, so they must not share the caller's buffer,
                which it may reuse for its next frame.

        Returns:
            ``[count, window]`` samples, or ``None`` while less than a window is held.
        """
        pcm = check_pcm(samples, sample_rate)
        self._bind_rate(int(sample_rate))
        window = self._window
        rest = self._rest
        # Joined with what was held back, the audio is a new array that nobody else holds:
        # its windows and its remainder are used as views. Otherwise what is kept is copied.
        joined = rest.size > 0
        if joined:
            pcm = np.concatenate((rest, pcm))
        count = pcm.size // window
        used = count * window
        self._rest = pcm[used:] if joined else pcm[used:].copy()
        if count == 0:
            return None
        blocks = pcm[:used].reshape(count, window)
        return blocks.copy() if own and not joined else blocks

    @staticmethod
    def _window_levels(blocks: npt.NDArray[np.int16]) -> npt.NDArray[np.int64]:
        """Each window's sum of squared samples: what the level gate compares.

        Exact integers (an int16 square fits int32, a window's sum int64), so the gate
        does not depend on how audio was pushed, nor on which windows a batched stream
        classifies together: one call for any number of rows.

        Args:
            blocks: ``[count, window]`` samples.

        Returns:
            ``count`` sums, in order.
        """
        levels: npt.NDArray[np.int64] = np.square(blocks, dtype=np.int32).sum(
            axis=1, dtype=np.int64
        )
        return levels

    def _below_gate(self, level: int) -> bool:
        """Whether a window of this level is silence whatever its probability."""
        limit = self._quiet_energy
        return limit is not None and level < limit

    def _quiet_windows(self, blocks: npt.NDArray[np.int16]) -> list[bool]:
        """Which windows are below the level gate (all ``False`` when it is off).

        Args:
            blocks: ``[count, window]`` samples, after the stream's rate is bound.

        Returns:
            ``count`` flags, in order.
        """
        if self._quiet_energy is None:
            return [False] * blocks.shape[0]
        return [self._below_gate(level) for level in self._window_levels(blocks).tolist()]

    def _step(
        self, probability: float, block: PCMSamples | None, quiet: bool
    ) -> VADDecision | None:
        """Advance the state machine by one classified window; return a decision if any.

        Args:
            probability: The window's speech probability.
            block: The window's samples when utterance audio is kept, else ``None``.
            quiet: The window is below the level gate: silence, whatever the probability.
        """
        self._last_probability = probability
        start = self._clock
        end = start + self._window
        self._clock = end
        if block is not None:
            self._keep_audio(block)

        if not self._speaking:
            if quiet or probability < self._activation:
                self._speech_run = 0
                return None
            if self._speech_run == 0:
                self._onset = start
            self._speech_run += 1
            if self._speech_run < self._speech_windows_needed:
                return None
            return self._start(end)

        if not quiet and probability > self._deactivation:
            self._silence_run = 0
            self._last_speech_end = end
            return None
        self._silence_run += 1
        if self._silence_run < self._silence_windows_needed:
            return None
        return self._end()

    def _start(self, end: int) -> VADDecision:
        assert self._rate is not None
        self._speaking = True
        self._silence_run = 0
        self._last_speech_end = end
        if self._keep:
            # Recent audio ends at `end`; take from prefix_padding before the onset.
            first = max(0, self._onset - self._prefix_samples)
            recent = np.concatenate(tuple(self._recent))
            self._utterance = []
            self._utterance_len = 0
            self._append_utterance(recent[max(0, recent.size - (end - first)) :])
        return VADDecision(
            kind=VADEventKind.START_OF_SPEECH,
            timestamp=end / self._rate,
            speech_duration=(end - self._onset) / self._rate,
            silence_duration=0.0,
            probability=self._last_probability,
        )

    def _end(self) -> VADDecision:
        assert self._rate is not None
        self._speaking = False
        self._speech_run = 0
        self._silence_run = 0
        samples: PCMSamples | None = None
        if self._keep:
            samples = (
                np.concatenate(self._utterance) if self._utterance else np.zeros(0, dtype=np.int16)
            )
            samples.flags.writeable = False
            self._utterance = []
            self._utterance_len = 0
        return VADDecision(
            kind=VADEventKind.END_OF_SPEECH,
            timestamp=self._clock / self._rate,
            speech_duration=(self._last_speech_end - self._onset) / self._rate,
            silence_duration=(self._clock - self._last_speech_end) / self._rate,
            probability=self._last_probability,
            speech_samples=samples,
        )

    def _keep_audio(self, block: PCMSamples) -> None:
        """Remember audio for prefix padding and, inside speech, for the utterance."""
        if not self._keep:
            return
        if self._speaking:
            self._append_utterance(block)
        self._recent.append(block)
        self._recent_len += block.size
        # Enough for the prefix plus the speech that must pass before a start.
        needed = self._prefix_samples + self._speech_windows_needed * self._window
        while self._recent and self._recent_len - self._recent[0].size >= needed:
            self._recent_len -= self._recent.popleft().size

    def _append_utterance(self, block: PCMSamples) -> None:
        room = self._max_kept - self._utterance_len
        if room <= 0:
            return
        part = block[:room]
        self._utterance.append(part)
        self._utterance_len += part.size


class EnergyVADStream(WindowedVADStream):
    """The state of :class:`EnergyVAD` for one audio stream.

    Implements :class:`~flowkit.vad.contract.VADStream`. The sample rate is fixed by the
    first push.
    """

    def __init__(self, options: EnergyVADOptions) -> None:
        """Make a stream; normally through :meth:`EnergyVAD.stream`.

        Args:
            options: Detector settings.
        """
        super().__init__(options)
        self._opts = options
        self._rise_per_window = 0.0
        self._floor: float | None = None

    @property
    def noise_floor_db(self) -> float | None:
        """The current noise floor in dBFS, or ``None`` before the first whole window."""
        return self._floor

    def push(self, samples: PCMSamples, sample_rate: int) -> list[VADDecision]:
        """Feed audio and collect the decisions it settled.

        Args:
            samples: 16-bit mono PCM, one dimension, any length.
            sample_rate: The rate in Hz, at least 8000 and the same for every push.

        Returns:
            Zero or more decisions, in time order.

        Raises:
            TypeError: ``samples`` is not an int16 numpy array.
            ValueError: ``samples`` is not one-dimensional, or the rate is below 8000 Hz or
                differs from the first push's.
        """
        return super().push(samples, sample_rate)

    def flush(self) -> list[VADDecision]:
        """End the current segment, closing an open utterance with an end of speech.

        Audio kept back for lack of a whole window is not classified: it counts toward the
        timestamp and the kept audio, and as speech or silence like the window before it.
        The floor and the clock carry on after a flush.

        Returns:
            An end of speech when an utterance was open, otherwise nothing.
        """
        return super().flush()

    def _bind(self, rate: int) -> int:
        if rate < _MIN_SAMPLE_RATE:
            raise ValueError(
                f"sample_rate {rate} Hz is too low for speech; EnergyVAD needs at least "
                f"{_MIN_SAMPLE_RATE} Hz (was a channel count or frame size passed by mistake?)"
            )
        window = max(1, round(rate * self._opts.window_ms / 1000.0))
        self._rise_per_window = self._opts.noise_floor_rise_db_per_s * window / rate
        return window

    def _probabilities(self, blocks: npt.NDArray[np.int16]) -> list[float]:
        """Level against the noise floor, window by window (see the module documentation)."""
        opts = self._opts
        window = blocks.shape[1]
        # Integer sums are exact, so a window's level is the same however audio was pushed.
        wide = blocks.astype(np.int64)
        energy = np.einsum("ij,ij->i", wide, wide)
        levels = 10.0 * np.log10(np.maximum(energy, 1) / (window * _FULL_SCALE_SQUARED))
        probabilities: list[float] = []
        for level in levels.tolist():
            previous = self._floor
            if previous is None:
                # Capped so that a stream which opens mid-sentence still hears that sentence.
                previous = min(level, opts.min_noise_floor_db + opts.speech_snr_db)
            floor = min(level, previous + self._rise_per_window)
            floor = max(floor, opts.min_noise_floor_db)
            self._floor = floor
            probabilities.append(min(1.0, max(0.0, (level - floor) / opts.speech_snr_db)))
        return probabilities
