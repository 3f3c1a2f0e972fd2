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
that made the call, before its result is back; ``ctx.disallow_interruptions()`` travels the
same way and protects that reply from barge-in until it ends. With the speaker's ``playout``
linked to the router's ``playout`` too, ``await ctx.wait_for_playout()`` returns once the
user has heard what the reply said so far (:mod:`flowkit.nodes.tool_playout`). Unlinked,
each raises and says what to link.

An :class:`~flowkit.tools.AgentUpdate` on ``updates`` (the same as the LLM node's) changes
the tools it runs from then on, for code that changes the agent outside a tool.

A tool can run a task (``await ctx.run_task(task)``, :mod:`flowkit.tools.task`): a
sub-conversation with its own instructions and tools. The router answers the tool's call at
once with a result that moves the conversation to the task, keeps the tool waiting, and
answers the call that completes the task with what the tool returns once it goes on, the
conversation moving back. A task completed outside any call (a timer, an event) has no call
to answer, so the router answers one of its own making (``ToolResult.call``) with the same
outcome. Tools that still wait when the calls end are cancelled: no task tool can complete
their task any more.

A tool can go on in the background (``await ctx.update("Searching flights")``,
:mod:`flowkit.nodes.tool_background`): the router answers its call with the update at once,
and sends what it reports later, and its outcome, as results of calls of its own
(``ToolResult(call=..., deferred=True)``), which the LLM node answers when the agent is
idle. A second call of such a tool follows the tool's ``on_duplicate``. Tools still in the
background when the calls end are cancelled.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from flowkit.messages import Playout, ToolCall, ToolResult, ToolSpeech, new_turn_id
from flowkit.node import Node, NodeParams
from flowkit.nodes.tool_background import BackgroundCalls
from flowkit.nodes.tool_playout import PlayoutWaits
from flowkit.ports import In, Out
from flowkit.problems import Problem, ProblemKind
from flowkit.tools.agent_update import AgentUpdate
from flowkit.tools.context import RunContext, no_speech_error
from flowkit.tools.function_tool import FunctionTool, ToolSet
from flowkit.tools.invoke import (
    AgentLike,
    ToolOutcome,
    deadline_paused,
    invoke_tool,
    lift_deadline,
)
from flowkit.tools.mcp.server import MCPServer
from flowkit.tools.task import AgentTask, TaskEnded, TaskStarted, answering_call
from flowkit.tools.toolbox import Toolbox

if TYPE_CHECKING:
    from flowkit.graph import Edge

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
    playout: In[Playout] = In(
        feedback=True, required=False,
        doc="the speaker's reports, for tools that wait for their reply to be heard "
        "(ctx.wait_for_playout)",
    )
    updates: In[AgentUpdate] = In(
        required=False,
        doc="changes to the agent from code (AgentUpdate), the same as the LLM node gets",
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
        # The tasks that tools wait for, innermost last.
        self._tasks: list[_TaskRun] = []
        # The calls being answered now: one that completes a task carries its outcome back.
        self._answering: set[_CallSession] = set()
        # The ends of tasks taken off the stack and not sent yet, in the order taken.
        self._ends: list[asyncio.Future[None]] = []
        self._playout = PlayoutWaits()
        self._background = BackgroundCalls()

    @property
    def toolset(self) -> ToolSet:
        """The tools it runs now: the current agent's, then the MCP servers' (once listed)."""
        return self._tools.toolset

    async def run(
        self,
        calls: AsyncIterator[ToolCall],
        playout: AsyncIterator[Playout],
        updates: AsyncIterator[AgentUpdate],
    ) -> None:
        """List the MCP servers' tools, then run the calls (see the class)."""
        # A restarted run starts afresh: the waits of the tools that died with it are gone,
        # and so are the tools that were in the background.
        self._playout = PlayoutWaits()
        self._background = BackgroundCalls()
        watching = self.ctx.create_task(self._read_playout(playout), name="playout")
        updating = self.ctx.create_task(self._read_updates(updates), name="updates")
        try:
            async with self._tools.opened(self.ctx.logger):
                await self._serve(calls)
        finally:
            watching.cancel()
            updating.cancel()

    def link_problems(self, edges: Sequence[Edge]) -> list[Problem]:
        """Refuse agent updates that reach the model that calls it but not it, or the reverse.

        The model (an LLM node, a RealtimeModel) and the router each keep the agent's tools;
        an :class:`~flowkit.tools.AgentUpdate` that only one of them gets leaves the model
        calling tools the router does not run, or the router running tools the model was
        never offered.

        Args:
            edges: The edges into or out of this node.
        """
        everything = self.graph.edges if self.graph is not None else tuple(edges)

        def update_sources(node: Node) -> set[str]:
            return {
                edge.src.qualname for edge in everything
                if edge.dst.node is node and edge.dst.name == "updates"
            }

        mine = update_sources(self)
        problems: list[Problem] = []
        models = {
            id(edge.src.node): edge.src.node for edge in edges
            if edge.dst.node is self and edge.dst.name == "calls" and edge.src.node is not None
        }
        for model in models.values():
            if "updates" not in model.inputs:
                continue
            theirs = update_sources(model)
            if theirs == mine:
                continue
            only_model = ", ".join(sorted(theirs - mine))
            only_router = ", ".join(sorted(mine - theirs))
            where = "; ".join(part for part in (
                f"{only_model} reach{'es' if len(theirs - mine) == 1 else ''} "
                f"{model.name}.updates only" if only_model else "",
                f"{only_router} reach{'es' if len(mine - theirs) == 1 else ''} "
                f"{self.name}.updates only" if only_router else "",
            ) if part)
            problems.append(Problem(
                ProblemKind.INVALID_LINK,
                f"agent updates ({where}): {model.name} and {self.name} would disagree on "
                f"the tools; link each source to both (updates >> [{model.name}.updates, "
                f"{self.name}.updates])",
                (model.name, self.name),
            ))
        return problems

    async def _read_updates(self, updates: AsyncIterator[AgentUpdate]) -> None:
        async for update in updates:
            update.applied(self._tools, None, self.ctx.logger)  # calls from now on

    async def _read_playout(self, playout: AsyncIterator[Playout]) -> None:
        try:
            async for report in playout:
                self._playout.on_playout(report)
        finally:
            self._playout.close()  # no report can settle a wait now

    async def _serve(self, calls: AsyncIterator[ToolCall]) -> None:
        """Start each call as it arrives; finish when the calls end and all have answered."""
        running: set[asyncio.Task[None]] = set()
        async for call in calls:
            task = self.ctx.create_task(self._answer(call), name=f"tool:{call.name}")
            running.add(task)
            task.add_done_callback(running.discard)
        # No call can come to complete a task now: the tools waiting for one never would.
        for run in self._tasks:
            run.waiter.cancel()
        self._tasks.clear()
        # Nor can a reply carry what the tools in the background would report.
        self._background.cancel_all(self.ctx.logger)
        ended = await asyncio.gather(*running, return_exceptions=True)
        for error in ended:
            if isinstance(error, BaseException) and not isinstance(error, asyncio.CancelledError):
                raise error

    async def _answer(self, call: ToolCall) -> None:
        params = self.params
        tool = self.toolset.get(call.name)
        refused = self._background.admit(
            call, getattr(tool, "on_duplicate", "allow"), self.ctx.logger
        )
        if refused is not None:
            self._send(refused)
            return
        session = _CallSession(call, self)
        # The job lets a tool act on the call itself (send_dtmf presses keys on its line).
        context: RunContext[Any] = RunContext(
            call=call, userdata=params.userdata, job=self.ctx.job,  # type: ignore[attr-defined]
            session=session,
        )
        self._answering.add(session)
        try:
            try:
                with answering_call(session):
                    outcome = await invoke_tool(
                        self.toolset, call, context,
                        timeout=params.timeout,  # type: ignore[attr-defined]
                    )
            except BaseException:
                if session.task_run is not None:
                    session.task_run.next.cancel()  # cancelled while it waited: no outcome
                if session.background:
                    self._background.forget(session.call)
                raise
            if session.background:
                # Its call was answered by its first update: this comes when idle.
                self._send(self._background.finished(session.call, outcome))
                return
            if session.task_run is not None:
                # Its call was answered when its first task started; this answers the call
                # that completed its last one.
                session.task_run.next.set_result(outcome)
                return
            if self._tasks and self._tasks[-1].task.done():
                # It completed the innermost task: the waiting tool's next step answers it.
                run = self._tasks.pop()
                await self._end_task(run, call, self._reserve_end())
            else:
                self._send(outcome)
        finally:
            self._answering.discard(session)

    def _send(self, outcome: ToolOutcome) -> None:
        self.results.send(_result_of(outcome))
        self._tools.switch(outcome.handoff, None, self.ctx.logger)

    def _start_task(self, run: _TaskRun) -> None:
        """Answer the call of the tool that runs a task, moving the conversation to it."""
        self._tasks.append(run)
        call, name = run.session.call, type(run.task).__name__
        result = ToolResult(
            turn_id=call.turn_id, call_id=call.call_id, name=call.name,
            output=f"{name} has started: follow its instructions until it is complete.",
        )
        self._send(ToolOutcome(result=result, handoff=TaskStarted(run.task)))

    def _reserve_end(self) -> tuple[list[asyncio.Future[None]], asyncio.Future[None]]:
        """A place in the order in which the ends of tasks are sent: the order they were taken.

        Taken when a task's run leaves the stack, innermost first, so that a task ended
        inside another is answered before the outer one: every node that follows the
        handoffs pops the same agents in the same order.

        Returns:
            The ends taken before, still to be sent, and this one's.
        """
        mine = asyncio.get_running_loop().create_future()
        before = list(self._ends)
        self._ends.append(mine)
        return before, mine

    async def _end_task(
        self,
        run: _TaskRun,
        call: ToolCall,
        place: tuple[list[asyncio.Future[None]], asyncio.Future[None]],
        *,
        made_here: bool = False,
    ) -> None:
        """Answer ``call`` with what the tool waiting for ``run``'s task did next, in order.

        Args:
            run: The task's run, off the stack.
            call: The call to answer: the one that completed the task, or the router's own.
            place: Its place in the order of ends (:meth:`_reserve_end`).
            made_here: ``call`` is the router's own: the result carries it.
        """
        before, mine = place
        try:
            outcome = await self._next_step(run, call)
            if before:
                await asyncio.wait(before)
            if made_here:
                # Its turn is drawn now, not when the task ended: the tool may have taken a
                # while, and the reply must be newer than any the user started meanwhile, or
                # the TTS node and the sink would drop it as stale.
                call = dataclasses.replace(call, turn_id=new_turn_id())
                outcome = dataclasses.replace(outcome, result=dataclasses.replace(
                    outcome.result, turn_id=call.turn_id, call=call
                ))
            self._send(outcome)
        finally:
            mine.set_result(None)
            self._ends.remove(mine)

    def _task_ended(self, run: _TaskRun) -> None:
        """The tool waiting for ``run``'s task goes on: answer for it if no call will.

        A call whose tool completed the task answers for it when its tool returns
        (:meth:`_answer`), unless it has stopped meanwhile or ran a task itself (such a
        call's tool answers through that task's run, not its own call). Otherwise the
        task was completed outside any call, and the router makes one of its own.
        """
        if run not in self._tasks:
            return  # the completing call took it already
        by = run.task.completed_in
        if isinstance(by, _CallSession) and by in self._answering and by.task_run is None:
            return  # that call takes it when its tool returns
        ended = type(run.task).__name__
        if self._tasks[-1] is not run:
            inner = type(self._tasks[-1].task).__name__
            self.ctx.logger.warning(
                "%s was completed outside its tools while %s, which runs inside it, goes on; "
                "the conversation stays with %s: complete the inner task first", ended, inner,
                inner,
            )
            return
        self._tasks.pop()
        waiting = run.session.call
        # The call is the waiting tool's, made again: the model reads its outcome as the
        # outcome of that tool, as it would have if the tool had not run a task. (Its turn
        # is drawn when it is sent; until then no reply waits for it, so the tool's words
        # meanwhile are dropped.)
        call = ToolCall(
            turn_id=0, call_id=f"fk_{secrets.token_hex(8)}", name=waiting.name,
            arguments=waiting.arguments,
        )
        self.ctx.create_task(
            self._end_task(run, call, self._reserve_end(), made_here=True),
            name=f"task-ended:{ended}",
        )

    async def _next_step(self, run: _TaskRun, call: ToolCall) -> ToolOutcome:
        """What ``call`` is answered with once ``run``'s task is complete.

        The waiting tool's outcome, or the start of its next task; the tool's words from
        now on are spoken in ``call``'s reply.
        """
        waiting = run.session.call
        run.session.call = call  # what the tool says from now on is spoken in this reply
        ended = type(run.task).__name__
        try:
            step = await asyncio.shield(run.next)
        except asyncio.CancelledError:
            if not run.next.cancelled():
                raise  # this call itself is being cancelled
            step = ToolOutcome(result=ToolResult(
                turn_id=call.turn_id, call_id=call.call_id, name=call.name, is_error=True,
                output=f"the tool {waiting.name!r} that ran {ended} was stopped before it "
                "finished",
            ))
        if isinstance(step, _TaskRun):
            self._tasks.append(step)
            started = type(step.task).__name__
            error = run.task.exception()
            how = "is complete" if error is None else f"ended ({error})"
            return ToolOutcome(
                result=ToolResult(
                    turn_id=call.turn_id, call_id=call.call_id, name=call.name, output=(
                        f"{ended} {how}. {started} has started: follow its instructions "
                        "until it is complete."
                    ),
                ),
                handoff=TaskEnded(run.task, then=TaskStarted(step.task)),
            )
        result = dataclasses.replace(
            step.result, turn_id=call.turn_id, call_id=call.call_id, name=call.name
        )
        return ToolOutcome(
            result=result, stop_response=step.stop_response,
            handoff=TaskEnded(run.task, then=step.handoff),
        )


class _TaskRun:
    """A task a tool waits for, and what the tool does next once the task is complete."""

    def __init__(self, task: AgentTask[Any], session: _CallSession) -> None:
        self.task = task
        self.session = session
        waiter = asyncio.current_task()
        assert waiter is not None  # run_task is awaited in the tool's task
        self.waiter = waiter
        # The tool's outcome, or the run of the next task it starts.
        self.next: asyncio.Future[ToolOutcome | _TaskRun] = (
            asyncio.get_running_loop().create_future()
        )


class _CallSession:
    """The session a tool's :class:`RunContext` gets: it speaks and runs tasks for the call."""

    def __init__(self, call: ToolCall, router: ToolRouter) -> None:
        self.call = call
        self._router = router
        self.task_run: _TaskRun | None = None
        self.background = False  # answered by its first update (ctx.update)
        # The task answering the call, which runs the tool (a tool in the background is
        # cancelled through it).
        task = asyncio.current_task()
        assert task is not None  # made in the call's own task (ToolRouter._answer)
        self.task: asyncio.Task[Any] = task

    async def say(self, text: str) -> None:
        """Send ``text`` to be spoken in the call's reply; return without waiting for it."""
        call = self.call
        if self.background:
            raise RuntimeError(
                f"tool {call.name!r} called ctx.say() after ctx.update(): its call is "
                "answered and its reply has moved on, so the words have nowhere to go; "
                "report with ctx.update() instead, the model says what it makes of it"
            )
        if not self._router.ctx.output_linked("speech"):
            raise no_speech_error(call.name)
        if not text.strip():
            raise ValueError(
                f"tool {call.name!r} called ctx.say() with nothing to say ({text!r}); "
                "give the words to speak"
            )
        self._router.speech.send(
            ToolSpeech(turn_id=call.turn_id, call_id=call.call_id, name=call.name, text=text)
        )

    def disallow_interruptions(self) -> None:
        """Ask the LLM node to protect the call's reply from barge-in until it ends."""
        call = self.call
        if not self._router.ctx.output_linked("speech"):
            raise RuntimeError(
                f"tool {call.name!r} called ctx.disallow_interruptions() but ToolRouter "
                f"{self._router.name!r} has its speech output unlinked, so the request cannot "
                "reach the reply; link router.speech >> llm.tool_speech"
            )
        self._router.speech.send(ToolSpeech(
            turn_id=call.turn_id, call_id=call.call_id, name=call.name, text="",
            allow_interruptions=False,
        ))

    async def wait_for_playout(self) -> None:
        """Wait until the speaker has played the call's reply up to now (see the module)."""
        call, router = self.call, self._router
        missing = [
            link for link, linked in (
                ("router.speech >> llm.tool_speech", router.ctx.output_linked("speech")),
                ("speaker.playout >> router.playout", router.ctx.input_linked("playout")),
            ) if not linked
        ]
        if missing:
            raise RuntimeError(
                f"tool {call.name!r} called ctx.wait_for_playout() but ToolRouter "
                f"{router.name!r} cannot follow the reply to the speaker; link "
                f"{' and '.join(missing)}"
            )
        mark, played = router._playout.new_mark(call.turn_id)
        if not played.done():
            router.speech.send(ToolSpeech(
                turn_id=call.turn_id, call_id=call.call_id, name=call.name, text="", mark=mark,
            ))
        await played

    async def update(self, message: str) -> None:
        """Answer the call with ``message`` and go on in the background, or report later.

        See :mod:`flowkit.nodes.tool_background`.
        """
        call, router = self.call, self._router
        if not message.strip():
            raise ValueError(
                f"tool {call.name!r} called ctx.update() with nothing to report "
                f"({message!r}); give the model something to read"
            )
        if self.task_run is not None:
            raise RuntimeError(
                f"tool {call.name!r} called ctx.update() after ctx.run_task(): its call was "
                "answered when the task started, and what it returns answers the call that "
                "completed the task; report from the task's tools instead"
            )
        if self.background:
            router._send(router._background.update(call, message))
            return
        self.background = True
        lift_deadline()  # nothing waits for the tool now: its length delays no one
        router._send(router._background.started(call, self.task, message))

    def cancel_background(self, name: str) -> list[ToolCall]:
        """Stop the calls of tool ``name`` in the background (a ``cancellable`` one's)."""
        router = self._router
        tool = router.toolset.get(name)
        return router._background.cancel(
            name, bool(getattr(tool, "cancellable", False)), router.ctx.logger
        )

    async def run_task(self, task: AgentTask[Any]) -> Any:
        """Move the conversation to ``task`` and wait for its result (see the module)."""
        if self.background:
            raise RuntimeError(
                f"tool {self.call.name!r} called ctx.run_task() after ctx.update(): its "
                "call is answered and the conversation has moved on without it; run the "
                "task before going to the background, or from another tool"
            )
        if not isinstance(task, AgentTask):
            raise TypeError(
                f"tool {self.call.name!r} called ctx.run_task() with {task!r}, which is not an "
                "AgentTask; subclass flowkit.AgentTask"
            )
        if task.started:
            raise RuntimeError(
                f"tool {self.call.name!r} ran {task!r} again; a task runs once: make a new one"
            )
        if task.done():
            raise RuntimeError(
                f"tool {self.call.name!r} ran {task!r}, which was completed before it ran; "
                "make a new task for each run, and complete it once it runs (from its tools, "
                "or from a timer or an event started after run_task)"
            )
        task.started = True
        run, before = _TaskRun(task, self), self.task_run
        self.task_run = run
        if before is None:
            self._router._start_task(run)  # the tool's own call is answered now
        else:
            before.next.set_result(run)  # the call that completed the task before answers
        with deadline_paused():  # the user is talking to the task: the tool is not slow
            try:
                return await task.result()
            finally:
                if task.done():  # not cancelled while it waited
                    self._router._task_ended(run)


def _result_of(outcome: ToolOutcome) -> ToolResult:
    return dataclasses.replace(
        outcome.result, stop_response=outcome.stop_response, handoff=outcome.handoff
    )
