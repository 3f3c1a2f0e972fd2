"""send_dtmf: the LLM presses telephone keys through the job's room I/O (DTMFOutput)."""

import asyncio
import math
from typing import Any

import pytest
from support import Collect, Script, TimedLine, VoiceOnlyIO, collected

import flowkit as fk
from flowkit.messages import ToolCall, ToolResult
from flowkit.nodes.llm import LLM
from flowkit.nodes.tools import ToolRouter
from flowkit.providers.llm import ToolCallChunk
from flowkit.testing import FakeLLM, FakeReply
from flowkit.testing.memory_io import MemoryIO
from flowkit.tools import FunctionTool, RunContext, ToolDefinitionError, invoke_all, invoke_tool
from flowkit.tools import dtmf as dtmf_module
from flowkit.tools.dtmf import DEFAULT_KEY_GAP, DEFAULT_MAX_KEYS, send_dtmf, send_dtmf_tool


def _call(keys: str, call_id: str = "c1", name: str = "send_dtmf") -> ToolCall:
    return ToolCall(turn_id=1, call_id=call_id, name=name, arguments=f'{{"keys": "{keys}"}}')


def _context(call: ToolCall, io: Any) -> RunContext[Any]:
    return RunContext(call=call, userdata=None, job=fk.JobContext(io=io))


async def _press(keys: str, io: Any, tool: FunctionTool = send_dtmf) -> ToolResult:
    call = _call(keys, name=tool.name)
    outcome = await invoke_tool(tool, call, _context(call, io), timeout=None)
    return outcome.result


def _pressed(io: MemoryIO) -> list[tuple[str, int, str]]:
    return [(d.digit, d.code, d.participant) for d in io.dtmf_sent]


def _since_first(times: list[float]) -> list[float]:
    return [round(t - times[0], 6) for t in times]


# Through a graph: LLM -> ToolRouter -> the job's room I/O ------------------------------


def _ivr_graph(fake: FakeLLM) -> tuple[fk.Graph, Collect]:
    g = fk.Graph("ivr")
    llm = g.add(LLM(fake, tools=[send_dtmf]), name="llm")
    g.add(Script((0, fk.UserTurn(turn_id=fk.new_turn_id(), text="For sales press 1."))),
          name="turns") >> llm
    llm.tool_calls >> g.add(ToolRouter([send_dtmf]), name="router") >> llm.tool_results
    text = g.add(Collect(), name="text")
    llm >> text
    return g, text


def _tool_messages(fake: FakeLLM, request: int) -> list[str]:
    return [m.content for m in fake.requests[request].history if m.role == "tool"]


@pytest.mark.looptime
async def test_the_llm_presses_keys_on_the_jobs_line_and_reads_what_was_pressed() -> None:
    fake = FakeLLM(
        [FakeReply(tool_calls=(ToolCallChunk("c1", "send_dtmf", '{"keys": "1 2#"}'),)), "Done."],
        ttft=0.0, token_gap=0.0,
    )
    g, text = _ivr_graph(fake)
    io = MemoryIO()
    await fk.GraphRunner(g, job=fk.JobContext(io=io)).run()
    assert _pressed(io) == [("1", 1, "agent"), ("2", 2, "agent"), ("#", 11, "agent")]
    assert _tool_messages(fake, 1) == ["Pressed 1 2 # on the phone keypad."]
    assert "".join(chunk.text for chunk in collected(text)) == "Done."
    assert [spec.name for spec in fake.requests[0].tools] == ["send_dtmf"]


@pytest.mark.parametrize(
    ("job", "why"),
    [
        (None, "the tool runs outside a job"),
        (fk.JobContext(), "the job has no room I/O"),
        (fk.JobContext(io=VoiceOnlyIO()), "its room I/O, VoiceOnlyIO, cannot send DTMF tones"),
    ],
    ids=["no job", "no io", "io without DTMFOutput"],
)
@pytest.mark.looptime
async def test_without_a_phone_line_the_llm_is_told_and_the_conversation_goes_on(
    job: fk.JobContext | None, why: str
) -> None:
    fake = FakeLLM(
        [FakeReply(tool_calls=(ToolCallChunk("c1", "send_dtmf", '{"keys": "1"}'),)),
         "I cannot press keys here."],
        ttft=0.0, token_gap=0.0,
    )
    g, text = _ivr_graph(fake)
    await fk.GraphRunner(g, job=job).run()
    [message] = _tool_messages(fake, 1)
    assert message.startswith(f"This session has no phone line to press keys on ({why})")
    assert "nothing was pressed" in message
    # The job lives on: the LLM got the error result and answered the user.
    assert "".join(chunk.text for chunk in collected(text)) == "I cannot press keys here."


@pytest.mark.looptime
async def test_no_phone_line_is_said_before_the_keys_are_checked() -> None:
    # Keys corrected for a session that cannot press them would be a wasted call.
    result = await _press("1x", VoiceOnlyIO())
    assert result.is_error and result.output.startswith("This session has no phone line")


# The keys the LLM sends -----------------------------------------------------------------


@pytest.mark.looptime
async def test_a_key_not_on_a_keypad_is_named_and_nothing_is_pressed() -> None:
    io = MemoryIO()
    result = await _press("12x3p#x", io)
    assert result.is_error
    assert result.output.startswith("'x', 'p' are not keypad keys (in keys='12x3p#x')")
    assert "nothing was pressed" in result.output
    one = await _press("9*o", io)  # a letter o, not a zero
    assert one.is_error
    assert one.output.startswith("'o' is not a telephone keypad key (in keys='9*o')")
    assert io.dtmf_sent == []  # not even the good keys before the bad one


@pytest.mark.looptime
async def test_separators_and_lowercase_letters_are_read_as_keys() -> None:
    io = MemoryIO()
    result = await _press("a-b, 1 2*", io)
    assert not result.is_error, result.output
    assert [d.digit for d in io.dtmf_sent] == ["A", "B", "1", "2", "*"]
    assert [d.code for d in io.dtmf_sent] == [12, 13, 1, 2, 10]
    assert result.output == "Pressed A B 1 2 * on the phone keypad."


@pytest.mark.parametrize("keys", ["", " , - "])
@pytest.mark.looptime
async def test_no_keys_at_all_is_an_error_result(keys: str) -> None:
    io = MemoryIO()
    result = await _press(keys, io)
    assert result.is_error and "has no key to press" in result.output
    assert io.dtmf_sent == []


@pytest.mark.looptime
async def test_more_keys_than_a_call_may_press_are_refused_whole() -> None:
    io = MemoryIO()
    assert DEFAULT_MAX_KEYS == 32
    result = await _press("1" * 33, io)
    assert result.is_error and io.dtmf_sent == []
    assert result.output.startswith("keys='111")
    assert "has 33 keys, more than the 32 one call may press" in result.output
    assert "in parts" in result.output
    # Separators do not count; exactly the cap is pressed.
    fits = await _press("-".join("1234") * 8, io)
    assert not fits.is_error, fits.output
    assert len(io.dtmf_sent) == 32
    # A cap of one's own.
    short = await _press("123", MemoryIO(), send_dtmf_tool(max_keys=2))
    assert short.is_error and "more than the 2 one call may press" in short.output


# Pace, turns and failures ----------------------------------------------------------------


@pytest.mark.looptime
async def test_keys_are_pressed_at_livekits_pace_or_the_gap_given() -> None:
    loop = asyncio.get_running_loop()
    io = TimedLine()
    start = loop.time()
    await _press("123", io)
    assert DEFAULT_KEY_GAP == 0.3
    assert _since_first(io.times) == [0.0, 0.3, 0.6]
    # The call returns one gap after its last key, so a next call keeps the pace.
    assert loop.time() - start == pytest.approx(0.9)

    slow = TimedLine()
    await _press("45", slow, send_dtmf_tool(gap=1.5))
    assert _since_first(slow.times) == [0.0, 1.5]


@pytest.mark.looptime
async def test_calls_of_one_reply_take_turns_on_the_line_in_call_order() -> None:
    io = TimedLine()
    calls = [_call("12", "c1"), _call("3#", "c2")]
    outcomes = await invoke_all(
        send_dtmf, calls, lambda call: _context(call, io), timeout=None, parallel=True
    )
    assert [o.result.output for o in outcomes] == [
        "Pressed 1 2 on the phone keypad.", "Pressed 3 # on the phone keypad.",
    ]
    assert [d.digit for d in io.dtmf_sent] == ["1", "2", "3", "#"]
    assert _since_first(io.times) == [0.0, 0.3, 0.6, 0.9]
    assert dtmf_module._lines == {}  # nothing is kept once the calls are done


@pytest.mark.looptime
async def test_a_line_that_fails_midway_says_which_keys_went_through() -> None:
    io = TimedLine(fail_at=3)
    result = await _press("123#", io)
    assert result.is_error
    assert result.output.startswith(
        "The phone line failed while pressing '3' (RuntimeError: the room closed): "
        "1 2 went through, 3 # did not."
    )
    assert [d.digit for d in io.dtmf_sent] == ["1", "2"]
    again = await _press("3#", io)  # the line was released: the next call presses
    assert not again.is_error and [d.digit for d in io.dtmf_sent] == ["1", "2", "3", "#"]


# The tool itself ----------------------------------------------------------------------------


def test_the_tool_asks_the_llm_for_one_string_of_keys() -> None:
    assert send_dtmf.name == "send_dtmf"
    assert "phone menu" in send_dtmf.description
    assert send_dtmf.parameters["required"] == ["keys"]
    keys = send_dtmf.parameters["properties"]["keys"]
    assert keys["type"] == "string" and '"1234#"' in keys["description"]
    custom = send_dtmf_tool(name="press_keys", description="Press keys for the bank's menu.")
    assert (custom.name, custom.description) == ("press_keys", "Press keys for the bank's menu.")


@pytest.mark.parametrize("gap", [-0.1, math.inf, math.nan])
def test_a_gap_that_is_not_a_duration_is_refused(gap: float) -> None:
    with pytest.raises(ValueError, match=r"gap between key presses must be a finite number"):
        send_dtmf_tool(gap=gap)


def test_a_cap_below_one_key_is_refused() -> None:
    with pytest.raises(ValueError, match=r"max_keys=0.*at least one key"):
        send_dtmf_tool(max_keys=0)


def test_a_bad_tool_name_is_refused() -> None:
    with pytest.raises(ToolDefinitionError, match="not a valid tool name"):
        send_dtmf_tool(name="press keys")
