"""The speaking topologies: translator and reply guard, end to end on MemoryIO."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from livekit import rtc
from support import Collect, Script, TimedCollect, collected

import flowkit as fk
from flowkit.audio import frame_from_samples
from flowkit.loader import load_graph
from flowkit.nodes.text import PHONE_NUMBER, ReplyGuard
from flowkit.providers.chat import ChatMessage
from flowkit.testing import FakeLLM, FakeSTT, FakeTTS
from flowkit.testing.memory_io import MemoryIO

GRAPHS = Path(__file__).parents[2] / "graphs"
RATE = 48_000


def user_audio() -> list[rtc.AudioFrame]:
    """Two 1 s voiced utterances (300 Hz and harmonics), 3 s apart, between silences."""
    def voiced(seconds: float) -> np.ndarray:
        t = np.arange(round(seconds * RATE)) / RATE
        return sum(np.sin(2 * np.pi * 300 * k * t) / k for k in range(1, 5)) * 0.2

    def quiet(seconds: float) -> np.ndarray:
        return np.random.default_rng(2).normal(0, 1e-4, round(seconds * RATE))

    signal = np.concatenate([quiet(0.5), voiced(1), quiet(3), voiced(1), quiet(3)])
    pcm = np.clip(np.round(signal * 32767), -32768, 32767).astype(np.int16)
    step = RATE // 50
    return [frame_from_samples(pcm[i:i + step].copy(), RATE) for i in range(0, pcm.size, step)]


# --------------------------------------------------------------------------- translator

GLOSSARY = {"good morning": "Bonjour.", "where is the station": "Où est la gare ?"}


@pytest.mark.looptime
async def test_translator_speaks_the_translation_in_its_own_voice() -> None:
    def translate(history: Sequence[ChatMessage]) -> str:
        return GLOSSARY[history[-1].content]

    model = FakeLLM(translate, ttft=0.1)
    voice = FakeTTS(sample_rate=22_050, frequency=220.0, ttfa=0.05)
    io = MemoryIO(user_audio(), paced=True)
    job = fk.JobContext(io=io, extra={
        "stt": FakeSTT(["good morning", "where is the station"], delay=0.2),
        "llm": model, "tts": voice, "language": "French"})
    await fk.GraphRunner(load_graph(GRAPHS / "translator.py", job), job=job).run()

    assert voice.texts == ["Bonjour.", "Où est la gare ?"]
    assert [t.text for t in io.transcripts if t.speaker == "agent" and t.final] == voice.texts
    assert io.output is not None and io.output.format.sample_rate == 22_050
    # no conversation: each request is the instructions and the one utterance to translate
    for request, said in zip(model.requests, GLOSSARY, strict=True):
        assert [m.role for m in request.history] == ["system", "user"]
        assert "French" in request.history[0].content
        assert request.history[1].content == said
        assert request.tools == ()


# --------------------------------------------------------------------------- reply guard


@pytest.mark.looptime
async def test_reply_guard_replaces_a_bad_reply_and_speaks_the_replacement() -> None:
    model = FakeLLM(["Sure, call our manager at 555 123 4567 today.",
                     "We open at nine in the morning."], ttft=0.1)
    voice = FakeTTS(sample_rate=24_000, ttfa=0.05)
    io = MemoryIO(user_audio(), paced=True)
    job = fk.JobContext(io=io, extra={
        "stt": FakeSTT(["can I talk to someone", "when do you open"], delay=0.2),
        "llm": model, "tts": voice})
    g = load_graph(GRAPHS / "reply_guard.py", job)
    runner = fk.GraphRunner(g, job=job)
    rejected: list[fk.TextChunk] = []
    await runner.start()
    runner.observe("guard.rejected").subscribe(rejected.append)
    await runner.wait()
    await runner.close()

    safe = g.nodes["guard"].params.fallback  # type: ignore[attr-defined]
    spoken = " ".join(voice.texts)
    assert "555" not in spoken
    assert spoken == f"{safe} We open at nine in the morning."  # a good reply passes as is
    # Published as heard: the second question cuts the first reply short, so its final
    # transcript is the words played of the replacement, and the second reply is whole.
    first, second = [t.text for t in io.transcripts if t.speaker == "agent" and t.final]
    assert first and safe.startswith(first)
    assert second == "We open at nine in the morning."
    assert all("555" not in t.text for t in io.transcripts)
    assert [c.text for c in rejected] == ["Sure, call our manager at 555 123 4567 today."]
    assert io.played_duration > 0


@pytest.mark.parametrize(("reply", "passes"), [
    ("We open at nine.", True),
    ("Call +44 20 7946 0958.", False),
    ("Your PASSWORD is safe with me.", False),
    ("I can't guarantee that.", False),
    ("Passwords are reset online.", True),  # whole words only
])
def test_reply_guard_checks(reply: str, passes: bool) -> None:
    guard = ReplyGuard(banned_words=["password", "guarantee"], patterns=[PHONE_NUMBER])
    assert guard.passes(reply) is passes


def test_reply_guard_takes_any_check() -> None:
    guard = ReplyGuard(check=lambda text: len(text) < 20)
    assert guard.passes("short") and not guard.passes("a much longer reply than allowed")
    with pytest.raises(fk.NodeParamsError, match="not a regular expression"):
        ReplyGuard(patterns=["(unclosed"])


# ------------------------------------------------------------- reply guard: flushed text
#
# The LLM node flushes its reply before each tool round ("Let me check that." then a
# chunk " " with flush=True) and sends what a tool says with ``ctx.say`` as a flushed
# chunk of its own. Those are checkpoints: the guard checks the reply so far and passes it
# on at once, so it is heard while the tool runs.

SAFE = "Sorry, I can't help with that."


def _chunk(turn: int, text: str, *, flush: bool = False, final: bool = False) -> fk.TextChunk:
    return fk.TextChunk(turn_id=turn, text=text, flush=flush, final=final)


async def _guarded(
    guard: ReplyGuard, *chunks: tuple[float, fk.TextChunk]
) -> tuple[list[tuple[float, fk.TextChunk]], list[str]]:
    """What the guard passed on (with when, from the start) and what it rejected."""
    g = fk.Graph("guarded")
    g.add(Script(*chunks), name="llm") >> g.add(guard, name="guard")
    out = g.add(TimedCollect(), name="tts")
    rejected = g.add(Collect(), name="review")
    guard >> out
    guard.rejected >> rejected
    await fk.GraphRunner(g).run()
    return out.items, [c.text for c in collected(rejected)]


def _tool_round(turn: int, ending: str) -> list[tuple[float, fk.TextChunk]]:
    """A reply as the LLM node streams it around a 2 s tool that says "One moment."."""
    return [
        (0.0, _chunk(turn, "Let me check")), (0.0, _chunk(turn, " that.")),
        (0.0, _chunk(turn, " ", flush=True)),  # before the tool round
        (1.0, _chunk(turn, "One moment. ", flush=True)),  # the tool's ctx.say
        (3.0, _chunk(turn, ending)), (3.0, _chunk(turn, "", final=True)),
    ]


@pytest.mark.looptime
async def test_reply_guard_passes_flushed_text_on_at_once_and_holds_the_rest() -> None:
    turn = fk.new_turn_id()
    script = _tool_round(turn, "It ships tomorrow.")
    out, rejected = await _guarded(ReplyGuard(banned_words=["password"]), *script)

    assert [c for _, c in out] == [c for _, c in script]  # the same chunks, flushes kept
    when = {c.text: round(at, 3) for at, c in out}
    assert when["Let me check"] == when[" that."] == when[" "] == 0.0
    assert when["One moment. "] == 1.0  # heard while the tool runs
    assert when["It ships tomorrow."] == when[""] == 3.0  # held to the final check
    assert rejected == []


@pytest.mark.looptime
async def test_reply_guard_rejects_at_a_checkpoint_and_drops_the_rest_of_the_reply() -> None:
    turn, later = fk.new_turn_id(), fk.new_turn_id()
    out, rejected = await _guarded(
        ReplyGuard(banned_words=["password"]),
        (0.0, _chunk(turn, "Your password is")), (0.0, _chunk(turn, " ", flush=True)),
        (1.0, _chunk(turn, "One moment. ", flush=True)),
        (3.0, _chunk(turn, "hunter2.")), (3.0, _chunk(turn, "", final=True)),
        (4.0, _chunk(later, "We open at nine.")), (4.0, _chunk(later, "", final=True)),
    )

    # Nothing of the reply but its replacement, sent at the checkpoint, final chunk and all.
    assert [(round(at, 3), c) for at, c in out] == [
        (0.0, _chunk(turn, SAFE)), (0.0, _chunk(turn, "", final=True)),
        (4.0, _chunk(later, "We open at nine.")), (4.0, _chunk(later, "", final=True)),
    ]
    assert rejected == ["Your password is "]  # the reply up to where it failed


@pytest.mark.looptime
async def test_reply_guard_replaces_the_rest_of_a_reply_that_fails_after_a_checkpoint() -> None:
    turn = fk.new_turn_id()
    script = _tool_round(turn, "Your password is hunter2.")
    out, rejected = await _guarded(ReplyGuard(banned_words=["password"]), *script)

    # What passed its checkpoints is spoken and cannot be taken back; the fallback stands
    # for the rest, and the review sees the whole reply, the spoken part included.
    assert [(round(at, 3), c) for at, c in out] == [
        *[(at, c) for at, c in script[:4]],
        (3.0, _chunk(turn, SAFE)), (3.0, _chunk(turn, "", final=True)),
    ]
    assert rejected == ["Let me check that. One moment. Your password is hunter2."]


@pytest.mark.looptime
async def test_reply_guard_fallback_after_spoken_text_does_not_run_into_it() -> None:
    turn = fk.new_turn_id()
    out, rejected = await _guarded(
        ReplyGuard(patterns=[PHONE_NUMBER]),
        (0.0, _chunk(turn, "Sure.", flush=True)),
        (1.0, _chunk(turn, "Call 555 123 4567", flush=True)),  # fails at this checkpoint
        (2.0, _chunk(turn, " today.")), (2.0, _chunk(turn, "", final=True)),
    )
    assert [(round(at, 3), c.text) for at, c in out] == [
        (0.0, "Sure."), (1.0, f" {SAFE}"), (1.0, ""),
    ]
    assert rejected == ["Sure.Call 555 123 4567"]


@pytest.mark.looptime
async def test_reply_guard_can_hold_every_reply_whole_flushes_and_all() -> None:
    turn = fk.new_turn_id()
    script = _tool_round(turn, "It ships tomorrow.")
    # A check only a whole reply can pass: it would fail every reply at its first checkpoint.
    guard = ReplyGuard(check=lambda text: text.endswith("."), release_at_flush=False)
    out, rejected = await _guarded(guard, *script)
    assert [c for _, c in out] == [c for _, c in script]
    assert {round(at, 3) for at, _ in out} == {3.0}
    assert rejected == []


@pytest.mark.looptime
async def test_reply_guard_judges_each_check_on_the_whole_reply_so_far() -> None:
    turn = fk.new_turn_id()
    out, rejected = await _guarded(
        ReplyGuard(patterns=[PHONE_NUMBER]),
        (0.0, _chunk(turn, "Call 555 12", flush=True)),  # no phone number yet: passed on
        (1.0, _chunk(turn, "34 567 now.")), (1.0, _chunk(turn, "", final=True)),
    )
    # Neither half is a phone number, the reply is: the second half is judged with the
    # first. The first half was spoken already, the documented price of a checkpoint.
    assert [c.text for _, c in out] == ["Call 555 12", f" {SAFE}", ""]
    assert rejected == ["Call 555 1234 567 now."]
