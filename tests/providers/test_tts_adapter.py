"""StreamingTTSFromBatch: speech starts after the first sentence, audio stays in text order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest
from livekit import rtc

from flowkit.audio.frames import frame_from_samples, samples
from flowkit.providers import BatchTTS, StreamingTTS, StreamingTTSFromBatch
from flowkit.testing import FakeTTS


class SlowFirstTTS:
    """Each sentence's audio is one constant: its index. The first sentence is the slowest."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    @property
    def name(self) -> str:
        return "slow-first"

    @property
    def sample_rate(self) -> int:
        return 8000

    @property
    def num_channels(self) -> int:
        return 1

    async def synthesize(self, text: str) -> AsyncIterator[rtc.AudioFrame]:
        index = len(self.texts)
        self.texts.append(text)
        await asyncio.sleep(1.0 if index == 0 else 0.1)
        for _ in range(3):
            yield frame_from_samples(np.full(80, index, np.int16), 8000)
            await asyncio.sleep(0.01)


@pytest.mark.looptime
async def test_first_audio_comes_after_the_first_sentence_before_the_text_ends() -> None:
    tts = FakeTTS(sample_rate=16_000, seconds_per_char=0.01, ttfa=0.1)
    adapter = StreamingTTSFromBatch(tts, min_sentence_length=0)
    assert isinstance(adapter, StreamingTTS) and isinstance(tts, BatchTTS)
    stream = adapter.stream()
    loop = asyncio.get_running_loop()
    start = loop.time()
    for token in ["Hello", " there", ".", " How", " are"]:
        stream.push_text(token)
        await asyncio.sleep(0.05)
    first = await anext(stream)
    assert tts.texts == ["Hello there."]
    # " How" completed the sentence at 0.15 s; the fake answers 0.1 s later.
    assert loop.time() - start == pytest.approx(0.25, abs=0.01)
    stream.push_text(" you?")
    stream.end_input()
    rest = [frame async for frame in stream]
    assert tts.texts == ["Hello there.", "How are you?"]
    total = sum(f.samples_per_channel for f in [first, *rest])
    assert total == round(16_000 * 0.01 * len("Hello there.How are you?"))


@pytest.mark.looptime
async def test_audio_keeps_text_order_even_when_later_sentences_are_faster() -> None:
    tts = SlowFirstTTS()
    stream = StreamingTTSFromBatch(tts, min_sentence_length=0).stream()
    stream.push_text("One is slow. Two is quick. Three too.")
    stream.end_input()
    order = [int(samples(frame)[0, 0]) async for frame in stream]
    assert order == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert tts.texts == ["One is slow.", "Two is quick.", "Three too."]


@pytest.mark.looptime
async def test_flush_speaks_pending_text_without_waiting_for_more() -> None:
    tts = FakeTTS(ttfa=0.1, seconds_per_char=0.01)
    stream = StreamingTTSFromBatch(tts).stream()
    stream.push_text("No full stop here")
    await asyncio.sleep(1.0)
    assert tts.texts == []
    stream.flush()
    await anext(stream)
    assert tts.texts == ["No full stop here"]
    await stream.aclose()


@pytest.mark.looptime
async def test_aclose_cancels_the_request_in_flight() -> None:
    tts = FakeTTS(ttfa=0.1, seconds_per_char=0.1, frame_gap=0.02)
    stream = tts.stream()  # FakeTTS streams through the same adapter
    stream.push_text("A long sentence that takes a while to speak. ")
    await anext(stream)
    await stream.aclose()
    assert tts.requests[0].cancelled and not tts.requests[0].completed
    assert [f async for f in stream] == []
    with pytest.raises(RuntimeError, match="push_text"):
        stream.push_text("more")


@pytest.mark.looptime
async def test_a_provider_error_surfaces_from_the_iteration() -> None:
    from flowkit.providers import ProviderRejected

    error = ProviderRejected("bad voice", provider="fake-tts")
    stream = FakeTTS(failures={1: error}).stream()
    stream.push_text("The first sentence works fine. The second one fails. ")
    stream.end_input()
    frames = 0
    with pytest.raises(ProviderRejected, match="bad voice"):
        async for _ in stream:
            frames += 1
    assert frames > 0
