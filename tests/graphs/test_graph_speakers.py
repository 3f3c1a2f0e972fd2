"""The speaking topologies: translator and reply guard, end to end on MemoryIO."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from livekit import rtc

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
