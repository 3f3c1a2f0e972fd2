"""Tasks in a graph: a tool runs an AgentTask through the ToolRouter and the LLM node."""

import asyncio
from typing import Any

import pytest
from support import (
    Collect,
    Script,
    collected,
    offered_tools,
    system_prompt,
    tool_call,
    tool_loop_graph,
    user_turn,
)

import flowkit as fk
from flowkit.nodes.llm import LLM
from flowkit.nodes.tools import ToolRouter
from flowkit.testing import FakeLLM, Harness

FRONT_DESK = "You are the front desk."


class GetEmail(fk.AgentTask[str]):
    instructions = "Ask for the user's email address."

    @fk.function_tool
    async def email_given(self, email: str) -> str:
        """The user gave their email address."""
        self.complete(email)
        return "noted"

    @fk.function_tool
    async def refused(self) -> None:
        """The user will not give an email address."""
        self.complete(fk.ToolError("the user would not give an email address"))


class GetPhone(fk.AgentTask[str]):
    instructions = "Ask for the user's phone number."

    @fk.function_tool
    async def phone_given(self, phone: str) -> None:
        """The user gave their phone number."""
        self.complete(phone)


class Trace:
    """What the tools saw, to check from the test."""

    def __init__(self) -> None:
        self.events: list[str] = []


TRACE = Trace()


@fk.function_tool
async def book(ctx: fk.RunContext, day: str) -> str:
    """Book an appointment.

    Args:
        day: The day.
    """
    try:
        email = await ctx.run_task(GetEmail())
    except fk.ToolError as error:
        return f"not booked: {error.message}"
    except asyncio.CancelledError:
        TRACE.events.append("book cancelled")
        raise
    await ctx.say("Booking it now.")
    return f"booked {day} for {email}"


@fk.function_tool
async def slow_book(ctx: fk.RunContext) -> str:
    """Book, slowly after the task."""
    email = await ctx.run_task(GetEmail())
    await asyncio.sleep(2.0)  # a slow booking system: the user speaks meanwhile
    return f"booked for {email}"


class EmailThenPhone(fk.AgentTask[str]):
    """A task whose tool runs another task."""

    instructions = "Collect contact details."

    @fk.function_tool
    async def collect(self, ctx: fk.RunContext) -> str:
        """Collect the phone number."""
        phone = await ctx.run_task(GetPhone())
        self.complete(f"phone {phone}")
        return "collected"


@fk.function_tool
async def contact(ctx: fk.RunContext) -> str:
    """Collect contact details."""
    return f"contact: {await ctx.run_task(EmailThenPhone())}"


@fk.function_tool
async def sign_up(ctx: fk.RunContext) -> str:
    """Sign the user up: their email, then their phone number."""
    email = await ctx.run_task(GetEmail())
    phone = await ctx.run_task(GetPhone())
    return f"signed up {email}, {phone}"


class Rerun(fk.AgentTask[str]):
    instructions = "Ask again."

    @fk.function_tool
    async def again(self, ctx: fk.RunContext) -> str:
        """Runs this task once more."""
        try:
            return await ctx.run_task(self)
        except RuntimeError as error:
            return f"refused: {error}"


@fk.function_tool
async def run_rerun(ctx: fk.RunContext) -> str:
    """Runs a Rerun task."""
    return await ctx.run_task(Rerun())


@fk.function_tool
async def run_done(ctx: fk.RunContext) -> str:
    """Runs a task completed before it runs."""
    task = GetEmail()
    task.complete("x@y.z")
    try:
        await ctx.run_task("GetEmail")  # type: ignore[arg-type]  # not a task
    except TypeError as error:
        refused = f"refused: {error}"
    try:
        return await ctx.run_task(task)
    except RuntimeError as error:
        return f"{refused}; refused: {error}"




def _graph(
    fake: FakeLLM, tools: list[fk.FunctionTool], turns: list[tuple[float, Any]],
    *, timeout: float = 30.0, end_at: float | None = None,
) -> tuple[fk.Graph, LLM, Collect, Collect]:
    return tool_loop_graph(fake, FRONT_DESK, tools, turns, timeout=timeout, end_at=end_at)


def _booking(closing: str) -> FakeLLM:
    """The model's side of a booking for Friday: book(), the task asks, the user answers."""
    return FakeLLM([
        tool_call("c1", "book", '{"day": "Friday"}'),
        "What is your email address?",
        tool_call("c2", "email_given", '{"email": "ana@example.com"}'),
        closing,
    ], ttft=0.0, token_gap=0.0)


def _harness_graph(fake: FakeLLM, tools: list[fk.FunctionTool]) -> fk.Graph:
    g = fk.Graph("harness-tasks")
    llm = g.add(LLM(fake, instructions=FRONT_DESK, tools=tools), name="llm")
    g.add(Script(hold=True), name="user") >> llm  # a live source: the graph stays open
    llm >> g.add(Collect(), name="speaker")
    router = g.add(ToolRouter(tools), name="router")
    llm.tool_calls >> router >> llm.tool_results
    router.speech >> llm.tool_speech
    return g




@pytest.mark.looptime
async def test_a_task_talks_with_the_user_and_its_result_goes_back_to_the_tool() -> None:
    fake = _booking("You are booked for Friday.")
    first, second = user_turn("Book me for Friday"), user_turn("ana@example.com")
    # The user answers 20 s later, far past the router's 1 s timeout for a tool.
    g, llm, text, results = _graph(fake, [book], [(0, first), (20.0, second)], timeout=1.0)
    await fk.GraphRunner(g).run()

    # The task spoke first, under its own instructions and tools...
    assert system_prompt(fake, 1) == GetEmail.instructions
    assert offered_tools(fake, 1) == {"email_given", "refused"}
    assert system_prompt(fake, 2) == GetEmail.instructions
    # ...seeing the conversation before it.
    assert any(m.content == "Book me for Friday" for m in fake.requests[2].history)
    # Back to the front desk once the task completed, with what book() returned.
    assert system_prompt(fake, 3) == FRONT_DESK and offered_tools(fake, 3) == {"book"}
    [*_, last_result] = [m for m in fake.requests[3].history if m.role == "tool"]
    assert last_result.content == "booked Friday for ana@example.com"

    sent = collected(results)
    assert [(r.call_id, type(r.handoff).__name__) for r in sent] == [
        ("c1", "TaskStarted"), ("c2", "TaskEnded"),
    ]
    assert "GetEmail has started" in sent[0].output and not sent[1].is_error
    # What book() said after the task is spoken in the reply of the completing call.
    reply = "".join(c.text for c in collected(text) if c.turn_id == second.turn_id)
    assert "Booking it now." in reply and "You are booked for Friday." in reply
    assert llm.history.instructions == FRONT_DESK


@pytest.mark.looptime
async def test_a_task_completed_with_an_error_raises_it_in_the_tool() -> None:
    fake = FakeLLM([
        tool_call("c1", "book", '{"day": "Monday"}'),
        "What is your email address?",
        tool_call("c2", "refused"),
        "No problem, I did not book it.",
    ], ttft=0.0, token_gap=0.0)
    g, _, _, results = _graph(fake, [book], [(0, user_turn("Book Monday")), (5.0, user_turn("no"))])
    await fk.GraphRunner(g).run()
    last = collected(results)[-1]
    assert last.output == "not booked: the user would not give an email address"
    assert system_prompt(fake, 3) == FRONT_DESK


@pytest.mark.looptime
async def test_a_tool_waiting_for_a_task_is_cancelled_when_the_calls_end() -> None:
    TRACE.events.clear()
    fake = FakeLLM([
        tool_call("c1", "book", '{"day": "Friday"}'), "What is your email address?",
    ], ttft=0.0, token_gap=0.0)
    # The user never answers; the turns end at 3 s and the graph must still finish.
    g, llm, _, _ = _graph(fake, [book], [(0, user_turn("Book Friday"))], end_at=3.0)
    await asyncio.wait_for(fk.GraphRunner(g).run(), timeout=120)
    assert TRACE.events == ["book cancelled"]
    assert llm.history.instructions == GetEmail.instructions  # it never came back


@pytest.mark.looptime
async def test_a_task_ends_for_the_llm_too_when_the_user_cut_the_reply_that_waited() -> None:
    fake = FakeLLM([
        tool_call("c1", "slow_book"), "What is your email address?",
        tool_call("c2", "email_given", '{"email": "ana@example.com"}'),
        "One moment.", "Hello again.",
    ], ttft=0.0, token_gap=0.0)
    # The third turn cuts the reply waiting for email_given's result (slow_book's, 2 s).
    turns = [(0, user_turn("Book me")), (2.0, user_turn("ana@example.com")),
             (3.0, user_turn("hello?")),
             (6.0, user_turn("are you there?"))]
    g, llm, _, results = _graph(fake, [slow_book], turns)
    await fk.GraphRunner(g).run()
    assert isinstance(collected(results)[-1].handoff, fk.tools.TaskEnded)
    assert system_prompt(fake, 3) == GetEmail.instructions  # the task had not ended yet
    # The result came after its reply was cut, and still brought the front desk back,
    # in step with the router.
    assert system_prompt(fake, 4) == FRONT_DESK and offered_tools(fake, 4) == {"slow_book"}
    assert llm.history.instructions == FRONT_DESK


@pytest.mark.looptime
async def test_tasks_nest_and_each_end_returns_to_the_one_before() -> None:
    fake = FakeLLM([
        tool_call("c1", "contact"), "Let me collect your details.",
        tool_call("c2", "collect"), "What is your phone number?",
        tool_call("c3", "phone_given", '{"phone": "555 0100"}'), "Thanks.",
        "Your details are saved.",
    ], ttft=0.0, token_gap=0.0)
    turns = [(0, user_turn("Take my details")), (2.0, user_turn("go on")),
             (4.0, user_turn("555 0100"))]
    g, llm, text, results = _graph(fake, [contact], turns, end_at=8.0)
    await fk.GraphRunner(g).run()
    assert system_prompt(fake, 1) == EmailThenPhone.instructions
    assert system_prompt(fake, 3) == GetPhone.instructions
    # The inner task ended inside the outer task's tool (c3 answers with collect()'s
    # outcome), and that tool completed the outer one: no call of the outer task's tools
    # was being answered, so the router answered a call of its own with contact()'s outcome,
    # after c3's, and both tasks are gone.
    sent = collected(results)
    assert [(r.call_id, type(r.handoff).__name__) for r in sent[:3]] == [
        ("c1", "TaskStarted"), ("c2", "TaskStarted"), ("c3", "TaskEnded"),
    ]
    assert sent[2].output == "collected"
    own = sent[3]
    assert isinstance(own.handoff, fk.tools.TaskEnded) and own.handoff.task.done()
    assert own.call is not None and own.call.name == "contact" and own.call_id == own.call.call_id
    assert own.output == "contact: phone 555 0100"
    # The model replied to it, back at the front desk, in a turn of its own.
    assert system_prompt(fake, len(fake.requests) - 1) == FRONT_DESK
    assert "Your details are saved." in "".join(
        c.text for c in collected(text) if c.turn_id == own.turn_id
    )
    assert llm.history.instructions == FRONT_DESK


@pytest.mark.looptime
async def test_a_tool_runs_tasks_one_after_another() -> None:
    fake = FakeLLM([
        tool_call("c1", "sign_up"), "What is your email address?",
        tool_call("c2", "email_given", '{"email": "ana@example.com"}'), "And your phone number?",
        tool_call("c3", "phone_given", '{"phone": "555 0100"}'), "You are signed up.",
    ], ttft=0.0, token_gap=0.0)
    turns = [(0, user_turn("Sign me up")), (2.0, user_turn("ana@example.com")),
             (4.0, user_turn("555 0100"))]
    g, llm, _, results = _graph(fake, [sign_up], turns)
    await fk.GraphRunner(g).run()
    assert [system_prompt(fake, i) for i in range(6)] == [
        FRONT_DESK, GetEmail.instructions, GetEmail.instructions, GetPhone.instructions,
        GetPhone.instructions, FRONT_DESK,
    ]
    assert offered_tools(fake, 3) == {"phone_given"} and offered_tools(fake, 5) == {"sign_up"}
    started, switched, ended = collected(results)
    assert isinstance(started.handoff, fk.tools.TaskStarted)
    # The call that completed the first task is answered with the second one's start.
    assert isinstance(switched.handoff, fk.tools.TaskEnded)
    assert isinstance(switched.handoff.then, fk.tools.TaskStarted)
    assert isinstance(switched.handoff.then.task, GetPhone)
    assert switched.output.startswith("GetEmail is complete. GetPhone has started")
    assert isinstance(ended.handoff, fk.tools.TaskEnded) and ended.handoff.then is None
    assert ended.output == "signed up ana@example.com, 555 0100"
    assert llm.history.instructions == FRONT_DESK


@pytest.mark.looptime
async def test_a_task_run_twice_or_completed_before_it_runs_fails_in_the_tool() -> None:
    fake = FakeLLM([
        tool_call("c1", "run_done"), "Sorry.",
        tool_call("c2", "run_rerun"), "Ask again.", tool_call("c3", "again"), "Sorry again.",
    ], ttft=0.0, token_gap=0.0)
    turns = [(0, user_turn("one")), (2.0, user_turn("two")), (4.0, user_turn("three"))]
    g, llm, _, results = _graph(fake, [run_done, run_rerun], turns)
    await fk.GraphRunner(g).run()
    done, started, again = collected(results)
    # Neither moved the conversation: the errors came before the task could start.
    assert done.handoff is None and "completed before it ran" in done.output
    assert "'GetEmail', which is not an AgentTask; subclass flowkit.AgentTask" in done.output
    assert isinstance(started.handoff, fk.tools.TaskStarted)
    assert again.handoff is None and "a task runs once: make a new one" in again.output
    assert llm.history.instructions == Rerun.instructions  # still in the task


@pytest.mark.looptime
async def test_the_harness_shows_a_task_beginning_and_ending() -> None:
    async with Harness(_harness_graph(_booking("You are booked."), [book])) as agent:
        asked = await agent.run("Book me for Friday")
        answered = await agent.run("ana@example.com")
    expect = asked.expect
    expect.next_event().is_function_call(name="book", arguments={"day": "Friday"})
    expect.next_event().is_function_call_output()
    assert isinstance(expect.next_event().is_agent_handoff().agent, GetEmail)
    expect.next_event().is_message(contains="email address")
    expect.no_more_events()
    expect = answered.expect
    expect.next_event().is_function_call(name="email_given")
    expect.next_event().is_message(content="Booking it now.")
    expect.next_event().is_function_call_output(output="booked Friday for ana@example.com")
    back = expect.next_event().is_agent_handoff()
    assert back.agent is None and isinstance(back.ended, GetEmail)
    expect.next_event().is_message(contains="You are booked.")


@pytest.mark.looptime
async def test_the_harness_shows_the_next_task_when_an_end_starts_one() -> None:
    fake = FakeLLM([
        tool_call("c1", "sign_up"), "What is your email address?",
        tool_call("c2", "email_given", '{"email": "ana@example.com"}'), "And your phone number?",
    ], ttft=0.0, token_gap=0.0)
    async with Harness(_harness_graph(fake, [sign_up])) as agent:
        await agent.run("Sign me up")
        answered = await agent.run("ana@example.com")
    expect = answered.expect
    expect.next_event().is_function_call(name="email_given")
    expect.next_event().is_function_call_output()
    switched = expect.next_event().is_agent_handoff()
    assert isinstance(switched.agent, GetPhone) and isinstance(switched.ended, GetEmail)
    expect.next_event().is_message(contains="phone number")


class GetEmailPrivately(GetEmail):
    """The same task, shown only its own part of the conversation."""

    own_history = True


@fk.function_tool
async def book_privately(ctx: fk.RunContext, day: str) -> str:
    """Book an appointment.

    Args:
        day: The day.
    """
    return f"booked {day} for {await ctx.run_task(GetEmailPrivately())}"


@pytest.mark.looptime
async def test_a_task_with_its_own_history_sees_only_its_part_of_the_conversation() -> None:
    fake = FakeLLM([
        "Hello, how can I help?",
        tool_call("c1", "book_privately", '{"day": "Friday"}'),
        "What is your email address?",
        tool_call("c2", "email_given", '{"email": "ana@example.com"}'),
        "You are booked.",
        "Anything else?",
    ], ttft=0.0, token_gap=0.0)
    turns = [(0, user_turn("Hi, I'm Ana")), (2.0, user_turn("Book me for Friday")),
             (5.0, user_turn("ana@example.com")), (9.0, user_turn("thanks"))]
    g, llm, _, _ = _graph(fake, [book_privately], turns)
    await fk.GraphRunner(g).run()

    def said(index: int) -> list[str]:
        return [m.content for m in fake.requests[index].history if m.role == "user"]

    # The task's requests start at the call that started it: no greeting, no earlier turn.
    task_request = fake.requests[2]
    assert [m.role for m in task_request.history] == ["system", "assistant", "tool"]
    assert task_request.history[0].content == GetEmailPrivately.instructions
    assert said(3) == ["ana@example.com"]
    # Once it ended, the agent sees every turn, the task's included.
    assert system_prompt(fake, 4) == FRONT_DESK
    assert said(4) == ["Hi, I'm Ana", "Book me for Friday", "ana@example.com"]
    assert said(5)[-1] == "thanks" and len(llm.history.messages) > len(task_request.history)
