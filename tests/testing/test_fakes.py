"""The scripted fakes keep the provider contracts and behave as scripted, in virtual time."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from flowkit.audio.frames import samples
from flowkit.providers import (
    BatchSTT,
    BatchTTS,
    ChatMessage,
    LLMProvider,
    ProviderUnavailable,
    StreamingSTT,
    StreamingTTS,
    STTStream,
    TextDelta,
    ToolCallChunk,
    ToolSpec,
    TTSStream,
    Usage,
)
from flowkit.testing import FakeLLM, FakeReply, FakeSTT, FakeTTS, word_tokens

HISTORY = [ChatMessage("system", "Be brief."), ChatMessage("user", "what is the weather")]
WEATHER = ToolSpec("weather", "Look up the weather.", {"type": "object", "properties": {}})


def now() -> float:
    return asyncio.get_running_loop().time()


async def test_fakes_satisfy_the_contracts() -> None:
    stt, llm, tts = FakeSTT(), FakeLLM(), FakeTTS()
    assert isinstance(stt, BatchSTT) and isinstance(stt, StreamingSTT)
    assert isinstance(llm, LLMProvider)
    assert isinstance(tts, BatchTTS) and isinstance(tts, StreamingTTS)
    stt_stream, tts_stream = stt.stream(16_000), tts.stream()
    assert isinstance(stt_stream, STTStream) and isinstance(tts_stream, TTSStream)
    await stt_stream.aclose()
    await tts_stream.aclose()
    # A plain object is not mistaken for a provider.
    assert not isinstance(object(), LLMProvider)


def test_word_tokens_join_back_to_the_text() -> None:
    assert word_tokens("Hello  there, friend. ") == ["Hello", "  there,", " friend.", " "]
    assert "".join(word_tokens(" a b")) == " a b"


@pytest.mark.looptime
async def test_llm_streams_words_with_scripted_timing_and_records_the_request() -> None:
    llm = FakeLLM(["It is sunny today."], ttft=0.5, token_gap=0.1)
    start = now()
    times: list[float] = []
    chunks = []
    async for chunk in llm.chat(HISTORY, [WEATHER], tool_choice="required"):
        chunks.append(chunk)
        times.append(round(now() - start, 3))
    deltas = [c for c in chunks if isinstance(c, TextDelta)]
    assert [d.text for d in deltas] == ["It", " is", " sunny", " today."]
    assert times[:4] == [0.5, 0.6, 0.7, 0.8]
    assert chunks[-1] == Usage(prompt_tokens=6, completion_tokens=4)
    request = llm.requests[0]
    assert request.history == tuple(HISTORY) and request.tools == (WEATHER,)
    assert request.tool_choice == "required"
    assert request.completed and not request.cancelled and request.text == "It is sunny today."


@pytest.mark.looptime
async def test_llm_scripted_tool_calls_and_function_replies() -> None:
    call = ToolCallChunk("c1", "weather", '{"city": "Paris"}')
    llm = FakeLLM([FakeReply(tool_calls=(call,), usage=False)])
    assert [c async for c in llm.chat(HISTORY)] == [call]
    assert call.to_tool_call(turn_id=3).turn_id == 3
    echo = FakeLLM(lambda history: f"you said {history[-1].content}")
    echoed = [c async for c in echo.chat(HISTORY)]
    assert echoed[0] == TextDelta("you")
    with pytest.raises(RuntimeError, match="no scripted reply left"):
        await anext(llm.chat(HISTORY))


@pytest.mark.looptime
async def test_llm_records_cancellation_by_aclose_and_by_task_cancel() -> None:
    llm = FakeLLM(["one two three four"], token_gap=1.0)
    stream = llm.chat(HISTORY)
    await anext(stream)
    await stream.aclose()  # type: ignore[attr-defined]
    assert llm.requests[0].cancelled and llm.requests[0].text == "one"

    llm = FakeLLM(["one two"], ttft=5.0)

    async def read() -> None:
        async for _ in llm.chat(HISTORY):
            pass

    task = asyncio.create_task(read())
    await asyncio.sleep(1.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert llm.requests[0].cancelled and llm.requests[0].chunks == []


@pytest.mark.looptime
async def test_scripted_failures_and_outages() -> None:
    error = ProviderUnavailable("HTTP 503", provider="fake-llm")
    llm = FakeLLM(["a", "b"], failures={1: error})
    first = [c async for c in llm.chat(HISTORY)]
    assert first[0] == TextDelta("a")
    with pytest.raises(ProviderUnavailable):
        await anext(llm.chat(HISTORY))
    assert llm.requests[1].error is error
    third = [c async for c in llm.chat(HISTORY)]
    assert third[0] == TextDelta("b")  # a failed call uses up no reply
    stt = FakeSTT(["x"])
    stt.outage = error
    with pytest.raises(ProviderUnavailable):
        await stt.recognize(np.zeros(160, np.int16), 16_000)
    stt.outage = None
    assert (await stt.recognize(np.zeros(160, np.int16), 16_000)).text == "x"
    assert stt.calls == 2


@pytest.mark.looptime
async def test_stt_batch_returns_transcripts_in_order_after_the_delay() -> None:
    stt = FakeSTT(["one", "two"], delay=0.3, language="fr")
    start = now()
    first = await stt.recognize(np.zeros(8000, np.int16), 16_000, language="fr")
    assert now() - start == pytest.approx(0.3)
    assert (first.text, first.language, first.end_time) == ("one", "fr", 0.5)
    assert (await stt.recognize(np.zeros(10, np.int16), 8000)).text == "two"
    assert [(r.samples, r.sample_rate, r.language) for r in stt.requests] == [
        (8000, 16_000, "fr"),
        (10, 8000, None),
    ]
    with pytest.raises(RuntimeError, match="no scripted transcript left"):
        await stt.recognize(np.zeros(10, np.int16), 8000)


@pytest.mark.looptime
async def test_stt_stream_gives_an_interim_then_a_final_per_utterance() -> None:
    rate = 16_000
    t = np.arange(rate // 2) / rate
    tone = (3000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)
    gap = np.zeros(rate, np.int16)
    stream = FakeSTT(["hello world", "bye"], delay=0.2).stream(rate)
    stream.push(np.concatenate([gap, tone, gap, tone, gap]))
    stream.end_input()
    results = [(r.text, r.final) async for r in stream]
    assert results == [("hello", False), ("hello world", True), ("bye", False), ("bye", True)]


@pytest.mark.looptime
async def test_tts_makes_a_tone_of_the_scripted_length_in_frames() -> None:
    tts = FakeTTS(sample_rate=16_000, seconds_per_char=0.01, frame_ms=20, ttfa=0.2)
    start = now()
    frames = [f async for f in tts.synthesize("Hello, world!")]  # 13 chars: 0.13 s
    assert now() - start == pytest.approx(0.2)
    assert [f.samples_per_channel for f in frames] == [320] * 6 + [160]
    assert all(f.sample_rate == 16_000 and f.num_channels == 1 for f in frames)
    audio = np.concatenate([samples(f)[:, 0] for f in frames])
    assert 0.25 < np.abs(audio).max() / 32767 < 0.35  # an audible tone, not silence
    assert tts.texts == ["Hello, world!"] and tts.requests[0].completed
    fixed = FakeTTS(duration=0.05, sample_rate=8000, num_channels=2)
    stereo = [f async for f in fixed.synthesize("anything at all")]
    assert sum(f.samples_per_channel for f in stereo) == 400
    assert stereo[0].num_channels == 2
