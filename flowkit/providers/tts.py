"""The text-to-speech (TTS) provider contracts, a batch-to-streaming adapter and a meter.

A :class:`BatchTTS` speaks one finished text, streaming the audio out as it is produced
(Piper, most HTTP APIs). A :class:`StreamingTTS` takes text as the LLM writes it (socket
APIs that accept partial text). :class:`StreamingTTSFromBatch` makes the first from the
second by cutting the text into sentences, so speech starts after the first sentence
rather than after the whole reply.

Audio is :class:`livekit.rtc.AudioFrame` of 16-bit PCM at the provider's ``sample_rate``
and ``num_channels``. A provider that knows when each word is spoken may attach the timings
to its frames (:mod:`flowkit.providers.tts_words`); the sink then cuts an interrupted reply's
text, and paces the agent's transcript, by them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Protocol, runtime_checkable

from livekit import rtc

from flowkit.audio.frames import duration_s
from flowkit.messages import Metrics, TimedWord
from flowkit.providers.clock import loop_time
from flowkit.providers.sentences import SentenceSplitter
from flowkit.providers.tts_words import attach_timed_words, timed_words
from flowkit.providers.worker_stream import WorkerStream

__all__ = [
    "BatchTTS",
    "StreamingTTS",
    "StreamingTTSFromBatch",
    "TTSMeter",
    "TTSStream",
]


@runtime_checkable
class BatchTTS(Protocol):
    """A synthesiser of whole texts."""

    @property
    def name(self) -> str:
        """The provider's name (usually with the voice), for metrics, logs and errors."""
        ...

    @property
    def sample_rate(self) -> int:
        """The sample rate of the audio it makes, in Hz."""
        ...

    @property
    def num_channels(self) -> int:
        """The channels of the audio it makes."""
        ...

    def synthesize(self, text: str) -> AsyncIterator[rtc.AudioFrame]:
        """Speak ``text``, yielding audio as soon as it is produced.

        Closing the iterator or cancelling its reader cancels the request.

        Raises:
            flowkit.providers.errors.ProviderError: From the iteration, when it fails.
        """
        ...


@runtime_checkable
class TTSStream(Protocol):
    """One synthesis session: push text in as it is written, iterate audio out.

    Iteration ends after :meth:`end_input` once all audio was given, or at once after
    :meth:`aclose`. A provider failure is raised from the iteration.
    """

    def push_text(self, text: str) -> None:
        """Add text (any piece: a token, a word, a sentence)."""
        ...

    def flush(self) -> None:
        """End of a segment: speak everything pushed so far without waiting for more."""
        ...

    def end_input(self) -> None:
        """No more text: flush, and end the iteration after the last audio."""
        ...

    async def aclose(self) -> None:
        """Stop now: drop pending text, cancel requests in flight, end the iteration."""
        ...

    def __aiter__(self) -> TTSStream:
        """The stream is its own iterator."""
        ...

    async def __anext__(self) -> rtc.AudioFrame:
        """The next frame of audio."""
        ...


@runtime_checkable
class StreamingTTS(Protocol):
    """A factory of :class:`TTSStream` sessions, shared by every session that uses it."""

    @property
    def name(self) -> str:
        """The provider's name, for metrics, logs and error messages."""
        ...

    @property
    def sample_rate(self) -> int:
        """The sample rate of the audio it makes, in Hz."""
        ...

    @property
    def num_channels(self) -> int:
        """The channels of the audio it makes."""
        ...

    def stream(self) -> TTSStream:
        """Open a synthesis stream (call from a running event loop)."""
        ...



class TTSMeter:
    """Measures one synthesis: time to first audio, duration and audio produced.

    Create it when the text is sent, pass it every frame, call :meth:`finish` at the end.
    """

    def __init__(
        self, provider: str, node: str = "", clock: Callable[[], float] = loop_time
    ) -> None:
        """Start measuring now.

        Args:
            provider: The provider's name, put in the metrics' labels.
            node: The measuring node's name.
            clock: Seconds from a monotonic clock; the running loop's clock by default.
        """
        self._provider, self._node, self._clock = provider, node, clock
        self._start = clock()
        self._first: float | None = None
        self._audio = 0.0

    def frame(self, frame: rtc.AudioFrame) -> None:
        """Take one frame of the audio."""
        if self._first is None:
            self._first = self._clock()
        self._audio += duration_s(frame)

    def finish(self, characters: int = 0, *, cancelled: bool = False) -> Metrics:
        """The synthesis' metrics.

        Values: ``ttfa`` (seconds to the first audio; the whole duration when there was
        none), ``duration``, ``audio_duration`` and ``characters``. Labels: ``provider``
        and ``cancelled``.
        """
        end = self._clock()
        first = end if self._first is None else self._first
        return Metrics(
            kind="tts",
            node=self._node,
            values={
                "ttfa": first - self._start,
                "duration": end - self._start,
                "audio_duration": self._audio,
                "characters": float(characters),
            },
            labels={"provider": self._provider, "cancelled": cancelled},
        )


class StreamingTTSFromBatch:
    """A :class:`StreamingTTS` made of a :class:`BatchTTS` and a sentence splitter.

    Each sentence is sent to the batch synthesiser as soon as it is complete; sentences are
    synthesised one after the other, so the audio comes out in text order.
    """

    def __init__(self, tts: BatchTTS, *, min_sentence_length: int = 20) -> None:
        """Wrap a batch synthesiser.

        Args:
            tts: The synthesiser, called once per sentence.
            min_sentence_length: Sentences shorter than this are joined with the next one.
        """
        self._tts = tts
        self._min_length = min_sentence_length

    @property
    def name(self) -> str:
        """The batch synthesiser's name."""
        return self._tts.name

    @property
    def sample_rate(self) -> int:
        """The batch synthesiser's sample rate."""
        return self._tts.sample_rate

    @property
    def num_channels(self) -> int:
        """The batch synthesiser's channels."""
        return self._tts.num_channels

    def stream(self) -> TTSStream:
        """Open a synthesis stream (call from a running event loop)."""
        return _SentenceTTSStream(self._tts, SentenceSplitter(self._min_length))

    def __repr__(self) -> str:
        return f"StreamingTTSFromBatch({self._tts!r})"


class _SentenceTTSStream(WorkerStream[rtc.AudioFrame]):
    def __init__(self, tts: BatchTTS, splitter: SentenceSplitter) -> None:
        self._tts = tts
        self._splitter = splitter
        self._sentences: asyncio.Queue[str | None] = asyncio.Queue()
        super().__init__()

    def push_text(self, text: str) -> None:
        self._check_open("push_text")
        for sentence in self._splitter.push(text):
            self._sentences.put_nowait(sentence)

    def flush(self) -> None:
        self._check_open("flush")
        for sentence in self._splitter.flush():
            self._sentences.put_nowait(sentence)

    def end_input(self) -> None:
        if self._input_ended:
            return
        self.flush()
        self._input_ended = True
        self._sentences.put_nowait(None)

    def _check_open(self, method: str) -> None:
        if self._input_ended:
            raise RuntimeError(f"{self._tts.name}: {method}() after end_input() or aclose()")

    async def _work(self) -> None:
        offset = 0.0  # seconds of the stream's audio before this sentence's
        while (sentence := await self._sentences.get()) is not None:
            audio = self._tts.synthesize(sentence)
            try:
                async for frame in audio:
                    words = timed_words(frame)
                    if words and offset:
                        # Each request times its words from its own start; the stream's
                        # words count from the stream's.
                        attach_timed_words(frame, (
                            TimedWord(w.text, w.start + offset, w.end + offset) for w in words
                        ))
                    offset += duration_s(frame)
                    self._emit(frame)
            finally:
                # Close at once on cancellation, so the provider's request ends too.
                aclose = getattr(audio, "aclose", None)
                if aclose is not None:
                    with contextlib.suppress(Exception):
                        await aclose()
