"""EndCall and the end_call tool: the call ends once the goodbye has played, not before."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest
from support import Script, TimedCollect

import flowkit as fk
from flowkit.messages import Playout, PlayoutEvent, ToolResult, UserTurn
from flowkit.nodes.end_call import END_CALL_REASON, EndCall
from flowkit.nodes.llm import LLM
from flowkit.nodes.room import RoomSink
from flowkit.nodes.tools import ToolRouter
from flowkit.nodes.tts import TTS
from flowkit.providers.chat import ChatMessage
from flowkit.providers.llm import ToolCallChunk
from flowkit.testing import FakeLLM, FakeReply, FakeTTS
from flowkit.testing.memory_io import MemoryIO
from flowkit.tools.end_call import DEFAULT_END_INSTRUCTIONS, end_call, end_call_tool
from flowkit.tools.invoke import invoke_tool

GOODBYE = "Goodbye, and thanks for calling!"


def _model() -> FakeLLM:
    """Calls end_call on "bye" (with a few words first), then says goodbye after the tool."""

    def reply(history: Sequence[ChatMessage]) -> str | FakeReply:
        if history[-1].role == "tool":
            return GOODBYE
        return FakeReply(
            text="Alright.", tool_calls=(ToolCallChunk("c1", "end_call", "{}"),)
        )

    return FakeLLM(reply, ttft=0.1, token_gap=0.02)


async def _call_ended(
    job: fk.JobContext, g: fk.Graph, timeout: float = 30.0,
    metrics: list[fk.GraphMetrics] | None = None,
) -> float | None:
    """Run the graph; the loop time (from the start) at which the job was asked to end.

    ``metrics`` gets the runner's figures at that moment.
    """
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with fk.GraphRunner(g, job=job) as runner:
        try:
            await asyncio.wait_for(job.wait_for_shutdown(), timeout)
        except TimeoutError:
            return None
        if metrics is not None:
            metrics.append(runner.metrics())
        return round(loop.time() - start, 6)


@pytest.mark.looptime
async def test_the_call_ends_when_the_goodbye_after_the_tool_has_played() -> None:
    io = MemoryIO(paced=True)
    job = fk.JobContext(io=io)
    voice = FakeTTS(seconds_per_char=0.05, ttfa=0.05)
    g = fk.Graph("goodbye")
    llm = g.add(LLM(_model(), tools=[end_call]), name="llm")
    g.add(Script((0.0, UserTurn(turn_id=1, text="That's all, bye.")))) >> llm
    router = g.add(ToolRouter([end_call]), name="router")
    llm.tool_calls >> router >> llm.tool_results
    sink = g.add(RoomSink(), name="sink")
    llm >> g.add(TTS(voice)) >> sink
    sink.playout >> llm.playout
    hang_up = g.add(EndCall(end_call), name="end_call")
    router.results >> hang_up.results
    reports = TimedCollect()
    sink.playout >> hang_up.playout
    sink.playout >> g.add(reports)
    llm >> hang_up.text  # linked too: unused while playout is, and read so it cannot pile up

    figures: list[fk.GraphMetrics] = []
    ended_at = await _call_ended(job, g, metrics=figures)

    assert job.shutdown_reason == END_CALL_REASON
    # The unused text input was read as it came: nothing piled up in its queue.
    unused = figures[0].edge("llm.text", "end_call.text")
    assert unused.messages > 0 and unused.queue_depth == 0
    # The goodbye came after the tool's answer, in the reply of the same turn.
    assert " ".join(voice.texts) == f"Alright. {GOODBYE}"
    finished = [(t, r) for t, r in reports.items if r.event is PlayoutEvent.FINISHED]
    assert len(finished) == 1
    finished_at, report = finished[0]
    assert report.played_text == f"Alright. {GOODBYE}"  # all of it was heard
    # About 1.6 s of goodbye audio: the call ended when it had played, not at the tool call.
    assert ended_at is not None and finished_at <= ended_at < finished_at + 0.05
    assert report.played_duration > 1.5


@pytest.mark.looptime
async def test_without_a_speaker_the_call_ends_when_the_goodbye_is_written() -> None:
    job = fk.JobContext()  # a text-only session: no TTS, no sink, no playout reports
    g = fk.Graph("goodbye")
    llm = g.add(LLM(_model(), tools=[end_call]), name="llm")
    g.add(Script((0.0, UserTurn(turn_id=1, text="That's all, bye.")))) >> llm
    router = g.add(ToolRouter([end_call]), name="router")
    llm.tool_calls >> router >> llm.tool_results
    hang_up = g.add(EndCall(end_call), name="end_call")
    router.results >> hang_up.results
    text = TimedCollect()
    llm >> g.add(text)
    llm >> hang_up.text

    ended_at = await _call_ended(job, g)

    assert job.shutdown_reason == END_CALL_REASON
    written = "".join(c.text for _, c in text.items)
    assert written.endswith(GOODBYE)  # the whole goodbye was written before it ended
    [last_at] = [t for t, c in text.items if c.final]
    assert ended_at is not None and last_at <= ended_at < last_at + 0.05


@pytest.mark.looptime
async def test_an_end_call_that_cannot_tell_when_the_goodbye_ends_says_how_and_waits_max_wait(
    caplog: pytest.LogCaptureFixture,
) -> None:
    g = fk.Graph("hang-up")
    node = g.add(EndCall(max_wait=2.0), name="end_call")
    g.add(Script((0.5, _result()))) >> node.results
    job = fk.JobContext()
    with caplog.at_level(logging.WARNING, logger="flowkit.node.end_call"):
        ended_at = await _call_ended(job, g)
    assert job.shutdown_reason == END_CALL_REASON
    assert ended_at == 2.5  # max_wait after the result
    assert any(
        "sink.playout >> end_call.playout" in r.getMessage()
        and "llm.text >> end_call.text" in r.getMessage()
        for r in caplog.records
    )


async def _run_node(
    node: EndCall, results: Script, playout: Script, job: fk.JobContext | None
) -> None:
    g = fk.Graph("hang-up")
    g.add(node, name="end_call")
    g.add(results) >> node.results
    g.add(playout) >> node.playout
    await fk.GraphRunner(g, job=job).run()


def _result(name: str = "end_call", turn: int = 3, error: bool = False) -> ToolResult:
    return ToolResult(turn_id=turn, call_id="c", name=name, output="x", is_error=error)


def _report(event: PlayoutEvent, turn: int = 3) -> Playout:
    return Playout(turn_id=turn, event=event)


@pytest.mark.looptime
async def test_an_interrupted_goodbye_ends_the_call_too_and_other_turns_do_not() -> None:
    job = fk.JobContext()
    results = Script((0.0, _result()))
    playout = Script(
        (0.5, _report(PlayoutEvent.FINISHED, turn=2)),  # an older reply: not the goodbye
        (0.6, _report(PlayoutEvent.PAUSED)),
        (1.0, _report(PlayoutEvent.INTERRUPTED)),
    )
    loop = asyncio.get_running_loop()
    start = loop.time()
    ended: list[float] = []
    job.add_shutdown_callback(lambda: _note(ended, loop.time() - start))
    task = asyncio.ensure_future(_run_node(EndCall(), results, playout, job))
    assert await job.wait_for_shutdown() == END_CALL_REASON
    assert round(loop.time() - start, 6) == 1.0  # at the interruption, not at turn 2's end
    await task


async def _note(times: list[float], t: float) -> None:
    times.append(t)


@pytest.mark.looptime
async def test_a_failed_tool_or_another_tool_does_not_end_the_call() -> None:
    job = fk.JobContext()
    results = Script(
        (0.0, _result(error=True)), (0.1, _result(name="lookup")),
    )
    playout = Script((1.0, _report(PlayoutEvent.FINISHED)))
    await _run_node(EndCall(), results, playout, job)
    assert not job.shutdown_requested


@pytest.mark.looptime
async def test_a_goodbye_that_never_finishes_ends_the_call_after_max_wait(
    caplog: pytest.LogCaptureFixture,
) -> None:
    job = fk.JobContext()
    loop = asyncio.get_running_loop()
    start = loop.time()
    results = Script((0.2, _result(name="hang_up")))
    playout = Script((0.3, _report(PlayoutEvent.STARTED)), (30.0, _report(PlayoutEvent.FINISHED)))
    with caplog.at_level(logging.WARNING):
        task = asyncio.ensure_future(
            _run_node(EndCall(end_call_tool(name="hang_up"), max_wait=4.0), results, playout, job)
        )
        assert await job.wait_for_shutdown() == END_CALL_REASON
    assert round(loop.time() - start, 6) == pytest.approx(4.2)
    assert "did not finish within max_wait=4 s" in caplog.text
    task.cancel()


async def test_the_tool_answers_the_llm_with_the_instruction_to_say_goodbye() -> None:
    call = fk.ToolCall(turn_id=1, call_id="c1", name="end_call", arguments="{}")
    context = fk.RunContext(call=call, userdata=None)
    outcome = await invoke_tool(end_call, call, context, timeout=None)
    assert outcome.result.output == DEFAULT_END_INSTRUCTIONS
    assert not outcome.result.is_error
    custom = end_call_tool(name="hang_up", end_instructions="Thank them, then stop.")
    assert custom.name == "hang_up"
    call = fk.ToolCall(turn_id=1, call_id="c2", name="hang_up", arguments="{}")
    outcome = await invoke_tool(custom, call, context, timeout=None)
    assert outcome.result.output == "Thank them, then stop."
    assert "transferred" in end_call.description
