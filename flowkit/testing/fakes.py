"""Scripted, deterministic STT, LLM and TTS providers for tests.

Each fake keeps a provider contract of :mod:`flowkit.providers`, answers from a script
given up front, waits with :func:`asyncio.sleep` (so a test under virtual time, with
``@pytest.mark.looptime``, runs instantly yet sees realistic timings), and records every
request it got. All three share the knobs that make fallback testable:

* ``failures={n: error}`` raises ``error`` on call number ``n`` (counted from 0, every
  call counts, failed ones too);
* ``hang={n, ...}`` makes those calls never answer (until cancelled), to test timeouts;
* setting ``fake.outage = ProviderUnavailable(...)`` makes every call fail until it is set
  back to ``None``: a service that goes down, then recovers.

Example:
    >>> llm = FakeLLM(["Hello there!"], ttft=0.2, token_gap=0.05)
    >>> tts = FakeTTS(sample_rate=16_000, seconds_per_char=0.05)
    >>> stt = FakeSTT(["what's the weather"], delay=0.3)
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from livekit import rtc

from flowkit.audio.frames import frame_from_samples
from flowkit.messages import TimedWord, VADEventKind
from flowkit.providers.chat import ChatMessage, ToolSpec
from flowkit.providers.errors import ProviderError
from flowkit.providers.llm import LLMChunk, TextDelta, ToolCallChunk, ToolChoice, Usage
from flowkit.providers.stt import SpeechResult, STTStream
from flowkit.providers.tts import StreamingTTSFromBatch, TTSStream
from flowkit.providers.tts_words import attach_timed_words
from flowkit.vad.contract import PCMSamples, VADDecision, VADProvider, check_pcm
from flowkit.vad.energy import EnergyVAD

__all__ = [
    "FakeLLM",
    "FakeLLMRequest",
    "FakeReply",
    "FakeSTT",
    "FakeSTTRequest",
    "FakeTTS",
    "FakeTTSRequest",
    "word_tokens",
]

_TOKEN = re.compile(r"\s*\S+|\s+$")


def word_tokens(text: str) -> list[str]:
    """Split text into word tokens, each with the whitespace before it; they join to ``text``."""
    return _TOKEN.findall(text)


class _Scripted:
    """Call counting and the scripted failures shared by the fakes."""

    def __init__(
        self,
        name: str,
        failures: Mapping[int, BaseException] | None,
        hang: Collection[int],
    ) -> None:
        self._name = name
        self._failures = dict(failures or {})
        self._hang = frozenset(hang)
        self.calls = 0
        """How many calls (requests) the fake got, failed ones included."""
        self.outage: ProviderError | None = None
        """While set, every call raises it: set it to take the fake down, unset to recover."""

    @property
    def name(self) -> str:
        """The fake's name, as given."""
        return self._name

    async def _begin(self) -> int:
        index = self.calls
        self.calls += 1
        if self.outage is not None:
            raise self.outage
        if index in self._failures:
            raise self._failures[index]
        if index in self._hang:
            await asyncio.Event().wait()  # until cancelled (a timeout, a closed stream)
        return index

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self._name!r}, calls={self.calls})"


# --------------------------------------------------------------------------------------- STT


@dataclass(slots=True)
class FakeSTTRequest:
    """One request :class:`FakeSTT` got.

    Attributes:
        samples: How many samples the utterance had.
        sample_rate: Their rate in Hz.
        language: The language hint.
    """

    samples: int
    sample_rate: int
    language: str | None


class FakeSTT(_Scripted):
    """A scripted recogniser, batch (:meth:`recognize`) and streaming (:meth:`stream`).

    Each successful recognition returns the next scripted transcript, after ``delay``
    seconds, whatever the audio. A stream finds utterances with a VAD (an
    :class:`~flowkit.vad.energy.EnergyVAD` unless given one): at each start of speech it
    gives an interim result (the first word of the coming transcript), at each end of speech
    the final one, ``delay`` seconds later.
    """

    def __init__(
        self,
        transcripts: Sequence[str | SpeechResult] = (),
        *,
        delay: float = 0.1,
        language: str | None = "en",
        name: str = "fake-stt",
        vad: VADProvider | None = None,
        failures: Mapping[int, BaseException] | None = None,
        hang: Collection[int] = (),
    ) -> None:
        """Script a recogniser.

        Args:
            transcripts: What to recognise, in order: texts or whole results.
            delay: Seconds each recognition takes.
            language: The language reported with text transcripts.
            name: The provider name.
            vad: The VAD that cuts utterances in :meth:`stream`.
            failures: Call number (from 0) -> error to raise on that call.
            hang: Call numbers that never answer.
        """
        super().__init__(name, failures, hang)
        self._transcripts = list(transcripts)
        self._next = 0
        self._delay = delay
        self._language = language
        self._vad = vad or EnergyVAD()
        self.requests: list[FakeSTTRequest] = []
        """Every batch request, in order."""

    async def recognize(
        self, samples: PCMSamples, sample_rate: int, *, language: str | None = None
    ) -> SpeechResult:
        """Return the next scripted transcript after ``delay`` seconds."""
        check_pcm(samples, sample_rate)
        self.requests.append(FakeSTTRequest(samples.size, sample_rate, language))
        await self._begin()
        await asyncio.sleep(self._delay)
        return self._take(end_time=samples.size / sample_rate)

    def stream(self, sample_rate: int, *, language: str | None = None) -> STTStream:
        """Open a scripted recognition stream (see the class)."""
        return _FakeSTTStream(self, sample_rate)

    def _peek_text(self) -> str:
        if self._next >= len(self._transcripts):
            return ""
        item = self._transcripts[self._next]
        return item if isinstance(item, str) else item.text

    def _take(self, start_time: float = 0.0, end_time: float = 0.0) -> SpeechResult:
        if self._next >= len(self._transcripts):
            raise RuntimeError(
                f"{self.name}: no scripted transcript left for recognition "
                f"#{self._next + 1}; give FakeSTT more transcripts"
            )
        item = self._transcripts[self._next]
        self._next += 1
        if isinstance(item, SpeechResult):
            return item
        return SpeechResult(
            text=item,
            language=self._language,
            confidence=1.0,
            start_time=start_time,
            end_time=end_time,
        )


class _FakeSTTStream:
    def __init__(self, stt: FakeSTT, sample_rate: int) -> None:
        self._stt = stt
        self._rate = sample_rate
        self._vad = stt._vad.stream()
        self._pushed = 0
        self._speech_start = 0.0
        self._events: asyncio.Queue[tuple[str, float] | None] = asyncio.Queue()
        self._results: asyncio.Queue[SpeechResult | BaseException | None] = asyncio.Queue()
        self._ended = False
        self._done = False
        self._task = asyncio.get_running_loop().create_task(self._run())

    def push(self, samples: PCMSamples) -> None:
        if self._ended:
            raise RuntimeError(f"{self._stt.name}: push() after end_input() or aclose()")
        self._decide(self._vad.push(check_pcm(samples, self._rate), self._rate))

    def end_input(self) -> None:
        if not self._ended:
            self._decide(self._vad.flush())
            self._ended = True
            self._events.put_nowait(None)

    def _decide(self, decisions: Sequence[VADDecision]) -> None:
        for decision in decisions:
            what = "start" if decision.kind == VADEventKind.START_OF_SPEECH else "end"
            self._events.put_nowait((what, decision.timestamp))

    async def _run(self) -> None:
        try:
            while (event := await self._events.get()) is not None:
                what, timestamp = event
                if what == "start":
                    self._speech_start = timestamp
                    first = self._stt._peek_text().split()[:1]
                    if first:
                        self._results.put_nowait(
                            SpeechResult(text=first[0], final=False, start_time=timestamp)
                        )
                    continue
                await self._stt._begin()
                await asyncio.sleep(self._stt._delay)
                self._results.put_nowait(self._stt._take(self._speech_start, timestamp))
        except Exception as error:
            self._results.put_nowait(error)
            return
        self._results.put_nowait(None)

    async def aclose(self) -> None:
        self._ended = self._done = True
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def __aiter__(self) -> _FakeSTTStream:
        return self

    async def __anext__(self) -> SpeechResult:
        if self._done:
            raise StopAsyncIteration
        item = await self._results.get()
        if isinstance(item, SpeechResult):
            return item
        self._done = True
        if isinstance(item, BaseException):
            raise item
        raise StopAsyncIteration


# --------------------------------------------------------------------------------------- LLM


@dataclass(frozen=True, slots=True, kw_only=True)
class FakeReply:
    """One scripted answer of :class:`FakeLLM`.

    Attributes:
        text: The reply text, streamed as word tokens (see :func:`word_tokens`).
        tool_calls: Tool calls, given after the text.
        ttft: Seconds to the first chunk; ``None`` for the fake's default.
        token_gap: Seconds between tokens; ``None`` for the fake's default.
        error: Raised after ``error_after`` text tokens: a failure mid-stream.
        error_after: How many tokens are given before ``error``.
        usage: End with a :class:`~flowkit.providers.llm.Usage` chunk.
    """

    text: str = ""
    tool_calls: tuple[ToolCallChunk, ...] = ()
    ttft: float | None = None
    token_gap: float | None = None
    error: BaseException | None = None
    error_after: int = 0
    usage: bool = True


@dataclass(slots=True)
class FakeLLMRequest:
    """One request :class:`FakeLLM` got, and what became of it.

    Attributes:
        history: The messages it was sent.
        tools: The tools it was offered.
        tool_choice: The tool choice asked for.
        chunks: The chunks it gave so far.
        completed: ``True`` once the whole answer was given.
        cancelled: ``True`` when the reader closed or cancelled the stream before its end.
        error: The error it raised, if any.
    """

    history: tuple[ChatMessage, ...]
    tools: tuple[ToolSpec, ...]
    tool_choice: str
    chunks: list[LLMChunk] = field(default_factory=list)
    completed: bool = False
    cancelled: bool = False
    error: BaseException | None = None

    @property
    def text(self) -> str:
        """The text given so far."""
        return "".join(c.text for c in self.chunks if isinstance(c, TextDelta))


ReplyScript = Sequence[str | FakeReply] | Callable[[Sequence[ChatMessage]], str | FakeReply]
"""Replies in order, or a function of the history that returns the reply."""


class FakeLLM(_Scripted):
    """A scripted chat model: each request streams the next scripted reply, word by word."""

    def __init__(
        self,
        replies: ReplyScript = (),
        *,
        ttft: float = 0.2,
        token_gap: float = 0.02,
        name: str = "fake-llm",
        failures: Mapping[int, BaseException] | None = None,
        hang: Collection[int] = (),
    ) -> None:
        """Script a model.

        Args:
            replies: The replies, in order (texts or :class:`FakeReply`), or a function of
                the history that makes each reply.
            ttft: Default seconds to the first chunk.
            token_gap: Default seconds between tokens.
            name: The provider name.
            failures: Call number (from 0) -> error to raise before answering that call.
            hang: Call numbers that never answer.
        """
        super().__init__(name, failures, hang)
        self._replies = replies
        self._next = 0
        self._ttft = ttft
        self._token_gap = token_gap
        self.requests: list[FakeLLMRequest] = []
        """Every request, in order (recorded when its stream is first read)."""

    def chat(
        self,
        history: Sequence[ChatMessage],
        tools: Sequence[ToolSpec] = (),
        *,
        tool_choice: ToolChoice = "auto",
    ) -> AsyncIterator[LLMChunk]:
        """Stream the next scripted reply (see the class)."""
        return self._answer(tuple(history), tuple(tools), tool_choice)

    def _reply(self, history: Sequence[ChatMessage]) -> FakeReply:
        if callable(self._replies):
            reply = self._replies(history)
        elif self._next < len(self._replies):
            reply = self._replies[self._next]
            self._next += 1
        else:
            raise RuntimeError(
                f"{self.name}: no scripted reply left for request #{len(self.requests)}; "
                "give FakeLLM more replies"
            )
        return FakeReply(text=reply) if isinstance(reply, str) else reply

    async def _answer(
        self, history: tuple[ChatMessage, ...], tools: tuple[ToolSpec, ...], tool_choice: str
    ) -> AsyncIterator[LLMChunk]:
        request = FakeLLMRequest(history, tools, tool_choice)
        self.requests.append(request)
        try:
            await self._begin()
            reply = self._reply(history)
            await asyncio.sleep(self._ttft if reply.ttft is None else reply.ttft)
            gap = self._token_gap if reply.token_gap is None else reply.token_gap
            tokens = word_tokens(reply.text)
            for index, token in enumerate(tokens):
                if reply.error is not None and index == reply.error_after:
                    raise reply.error
                if index:
                    await asyncio.sleep(gap)
                request.chunks.append(TextDelta(token))
                yield request.chunks[-1]
            if reply.error is not None:
                raise reply.error
            for call in reply.tool_calls:
                request.chunks.append(call)
                yield call
            if reply.usage:
                prompt = sum(len(m.content.split()) for m in history)
                yield Usage(prompt_tokens=prompt, completion_tokens=len(tokens))
            request.completed = True
        except (GeneratorExit, asyncio.CancelledError):
            request.cancelled = True
            raise
        except BaseException as error:
            request.error = error
            raise


# --------------------------------------------------------------------------------------- TTS


@dataclass(slots=True)
class FakeTTSRequest:
    """One request :class:`FakeTTS` got.

    Attributes:
        text: The text to speak.
        frames: How many frames it gave.
        completed: ``True`` once all its audio was given.
        cancelled: ``True`` when the reader closed or cancelled it before its end.
    """

    text: str
    frames: int = 0
    completed: bool = False
    cancelled: bool = False


def _equal_words(text: str, seconds: float) -> list[TimedWord]:
    """The words of ``text``, each timed to an equal share of ``seconds``."""
    words = text.split()
    share = seconds / len(words) if words else 0.0
    return [TimedWord(w, i * share, (i + 1) * share) for i, w in enumerate(words)]


class FakeTTS(_Scripted):
    """A synthesiser that speaks a sine tone whose length follows the text.

    It is a :class:`~flowkit.providers.tts.BatchTTS` and, through
    :class:`~flowkit.providers.tts.StreamingTTSFromBatch`, a
    :class:`~flowkit.providers.tts.StreamingTTS`.
    """

    def __init__(
        self,
        *,
        sample_rate: int = 24_000,
        num_channels: int = 1,
        frequency: float = 440.0,
        seconds_per_char: float = 0.05,
        duration: float | None = None,
        frame_ms: float = 20.0,
        ttfa: float = 0.1,
        frame_gap: float = 0.0,
        min_sentence_length: int = 20,
        name: str = "fake-tts",
        failures: Mapping[int, BaseException] | None = None,
        hang: Collection[int] = (),
        word_timings: bool = False,
    ) -> None:
        """Configure the tone.

        Args:
            sample_rate: The audio's rate in Hz.
            num_channels: The audio's channels (all the same tone).
            frequency: The tone's pitch in Hz.
            seconds_per_char: Seconds of audio per character of text.
            duration: Seconds of audio per request, whatever the text (overrides the above).
            frame_ms: Length of each frame in milliseconds (the last one may be shorter).
            ttfa: Seconds to the first frame.
            frame_gap: Seconds between frames.
            min_sentence_length: For :meth:`stream`: shorter sentences are joined.
            name: The provider name.
            failures: Call number (from 0) -> error to raise before answering that call.
            hang: Call numbers that never answer.
            word_timings: Time the words of each request, as a provider with word
                timestamps does (:mod:`flowkit.providers.tts_words`), all on its first
                frame: each word gets an equal share of the request's audio, whatever
                its length, so the timings differ from a share of characters.
        """
        super().__init__(name, failures, hang)
        self._word_timings = word_timings
        self._rate = sample_rate
        self._channels = num_channels
        self._frequency = frequency
        self._seconds_per_char = seconds_per_char
        self._duration = duration
        self._frame = max(1, round(sample_rate * frame_ms / 1000))
        self._ttfa = ttfa
        self._frame_gap = frame_gap
        self._min_sentence_length = min_sentence_length
        self.requests: list[FakeTTSRequest] = []
        """Every request, in order (recorded when its audio is first read)."""

    @property
    def sample_rate(self) -> int:
        """The audio's sample rate in Hz."""
        return self._rate

    @property
    def num_channels(self) -> int:
        """The audio's channels."""
        return self._channels

    @property
    def texts(self) -> list[str]:
        """The texts of every request, in order."""
        return [request.text for request in self.requests]

    def audio_duration(self, text: str) -> float:
        """Seconds of audio a request for ``text`` gives."""
        if self._duration is not None:
            return self._duration
        return len(text) * self._seconds_per_char

    def synthesize(self, text: str) -> AsyncIterator[rtc.AudioFrame]:
        """Speak ``text`` as a tone (see the class)."""
        return self._speak(text)

    def stream(self) -> TTSStream:
        """Open a streaming session that speaks each sentence as soon as it is complete."""
        adapter = StreamingTTSFromBatch(self, min_sentence_length=self._min_sentence_length)
        return adapter.stream()

    async def _speak(self, text: str) -> AsyncIterator[rtc.AudioFrame]:
        request = FakeTTSRequest(text)
        self.requests.append(request)
        try:
            await self._begin()
            await asyncio.sleep(self._ttfa)
            count = math.ceil(self.audio_duration(text) * self._rate)
            t = np.arange(count) / self._rate
            tone = (0.3 * 32767 * np.sin(2 * np.pi * self._frequency * t)).astype(np.int16)
            for start in range(0, count, self._frame):
                if start:
                    await asyncio.sleep(self._frame_gap)
                chunk = tone[start : start + self._frame]
                if self._channels > 1:
                    chunk = np.repeat(chunk[:, None], self._channels, axis=1)
                request.frames += 1
                frame = frame_from_samples(np.ascontiguousarray(chunk), self._rate)
                if self._word_timings and not start:
                    attach_timed_words(frame, _equal_words(text, count / self._rate))
                yield frame
            request.completed = True
        except (GeneratorExit, asyncio.CancelledError):
            request.cancelled = True
            raise
