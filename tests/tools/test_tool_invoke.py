import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest
from pydantic import BaseModel

from flowkit.messages import ToolCall
from flowkit.tools import (
    EMPTY_OUTPUT,
    AgentLike,
    FunctionTool,
    RunContext,
    StopResponse,
    ToolError,
    ToolOutcome,
    ToolSet,
    function_tool,
    invoke_all,
    invoke_tool,
    tools_of,
)


@dataclasses.dataclass
class Session:
    spoken: list[str] = dataclasses.field(default_factory=list)

    async def say(self, text: str) -> None:
        self.spoken.append(text)


@dataclasses.dataclass
class Prefs:
    city: str = ""


class Forecast(BaseModel):
    city: str
    temp: int


@dataclasses.dataclass
class Point:
    x: int
    y: int


def call(name: str, arguments: str = "{}", call_id: str = "c1", turn: int = 7) -> ToolCall:
    return ToolCall(turn_id=turn, call_id=call_id, name=name, arguments=arguments)


def context(c: ToolCall, userdata: Any = None, session: Session | None = None) -> RunContext[Any]:
    return RunContext(call=c, userdata=userdata, session=session)


async def run(
    tool: Any, name: str, arguments: str = "{}", *, timeout: float | None = None
) -> ToolOutcome:
    c = call(name, arguments)
    return await invoke_tool(tool, c, context(c), timeout=timeout)


@function_tool
async def weather(ctx: RunContext[Prefs], city: str, days: int = 1) -> Forecast:
    """Forecast."""
    ctx.userdata.city = city
    return Forecast(city=city, temp=20 + days)


# ---- results ----------------------------------------------------------------------------


async def test_call_is_validated_run_and_answered_with_json() -> None:
    prefs = Prefs()
    c = call("weather", '{"city": "Oslo", "days": 2}')
    outcome = await invoke_tool(weather, c, context(c, prefs), timeout=None)
    assert outcome.result.output == '{"city":"Oslo","temp":22}'
    assert (outcome.result.call_id, outcome.result.name, outcome.result.turn_id) == (
        "c1", "weather", 7,
    )
    assert not outcome.result.is_error
    assert not outcome.stop_response
    assert outcome.handoff is None
    assert prefs.city == "Oslo"  # userdata is shared, not copied


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain text", "plain text"),
        ({"a": [1, 2]}, '{"a":[1,2]}'),
        ([Forecast(city="x", temp=1)], '[{"city":"x","temp":1}]'),
        (3, "3"),
        (None, EMPTY_OUTPUT),
        (Point(1, 2), '{"x":1,"y":2}'),
    ],
)
async def test_return_values_become_text(value: Any, expected: str) -> None:
    @function_tool
    def give() -> Any:
        return value

    assert (await run(give, "give")).result.output == expected


async def test_unserialisable_return_falls_back_to_str() -> None:
    class Opaque:
        def __str__(self) -> str:
            return "opaque!"

    @function_tool
    def give() -> Any:
        return Opaque()

    assert (await run(give, "give")).result.output == "opaque!"


async def test_empty_arguments_text_means_no_arguments() -> None:
    @function_tool
    async def ping() -> str:
        return "pong"

    assert (await run(ping, "ping", "")).result.output == "pong"


async def test_keyword_only_and_positional_only_parameters_are_passed() -> None:
    @function_tool
    def f(a: int, /, b: int, *, c: int = 5) -> int:
        return a * 100 + b * 10 + c

    assert (await run(f, "f", '{"a": 1, "b": 2}')).result.output == "125"


async def test_context_sees_call_turn_userdata_and_can_speak() -> None:
    seen: dict[str, Any] = {}

    @function_tool
    async def greet(name: str, ctx: RunContext[Prefs]) -> None:
        seen.update(call=ctx.call, turn=ctx.turn_id, data=ctx.userdata)
        await ctx.say(f"Hello {name}")

    session, prefs = Session(), Prefs("Rome")
    c = call("greet", '{"name": "Ana"}', turn=3)
    outcome = await invoke_tool([greet], c, context(c, prefs, session), timeout=None)
    assert outcome.result.output == EMPTY_OUTPUT
    assert seen == {"call": c, "turn": 3, "data": prefs}
    assert session.spoken == ["Hello Ana"]


async def test_say_without_a_session_names_the_remedy() -> None:
    c = call("t")
    with pytest.raises(RuntimeError, match="nothing speaks its words") as raised:
        await context(c).say("hi")
    # Both remedies: the link a graph lacks, and the argument for a context built by hand.
    assert "router.speech >> llm.tool_speech" in str(raised.value)
    assert "build the context with session=" in str(raised.value)


def test_disallow_interruptions_without_a_session_that_reaches_the_reply_names_the_remedy(
) -> None:
    c = call("pay")
    for session in (None, Session()):  # none, or one that can only speak
        with pytest.raises(RuntimeError, match="has no session that reaches the reply") as e:
            context(c, session=session).disallow_interruptions()
        assert "session that has disallow_interruptions()" in str(e.value)


# ---- error paths ------------------------------------------------------------------------


async def test_unknown_tool_lists_the_available_ones() -> None:
    @function_tool
    def other() -> None: ...

    outcome = await run(ToolSet([weather, other]), "wether")
    assert outcome.result.is_error
    assert "Unknown tool 'wether'" in outcome.result.output
    assert "Available tools: weather, other" in outcome.result.output


async def test_invalid_json_is_an_error_the_llm_can_act_on() -> None:
    outcome = await run(weather, "weather", '{"city": ')
    assert outcome.result.is_error
    assert "not valid JSON" in outcome.result.output
    assert "city: string (required)" in outcome.result.output


async def test_arguments_that_are_not_an_object() -> None:
    outcome = await run(weather, "weather", '["Oslo"]')
    assert outcome.result.is_error
    assert "must be a JSON object, got list" in outcome.result.output


async def test_invalid_arguments_name_the_argument_and_the_expectation() -> None:
    outcome = await run(weather, "weather", '{"days": "many", "town": "Oslo"}')
    out = outcome.result.output
    assert outcome.result.is_error
    assert "'city' is required but missing" in out
    assert "'days': Input should be a valid integer" in out and "(got 'many')" in out
    assert "'town' is not a parameter of this tool" in out
    assert "Expected {city: string (required), days: integer}" in out


async def test_tool_error_message_goes_to_the_llm() -> None:
    @function_tool
    async def book(date: str) -> str:
        raise ToolError(f"No tables on {date}; ask for another date.")

    outcome = await run(book, "book", '{"date": "Monday"}')
    assert outcome.result.is_error
    assert outcome.result.output == "No tables on Monday; ask for another date."
    assert not outcome.stop_response


async def test_tool_error_from_a_sync_tool() -> None:
    @function_tool
    def book() -> str:
        raise ToolError("Closed.")

    outcome = await run(book, "book")
    assert (outcome.result.output, outcome.result.is_error) == ("Closed.", True)


async def test_stop_response() -> None:
    @function_tool
    async def hang_up(ctx: RunContext) -> None:
        raise StopResponse

    outcome = await run(hang_up, "hang_up")
    assert outcome.stop_response
    assert not outcome.result.is_error
    assert outcome.result.output == ""


async def test_other_exceptions_are_logged_but_not_leaked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @function_tool
    async def leaky() -> None:
        raise ValueError("password=hunter2")

    with caplog.at_level(logging.ERROR, logger="flowkit.tools"):
        outcome = await run(leaky, "leaky")
    assert outcome.result.is_error
    assert "internal error" in outcome.result.output
    assert "hunter2" not in outcome.result.output
    [record] = [r for r in caplog.records if r.name == "flowkit.tools"]
    assert record.exc_info is not None and "hunter2" in str(record.exc_info[1])
    assert "leaky" in record.getMessage()


@pytest.mark.looptime
async def test_timeout_is_an_error_naming_the_limit() -> None:
    finished = False

    @function_tool
    async def slow() -> str:
        nonlocal finished
        await asyncio.sleep(60)
        finished = True
        return "late"

    loop = asyncio.get_running_loop()
    start = loop.time()
    outcome = await run(slow, "slow", timeout=2.5)
    assert loop.time() - start == pytest.approx(2.5)
    assert outcome.result.is_error
    assert "timed out after 2.5 s" in outcome.result.output
    assert not finished


@pytest.mark.looptime
async def test_a_tools_own_timeout_error_is_not_reported_as_our_timeout() -> None:
    @function_tool
    async def backend() -> str:
        await asyncio.sleep(1)
        raise TimeoutError("backend slow")

    outcome = await run(backend, "backend", timeout=10)
    assert outcome.result.is_error
    assert "internal error" in outcome.result.output
    assert "timed out" not in outcome.result.output


async def test_sync_tool_timeout_returns_while_the_thread_is_still_blocked() -> None:
    release = threading.Event()

    @function_tool
    def stuck() -> str:
        release.wait(5)
        return "late"

    try:
        started = time.monotonic()
        outcome = await run(stuck, "stuck", timeout=0.05)
        assert time.monotonic() - started < 2
        assert "timed out after 0.05 s" in outcome.result.output
    finally:
        release.set()


async def test_cancellation_propagates() -> None:
    @function_tool
    async def forever() -> None:
        await asyncio.Event().wait()

    task = asyncio.ensure_future(run(forever, "forever"))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# ---- concurrency ------------------------------------------------------------------------


async def test_sync_tool_runs_on_a_thread_and_does_not_block_the_loop() -> None:
    loop_ran = threading.Event()

    @function_tool
    def blocking() -> str:
        # Only returns True if the event loop sets the event while this thread waits.
        return "unblocked" if loop_ran.wait(5) else "loop was blocked"

    async def mark() -> None:
        await asyncio.sleep(0.01)
        loop_ran.set()

    marker = asyncio.create_task(mark())
    outcome = await run(blocking, "blocking")
    await marker
    assert outcome.result.output == "unblocked"


@function_tool
async def nap(seconds: float, label: str) -> str:
    """Sleep, then answer."""
    await asyncio.sleep(seconds)
    return label


@pytest.mark.looptime
async def test_parallel_calls_take_the_longest_and_keep_call_order() -> None:
    calls = [
        call("nap", '{"seconds": 3, "label": "a"}', call_id="1"),
        call("nap", '{"seconds": 1, "label": "b"}', call_id="2"),
        call("unknown", call_id="3"),
        call("nap", '{"seconds": 2, "label": "c"}', call_id="4"),
    ]
    loop = asyncio.get_running_loop()
    start = loop.time()
    outcomes = await invoke_all([nap], calls, context, timeout=None)
    assert loop.time() - start == pytest.approx(3)
    assert [o.result.call_id for o in outcomes] == ["1", "2", "3", "4"]
    assert [o.result.output for o in outcomes if not o.result.is_error] == ["a", "b", "c"]
    assert outcomes[2].result.is_error


@pytest.mark.looptime
async def test_sequential_calls_take_the_sum() -> None:
    calls = [call("nap", f'{{"seconds": {s}, "label": "{s}"}}', call_id=str(s)) for s in (3, 1)]
    loop = asyncio.get_running_loop()
    start = loop.time()
    outcomes = await invoke_all(ToolSet([nap]), calls, context, timeout=None, parallel=False)
    assert loop.time() - start == pytest.approx(4)
    assert [o.result.output for o in outcomes] == ["3", "1"]


@pytest.mark.looptime
async def test_parallel_timeouts_apply_per_call() -> None:
    calls = [call("nap", f'{{"seconds": {s}, "label": "x"}}', call_id=str(s)) for s in (1, 9)]
    outcomes = await invoke_all([nap], calls, context, timeout=5)
    assert [o.result.is_error for o in outcomes] == [False, True]


# ---- handoff ----------------------------------------------------------------------------


class Specialist:
    instructions = "You are the specialist."

    @property
    def tools(self) -> Sequence[FunctionTool]:
        return tools_of(self)

    @function_tool
    async def diagnose(self, symptom: str) -> str:
        """Diagnose."""
        return symptom


class Receptionist:
    instructions = "You are the receptionist."

    @property
    def tools(self) -> Sequence[FunctionTool]:
        return tools_of(self)

    @function_tool
    async def transfer(self, ctx: RunContext) -> Specialist:
        """Transfer to the specialist."""
        return Specialist()

    @function_tool
    async def transfer_with_note(self, ctx: RunContext) -> tuple[Specialist, str]:
        """Transfer, with a note."""
        return Specialist(), "Transferring you now."


async def test_returning_an_agent_is_a_handoff() -> None:
    desk = Receptionist()
    outcome = await run(desk.tools, "transfer")
    assert isinstance(outcome.handoff, Specialist)
    assert isinstance(outcome.handoff, AgentLike)
    assert outcome.result.output == "Transferred to Specialist."
    assert [t.name for t in outcome.handoff.tools] == ["diagnose"]


async def test_returning_agent_and_message_is_a_handoff_with_that_output() -> None:
    outcome = await run(Receptionist().tools, "transfer_with_note")
    assert isinstance(outcome.handoff, Specialist)
    assert outcome.result.output == "Transferring you now."
    assert not outcome.result.is_error


async def test_other_tuples_and_dicts_are_not_handoffs() -> None:
    @function_tool
    def pair() -> Any:
        return ("a", {"instructions": "x", "tools": []})

    outcome = await run(pair, "pair")
    assert outcome.handoff is None
    assert outcome.result.output == '["a",{"instructions":"x","tools":[]}]'
