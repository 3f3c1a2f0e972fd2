"""The speech-to-text (STT) provider contracts, a batch-to-streaming adapter and a meter.

Two kinds of recognisers exist: a :class:`BatchSTT` takes one finished utterance and
returns its text (Whisper, most HTTP APIs); a :class:`StreamingSTT` takes audio as it
arrives and answers with interim and final results (Deepgram-style sockets). Like VAD
providers, a streaming provider is a factory: one provider serves many sessions, each
session's state lives in its :class:`STTStream`.

:class:`StreamingSTTFromBatch` turns a batch recogniser into a streaming one by cutting the
audio into utterances with a VAD, so the STT node only ever deals with streams.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

import numpy as np

from flowkit.messages import Metrics, VADEventKind
from flowkit.providers.clock import loop_time
from flowkit.providers.worker_stream import WorkerStream
from flowkit.vad.contract import PCMSamples, VADDecision, VADProvider, check_pcm

__all__ = [
    "BatchSTT",
    "STTMeter",
    "STTStream",
    "SpeechResult",
    "StreamingSTT",
    "StreamingSTTFromBatch",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeechResult:
    """Text recognised from speech.

    Attributes:
        text: The recognised text (may be empty when nothing was understood).
        final: ``False`` for an interim hypothesis that a later result replaces.
        language: BCP-47 language code, when the recogniser reports one.
        confidence: The recogniser's confidence in ``[0, 1]``, when reported.
        start_time: Seconds from the start of the audio (the stream, for a stream) to the
            first word.
        end_time: Seconds from the start of the audio to the end of the last word.
        audio_duration: Seconds of audio the recogniser was given for this result, what a
            service bills by, when the stream knows it (:class:`StreamingSTTFromBatch`
            reports each request's audio: the speech, its padding and the trailing silence
            the VAD waited for); ``None`` when not reported.
    """

    text: str
    final: bool = True
    language: str | None = None
    confidence: float | None = None
    start_time: float = 0.0
    end_time: float = 0.0
    audio_duration: float | None = None


@runtime_checkable
class BatchSTT(Protocol):
    """A recogniser of whole utterances."""

    @property
    def name(self) -> str:
        """The provider's name, for metrics, logs and error messages."""
        ...

    async def recognize(
        self, samples: PCMSamples, sample_rate: int, *, language: str | None = None
    ) -> SpeechResult:
        """Recognise one utterance.

        Args:
            samples: 16-bit mono PCM, one dimension.
            sample_rate: The samples' rate in Hz.
            language: A BCP-47 language hint; ``None`` lets the provider detect or use its
                configured language.

        Returns:
            A final result; times are relative to the first sample.

        Raises:
            flowkit.providers.errors.ProviderError: The provider failed.
        """
        ...


@runtime_checkable
class STTStream(Protocol):
    """The recognition state of one audio stream: push audio in, iterate results out.

    Iteration ends after :meth:`end_input` once every result has been given, or at once
    after :meth:`aclose`. A provider failure is raised from the iteration.
    """

    def push(self, samples: PCMSamples) -> None:
        """Feed 16-bit mono PCM at the stream's sample rate (any length)."""
        ...

    def end_input(self) -> None:
        """No more audio: recognise what is buffered, then end the iteration."""
        ...

    async def aclose(self) -> None:
        """Stop now: drop buffered audio, cancel requests in flight, end the iteration."""
        ...

    def __aiter__(self) -> STTStream:
        """The stream is its own iterator."""
        ...

    async def __anext__(self) -> SpeechResult:
        """The next interim or final result."""
        ...


@runtime_checkable
class StreamingSTT(Protocol):
    """A factory of :class:`STTStream` recognisers, shared by every session that uses it."""

    @property
    def name(self) -> str:
        """The provider's name, for metrics, logs and error messages."""
        ...

    def stream(self, sample_rate: int, *, language: str | None = None) -> STTStream:
        """Open a stream for audio at ``sample_rate`` Hz (call from a running event loop)."""
        ...



class STTMeter:
    """Measures one recognition: latency from the end of the audio to the final result.

    Example:
        >>> meter = STTMeter("whisper")  # doctest: +SKIP
        >>> meter.audio_ended(audio_duration=1.2)  # doctest: +SKIP
        >>> metrics = meter.result(await stt.recognize(...))  # doctest: +SKIP
    """

    def __init__(
        self, provider: str, node: str = "", clock: Callable[[], float] = loop_time
    ) -> None:
        """Start a meter.

        Args:
            provider: The provider's name, put in the metrics' labels.
            node: The measuring node's name.
            clock: Seconds from a monotonic clock; the running loop's clock by default.
        """
        self._provider, self._node, self._clock = provider, node, clock
        self._ended: float | None = None
        self._audio_duration = 0.0

    def audio_ended(self, audio_duration: float = 0.0) -> None:
        """Mark the end of the utterance's audio (the moment the recogniser had it all).

        Args:
            audio_duration: The utterance's seconds of audio as the caller measured them
                (the STT node: the speech its VAD measured); a final result that reports
                its own ``audio_duration`` (what the recogniser was given) replaces it.
        """
        self._ended = self._clock()
        self._audio_duration = audio_duration

    def result(self, result: SpeechResult) -> Metrics | None:
        """Take a result; for a final one after :meth:`audio_ended`, return its metrics.

        The values are ``latency`` (seconds from the end of audio to this result) and
        ``audio_duration`` (the result's own when it reports one: what the recogniser was
        given); the labels name the ``provider``.
        """
        if not result.final or self._ended is None:
            return None
        latency = self._clock() - self._ended
        self._ended = None
        audio = self._audio_duration if result.audio_duration is None else result.audio_duration
        return Metrics(
            kind="stt",
            node=self._node,
            values={"latency": latency, "audio_duration": audio},
            labels={"provider": self._provider},
        )


@dataclass(frozen=True, slots=True)
class _Segment:
    samples: PCMSamples
    start: float
    end: float


class StreamingSTTFromBatch:
    """A :class:`StreamingSTT` made of a :class:`BatchSTT` and a VAD that cuts utterances.

    Each end of speech the VAD decides becomes one batch request; results come out in
    utterance order, all final (a batch recogniser has no interim results). Results with
    blank text (noise the VAD took for speech) are dropped. Times are seconds from the
    start of the stream.

    The VAD must attach the utterance audio to its ends of speech, e.g.
    ``EnergyVAD(EnergyVADOptions(keep_speech_samples=True))``.
    """

    def __init__(self, stt: BatchSTT, vad: VADProvider) -> None:
        """Combine a recogniser and a VAD.

        Args:
            stt: The batch recogniser, called once per utterance.
            vad: The VAD provider; each stream gets its own VAD stream.
        """
        self._stt = stt
        self._vad = vad

    @property
    def name(self) -> str:
        """The batch recogniser's name."""
        return self._stt.name

    def stream(self, sample_rate: int, *, language: str | None = None) -> STTStream:
        """Open a stream for audio at ``sample_rate`` Hz (call from a running event loop).

        Raises:
            ValueError: The VAD needs another sample rate; resample before the STT node.
        """
        vad_rate = self._vad.sample_rate
        if vad_rate is not None and vad_rate != sample_rate:
            raise ValueError(
                f"{self.name}: the VAD needs {vad_rate} Hz audio but the stream is "
                f"{sample_rate} Hz; resample to {vad_rate} Hz before the STT node"
            )
        return _SegmentingSTTStream(self._stt, self._vad, sample_rate, language)

    def __repr__(self) -> str:
        return f"StreamingSTTFromBatch({self._stt!r}, {self._vad!r})"


class _SegmentingSTTStream(WorkerStream[SpeechResult]):
    def __init__(
        self, stt: BatchSTT, vad: VADProvider, sample_rate: int, language: str | None
    ) -> None:
        self._stt = stt
        self._vad = vad.stream()
        self._rate = sample_rate
        self._language = language
        self._segments: asyncio.Queue[_Segment | None] = asyncio.Queue()
        super().__init__()

    def push(self, samples: PCMSamples) -> None:
        if self._input_ended:
            raise RuntimeError(f"{self._stt.name}: push() after end_input() or aclose()")
        self._take(self._vad.push(check_pcm(samples, self._rate), self._rate))

    def end_input(self) -> None:
        if self._input_ended:
            return
        self._take(self._vad.flush())
        self._input_ended = True
        self._segments.put_nowait(None)

    def _take(self, decisions: list[VADDecision]) -> None:
        for decision in decisions:
            if decision.kind != VADEventKind.END_OF_SPEECH:
                continue
            audio = decision.speech_samples
            if audio is None:
                raise ValueError(
                    f"{self._stt.name}: the VAD gave no utterance audio; make it keep "
                    "speech samples, e.g. EnergyVAD(EnergyVADOptions(keep_speech_samples=True))"
                )
            start = decision.timestamp - audio.size / self._rate
            end = decision.timestamp - decision.silence_duration
            self._segments.put_nowait(_Segment(audio, start, end))

    async def _work(self) -> None:
        while (segment := await self._segments.get()) is not None:
            result = await self._stt.recognize(
                np.ascontiguousarray(segment.samples), self._rate, language=self._language
            )
            if not result.text.strip():
                continue
            self._emit(
                replace(
                    result,
                    final=True,
                    start_time=segment.start + result.start_time,
                    # No word ends in the trailing silence the VAD waited for.
                    end_time=min(segment.start + result.end_time, segment.end)
                    if result.end_time > 0
                    else segment.end,
                    # What the request carried: what a service bills by.
                    audio_duration=segment.samples.size / self._rate,
                )
            )
