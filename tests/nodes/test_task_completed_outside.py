"""A task completed outside its tools: a timer, an event, the tool that runs it giving up.

No call is being answered that could carry the waiting tool's outcome back, so the
ToolRouter answers a call of its own making (``ToolResult.call``) and the LLM node replies
from it, back with the agent that ran the task.
"""

import asyncio
import logging
from typing import Any

import pytest
from support import (
    Collect,
    Script,
    TimedCollect,
    collected,
    offered_tools,
    system_prompt,
    tool_call,
    tool_loop_graph,
)
from support import user_turn as turn

import flowkit as fk
from flowkit.messages import ToolResult
from flowkit.nodes.llm import LLM
from flowkit.nodes.tools import ToolRouter
from flowkit.testing import FakeLLM, FakeReply, Harness

FRONT_DESK = "You are the front desk."


class GetEmail(fk.AgentTask[str]):
    instructions = "Ask for the user's email address."

    @fk.function_tool
    async def email_given(self, email: str) -> None:
        """The user gave their email address."""
        self.complete(email)


class GetPhone(fk.AgentTask[str]):
    instructions = "Ask for the user's phone number."

    @fk.function_tool
    async def phone_given(self, phone: str) -> None:
        """The user gave their phone number."""
        self.complete(phone)


class Running:
    """The task a tool is running, for the test to complete from outside."""

    task: fk.AgentTask[Any] | None = None


RUNNING = Running()


@fk.function_tool
async def book(ctx: fk.RunContext, day: str) -> str:
    """Book an appointment; gives up on the email after 10 s.

    Args:
        day: The day.
    """
    task = GetEmail()
    RUNNING.task = task

    def give_up() -> None:
        if not task.done():
            task.complete(fk.ToolError("no email address within 10 s"))

    # The timer runs in the tool's context but outside any call being answered.
    asyncio.get_running_loop().call_later(10.0, give_up)
    try:
        email = await ctx.run_task(task)
    except fk.ToolError as error:
        return f"not booked: {error.message}"
    return f"booked {day} for {email}"


@fk.function_tool
async def sign_up(ctx: fk.RunContext) -> str:
    """Sign the user up: their email, then their phone number."""
    task = GetEmail()
    RUNNING.task = task
    email = await ctx.run_task(task)
    phone = await ctx.run_task(GetPhone())
    return f"signed up {email}, {phone}"


@fk.function_tool
async def quiet_book(ctx: fk.RunContext) -> str:
    """Book without a word after the email."""
    task = GetEmail()
    RUNNING.task = task
    await ctx.run_task(task)
    raise fk.StopResponse()


async def _complete_at(at: float, value: Any) -> None:
    """Complete the running task at loop time ``at``, from a task of the test's own."""
    await asyncio.sleep(at)
    assert RUNNING.task is not None and not RUNNING.task.done()
    RUNNING.task.complete(value)


def _own_results(results: Collect) -> list[ToolResult]:
    return [r for r in collected(results) if r.call is not None]


def _reply_text(text: Collect, turn_id: int) -> str:
    """What the LLM wrote in the reply of ``turn_id``."""
    return "".join(c.text for c in collected(text) if c.turn_id == turn_id)


def _fake(*replies: str | FakeReply) -> FakeLLM:
    return FakeLLM(list(replies), ttft=0.0, token_gap=0.0)


@pytest.mark.looptime
async def test_a_timer_in_the_tool_gives_up_and_the_agent_says_so() -> None:
    fake = _fake(
        tool_call("c1", "book", '{"day": "Friday"}'), "What is your email address?",
        "I could not book it without your email address.",
    )
    g, llm, text, results = tool_loop_graph(
        fake, FRONT_DESK, [book], [(0, turn("Book me for Friday"))], end_at=20.0
    )
    await fk.GraphRunner(g).run()

    [own] = _own_results(results)
    assert own.call is not None
    # The router's call is book() made again, in a turn of its own, answered with what book()
    # returned once its task failed; it ends the task.
    assert (own.call.name, own.call.arguments) == ("book", '{"day": "Friday"}')
    assert own.call_id == own.call.call_id != "c1" and own.turn_id == own.call.turn_id
    assert own.output == "not booked: no email address within 10 s" and not own.is_error
    assert isinstance(own.handoff, fk.tools.TaskEnded) and isinstance(own.handoff.task, GetEmail)

    # The model replied to it at the front desk, seeing the call and its result last.
    assert len(fake.requests) == 3
    assert system_prompt(fake, 2) == FRONT_DESK and offered_tools(fake, 2) == {"book"}
    *_, asked, answered = fake.requests[2].history
    assert asked.role == "assistant" and [c.call_id for c in asked.tool_calls] == [own.call_id]
    assert (answered.role, answered.tool_call_id) == ("tool", own.call_id)
    assert answered.content == own.output
    assert _reply_text(text, own.turn_id) == "I could not book it without your email address."
    assert llm.history.instructions == FRONT_DESK


@pytest.mark.looptime
async def test_a_task_completed_by_an_event_outside_any_call_brings_its_result_back() -> None:
    fake = _fake(
        tool_call("c1", "book", '{"day": "Monday"}'), "What is your email address?",
        "Booked for Monday.",
    )
    g, llm, text, results = tool_loop_graph(
        fake, FRONT_DESK, [book], [(0, turn("Book Monday"))], end_at=8.0
    )
    # At 5 s, something outside the graph (a form the user filled in, say) gives the email.
    await asyncio.gather(fk.GraphRunner(g).run(), _complete_at(5.0, "ana@example.com"))

    [own] = _own_results(results)
    assert own.output == "booked Monday for ana@example.com"
    assert system_prompt(fake, 2) == FRONT_DESK
    assert "Booked for Monday." in _reply_text(text, own.turn_id)
    assert llm.history.instructions == FRONT_DESK


@pytest.mark.looptime
async def test_a_task_completed_outside_whose_tool_runs_the_next_task_moves_to_it() -> None:
    fake = _fake(
        tool_call("c1", "sign_up"), "What is your email address?",
        "And your phone number?",
        tool_call("c2", "phone_given", '{"phone": "555 0100"}'), "You are signed up.",
    )
    # The second turn's id is drawn when it is said, after the router's turn (as a turn
    # detector draws it on commit).
    turns = [(0, turn("Sign me up")), (8.0, lambda: turn("555 0100"))]
    g, llm, _, results = tool_loop_graph(fake, FRONT_DESK, [sign_up], turns, end_at=12.0)
    await asyncio.gather(fk.GraphRunner(g).run(), _complete_at(4.0, "ana@example.com"))

    _, switched, ended = collected(results)
    assert switched.call is not None and switched.call.name == "sign_up"
    assert isinstance(switched.handoff, fk.tools.TaskEnded)
    assert isinstance(switched.handoff.then, fk.tools.TaskStarted)
    assert switched.output.startswith("GetEmail is complete. GetPhone has started")
    # The reply to the router's call is the next task's: it asks first.
    assert [system_prompt(fake, i) for i in range(4)] == [
        FRONT_DESK, GetEmail.instructions, GetPhone.instructions, GetPhone.instructions,
    ]
    assert offered_tools(fake, 2) == {"phone_given"}
    # The next task ends in a call as usual.
    assert (ended.call_id, ended.call) == ("c2", None)
    assert ended.output == "signed up ana@example.com, 555 0100"
    assert system_prompt(fake, 4) == FRONT_DESK and llm.history.instructions == FRONT_DESK


@pytest.mark.looptime
async def test_a_tool_that_stops_the_response_after_its_task_gets_no_reply() -> None:
    fake = _fake(tool_call("c1", "quiet_book"), "What is your email address?", "unused")
    g, llm, text, results = tool_loop_graph(
        fake, FRONT_DESK, [quiet_book], [(0, turn("Book it"))], end_at=8.0
    )
    await asyncio.gather(fk.GraphRunner(g).run(), _complete_at(4.0, "ana@example.com"))

    [own] = _own_results(results)
    assert own.stop_response and own.output == ""
    assert len(fake.requests) == 2  # no reply asked for
    assert not [c for c in collected(text) if c.turn_id == own.turn_id]  # not even a final
    # The conversation is back at the front desk all the same, the call in its history.
    assert llm.history.instructions == FRONT_DESK
    assert llm.history.messages[-1].tool_call_id == own.call_id


@pytest.mark.looptime
async def test_a_task_completed_while_its_reply_is_spoken_cuts_that_reply() -> None:
    slow = FakeReply(
        text="Could you spell your email address for me, letter by letter, slowly please?",
        ttft=0.0, token_gap=1.0,
    )
    fake = _fake(tool_call("c1", "book", '{"day": "Friday"}'), slow, "Booked.")
    g, _, text, _ = tool_loop_graph(
        fake, FRONT_DESK, [book], [(0, turn("Book Friday"))], end_at=20.0
    )
    await asyncio.gather(fk.GraphRunner(g).run(), _complete_at(3.5, "ana@example.com"))

    assert fake.requests[1].cancelled and not fake.requests[2].cancelled
    # The cut reply joined the history as far as it went, before the router's call.
    history = fake.requests[2].history
    cut = history[-3]
    assert cut.role == "assistant" and cut.interrupted
    assert cut.content.startswith("Could you spell") and "slowly" not in cut.content
    assert history[-2].tool_calls[0].name == "book"
    assert "Booked." in "".join(c.text for c in collected(text))


@pytest.mark.looptime
async def test_an_outer_task_completed_while_an_inner_one_runs_is_refused_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Contact(fk.AgentTask[str]):
        instructions = "Collect contact details."

        @fk.function_tool
        async def collect(self, ctx: fk.RunContext) -> str:
            """Collect the phone number."""
            return await ctx.run_task(GetPhone())

    outer = Contact()

    @fk.function_tool
    async def contact(ctx: fk.RunContext) -> str:
        """Collect contact details."""
        return await ctx.run_task(outer)

    fake = _fake(
        tool_call("c1", "contact"), "Let me collect your details.",
        tool_call("c2", "collect"), "What is your phone number?",
    )
    turns = [(0, turn("Take my details")), (2.0, turn("go on"))]
    g, llm, _, results = tool_loop_graph(fake, FRONT_DESK, [contact], turns, end_at=8.0)

    async def complete_outer() -> None:
        await asyncio.sleep(5.0)
        outer.complete("given up")

    with caplog.at_level(logging.WARNING):
        await asyncio.gather(fk.GraphRunner(g).run(), complete_outer())
    assert "Contact was completed outside its tools while GetPhone" in caplog.text
    assert not _own_results(results)
    assert llm.history.instructions == GetPhone.instructions  # it stays with the inner task


@pytest.mark.looptime
async def test_the_harness_reads_the_reply_to_a_task_completed_outside() -> None:
    fake = _fake(
        tool_call("c1", "book", '{"day": "Friday"}'), "What is your email address?",
        "I could not book it.",
    )
    g = fk.Graph("harness-outside")
    llm = g.add(LLM(fake, instructions=FRONT_DESK, tools=[book]), name="llm")
    g.add(Script(hold=True), name="user") >> llm
    llm >> g.add(Collect(), name="speaker")
    router = g.add(ToolRouter([book]), name="router")
    llm.tool_calls >> router >> llm.tool_results
    router.speech >> llm.tool_speech
    async with Harness(g) as agent:
        asked = await agent.run("Book me for Friday")
        given_up = await agent.next_reply()  # book()'s timer ends the task 10 s on
    asked.expect.next_event().is_function_call(name="book")
    expect = given_up.expect
    assert given_up.user_input == ""
    expect.next_event().is_function_call(name="book", arguments={"day": "Friday"})
    expect.next_event().is_function_call_output(output="not booked: no email address within 10 s")
    back = expect.next_event().is_agent_handoff()
    assert back.agent is None and isinstance(back.ended, GetEmail)
    expect.next_event().is_message(content="I could not book it.")
    expect.no_more_events()


@pytest.mark.looptime
async def test_the_harness_says_when_no_reply_of_the_agents_own_comes() -> None:
    fake = _fake("Hello.")
    g = fk.Graph("harness-quiet")
    llm = g.add(LLM(fake, instructions=FRONT_DESK), name="llm")
    g.add(Script(hold=True), name="user") >> llm
    llm >> g.add(Collect(), name="speaker")
    async with Harness(g, reply_timeout=5.0) as agent:
        await agent.run("Hi")
        with pytest.raises(AssertionError, match="made no reply of its own within 5 s"):
            await agent.next_reply()


@fk.function_tool
async def book_slowly(ctx: fk.RunContext) -> str:
    """Book; the booking system takes 2 s once the email is known."""
    task = GetEmail()
    RUNNING.task = task
    email = await ctx.run_task(task)
    await asyncio.sleep(2.0)
    return f"booked for {email}"


@pytest.mark.looptime
async def test_the_routers_reply_is_newer_than_a_turn_the_user_took_meanwhile() -> None:
    fake = _fake(
        tool_call("c1", "book_slowly"), "What is your email address?", "Just a moment.",
        "You are booked.",
    )
    said: list[fk.UserTurn] = []

    def hello() -> fk.UserTurn:
        said.append(turn("hello?"))
        return said[-1]

    # The task ends at 4 s; the user speaks at 5 s, while book_slowly() still works.
    turns = [(0, turn("Book it")), (5.0, hello)]
    g, llm, text, results = tool_loop_graph(fake, FRONT_DESK, [book_slowly], turns, end_at=10.0)
    await asyncio.gather(fk.GraphRunner(g).run(), _complete_at(4.0, "ana@example.com"))

    [own] = _own_results(results)
    # Drawn when it was sent, after the user's turn: a reply of an older turn than the one
    # before it would be dropped as stale by the TTS node and the sink.
    assert own.turn_id > said[0].turn_id
    assert _reply_text(text, said[0].turn_id) == "Just a moment."
    assert _reply_text(text, own.turn_id) == "You are booked."
    assert system_prompt(fake, 2) == GetEmail.instructions  # the user's turn: still the task
    assert system_prompt(fake, 3) == FRONT_DESK and llm.history.instructions == FRONT_DESK


@pytest.mark.looptime
async def test_the_routers_result_waits_while_a_reply_that_may_not_be_cut_plays() -> None:
    fake = _fake(tool_call("c1", "book", '{"day": "Friday"}'), "What is your email address?",
                 "Booked for Friday.")
    notice = fk.new_turn_id()
    g = fk.Graph("protected")
    llm = g.add(LLM(fake, instructions=FRONT_DESK, tools=[book]), name="llm")
    g.add(Script((0, turn("Book Friday")), end_at=12.0), name="turns") >> llm
    say = fk.ReplyRequest(turn_id=notice, say="Calls are recorded.", allow_interruptions=False)
    g.add(Script((4.0, say)), name="requests") >> llm.requests
    g.add(Script(
        (4.1, fk.Playout(turn_id=notice, event=fk.PlayoutEvent.STARTED,
                         allow_interruptions=False)),
        (8.0, fk.Playout(turn_id=notice, event=fk.PlayoutEvent.FINISHED,
                         allow_interruptions=False)),
    ), name="playout") >> llm.playout
    router = g.add(ToolRouter([book]), name="router")
    llm.tool_calls >> router >> llm.tool_results
    text = g.add(TimedCollect(), name="text")
    llm >> text
    results = g.add(Collect(), name="results")
    router.results >> results
    # The email comes at 5 s, while the notice that may not be cut plays (to 8 s).
    await asyncio.gather(fk.GraphRunner(g).run(), _complete_at(5.0, "ana@example.com"))

    [own] = _own_results(results)
    replied = [at for at, chunk in text.items if chunk.turn_id == own.turn_id]
    assert replied and min(replied) >= 8.0  # answered once the notice had played
    assert "".join(c.text for _, c in text.items if c.turn_id == own.turn_id) == (
        "Booked for Friday."
    )
    assert llm.history.instructions == FRONT_DESK
