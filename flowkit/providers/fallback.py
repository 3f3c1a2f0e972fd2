"""Fallback providers: try an ordered list of STT, LLM or TTS providers until one answers.

:class:`FallbackSTT`, :class:`FallbackLLM` and :class:`FallbackTTS` are providers
themselves (a :class:`~flowkit.providers.stt.BatchSTT`, an
:class:`~flowkit.providers.llm.LLMProvider`, a :class:`~flowkit.providers.tts.BatchTTS`),
so a node never knows it talks to several. All three share one mechanism:

* Each request tries the providers in order. An attempt that raises a retryable
  :class:`~flowkit.providers.errors.ProviderError`, or takes longer than ``timeout``, is
  retried on the same provider up to ``max_retry`` times, ``retry_interval`` seconds apart,
  then the next provider is tried. A fatal (not retryable) error is raised at once: another
  provider would get the same bad request or the same bad configuration. Any other
  exception is a bug, not an outage, and is raised at once too.
* A provider that used up its attempts is marked unavailable and skipped by later
  requests. Once ``recovery_interval`` has passed, the next request tries it again first
  (once, without retries, so a provider still down costs one attempt, not several); when it
  answers it is available again and serves requests as before. The check happens on a later
  request rather than in the background, because a background probe would have to send
  made-up requests that cost money and speak for nobody.
* When every provider is unavailable and none is due for a check, each is tried once
  anyway: a request that might succeed beats one sure to fail.

For streamed answers (LLM text, TTS audio), a provider may be abandoned only until it
produced its first output. After that a failure is raised, not hidden behind a restart on
another provider: the first part of the answer has already been spoken or shown, and a
second provider would answer again from the start, so the user would hear the beginning
twice, or a different answer glued onto the first. The caller (the node) decides what to
do, e.g. keep what was played and end the turn. ``timeout`` bounds the wait for the first
output and for each next one.

A streaming STT or TTS can have fallback by wrapping the batch providers:
``StreamingTTSFromBatch(FallbackTTS([...]))`` falls back sentence by sentence.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Generic, Protocol, TypeVar

from livekit import rtc

from flowkit.providers.chat import ChatMessage, ToolSpec
from flowkit.providers.errors import ProviderError, ProviderTimeout, ProviderUnavailable
from flowkit.providers.llm import LLMChunk, LLMProvider, ToolChoice
from flowkit.providers.stt import BatchSTT, SpeechResult
from flowkit.providers.tts import BatchTTS
from flowkit.vad.contract import PCMSamples

__all__ = ["AvailabilityChange", "FallbackLLM", "FallbackSTT", "FallbackTTS"]

logger = logging.getLogger("flowkit.providers")


class _Named(Protocol):
    @property
    def name(self) -> str: ...


P = TypeVar("P", bound=_Named)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class AvailabilityChange:
    """A provider of a fallback list became unavailable, or available again.

    Attributes:
        provider: The provider's name.
        available: Its new state.
        reason: The error that made it unavailable, or what showed it recovered.
        at: The event loop's time of the change, in seconds.
    """

    provider: str
    available: bool
    reason: str
    at: float


class _Fallback(Generic[P]):
    """The mechanism shared by the three fallback providers (see the module's docstring)."""

    def __init__(
        self,
        kind: str,
        providers: Sequence[P],
        *,
        timeout: float,
        max_retry: int,
        retry_interval: float,
        recovery_interval: float,
        on_change: Callable[[AvailabilityChange], None] | None,
    ) -> None:
        if not providers:
            raise ValueError(f"Fallback{kind} needs at least one provider, got none")
        if timeout <= 0 or max_retry < 0 or retry_interval < 0 or recovery_interval < 0:
            raise ValueError(
                f"Fallback{kind}: timeout must be > 0 and max_retry, retry_interval and "
                f"recovery_interval >= 0; got timeout={timeout}, max_retry={max_retry}, "
                f"retry_interval={retry_interval}, recovery_interval={recovery_interval}"
            )
        self.providers: tuple[P, ...] = tuple(providers)
        names = [p.name for p in providers]
        # Two providers may share a name (one service, two regions): number them apart.
        self.names = tuple(f"{n}#{i}" if names.count(n) > 1 else n for i, n in enumerate(names))
        self.name = f"fallback({', '.join(self.names)})"
        self._timeout = timeout
        self._max_retry = max_retry
        self._retry_interval = retry_interval
        self._recovery_interval = recovery_interval
        self._on_change = on_change
        self._down_since: list[float | None] = [None] * len(providers)
        self.last_provider: str | None = None
        self.changes: deque[AvailabilityChange] = deque(maxlen=100)

    def _plan(self) -> list[tuple[int, int]]:
        """(provider index, attempts) to make for a request, in order."""
        now = asyncio.get_running_loop().time()
        plan: list[tuple[int, int]] = []
        for index, since in enumerate(self._down_since):
            if since is None:
                plan.append((index, 1 + self._max_retry))
            elif now - since >= self._recovery_interval:
                plan.append((index, 1))
        return plan or [(index, 1) for index in range(len(self.providers))]

    def _change(self, index: int, available: bool, reason: str) -> None:
        change = AvailabilityChange(
            self.names[index], available, reason, asyncio.get_running_loop().time()
        )
        self.changes.append(change)
        if available:
            logger.info("%s: %s is available again (%s)", self.name, change.provider, reason)
        else:
            logger.warning("%s: %s is unavailable: %s", self.name, change.provider, reason)
        if self._on_change is not None:
            self._on_change(change)

    def succeeded(self, index: int) -> None:
        self.last_provider = self.names[index]
        if self._down_since[index] is not None:
            self._down_since[index] = None
            self._change(index, True, "answered a request")

    def failed(self, index: int, error: ProviderError) -> None:
        was_up = self._down_since[index] is None
        # A failed recovery check restarts the wait before the next one.
        self._down_since[index] = asyncio.get_running_loop().time()
        if was_up:
            self._change(index, False, str(error))

    def _timed_out(self, index: int) -> ProviderTimeout:
        return ProviderTimeout(
            f"no answer within {self._timeout} s; raise the fallback's timeout if the "
            "provider is just slow",
            provider=self.names[index],
        )

    def _exhausted(self, errors: list[ProviderError]) -> ProviderUnavailable:
        detail = "; ".join(str(e) for e in errors)
        return ProviderUnavailable(
            f"every provider failed ({detail}); check their status and network access, "
            "or add another provider",
            provider=self.name,
        )

    async def call(self, request: Callable[[P], Awaitable[T]]) -> T:
        """Run a one-shot request with fallback."""
        errors: list[ProviderError] = []
        for index, attempts in self._plan():
            error: ProviderError | None = None
            for attempt in range(attempts):
                if attempt:
                    await asyncio.sleep(self._retry_interval)
                try:
                    async with asyncio.timeout(self._timeout):
                        result = await request(self.providers[index])
                except TimeoutError:
                    error = self._timed_out(index)
                except ProviderError as failure:
                    if not failure.retryable:
                        raise
                    error = failure
                else:
                    self.succeeded(index)
                    return result
                errors.append(error)
            assert error is not None  # attempts >= 1
            self.failed(index, error)
        raise self._exhausted(errors) from errors[-1]

    async def stream(self, request: Callable[[P], AsyncIterator[T]]) -> AsyncIterator[T]:
        """Run a streamed request with fallback until its first output, then without."""
        errors: list[ProviderError] = []
        for index, attempts in self._plan():
            error: ProviderError | None = None
            for attempt in range(attempts):
                if attempt:
                    await asyncio.sleep(self._retry_interval)
                items = request(self.providers[index])
                try:
                    async with asyncio.timeout(self._timeout):
                        first = await anext(items)
                except StopAsyncIteration:
                    self.succeeded(index)  # an empty answer is still an answer
                    return
                except TimeoutError:
                    await _close(items)
                    error = self._timed_out(index)
                except ProviderError as failure:
                    await _close(items)
                    if not failure.retryable:
                        raise
                    error = failure
                except BaseException:
                    await _close(items)
                    raise
                else:
                    self.succeeded(index)
                    try:
                        yield first
                        while True:
                            try:
                                async with asyncio.timeout(self._timeout):
                                    item = await anext(items)
                            except StopAsyncIteration:
                                return
                            except TimeoutError as timeout:
                                raise self._timed_out(index) from timeout
                            yield item
                    except ProviderError as failure:
                        # Committed to this provider: raise, but spare the next request.
                        if failure.retryable:
                            self.failed(index, failure)
                        raise
                    finally:
                        await _close(items)
                errors.append(error)
            assert error is not None  # attempts >= 1
            self.failed(index, error)
        raise self._exhausted(errors) from errors[-1]


async def _close(items: AsyncIterator[object]) -> None:
    aclose = getattr(items, "aclose", None)
    if aclose is not None:
        await aclose()


class _FallbackProvider(Generic[P]):
    """What the three fallback providers share; each subclass only names its ``kind``."""

    kind: ClassVar[str]

    def __init__(
        self,
        providers: Sequence[P],
        *,
        timeout: float = 10.0,
        max_retry: int = 1,
        retry_interval: float = 0.5,
        recovery_interval: float = 30.0,
        on_change: Callable[[AvailabilityChange], None] | None = None,
    ) -> None:
        """Combine providers.

        Args:
            providers: The providers, the preferred one first.
            timeout: Seconds one attempt may take (for streams: to the first output, and
                then between outputs).
            max_retry: Retries on the same provider after its first failed attempt.
            retry_interval: Seconds between attempts on the same provider.
            recovery_interval: Seconds before an unavailable provider is tried again.
            on_change: Called on every :class:`AvailabilityChange`.

        Raises:
            ValueError: No providers, a negative or zero setting, or (TTS) providers whose
                audio formats differ.
        """
        self._check(providers)
        self._fallback = _Fallback(
            self.kind,
            providers,
            timeout=timeout,
            max_retry=max_retry,
            retry_interval=retry_interval,
            recovery_interval=recovery_interval,
            on_change=on_change,
        )

    def _check(self, providers: Sequence[P]) -> None:
        """Refuse providers that cannot stand in for each other (none by default)."""

    @property
    def name(self) -> str:
        """``fallback(<name>, <name>, ...)``."""
        return self._fallback.name

    @property
    def providers(self) -> tuple[P, ...]:
        """The providers, in the order they are tried."""
        return self._fallback.providers

    @property
    def last_provider(self) -> str | None:
        """The name of the provider that served the last successful request."""
        return self._fallback.last_provider

    @property
    def availability(self) -> dict[str, bool]:
        """Each provider's name and whether it is currently considered available."""
        down = self._fallback._down_since
        return {name: down[i] is None for i, name in enumerate(self._fallback.names)}

    @property
    def changes(self) -> tuple[AvailabilityChange, ...]:
        """The last 100 availability changes, oldest first."""
        return tuple(self._fallback.changes)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self._fallback.providers)!r})"


class FallbackSTT(_FallbackProvider[BatchSTT]):
    """A :class:`~flowkit.providers.stt.BatchSTT` that falls back along a list of them."""

    kind = "STT"

    async def recognize(
        self, samples: PCMSamples, sample_rate: int, *, language: str | None = None
    ) -> SpeechResult:
        """Recognise one utterance with the first provider that can (see the module)."""
        return await self._fallback.call(
            lambda stt: stt.recognize(samples, sample_rate, language=language)
        )


class FallbackLLM(_FallbackProvider[LLMProvider]):
    """An :class:`~flowkit.providers.llm.LLMProvider` that falls back along a list of them."""

    kind = "LLM"

    def chat(
        self,
        history: Sequence[ChatMessage],
        tools: Sequence[ToolSpec] = (),
        *,
        tool_choice: ToolChoice = "auto",
    ) -> AsyncIterator[LLMChunk]:
        """Stream an answer from the first provider that starts one (see the module)."""
        return self._fallback.stream(lambda llm: llm.chat(history, tools, tool_choice=tool_choice))


class FallbackTTS(_FallbackProvider[BatchTTS]):
    """A :class:`~flowkit.providers.tts.BatchTTS` that falls back along a list of them."""

    kind = "TTS"

    def _check(self, providers: Sequence[BatchTTS]) -> None:
        formats = {(p.sample_rate, p.num_channels) for p in providers}
        if len(formats) > 1:
            listed = ", ".join(f"{p.name}: {p.sample_rate} Hz x{p.num_channels}" for p in providers)
            raise ValueError(
                f"FallbackTTS providers must make the same audio format, got {listed}; "
                "configure them to one sample rate and channel count"
            )

    @property
    def sample_rate(self) -> int:
        """The providers' sample rate."""
        return self.providers[0].sample_rate

    @property
    def num_channels(self) -> int:
        """The providers' channels."""
        return self.providers[0].num_channels

    def synthesize(self, text: str) -> AsyncIterator[rtc.AudioFrame]:
        """Stream audio from the first provider that starts producing it (see the module)."""
        return self._fallback.stream(lambda tts: tts.synthesize(text))
