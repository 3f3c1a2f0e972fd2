"""Tools that wait for their reply to be heard (``await ctx.wait_for_playout()``)."""

from __future__ import annotations

import asyncio

import pytest
from support import Collect, Script, collected

import flowkit as fk
from flowkit.nodes.llm import LLM
from flowkit.nodes.room import RoomSink
from flowkit.nodes.tool_playout import PlayoutWaits
from flowkit.nodes.tools import ToolRouter
from flowkit.nodes.tts import TTS
from flowkit.providers.llm import ToolCallChunk
from flowkit.testing import FakeLLM, FakeReply
from flowkit.testing.fakes import FakeTTS
from flowkit.testing.memory_io import MemoryIO

GOODBYE = "I will put you through to a colleague now."


def _report(turn_id: int, event: fk.PlayoutEvent, mark: int = 0) -> fk.Playout:
    return fk.Playout(turn_id=turn_id, event=event, mark=mark)


async def test_a_wait_ends_when_the_speaker_reaches_its_own_marker() -> None:
    waits = PlayoutWaits()
    first, first_done = waits.new_mark(5)
    second, second_done = waits.new_mark(5)
    assert first != second and not first_done.done()
    waits.on_playout(_report(5, fk.PlayoutEvent.STARTED))
    waits.on_playout(_report(5, fk.PlayoutEvent.REACHED, mark=second))
    assert second_done.done() and not first_done.done()
    waits.on_playout(_report(5, fk.PlayoutEvent.REACHED, mark=first))
    assert first_done.done()


@pytest.mark.parametrize("report", [
    _report(5, fk.PlayoutEvent.FINISHED),
    _report(5, fk.PlayoutEvent.INTERRUPTED),
    _report(6, fk.PlayoutEvent.STARTED),  # the speaker moved on to a newer reply
])
async def test_a_wait_ends_when_its_reply_is_over_even_if_the_marker_never_came(
    report: fk.Playout,
) -> None:
    waits = PlayoutWaits()
    _, done = waits.new_mark(5)
    waits.on_playout(_report(5, fk.PlayoutEvent.PAUSED))
    waits.on_playout(_report(4, fk.PlayoutEvent.FINISHED))  # an older reply's end
    assert not done.done()
    waits.on_playout(report)
    assert done.done()
    # A marker of a reply that is over has nothing to wait for.
    assert waits.new_mark(5)[1].done()


async def test_every_wait_ends_when_the_reports_end() -> None:
    waits = PlayoutWaits()
    _, done = waits.new_mark(5)
    waits.close()
    assert done.done() and waits.new_mark(9)[1].done()


def _graph(
    tool: fk.FunctionTool, *, playout: bool = True, speech: bool = True, before: str = GOODBYE,
    turn_id: int | None = None,
) -> tuple[fk.Graph, LLM, RoomSink]:
    fake = FakeLLM([
        FakeReply(text=before, tool_calls=(ToolCallChunk("c1", tool.name, "{}"),)),
        "Done.",
    ], ttft=0.1, token_gap=0.0)
    g = fk.Graph("transfer")
    llm = g.add(LLM(fake, tools=[tool]), name="llm")
    turn = fk.UserTurn(turn_id=turn_id or fk.new_turn_id(), text="a person, please")
    g.add(Script((0, turn)),
          name="turns") >> llm
    router = g.add(ToolRouter([tool]), name="router")
    llm.tool_calls >> router >> llm.tool_results
    if speech:
        router.speech >> llm.tool_speech
    sink = g.add(RoomSink(), name="speaker")
    llm >> g.add(TTS(FakeTTS(seconds_per_char=0.05, ttfa=0.1)), name="tts") >> sink
    sink.playout >> llm.playout
    if playout:
        sink.playout >> router.playout
    return g, llm, sink


async def _transfer_moment(wait: bool) -> tuple[float, float, list[float]]:
    """When the tool acted, when the goodbye's audio ends, and when every frame started."""
    loop = asyncio.get_running_loop()
    moments: list[float] = []

    @fk.function_tool
    async def transfer(ctx: fk.RunContext) -> str:
        """Put the caller through to a person."""
        if wait:
            await ctx.wait_for_playout()
        moments.append(loop.time())
        return "transferred"

    g, _, _ = _graph(transfer)
    io = MemoryIO(paced=True)
    runner = fk.GraphRunner(g, job=fk.JobContext(io=io))
    await runner.run()
    assert runner.node_errors == []
    frames = [at for at, _ in io.played]
    [moment] = moments
    return moment, frames[0] + len(GOODBYE) * 0.05, frames


@pytest.mark.looptime
async def test_a_tool_that_waits_acts_once_the_words_before_it_were_heard() -> None:
    moment, end, frames = await _transfer_moment(wait=True)
    # A paced output's write returns as its frame starts, so the marker behind the last
    # frame is reached as that frame plays: within a frame of the end.
    assert end - 0.021 <= moment <= end + 0.01
    # The goodbye played whole, then "Done." once the tool had returned.
    later = [at for at in frames if at > moment]
    assert later[0] > moment + 0.1
    assert max(at for at in frames if at <= moment) == pytest.approx(end - 0.02, abs=0.001)


@pytest.mark.looptime
async def test_without_waiting_the_tool_acts_while_the_words_play() -> None:
    moment, end, frames = await _transfer_moment(wait=False)
    assert moment < frames[0] + 0.1 < end - 1.0  # before most of the words were heard


@pytest.mark.looptime
async def test_a_tool_called_before_any_words_does_not_wait() -> None:
    loop = asyncio.get_running_loop()
    moments: list[float] = []

    @fk.function_tool
    async def transfer(ctx: fk.RunContext) -> str:
        """Put the caller through to a person."""
        called = loop.time()
        await ctx.wait_for_playout()
        moments.append(loop.time() - called)
        return "transferred"

    g, _, _ = _graph(transfer, before="")
    io = MemoryIO(paced=True)
    runner = fk.GraphRunner(g, job=fk.JobContext(io=io))
    await runner.run()
    assert runner.node_errors == []
    # The marker crossed the LLM, TTS and speaker nodes and came back: no time on the clock.
    assert moments == [pytest.approx(0.0, abs=0.005)]
    assert io.played  # "Done." after it


@pytest.mark.looptime
async def test_a_wait_ends_when_the_user_cuts_the_reply_off() -> None:
    loop = asyncio.get_running_loop()
    moments: list[float] = []

    @fk.function_tool
    async def transfer(ctx: fk.RunContext) -> str:
        """Put the caller through to a person."""
        await ctx.wait_for_playout()
        moments.append(loop.time())
        return "transferred"

    g, llm, sink = _graph(transfer)
    flush = fk.Interrupt(turn_id=0, action=fk.InterruptAction.FLUSH, reason="barge_in")
    g.add(Script((1.0, flush)), name="barge") >> sink.interrupt
    start = loop.time()
    runner = fk.GraphRunner(g, job=fk.JobContext(io=MemoryIO(paced=True)))
    await runner.run()
    assert runner.node_errors == []
    [moment] = moments
    assert moment - start == pytest.approx(1.0, abs=0.02)
    assert llm.history.messages[1].interrupted


@pytest.mark.looptime
async def test_a_wait_ends_when_code_flushes_the_reply_before_its_audio_came() -> None:
    loop = asyncio.get_running_loop()
    waited: list[float] = []

    @fk.function_tool
    async def transfer(ctx: fk.RunContext) -> str:
        """Put the caller through to a person."""
        try:
            await ctx.wait_for_playout()
        finally:  # the wait ends either way: the reply's end, or the reply cancelled
            waited.append(loop.time())
        return "transferred"

    turn_id = fk.new_turn_id()
    g, llm, sink = _graph(transfer, turn_id=turn_id)
    # The tool is called at 0.1 s and the goodbye's first audio comes at 0.2 s: flushed
    # by name in between, the speaker never has any of that reply.
    flush = fk.Interrupt(turn_id=turn_id, action=fk.InterruptAction.FLUSH, reason="code")
    g.add(Script((0.15, flush)), name="code") >> sink.interrupt
    reports = g.add(Collect(), name="reports")
    sink.playout >> reports
    start = loop.time()
    io = MemoryIO(paced=True)
    runner = fk.GraphRunner(g, job=fk.JobContext(io=io))
    await runner.run()
    assert runner.node_errors == []
    [moment] = waited
    assert moment - start == pytest.approx(0.15, abs=0.02)  # not the tool's 30 s timeout
    assert io.played == []
    [report] = collected(reports)
    assert (report.turn_id, report.event, report.played_text) == (
        turn_id, fk.PlayoutEvent.INTERRUPTED, ""
    )
    # The reply is over for the LLM too: what it streamed is kept as heard, that is nothing,
    # and no reply follows the tool's result.
    assert [(m.role, m.interrupted) for m in llm.history.messages] == [
        ("user", False), ("assistant", True), ("tool", False)
    ]
    assert llm.history.messages[1].content == ""


@pytest.mark.parametrize("unlinked", ["speech", "playout"])
@pytest.mark.looptime
async def test_a_router_that_cannot_follow_the_reply_says_what_to_link(unlinked: str) -> None:
    errors: list[str] = []

    @fk.function_tool
    async def transfer(ctx: fk.RunContext) -> str:
        """Put the caller through to a person."""
        try:
            await ctx.wait_for_playout()
        except RuntimeError as error:
            errors.append(str(error))
        return "transferred"

    g, _, _ = _graph(transfer, playout=unlinked != "playout", speech=unlinked != "speech")
    await fk.GraphRunner(g, job=fk.JobContext(io=MemoryIO(paced=True))).run()
    [error] = errors
    assert "ctx.wait_for_playout()" in error and "'router'" in error
    links = {"speech": "router.speech >> llm.tool_speech",
             "playout": "speaker.playout >> router.playout"}
    assert links[unlinked] in error
    assert all(link not in error for name, link in links.items() if name != unlinked)


async def test_a_context_without_a_session_says_so() -> None:
    call = fk.ToolCall(call_id="c1", name="transfer")
    with pytest.raises(RuntimeError, match="wait_for_playout"):
        await fk.RunContext(call=call, userdata=None).wait_for_playout()
