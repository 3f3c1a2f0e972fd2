"""Silero VAD on plain onnxruntime: a neural voice activity detector, no torch, no network.

The model (``models/silero_vad.onnx``, MIT licence in ``models/LICENSE.silero-vad``) is
vendored from the ``silero-vad`` wheel, whose own Python API needs torch. It classifies
32 ms windows: 512 samples at 16 kHz (256 at 8 kHz), each fed with the last 64 (32) samples
of the window before as context, through a recurrent state of ``[2, batch, 128]``. At 16 kHz
the provider runs the same network rewritten as dense matrix products
(``models/silero_vad_16k_dense.onnx``, built by :mod:`flowkit_local.silero_dense`): the
same probabilities to about 1e-7, for half the CPU of the published file alone and a
third of it in batches. A window of digital silence (it and its context all zeros) goes to
that network's recurrent half alone (``models/silero_vad_16k_silent.onnx``): the encoder's
output for zeros is a constant, so the outputs are the same for a fifth of the work.

:class:`SileroVADProvider` loads the model once and is shared by every session; each
:meth:`~SileroVADProvider.stream` keeps its own recurrent state and context. Decisions come
from the same windowing, level gate and hysteresis as :class:`~flowkit.vad.EnergyVAD`
(:class:`~flowkit.vad.energy.WindowedVADStream`), so the options mean the same in both. The
level gate (``min_speech_level_db``, -60 dBFS by default) matters most here: Silero's
probability stays above the deactivation threshold for up to three windows after a voice
stops, and the gate counts those windows as the silence they are when they are quieter
than it.
:class:`SileroVAD` is the :class:`~flowkit.nodes.vad.VAD` node with this provider.

With ``SileroVADProvider(batch=True)`` the provider is also a
:class:`~flowkit.vad.DeferredVADProvider`: ``stream(on_decisions=...)`` makes a
:class:`~flowkit_local.silero_batch.BatchedSileroVADStream`, whose windows are classified
together with the other streams' on the same event loop, one model call per loop iteration
(see :mod:`flowkit_local.silero_batch`); the VAD node uses it by itself.

Only 8 and 16 kHz work. The VAD node declares the provider's rate on its input port, so a
graph fed at another rate gets a resampler inserted in front of it.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import numpy.typing as npt
import onnxruntime as ort  # type: ignore[import-untyped]

from flowkit.nodes.vad import VAD
from flowkit.vad.contract import DecisionCallback, PCMSamples, VADDecision
from flowkit.vad.energy import SpeechOptions, WindowedVADStream
from flowkit_local.silero_dense import DENSE_MODEL_PATH, SILENT_MODEL_PATH

if TYPE_CHECKING:
    from flowkit_local.silero_batch import SileroBatcher

__all__ = [
    "DENSE_MODEL_PATH",
    "MODEL_PATH",
    "SileroVAD",
    "SileroVADOptions",
    "SileroVADProvider",
    "SileroVADStream",
]

MODEL_PATH = Path(__file__).parent / "models" / "silero_vad.onnx"
"""The vendored Silero VAD model (v6, from the silero-vad 6.2.3 wheel)."""

# Window and context lengths in samples, per supported rate, as silero-vad's own wrapper.
_WINDOWS = {16_000: 512, 8_000: 256}
_CONTEXTS = {16_000: 64, 8_000: 32}
_STATE_SIZE = 128
_INT16_SCALE = np.float32(1.0 / 32768.0)

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True, kw_only=True)
class SileroVADOptions(SpeechOptions):
    """Settings of :class:`SileroVADProvider`: the shared :class:`SpeechOptions`, and this.

    Attributes:
        sample_rate: The rate the model runs at: 16000 (default) or 8000 Hz.
    """

    _threshold_meaning: ClassVar[str] = "the model's speech probability (0.5 is the usual choice)"

    sample_rate: int = 16_000

    def __post_init__(self) -> None:
        self._check_speech_options()
        if self.sample_rate not in _WINDOWS:
            raise ValueError(
                f"sample_rate must be 16000 or 8000 Hz, got {self.sample_rate}; Silero VAD "
                "runs at these rates only (the VAD node resamples its input to the one chosen)"
            )


class SileroVADProvider:
    """Silero VAD: a :class:`~flowkit.vad.VADProvider` on one shared onnxruntime session.

    The model is loaded when the provider is made, on the CPU with one intra-op and one
    inter-op thread (many sessions run side by side, so one call must not take every core):
    at 16 kHz the dense rewrite of the vendored model (:data:`DENSE_MODEL_PATH`), at 8 kHz
    or with ``model_path`` the published graph, which takes the rate as an input.
    ``InferenceSession.run`` may be called from several threads at once, so streams of one
    provider may live on different threads; each stream is fed from one thread.

    Example:
        >>> vad = SileroVADProvider()
        >>> stream = vad.stream()
        >>> stream.push(np.zeros(320, dtype=np.int16), 16000)
        []
    """

    def __init__(
        self,
        options: SileroVADOptions | None = None,
        *,
        model_path: str | Path | None = None,
        batch: bool = False,
        batch_thread_from: int | None = 128,
        batch_wait: float = 0.002,
        silence_shortcut: bool = True,
    ) -> None:
        """Load the model.

        Args:
            options: Detector settings; the defaults (16 kHz) when omitted.
            model_path: Another Silero VAD ONNX file: the published model's inputs
                (``input``, ``state``, ``sr``), or the dense model's (no ``sr``, 16 kHz
                only); the vendored model for the rate when omitted.
            batch: Advertise deferred streams (:attr:`deferred`), so that the VAD node
                asks for batched ones: decisions a batch's model call later, for much
                less CPU when many sessions share the provider.
            batch_thread_from: A batch of at least this many windows runs its model call
                on a worker thread (one per event loop), so the loop serves the other
                sessions while the model computes (about 16 us per window at 16 kHz); a
                smaller batch runs on the loop, which costs less CPU and memory than the
                thread (two wake-ups per call, and the heap the thread's allocations
                fragment: 16 against 1.6 MiB/min of RSS growth at 100 sessions). ``None``:
                always on the loop; ``1``: always on the thread.
            batch_wait: Seconds a batch may wait for more streams' windows when it does
                not hold one of every stream yet. Frames that a transport delivers at
                each session's own moment reach the loop a few at a time, and a model
                call on a few windows costs several times more per window than one on
                dozens; waiting gathers them, at the price of up to that much delay on
                the decisions (bench/voice_sessions.py, 150 sessions each fed at its own
                moment: 1 window per call and not real time with 0; 25 per call and real
                time at 72% of a core with 2 ms). A batch holding a window of every
                stream goes at once, so one session, or sessions fed together, never
                wait. 0: a batch is what one loop iteration queued.
            silence_shortcut: Classify windows of digital silence (the window and its
                context all zeros) with the 16 kHz network's recurrent half alone
                (:data:`~flowkit_local.silero_dense.SILENT_MODEL_PATH`): the same outputs
                for a fifth of the model's work on them (``bench/silero_model.py``).
                ``False`` runs every window through the whole network (to compare). It
                applies to the vendored 16 kHz model only; another ``model_path`` always
                runs whole.

        Raises:
            FileNotFoundError: ``model_path`` does not exist.
            ValueError: ``model_path`` has no ``sr`` input (the dense 16 kHz model) but
                the options ask for 8 kHz, ``batch_thread_from`` is below 1, or
                ``batch_wait`` is negative or more than a window.
        """
        self._options = options if options is not None else SileroVADOptions()
        rate = self._options.sample_rate
        if model_path is not None:
            path = Path(model_path)
        else:
            path = DENSE_MODEL_PATH if rate == 16_000 else MODEL_PATH
        if not path.is_file():
            remedy = (
                "pass model_path= an existing file, or leave it out for the vendored model"
                if model_path is not None
                else f"reinstall flowkit-local (it ships models/{path.name})"
            )
            raise FileNotFoundError(f"Silero VAD model not found at {path}; {remedy}")
        self._model_path = path
        settings = ort.SessionOptions()
        settings.intra_op_num_threads = 1
        settings.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(path), sess_options=settings, providers=["CPUExecutionProvider"]
        )
        # The silent model holds the vendored dense network's encoding of zeros, so it
        # stands in for that network only, not for a model the caller brings.
        self._silent_session: ort.InferenceSession | None = None
        if silence_shortcut and path.resolve() == DENSE_MODEL_PATH.resolve():
            if not SILENT_MODEL_PATH.is_file():
                raise FileNotFoundError(
                    f"Silero VAD model not found at {SILENT_MODEL_PATH}; reinstall "
                    "flowkit-local (it ships models/silero_vad_16k_silent.onnx), or pass "
                    "silence_shortcut=False"
                )
            self._silent_session = ort.InferenceSession(
                str(SILENT_MODEL_PATH), sess_options=settings, providers=["CPUExecutionProvider"]
            )
        # The published graph takes the rate as an input; the dense one is 16 kHz only.
        takes_rate = any(i.name == "sr" for i in self._session.get_inputs())
        if not takes_rate and rate != 16_000:
            raise ValueError(
                f"{path.name} has no sr input (the dense 16 kHz network), but the options ask "
                f"for {rate} Hz; leave model_path out (the provider picks the model for the "
                "rate) or pass the published silero_vad.onnx"
            )
        self._fixed_inputs: dict[str, npt.NDArray[np.int64]] = (
            {"sr": np.array(rate, dtype=np.int64)} if takes_rate else {}
        )
        # Loading frees about 5 MiB of heap (the parsed model, the optimizer's intermediate
        # graphs) that glibc keeps mapped: hand it back (a no-op where libc is not glibc).
        # The arena and memory-pattern options change nothing measurable here (issue 7).
        import contextlib
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(ctypes.c_size_t(0))
        self._batch = batch
        if batch_thread_from is not None and batch_thread_from < 1:
            raise ValueError(
                f"batch_thread_from must be at least 1 window, got {batch_thread_from}; "
                "use None to keep every batch on the event loop"
            )
        self._batch_thread_from = batch_thread_from
        # More than a window would let a stream's windows pile up behind one batch.
        window_s = _WINDOWS[rate] / rate
        if not 0.0 <= batch_wait <= window_s:
            raise ValueError(
                f"batch_wait must be between 0 and one window ({window_s:.3f} s), got "
                f"{batch_wait}; a few ms gathers the windows of sessions whose frames "
                "arrive at different moments"
            )
        self._batch_wait = batch_wait
        # One batcher per event loop; a loop that is gone takes its batcher with it.
        self._batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SileroBatcher] = (
            weakref.WeakKeyDictionary()
        )
        self._batchers_lock = threading.Lock()

    @property
    def options(self) -> SileroVADOptions:
        """The settings every stream of this provider uses."""
        return self._options

    @property
    def model_path(self) -> Path:
        """The ONNX file the provider runs."""
        return self._model_path

    @property
    def sample_rate(self) -> int:
        """The rate the model runs at: the VAD node's input is declared at it."""
        return self._options.sample_rate

    @property
    def window_ms(self) -> float:
        """32 ms: the model classifies 512 samples at 16 kHz, 256 at 8 kHz."""
        return 1000.0 * _WINDOWS[self._options.sample_rate] / self._options.sample_rate

    @property
    def window(self) -> int:
        """The window length in samples at :attr:`sample_rate`."""
        return _WINDOWS[self._options.sample_rate]

    @property
    def context(self) -> int:
        """Samples of the previous window put before each window, at :attr:`sample_rate`."""
        return _CONTEXTS[self._options.sample_rate]

    def initial_state(self, batch: int = 1) -> FloatArray:
        """A fresh recurrent state for ``batch`` streams: zeros of ``[2, batch, 128]``."""
        return np.zeros((2, batch, _STATE_SIZE), dtype=np.float32)

    def infer_batch(self, windows: FloatArray, states: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Classify one window of each of several streams in one model call.

        The outputs match one call per stream (to float rounding), and one call for a batch
        of 50 or more streams costs about half the CPU of as many single calls.

        Args:
            windows: ``[batch, context + window]`` float32 samples in [-1, 1]: each row the
                stream's context (the end of its previous window, zeros at first) followed by
                its new window.
            states: ``[2, batch, 128]`` float32 recurrent states, from :meth:`initial_state`
                or the previous call.

        Returns:
            The speech probabilities, ``[batch]``, and the new states, ``[2, batch, 128]``.

        Raises:
            ValueError: The shapes do not match the provider's rate or each other.
        """
        width = self.context + self.window
        if windows.ndim != 2 or windows.shape[1] != width:
            raise ValueError(
                f"windows must have shape [batch, {width}] at {self.sample_rate} Hz "
                f"({self.context} samples of context + {self.window} new), got {windows.shape}"
            )
        if states.shape != (2, windows.shape[0], _STATE_SIZE):
            raise ValueError(
                f"states must have shape (2, {windows.shape[0]}, {_STATE_SIZE}) for a batch of "
                f"{windows.shape[0]}, got {states.shape}; start from initial_state(batch)"
            )
        probabilities, new_states = self._run(windows, states)
        return probabilities[:, 0], new_states

    @property
    def silence_shortcut(self) -> bool:
        """Whether windows of digital silence run through the network's recurrent half."""
        return self._silent_session is not None

    def _run(self, windows: FloatArray, states: FloatArray) -> tuple[FloatArray, FloatArray]:
        if self._silent_session is not None:
            if windows.shape[0] == 1:
                # count_nonzero, not any: a numpy reduction (any, sum) before the model call
                # costs the call about 6 us more at one row (measured, not understood).
                if not np.count_nonzero(windows):
                    return self._run_silent(states)
            else:
                sounding: npt.NDArray[np.bool_] = np.any(windows, axis=1)
                heard = int(np.count_nonzero(sounding))
                if heard == 0:
                    return self._run_silent(states)
                if heard < sounding.size:
                    return self._run_split(windows, states, sounding)
        return self._run_whole(windows, states)

    def _run_silent(self, states: FloatArray) -> tuple[FloatArray, FloatArray]:
        """The silent model for rows that are all digital silence."""
        assert self._silent_session is not None
        outputs = self._silent_session.run(
            None, {"state": np.ascontiguousarray(states, dtype=np.float32)}
        )
        return np.asarray(outputs[0]), np.asarray(outputs[1])

    def _run_split(
        self, windows: FloatArray, states: FloatArray, sounding: npt.NDArray[np.bool_]
    ) -> tuple[FloatArray, FloatArray]:
        """One call of the whole network for the sounding rows, one of the silent model."""
        count = windows.shape[0]
        probabilities = np.empty((count, 1), np.float32)
        new_states = np.empty((2, count, _STATE_SIZE), np.float32)
        heard, silent = np.flatnonzero(sounding), np.flatnonzero(~sounding)
        probabilities[heard], new_states[:, heard] = self._run_whole(
            windows[heard], states[:, heard]
        )
        probabilities[silent], new_states[:, silent] = self._run_silent(states[:, silent])
        return probabilities, new_states

    def _run_whole(
        self, windows: FloatArray, states: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        outputs = self._session.run(
            None,
            {
                "input": np.ascontiguousarray(windows, dtype=np.float32),
                "state": np.ascontiguousarray(states, dtype=np.float32),
                **self._fixed_inputs,
            },
        )
        probabilities = np.asarray(outputs[0], dtype=np.float32)
        new_states = np.asarray(outputs[1], dtype=np.float32)
        return probabilities, new_states

    @property
    def deferred(self) -> bool:
        """Whether consumers should ask for batched streams (``batch=True``)."""
        return self._batch

    def stream(self, on_decisions: DecisionCallback | None = None) -> SileroVADStream:
        """Make a detector with fresh state (recurrent state and context) for one stream.

        Args:
            on_decisions: When given, a
                :class:`~flowkit_local.silero_batch.BatchedSileroVADStream` that batches
                its windows with other streams' and sends decisions here (whether or not
                the provider was made with ``batch=True``); otherwise a synchronous stream.
        """
        if on_decisions is None:
            return SileroVADStream(self)
        from flowkit_local.silero_batch import BatchedSileroVADStream

        return BatchedSileroVADStream(self, on_decisions)

    def batcher(self, loop: asyncio.AbstractEventLoop) -> SileroBatcher:
        """The batcher of this provider's streams on ``loop``, made on first use.

        Args:
            loop: The event loop the streams are fed on.
        """
        with self._batchers_lock:
            batcher = self._batchers.get(loop)
            if batcher is None:
                from flowkit_local.silero_batch import SileroBatcher

                batcher = self._batchers[loop] = SileroBatcher(
                    self, loop, thread_from=self._batch_thread_from, wait=self._batch_wait
                )
            return batcher

    def __repr__(self) -> str:
        batch = ", batch=True" if self._batch else ""
        return f"SileroVADProvider({self._options!r}{batch})"


class SileroVADStream(WindowedVADStream):
    """The state of :class:`SileroVADProvider` for one audio stream.

    Implements :class:`~flowkit.vad.VADStream`. Audio must come at the provider's
    :attr:`~SileroVADProvider.sample_rate`; any other rate is refused.
    """

    def __init__(self, provider: SileroVADProvider) -> None:
        """Make a stream; normally through :meth:`SileroVADProvider.stream`.

        Args:
            provider: The provider whose model and settings the stream uses.
        """
        super().__init__(provider.options)
        self._provider = provider
        self._context = provider.context
        self._state = provider.initial_state(1)
        # One reused input row: its head holds the context, the end of the window before.
        self._input: FloatArray = np.zeros((1, provider.context + provider.window), np.float32)

    @property
    def last_probability(self) -> float:
        """The speech probability of the last window classified (0 before the first)."""
        return self._last_probability

    def push(self, samples: PCMSamples, sample_rate: int) -> list[VADDecision]:
        """Feed audio and collect the decisions it settled.

        Args:
            samples: 16-bit mono PCM, one dimension, any length.
            sample_rate: The provider's rate in Hz (16000 by default).

        Returns:
            Zero or more decisions, in time order.

        Raises:
            TypeError: ``samples`` is not an int16 numpy array.
            ValueError: ``samples`` is not one-dimensional, or the rate is not the
                provider's.
        """
        return super().push(samples, sample_rate)

    def reset(self) -> None:
        """Forget the model's recurrent state and context (not the decisions' clock).

        Call it between unrelated recordings pushed into one stream; a flush alone keeps
        the model's memory of the audio before.
        """
        self._state = self._provider.initial_state(1)
        self._input[:] = 0.0

    def _bind(self, rate: int) -> int:
        expected = self._provider.sample_rate
        if rate != expected:
            raise ValueError(
                f"SileroVAD runs at {expected} Hz but got audio at {rate} Hz; put a "
                f"resampler before it (flowkit.nodes.audio.Resample({expected}); in a graph "
                "the VAD node's input declares the rate so one is inserted for you), or make "
                f"the provider with SileroVADOptions(sample_rate={rate}) if {rate} is 8000"
            )
        return self._provider.window

    def _probabilities(self, blocks: npt.NDArray[np.int16]) -> list[float]:
        """Run the model window by window: each depends on the state the one before left."""
        row = self._input
        context = self._context
        run = self._provider._session.run
        silent = self._provider._silent_session
        feed: dict[str, npt.NDArray[Any]] = {
            "input": row,
            "state": self._state,
            **self._provider._fixed_inputs,
        }
        probabilities: list[float] = []
        for block in blocks:
            row[0, :context] = row[0, -context:]
            np.multiply(block, _INT16_SCALE, out=row[0, context:])
            # The arrays are already float32 and contiguous: no _run checks in this loop,
            # which is most of a session's CPU time.
            if silent is not None and not np.count_nonzero(row):
                out, feed["state"] = silent.run(None, {"state": feed["state"]})
            else:
                out, feed["state"] = run(None, feed)
            probabilities.append(float(out[0, 0]))
        self._state = feed["state"].astype(np.float32, copy=False)
        return probabilities


class SileroVAD(VAD):
    """The :class:`~flowkit.nodes.vad.VAD` node with Silero VAD (:class:`SileroVADProvider`).

    Its input is declared at the model's rate (16 kHz by default), so a graph resamples
    other audio to it by itself.
    """

    _shared: ClassVar[dict[SileroVADOptions, SileroVADProvider]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        *,
        activation_threshold: float = 0.5,
        deactivation_threshold: float | None = None,
        min_speech_duration: float = 0.05,
        min_silence_duration: float = 0.55,
        prefix_padding_duration: float = 0.5,
        min_speech_level_db: float | None = -60.0,
        sample_rate: int = 16_000,
        speaker: str = "user",
    ) -> None:
        """Create the node; nodes with the same settings share one loaded model.

        Args:
            activation_threshold: Speech probability at which speech starts.
            deactivation_threshold: Probability below which speech goes on ending;
                ``activation_threshold - 0.15`` when ``None``.
            min_speech_duration: Seconds of speech before a start of speech.
            min_silence_duration: Seconds of silence that end an utterance.
            prefix_padding_duration: Seconds of audio before speech kept with it.
            min_speech_level_db: Windows quieter than this many dBFS are silence whatever
                the model says; ``None`` turns the gate off (see
                :class:`~flowkit.vad.energy.SpeechOptions`).
            sample_rate: 16000 or 8000 Hz.
            speaker: The participant identity put on the events.

        Raises:
            ValueError: An option is out of range (the message names it).
        """
        options = SileroVADOptions(
            activation_threshold=activation_threshold,
            deactivation_threshold=deactivation_threshold,
            min_speech_duration=min_speech_duration,
            min_silence_duration=min_silence_duration,
            prefix_padding_duration=prefix_padding_duration,
            min_speech_level_db=min_speech_level_db,
            sample_rate=sample_rate,
        )
        super().__init__(self.provider_for(options), speaker=speaker)

    @classmethod
    def provider_for(cls, options: SileroVADOptions) -> SileroVADProvider:
        """The process-wide provider for these settings, loaded on first use.

        A graph is built per job, so without this each job would load its own copy of the
        model; streams carry all per-session state, so one provider serves every job.
        """
        with cls._shared_lock:
            provider = cls._shared.get(options)
            if provider is None:
                provider = cls._shared[options] = SileroVADProvider(options)
            return provider
