"""TurnDetector: endpointing in each mode, on the loop's virtual clock."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from support import Script, TimedCollect

import flowkit as fk
from flowkit.messages import (
    AgentState,
    AgentStateKind,
    Transcript,
    UserStateKind,
    VADEvent,
    VADEventKind,
)
from flowkit.nodes.turn import TurnDetector

START, END = VADEventKind.START_OF_SPEECH, VADEventKind.END_OF_SPEECH
SPEAKING, LISTENING, AWAY = UserStateKind.SPEAKING, UserStateKind.LISTENING, UserStateKind.AWAY


def at(t: float) -> Any:
    """A time on the virtual clock, compared with a tolerance."""
    return pytest.approx(t)


def vad(at: float, kind: VADEventKind, speech: float = 0.0) -> tuple[float, VADEvent]:
    return at, VADEvent(kind=kind, speech_duration=speech)


def final(at: float, text: str) -> tuple[float, Transcript]:
    return at, Transcript(text=text, final=True)


def interim(at: float, text: str) -> tuple[float, Transcript]:
    return at, Transcript(text=text, final=False)


async def run_detector(
    detector: TurnDetector,
    transcripts: Script,
    vad_events: Script | None = None,
    commits: Script | None = None,
    agent_states: Script | None = None,
    clears: Script | None = None,
) -> tuple[list[tuple[float, str]], list[tuple[float, UserStateKind]], list[int]]:
    """Run the detector; return (time, text) of turns, (time, state) of user states, ids."""
    g = fk.Graph("turns")
    node = g.add(detector)
    turns, states = TimedCollect(), TimedCollect()
    g.add(transcripts) >> node.transcripts
    if vad_events is not None:
        g.add(vad_events) >> node.vad
    if commits is not None:
        g.add(commits) >> node.commit
    if agent_states is not None:
        g.add(agent_states) >> node.agent_state
    if clears is not None:
        g.add(clears) >> node.clear
    node.turns >> g.add(turns)
    node.user_state >> g.add(states)
    await fk.GraphRunner(g).run()
    return (
        [(t, u.text) for t, u in turns.items],
        [(t, s.state) for t, s in states.items],
        [u.turn_id for _, u in turns.items],
    )


@pytest.mark.looptime
async def test_vad_mode_commits_min_delay_after_end_of_speech() -> None:
    turns, states, ids = await run_detector(
        TurnDetector(min_endpointing_delay=0.5),
        Script(final(0.8, "hello"), final(0.9, " there "), end_at=10),
        Script(vad(0.0, START), vad(1.0, END), end_at=10),
    )
    assert turns == [(at(1.5), "hello there")]
    assert states == [(0.0, SPEAKING), (at(1.0), LISTENING)]
    assert ids[0] > 0


@pytest.mark.looptime
async def test_speech_resuming_before_the_delay_cancels_the_commit() -> None:
    turns, _, _ = await run_detector(
        TurnDetector(min_endpointing_delay=0.5),
        Script(final(0.5, "one"), final(1.8, "two"), end_at=10),
        Script(vad(0.0, START), vad(1.0, END), vad(1.3, START), vad(2.0, END), end_at=10),
    )
    assert turns == [(at(2.5), "one two")]


@pytest.mark.looptime
async def test_final_transcript_after_the_delay_commits_at_once() -> None:
    turns, _, _ = await run_detector(
        TurnDetector(min_endpointing_delay=0.5),
        Script(final(2.0, "late words"), end_at=10),
        Script(vad(0.0, START), vad(1.0, END), end_at=10),
    )
    assert turns == [(at(2.0), "late words")]


@pytest.mark.looptime
async def test_final_transcript_within_the_delay_keeps_the_vad_timing() -> None:
    turns, _, _ = await run_detector(
        TurnDetector(min_endpointing_delay=0.5),
        Script(final(1.2, "hi"), end_at=10),
        Script(vad(0.0, START), vad(1.0, END), end_at=10),
    )
    assert turns == [(at(1.5), "hi")]


async def run_for_tentative(
    detector: TurnDetector, transcripts: Script, vad_events: Script | None = None
) -> tuple[list[tuple[float, str, int]], list[tuple[float, str, int]]]:
    """Run the detector; return (time, text, turn id) of its tentative and committed turns."""
    g = fk.Graph("tentative")
    node = g.add(detector)
    g.add(transcripts) >> node.transcripts
    if vad_events is not None:
        g.add(vad_events) >> node.vad
    tentative, turns = TimedCollect(), TimedCollect()
    node.tentative >> g.add(tentative)
    node.turns >> g.add(turns)
    await fk.GraphRunner(g).run()
    return (
        [(t, u.text, u.turn_id) for t, u in tentative.items],
        [(t, u.text, u.turn_id) for t, u in turns.items],
    )


@pytest.mark.looptime
async def test_the_text_a_turn_would_commit_with_is_announced_while_the_delay_runs() -> None:
    tentative, turns = await run_for_tentative(
        TurnDetector(min_endpointing_delay=0.5),
        Script(final(0.5, "one"), final(1.8, "two"), final(3.2, "three"), end_at=10),
        # Speech resumes at 1.3 and ends at 1.6; a cough at 1.9; a second turn from 3.0.
        Script(vad(0.0, START), vad(1.0, END), vad(1.3, START), vad(1.6, END),
               vad(1.9, START), vad(1.95, END), vad(3.0, START), vad(3.1, END), end_at=10),
    )
    # Announced when the delay starts with text pending, and again only when the text
    # changes: not at the cough's end (1.95), which re-times the commit with the same text.
    assert [(t, text) for t, text, _ in tentative] == [
        (at(1.0), "one"), (at(1.8), "one two"), (at(3.2), "three"),
    ]
    assert [(t, text) for t, text, _ in turns] == [(at(2.45), "one two"), (at(3.6), "three")]
    # A tentative turn carries the epoch it belongs to: the last committed turn's id.
    first, second = turns[0][2], turns[1][2]
    assert [turn_id for _, _, turn_id in tentative] == [0, 0, first] and first < second


@pytest.mark.looptime
async def test_each_turn_is_announced_afresh_and_manual_mode_announces_nothing() -> None:
    tentative, turns = await run_for_tentative(
        TurnDetector("stt", min_endpointing_delay=0.5),
        Script(final(0.5, "same"), interim(0.7, "sa"), final(2.0, "same"), end_at=10),
    )
    assert [(t, text) for t, text, _ in tentative] == [(at(0.5), "same"), (at(2.0), "same")]
    assert [text for _, text, _ in turns] == ["same", "same"]
    tentative, turns = await run_for_tentative(
        TurnDetector("manual"),
        Script(final(0.5, "push to talk"), end_at=2),
        Script(vad(0.0, START), vad(1.0, END), end_at=2),
    )
    assert tentative == [] and [text for _, text, _ in turns] == ["push to talk"]


@pytest.mark.looptime
async def test_tentative_turns_are_limited_per_turn() -> None:
    tentative, turns = await run_for_tentative(
        TurnDetector("stt", min_endpointing_delay=0.5, max_tentative=2),
        Script(final(0.0, "a"), final(0.2, "b"), final(0.4, "c"), final(2.0, "d"), end_at=5),
    )
    # Two announcements for the first turn ("a", "a b"), none for "a b c"; the count
    # starts again with the next turn.
    assert [text for _, text, _ in tentative] == ["a", "a b", "d"]
    assert [text for _, text, _ in turns] == ["a b c", "d"]


@pytest.mark.looptime
async def test_no_tentative_turn_after_long_speech_and_the_count_starts_again() -> None:
    tentative, turns = await run_for_tentative(
        TurnDetector(min_endpointing_delay=0.5, max_tentative_speech=5.0),
        Script(final(4.1, "short part"), final(7.2, "long part"), final(10.2, "next"),
               end_at=15),
        # 4 s of speech, a pause shorter than the delay, 3 s more: 7 s in the turn by 7.0.
        # Then a new turn after the commit: 1 s of speech.
        Script(vad(0.0, START), vad(4.0, END, 4.0), vad(4.2, START), vad(7.0, END, 3.0),
               vad(9.0, START), vad(10.0, END, 1.0), end_at=15),
    )
    assert [(t, text) for t, text, _ in tentative] == [
        (at(4.1), "short part"), (at(10.2), "next"),
    ]
    assert [text for _, text, _ in turns] == ["short part long part", "next"]


@pytest.mark.looptime
async def test_stt_mode_times_from_the_last_final_and_interims_restart_the_timer() -> None:
    turns, states, _ = await run_detector(
        TurnDetector("stt", min_endpointing_delay=0.5),
        Script(
            final(0.5, "a"), interim(0.8, "b"), interim(1.1, "b c"), final(1.4, "b c"),
            final(3.0, "next"), end_at=10,
        ),
    )
    assert turns == [(at(1.9), "a b c"), (at(3.5), "next")]
    # No VAD linked: transcripts say when the user speaks, a commit that they stopped.
    assert states == [
        (at(0.5), SPEAKING), (at(1.9), LISTENING),
        (at(3.0), SPEAKING), (at(3.5), LISTENING),
    ]


@pytest.mark.looptime
async def test_stt_mode_with_a_vad_holds_the_commit_while_the_user_speaks() -> None:
    turns, _, _ = await run_detector(
        TurnDetector("stt", min_endpointing_delay=0.5),
        Script(final(0.5, "first part"), final(2.2, "second"), end_at=10),
        Script(vad(0.0, START), vad(2.0, END), end_at=10),
    )
    assert turns == [(at(2.7), "first part second")]


@pytest.mark.looptime
async def test_vad_mode_without_a_vad_falls_back_to_transcript_timing() -> None:
    turns, _, _ = await run_detector(
        TurnDetector(min_endpointing_delay=0.5), Script(final(1.0, "hello"), end_at=10)
    )
    assert turns == [(at(1.5), "hello")]


def _sync_hook(text: str) -> float:
    return 0.1 if text.endswith("to") else 0.9


async def _async_hook(text: str) -> float:
    await asyncio.sleep(0.2)  # a model's inference time: counted within the delay
    return _sync_hook(text)


@pytest.mark.parametrize("hook", [_sync_hook, _async_hook], ids=["sync", "async"])
@pytest.mark.looptime
async def test_end_of_turn_hook_raises_the_delay_to_the_maximum(
    hook: Callable[[str], float | Awaitable[float]],
) -> None:
    turns, _, _ = await run_detector(
        TurnDetector(min_endpointing_delay=0.5, max_endpointing_delay=3.0, end_of_turn=hook),
        Script(final(0.5, "I want to"), final(6.5, "go home"), end_at=20),
        Script(vad(0.0, START), vad(1.0, END), vad(6.0, START), vad(7.0, END), end_at=20),
    )
    assert turns == [(at(4.0), "I want to"), (at(7.5), "go home")]


@pytest.mark.looptime
async def test_a_failing_end_of_turn_hook_falls_back_to_the_minimum() -> None:
    def broken(text: str) -> float:
        raise RuntimeError("model not loaded")

    turns, _, _ = await run_detector(
        TurnDetector(min_endpointing_delay=0.5, end_of_turn=broken),
        Script(final(0.5, "hello"), end_at=10),
        Script(vad(0.0, START), vad(1.0, END), end_at=10),
    )
    assert turns == [(at(1.5), "hello")]


@pytest.mark.looptime
async def test_manual_mode_commits_only_on_commit() -> None:
    turns, states, _ = await run_detector(
        TurnDetector("manual", min_endpointing_delay=0.5),
        Script(final(0.5, "push"), final(2.5, "to talk"), end_at=10),
        Script(vad(0.0, START), vad(1.0, END), vad(2.0, START), vad(3.0, END), end_at=10),
        Script((4.0, object()), (5.0, "again"), end_at=10),
    )
    assert turns == [(at(4.0), "push to talk")]  # the empty second commit: nothing
    assert [s for _, s in states] == [SPEAKING, LISTENING, SPEAKING, LISTENING]


@pytest.mark.looptime
async def test_a_commit_waits_for_the_words_still_being_recognised() -> None:
    # The button is let go just after the speech ends; the recogniser has the words 0.4 s
    # later (a batch recogniser starts at the end of speech).
    turns, _, _ = await run_detector(
        TurnDetector("manual"),
        Script(final(1.4, "book a table"), end_at=10),
        Script(vad(0.0, START), vad(1.0, END), end_at=10),
        Script((1.05, "release"), end_at=10),
    )
    assert turns == [(at(1.4), "book a table")]


@pytest.mark.looptime
async def test_a_commit_waits_no_longer_than_its_timeout_for_words() -> None:
    # The second utterance never gets a transcript (a cough the recogniser drops).
    turns, _, _ = await run_detector(
        TurnDetector("manual", commit_timeout=1.5),
        Script(final(1.2, "first"), end_at=10),
        Script(vad(0.0, START), vad(1.0, END), vad(2.0, START), vad(3.0, END), end_at=10),
        Script((3.1, "release"), end_at=10),
    )
    assert turns == [(at(4.6), "first")]


@pytest.mark.looptime
async def test_clear_discards_the_pending_turn_and_the_words_still_coming() -> None:
    # "hello" is pending; the user is cut off mid-speech by a clear (a cancelled push to
    # talk): neither it nor the words of that speech, recognised after the clear, are kept.
    turns, states, _ = await run_detector(
        TurnDetector("manual"),
        Script(final(1.2, "hello"), final(3.4, "cancel this"), final(5.2, "book it"),
               end_at=10),
        Script(vad(0.0, START), vad(1.0, END), vad(2.0, START), vad(3.0, END),
               vad(4.0, START), vad(5.0, END), end_at=10),
        Script((5.5, "release"), end_at=10),
        clears=Script((2.9, "cancel"), end_at=10),
    )
    assert turns == [(at(5.5), "book it")]
    assert [s for _, s in states] == [SPEAKING, LISTENING, SPEAKING, LISTENING, SPEAKING,
                                      LISTENING]


@pytest.mark.looptime
async def test_commit_in_vad_mode_skips_the_delay() -> None:
    turns, _, _ = await run_detector(
        TurnDetector(min_endpointing_delay=2.0),
        Script(final(0.5, "now please"), end_at=10),
        Script(vad(0.0, START), vad(1.0, END), end_at=10),
        Script((1.2, None), end_at=10),
    )
    assert turns == [(at(1.2), "now please")]


@pytest.mark.looptime
async def test_empty_turns_are_never_committed() -> None:
    turns, _, _ = await run_detector(
        TurnDetector(min_endpointing_delay=0.5),
        Script(final(0.5, "   "), interim(0.6, "uh"), final(0.7, ""), end_at=10),
        Script(vad(0.0, START), vad(1.0, END), vad(3.0, START), vad(4.0, END), end_at=10),
        Script((5.0, None), end_at=10),
    )
    assert turns == []


@pytest.mark.looptime
async def test_pending_turn_is_committed_when_the_transcripts_end() -> None:
    turns, _, _ = await run_detector(
        TurnDetector(min_endpointing_delay=5.0),
        Script(final(1.0, "last words")),  # ends right after its last message
        Script(vad(0.0, START), vad(0.9, END)),
    )
    assert turns == [(at(1.0), "last words")]


@pytest.mark.looptime
async def test_each_turn_gets_a_newer_id() -> None:
    _, _, ids = await run_detector(
        TurnDetector("stt", min_endpointing_delay=0.5),
        Script(final(0.5, "one"), final(2.0, "two"), final(4.0, "three")),
    )
    assert len(ids) == 3 and ids == sorted(set(ids))


@pytest.mark.looptime
async def test_user_is_away_after_the_timeout_once_per_silence() -> None:
    _, states, _ = await run_detector(
        TurnDetector(user_away_timeout=2.0),
        Script(final(0.5, "hi"), end_at=12),
        Script(vad(0.0, START), vad(1.0, END), vad(5.0, START), vad(6.0, END), end_at=12),
    )
    assert states == [
        (0.0, SPEAKING), (at(1.0), LISTENING), (at(3.0), AWAY),
        (at(5.0), SPEAKING), (at(6.0), LISTENING),
        (at(8.0), AWAY),
    ]


@pytest.mark.looptime
async def test_user_is_away_from_the_start_without_speech_and_never_when_disabled() -> None:
    _, states, _ = await run_detector(
        TurnDetector(user_away_timeout=3.0), Script(end_at=10), Script(end_at=10)
    )
    assert states == [(at(3.0), AWAY)]
    _, states, _ = await run_detector(
        TurnDetector(user_away_timeout=None), Script(end_at=100), Script(end_at=100)
    )
    assert states == []


def agent(at: float, state: AgentStateKind) -> tuple[float, AgentState]:
    return at, AgentState(state=state)


@pytest.mark.looptime
async def test_the_away_clock_runs_only_while_the_agent_listens_too() -> None:
    # The user stops at 1.0; the agent thinks from 1.5 and speaks from 2.0 to 9.0 (longer
    # than the timeout), then listens: the user is away 2 s after that, not at 3.0. A
    # second reply (11.5 to 12.0) while the user is away leaves them away.
    _, states, _ = await run_detector(
        TurnDetector(user_away_timeout=2.0),
        Script(final(0.5, "tell me a long story"), end_at=14),
        Script(vad(0.0, START), vad(1.0, END), end_at=14),
        agent_states=Script(
            agent(0.0, AgentStateKind.LISTENING),
            agent(1.5, AgentStateKind.THINKING),
            agent(2.0, AgentStateKind.SPEAKING),
            agent(9.0, AgentStateKind.LISTENING),
            agent(11.5, AgentStateKind.SPEAKING),
            agent(12.0, AgentStateKind.LISTENING),
        ),
    )
    assert states == [(0.0, SPEAKING), (at(1.0), LISTENING), (at(11.0), AWAY)]


@pytest.mark.looptime
async def test_the_away_clock_starts_afresh_when_the_agent_stops_speaking() -> None:
    # The user is quiet from 1.0; a 0.5 s reply at 2.0 restarts the clock at 2.5.
    _, states, _ = await run_detector(
        TurnDetector(user_away_timeout=2.0),
        Script(final(0.5, "hi"), end_at=8),
        Script(vad(0.0, START), vad(1.0, END), end_at=8),
        agent_states=Script(
            agent(2.0, AgentStateKind.SPEAKING), agent(2.5, AgentStateKind.LISTENING)
        ),
    )
    assert states == [(0.0, SPEAKING), (at(1.0), LISTENING), (at(4.5), AWAY)]


def test_bad_delays_are_refused_with_the_fix() -> None:
    with pytest.raises(fk.NodeParamsError, match="raise the maximum"):
        TurnDetector(min_endpointing_delay=2.0, max_endpointing_delay=1.0)


def test_a_negative_tentative_limit_is_refused_naming_the_parameter() -> None:
    with pytest.raises(fk.NodeParamsError, match="max_tentative: Input should be greater"):
        TurnDetector(max_tentative=-1)
    with pytest.raises(fk.NodeParamsError, match="max_tentative_speech: Input should be greater"):
        TurnDetector(max_tentative_speech=0)
