"""Tasks: a sub-conversation a tool runs and waits for, as LiveKit Agents' ``AgentTask``.

A task is an agent (instructions and tools) with a result. A tool runs it with
``await ctx.run_task(task)``: the conversation moves to the task, which talks with the user
for as many turns as it needs until one of its tools calls :meth:`AgentTask.complete`; then
the conversation returns to the agent that was talking before, and ``run_task`` returns the
result to the tool, which goes on::

    class GetEmail(AgentTask[str]):
        instructions = "Ask for the user's email address and confirm it back to them."

        @function_tool
        async def email_confirmed(self, email: str) -> None:
            '''Call once the user has confirmed their email address.'''
            self.complete(email)

    @function_tool
    async def book(ctx: RunContext, day: str) -> str:
        '''Book an appointment.'''
        email = await ctx.run_task(GetEmail())
        return f"booked for {day}; the confirmation goes to {email}"

How it travels through a graph (the :class:`~flowkit.nodes.tools.ToolRouter` does the
bookkeeping, the LLM node follows the results it gets):

1. ``run_task`` answers the tool's call at once, with a result that carries
   :class:`TaskStarted`: the LLM node keeps the current instructions and function tools
   aside and switches to the task's, and its reply goes on under them, so the task speaks
   first. The history stays one conversation: the task sees what was said before it.
2. The tool waits, its timeout stopped: the user may take minutes.
3. The call of the task's tool that completes it is answered with what the waiting tool
   returns once it goes on (its timeout started afresh), and carries :class:`TaskEnded`:
   the LLM node and the router switch back to the instructions and tools kept aside, and
   the reply goes on there. A tool that returns an agent after its task hands over to it.

A tool may run several tasks, one after another: the call that completes one is answered
with the next one's start (a :class:`TaskEnded` whose ``then`` is a :class:`TaskStarted`).
Tasks nest: a task's tool may run another. A task's result, or the exception given to
:meth:`AgentTask.complete`, is what ``run_task`` returns or raises.

A task may also be completed from outside its tools: a timer, a room event, a key pressed,
the tool that runs it giving up. No call is then being answered that could carry the
outcome back, so the router makes one: once the waiting tool returns, it sends the LLM a
result for a call it made itself (:attr:`~flowkit.messages.ToolResult.call`, the waiting
tool's name and arguments), carrying :class:`TaskEnded`; the LLM node adds the call and its
result to the history and replies from there, as after a call of its own (it cuts a reply
under way, as ``generate_reply`` does); a RealtimeModel gives the server the call and its
output as items and asks for a response after the one under way. Words the tool says
between the task's end and its return have no reply to go into then, and are dropped. An
outer task completed this way while a task inside it still runs is left running, with a
warning: complete the inner one first.

A :class:`~flowkit.tools.task_group.TaskGroup` runs several in a row, with a way back to
earlier ones; ``own_history=True`` shows the LLM only the task's part of the conversation;
:mod:`flowkit.tasks` has prebuilt tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from flowkit.tools.function_tool import FunctionTool, tools_of

__all__ = ["AgentTask", "TaskEnded", "TaskStarted", "answering_call"]

ResultT = TypeVar("ResultT")

# What stands for the tool call being answered in this context (set by the ToolRouter around
# each tool it runs), so that complete() can say where it was called: inside a call, whose
# answer carries the outcome back, or outside any.
_answering: contextvars.ContextVar[object | None] = contextvars.ContextVar(
    "flowkit_answering_call", default=None
)


@contextlib.contextmanager
def answering_call(marker: object) -> Iterator[None]:
    """Mark the code inside the block as answering a tool call that ``marker`` stands for.

    A task completed inside records it (:attr:`AgentTask.completed_in`); the ToolRouter uses
    it to tell a task completed by a call it is answering from one completed elsewhere.
    Tasks and threads started inside inherit the mark (a context variable).

    Args:
        marker: Any object that stands for the call (the router's session of it).
    """
    token = _answering.set(marker)
    try:
        yield
    finally:
        _answering.reset(token)


class AgentTask(Generic[ResultT]):
    """An agent that talks with the user until it has a result (see the module).

    Subclass it: give ``instructions`` (a class attribute, or the argument) and method tools
    (``@function_tool``) that call :meth:`complete`. A task runs once.

    Args:
        instructions: The task's system instructions; the class attribute when omitted.
        tools: Function tools offered besides the task's method tools.
        own_history: Show the LLM only the task's part of the conversation while it runs
            (from the tool call that started it on), as a task with a context of its own
            in LiveKit Agents; the class attribute when omitted (``False``: the task sees
            the whole conversation). Either way the agent's history keeps every turn, so
            what was said during the task is there once it ends.

    Raises:
        ValueError: The task has no instructions.

    Attributes:
        instructions: The task's system instructions.
        own_history: Whether the LLM sees only the task's part of the conversation.
        started: Whether a tool has run the task (set by the ToolRouter).
        completed_in: What stood for the tool call being answered where :meth:`complete`
            was called (see :func:`answering_call`); ``None`` when it was called outside
            any, or not yet.
    """

    instructions: str = ""
    own_history: bool = False

    def __init__(
        self,
        instructions: str | None = None,
        *,
        tools: Sequence[FunctionTool] = (),
        own_history: bool | None = None,
    ) -> None:
        if instructions is not None:
            self.instructions = instructions
        if own_history is not None:
            self.own_history = own_history
        if not self.instructions.strip():
            raise ValueError(
                f"{type(self).__name__} has no instructions: a task is an agent the LLM plays "
                "while it runs; set the class attribute instructions = '...' or pass "
                "instructions=..."
            )
        self._extra_tools = tuple(tools)
        self._finished = asyncio.Event()
        self._outcome: tuple[ResultT | None, BaseException | None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop result() waits on
        self.started = False
        self.completed_in: object | None = None

    @property
    def tools(self) -> list[FunctionTool]:
        """The tools the LLM may call while the task runs: its method tools, then the others."""
        return [*tools_of(self), *self._extra_tools]

    def add_tool(self, tool: FunctionTool) -> None:
        """Offer one more tool while the task runs (a TaskGroup adds its way back).

        Args:
            tool: The tool.

        Raises:
            RuntimeError: The task has started: the LLM got its tools then.
        """
        if self.started:
            raise RuntimeError(
                f"{type(self).__name__} has started, so the LLM has its tools already; add "
                "tools before running the task"
            )
        self._extra_tools = (*self._extra_tools, tool)

    def complete(self, result: ResultT | BaseException) -> None:
        """Finish the task: ``run_task`` returns ``result`` (or raises it, an exception).

        Called from one of the task's tools, that call's result carries the outcome of the
        tool that ran the task back to the LLM. Called from anywhere else (a timer, an
        event handler, another thread), the ToolRouter sends it in a result of its own
        (see the module).

        Raises:
            RuntimeError: The task was completed already.
        """
        if self._outcome is not None:
            raise RuntimeError(
                f"{type(self).__name__} was completed already; complete() gives a task its "
                "one result"
            )
        if isinstance(result, BaseException):
            self._outcome = (None, result)
        else:
            self._outcome = (result, None)
        self.completed_in = _answering.get()
        loop = self._loop
        if loop is not None and not _runs(loop):
            loop.call_soon_threadsafe(self._finished.set)  # an asyncio.Event is not thread-safe
        else:
            self._finished.set()

    def done(self) -> bool:
        """Whether :meth:`complete` was called."""
        return self._outcome is not None

    def exception(self) -> BaseException | None:
        """The exception the task was completed with; ``None`` for a result or no outcome yet."""
        return self._outcome[1] if self._outcome is not None else None

    async def result(self) -> ResultT:
        """Wait for :meth:`complete`; its result, or its exception raised.

        Raises:
            BaseException: The exception the task was completed with.
        """
        self._loop = asyncio.get_running_loop()
        await self._finished.wait()
        assert self._outcome is not None  # set with the event
        value, error = self._outcome
        if error is not None:
            raise error
        return value  # type: ignore[return-value]  # complete() was given a ResultT

    def __repr__(self) -> str:
        state = "done" if self.done() else "running" if self.started else "not started"
        return f"<{type(self).__name__} {state}>"


def _runs(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether this thread is running ``loop`` now."""
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


@dataclass(frozen=True, slots=True)
class TaskStarted:
    """A tool result's handoff: a task begins; keep the current agent aside for its end.

    Attributes:
        task: The task the conversation moves to.
    """

    task: AgentTask[Any]


@dataclass(frozen=True, slots=True)
class TaskEnded:
    """A tool result's handoff: a task ended; go back to the agent kept aside when it began.

    Attributes:
        task: The task that ended.
        then: What the tool that ran the task did next, if it moved the conversation: the
            agent it handed over to, or the :class:`TaskStarted` of its next task.
    """

    task: AgentTask[Any]
    then: Any = None
