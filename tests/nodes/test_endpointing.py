"""Endpointing delays learned from the user's pauses (``TurnDetector(endpointing="dynamic")``)."""

from __future__ import annotations

import pytest
from support import Script
from test_turn_detector import agent, at, final, run_detector, vad

from flowkit.messages import AgentStateKind, VADEventKind
from flowkit.node import NodeParamsError
from flowkit.nodes.endpointing import DynamicDelays
from flowkit.nodes.turn import TurnDetector

START, END = VADEventKind.START_OF_SPEECH, VADEventKind.END_OF_SPEECH


def test_a_pause_the_user_went_on_after_moves_the_short_delay_toward_it() -> None:
    delays = DynamicDelays(0.5, 3.0, alpha=0.9)
    delays.user_ended(1.0)
    delays.user_started(2.0)  # a 1 s pause, and no reply meanwhile (case 1)
    assert delays.min_delay == pytest.approx(0.9 * 0.5 + 0.1 * 1.0)
    assert delays.max_delay == 3.0
    for start in range(3, 60, 2):  # the same pause again and again
        delays.user_ended(start - 1.0)
        delays.user_started(float(start))
    assert delays.min_delay == pytest.approx(1.0, abs=0.03)


def test_the_user_going_on_just_after_the_agent_started_is_a_false_end_of_turn() -> None:
    delays = DynamicDelays(0.5, 3.0, alpha=0.5)
    delays.user_ended(1.0)
    delays.agent_started(1.6)  # the turn was committed and the agent began to answer...
    delays.user_started(1.9)   # ...but the user went on 0.3 s later (case 2)
    assert delays.min_delay == pytest.approx(0.5 * 0.5 + 0.5 * 0.9)
    assert delays.max_delay == 3.0


def test_the_gap_before_the_agents_answer_moves_the_long_delay() -> None:
    delays = DynamicDelays(0.5, 3.0, alpha=0.5)
    delays.user_ended(1.0)
    delays.agent_started(2.0)
    delays.agent_started(2.5)  # a second reply: only the first answer counts
    delays.user_started(6.0)   # the user answered the agent (case 3)
    assert delays.max_delay == pytest.approx(0.5 * 3.0 + 0.5 * 1.0)
    assert delays.min_delay == 0.5


def test_delays_stay_within_the_given_bounds_and_ignore_the_agent_over_the_user() -> None:
    delays = DynamicDelays(0.5, 3.0, alpha=0.0)  # no memory: each pause is taken whole
    delays.user_ended(1.0)
    delays.user_started(11.0)  # a 10 s pause: held to the maximum
    assert delays.min_delay == 3.0
    delays.user_ended(12.0)
    delays.user_started(12.1)  # 0.1 s: held to the minimum
    assert delays.min_delay == 0.5
    # The agent starting while the user speaks answers nothing: no turn gap is learned.
    delays.user_started(20.0)
    delays.agent_started(20.5)
    delays.user_ended(21.0)
    delays.user_started(30.0)
    assert (delays.min_delay, delays.max_delay) == (3.0, 3.0)


def test_alpha_outside_its_range_is_refused_with_what_it_means() -> None:
    with pytest.raises(ValueError, match=r"must be in \[0, 1\)"):
        DynamicDelays(0.5, 3.0, alpha=1.0)
    with pytest.raises(NodeParamsError, match="endpointing_alpha"):
        TurnDetector(endpointing="dynamic", endpointing_alpha=1.5)


@pytest.mark.looptime
async def test_a_user_who_pauses_long_mid_turn_gets_a_longer_delay() -> None:
    # Twice the user pauses 1.2 s and goes on before anything is committed (no text yet),
    # then finishes: with the learned delay the turn commits later than 0.5 s after.
    detector = TurnDetector(min_endpointing_delay=0.5, max_endpointing_delay=3.0,
                            endpointing="dynamic", endpointing_alpha=0.5)
    turns, _, _ = await run_detector(
        detector,
        Script(final(4.6, "I would like to book a table"), end_at=10),
        Script(vad(0.0, START), vad(1.0, END), vad(2.2, START), vad(3.0, END),
               vad(4.2, START), vad(5.0, END), end_at=10),
    )
    short, long = detector.endpointing_delays
    assert short == pytest.approx(0.5 * (0.5 * 0.5 + 0.5 * 1.2) + 0.5 * 1.2)  # 1.025
    assert long == 3.0
    assert turns == [(at(5.0 + short), "I would like to book a table")]


@pytest.mark.looptime
async def test_fixed_endpointing_learns_nothing() -> None:
    detector = TurnDetector(min_endpointing_delay=0.5)
    turns, _, _ = await run_detector(
        detector,
        Script(final(4.6, "a table for two"), end_at=10),
        Script(vad(0.0, START), vad(1.0, END), vad(2.2, START), vad(3.0, END),
               vad(4.2, START), vad(5.0, END), end_at=10),
    )
    assert detector.endpointing_delays == (0.5, 6.0)
    assert turns == [(at(5.5), "a table for two")]


@pytest.mark.looptime
async def test_the_agents_answers_teach_the_long_delay_through_agent_state() -> None:
    # The turn model is sure of "hello" (the short delay) and unsure of "and then" (the
    # long one). The agent answers "hello" 1 s after the user stopped, and the user speaks
    # again later: the long delay moves from 3 s halfway to 1 s, and "and then" waits 2 s.
    detector = TurnDetector(min_endpointing_delay=0.5, max_endpointing_delay=3.0,
                            endpointing="dynamic", endpointing_alpha=0.5,
                            end_of_turn=lambda text: 1.0 if text == "hello" else 0.0)
    turns, _, _ = await run_detector(
        detector,
        Script(final(0.5, "hello"), final(5.5, "and then"), end_at=12),
        Script(vad(0.0, START), vad(1.0, END), vad(5.0, START), vad(6.0, END), end_at=12),
        agent_states=Script(agent(2.0, AgentStateKind.SPEAKING),
                            agent(4.0, AgentStateKind.LISTENING)),
    )
    assert detector.endpointing_delays == (0.5, pytest.approx(2.0))
    assert turns == [(at(1.5), "hello"), (at(8.0), "and then")]
