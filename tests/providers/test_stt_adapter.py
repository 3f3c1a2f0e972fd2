"""StreamingSTTFromBatch on synthetic tone bursts, cut by EnergyVAD."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from flowkit.providers import BatchSTT, SpeechResult, StreamingSTT, StreamingSTTFromBatch
from flowkit.testing import FakeSTT
from flowkit.vad import EnergyVAD, EnergyVADOptions

RATE = 16_000


def bursts(seconds: list[tuple[float, float]]) -> np.ndarray:
    """(silence before, tone length) pairs, then 1 s of silence; -20 dBFS tone, faint noise."""
    parts = []
    for gap, tone in seconds:
        parts.append(np.zeros(round(gap * RATE)))
        t = np.arange(round(tone * RATE)) / RATE
        parts.append(0.1 * np.sin(2 * np.pi * 300 * t))
    parts.append(np.zeros(RATE))
    x = np.concatenate(parts)
    x = x + np.random.default_rng(3).normal(0.0, 10 ** (-65 / 20), x.size)
    return np.clip(np.round(x * 32768), -32768, 32767).astype(np.int16)


def keeping_vad() -> EnergyVAD:
    return EnergyVAD(EnergyVADOptions(keep_speech_samples=True, min_silence_duration=0.3))


async def run(stt: StreamingSTT, pcm: np.ndarray) -> list[SpeechResult]:
    stream = stt.stream(RATE)
    for i in range(0, pcm.size, 320):
        stream.push(pcm[i : i + 320])
        await asyncio.sleep(0.02)  # audio arrives in real time
    stream.end_input()
    return [result async for result in stream]


@pytest.mark.looptime
async def test_one_final_result_per_utterance_in_order() -> None:
    fake = FakeSTT(["one", "two", "three"], delay=0.2)
    adapter = StreamingSTTFromBatch(fake, keeping_vad())
    assert isinstance(fake, BatchSTT) and isinstance(adapter, StreamingSTT)
    results = await run(adapter, bursts([(0.5, 0.6), (1.0, 0.4), (1.0, 0.8)]))
    assert [r.text for r in results] == ["one", "two", "three"]
    assert all(r.final for r in results)
    # Times are stream times: each utterance's end sits at the end of its tone.
    ends = [r.end_time for r in results]
    assert ends == pytest.approx([1.1, 2.5, 4.3], abs=0.1)
    assert [r.start_time < r.end_time for r in results] == [True] * 3
    # Each request got that utterance's audio (tone + padding + trailing silence), not more.
    lengths = [req.samples / RATE for req in fake.requests]
    assert lengths[0] == pytest.approx(0.6 + 0.5 + 0.3, abs=0.1)
    assert lengths[2] == pytest.approx(0.8 + 0.5 + 0.3, abs=0.1)


@pytest.mark.looptime
async def test_results_come_while_audio_still_flows() -> None:
    fake = FakeSTT(["first", "second"], delay=0.2)
    stream = StreamingSTTFromBatch(fake, keeping_vad()).stream(RATE)
    pcm = bursts([(0.2, 0.5), (2.0, 0.5)])
    loop = asyncio.get_running_loop()
    start = loop.time()
    seen: list[tuple[str, float]] = []

    async def read() -> None:
        async for result in stream:
            seen.append((result.text, loop.time() - start))

    reader = asyncio.create_task(read())
    for i in range(0, pcm.size, 320):
        stream.push(pcm[i : i + 320])
        await asyncio.sleep(0.02)
    stream.end_input()
    await reader
    assert [text for text, _ in seen] == ["first", "second"]
    # "first" arrives ~0.3 s (silence) + 0.2 s (delay) after its tone ended at 0.7 s.
    assert seen[0][1] == pytest.approx(1.2, abs=0.1)


@pytest.mark.looptime
async def test_blank_results_are_dropped_and_flush_ends_open_speech() -> None:
    fake = FakeSTT(["", "kept"], delay=0.1)
    stream = StreamingSTTFromBatch(fake, keeping_vad()).stream(RATE)
    pcm = bursts([(0.2, 0.5), (1.0, 0.5)])[:-RATE]  # ends in the middle of nowhere
    pcm = pcm[: pcm.size - round(0.1 * RATE)]  # cut inside the second tone
    stream.push(pcm)
    stream.end_input()
    assert [r.text async for r in stream] == ["kept"]
    assert len(fake.requests) == 2


async def test_vad_must_keep_speech_samples() -> None:
    stream = StreamingSTTFromBatch(FakeSTT(["x"]), EnergyVAD()).stream(RATE)
    with pytest.raises(ValueError, match="keep_speech_samples=True"):
        stream.push(bursts([(0.2, 0.5)]))
    await stream.aclose()


@pytest.mark.looptime
async def test_provider_errors_surface_from_the_iteration_and_aclose_stops() -> None:
    from flowkit.providers import ProviderUnavailable

    fake = FakeSTT(["a"], failures={0: ProviderUnavailable("down", provider="fake-stt")})
    stream = StreamingSTTFromBatch(fake, keeping_vad()).stream(RATE)
    stream.push(bursts([(0.2, 0.5)]))
    with pytest.raises(ProviderUnavailable, match="fake-stt: down"):
        await anext(stream)
    await stream.aclose()
    with pytest.raises(RuntimeError, match="push"):
        stream.push(np.zeros(10, np.int16))
    assert [r async for r in stream] == []
