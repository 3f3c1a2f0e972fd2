"""TaskGroup on its own, with a session that plays the LLM's calls (the graph's side is in
tests/nodes/test_task_group_graph.py)."""

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from flowkit.messages import ToolCall
from flowkit.tools import (
    AgentTask,
    RunContext,
    TaskCompletedEvent,
    TaskGroup,
    TaskGroupResult,
    ToolError,
    function_tool,
    invoke_tool,
)
from flowkit.tools.task_group import REVISIT_TOOL


class Ask(AgentTask[str]):
    """A task that completes with what the user answered."""

    instructions = "Ask."

    @function_tool
    async def answered(self, value: str) -> None:
        """The user answered."""
        self.complete(value)

    @function_tool
    async def declined(self) -> None:
        """The user would not answer."""
        self.complete(ToolError("declined"))


class GetName(Ask):
    instructions = "Ask for the name."


class GetEmail(Ask):
    instructions = "Ask for the email."


class GetPhone(Ask):
    instructions = "Ask for the phone."


Step = Callable[[AgentTask[Any]], Awaitable[None]]


def call(name: str, **arguments: Any) -> Step:
    """A step of the LLM's script: call one of the running task's tools."""

    async def step(task: AgentTask[Any]) -> None:
        request = ToolCall(turn_id=1, call_id="c", name=name, arguments=json.dumps(arguments))
        outcome = await invoke_tool(
            task.tools, request, RunContext(call=request, userdata=None), timeout=None
        )
        task_outputs.append((type(task).__name__, name, outcome.result.output))

    return step


task_outputs: list[tuple[str, str, str]] = []


class ScriptedSession:
    """Runs each task by playing the next step of the script against its tools."""

    def __init__(self, *steps: Step) -> None:
        self.steps = list(steps)
        self.ran: list[AgentTask[Any]] = []
        self.tools_offered: list[list[str]] = []

    async def say(self, text: str) -> None:
        raise AssertionError("not spoken in these tests")

    async def run_task(self, task: AgentTask[Any]) -> Any:
        task.started = True
        self.ran.append(task)
        self.tools_offered.append([t.name for t in task.tools])
        while not task.done():
            await self.steps.pop(0)(task)
        return await task.result()


def context(session: ScriptedSession) -> RunContext[None]:
    request = ToolCall(turn_id=1, call_id="c0", name="sign_up", arguments="{}")
    return RunContext(call=request, userdata=None, session=session)


def three_steps(**options: Any) -> TaskGroup:
    return (
        TaskGroup(**options)
        .add(GetName, id="name", description="the user's name")
        .add(GetEmail, id="email", description="the user's email address")
        .add(GetPhone, id="phone", description="the user's phone number")
    )


async def test_a_group_runs_its_tasks_in_order_and_returns_their_results_by_id() -> None:
    session = ScriptedSession(
        call("answered", value="Ana"), call("answered", value="ana@example.com"),
        call("answered", value="555 0100"),
    )
    result = await context(session).run_task(three_steps())
    assert isinstance(result, TaskGroupResult)
    assert result.task_results == {"name": "Ana", "email": "ana@example.com",
                                   "phone": "555 0100"}
    assert [type(t).__name__ for t in session.ran] == ["GetName", "GetEmail", "GetPhone"]
    # The first task has nothing to go back to; the later ones may go back to those before.
    assert session.tools_offered == [
        ["answered", "declined"],
        ["answered", "declined", REVISIT_TOOL],
        ["answered", "declined", REVISIT_TOOL],
    ]


async def test_going_back_reruns_the_tasks_asked_for_then_the_interrupted_one() -> None:
    session = ScriptedSession(
        call("answered", value="Ana"), call("answered", value="ana@example.com"),
        # At the phone number, the user wants to change their name.
        call(REVISIT_TOOL, task_ids=["name"]),
        call("answered", value="Anna"), call("answered", value="555 0100"),
    )
    result = await context(session).run_task(three_steps())
    # The email, not asked for again, keeps its answer; the new name replaces the old.
    assert result.task_results == {"name": "Anna", "email": "ana@example.com",
                                   "phone": "555 0100"}
    names = [type(t).__name__ for t in session.ran]
    assert names == ["GetName", "GetEmail", "GetPhone", "GetName", "GetPhone"]
    # A fresh instance each time a task runs again (a task runs once).
    assert session.ran[0] is not session.ran[3] and session.ran[2] is not session.ran[4]
    assert session.ran[2].done()  # the interrupted task ended, to hand over


async def test_going_back_to_several_steps_runs_them_in_the_order_asked() -> None:
    session = ScriptedSession(
        call("answered", value="Ana"), call("answered", value="a@b.co"),
        call(REVISIT_TOOL, task_ids=["email", "name", "email"]),
        call("answered", value="x@y.co"), call("answered", value="Anna"),
        call("answered", value="555"),
    )
    result = await context(session).run_task(three_steps())
    names = [type(t).__name__ for t in session.ran]
    assert names == ["GetName", "GetEmail", "GetPhone", "GetEmail", "GetName", "GetPhone"]
    assert result.task_results == {"name": "Anna", "email": "x@y.co", "phone": "555"}


async def test_going_back_from_the_current_step_offers_only_the_others_visited() -> None:
    session = ScriptedSession(
        call("answered", value="Ana"), call("answered", value="a@b.co"),
        call(REVISIT_TOOL, task_ids=["name"]),
    )
    group = three_steps()
    ctx = context(session)
    with pytest.raises(IndexError):  # the script runs out while the group goes on
        await ctx.run_task(group)
    email = session.ran[1]
    [revisit] = [t for t in email.tools if t.name == REVISIT_TOOL]
    enum = revisit.parameters["properties"]["task_ids"]["items"]["enum"]
    assert enum == ["name"]
    assert revisit.parameters["properties"]["task_ids"]["minItems"] == 1  # "none" is no answer
    assert "the user's name" in revisit.description
    assert "phone" not in revisit.description  # not run yet: nothing to go back to


async def test_going_back_to_an_unknown_step_is_an_error_the_llm_reads() -> None:
    task_outputs.clear()
    session = ScriptedSession(
        call("answered", value="Ana"),
        call(REVISIT_TOOL, task_ids=["phone"]),  # not visited yet
        call(REVISIT_TOOL, task_ids=[]),
        call("answered", value="a@b.co"), call("answered", value="555"),
    )
    result = await context(session).run_task(three_steps())
    assert result.task_results["email"] == "a@b.co"
    errors = [out for task, name, out in task_outputs if name == REVISIT_TOOL]
    assert errors[0] == "cannot go back to ['phone']: the steps to go back to are ['name']"
    # An empty list is refused by the arguments' schema (minItems), before the tool runs.
    assert errors[1].startswith("Invalid arguments for tool 'revisit_tasks': 'task_ids': ")
    assert "at least 1 item" in errors[1]
    assert len(errors) == 2
    assert [type(t).__name__ for t in session.ran] == ["GetName", "GetEmail", "GetPhone"]


async def test_a_task_ending_with_an_error_stops_the_group_and_raises_it() -> None:
    session = ScriptedSession(call("answered", value="Ana"), call("declined"))
    with pytest.raises(ToolError, match="declined"):
        await context(session).run_task(three_steps())
    assert len(session.ran) == 2  # the phone number was never asked for


async def test_return_exceptions_keeps_the_error_as_the_result_and_goes_on() -> None:
    session = ScriptedSession(
        call("answered", value="Ana"), call("declined"), call("answered", value="555"),
    )
    result = await context(session).run_task(three_steps(return_exceptions=True))
    assert result.task_results["name"] == "Ana" and result.task_results["phone"] == "555"
    error = result.task_results["email"]
    assert isinstance(error, ToolError) and error.message == "declined"
    assert list(result.task_results) == ["name", "email", "phone"]


async def test_on_task_completed_is_awaited_after_each_task_with_its_result() -> None:
    seen: list[tuple[str, Any, str]] = []

    async def completed(event: TaskCompletedEvent) -> None:
        seen.append((event.task_id, event.result, type(event.task).__name__))

    session = ScriptedSession(
        call("answered", value="Ana"), call("answered", value="a@b.co"),
        call("answered", value="555"),
    )
    await context(session).run_task(three_steps(on_task_completed=completed))
    assert seen == [("name", "Ana", "GetName"), ("email", "a@b.co", "GetEmail"),
                    ("phone", "555", "GetPhone")]


async def test_a_group_runs_once_and_needs_tasks() -> None:
    with pytest.raises(ValueError, match=r"no tasks; add them with group\.add"):
        await context(ScriptedSession()).run_task(TaskGroup())
    group = TaskGroup().add(GetName, id="name", description="the name")
    await context(ScriptedSession(call("answered", value="Ana"))).run_task(group)
    with pytest.raises(RuntimeError, match="ran already"):
        await context(ScriptedSession()).run_task(group)


def test_add_refuses_a_taken_or_blank_id_and_a_blank_description() -> None:
    group = TaskGroup().add(GetName, id="name", description="the name")
    with pytest.raises(ValueError, match="has a task with id 'name' already"):
        group.add(GetEmail, id="name", description="the email")
    with pytest.raises(ValueError, match="must not be blank"):
        group.add(GetEmail, id=" ", description="the email")
    with pytest.raises(ValueError, match="blank description"):
        group.add(GetEmail, id="email", description="")
    assert group.task_ids == ["name"]


async def test_a_factory_that_makes_no_task_is_named_in_the_error() -> None:
    group = TaskGroup().add(lambda: "GetName", id="name", description="the name")  # type: ignore[arg-type, return-value]
    with pytest.raises(RuntimeError, match="factory for 'name' made 'GetName', not an AgentTask"):
        await context(ScriptedSession()).run_task(group)


async def test_an_error_of_run_task_itself_is_raised_even_with_return_exceptions() -> None:
    group = TaskGroup(return_exceptions=True).add(GetName, id="name", description="the name")
    request = ToolCall(turn_id=1, call_id="c0", name="sign_up", arguments="{}")
    no_session: RunContext[None] = RunContext(call=request, userdata=None)
    with pytest.raises(RuntimeError, match="no session that runs tasks"):
        await no_session.run_task(group)


def test_tools_are_added_before_a_task_starts_only() -> None:
    task = GetName()
    task.add_tool(function_tool(name="extra")(lambda: None))
    assert [t.name for t in task.tools] == ["answered", "declined", "extra"]
    task.started = True
    with pytest.raises(RuntimeError, match="add tools before running the task"):
        task.add_tool(function_tool(name="late")(lambda: None))
