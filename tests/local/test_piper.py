"""PiperTTSProvider and PiperTTS on the real bundled voice (en_US-joe-medium)."""

from __future__ import annotations

import itertools
import os
import sys
import time
from collections.abc import Iterator

import numpy as np
import pytest
from flowkit_local.piper import PiperTTS, PiperTTSProvider
from livekit import rtc
from support import Collect, Script, collected

import flowkit as fk
from flowkit.messages import AgentAudio, TextChunk
from flowkit.providers import BatchTTS, ProviderRejected
from flowkit.providers.tts_words import timed_words

SHORT = "Hello there."
LONG = (
    "Hello there, and welcome to the weather service. Today will be sunny in Paris, "
    "with a light breeze from the west. Tomorrow brings clouds and some rain."
)


@pytest.fixture(scope="module", autouse=True)
def _offline() -> Iterator[None]:
    # A guard: nothing here may fetch weights (models load by local path only).
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield


@pytest.fixture(scope="module")
def tts(_offline: None) -> PiperTTSProvider:
    provider = PiperTTSProvider()
    provider.load()  # once per module: loading costs about a second
    return provider


async def _speak(tts: PiperTTSProvider, text: str) -> list[rtc.AudioFrame]:
    return [frame async for frame in tts.synthesize(text)]


def _pcm(frames: list[rtc.AudioFrame]) -> np.ndarray:
    return np.concatenate(
        [np.frombuffer(f.data, dtype=np.int16, count=f.samples_per_channel) for f in frames]
    )


def test_provider_is_a_batch_tts_with_the_voices_format() -> None:
    provider = PiperTTSProvider()  # construction only reads the config: cheap
    assert not provider.loaded
    assert provider.sample_rate == 22_050
    assert provider.num_channels == 1
    assert provider.name == "piper/en_US-joe-medium"
    assert isinstance(provider, BatchTTS)


async def test_audio_has_the_voices_rate_and_a_plausible_length(tts: PiperTTSProvider) -> None:
    short, long = await _speak(tts, SHORT), await _speak(tts, LONG)
    for frames in (short, long):
        assert frames
        assert {(f.sample_rate, f.num_channels) for f in frames} == {(22_050, 1)}
        # 20 ms frames; only the last frame of a sentence may be shorter.
        assert max(f.samples_per_channel for f in frames) == 441
    short_s = _pcm(short).size / 22_050
    long_s = _pcm(long).size / 22_050
    assert 0.4 < short_s < 2.5
    assert 6.0 < long_s < 20.0
    assert long_s > 4 * short_s
    for pcm in (_pcm(short), _pcm(long)):
        assert np.abs(pcm).max() > 8_000  # Piper normalises each sentence to full scale
        assert np.sqrt(np.mean(pcm.astype(np.float64) ** 2)) > 500


async def test_first_sentence_is_yielded_before_the_rest_is_made(tts: PiperTTSProvider) -> None:
    start = time.perf_counter()
    first: float | None = None
    async for _ in tts.synthesize(LONG):
        if first is None:
            first = time.perf_counter() - start
    total = time.perf_counter() - start
    assert first is not None and first < 0.7 * total


async def test_blank_text_gives_no_audio(tts: PiperTTSProvider) -> None:
    assert await _speak(tts, "  \n") == []


async def test_closing_early_leaves_the_provider_usable(tts: PiperTTSProvider) -> None:
    audio = tts.synthesize(LONG)
    await anext(audio)
    await audio.aclose()
    assert await _speak(tts, SHORT)


async def test_length_scale_slows_speech() -> None:
    # Without the duration noise, so that only length_scale differs: with it, the lengths
    # vary from run to run (one CI run measured 1.29 times for a scale of 1.5).
    normal = PiperTTSProvider(noise_w_scale=0.0)
    slow = PiperTTSProvider(length_scale=1.5, noise_w_scale=0.0)
    text = "Today will be sunny in Paris, with a light breeze from the west."
    normal_s = _pcm(await _speak(normal, text)).size
    slow_s = _pcm(await _speak(slow, text)).size
    assert slow_s > 1.3 * normal_s  # 1.375 for this text, the same on every run


def test_bad_settings_are_refused_with_the_remedy(tmp_path: os.PathLike[str]) -> None:
    with pytest.raises(ProviderRejected, match="does not exist"):
        PiperTTSProvider(os.path.join(tmp_path, "missing.onnx"))
    with pytest.raises(ValueError, match="length_scale must be positive"):
        PiperTTSProvider(length_scale=0)
    with pytest.raises(ValueError, match="whole number of samples"):
        PiperTTSProvider(frame_ms=1)


async def test_piper_tts_node_speaks_a_reply_in_a_graph(tts: PiperTTSProvider) -> None:
    g = fk.Graph("piper")
    text = Script(
        (0.0, TextChunk(turn_id=1, text="Hello there, this is the first sentence. ")),
        (0.0, TextChunk(turn_id=1, text="And this is the second one.", final=True)),
    )
    out = Collect()
    g.add(text) >> g.add(PiperTTS(tts)) >> out
    await fk.GraphRunner(g).run()
    items: list[AgentAudio] = collected(out)
    frames = [a.frame for a in items if a.frame is not None]
    assert {a.segment for a in items if a.frame is not None} == {0, 1}
    assert items[-1].final and items[-1].frame is None
    assert sum(f.samples_per_channel for f in frames) / 22_050 > 2.0


def _rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if pcm.size else 0.0


async def test_words_are_timed_where_they_are_heard(tts: PiperTTSProvider) -> None:
    # Piper makes two sentences of this ("Dr." ends one), "23" is spoken as two words, and
    # each punctuation mark is a pause.
    text = "It's 23 degrees, sunny; Dr. Smith said hi!"
    frames = await _speak(tts, text)
    words = [w for f in frames for w in timed_words(f)]
    pcm = _pcm(frames)
    assert [w.text for w in words] == text.split()
    assert all(w.end > w.start for w in words)
    assert all(a.end <= b.start for a, b in itertools.pairwise(words))
    assert words[-1].end <= pcm.size / 22_050
    # "23" (twenty three) takes longer than "It's".
    assert words[1].end - words[1].start > 2 * (words[0].end - words[0].start)

    def span(start: float, end: float) -> np.ndarray:
        return pcm[round(start * 22_050) : round(end * 22_050)]

    # Every word is voiced, in both of Piper's sentences; the pauses at the punctuation
    # between them are near silence.
    voiced = _rms(pcm)
    assert all(_rms(span(w.start, w.end)) > 0.4 * voiced for w in words), words
    pauses = [span(a.end, b.start) for a, b in itertools.pairwise(words)
              if a.text[-1] in ",;." and b.start - a.end > 0.1]
    assert len(pauses) >= 2
    assert all(_rms(pause) < 0.2 * voiced for pause in pauses)


async def test_word_timings_can_be_turned_off() -> None:
    plain = PiperTTSProvider(word_timings=False)
    frames = await _speak(plain, "What is the weather in Paris today?")
    assert frames and all(timed_words(f) == () for f in frames)


def test_word_timings_without_onnx_name_the_remedy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if it were not installed
    with pytest.raises(ProviderRejected, match=r"need the onnx package.*word_timings=False"):
        PiperTTSProvider().load()
    PiperTTSProvider(word_timings=False).load()  # the voice itself still loads
