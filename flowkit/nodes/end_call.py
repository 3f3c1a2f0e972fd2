"""The EndCall node: hang up once the agent's goodbye has played.

When the LLM calls the :data:`~flowkit.tools.end_call.end_call` tool, the tool answers it
"say goodbye", and the reply that follows is the goodbye. :class:`EndCall` reads the tool
router's results (``results``) and the sink's playout reports (``playout``). A successful
result of its tool arms it for that call's turn; the reply of that turn finishing, or being
cut off by the user, ends the call. A session without a speaker (text only: no sink, so no
reports) links the LLM's ``text`` instead, and the goodbye's last chunk ends the call once
it is written, as LiveKit Agents' playout wait ends for a reply that is only text. With
neither linked the node warns at its start, naming both links, and a call ends
``max_wait`` after the tool's result:

1. in a LiveKit job, the room is deleted (``delete_room=True``, the default), which
   disconnects everyone in it, phone callers included, as LiveKit Agents' ``EndCallTool``
   does; with ``delete_room=False`` only the agent leaves;
2. the job is asked to end (``job.shutdown("the agent ended the call")``), which the worker
   (or ``flowkit connect``) acts on.

A goodbye that does not finish within ``max_wait`` seconds of the tool's result (the LLM
wrote no reply, a TTS failed, a reply stayed paused) ends the call anyway, with a warning.
A result that is an error (the tool failed) arms nothing: the conversation goes on. A
failed room deletion is logged and the job still ends. Outside LiveKit (an offline run) the
job is asked to end and no room is deleted.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import pydantic

from flowkit.messages import Playout, PlayoutEvent, TextChunk, ToolResult
from flowkit.node import Node, NodeParams
from flowkit.ports import In
from flowkit.tools.function_tool import FunctionTool

__all__ = ["END_CALL_REASON", "EndCall"]

END_CALL_REASON = "the agent ended the call"
"""The shutdown reason the job gets."""

_ENDS_A_REPLY = (PlayoutEvent.FINISHED, PlayoutEvent.INTERRUPTED)


class EndCall(Node):
    """Ends the call (deletes the room, ends the job) after the end-call tool's goodbye."""

    results: In[ToolResult] = In(default=True, doc="the tool router's results")
    playout: In[Playout] = In(
        required=False, doc="the sink's reports: the goodbye finishing ends the call"
    )
    text: In[TextChunk] = In(
        required=False,
        doc="the LLM's text, for a session without a speaker: the goodbye's last chunk ends "
        "the call (ignored when playout is linked)",
    )

    class Params(NodeParams):
        """Parameters of :class:`EndCall`."""

        tool_name: str = "end_call"
        delete_room: bool = True
        max_wait: float = pydantic.Field(default=15.0, gt=0)

    def __init__(
        self,
        tool: FunctionTool | str = "end_call",
        *,
        delete_room: bool = True,
        max_wait: float = 15.0,
    ) -> None:
        """Create the node.

        Args:
            tool: The end-call tool (the one given to the LLM and the router), or its name.
            delete_room: Delete the room on hanging up, disconnecting everyone; ``False``:
                only the agent leaves (the job ends).
            max_wait: Seconds from the tool's result to wait for the goodbye to finish
                before hanging up anyway.
        """
        name = tool.name if isinstance(tool, FunctionTool) else tool
        super().__init__(tool_name=name, delete_room=delete_room, max_wait=max_wait)

    async def run(
        self,
        results: AsyncIterator[ToolResult],
        playout: AsyncIterator[Playout],
        text: AsyncIterator[TextChunk],
    ) -> None:
        """Wait for the tool's result, then for its turn's reply to end; then hang up."""
        params = self.params
        armed: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        ended = asyncio.Event()
        watching: Coroutine[Any, Any, None] | None
        if self.ctx.input_linked("playout"):
            watching = self._watch(playout, armed, ended)
            # Linked too, but unused: read it, or its queue would grow for the whole call.
            self.ctx.create_task(_drain(text), name="unused text")
        elif self.ctx.input_linked("text"):
            watching = self._watch_text(text, armed, ended)
        else:
            self.ctx.logger.warning(
                "%s cannot tell when the goodbye ends, so a call will end max_wait=%g s after "
                "the tool's result: link the sink's reports (sink.playout >> %s.playout) or, "
                "in a session without a speaker, the LLM's text (llm.text >> %s.text)",
                self.name, params.max_wait, self.name, self.name,  # type: ignore[attr-defined]
            )
            watching = None  # nothing to watch: the max_wait below ends the call
        watcher = (
            self.ctx.create_task(watching, name="goodbye") if watching is not None else None
        )
        try:
            async for result in results:
                if result.name != params.tool_name:  # type: ignore[attr-defined]
                    continue
                if result.is_error:
                    self.ctx.logger.info(
                        "%s failed (%s): the call goes on", result.name, result.output
                    )
                    continue
                armed.set_result(result.turn_id)
                break
            else:
                return  # the conversation ended without the tool: nothing to do
            max_wait: float = params.max_wait  # type: ignore[attr-defined]
            try:
                await asyncio.wait_for(ended.wait(), max_wait)
            except TimeoutError:
                self.ctx.logger.warning(
                    "the goodbye of turn %d did not finish within max_wait=%g s of %s's "
                    "result; hanging up anyway", armed.result(), max_wait, params.tool_name,  # type: ignore[attr-defined]
                )
        finally:
            if watcher is not None:
                watcher.cancel()
        await self._hang_up()

    async def _watch(
        self, playout: AsyncIterator[Playout], armed: asyncio.Future[int], ended: asyncio.Event
    ) -> None:
        """Set ``ended`` when the armed turn's reply finishes or is cut off."""
        async for report in playout:
            if (
                armed.done()
                and report.turn_id == armed.result()
                and report.event in _ENDS_A_REPLY
            ):
                ended.set()
                return

    async def _watch_text(
        self, text: AsyncIterator[TextChunk], armed: asyncio.Future[int], ended: asyncio.Event
    ) -> None:
        """Set ``ended`` when the armed turn's reply has been written to its last chunk."""
        async for chunk in text:
            if armed.done() and chunk.turn_id == armed.result() and chunk.final:
                ended.set()
                return

    async def _hang_up(self) -> None:
        job = self.ctx.job
        if job is None:
            self.ctx.logger.warning(
                "the agent ended the call, but the graph runs without a job to end; give "
                "GraphRunner a JobContext (the worker and `flowkit run` do)"
            )
            return
        if self.params.delete_room and job.livekit is not None:  # type: ignore[attr-defined]
            try:
                await job.delete_room()
            except Exception:  # the agent still leaves: the job ends anyway
                self.ctx.logger.warning(
                    "could not delete room %r on ending the call; the agent leaves, the "
                    "others stay", job.room_name, exc_info=True,
                )
        self.ctx.logger.info("%s (turn of the goodbye ended)", END_CALL_REASON)
        job.shutdown(END_CALL_REASON)


async def _drain(messages: AsyncIterator[object]) -> None:
    async for _ in messages:
        pass
