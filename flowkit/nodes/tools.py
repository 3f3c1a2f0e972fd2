"""The ToolRouter node: runs the LLM's tool calls and sends their results back.

Calls run concurrently (an LLM asking for several tools at once gets them in parallel), each
with a timeout; a failure becomes an error result the LLM can read (see
:func:`flowkit.tools.invoke_tool`), never an exception that ends the node. A tool that returns
another agent hands the conversation over: the router switches to that agent's tools at once
and the result carries the agent to the LLM, which switches its instructions.

Calls to the tools of its ``mcp_servers`` go to those servers (the same server objects as
the LLM node's: they share one connection per job); their tools stay across handoffs.

With ``speech`` linked to the LLM node's ``tool_speech`` (or a RealtimeModel's, whose text a
TTS node speaks), a tool can speak while it runs
(``await ctx.say("One moment while I look that up.")``): the words are spoken in the reply
that made the call, before its result is back. Unlinked, ``ctx.say`` raises and says what
to link.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from flowkit.messages import ToolCall, ToolResult, ToolSpeech
from flowkit.node import Node, NodeParams
from flowkit.ports import In, Out
from flowkit.tools.context import RunContext
from flowkit.tools.function_tool import FunctionTool, ToolSet
from flowkit.tools.invoke import AgentLike, ToolOutcome, invoke_tool
from flowkit.tools.mcp.server import MCPServer
from flowkit.tools.toolbox import Toolbox

__all__ = ["ToolRouter"]


class ToolRouter(Node):
    """Runs tool calls, in parallel, and sends back their results."""

    calls: In[ToolCall] = In(doc="tool calls from the LLM")
    results: Out[ToolResult] = Out(
        default=True, doc="results, to the LLM's tool_results (a feedback loop)"
    )
    speech: Out[ToolSpeech] = Out(
        doc="what tools say while they run (ctx.say), to the LLM's (or realtime model's) "
        "tool_speech"
    )

    class Params(NodeParams):
        """Parameters of :class:`ToolRouter`."""

        tools: tuple[Any, ...] = ()
        mcp_servers: tuple[Any, ...] = ()
        timeout: float | None = 30.0
        userdata: Any = None

    def __init__(
        self,
        tools: Sequence[FunctionTool] = (),
        *,
        agent: AgentLike | None = None,
        mcp_servers: Sequence[MCPServer] = (),
        timeout: float | None = 30.0,
        userdata: Any = None,
    ) -> None:
        """Create a tool router.

        Args:
            tools: The tools it can run (the same ones the LLM node offers).
            agent: Take the tools from this agent instead.
            mcp_servers: MCP servers whose tools it can run (the same objects the LLM node
                was given).
            timeout: Seconds a call may take before it becomes an error result (MCP calls
                included).
            userdata: What ``RunContext.userdata`` gives the tools (session state).
        """
        chosen = tuple(agent.tools) if agent is not None else tuple(tools)
        super().__init__(
            tools=chosen, mcp_servers=tuple(mcp_servers), timeout=timeout, userdata=userdata
        )
        self._tools = Toolbox(chosen, mcp_servers)

    @property
    def toolset(self) -> ToolSet:
        """The tools it runs now: the current agent's, then the MCP servers' (once listed)."""
        return self._tools.toolset

    async def run(self, calls: AsyncIterator[ToolCall]) -> None:
        """List the MCP servers' tools, then run the calls (see the class)."""
        async with self._tools.opened(self.ctx.logger):
            await self._serve(calls)

    async def _serve(self, calls: AsyncIterator[ToolCall]) -> None:
        """Start each call as it arrives; finish when the calls end and all have answered."""
        running: set[asyncio.Task[None]] = set()
        async for call in calls:
            task = self.ctx.create_task(self._answer(call), name=f"tool:{call.name}")
            running.add(task)
            task.add_done_callback(running.discard)
        if running:
            await asyncio.gather(*running)

    async def _answer(self, call: ToolCall) -> None:
        params = self.params
        # The job lets a tool act on the call itself (send_dtmf presses keys on its line).
        context: RunContext[Any] = RunContext(
            call=call, userdata=params.userdata, job=self.ctx.job,  # type: ignore[attr-defined]
            session=self._speaker(call),
        )
        outcome = await invoke_tool(
            self.toolset, call, context, timeout=params.timeout  # type: ignore[attr-defined]
        )
        self.results.send(_result_of(outcome))
        if outcome.handoff is not None:
            self._tools.hand_over(tuple(outcome.handoff.tools), self.ctx.logger)


    def _speaker(self, call: ToolCall) -> _CallSpeaker | None:
        """What lets the call's tool speak, when the graph takes its words anywhere."""
        if not self.ctx.output_linked("speech"):
            return None
        return _CallSpeaker(call, self.speech.send)


class _CallSpeaker:
    """The session a tool's :class:`RunContext` gets: ``say`` sends the words on their way."""

    def __init__(self, call: ToolCall, send: Callable[[ToolSpeech], None]) -> None:
        self._call = call
        self._send = send

    async def say(self, text: str) -> None:
        """Send ``text`` to be spoken in the call's reply; return without waiting for it."""
        if not text.strip():
            raise ValueError(
                f"tool {self._call.name!r} called ctx.say() with nothing to say ({text!r}); "
                "give the words to speak"
            )
        call = self._call
        self._send(
            ToolSpeech(turn_id=call.turn_id, call_id=call.call_id, name=call.name, text=text)
        )


def _result_of(outcome: ToolOutcome) -> ToolResult:
    return dataclasses.replace(
        outcome.result, stop_response=outcome.stop_response, handoff=outcome.handoff
    )
