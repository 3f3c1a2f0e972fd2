"""Preemptive TTS: the LLM's early answer goes to TTS as SpeechPrefetch, whose first sentence
is synthesised during the endpointing delay and played only if the committed reply starts
with it (on the loop's virtual clock)."""

from __future__ import annotations

from typing import Any

import pytest
from support import Collect, Script, TimedCollect, collected

import flowkit as fk
from flowkit.messages import SpeechPrefetch
from flowkit.nodes.llm import LLM
from flowkit.nodes.tts import TTS
from flowkit.testing import FakeLLM
from flowkit.testing.fakes import FakeTTS

FIRST = "It is sunny in Paris today. "
REST = "Expect a high of twenty two degrees."


def _voice(
    llm: LLM, tts: TTS, tentative: list[tuple[float, Any]], turns: list[tuple[float, Any]]
) -> tuple[fk.Graph, TimedCollect, Collect]:
    g = fk.Graph("preemptive-tts")
    g.add(Script(*turns), name="turns") >> g.add(llm, name="llm") >> g.add(tts, name="tts")
    g.add(Script(*tentative), name="tentative") >> llm.tentative
    llm.prefetch >> tts.prefetch
    audio, metrics = g.add(TimedCollect(), name="audio"), g.add(Collect(), name="metrics")
    tts >> audio
    tts.metrics >> metrics
    return g, audio, metrics


def _turn(text: str) -> fk.UserTurn:
    return fk.UserTurn(turn_id=fk.new_turn_id(), text=text)


@pytest.mark.looptime
async def test_the_first_sentence_is_synthesised_during_the_delay_and_played_at_commit() -> None:
    llm_fake = FakeLLM([FIRST + REST], ttft=0.2, token_gap=0.01)
    tts_fake = FakeTTS(seconds_per_char=0.01, ttfa=0.3)
    turn = _turn("weather in Paris?")
    g, audio, metrics = _voice(
        LLM(llm_fake), TTS(tts_fake), [(0.0, fk.TentativeTurn(text="weather in Paris?"))],
        [(1.0, turn)],
    )
    await fk.GraphRunner(g).run()

    # One synthesis per sentence, the first one started long before the commit at 1.0 s.
    assert tts_fake.texts == [FIRST.strip(), REST]
    assert all(r.completed for r in tts_fake.requests)
    frames = [(t, a) for t, a in audio.items if a.frame is not None]
    # Nothing is spoken before the turn commits; then its audio is there at once, where a
    # request made at the commit would have answered 0.2 + 0.3 s later.
    assert frames[0][0] == pytest.approx(1.0, abs=0.01)
    assert {a.turn_id for _, a in audio.items} == {turn.turn_id}
    assert {a.text for _, a in frames if a.segment == 0} == {FIRST.strip()}
    assert sum(a.segment == 0 for _, a in frames) == tts_fake.requests[0].frames
    [m] = collected(metrics)
    assert m.labels["prefetched"] is True
    assert m.values["ttfa"] == pytest.approx(0.0, abs=0.01)


@pytest.mark.looptime
async def test_a_reply_that_starts_otherwise_discards_the_audio_made_ahead() -> None:
    llm_fake = FakeLLM(
        ["Which city do you mean? ", "It is sunny in Paris, twenty two degrees."],
        ttft=0.2, token_gap=0.01,
    )
    tts_fake = FakeTTS(seconds_per_char=0.05, ttfa=0.3, frame_gap=0.05)
    turn = _turn("weather in Paris?")
    g, audio, metrics = _voice(
        LLM(llm_fake), TTS(tts_fake), [(0.0, fk.TentativeTurn(text="weather"))],
        [(0.7, turn)],
    )
    await fk.GraphRunner(g).run()

    early, spoken = tts_fake.requests
    assert early.text == "Which city do you mean?" and early.cancelled and not early.completed
    assert spoken.text == "It is sunny in Paris, twenty two degrees." and spoken.completed
    assert {a.text for _, a in audio.items if a.frame is not None} == {spoken.text}
    [m] = collected(metrics)
    assert m.labels["prefetched"] is False


@pytest.mark.looptime
async def test_audio_made_for_a_turn_that_goes_on_is_cancelled_and_never_played() -> None:
    llm_fake = FakeLLM(lambda history: f"You said {history[-1].content}. ", ttft=0.1,
                       token_gap=0.0)
    tts_fake = FakeTTS(seconds_per_char=0.05, ttfa=0.2, frame_gap=0.05)
    turn = _turn("book a table for two people")
    g, audio, _ = _voice(
        LLM(llm_fake), TTS(tts_fake),
        [(0.0, fk.TentativeTurn(text="book a table")),
         (0.4, fk.TentativeTurn(text="book a table for two people"))],
        [(1.5, turn)],
    )
    await fk.GraphRunner(g).run()

    first, second = tts_fake.requests
    assert first.text == "You said book a table." and first.cancelled
    assert second.text == "You said book a table for two people." and second.completed
    played = {a.text for _, a in audio.items if a.frame is not None}
    assert played == {"You said book a table for two people."}
    assert audio.items[0][0] == pytest.approx(1.5, abs=0.01)


@pytest.mark.looptime
async def test_text_after_a_tool_call_is_not_prefetched() -> None:
    prefetched: list[SpeechPrefetch] = []
    from flowkit.providers.llm import ToolCallChunk
    from flowkit.testing import FakeReply

    llm_fake = FakeLLM(
        [FakeReply(text="Let me check. ", tool_calls=[ToolCallChunk("c1", "weather", "{}")])],
        ttft=0.1, token_gap=0.0,
    )
    g = fk.Graph("prefetch-out")
    llm = g.add(LLM(llm_fake), name="llm")
    g.add(Script(end_at=1.0), name="turns") >> llm
    g.add(Script((0.0, fk.TentativeTurn(text="weather?"))), name="tentative") >> llm.tentative
    collect = g.add(Collect(), name="prefetch")
    llm.prefetch >> collect
    llm >> g.add(Collect(), name="text")
    await fk.GraphRunner(g).run()
    prefetched = collected(collect)
    assert "".join(p.text for p in prefetched) == "Let me check. "
    assert not any(p.final for p in prefetched)  # the reply goes on after the tool's result
    assert prefetched[-1].discard  # the turn never came: the audio is not wanted
    assert len({p.key for p in prefetched}) == 1
