from __future__ import annotations

import asyncio

import numpy as np
import pytest

from flowkit.providers import (
    LLMMeter,
    ProviderError,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    STTMeter,
    TTSMeter,
    error_for_status,
)
from flowkit.providers.chat import ChatMessage
from flowkit.testing import FakeLLM, FakeSTT, FakeTTS


@pytest.mark.looptime
async def test_llm_meter_measures_ttft_and_tokens_per_second() -> None:
    llm = FakeLLM(["one two three four five"], ttft=0.4, token_gap=0.1)
    meter = LLMMeter(llm.name, node="brain")
    async for chunk in llm.chat([ChatMessage("user", "count")]):
        meter.chunk(chunk)
    metrics = meter.finish()
    assert (metrics.kind, metrics.node, metrics.labels["provider"]) == ("llm", "brain", "fake-llm")
    assert metrics.values["ttft"] == pytest.approx(0.4)
    assert metrics.values["duration"] == pytest.approx(0.8)
    assert metrics.values["completion_tokens"] == 5
    assert metrics.values["tokens_per_second"] == pytest.approx(5 / 0.4)


@pytest.mark.looptime
async def test_tts_meter_measures_time_to_first_audio() -> None:
    tts = FakeTTS(ttfa=0.3, seconds_per_char=0.01, frame_gap=0.02)
    meter = TTSMeter(tts.name)
    async for frame in tts.synthesize("0123456789"):
        meter.frame(frame)
    metrics = meter.finish(characters=10)
    assert metrics.values["ttfa"] == pytest.approx(0.3)
    assert metrics.values["audio_duration"] == pytest.approx(0.1)
    assert metrics.values["duration"] == pytest.approx(0.3 + 4 * 0.02)
    assert metrics.labels["cancelled"] is False


@pytest.mark.looptime
async def test_stt_meter_measures_latency_from_end_of_audio() -> None:
    stt = FakeSTT(["hi"], delay=0.25)
    meter = STTMeter(stt.name)
    await asyncio.sleep(1.0)
    meter.audio_ended(audio_duration=1.0)
    result = await stt.recognize(np.zeros(16_000, np.int16), 16_000)
    metrics = meter.result(result)
    assert metrics is not None and metrics.values["latency"] == pytest.approx(0.25)
    assert meter.result(result) is None  # one final per end of audio


@pytest.mark.parametrize(
    ("status", "kind", "retryable", "hint"),
    [
        (401, ProviderRejected, False, "API key"),
        (400, ProviderRejected, False, "check the request"),
        (429, ProviderUnavailable, True, "retry later"),
        (503, ProviderUnavailable, True, "fallback"),
        (504, ProviderTimeout, True, "timeout"),
    ],
)
def test_error_for_status(
    status: int, kind: type[ProviderError], retryable: bool, hint: str
) -> None:
    error = error_for_status("openai", status, "nope")
    assert type(error) is kind and error.retryable is retryable and error.status == status
    assert str(error).startswith("openai: ") and hint in str(error) and "nope" in str(error)


def test_retryable_can_be_overridden_per_error() -> None:
    assert ProviderError("x").retryable is False
    assert ProviderRejected("conflict", retryable=True).retryable is True
