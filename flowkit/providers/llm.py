"""The large language model (LLM) provider contract, and a meter of its speed.

A provider answers a chat history with a stream of :data:`LLMChunk` values: text deltas as
the model writes them, each tool call once it is complete, and the token usage. The stream
is an async iterator, usually an async generator; closing it (``aclose()``) or cancelling
the task that reads it must cancel the request, because the LLM node stops reading as soon
as a new user turn or a barge-in makes the reply stale.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from flowkit.messages import Metrics, ToolCall
from flowkit.providers.chat import ChatMessage, ToolSpec
from flowkit.providers.clock import loop_time

__all__ = [
    "LLMChunk",
    "LLMMeter",
    "LLMProvider",
    "TextDelta",
    "ToolCallChunk",
    "ToolChoice",
    "Usage",
]

ToolChoice = str
"""``"auto"`` (the model decides), ``"required"`` (it must call a tool), ``"none"`` (it must
not), or the name of the one tool it must call."""


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the reply's text.

    Attributes:
        text: The new text, to append to what came before.
    """

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallChunk:
    """A complete tool call (providers assemble streamed argument fragments first).

    Attributes:
        call_id: The provider's id for the call, echoed back with the result.
        name: The tool's name.
        arguments: The arguments as JSON object text.
    """

    call_id: str
    name: str
    arguments: str = "{}"

    def to_tool_call(self, turn_id: int = 0) -> ToolCall:
        """The :class:`~flowkit.messages.ToolCall` message for this call."""
        return ToolCall(
            turn_id=turn_id, call_id=self.call_id, name=self.name, arguments=self.arguments
        )


@dataclass(frozen=True, slots=True)
class Usage:
    """The tokens a request used, usually the stream's last chunk.

    Attributes:
        prompt_tokens: Tokens of the history, tools and instructions.
        completion_tokens: Tokens the model generated.
    """

    prompt_tokens: int
    completion_tokens: int


LLMChunk = TextDelta | ToolCallChunk | Usage
"""One item of an LLM's answer stream."""


@runtime_checkable
class LLMProvider(Protocol):
    """A chat model."""

    @property
    def name(self) -> str:
        """The provider's name (usually with the model), for metrics, logs and errors."""
        ...

    def chat(
        self,
        history: Sequence[ChatMessage],
        tools: Sequence[ToolSpec] = (),
        *,
        tool_choice: ToolChoice = "auto",
    ) -> AsyncIterator[LLMChunk]:
        """Start a request and stream its answer.

        The request may start lazily, on the first ``__anext__``. Closing the iterator or
        cancelling its reader cancels the request.

        Args:
            history: The conversation, system message first.
            tools: The tools the model may call.
            tool_choice: See :data:`ToolChoice`.

        Returns:
            The answer's chunks: text deltas and complete tool calls in the order the model
            produced them, then (when the provider reports it) one :class:`Usage`.

        Raises:
            flowkit.providers.errors.ProviderError: From the iteration, when the request
                fails.
        """
        ...



class LLMMeter:
    """Measures one LLM request: time to first token, duration and tokens per second.

    Create it when the request starts, pass it every chunk, call :meth:`finish` at the end.
    Without a :class:`Usage` chunk, text deltas are counted as tokens (most providers
    stream about one token per delta).
    """

    def __init__(
        self, provider: str, node: str = "", clock: Callable[[], float] = loop_time
    ) -> None:
        """Start measuring a request now.

        Args:
            provider: The provider's name, put in the metrics' labels.
            node: The measuring node's name.
            clock: Seconds from a monotonic clock; the running loop's clock by default.
        """
        self._provider, self._node, self._clock = provider, node, clock
        self._start = clock()
        self._first: float | None = None
        self._deltas = 0
        self._usage: Usage | None = None

    def chunk(self, chunk: LLMChunk) -> None:
        """Take one chunk of the answer."""
        if isinstance(chunk, Usage):
            self._usage = chunk
            return
        if self._first is None:
            self._first = self._clock()
        if isinstance(chunk, TextDelta):
            self._deltas += 1

    def finish(self, *, cancelled: bool = False) -> Metrics:
        """The request's metrics.

        Values: ``ttft`` (seconds to the first text or tool call; the whole duration when
        there was none), ``duration``, ``completion_tokens``, ``prompt_tokens`` and
        ``tokens_per_second`` (completion tokens over the time after the first token).
        Labels: ``provider`` and ``cancelled``.
        """
        end = self._clock()
        first = end if self._first is None else self._first
        completion = self._usage.completion_tokens if self._usage else self._deltas
        generating = end - first
        return Metrics(
            kind="llm",
            node=self._node,
            values={
                "ttft": first - self._start,
                "duration": end - self._start,
                "completion_tokens": float(completion),
                "prompt_tokens": float(self._usage.prompt_tokens if self._usage else 0),
                "tokens_per_second": completion / generating if generating > 0 else 0.0,
            },
            labels={"provider": self._provider, "cancelled": cancelled},
        )
