"""Preemptive generation: an LLM request started before its user turn is committed.

The turn detector's :class:`~flowkit.messages.TentativeTurn` says what the turn will be if
the user says nothing more. The LLM node starts the request for it at once and keeps what
streams back in a :class:`PreemptiveRequest`; when the turn commits with the same text and
the request would have been made with the same messages and tools, the reply takes the
request over (:meth:`PreemptiveRequest.replay`: what was buffered, then the rest as it
comes), so the model's time to first token has run during the endpointing delay. Anything
else discards it, and its provider request is cancelled.

Nothing of a preemptive request is spoken, and no tool called, before it is taken over:
for a turn the user has not finished. Its text may go out as a prefetch
(:class:`~flowkit.messages.SpeechPrefetch`), which a TTS node synthesises ahead into a cache
and plays only if the committed reply starts with the same sentence (preemptive TTS).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Callable

from flowkit.messages import Metrics
from flowkit.nodes.replay_buffer import ReplayBuffer
from flowkit.providers.chat import ChatMessage, ToolSpec
from flowkit.providers.llm import LLMChunk, LLMMeter, TextDelta, ToolCallChunk
from flowkit.runtime.context import TaskStarter

__all__ = ["PreemptiveRequest"]

_log = logging.getLogger(__name__)


class PreemptiveRequest:
    """One provider request made ahead of its turn, read into a buffer until taken over.

    Attributes:
        text: The user text the request answers.
        messages: The messages it was made with (the history with the user text last).
        specs: The tools it offered.
    """

    def __init__(
        self,
        text: str,
        messages: tuple[ChatMessage, ...],
        specs: tuple[ToolSpec, ...],
        stream: AsyncIterator[LLMChunk],
        meter: LLMMeter,
        report: Callable[[Metrics], None],
        start: TaskStarter,
        prefetch: Callable[[str, bool], None] | None = None,
    ) -> None:
        """Start reading ``stream``.

        Args:
            text: The user text the request answers.
            messages: The messages the request was made with.
            specs: The tools the request offered.
            stream: The provider's answer.
            meter: Measures the request from its start.
            report: Takes the request's metrics when it ends (labelled ``preemptive``).
            start: Starts a task owned by the node (so a restart cancels it).
            prefetch: Takes the answer's text as it streams, ``(delta, final)``, until the
                request is taken over or a tool call comes (the text after one depends on
                the tool's result); ``final`` once, when the text is complete.
        """
        self.text, self.messages, self.specs = text, messages, specs
        self._stream, self._meter, self._report = stream, meter, report
        self._chunks: ReplayBuffer[LLMChunk] = ReplayBuffer()
        self._prefetch = prefetch
        self._task = start(self._read())

    def matches(
        self, text: str, messages: tuple[ChatMessage, ...], specs: tuple[ToolSpec, ...]
    ) -> bool:
        """Whether the committed turn's request would be this one's."""
        return text == self.text and specs == self.specs and messages == self.messages

    def cancel(self) -> None:
        """Discard the request: the provider's request is cancelled if it still runs."""
        self._task.cancel()

    async def replay(self) -> AsyncIterator[LLMChunk]:
        """The answer from its first chunk: what is buffered at once, then the rest as it comes.

        Raises the provider's error where the stream raised it. Cancelling the reader does
        not cancel the request; :meth:`cancel` does.
        """
        self._prefetch = None  # taken over: the reply's own text goes to TTS from now on
        async for chunk in self._chunks.replay():
            yield chunk

    async def _read(self) -> None:
        cancelled = True
        error: Exception | None = None
        try:
            async for chunk in self._stream:
                self._meter.chunk(chunk)
                self._chunks.append(chunk)
                self._send_prefetch(chunk)
            cancelled = False
            if self._prefetch is not None:
                self._prefetch("", True)
        except Exception as exc:
            # Raised to the reply that takes the request over, where a request made then
            # would have raised it; a request nobody takes over fails unseen.
            error = exc
            cancelled = False
            _log.debug("preemptive LLM request for %r failed", self.text, exc_info=True)
        finally:
            self._chunks.end(error)
            closer = getattr(self._stream, "aclose", None)
            if closer is not None:
                await closer()  # what cancels the provider's request when discarded
            metrics = self._meter.finish(cancelled=cancelled)
            self._report(
                dataclasses.replace(metrics, labels={**metrics.labels, "preemptive": True})
            )

    def _send_prefetch(self, chunk: LLMChunk) -> None:
        if self._prefetch is None:
            return
        if isinstance(chunk, ToolCallChunk):
            self._prefetch = None  # what follows a tool call depends on its result
        elif isinstance(chunk, TextDelta) and chunk.text:
            self._prefetch(chunk.text, False)
