"""Tools that go on in the background (``await ctx.update(...)``).

The first update answers the call at once; later updates and the tool's outcome come as
results of calls the ToolRouter makes, which the LLM node answers once the agent is idle.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any, cast

import pytest
from support import Collect, Script, TimedCollect, collected
from support import user_turn as turn

import flowkit as fk
from flowkit.nodes.llm import LLM
from flowkit.nodes.room import RoomSink
from flowkit.nodes.tools import ToolRouter
from flowkit.nodes.tts import TTS
from flowkit.nodes.user_floor import SETTLE_SECONDS
from flowkit.providers.chat import ChatMessage
from flowkit.providers.llm import ToolCallChunk
from flowkit.testing import FakeLLM, FakeReply, Harness
from flowkit.testing.fakes import FakeTTS
from flowkit.testing.memory_io import MemoryIO
from flowkit.tools import ToolDefinitionError, cancel_background
from flowkit.tools.function_tool import DuplicatePolicy

ARGS = json.dumps({"city": "Tokyo"})
SECONDS_PER_CHAR = 0.05


def _call(name: str, call_id: str = "c1", arguments: str = ARGS, text: str = "") -> FakeReply:
    return FakeReply(text=text, tool_calls=(ToolCallChunk(call_id, name, arguments),))


def _voice_graph(
    fake: FakeLLM, tools: list[fk.FunctionTool], events: Sequence[tuple[float, Any]],
    *, end_at: float, timeout: float = 30.0,
) -> tuple[fk.Graph, TimedCollect, Collect]:
    """Turns → LLM ⇄ ToolRouter → TTS → speaker (its reports back): a voice agent's loop.

    Returns:
        The graph, the LLM's text with the time each chunk came, and the router's results.
    """
    g = fk.Graph("background")
    llm = g.add(LLM(fake, tools=tools), name="llm")
    g.add(Script(*events, end_at=end_at), name="turns") >> llm
    router = g.add(ToolRouter(tools, timeout=timeout), name="router")
    llm.tool_calls >> router >> llm.tool_results
    router.speech >> llm.tool_speech
    text, results = g.add(TimedCollect(), name="text"), g.add(Collect(), name="results")
    llm.text >> text
    router.results >> results
    sink = g.add(RoomSink(), name="speaker")
    tts = g.add(TTS(FakeTTS(seconds_per_char=SECONDS_PER_CHAR, ttfa=0.1)), name="tts")
    llm >> tts >> sink
    sink.playout >> llm.playout
    sink.playout >> router.playout
    return g, text, results


async def _run(g: fk.Graph) -> MemoryIO:
    io = MemoryIO(paced=True)
    runner = fk.GraphRunner(g, job=fk.JobContext(io=io))
    await runner.run()
    assert runner.node_errors == []
    return io


def _tool_messages(history: tuple[ChatMessage, ...]) -> list[str]:
    return [message.content for message in history if message.role == "tool"]


@fk.function_tool
async def check_status(ctx: fk.RunContext, city: str) -> str:
    """Check the status: it goes to the background at once and finishes 1 s later."""
    await ctx.update("Checking.")
    await asyncio.sleep(1.0)
    return "All clear."


LONG = "This is a long answer that takes several seconds to say out loud to the user."


def _first_chunk_at(text: TimedCollect, word: str) -> float:
    """When the LLM sent the first chunk with ``word`` (the fake streams a word a chunk)."""
    return next(at for at, chunk in text.items if word in chunk.text)


@pytest.mark.looptime
async def test_the_first_update_answers_at_once_and_later_reports_come_as_replies_of_their_own(
) -> None:
    loop = asyncio.get_running_loop()
    moments: dict[str, float] = {}

    @fk.function_tool
    async def book_flight(ctx: fk.RunContext, city: str) -> str:
        """Book a flight."""
        await ctx.update(f"Searching flights to {city}.")
        await asyncio.sleep(10)
        moments["found"] = loop.time()
        await ctx.update("Found 3 options; the best is 289 dollars on Delta.")
        await asyncio.sleep(10)
        moments["booked"] = loop.time()
        return "Booked: confirmation DL289."

    fake = FakeLLM([
        _call("book_flight"),
        "I'm searching for flights now.",
        "I found a good option.",
        "Your flight is booked.",
    ], ttft=0.1, token_gap=0.0)
    start = loop.time()
    g, text, results = _voice_graph(fake, [book_flight], [(0, turn("book me a flight"))],
                                    end_at=30)
    io = await _run(g)

    assert [r.completed for r in fake.requests] == [True] * 4
    # The call was answered by the first update, long before the tool returned.
    answer = _tool_messages(fake.requests[1].history)
    assert len(answer) == 1 and answer[0].startswith("Searching flights to Tokyo.")
    assert "goes on in the background" in answer[0]
    assert _first_chunk_at(text, "searching") < 1.0
    # Each later report is a call of the same tool, with the same arguments, made again.
    second = fake.requests[2].history
    again = [m for m in second if m.tool_calls][-1].tool_calls[0]
    assert (again.name, again.arguments) == ("book_flight", ARGS)
    assert _tool_messages(second)[-1] == (
        "Update from 'book_flight', which is still running in the background: Found 3 "
        "options; the best is 289 dollars on Delta."
    )
    assert _tool_messages(fake.requests[3].history)[-1] == (
        "'book_flight', which ran in the background, has finished: Booked: confirmation DL289."
    )
    # Each report's reply starts as it comes (the agent is idle by then), on a newer turn.
    assert moments["found"] - start <= _first_chunk_at(text, "good") <= (
        moments["found"] - start + 0.2
    )
    assert _first_chunk_at(text, "booked") <= moments["booked"] - start + 0.2
    turns = [chunk.turn_id for _, chunk in text.items]
    assert turns == sorted(turns) and len(set(turns)) == 3
    # The router sent three results: the answer and the two reports, which carry their calls.
    got = collected(results)
    assert [r.deferred for r in got] == [False, True, True]
    assert got[0].call is None and all(r.call is not None for r in got[1:])
    assert len(io.played) > 0


@pytest.mark.looptime
async def test_a_report_waits_until_the_reply_under_way_has_played() -> None:
    fake = FakeLLM([_call("check_status"), LONG, "It is all clear."], ttft=0.1, token_gap=0.0)
    g, text, _ = _voice_graph(fake, [check_status], [(0, turn("status?"))], end_at=15)
    io = await _run(g)

    long_turn = next(chunk.turn_id for _, chunk in text.items if "long" in chunk.text)
    # The tool finished about 1.1 s in, while the long answer played; its reply came after
    # that answer's last frame, not over it.
    long_ends = len(LONG) * SECONDS_PER_CHAR
    reply_at = _first_chunk_at(text, "clear")
    assert reply_at >= long_ends
    assert reply_at - long_ends < 1.0
    # The long answer was heard whole: not cut by the report's reply.
    assert len(io.played) * 0.02 >= long_ends + len("It is all clear.") * SECONDS_PER_CHAR - 0.2
    assert not any(m.interrupted for m in fake.requests[2].history)
    assert long_turn < next(c.turn_id for _, c in text.items if "clear" in c.text)


@pytest.mark.looptime
async def test_reports_that_wait_together_are_answered_in_one_reply() -> None:

    def tool(name: str, seconds: float) -> fk.FunctionTool:
        async def work(ctx: fk.RunContext, city: str) -> str:
            await ctx.update(f"{name} started.")
            await asyncio.sleep(seconds)
            return f"{name} done."

        work.__doc__ = f"Run {name}."
        return fk.function_tool(name=name)(work)

    first, second = tool("hotel", 1.0), tool("car", 1.5)
    fake = FakeLLM([
        FakeReply(tool_calls=(
            ToolCallChunk("c1", "hotel", ARGS), ToolCallChunk("c2", "car", ARGS),
        )),
        LONG,
        "Both are booked.",
    ], ttft=0.1, token_gap=0.0)
    g, _, _ = _voice_graph(fake, [first, second], [(0, turn("hotel and car"))], end_at=15)
    await _run(g)

    assert len(fake.requests) == 3  # the two outcomes in one reply
    assert _tool_messages(fake.requests[2].history)[-2:] == [
        "'hotel', which ran in the background, has finished: hotel done.",
        "'car', which ran in the background, has finished: car done.",
    ]


@pytest.mark.looptime
async def test_a_user_turn_takes_the_waiting_reports_and_its_reply_answers_them() -> None:
    fake = FakeLLM([_call("check_status"), LONG, "Yes, and all is clear."],
                   ttft=0.1, token_gap=0.0)
    # The user speaks while the long story plays, after the tool has finished.
    events = [(0, turn("status?")), (2.5, lambda: turn("are you there?"))]
    g, _, _ = _voice_graph(fake, [check_status], events, end_at=15)
    await _run(g)

    assert len(fake.requests) == 3  # no reply of its own for the report
    history = fake.requests[2].history
    assert history[-1].role == "user" and history[-1].content == "are you there?"
    assert history[-2].content == (
        "'check_status', which ran in the background, has finished: All clear."
    )


@pytest.mark.looptime
async def test_a_tool_in_the_background_has_no_timeout() -> None:
    @fk.function_tool
    async def slow(ctx: fk.RunContext, city: str) -> str:
        """Take a long time."""
        await ctx.update("Started.")
        await asyncio.sleep(5)
        return "Finished after five seconds."

    fake = FakeLLM([_call("slow"), "Started it.", "It finished."], ttft=0.1, token_gap=0.0)
    g, _, _ = _voice_graph(fake, [slow], [(0, turn("go"))], end_at=10, timeout=1.0)
    await _run(g)
    assert _tool_messages(fake.requests[2].history)[-1] == (
        "'slow', which ran in the background, has finished: Finished after five seconds."
    )


@pytest.mark.looptime
async def test_a_tool_failing_in_the_background_is_reported_as_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @fk.function_tool
    async def broken(ctx: fk.RunContext, city: str) -> str:
        """Fail after a while."""
        await ctx.update("Started.")
        await asyncio.sleep(1)
        await ctx.say("You cannot say this from the background.")
        return "never"

    fake = FakeLLM([_call("broken"), "Started it.", "Sorry, that failed."],
                   ttft=0.1, token_gap=0.0)
    caplog.set_level(logging.ERROR, logger="flowkit.tools")
    g, _, _ = _voice_graph(fake, [broken], [(0, turn("go"))], end_at=10)
    await _run(g)
    report = _tool_messages(fake.requests[2].history)[-1]
    assert report.startswith("'broken', which ran in the background, failed: Tool 'broken' "
                             "failed with an internal error.")
    assert "called ctx.say() after ctx.update()" in caplog.text


@pytest.mark.looptime
async def test_a_tool_still_in_the_background_when_the_calls_end_is_cancelled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.get_running_loop()
    cancelled: list[float] = []

    @fk.function_tool
    async def endless(ctx: fk.RunContext, city: str) -> str:
        """Never finish."""
        await ctx.update("Started.")
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(loop.time())
            raise
        return "never"

    fake = FakeLLM([_call("endless"), "Started it."], ttft=0.1, token_gap=0.0)
    caplog.set_level(logging.INFO, logger="flowkit")
    start = loop.time()
    g, _, results = _voice_graph(fake, [endless], [(0, turn("go"))], end_at=3)
    await _run(g)
    assert len(cancelled) == 1 and cancelled[0] - start < 10
    assert len(collected(results)) == 1  # the first update's answer only
    assert "still in the background when the calls ended" in caplog.text


@pytest.mark.looptime
@pytest.mark.parametrize("policy", ["allow", "reject", "replace"])
async def test_a_second_call_follows_the_tools_duplicate_policy(policy: DuplicatePolicy) -> None:
    finished: list[str] = []

    @fk.function_tool(on_duplicate=policy)
    async def search(ctx: fk.RunContext, city: str) -> str:
        """Search flights."""
        await ctx.update(f"Searching {city}.")
        await asyncio.sleep(3)
        finished.append(city)
        return f"Flights to {city}: 3."

    fake = FakeLLM([
        _call("search", "c1"), "Searching.",
        _call("search", "c2", json.dumps({"city": "Osaka"})), "On it.",
        "Here is what I found.", "And the other one.",
    ], ttft=0.1, token_gap=0.0)
    events = [(0, turn("Tokyo")), (1.0, lambda: turn("make it Osaka"))]
    g, _, results = _voice_graph(fake, [search], events, end_at=10)
    await _run(g)

    second_answer = next(r for r in collected(results) if r.call_id == "c2")
    deferred = [r.output for r in collected(results) if r.deferred]
    if policy == "allow":
        assert finished == ["Tokyo", "Osaka"] and len(deferred) == 2
        assert second_answer.output.startswith("Searching Osaka.")
    elif policy == "reject":
        assert finished == ["Tokyo"] and second_answer.is_error
        assert "already running in the background" in second_answer.output
        assert '"city": "Tokyo"' in second_answer.output
        assert deferred == ["'search', which ran in the background, has finished: "
                            "Flights to Tokyo: 3."]
    else:
        assert finished == ["Osaka"] and second_answer.output.startswith("Searching Osaka.")
        assert deferred == ["'search', which ran in the background, has finished: "
                            "Flights to Osaka: 3."]


@pytest.mark.looptime
async def test_a_report_that_stops_the_response_joins_the_history_without_a_reply() -> None:
    @fk.function_tool
    async def quiet(ctx: fk.RunContext, city: str) -> str:
        """Finish quietly."""
        await ctx.update("Started.")
        await asyncio.sleep(1)
        raise fk.StopResponse()

    fake = FakeLLM([_call("quiet"), "Started it.", "What else?"], ttft=0.1, token_gap=0.0)
    events = [(0, turn("go")), (5, lambda: turn("anything else?"))]
    g, _, _ = _voice_graph(fake, [quiet], events, end_at=10)
    await _run(g)
    assert len(fake.requests) == 3  # none for the quiet end
    assert [m.role for m in fake.requests[2].history][-3:] == ["assistant", "tool", "user"]


async def test_update_refuses_blank_messages_and_contexts_without_a_router() -> None:
    call = fk.ToolCall(turn_id=1, call_id="c1", name="t", arguments="{}")
    with pytest.raises(RuntimeError, match="no session that can take it to the background"):
        await fk.RunContext(call=call, userdata=None).update("Started.")

    @fk.function_tool
    async def blank(ctx: fk.RunContext) -> str:
        """Report nothing."""
        await ctx.update("  ")
        return "never"

    fake = FakeLLM([_call("blank", arguments="{}"), "ok"], ttft=0.0, token_gap=0.0)
    g = fk.Graph("blank")
    llm = g.add(LLM(fake, tools=[blank]), name="llm")
    g.add(Script((0, turn("go"))), name="turns") >> llm
    router = g.add(ToolRouter([blank]), name="router")
    llm.tool_calls >> router >> llm.tool_results
    results = g.add(Collect(), name="results")
    router.results >> results
    llm >> g.add(Collect(), name="text")
    await fk.GraphRunner(g).run()
    [result] = collected(results)
    assert result.is_error and "internal error" in result.output


def test_an_unknown_duplicate_policy_is_refused_when_the_tool_is_made() -> None:
    with pytest.raises(ToolDefinitionError, match="'allow', 'reject', 'replace'"):
        @fk.function_tool(on_duplicate=cast(Any, "queue"))
        async def tool(city: str) -> str:
            """A tool."""
            return city



@pytest.mark.looptime
@pytest.mark.parametrize("cancellable", [True, False])
async def test_the_model_stops_a_cancellable_tool_in_the_background(cancellable: bool) -> None:
    stopped: list[str] = []

    @fk.function_tool(cancellable=cancellable)
    async def search(ctx: fk.RunContext, city: str) -> str:
        """Search flights."""
        await ctx.update("Searching.")
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            stopped.append(city)
            raise
        return "Flights found."

    tools = [search, cancel_background]
    fake = FakeLLM([
        _call("search"), "Searching.",
        _call("cancel_background", "c2", json.dumps({"tool": "search"})), "Okay, stopped.",
        "Here are the flights.",
    ], ttft=0.1, token_gap=0.0)
    events = [(0, turn("flights to Tokyo")), (1.0, lambda: turn("never mind"))]
    g, _, results = _voice_graph(fake, tools, events, end_at=10)
    await _run(g)

    answer = next(r for r in collected(results) if r.call_id == "c2")
    deferred = [r for r in collected(results) if r.deferred]
    if cancellable:
        assert stopped == ["Tokyo"] and not answer.is_error
        assert answer.output == f"Stopped 'search' (called with {ARGS}); its result will not come."
        assert deferred == []
    else:
        assert stopped == [] and answer.is_error
        assert "'search' cannot be stopped once it has started" in answer.output
        assert [r.output for r in deferred] == [
            "'search', which ran in the background, has finished: Flights found."
        ]


@pytest.mark.looptime
async def test_stopping_a_tool_that_is_not_in_the_background_says_what_is() -> None:
    @fk.function_tool
    async def search(ctx: fk.RunContext, city: str) -> str:
        """Search flights."""
        return "Flights found."

    fake = FakeLLM([
        _call("cancel_background", "c1", json.dumps({"tool": "search"})), "Nothing to stop.",
    ], ttft=0.1, token_gap=0.0)
    g, _, results = _voice_graph(fake, [search, cancel_background], [(0, turn("stop it"))],
                                 end_at=3)
    await _run(g)
    [answer] = collected(results)
    assert answer.is_error and answer.output == (
        "no call of 'search' is running in the background; none is. Tell the user what is "
        "still under way, if anything."
    )


@pytest.mark.looptime
async def test_the_harness_reads_a_reports_reply_as_a_reply_of_the_agents_own() -> None:
    @fk.function_tool
    async def book_flight(ctx: fk.RunContext, city: str) -> str:
        """Book a flight."""
        await ctx.update(f"Searching flights to {city}.")
        await asyncio.sleep(3)
        return "Booked: DL289."

    fake = FakeLLM([_call("book_flight"), "I'm searching now.", "You're booked on DL289."],
                   ttft=0.1, token_gap=0.0)
    g = fk.Graph("harness-background")
    llm = g.add(LLM(fake, tools=[book_flight]), name="llm")
    g.add(Script(hold=True), name="user") >> llm
    router = g.add(ToolRouter([book_flight]), name="router")
    llm.tool_calls >> router >> llm.tool_results
    llm >> g.add(Collect(), name="speaker")
    async with Harness(g) as agent:
        asked = await agent.run("Book me a flight to Tokyo")
        booked = await agent.next_reply()
    expect = asked.expect
    expect.next_event().is_function_call(name="book_flight", arguments={"city": "Tokyo"})
    answer = expect.next_event().is_function_call_output()
    assert answer.output.startswith("Searching flights to Tokyo.")
    expect.next_event().is_message(content="I'm searching now.")
    expect = booked.expect
    expect.next_event().is_function_call(name="book_flight", arguments={"city": "Tokyo"})
    expect.next_event().is_function_call_output(
        output="'book_flight', which ran in the background, has finished: Booked: DL289."
    )
    expect.next_event().is_message(content="You're booked on DL289.")
    expect.no_more_events()


@pytest.mark.looptime
async def test_a_report_after_a_say_from_code_is_spoken_on_a_turn_newer_than_the_say() -> None:
    fake = FakeLLM([_call("check_status"), LONG, "It is all clear."], ttft=0.1, token_gap=0.0)
    g, text, _ = _voice_graph(fake, [check_status], [(0, turn("status?"))], end_at=15)
    llm = g.nodes["llm"]
    # A notice from code at 2 s, after the tool has sent its result (at 1 s).
    g.add(Script((2.0, lambda: fk.ReplyRequest(turn_id=fk.new_turn_id(), say="A notice."))),
          name="notices") >> llm.requests
    reports = g.add(Collect(), name="reports")
    g.nodes["speaker"].playout >> reports
    await _run(g)

    said = next(c.turn_id for _, c in text.items if "notice" in c.text.lower())
    answer = next(c.turn_id for _, c in text.items if "clear" in c.text)
    assert answer > said
    played = {r.turn_id for r in collected(reports) if r.event is fk.PlayoutEvent.FINISHED}
    assert {said, answer} <= played  # the answer was spoken, not dropped as stale


def _user(kind: fk.UserStateKind) -> fk.UserState:
    return fk.UserState(turn_id=fk.new_turn_id(), state=kind)


@pytest.mark.looptime
async def test_a_report_waits_while_the_user_speaks_and_for_the_turn_that_may_follow() -> None:
    fake = FakeLLM([_call("check_status"), "Okay.", "It is all clear."], ttft=0.1, token_gap=0.0)
    g, text, _ = _voice_graph(fake, [check_status], [(0, turn("status?"))], end_at=10)
    # The user makes a sound from 0.9 s to 3 s that commits no turn (a cough, a word to
    # someone else): the report's reply waits for them, then for a turn that does not come.
    g.add(Script((0.9, lambda: _user(fk.UserStateKind.SPEAKING)),
                 (3.0, lambda: _user(fk.UserStateKind.LISTENING)), end_at=10),
          name="user") >> g.nodes["llm"].user_state
    await _run(g)
    assert 3.0 + SETTLE_SECONDS <= _first_chunk_at(text, "clear") < 3.5 + SETTLE_SECONDS
    assert len(fake.requests) == 3


@pytest.mark.looptime
@pytest.mark.parametrize("announced", [True, False], ids=["announced", "not announced"])
async def test_a_report_waits_in_the_pause_before_the_users_turn_commits(announced: bool) -> None:
    fake = FakeLLM([_call("check_status"), "Okay.", "Booked, and all is clear."],
                   ttft=0.1, token_gap=0.0)
    # The user speaks from 0.9 s to 2 s. Announced, the detector waits its long delay (its
    # model says the sentence goes on) and commits 4 s later; else the transcript is late
    # and the turn commits 1.5 s after their speech. Both are after the tool finished (1.1 s).
    commit_at = 6.0 if announced else 3.5
    words = "and book the hotel"
    g, text, _ = _voice_graph(fake, [check_status], [
        (0, turn("status?")), (commit_at, lambda: turn(words)),
    ], end_at=12)
    user_events: list[tuple[float, Any]] = [
        (0.9, lambda: _user(fk.UserStateKind.SPEAKING)),
        (2.0, lambda: _user(fk.UserStateKind.LISTENING)),
    ]
    llm = g.nodes["llm"]
    g.add(Script(*user_events, end_at=12), name="user") >> llm.user_state
    if announced:
        g.add(Script((2.2, lambda: fk.TentativeTurn(turn_id=0, text=words)), end_at=12),
              name="detector") >> llm.tentative
    await _run(g)

    # No reply of its own for the report (it would have started at 2 s and been cut): the
    # turn took it, and its reply answers both.
    assert len(fake.requests) == 3
    history = fake.requests[2].history
    assert history[-1].content == words
    assert history[-2].content == (
        "'check_status', which ran in the background, has finished: All clear."
    )
    assert _first_chunk_at(text, "Booked") >= commit_at


class _GetEmail(fk.AgentTask[str]):
    instructions = "Ask for the user's email address."

    @fk.function_tool
    async def email_given(self, email: str) -> None:
        """The user gave their email address."""
        self.complete(email)


@pytest.mark.looptime
@pytest.mark.parametrize("order", ["update then task", "task then update"])
async def test_a_tool_cannot_both_run_a_task_and_go_to_the_background(
    order: str, caplog: pytest.LogCaptureFixture,
) -> None:
    @fk.function_tool
    async def book(ctx: fk.RunContext, city: str) -> str:
        """Book a trip."""
        if order == "update then task":
            await ctx.update("Started.")
            await ctx.run_task(_GetEmail())
        else:
            await ctx.run_task(_GetEmail())
            await ctx.update("Started.")
        return "never"

    email = _call("email_given", "c2", json.dumps({"email": "ana@example.com"}))
    script: list[Any] = (
        [_call("book"), "Started it.", "Sorry, that failed."]
        if order == "update then task"
        else [_call("book"), "Your email?", email, "Sorry, that failed."]
    )
    fake = FakeLLM(script, ttft=0.1, token_gap=0.0)
    events = [(0, turn("book a trip"))]
    if order == "task then update":
        events.append((2.0, lambda: turn("ana@example.com")))
    caplog.set_level(logging.ERROR, logger="flowkit.tools")
    g, _, results = _voice_graph(fake, [book], events, end_at=8)
    await _run(g)
    failed = collected(results)[-1]
    assert failed.is_error and "internal error" in failed.output
    expected = (
        "called ctx.run_task() after ctx.update()" if order == "update then task"
        else "called ctx.update() after ctx.run_task()"
    )
    assert expected in caplog.text
