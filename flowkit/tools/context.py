"""What a tool sees while it runs: :class:`RunContext`.

A tool asks for it by annotating a parameter with ``RunContext`` (or ``RunContext[T]`` to
type the userdata); that parameter is filled by flowkit and never shown to the LLM::

    @function_tool
    async def book(ctx: RunContext[Booking], date: str) -> str:
        ctx.userdata.date = date
        await ctx.say("One moment while I book that.")
        ...

The node that runs tools builds one context per call. A ``session`` (anything with an async
``say(text)``) lets a tool speak: the built-in :class:`~flowkit.nodes.tools.ToolRouter`
passes one whose words are spoken, in the reply that made the call while the tool goes on,
when its ``speech`` output is linked to the LLM node's ``tool_speech`` (or a realtime
model's, whose text a TTS node speaks); unlinked, its ``say`` raises a clear error, as
:meth:`RunContext.say` does for a context without a session (tools run by hand or in
tests). With the speaker's reports linked to the router's ``playout``, a tool can wait until
its reply's words have been heard (:meth:`RunContext.wait_for_playout`). The router's
session also runs tasks (:meth:`RunContext.run_task`, see
:mod:`flowkit.tools.task`). The router passes the ``job`` the graph runs for, so a tool can
act on the call itself through the job's room I/O (:data:`flowkit.tools.dtmf.send_dtmf`
presses keys on the phone line); a tool run outside a job gets ``job=None``. A long tool
goes on in the background with :meth:`RunContext.update` (the router's session answers its
call with the first update; :mod:`flowkit.nodes.tool_background`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, overload, runtime_checkable

# typing_extensions (a pydantic dependency) for the PEP 696 default: a bare ``RunContext``
# annotation means ``RunContext[Any]`` and passes mypy --strict, as tool authors expect.
from typing_extensions import TypeVar

from flowkit.messages import ToolCall

if TYPE_CHECKING:
    from flowkit.job import JobContext
    from flowkit.tools.task import AgentTask
    from flowkit.tools.task_group import TaskGroup, TaskGroupResult

__all__ = [
    "BackgroundControl", "BackgroundSession", "InterruptionControl", "PlayoutWaiter",
    "RunContext", "TaskSession", "ToolSession", "no_speech_error",
]

UserdataT = TypeVar("UserdataT", default=Any)
ResultT = TypeVar("ResultT")


@runtime_checkable
class ToolSession(Protocol):
    """The part of a running agent that a tool may use, when whoever runs the tool has one.

    Kept deliberately small: more hooks are added here when a node can honour them.
    """

    async def say(self, text: str) -> None:
        """Speak ``text`` to the user now, while the tool keeps running.

        Args:
            text: What to say, as plain text for TTS.
        """
        ...


@runtime_checkable
class InterruptionControl(Protocol):
    """A :class:`ToolSession` that can protect the reply waiting for the tool from barge-in."""

    async def say(self, text: str) -> None:
        """Speak ``text`` to the user now, while the tool keeps running."""
        ...

    def disallow_interruptions(self) -> None:
        """Let nobody interrupt the reply that made the call, from now until it ends."""
        ...


@runtime_checkable
class PlayoutWaiter(Protocol):
    """A :class:`ToolSession` that can wait until the reply that made the call is heard."""

    async def say(self, text: str) -> None:
        """Speak ``text`` to the user now, while the tool keeps running."""
        ...

    async def wait_for_playout(self) -> None:
        """Return once the speaker has played what the reply said so far."""
        ...


@runtime_checkable
class TaskSession(Protocol):
    """A :class:`ToolSession` that also runs tasks for the tool (:mod:`flowkit.tools.task`)."""

    async def say(self, text: str) -> None:
        """Speak ``text`` to the user now, while the tool keeps running."""
        ...

    async def run_task(self, task: AgentTask[ResultT]) -> ResultT:
        """Hand the conversation to ``task`` until it completes; its result.

        Args:
            task: The task, not run before.
        """
        ...


@runtime_checkable
class BackgroundSession(Protocol):
    """A :class:`ToolSession` that lets a tool go on in the background (``ctx.update``)."""

    async def say(self, text: str) -> None:
        """Speak ``text`` to the user now, while the tool keeps running."""
        ...

    async def update(self, message: str) -> None:
        """Report progress: the first answers the call, the next ones come when idle.

        Args:
            message: What the tool has to report, for the model to read.
        """
        ...


@runtime_checkable
class BackgroundControl(Protocol):
    """A :class:`ToolSession` that can stop other tools' calls in the background."""

    async def say(self, text: str) -> None:
        """Speak ``text`` to the user now, while the tool keeps running."""
        ...

    def cancel_background(self, name: str) -> list[ToolCall]:
        """Stop the calls of tool ``name`` in the background; the calls stopped.

        Args:
            name: The tool's name.
        """
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class RunContext(Generic[UserdataT]):
    """The context of one tool call.

    Args:
        call: The call being answered.
        userdata: The object the session shares between all tools and turns (your own
            state: a booking, a customer record, ...). It is shared, not copied, so tools
            may change it.
        session: Hooks into the running agent, or ``None`` when there is none (tests,
            tools run by hand).
        job: The job the graph runs for (its room I/O in ``job.io``), or ``None`` when the
            tool runs outside one (tests, tools run by hand, a graph run without a job).

    Attributes:
        call: The call being answered.
        userdata: The session's shared object.
        session: Hooks into the running agent, or ``None``.
        job: The job the graph runs for, or ``None``.
    """

    call: ToolCall
    userdata: UserdataT
    session: ToolSession | None = None
    job: JobContext | None = None

    @property
    def turn_id(self) -> int:
        """The conversation epoch of the call (from :attr:`call`)."""
        return self.call.turn_id

    async def say(self, text: str) -> None:
        """Speak to the user while the tool runs, e.g. "one moment while I look that up".

        It returns once the words are on their way, not when they have been heard, so the
        tool goes on with its work meanwhile. In a graph, the words are spoken in the reply
        that called the tool, if that reply is still waiting for the tool's result; words
        said after the user cut the reply off, or after its round gave up on the call, are
        dropped.

        Args:
            text: What to say, as plain text for TTS.

        Raises:
            RuntimeError: Nothing speaks the words: a ToolRouter whose ``speech`` output is
                not linked (link it to the LLM node's ``tool_speech``, or the realtime
                model's), or a context without a session, for a tool run outside an agent
                (pass ``session=`` when building the context).
            ValueError: ``text`` is blank (from the ToolRouter's session).
        """
        if self.session is None:
            raise no_speech_error(self.call.name)
        await self.session.say(text)

    def disallow_interruptions(self) -> None:
        """Let nobody interrupt the reply that made the call, from now until it ends.

        For work that must not be cut off halfway: a payment, a booking, a transfer. What
        is playing and what the reply says after the tool returns are no longer stopped by
        the user talking over them (a forced interrupt, such as the end of the call, still
        stops them), and turns the user finishes meanwhile are answered, in order, once the
        reply has played, as for ``ReplyRequest(allow_interruptions=False)``. The tool's
        own call is no longer cancelled by a new turn either. It does nothing once the
        reply has moved on (cut off already, or its round gave up on the call).

        Raises:
            RuntimeError: Nothing carries the request to the reply: a ToolRouter whose
                ``speech`` output is not linked (link it to the LLM node's ``tool_speech``),
                or a context without a session that can (a tool run outside an agent).
        """
        if not isinstance(self.session, InterruptionControl):
            raise RuntimeError(
                f"tool {self.call.name!r} called ctx.disallow_interruptions() but its "
                "RunContext has no session that reaches the reply; in a graph the ToolRouter "
                "runs the tool (outside one, build the context with a session that has "
                "disallow_interruptions())"
            )
        self.session.disallow_interruptions()

    async def wait_for_playout(self) -> None:
        """Wait until the user has heard what the reply that made the call said so far.

        That is the model's words before the call and what tools said since (``say``),
        as LiveKit Agents' ``RunContext.wait_for_playout()`` waits for the speech before
        the tool. For what must follow the words, not run over them: hang up after the
        goodbye, transfer after "I'll put you through". It returns at once if that reply
        is over already, and when it is cut off or replaced by a newer one meanwhile
        (whatever played of it is all that will; a reply cut before any of its audio
        reached the speaker is over for the wait when the flush naming it reaches the
        speaker, which reports it interrupted, or when the speaker reports a newer one).
        Time spent waiting counts toward the tool's timeout.

        Raises:
            RuntimeError: Nothing follows the reply to the speaker: a ToolRouter whose
                ``speech`` output or ``playout`` input is not linked (link
                ``router.speech >> llm.tool_speech`` and ``speaker.playout >>
                router.playout``), or a context without a session that can (a tool run
                outside an agent).
        """
        if not isinstance(self.session, PlayoutWaiter):
            raise RuntimeError(
                f"tool {self.call.name!r} called ctx.wait_for_playout() but its RunContext "
                "has no session that follows the reply to the speaker; in a graph the "
                "ToolRouter runs the tool (outside one, build the context with a session "
                "that has wait_for_playout())"
            )
        await self.session.wait_for_playout()

    async def update(self, message: str) -> None:
        """Report progress and let the conversation go on while the tool works.

        For work that takes more than a few seconds (a booking, a search, a document): the
        first update answers the call at once, with ``message`` as its result and a note that
        the tool goes on in the background, so the model can tell the user ("I'm searching
        for flights now, this takes a minute") and the conversation continues; the tool's
        timeout no longer applies. Each later update, and what the tool finally returns (or
        raises), comes to the model as the result of a call of the same tool made again,
        once the agent is idle: after the reply under way has played, several of them in
        one reply; a user turn that comes first takes them into its history instead, and
        its reply answers both (as LiveKit Agents' async tools). The tool's words
        (:meth:`say`) have no reply to go into once it is in the background: use
        ``update``. A tool still in the background when the conversation ends is
        cancelled.

        Args:
            message: What the tool has to report, for the model to read (not spoken as it
                is: the model says what it makes of it).

        Raises:
            RuntimeError: The context has no session that can take a tool to the background
                (a tool run outside a graph's ToolRouter), or the tool runs a task.
            ValueError: ``message`` is blank (from the ToolRouter's session).
        """
        if not isinstance(self.session, BackgroundSession):
            raise RuntimeError(
                f"tool {self.call.name!r} called ctx.update() but its RunContext has no "
                "session that can take it to the background; in a graph the ToolRouter runs "
                "the tool (outside one, build the context with a session that has update())"
            )
        await self.session.update(message)

    @overload
    async def run_task(self, task: AgentTask[ResultT]) -> ResultT: ...
    @overload
    async def run_task(self, task: TaskGroup) -> TaskGroupResult: ...
    async def run_task(self, task: AgentTask[Any] | TaskGroup) -> Any:
        """Let ``task`` talk with the user until it completes, and return its result.

        The conversation moves to the task (its instructions and tools) at once; the call
        that ran it is answered then, and the tool waits here, its timeout stopped. When
        one of the task's tools calls ``task.complete(result)``, the conversation comes
        back to the agent that was talking and this returns ``result``; what the tool then
        returns answers that completing call. A task completed from anywhere else (a
        timer, an event) comes back the same way, in a call the ToolRouter makes. See
        :mod:`flowkit.tools.task`.

        A :class:`~flowkit.tools.task_group.TaskGroup` runs its tasks one after another here
        and returns all their results (see :mod:`flowkit.tools.task_group`).

        Args:
            task: The task, or task group, to run; each runs once.

        Returns:
            What the task was completed with; a group's ``TaskGroupResult``.

        Raises:
            RuntimeError: The context has no session that runs tasks (a tool run outside a
                graph's ToolRouter), or the task ran already.
            BaseException: The exception the task was completed with.
        """
        if not isinstance(self.session, TaskSession):
            raise RuntimeError(
                f"tool {self.call.name!r} called ctx.run_task() but its RunContext has no "
                "session that runs tasks; tasks run in a graph, where the ToolRouter runs the "
                "tool (outside one, build the context with a session that has run_task())"
            )
        # Here, not at the top: task_group imports the tool machinery, which imports this module.
        from flowkit.tools.task_group import TaskGroup

        if isinstance(task, TaskGroup):
            return await task.run(self)
        return await self.session.run_task(task)


def no_speech_error(tool: str) -> RuntimeError:
    """The error of ``ctx.say()`` where nothing takes the words to be spoken.

    Args:
        tool: The name of the tool that called it.
    """
    return RuntimeError(
        f"tool {tool!r} called ctx.say() but nothing speaks its words; in a graph, link the "
        "ToolRouter's speech output to the LLM node's tool_speech input "
        "(router.speech >> llm.tool_speech, or model.tool_speech for a RealtimeModel); "
        "outside one, build the context with session=..."
    )
