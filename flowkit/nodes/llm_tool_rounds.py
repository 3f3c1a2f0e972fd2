"""Tool rounds: the tools an LLM reply offers, and the calls it makes between its requests.

When the model answers with tool calls, the LLM node sends them out on ``tool_calls`` (to a
:class:`~flowkit.nodes.tools.ToolRouter`), waits for their results, which come back on the
``tool_results`` feedback loop, adds both to the history and asks the model again. A call
with no result within ``tool_result_timeout`` gets an error result instead, so a lost result
cannot hang the reply; a reply cut while its round waits answers the round's calls in the
history at once (with the results that came, and an error result for each other call), so
that every call in the history has its result, as chat APIs require. A result that hands the
conversation to another agent swaps the instructions and the agent's function tools; the MCP
servers' tools stay (see :mod:`flowkit.tools.toolbox`). A task a tool runs
(:mod:`flowkit.tools.task`) is a handoff that ends: its start keeps the instructions and
tools aside, its end brings them back. A result no round waits for any more (its reply was
cut) still moves the conversation, as it moved the ToolRouter's tools, and takes the place of
the error result its cut round gave the call. A reply gets at most
``max_tool_steps`` rounds: the request after the last one offers no tools, so the model must
answer in text.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from flowkit.messages import ToolCall, ToolResult
from flowkit.providers.chat import ChatHistory, ToolSpec
from flowkit.tools.agent_update import AgentUpdate
from flowkit.tools.toolbox import Logger, Toolbox

__all__ = ["LATE_RESULT_NOTE", "ToolRounds"]

LATE_RESULT_NOTE = (
    "this result came after the reply was cut off; the user has not heard it"
)
"""What the history adds to a result that replaces a cut round's "no result" answer."""

# Calls answered without their result whose late result the rounds still watch for, at most.
_UNANSWERED_KEPT = 64


class ToolRounds:
    """The tools on offer to a node's requests, and the tool calls of its replies' rounds."""

    def __init__(
        self,
        tools: Toolbox,
        send_call: Callable[[ToolCall], None],
        *,
        max_steps: int = 3,
        result_timeout: float = 60.0,
    ) -> None:
        """Create the rounds of one node.

        Args:
            tools: The node's function tools and MCP servers.
            send_call: Sends a tool call out (the node's ``tool_calls`` output).
            max_steps: Tool rounds per reply; after that the model must answer in text.
            result_timeout: Seconds a round waits for its results before it goes on with an
                error result for each missing one.
        """
        self._tools = tools
        self._send_call = send_call
        self._max_steps, self._timeout = max_steps, result_timeout
        # The calls of the round waiting now, in order, each with its result's future.
        self._pending: dict[str, tuple[ToolCall, asyncio.Future[ToolResult]]] = {}
        # Calls of cut rounds answered in the history without their result, by call id.
        self._unanswered: dict[str, ToolCall] = {}

    @asynccontextmanager
    async def opened(self, logger: Logger) -> AsyncIterator[None]:
        """Hold the MCP servers' connections and offer their tools too, inside the block.

        Args:
            logger: Where a server that cannot be reached, or a clash, is reported.
        """
        async with self._tools.opened(logger):
            yield

    @property
    def specs(self) -> tuple[ToolSpec, ...]:
        """Every tool in use now, as the provider is told about it.

        Read afresh for each request: an MCP server's tools are offered once :meth:`opened`
        has listed them (or once a server that was down at the start connects), and follow
        its listing when it says its tools changed.
        """
        return self._tools.specs()

    @property
    def history_from(self) -> str | None:
        """The call from which requests show the conversation (a task's own), or ``None``."""
        return self._tools.history_from

    def tool_choice(self, steps: int) -> str:
        """The ``tool_choice`` of a reply's request after ``steps`` rounds."""
        return "auto" if self.specs and steps < self._max_steps else "none"

    def offered(self, tool_choice: str) -> tuple[ToolSpec, ...]:
        """The tools a request with ``tool_choice`` offers."""
        return self.specs if tool_choice != "none" else ()

    def awaits(self, call_id: str) -> bool:
        """Whether a round is waiting for the result of call ``call_id`` now."""
        entry = self._pending.get(call_id)
        return entry is not None and not entry[1].done()

    def deliver(self, result: ToolResult, history: ChatHistory, logger: Logger) -> None:
        """Take a result from the feedback loop to the round that waits for it, if one does.

        A result no round waits for (its reply was cut, or the round gave up on it) still
        moves the conversation if it carries a handoff: the ToolRouter has switched tools
        already, and the two nodes must stay in step. The result of a call that a cut round
        answered without it (:meth:`abandon`) replaces that answer in the history, so that
        the model knows what the tool did (a payment made, a booking taken).

        Args:
            result: The result.
            history: The conversation, whose instructions a late handoff changes.
            logger: Where a late handoff's clashes with the MCP tools are reported.
        """
        entry = self._pending.get(result.call_id)
        if entry is not None and not entry[1].done():
            entry[1].set_result(result)
            return
        if self._unanswered.pop(result.call_id, None) is not None:
            history.replace_tool_result(dataclasses.replace(
                result, output=f"{result.output}\n({LATE_RESULT_NOTE})"
            ))
        if result.handoff is not None:
            self._apply_handoffs([result], history, logger)

    def update(self, update: AgentUpdate, history: ChatHistory, logger: Logger) -> None:
        """Change the agent from code (:class:`~flowkit.tools.AgentUpdate`).

        Args:
            update: The change.
            history: The conversation, whose instructions it may change.
            logger: Where clashes with the MCP tools are reported.
        """
        history.instructions = update.applied(self._tools, history.instructions, logger)

    def take_router_result(
        self, result: ToolResult, history: ChatHistory, logger: Logger
    ) -> None:
        """Add a call the ToolRouter made and its result to the history; follow its handoff.

        The router makes a call of its own to bring back the outcome of a task completed
        outside any tool call (``result.call``; :mod:`flowkit.tools.task`). No round waits
        for it: it comes between replies, as a user turn does, so the history takes the call
        and its answer at once, as if the model had made the call in a reply of its own.

        Args:
            result: The result; its ``call`` is the call it answers.
            history: The conversation.
            logger: Where the handoff's clashes with the MCP tools are reported.
        """
        self.add_router_call(result, history)
        self._apply_handoffs([result], history, logger)

    @staticmethod
    def add_router_call(result: ToolResult, history: ChatHistory) -> None:
        """Add a call the ToolRouter made and its result to ``history``; no handoff followed.

        :meth:`take_router_result` without the handoff: for a copy of the history that shows
        what a request will be made from.
        """
        assert result.call is not None, "a result of the model's own call goes to deliver()"
        history.add_assistant("", [result.call], turn_id=result.turn_id)
        history.add_tool_result(result)

    def abandon(self, history: ChatHistory) -> None:
        """The reply is being cut while its round waits: answer the round's calls now.

        The history already holds the message with the calls, and a chat API refuses a
        request in which a call has no result, so each call gets its result here, before
        the cut reply's task unwinds and before the next user message is added: the one
        that came, or an error result saying that its outcome is unknown (the tool may
        still finish; a result that comes later is not waited for). Nothing happens when
        no round waits.

        Args:
            history: The conversation whose last message made the calls.
        """
        round_, self._pending = self._pending, {}
        for call, future in round_.values():
            if future.done() and not future.cancelled():
                history.add_tool_result(future.result())
                continue
            future.cancel()
            history.add_tool_result(ToolResult(
                turn_id=call.turn_id, call_id=call.call_id, name=call.name, is_error=True,
                output=f"no result: the user cut the reply off while the tool {call.name!r} "
                "ran, so its outcome is unknown (it may have finished)",
            ))
            self._unanswered[call.call_id] = call
        # A router that stopped never answers: keep the newest calls only.
        while len(self._unanswered) > _UNANSWERED_KEPT:
            del self._unanswered[next(iter(self._unanswered))]

    async def run(
        self,
        history: ChatHistory,
        turn_id: int,
        text: str,
        calls: list[ToolCall],
        logger: Logger,
    ) -> list[ToolResult]:
        """One round: call the tools the model asked for and add the results to the history.

        Args:
            history: The conversation: it gets the model's message (``text`` with its
                ``calls``), then the results, and the instructions of an agent handed to.
            turn_id: The turn of the reply, which the model's message is part of.
            text: What the model said before calling the tools.
            calls: The tool calls of the model's answer.
            logger: Where a handoff's clashes with the MCP tools are reported.

        Returns:
            The results, in the order of the calls; an error result for a call whose result
            did not come in time.
        """
        history.add_assistant(text, calls, turn_id=turn_id)
        results = await self._call(calls)
        for result in results:
            history.add_tool_result(result)
        self._apply_handoffs(results, history, logger)
        return results

    async def _call(self, calls: list[ToolCall]) -> list[ToolResult]:
        timeout = self._timeout
        loop = asyncio.get_running_loop()
        futures = []
        for call in calls:
            future: asyncio.Future[ToolResult] = loop.create_future()
            self._pending[call.call_id] = (call, future)
            futures.append(future)
        for call in calls:
            self._send_call(call)
        try:
            done, _ = await asyncio.wait(futures, timeout=timeout)
        finally:
            # Also when the reply is cut while it waits: nothing waits for these any more.
            for call in calls:
                self._pending.pop(call.call_id, None)
        results = []
        for call, future in zip(calls, futures, strict=True):
            if future in done:
                results.append(future.result())
                continue
            results.append(
                ToolResult(
                    turn_id=call.turn_id, call_id=call.call_id, name=call.name, is_error=True,
                    output=f"the tool {call.name!r} gave no result within {timeout:g} s",
                )
            )
        return results

    def _apply_handoffs(
        self, results: list[ToolResult], history: ChatHistory, logger: Logger
    ) -> None:
        for result in results:
            # An agent swaps the instructions and function tools (the MCP servers' tools
            # stay); a task's start and end keep them aside and bring them back.
            history.instructions = self._tools.switch(
                result.handoff, history.instructions, logger, call_id=result.call_id
            )
