"""Fallback providers on scripted fakes, under virtual time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest

from flowkit.providers import (
    AvailabilityChange,
    BatchSTT,
    BatchTTS,
    ChatMessage,
    FallbackLLM,
    FallbackSTT,
    FallbackTTS,
    LLMChunk,
    LLMProvider,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    TextDelta,
)
from flowkit.testing import FakeLLM, FakeReply, FakeSTT, FakeTTS

HISTORY = [ChatMessage("user", "hi")]
AUDIO = np.zeros(1600, np.int16)


def down(name: str = "primary") -> ProviderUnavailable:
    return ProviderUnavailable("HTTP 503", provider=name, status=503)


async def text(chunks: AsyncIterator[LLMChunk]) -> str:
    return "".join([c.text async for c in chunks if isinstance(c, TextDelta)])


def now() -> float:
    return asyncio.get_running_loop().time()


def test_fallbacks_keep_the_contracts() -> None:
    assert isinstance(FallbackLLM([FakeLLM()]), LLMProvider)
    assert isinstance(FallbackSTT([FakeSTT()]), BatchSTT)
    assert isinstance(FallbackTTS([FakeTTS()]), BatchTTS)
    with pytest.raises(ValueError, match="at least one provider"):
        FallbackLLM([])
    with pytest.raises(ValueError, match="same audio format"):
        FallbackTTS([FakeTTS(sample_rate=24_000), FakeTTS(sample_rate=16_000, name="b")])


@pytest.mark.looptime
async def test_retryable_error_retries_then_moves_on() -> None:
    primary = FakeLLM(["p"], name="primary", failures={0: down(), 1: down()})
    secondary = FakeLLM(["from secondary"], name="secondary", ttft=0.2)
    seen: list[AvailabilityChange] = []
    llm = FallbackLLM([primary, secondary], max_retry=1, retry_interval=0.5, on_change=seen.append)
    start = now()
    assert await text(llm.chat(HISTORY)) == "from secondary"
    assert primary.calls == 2 and secondary.calls == 1
    # One retry interval on the primary, then the secondary's time to first token and gap.
    assert now() - start == pytest.approx(0.5 + 0.2 + 0.02, abs=0.01)
    assert llm.last_provider == "secondary"
    assert llm.availability == {"primary": False, "secondary": True}
    assert [(c.provider, c.available) for c in seen] == [("primary", False)]
    assert "HTTP 503" in seen[0].reason and llm.changes == tuple(seen)


@pytest.mark.looptime
async def test_fatal_error_is_raised_at_once() -> None:
    rejected = ProviderRejected("invalid API key; check OPENAI_API_KEY", provider="primary")
    primary = FakeLLM(["p"], name="primary", failures={0: rejected})
    secondary = FakeLLM(["s"], name="secondary")
    llm = FallbackLLM([primary, secondary], max_retry=3)
    with pytest.raises(ProviderRejected, match="invalid API key"):
        await text(llm.chat(HISTORY))
    assert primary.calls == 1 and secondary.calls == 0
    assert llm.availability["primary"]  # a bad request says nothing about the service


@pytest.mark.looptime
async def test_timeouts_count_as_retryable_and_cancel_the_attempt() -> None:
    primary = FakeLLM(["p"], name="primary", hang={0, 1})
    secondary = FakeLLM(["s"], name="secondary", ttft=0.1)
    llm = FallbackLLM([primary, secondary], timeout=2.0, max_retry=1, retry_interval=0.5)
    start = now()
    assert await text(llm.chat(HISTORY)) == "s"
    assert now() - start == pytest.approx(2.0 + 0.5 + 2.0 + 0.1, abs=0.01)
    assert [r.cancelled for r in primary.requests] == [True, True]


@pytest.mark.looptime
async def test_stt_batch_call_timeout_and_exhaustion() -> None:
    slow = FakeSTT(["late"], name="slow", delay=5.0)
    broken = FakeSTT(["x"], name="broken", failures={0: down("broken")})
    stt = FallbackSTT([slow, broken], timeout=1.0, max_retry=0)
    start = now()
    with pytest.raises(ProviderUnavailable, match="every provider failed") as info:
        await stt.recognize(AUDIO, 16_000)
    assert now() - start == pytest.approx(1.0, abs=0.01)
    assert "slow: no answer within 1.0 s" in str(info.value)
    assert "broken: HTTP 503" in str(info.value)
    assert stt.availability == {"slow": False, "broken": False}


@pytest.mark.looptime
async def test_switches_back_when_the_first_recovers() -> None:
    primary = FakeSTT(["p1", "p2"], name="primary", delay=0.1)
    secondary = FakeSTT(["s1", "s2"], name="secondary", delay=0.1)
    stt = FallbackSTT([primary, secondary], max_retry=2, recovery_interval=10.0)
    primary.outage = down()
    assert (await stt.recognize(AUDIO, 16_000)).text == "s1"
    assert primary.calls == 3  # the first attempt and two retries
    # Within the recovery interval the primary is not even asked.
    assert (await stt.recognize(AUDIO, 16_000)).text == "s2"
    assert primary.calls == 3
    await asyncio.sleep(10.0)
    primary.outage = None
    assert (await stt.recognize(AUDIO, 16_000)).text == "p1"
    assert stt.last_provider == "primary"
    assert [(c.provider, c.available) for c in stt.changes] == [
        ("primary", False),
        ("primary", True),
    ]
    assert stt.availability == {"primary": True, "secondary": True}


@pytest.mark.looptime
async def test_a_failed_recovery_check_costs_one_attempt_and_restarts_the_wait() -> None:
    primary = FakeSTT(["p"], name="primary", delay=0.1)
    secondary = FakeSTT(["s1", "s2", "s3"], name="secondary", delay=0.1)
    stt = FallbackSTT([primary, secondary], max_retry=2, recovery_interval=10.0)
    primary.outage = down()
    await stt.recognize(AUDIO, 16_000)
    await asyncio.sleep(10.0)
    assert (await stt.recognize(AUDIO, 16_000)).text == "s2"
    assert primary.calls == 4  # three attempts, then one recovery check
    await asyncio.sleep(5.0)
    await stt.recognize(AUDIO, 16_000)
    assert primary.calls == 4  # the check restarted the 10 s wait
    assert len(stt.changes) == 1


@pytest.mark.looptime
async def test_when_all_are_down_each_is_tried_once_anyway() -> None:
    a = FakeSTT(["a"], name="a", failures={0: down("a")})
    b = FakeSTT(["b"], name="b", failures={0: down("b")})
    stt = FallbackSTT([a, b], max_retry=0, recovery_interval=60.0)
    with pytest.raises(ProviderUnavailable):
        await stt.recognize(AUDIO, 16_000)
    assert (await stt.recognize(AUDIO, 16_000)).text == "a"
    assert (a.calls, b.calls) == (2, 1)


@pytest.mark.looptime
async def test_no_switch_after_the_first_output_of_a_stream() -> None:
    cut = FakeReply(text="Hello there my friend", error=down(), error_after=2)
    primary = FakeLLM([cut], name="primary")
    secondary = FakeLLM(["never used"], name="secondary")
    llm = FallbackLLM([primary, secondary])
    got: list[str] = []
    with pytest.raises(ProviderUnavailable, match="HTTP 503"):
        async for chunk in llm.chat(HISTORY):
            assert isinstance(chunk, TextDelta)
            got.append(chunk.text)
    assert got == ["Hello", " there"]
    assert secondary.calls == 0
    # The next request is spared the provider that just failed.
    assert llm.availability["primary"] is False


@pytest.mark.looptime
async def test_a_stalled_stream_times_out_after_its_first_output() -> None:
    stall = FakeReply(text="one two", token_gap=30.0)
    llm = FallbackLLM([FakeLLM([stall], name="primary")], timeout=5.0)
    with pytest.raises(ProviderTimeout, match=r"no answer within 5\.0 s"):
        await text(llm.chat(HISTORY))


@pytest.mark.looptime
async def test_closing_a_fallback_stream_cancels_the_provider_request() -> None:
    primary = FakeLLM(["a fairly long reply with many words"], name="primary", token_gap=1.0)
    stream = FallbackLLM([primary]).chat(HISTORY)
    assert isinstance(await anext(stream), TextDelta)
    await stream.aclose()  # type: ignore[attr-defined]
    assert primary.requests[0].cancelled and not primary.requests[0].completed


@pytest.mark.looptime
async def test_tts_falls_back_before_the_first_frame() -> None:
    primary = FakeTTS(name="primary", failures={0: down()})
    secondary = FakeTTS(name="secondary", seconds_per_char=0.01, frame_ms=20)
    tts = FallbackTTS([primary, secondary], max_retry=0)
    frames = [f async for f in tts.synthesize("Hello.")]
    assert sum(f.samples_per_channel for f in frames) == round(24_000 * 0.06)
    assert tts.last_provider == "secondary" and secondary.texts == ["Hello."]
    assert tts.sample_rate == 24_000 and tts.num_channels == 1


def test_duplicate_names_are_numbered() -> None:
    llm = FallbackLLM([FakeLLM(name="same"), FakeLLM(name="same")])
    assert llm.name == "fallback(same#0, same#1)"
