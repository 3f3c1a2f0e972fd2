"""IVRWatch: a reply asked for after a silence on both sides, and when the menu loops."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from support import Collect, Script, TimedCollect, TimedLine

import flowkit as fk
from flowkit.messages import (
    AgentState,
    AgentStateKind,
    AMDCategory,
    AMDVerdict,
    ReplyRequest,
    Transcript,
    UserState,
    UserStateKind,
)
from flowkit.nodes.ivr import DEFAULT_LOOP_INSTRUCTIONS, DEFAULT_SILENCE_INSTRUCTIONS, IVRWatch
from flowkit.nodes.llm import LLM
from flowkit.nodes.tools import ToolRouter
from flowkit.problems import NodeParamsError
from flowkit.providers.llm import ToolCallChunk
from flowkit.testing import FakeLLM, FakeReply
from flowkit.tools.dtmf import send_dtmf

SPEAKING, LISTENING, AWAY = UserStateKind.SPEAKING, UserStateKind.LISTENING, UserStateKind.AWAY
MENU = "Press 1 for sales, press 2 for support."


def user(at: float, state: UserStateKind) -> tuple[float, UserState]:
    return at, UserState(state=state)


def agent(at: float, state: AgentStateKind) -> tuple[float, AgentState]:
    return at, AgentState(state=state)


def said(at: float, text: str, final: bool = True) -> tuple[float, Transcript]:
    return at, Transcript(text=text, final=final)


async def run_watch(
    watch: IVRWatch,
    users: Script,
    agents: Script,
    transcripts: Script | None = None,
    end_at: float = 30.0,
    verdicts: Script | None = None,
) -> list[tuple[float, ReplyRequest]]:
    g = fk.Graph("ivr")
    node = g.add(watch)
    asked = TimedCollect()
    g.add(transcripts if transcripts is not None else Script(end_at=end_at)) >> node.transcripts
    g.add(users) >> node.user_state
    g.add(agents) >> node.agent_state
    if verdicts is not None:
        g.add(verdicts) >> node.verdicts
    node.requests >> g.add(asked)
    await fk.GraphRunner(g).run()
    return asked.items


def at(t: float) -> Any:
    return pytest.approx(t, abs=1e-3)


@pytest.mark.looptime
async def test_both_sides_quiet_asks_for_a_reply_once_per_silence() -> None:
    asked = await run_watch(
        IVRWatch(),
        Script(user(0.0, SPEAKING), user(2.0, LISTENING), user(20.0, AWAY), end_at=30),
        Script(agent(0.0, AgentStateKind.LISTENING), end_at=30),
    )
    # 5 s after the other side stopped, then not again while both stay quiet (away too).
    assert [t for t, _ in asked] == [at(7.0)]
    request = asked[0][1]
    assert request.instructions == DEFAULT_SILENCE_INSTRUCTIONS
    assert request.allow_interruptions and request.say is None


@pytest.mark.looptime
async def test_the_clock_starts_afresh_after_either_side_speaks_or_the_agent_acts() -> None:
    asked = await run_watch(
        IVRWatch(max_silence_duration=3.0),
        Script(
            user(0.0, SPEAKING), user(1.0, LISTENING),
            user(3.0, SPEAKING), user(4.0, LISTENING),  # speaks before the 3 s are up
            end_at=20,
        ),
        Script(
            agent(0.0, AgentStateKind.LISTENING),
            # The reply asked for at 7.0: thinking, speaking, then listening again at 9.0.
            agent(7.1, AgentStateKind.THINKING), agent(7.5, AgentStateKind.SPEAKING),
            agent(9.0, AgentStateKind.LISTENING),
            end_at=20,
        ),
    )
    assert [t for t, _ in asked] == [at(7.0), at(12.0)]


@pytest.mark.looptime
async def test_no_silence_before_the_other_side_has_spoken_or_while_the_agent_speaks() -> None:
    # No user state yet: an answered call where nobody spoke is not a silence to break.
    asked = await run_watch(
        IVRWatch(), Script(end_at=30), Script(agent(0.0, AgentStateKind.LISTENING), end_at=30)
    )
    assert asked == []
    # The agent speaking for longer than the limit is not silence either.
    asked = await run_watch(
        IVRWatch(max_silence_duration=2.0),
        Script(user(0.0, SPEAKING), user(1.0, LISTENING), end_at=20),
        Script(
            agent(0.0, AgentStateKind.LISTENING), agent(1.5, AgentStateKind.SPEAKING),
            agent(10.0, AgentStateKind.LISTENING), end_at=20,
        ),
    )
    assert [t for t, _ in asked] == [at(12.0)]


@pytest.mark.looptime
async def test_a_repeating_menu_asks_for_a_reply_that_may_not_be_interrupted() -> None:
    asked = await run_watch(
        IVRWatch(),
        Script(end_at=30),  # no states: only the loop can ask
        Script(end_at=30),
        Script(
            said(1.0, "Welcome to the bank."),
            said(2.0, MENU), said(6.0, "Press 1 for", final=False), said(7.0, MENU),
            said(12.0, MENU), said(17.0, MENU),  # the fourth time: a loop
            said(22.0, MENU),  # the count starts afresh after a loop
            end_at=30,
        ),
    )
    assert [t for t, _ in asked] == [at(17.0)]
    request = asked[0][1]
    assert request.instructions == DEFAULT_LOOP_INSTRUCTIONS
    assert request.allow_interruptions is False


@pytest.mark.parametrize(
    ("category", "asked_at"),
    [(AMDCategory.MACHINE_IVR, [at(11.0)]), (AMDCategory.HUMAN, [])],
)
@pytest.mark.looptime
async def test_with_a_detector_wired_the_watch_starts_on_a_menu_only(
    category: AMDCategory, asked_at: list[Any]
) -> None:
    # The menu repeats itself and falls silent before the verdict at 6.0: nothing yet. After
    # a menu verdict the silence clock starts (both sides already quiet): 6.0 + 5.0.
    asked = await run_watch(
        IVRWatch(),
        Script(user(0.0, SPEAKING), user(1.0, LISTENING), end_at=20),
        Script(agent(0.0, AgentStateKind.LISTENING), end_at=20),
        Script(*(said(t, MENU) for t in (0.5, 1.5, 2.5, 3.5)), end_at=20),
        verdicts=Script((6.0, AMDVerdict(category=category, reason="llm")), end_at=20),
    )
    assert [t for t, _ in asked] == asked_at


def test_out_of_range_parameters_are_refused_by_name() -> None:
    with pytest.raises(NodeParamsError, match="max_silence_duration: Input should be greater"):
        IVRWatch(max_silence_duration=0.0)
    with pytest.raises(NodeParamsError, match="loop_similarity"):
        IVRWatch(loop_similarity=2.0)


@pytest.mark.looptime
async def test_the_llm_asked_after_a_silence_gets_the_instructions_and_presses_a_key() -> None:
    # The menu speaks, then nothing: 5 s later the LLM is asked to act and presses 2.
    fake = FakeLLM(
        [FakeReply(tool_calls=(ToolCallChunk("c1", "send_dtmf", '{"keys": "2"}'),)), "Done."],
        ttft=0.0, token_gap=0.0,
    )
    g = fk.Graph("phone-menu")
    watch = g.add(IVRWatch(), name="ivr")
    g.add(Script(said(1.5, MENU), end_at=9)) >> watch.transcripts
    g.add(Script(user(0.0, SPEAKING), user(2.0, LISTENING), end_at=9)) >> watch.user_state
    g.add(Script(agent(0.0, AgentStateKind.LISTENING), end_at=9)) >> watch.agent_state
    brain = g.add(LLM(fake, tools=[send_dtmf]), name="llm")
    g.add(Script(end_at=9), name="turns") >> brain
    watch >> brain.requests
    brain.tool_calls >> g.add(ToolRouter([send_dtmf]), name="router") >> brain.tool_results
    brain >> g.add(Collect(), name="text")
    line = TimedLine()
    start = asyncio.get_running_loop().time()
    await fk.GraphRunner(g, job=fk.JobContext(io=line)).run()
    assert [d.digit for d in line.dtmf_sent] == ["2"]
    assert line.times[0] - start == pytest.approx(7.0, abs=0.05)
    asked = fake.requests[0].history
    assert asked[-1].role == "system" and asked[-1].content == DEFAULT_SILENCE_INSTRUCTIONS

