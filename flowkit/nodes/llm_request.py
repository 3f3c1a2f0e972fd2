"""One request of an LLM reply: the messages it sends, and its answer streamed out as text.

A reply is one request to the chat model, or several when the model calls tools (see
:mod:`flowkit.nodes.llm_tool_rounds`). Each request sends the conversation's history,
trimmed to ``max_history``, with the reply's own instructions (if any) added to the system
message. The answer's text goes out as :class:`~flowkit.messages.TextChunk` s as it
streams; its tool calls are returned when it ends. Closing the provider's stream is what
cancels the request when the reply is cut, so it is closed however the request ends, and the
request's metrics go out then (marked cancelled if it was cut).

A request made ahead of its turn (:mod:`flowkit.nodes.llm_preemption`) is not made again:
the reply takes it over and streams out its replay the same way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from flowkit.messages import Metrics, TextChunk, ToolCall
from flowkit.nodes.llm_preemption import PreemptiveRequest
from flowkit.providers.chat import ChatHistory, ChatMessage, ToolSpec
from flowkit.providers.llm import LLMChunk, LLMMeter, LLMProvider, TextDelta, ToolCallChunk

__all__ = ["RequestStreamer"]


class RequestStreamer:
    """Makes a reply's requests to the chat model and sends their text out as it streams.

    The text the request in progress has sent out is kept until :meth:`take_text` takes it
    (for the history): when the request ends, or when the reply is cut under it.
    """

    def __init__(
        self,
        provider: LLMProvider,
        send_text: Callable[[TextChunk], None],
        send_metrics: Callable[[Metrics], None],
        *,
        max_history: int | None = None,
        history_from: Callable[[], str | None] = lambda: None,
    ) -> None:
        """Create the streamer of one node's requests.

        Args:
            provider: The chat model.
            send_text: Sends a chunk of the reply (the node's ``text`` output).
            send_metrics: Sends a request's metrics when it ends (the ``metrics`` output).
            max_history: Keep at most this many messages (besides the instructions) in each
                request; older ones are dropped, tool calls with their results.
            history_from: The call from which a request shows the conversation (a running
                task's own history), or ``None`` for all of it; asked at each request.
        """
        self._provider = provider
        self._send_text, self._send_metrics = send_text, send_metrics
        self._max_history = max_history
        self._history_from = history_from
        # Text streamed by the request in progress and not yet in the history.
        self._streamed: list[str] = []

    def messages(
        self, history: ChatHistory, instructions: str | None = None
    ) -> tuple[ChatMessage, ...]:
        """The messages a request sends: ``history``, trimmed (in place), with ``instructions``.

        Args:
            history: The conversation to answer.
            instructions: Added to the history's instructions for this request only.
        """
        if self._max_history is not None:
            history.trim(self._max_history)
        since = self._history_from()
        if not instructions:
            return history.since_call(since) if since else history.messages
        view = ChatHistory(messages=history.since_call(since)) if since else history.copy()
        view.instructions = f"{view.instructions or ''}\n\n{instructions}".strip()
        return view.messages

    def take_text(self) -> str:
        """The text the last request sent out and no one took yet; it is forgotten here."""
        text, self._streamed = "".join(self._streamed), []
        return text

    async def request(
        self,
        history: ChatHistory,
        instructions: str | None,
        specs: tuple[ToolSpec, ...],
        tool_choice: str,
        *,
        turn_id: int,
        allow_interruptions: bool,
        node: str = "",
    ) -> list[ToolCall]:
        """Ask the model about ``history``, send the answer's text out, return its tool calls.

        Args:
            history: The conversation to answer (trimmed to ``max_history`` first).
            instructions: The reply's own instructions, added to the history's.
            specs: The tools the request offers.
            tool_choice: Whether the model may call them (``"auto"``) or not (``"none"``).
            turn_id: The reply's turn, on each chunk sent.
            allow_interruptions: Whether the reply may be cut, on each chunk sent.
            node: The node's name, in the request's metrics.
        """
        meter = LLMMeter(self._provider.name, node)
        stream = self._provider.chat(
            self.messages(history, instructions), specs, tool_choice=tool_choice
        )
        cancelled = True
        try:
            calls = await self._stream_out(stream, turn_id, allow_interruptions, meter)
            cancelled = False
        finally:
            # Closing the stream is what cancels the provider's request on a barge-in.
            closer = getattr(stream, "aclose", None)
            if closer is not None:
                await closer()
            self._send_metrics(meter.finish(cancelled=cancelled))
        return calls

    async def take_over(
        self, early: PreemptiveRequest, *, turn_id: int, allow_interruptions: bool
    ) -> list[ToolCall]:
        """Send out a preemptive request's answer as this reply's; return its tool calls.

        The request measured itself from its start, so no metrics are sent here.
        """
        try:
            return await self._stream_out(early.replay(), turn_id, allow_interruptions)
        except BaseException:
            early.cancel()  # the reply was cut (or failed): so is the request it took over
            raise

    async def _stream_out(
        self,
        stream: AsyncIterator[LLMChunk],
        turn_id: int,
        allow_interruptions: bool,
        meter: LLMMeter | None = None,
    ) -> list[ToolCall]:
        """Send the answer's text as it comes; return its tool calls."""
        parts = self._streamed = []
        calls: list[ToolCall] = []
        async for chunk in stream:
            if meter is not None:
                meter.chunk(chunk)
            if isinstance(chunk, TextDelta) and chunk.text:
                parts.append(chunk.text)
                self._send_text(
                    TextChunk(
                        turn_id=turn_id, text=chunk.text, allow_interruptions=allow_interruptions
                    )
                )
            elif isinstance(chunk, ToolCallChunk):
                calls.append(chunk.to_tool_call(turn_id))
        if calls and parts:
            # Text before a tool round ("Sure. Let me check that.") is to be heard while the
            # tools run, not held by the TTS node's splitter until the next request's words
            # (its last sentence, or a short one, waits there for more): a flush says so. The
            # space keeps the next request's words apart ("that.It is sunny"). Only the
            # chunk carries it, not the history.
            gap = "" if parts[-1][-1:].isspace() else " "
            self._send_text(
                TextChunk(
                    turn_id=turn_id, text=gap, flush=True,
                    allow_interruptions=allow_interruptions,
                )
            )
        return calls
