"""AgentTask on its own, deadline_paused, and Toolbox.switch (the nodes' side is in
tests/nodes/test_tool_tasks.py)."""

import asyncio
import logging
import threading
import time

import pytest

from flowkit.messages import ToolCall
from flowkit.tools import (
    AgentTask,
    RunContext,
    TaskEnded,
    TaskStarted,
    Toolbox,
    ToolError,
    deadline_paused,
    function_tool,
    invoke_tool,
)
from flowkit.tools.task import answering_call

LOG = logging.getLogger("test")


class GetEmail(AgentTask[str]):
    instructions = "Ask for the email address."

    @function_tool
    async def email_given(self, email: str) -> None:
        """The user gave their email."""
        self.complete(email)


@function_tool
async def lookup() -> str:
    """Look something up."""
    return "found"


@function_tool
async def other() -> str:
    """Another tool."""
    return "other"


class Concierge:
    instructions = "You are the concierge."
    tools = (other,)


def _call(name: str) -> ToolCall:
    return ToolCall(turn_id=1, call_id="c1", name=name, arguments="{}")


def test_a_task_offers_its_method_tools_then_the_ones_given() -> None:
    task = GetEmail(tools=[lookup])
    assert [t.name for t in task.tools] == ["email_given", "lookup"]
    assert task.instructions == "Ask for the email address."
    assert GetEmail("Ask twice.").instructions == "Ask twice."


def test_a_task_without_instructions_is_refused_naming_the_remedy() -> None:
    class Nameless(AgentTask[int]):
        pass

    with pytest.raises(ValueError, match="Nameless has no instructions") as raised:
        Nameless()
    assert "instructions = '...'" in str(raised.value)


async def test_result_waits_for_complete_and_returns_its_value() -> None:
    task = GetEmail()
    waiting = asyncio.ensure_future(task.result())
    await asyncio.sleep(0)
    assert not waiting.done() and not task.done()
    outcome = await invoke_tool(
        task.tools, ToolCall(turn_id=1, call_id="c", name="email_given",
                             arguments='{"email": "a@b.c"}'),
        RunContext(call=_call("email_given"), userdata=None), timeout=None,
    )
    assert not outcome.result.is_error
    assert task.done() and await waiting == "a@b.c"


async def test_a_task_completed_with_an_exception_raises_it_from_result() -> None:
    task = GetEmail()
    task.complete(ToolError("the user would not say"))
    with pytest.raises(ToolError, match="would not say"):
        await task.result()


def test_a_task_is_completed_once() -> None:
    task = GetEmail()
    task.complete("a@b.c")
    with pytest.raises(RuntimeError, match="GetEmail was completed already"):
        task.complete("d@e.f")


def test_a_task_records_the_call_it_was_completed_in() -> None:
    inside, outside = GetEmail(), GetEmail()
    marker = object()
    with answering_call(marker):
        inside.complete("a@b.c")
    outside.complete("d@e.f")
    assert inside.completed_in is marker and outside.completed_in is None


async def test_a_task_completed_from_another_thread_wakes_the_loop_that_waits() -> None:
    task = GetEmail()
    waiting = asyncio.ensure_future(task.result())
    await asyncio.sleep(0)  # result() is waiting on this loop now

    def later() -> None:
        time.sleep(0.05)
        task.complete("a@b.c")

    loop = asyncio.get_running_loop()
    start = loop.time()
    threading.Thread(target=later).start()
    # The loop has nothing else to wake it: only a thread-safe completion ends the wait
    # long before the timeout (an asyncio.Event set from the thread leaves the loop asleep
    # until the timeout wakes it, 5 s on).
    await asyncio.wait({waiting}, timeout=5.0)
    assert loop.time() - start < 4.0
    assert waiting.result() == "a@b.c"


async def test_run_task_outside_a_router_says_where_tasks_run() -> None:
    with pytest.raises(RuntimeError, match=r"ctx.run_task\(\) but its RunContext has no"):
        await RunContext(call=_call("book"), userdata=None).run_task(GetEmail())


# ---- deadline_paused ------------------------------------------------------------------------


@pytest.mark.looptime
async def test_the_tools_timeout_stops_while_paused_and_starts_afresh_after() -> None:
    @function_tool
    async def patient() -> str:
        """Waits on the user, then works."""
        with deadline_paused():
            await asyncio.sleep(10)  # far past the 1 s timeout: not counted
        await asyncio.sleep(0.9)  # the timeout starts afresh: 0.9 s is within it
        return "done in time"

    @function_tool
    async def slow_after() -> str:
        """Waits on the user, then works too long."""
        with deadline_paused():
            await asyncio.sleep(10)
        await asyncio.sleep(1.5)
        return "never"

    ok = await invoke_tool([patient], _call("patient"), RunContext(
        call=_call("patient"), userdata=None), timeout=1.0)
    assert ok.result.output == "done in time"
    late = await invoke_tool([slow_after], _call("slow_after"), RunContext(
        call=_call("slow_after"), userdata=None), timeout=1.0)
    assert late.result.is_error and "timed out after 1 s" in late.result.output


def test_deadline_paused_outside_a_tool_does_nothing() -> None:
    with deadline_paused():
        pass


# ---- Toolbox.switch ---------------------------------------------------------------------------


def test_a_task_keeps_the_agent_aside_and_its_end_brings_it_back() -> None:
    box = Toolbox([lookup])
    task = GetEmail()
    now = box.switch(TaskStarted(task), "You are the front desk.", LOG)
    assert now == "Ask for the email address."
    assert box.functions.names == ["email_given"]
    back = box.switch(TaskEnded(task), now, LOG)
    assert back == "You are the front desk."
    assert box.functions.names == ["lookup"]


def test_tasks_nest_and_an_end_may_hand_over_to_another_agent() -> None:
    box = Toolbox([lookup])
    outer, inner = GetEmail(), GetEmail("Ask for the phone number.")
    now = box.switch(TaskStarted(outer), "front desk", LOG)
    now = box.switch(TaskStarted(inner), now, LOG)
    assert now == "Ask for the phone number."
    now = box.switch(TaskEnded(inner), now, LOG)
    assert now == "Ask for the email address."  # back to the outer task, not the first agent
    now = box.switch(TaskEnded(outer, then=Concierge()), now, LOG)
    assert now == "You are the concierge."
    assert box.functions.names == ["other"]
    # A plain handoff, and a result without one.
    assert box.switch(None, now, LOG) == "You are the concierge."
    assert box.switch(GetEmail(), now, LOG) == "Ask for the email address."


def test_an_end_may_start_the_next_task_of_the_same_tool() -> None:
    box = Toolbox([lookup])
    first, second = GetEmail(), GetEmail("Ask for the phone number.")
    now = box.switch(TaskStarted(first), "front desk", LOG)
    now = box.switch(TaskEnded(first, then=TaskStarted(second)), now, LOG)
    assert now == "Ask for the phone number."
    assert box.switch(TaskEnded(second), now, LOG) == "front desk"  # not the first task's
    assert box.functions.names == ["lookup"]


def test_history_from_follows_the_innermost_task_with_its_own_history() -> None:
    box = Toolbox([lookup])
    own = GetEmail(own_history=True)
    shared = GetEmail("Ask for the phone.")
    next_own = GetEmail("Ask for the PIN.", own_history=True)
    assert not GetEmail().own_history and own.own_history
    now = box.switch(TaskStarted(own), "front desk", LOG, call_id="c1")
    assert box.history_from == "c1"
    # A task without its own history, nested in one with it, sees what that one sees.
    now = box.switch(TaskStarted(shared), now, LOG, call_id="c2")
    assert box.history_from == "c1"
    now = box.switch(TaskEnded(shared), now, LOG, call_id="c3")
    # The next task of the same tool starts its own view at the call that ended the first.
    now = box.switch(TaskEnded(own, then=TaskStarted(next_own)), now, LOG, call_id="c4")
    assert box.history_from == "c4" and now == "Ask for the PIN."
    box.switch(TaskEnded(next_own), now, LOG, call_id="c5")
    assert box.history_from is None


def test_own_history_is_a_class_attribute_the_argument_overrides() -> None:
    class Private(GetEmail):
        own_history = True

    assert Private().own_history and not Private(own_history=False).own_history
