"""EspeakTTS on the real libespeak-ng from espeakng-loader: rate, length, loudness, threads."""

from __future__ import annotations

import asyncio
import itertools

import numpy as np
import pytest
from flowkit_local.espeak import EspeakTTS, EspeakTTSOptions, EspeakTTSProvider
from livekit import rtc

from flowkit.nodes.tts import TTS
from flowkit.providers import BatchTTS
from flowkit.providers.tts_words import timed_words

SENTENCE = "What is the weather in Paris today?"
LONGER = (
    "What is the weather in Paris today? I would like to know whether I need an umbrella "
    "for my walk along the river this afternoon."
)


async def speak(provider: EspeakTTSProvider, text: str) -> list[rtc.AudioFrame]:
    return [frame async for frame in provider.synthesize(text)]


def pcm_of(frames: list[rtc.AudioFrame]) -> np.ndarray:
    return np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in frames])


@pytest.fixture(scope="module")
def provider() -> EspeakTTSProvider:
    return EspeakTTSProvider()


def test_the_provider_is_a_batch_tts(provider: EspeakTTSProvider) -> None:
    assert isinstance(provider, BatchTTS)
    assert provider.sample_rate == 22_050
    assert provider.num_channels == 1
    assert provider.name == "espeak-ng/en-us"


async def test_a_sentence_is_plausible_speech(provider: EspeakTTSProvider) -> None:
    frames = await speak(provider, SENTENCE)
    assert {(f.sample_rate, f.num_channels) for f in frames} == {(22_050, 1)}
    assert {f.samples_per_channel for f in frames[:-1]} == {441}  # 20 ms frames
    assert 0 < frames[-1].samples_per_channel <= 441
    pcm = pcm_of(frames)
    assert 1.5 <= pcm.size / 22_050 <= 6.0
    rms_db = 10 * np.log10(np.mean(pcm.astype(np.float64) ** 2) / 32768**2)
    assert rms_db > -35.0
    assert np.abs(pcm).max() > 3000


async def test_longer_text_gives_longer_audio_and_rate_speeds_it_up(
    provider: EspeakTTSProvider,
) -> None:
    short = pcm_of(await speak(provider, SENTENCE)).size
    long = pcm_of(await speak(provider, LONGER)).size
    assert long > 2 * short
    fast = pcm_of(await speak(EspeakTTSProvider(EspeakTTSOptions(rate=350)), LONGER)).size
    assert fast < 0.75 * long
    # The shared library was switched to the fast voice and back: settings do not leak.
    # (espeak's output varies by a few milliseconds from call to call, hence the tolerance.)
    assert pcm_of(await speak(provider, LONGER)).size == pytest.approx(long, rel=0.02)


async def test_blank_text_yields_nothing(provider: EspeakTTSProvider) -> None:
    assert await speak(provider, "  \n") == []


async def test_concurrent_syntheses_are_serialised_and_keep_their_voice(
    provider: EspeakTTSProvider,
) -> None:
    other = EspeakTTSProvider(EspeakTTSOptions(voice="en-gb", rate=300))
    alone = pcm_of(await speak(provider, LONGER)).size
    alone_other = pcm_of(await speak(other, LONGER)).size
    assert alone_other < 0.75 * alone
    results = await asyncio.gather(
        *(speak(provider if i % 2 == 0 else other, LONGER) for i in range(6))
    )
    for i, frames in enumerate(results):
        expected = alone if i % 2 == 0 else alone_other
        assert pcm_of(frames).size == pytest.approx(expected, rel=0.02)


async def test_closing_the_iterator_early_is_clean(provider: EspeakTTSProvider) -> None:
    audio = provider.synthesize(LONGER)
    first = await anext(aiter(audio))
    assert first.samples_per_channel == 441
    await audio.aclose()
    assert pcm_of(await speak(provider, SENTENCE)).size > 22_050


def test_bad_options_are_refused_with_the_remedy() -> None:
    with pytest.raises(ValueError, match="espeak-ng has no voice 'xx-nope'"):
        EspeakTTSProvider(EspeakTTSOptions(voice="xx-nope"))
    with pytest.raises(ValueError, match="rate must be 80 to 450"):
        EspeakTTSOptions(rate=20)
    with pytest.raises(ValueError, match="pitch must be 0 to 100"):
        EspeakTTSOptions(pitch=101)


def test_espeak_tts_node_is_a_tts_node() -> None:
    node = EspeakTTS(voice="en-gb", rate=160)
    assert isinstance(node, TTS)
    provider = node.params.provider  # type: ignore[attr-defined]
    assert isinstance(provider, EspeakTTSProvider)
    assert provider.options == EspeakTTSOptions(voice="en-gb", rate=160)


async def test_words_are_timed_from_espeaks_word_events(provider: EspeakTTSProvider) -> None:
    text = "It's 23 degrees, sunny; Dr. Smith said hi!"
    frames = [f async for f in provider.synthesize(text)]
    pcm = np.concatenate([np.frombuffer(f.data, np.int16) for f in frames])
    rate = provider.sample_rate
    words = [w for f in frames for w in timed_words(f)]
    assert [w.text for w in words] == text.split()
    # Words follow each other (a word runs to where the next starts), the last to the end.
    assert words[0].start == 0.0
    assert all(a.end == b.start and a.end > a.start for a, b in itertools.pairwise(words))
    assert words[-1].end == pytest.approx(pcm.size / rate)
    # "23" is said as two words, "twenty three".
    assert words[1].end - words[1].start > 2 * (words[0].end - words[0].start)
    # Each word's first 100 ms is speech, wherever espeak put it.
    loud = float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)))
    for word in words:
        head = pcm[round(word.start * rate) : round((word.start + 0.1) * rate)]
        assert np.sqrt(np.mean(head.astype(np.float64) ** 2)) > 0.3 * loud, word
