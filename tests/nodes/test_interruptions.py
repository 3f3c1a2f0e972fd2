"""Interruptions: barge-in at several moments of a reply, on the loop's virtual clock."""

from __future__ import annotations

from typing import Any

import pytest
from support import Script, TimedCollect

import flowkit as fk
from flowkit.messages import (
    InterruptAction,
    Playout,
    PlayoutEvent,
    Transcript,
    VADEvent,
    VADEventKind,
)
from flowkit.nodes.interrupt import Interruptions

START, END = VADEventKind.START_OF_SPEECH, VADEventKind.END_OF_SPEECH
PAUSE, RESUME, FLUSH = InterruptAction.PAUSE, InterruptAction.RESUME, InterruptAction.FLUSH
REPLY = 7


def vad(at: float, kind: VADEventKind, speech: float = 0.0) -> tuple[float, VADEvent]:
    return at, VADEvent(kind=kind, speech_duration=speech)


def words(at: float, text: str, final: bool = False) -> tuple[float, Transcript]:
    return at, Transcript(text=text, final=final)


def playout(at: float, event: PlayoutEvent, turn: int = REPLY) -> tuple[float, Playout]:
    return at, Playout(turn_id=turn, event=event)


async def run_interruptions(
    node: Interruptions,
    vad_events: Script,
    playouts: Script,
    transcripts: Script | None = None,
) -> tuple[list[tuple[float, InterruptAction, int, str]], float | None]:
    """Run the node; return (time, action, turn id, reason) of each interrupt, end time."""
    g = fk.Graph("barge-in")
    n = g.add(node)
    out = TimedCollect()
    g.add(vad_events) >> n.vad
    g.add(playouts) >> n.playout
    if transcripts is not None:
        g.add(transcripts) >> n.transcripts
    n.interrupts >> g.add(out)
    await fk.GraphRunner(g).run()
    return [(t, i.action, i.turn_id, i.reason) for t, i in out.items], out.ended_at


def at(t: float) -> Any:
    return pytest.approx(t)


@pytest.mark.looptime
async def test_barge_in_during_a_reply_pauses_then_flushes_when_words_come() -> None:
    got, _ = await run_interruptions(
        Interruptions(),
        Script(vad(1.0, START, speech=0.1), vad(2.5, END), end_at=10),
        Script(playout(0.0, PlayoutEvent.STARTED), playout(1.45, PlayoutEvent.PAUSED),
               playout(1.85, PlayoutEvent.INTERRUPTED), end_at=10),
        Script(words(1.8, "stop"), words(2.6, "stop please", final=True), end_at=10),
    )
    # The VAD had heard 0.1 s already: 0.4 s more makes the 0.5 s minimum.
    assert got == [(at(1.4), PAUSE, REPLY, "barge_in"), (at(1.8), FLUSH, REPLY, "barge_in")]


@pytest.mark.looptime
async def test_speech_already_long_enough_when_reported_pauses_at_once() -> None:
    got, _ = await run_interruptions(
        Interruptions(),
        Script(vad(1.0, START, speech=0.6), vad(2.0, END), end_at=10),
        Script(playout(0.0, PlayoutEvent.STARTED), end_at=10),
    )
    assert got[0] == (at(1.0), PAUSE, REPLY, "barge_in")


@pytest.mark.looptime
async def test_reply_finishing_before_the_minimum_duration_is_not_interrupted() -> None:
    got, _ = await run_interruptions(
        Interruptions(),
        Script(vad(1.0, START), vad(2.0, END), end_at=10),
        Script(playout(0.0, PlayoutEvent.STARTED), playout(1.3, PlayoutEvent.FINISHED),
               end_at=10),
        Script(words(1.6, "thanks"), end_at=10),
    )
    assert got == []


@pytest.mark.looptime
async def test_nothing_while_the_agent_is_not_speaking() -> None:
    got, _ = await run_interruptions(
        Interruptions(),
        Script(vad(1.0, START), vad(3.0, END), vad(6.0, START), vad(8.0, END), end_at=10),
        Script(playout(4.0, PlayoutEvent.STARTED), playout(5.0, PlayoutEvent.FINISHED),
               end_at=10),
        Script(words(2.0, "hello there"), words(7.0, "and again"), end_at=10),
    )
    assert got == []


@pytest.mark.looptime
async def test_a_short_blip_is_not_an_interruption() -> None:
    got, _ = await run_interruptions(
        Interruptions(min_interruption_duration=0.5),
        Script(vad(1.0, START), vad(1.3, END), end_at=10),
        Script(playout(0.0, PlayoutEvent.STARTED), end_at=10),
    )
    assert got == []


@pytest.mark.looptime
async def test_min_interruption_words_waits_for_the_words() -> None:
    got, _ = await run_interruptions(
        Interruptions(min_interruption_words=2),
        Script(vad(1.0, START), vad(3.0, END), end_at=10),
        Script(playout(0.0, PlayoutEvent.STARTED), end_at=10),
        Script(words(1.7, "wait"), words(2.0, "wait a"), end_at=10),
    )
    # The words were heard before the pause: the flush follows it at once.
    assert got == [(at(2.0), PAUSE, REPLY, "barge_in"), (at(2.0), FLUSH, REPLY, "barge_in")]


@pytest.mark.looptime
async def test_words_arriving_after_the_speech_ended_still_count() -> None:
    got, _ = await run_interruptions(
        Interruptions(min_interruption_words=1),
        Script(vad(1.0, START), vad(1.8, END), end_at=10),
        Script(playout(0.0, PlayoutEvent.STARTED), end_at=10),
        Script(words(2.2, "no", final=True), end_at=10),
    )
    assert [(t, a) for t, a, _, _ in got] == [(at(2.2), PAUSE), (at(2.2), FLUSH)]


@pytest.mark.looptime
async def test_false_interruption_resumes_and_the_reply_can_be_interrupted_again() -> None:
    got, _ = await run_interruptions(
        Interruptions(false_interruption_timeout=2.0),
        Script(vad(1.0, START), vad(1.8, END), vad(5.0, START), vad(7.0, END), end_at=10),
        Script(playout(0.0, PlayoutEvent.STARTED), playout(1.51, PlayoutEvent.PAUSED),
               playout(3.51, PlayoutEvent.RESUMED), end_at=10),
        Script(words(6.0, "actually"), end_at=10),
    )
    assert got == [
        (at(1.5), PAUSE, REPLY, "barge_in"),
        (at(3.5), RESUME, REPLY, "false_interruption"),
        (at(5.5), PAUSE, REPLY, "barge_in"),
        (at(6.0), FLUSH, REPLY, "barge_in"),
    ]


@pytest.mark.looptime
async def test_allow_interruptions_false_never_interrupts() -> None:
    got, _ = await run_interruptions(
        Interruptions(allow_interruptions=False),
        Script(vad(1.0, START), vad(3.0, END), end_at=10),
        Script(playout(0.0, PlayoutEvent.STARTED), end_at=10),
        Script(words(1.8, "stop stop stop"), end_at=10),
    )
    assert got == []


@pytest.mark.looptime
async def test_a_reply_asked_not_to_be_interrupted_is_left_alone_the_next_is_not() -> None:
    protected = Playout(turn_id=REPLY, event=PlayoutEvent.STARTED, allow_interruptions=False)
    got, _ = await run_interruptions(
        Interruptions(resume_false_interruption=False),
        Script(vad(1.0, START), vad(3.0, END), vad(5.0, START), vad(6.0, END), end_at=10),
        Script((0.0, protected), playout(4.0, PlayoutEvent.FINISHED),
               playout(4.5, PlayoutEvent.STARTED, turn=REPLY + 1), end_at=10),
        Script(words(1.8, "stop stop stop"), words(5.2, "stop"), end_at=10),
    )
    # Two seconds of speech with words over the first reply: nothing; the second is flushed.
    assert got == [(at(5.5), FLUSH, REPLY + 1, "barge_in")]


@pytest.mark.looptime
async def test_a_reply_protected_while_paused_resumes_and_is_not_interrupted_again() -> None:
    # A tool protects the reply (ctx.disallow_interruptions()) while a barge-in is pending.
    protected = Playout(turn_id=REPLY, event=PlayoutEvent.PROTECTED, allow_interruptions=False)
    got, _ = await run_interruptions(
        Interruptions(false_interruption_timeout=2.0),
        Script(vad(1.0, START), vad(1.8, END), vad(4.0, START), vad(6.0, END), end_at=10),
        Script(playout(0.0, PlayoutEvent.STARTED), playout(1.51, PlayoutEvent.PAUSED),
               (2.0, protected), playout(2.01, PlayoutEvent.RESUMED), end_at=10),
        Script(words(2.5, "wait"), words(4.5, "stop stop"), end_at=10),
    )
    # Resumed at the protection, not at the timeout; later words and speech change nothing.
    assert got == [(at(1.5), PAUSE, REPLY, "barge_in"), (at(2.0), RESUME, REPLY, "protected")]


@pytest.mark.parametrize(
    "options",
    [{"resume_false_interruption": False}, {"false_interruption_timeout": None}],
    ids=["no-resume", "no-timeout"],
)
@pytest.mark.looptime
async def test_without_false_interruption_handling_the_first_step_is_a_flush(
    options: dict[str, Any],
) -> None:
    got, _ = await run_interruptions(
        Interruptions(**options),
        Script(vad(1.0, START), vad(3.0, END), vad(4.0, START), vad(5.0, END), end_at=10),
        Script(playout(0.0, PlayoutEvent.STARTED), end_at=10),
        Script(words(2.0, "stop"), end_at=10),
    )
    assert got == [(at(1.5), FLUSH, REPLY, "barge_in")]  # flushed: no second interrupt


@pytest.mark.looptime
async def test_a_new_reply_can_be_interrupted_after_the_old_one_was_flushed() -> None:
    got, _ = await run_interruptions(
        Interruptions(resume_false_interruption=False),
        Script(vad(1.0, START), vad(2.0, END), vad(5.0, START), vad(6.0, END), end_at=10),
        Script(playout(0.0, PlayoutEvent.STARTED), playout(1.6, PlayoutEvent.INTERRUPTED),
               playout(4.0, PlayoutEvent.STARTED, turn=REPLY + 1), end_at=10),
    )
    assert got == [(at(1.5), FLUSH, REPLY, "barge_in"), (at(5.5), FLUSH, REPLY + 1, "barge_in")]


@pytest.mark.looptime
async def test_user_already_speaking_when_the_reply_starts() -> None:
    got, _ = await run_interruptions(
        Interruptions(resume_false_interruption=False),
        Script(vad(0.0, START), vad(3.0, END), end_at=10),
        Script(playout(0.3, PlayoutEvent.STARTED), end_at=10),
    )
    assert got == [(at(0.5), FLUSH, REPLY, "barge_in")]


@pytest.mark.looptime
async def test_node_ends_with_its_user_inputs_and_settles_a_pending_pause() -> None:
    got, ended = await run_interruptions(
        Interruptions(),
        Script(vad(1.0, START), end_at=2.0),
        Script(playout(0.0, PlayoutEvent.STARTED), end_at=50.0),  # feedback: not waited for
        Script(end_at=2.5),
    )
    # No more words can come once the transcripts end: the pause was a false one.
    assert got == [(at(1.5), PAUSE, REPLY, "barge_in"),
                   (at(2.5), RESUME, REPLY, "false_interruption")]
    assert ended == at(2.5)
