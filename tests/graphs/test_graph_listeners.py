"""The listening graphs: transcriber, push to talk, dual STT, meeting transcriber."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from livekit import rtc

import flowkit as fk
from flowkit.audio import frame_from_samples
from flowkit.cli import main
from flowkit.loader import load_graph
from flowkit.providers.stt import SpeechResult
from flowkit.testing import FakeLLM, FakeSTT, FakeTTS
from flowkit.testing.memory_io import MemoryIO

GRAPHS = Path(__file__).parents[2] / "graphs"
RATE = 48_000
FRAME = RATE // 50  # 20 ms


def voiced(seconds: float) -> np.ndarray:
    """A voiced tone (300 Hz and harmonics) with a little noise."""
    t = np.arange(round(seconds * RATE)) / RATE
    return sum(np.sin(2 * np.pi * 300 * k * t) / k for k in range(1, 5)) * 0.2


def silence(seconds: float, seed: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1e-4, round(seconds * RATE))


def frames(*parts: np.ndarray) -> list[rtc.AudioFrame]:
    """20 ms 48 kHz mono frames of the parts, one after the other."""
    pcm = np.clip(np.round(np.concatenate(parts) * 32767), -32768, 32767).astype(np.int16)
    return [frame_from_samples(pcm[i:i + FRAME].copy(), RATE) for i in range(0, pcm.size, FRAME)]


def two_utterances() -> list[rtc.AudioFrame]:
    """0.5 s silence, 1 s speech, 1 s silence, 1 s speech, 1 s silence."""
    return frames(silence(0.5), voiced(1), silence(1), voiced(1), silence(1))


def graph(name: str, job: fk.JobContext) -> fk.Graph:
    return load_graph(GRAPHS / f"{name}.py", job)


NAMES = ["transcriber", "push_to_talk", "dual_stt", "meeting_transcriber", "translator",
         "reply_guard"]


@pytest.mark.parametrize("name", NAMES)
def test_graph_is_valid_and_drawn(name: str) -> None:
    assert graph(name, fk.JobContext.local()).problems() == []
    for fmt in ("text", "mermaid"):
        result = CliRunner().invoke(main, ["viz", str(GRAPHS / f"{name}.py"), "--format", fmt])
        assert result.exit_code == 0, result.output
        assert "stt" in result.output


# --------------------------------------------------------------------------- transcriber


@pytest.mark.looptime
async def test_transcriber_publishes_each_utterance() -> None:
    io = MemoryIO(two_utterances(), paced=True)
    stt = FakeSTT(["hello there", "good bye"], delay=0.2)
    job = fk.JobContext(io=io, extra={"stt": stt})
    await fk.GraphRunner(graph("transcriber", job), job=job).run()
    finals = [t for t in io.transcripts if t.final]
    assert [t.text for t in finals] == ["hello there", "good bye"]
    assert all(t.speaker == "user" for t in finals)
    # stream times: the first utterance starts about 0.5 s in, the second about 2.5 s in
    assert finals[0].start_time == pytest.approx(0.5, abs=0.2)
    assert finals[1].start_time == pytest.approx(2.5, abs=0.2)
    assert io.played == []  # no TTS: the transcriber never speaks


# --------------------------------------------------------------------------- push to talk


@pytest.mark.looptime
async def test_push_to_talk_hears_only_the_held_button_and_commits_on_release() -> None:
    # Speech at 0.3-1.3 s with the button up (unheard), at 2.5-3.5 s held (pressed at 2.4,
    # let go at 3.55, as the last word ends), and at 5.5-6.5 s held, then cancelled.
    io = MemoryIO(frames(silence(0.3), voiced(1), silence(1.2), voiced(1), silence(2),
                         voiced(1), silence(2.5)), paced=True, live=True)
    llm = FakeLLM(["Sure."], ttft=0.1)
    job = fk.JobContext(io=io, extra={
        "stt": FakeSTT(["book a table", "never mind"], delay=0.2), "llm": llm,
        "tts": FakeTTS(sample_rate=24_000, ttfa=0.05),
    })
    loop = asyncio.get_running_loop()
    async with fk.GraphRunner(graph("push_to_talk", job), job=job) as runner:
        turns: list[tuple[float, fk.UserTurn]] = []
        interrupts: list[fk.Interrupt] = []
        runner.observe("turns.turns").subscribe(lambda t: turns.append((loop.time(), t)))
        runner.observe("button.interrupts").subscribe(interrupts.append)
        start = loop.time()
        await asyncio.sleep(2.4)
        assert io.rpc_methods == ["start_turn", "end_turn", "cancel_turn"]
        assert await io.call_rpc("start_turn") == ""
        assert [(i.action, i.force) for i in interrupts] == [(fk.InterruptAction.FLUSH, False)]
        await asyncio.sleep(1.15)
        released = loop.time()
        await io.call_rpc("end_turn")
        await asyncio.sleep(2.0)
        # The words said with the button up never reached the recogniser: its first
        # utterance is the held one. The turn waited for its transcript, not the timeout.
        assert [t.text for _, t in turns] == ["book a table"]
        assert 0.0 < turns[0][0] - released < 1.5, turns[0][0] - start
        assert llm.requests[0].history[-1].content == "book a table"
        assert io.played_duration > 0  # and the answer was spoken
        await asyncio.sleep(5.4 - (loop.time() - start))
        await io.call_rpc("start_turn")
        await asyncio.sleep(1.15)
        await io.call_rpc("cancel_turn")  # "never mind" is thrown away, not committed later
        await asyncio.sleep(2.0)
        await io.call_rpc("end_turn")  # a release with the button up: nothing
        io.end_audio()
        await asyncio.wait_for(runner.wait(), 10)
    assert [t.text for _, t in turns] == ["book a table"]
    assert io.rpc_methods == []  # unregistered when the button's audio ended


def test_push_to_talk_offline_has_no_button_and_answers_the_recording(tmp_path: Path) -> None:
    recording = Path(__file__).parents[2] / "examples" / "audio" / "weather_question.wav"
    result = CliRunner().invoke(main, [
        "run", str(GRAPHS / "push_to_talk.py"), "--input", str(recording),
        "--output", str(tmp_path / "reply.wav"),
    ])
    assert result.exit_code == 0, result.output
    assert "agent: I heard [" in result.output


# --------------------------------------------------------------------------- dual STT


def result(text: str, confidence: float, start: float, end: float) -> SpeechResult:
    return SpeechResult(text=text, confidence=confidence, start_time=start, end_time=end)


@pytest.mark.looptime
async def test_dual_stt_keeps_the_more_confident_transcript_per_utterance() -> None:
    io = MemoryIO(two_utterances(), paced=True)
    a = FakeSTT([result("wreck a nice beach", 0.4, 0.5, 1.5),
                 result("good bye", 0.9, 2.5, 3.5)], delay=0.1)
    b = FakeSTT([result("recognise speech", 0.8, 0.55, 1.5),
                 result("good buy", 0.6, 2.5, 3.45)], delay=0.4)
    job = fk.JobContext(io=io, extra={"stt": a, "stt2": b})
    await fk.GraphRunner(graph("dual_stt", job), job=job).run()
    finals = [t.text for t in io.transcripts if t.final]
    assert finals == ["recognise speech", "good bye"]


@pytest.mark.looptime
async def test_dual_stt_goes_on_alone_when_one_recogniser_hangs() -> None:
    io = MemoryIO(two_utterances(), paced=True)
    a = FakeSTT([result("first", 0.3, 0.5, 1.5), result("second", 0.3, 2.5, 3.5)], delay=0.1)
    b = FakeSTT([result("premier", 0.9, 0.5, 1.5)], delay=0.1, hang={1})
    job = fk.JobContext(io=io, extra={"stt": a, "stt2": b})
    loop = asyncio.get_running_loop()
    async with fk.GraphRunner(graph("dual_stt", job), job=job) as runner:
        arrived: list[tuple[float, str]] = []
        runner.observe("choose.transcripts").subscribe(
            lambda t: arrived.append((loop.time(), t.text)) if t.final else None)
        await asyncio.sleep(6)
    assert [text for _, text in arrived] == ["premier", "second"]
    # "second" had no partner: it went on after the chooser's wait, not at the end of input
    recognised_at = arrived[0][0] + 2.0  # the utterances are 2 s apart
    assert arrived[1][0] == pytest.approx(recognised_at + 1.0, abs=0.2)


# --------------------------------------------------------------------------- meeting


@pytest.mark.looptime
async def test_meeting_transcriber_labels_speakers_in_speaking_order() -> None:
    audio = {
        "alice": frames(silence(0.5), voiced(1), silence(3)),              # speaks 0.5-1.5
        "bob": frames(silence(2, seed=3), voiced(1), silence(1.5, seed=3)),  # speaks 2-3
    }
    io = MemoryIO(audio, paced=True)
    # Alice's recogniser is slow: her words come back after Bob's, yet she spoke first.
    stt = {"alice": FakeSTT(["shall we start"], delay=2.5),
           "bob": FakeSTT(["yes please"], delay=0.1)}
    job = fk.JobContext(io=io, extra={"stt": stt})
    g = graph("meeting_transcriber", job)
    arrivals: list[tuple[float, str]] = []
    loop = asyncio.get_running_loop()
    runner = fk.GraphRunner(g, job=job)
    await runner.start()
    for who in ("alice", "bob"):
        runner.observe(f"stt_{who}.transcripts").subscribe(
            lambda t: arrivals.append((loop.time(), t.speaker)) if t.final else None)
    await runner.wait()
    await runner.close()
    assert [who for _, who in arrivals] == ["bob", "alice"]  # recognised out of order
    assert [(t.speaker, t.text) for t in io.transcripts] == [
        ("alice", "shall we start"), ("bob", "yes please")]
    assert io.transcripts[0].start_time < io.transcripts[1].start_time


def test_meeting_transcriber_has_a_branch_per_participant() -> None:
    g = graph("meeting_transcriber", fk.JobContext.local(participants=["ann", "ben", "cy"]))
    assert g.problems() == []
    assert {n.name for n in g.spec().nodes if n.name.startswith("stt_")} == {
        "stt_ann", "stt_ben", "stt_cy"}
