"""Task groups: several tasks in a row, with a way back, as LiveKit Agents' ``TaskGroup``.

A form over the phone asks for one thing after another (a name, an email, a phone number),
and the caller changes their mind about an earlier answer halfway. A :class:`TaskGroup` runs
its tasks in the order they were added, each with :meth:`RunContext.run_task`, and collects
their results by id::

    group = (
        TaskGroup()
        .add(GetEmailTask, id="email", description="the user's email address")
        .add(GetPhoneNumberTask, id="phone", description="the user's phone number")
    )
    results = await ctx.run_task(group)  # a TaskGroupResult
    email = results.task_results["email"]

While a task runs, the LLM also has a tool, ``revisit_tasks``, that goes back to tasks of
this group that have ended ("actually, my email is different"; a task left for earlier ones
by this tool has not ended, and is not offered until it has): the running task ends, the
tasks asked for run again (a new instance each, from their factory), then the interrupted
task starts afresh and the group goes on from there. A task run again replaces its result.

The conversation moves the same way as for single tasks: the call that completes one task
is answered with the next task's start, and the call that completes the last one with what
the tool that ran the group returns. The history stays one conversation, so unlike LiveKit
there is no summary of the group's turns to merge back (``summarize_chat_ctx``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Self

import pydantic

from flowkit.tools.errors import ToolError
from flowkit.tools.function_tool import FunctionTool, function_tool
from flowkit.tools.task import AgentTask

if TYPE_CHECKING:
    from flowkit.tools.context import RunContext

__all__ = ["TaskCompletedEvent", "TaskGroup", "TaskGroupResult"]

REVISIT_TOOL = "revisit_tasks"


@dataclass(frozen=True, slots=True)
class TaskGroupResult:
    """What a :class:`TaskGroup` gives the tool that ran it.

    Attributes:
        task_results: Each task's result by its id, in the order the group added them; with
            ``return_exceptions=True``, the exception a task ended with in place of a result.
    """

    task_results: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TaskCompletedEvent:
    """One of a group's tasks completed (for ``TaskGroup(on_task_completed=...)``).

    Attributes:
        task: The task that completed.
        task_id: Its id in the group.
        result: What it completed with.
    """

    task: AgentTask[Any]
    task_id: str
    result: Any


@dataclass(frozen=True, slots=True)
class _Entry:
    factory: Callable[[], AgentTask[Any]]
    id: str
    description: str


class _RevisitError(ToolError):
    """How ``revisit_tasks`` ends the running task: the group runs ``task_ids`` again first."""

    def __init__(self, task_ids: list[str]) -> None:
        super().__init__(f"going back to {', '.join(task_ids)}")
        self.task_ids = task_ids


class TaskGroup:
    """Tasks run one after another by one tool, which gets all their results (see the module).

    Args:
        return_exceptions: When a task ends with an exception (``task.complete(error)``),
            keep the exception as that task's result and go on with the next task; by
            default ``run_task`` raises it in the tool and the rest of the group does not run.
        on_task_completed: Awaited after each task completes, with a
            :class:`TaskCompletedEvent` (to save each answer as it comes, say).
    """

    def __init__(
        self,
        *,
        return_exceptions: bool = False,
        on_task_completed: Callable[[TaskCompletedEvent], Awaitable[None]] | None = None,
    ) -> None:
        self._return_exceptions = return_exceptions
        self._on_task_completed = on_task_completed
        self._entries: dict[str, _Entry] = {}
        self._ran = False

    def add(
        self, task_factory: Callable[[], AgentTask[Any]], *, id: str, description: str
    ) -> Self:
        """Add a task to run after those added before.

        Args:
            task_factory: Makes the task; called each time it runs (a task runs once, and a
                revisited one runs again). A task class with no required arguments will do.
            id: The key of its result in :attr:`TaskGroupResult.task_results`, and how the
                LLM names it to go back to it.
            description: What the task asks for, so the LLM knows when the user wants to go
                back to it ("the user's email address").

        Returns:
            The group, to chain ``add`` calls.

        Raises:
            ValueError: ``id`` is taken or blank, or ``description`` is blank.
        """
        if not id.strip():
            raise ValueError("a task's id in a TaskGroup must not be blank; give id='email'")
        if id in self._entries:
            raise ValueError(
                f"the TaskGroup has a task with id {id!r} already; give each task its own id"
            )
        if not description.strip():
            raise ValueError(
                f"task {id!r} has a blank description; the LLM reads it to know when the "
                "user wants to go back to the task, e.g. description=\"the user's email\""
            )
        self._entries[id] = _Entry(task_factory, id, description)
        return self

    @property
    def task_ids(self) -> list[str]:
        """The ids of the tasks, in the order they run."""
        return list(self._entries)

    async def run(self, ctx: RunContext[Any]) -> TaskGroupResult:
        """Run the tasks in the tool whose context is ``ctx``; ``ctx.run_task(group)`` calls it.

        Args:
            ctx: The context of the tool that runs the group.

        Returns:
            Every task's result, by id.

        Raises:
            ValueError: The group has no tasks.
            RuntimeError: The group ran already (make a new one), or a factory did not make
                an :class:`AgentTask`.
            BaseException: The exception a task ended with, unless ``return_exceptions``.
        """
        if not self._entries:
            raise ValueError("the TaskGroup has no tasks; add them with group.add(...)")
        if self._ran:
            raise RuntimeError("this TaskGroup ran already; a group runs once: make a new one")
        self._ran = True
        pending, visited = list(self._entries), set[str]()
        results: dict[str, Any] = {}
        while pending:
            task_id = pending.pop(0)
            task = self._make(task_id)
            revisit = self._revisit_tool(task, visited - {task_id})
            if revisit is not None:
                task.add_tool(revisit)
            try:
                result = await ctx.run_task(task)
            except _RevisitError as back:
                # Not visited: a step left for earlier ones is not one to go back to.
                pending[:0] = [*back.task_ids, task_id]
                continue
            except Exception as error:
                # Only what the task ended with is a result; an error of run_task itself
                # (the task never ran) is the tool's to see.
                if not (self._return_exceptions and task.done()):
                    raise
                visited.add(task_id)
                results[task_id] = error
                continue
            visited.add(task_id)
            results[task_id] = result
            if self._on_task_completed is not None:
                await self._on_task_completed(TaskCompletedEvent(task, task_id, result))
        ordered = {task_id: results[task_id] for task_id in self._entries if task_id in results}
        return TaskGroupResult(ordered)

    def _make(self, task_id: str) -> AgentTask[Any]:
        task = self._entries[task_id].factory()
        if not isinstance(task, AgentTask):
            raise RuntimeError(
                f"the TaskGroup's factory for {task_id!r} made {task!r}, not an AgentTask; "
                "add a callable that returns a new task, such as the task's class"
            )
        return task

    def _revisit_tool(self, task: AgentTask[Any], others: set[str]) -> FunctionTool | None:
        """The tool that ends ``task`` to go back to ``others``, or none if there are none."""
        if not others:
            return None
        choices = {e.id: e.description for e in self._entries.values() if e.id in others}
        description = (
            "Go back to earlier steps when the user wants to change an answer they gave "
            "there. Give the ids of those steps, in the order the user asked for them; the "
            "current step starts again after them. The steps, by id: "
            f"{json.dumps(choices)}"
        )
        enum: list[pydantic.JsonValue] = [*sorted(choices)]
        ids = pydantic.Field(
            min_length=1,
            description="The ids of the steps to go back to",
            json_schema_extra={"items": {"type": "string", "enum": enum}},
        )

        async def revisit_tasks(task_ids: list[str]) -> None:
            unknown = [i for i in task_ids if i not in choices]  # none: `ids` has min_length
            if unknown:
                raise ToolError(
                    f"cannot go back to {unknown}: the steps to go back to are "
                    f"{sorted(choices)}"
                )
            if not task.done():
                task.complete(_RevisitError(list(dict.fromkeys(task_ids))))

        # The annotation as an object: the module's string annotations cannot see ``ids``.
        revisit_tasks.__annotations__["task_ids"] = Annotated[list[str], ids]
        return function_tool(name=REVISIT_TOOL, description=description)(revisit_tasks)
