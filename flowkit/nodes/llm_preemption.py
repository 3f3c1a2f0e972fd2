"""Preemptive generation: an LLM request started before its user turn is committed.

The turn detector's :class:`~flowkit.messages.TentativeTurn` says what the turn will be if
the user says nothing more. The LLM node starts the request for it at once and keeps what
streams back in a :class:`PreemptiveRequest`; when the turn commits with the same text and
the request would have been made with the same messages and tools, the reply takes the
request over (:meth:`PreemptiveRequest.replay`: what was buffered, then the rest as it
comes), so the model's time to first token has run during the endpointing delay. Anything
else discards it, and its provider request is cancelled.

Nothing of a preemptive request leaves the node before it is taken over: no text is spoken
and no tool is called for a turn the user has not finished.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from flowkit.messages import Metrics
from flowkit.providers.chat import ChatMessage, ToolSpec
from flowkit.providers.llm import LLMChunk, LLMMeter

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
        start: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]],
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
        """
        self.text, self.messages, self.specs = text, messages, specs
        self._stream, self._meter, self._report = stream, meter, report
        self._chunks: list[LLMChunk] = []
        self._ended = False
        self._error: Exception | None = None
        self._more = asyncio.Event()
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
        sent = 0
        while True:
            while sent < len(self._chunks):
                yield self._chunks[sent]
                sent += 1
            if self._ended:
                if self._error is not None:
                    raise self._error
                return
            self._more.clear()
            await self._more.wait()

    async def _read(self) -> None:
        cancelled = True
        try:
            async for chunk in self._stream:
                self._meter.chunk(chunk)
                self._chunks.append(chunk)
                self._more.set()
            cancelled = False
        except Exception as exc:
            # Raised to the reply that takes the request over, where a request made then
            # would have raised it; a request nobody takes over fails unseen.
            self._error = exc
            cancelled = False
            _log.debug("preemptive LLM request for %r failed", self.text, exc_info=True)
        finally:
            self._ended = True
            self._more.set()
            closer = getattr(self._stream, "aclose", None)
            if closer is not None:
                await closer()  # what cancels the provider's request when discarded
            metrics = self._meter.finish(cancelled=cancelled)
            self._report(
                dataclasses.replace(metrics, labels={**metrics.labels, "preemptive": True})
            )
