"""WhisperSTTProvider and WhisperSTT on the real bundled model (tiny.en), fed Piper speech."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soxr
from flowkit_local.piper import PiperTTSProvider
from flowkit_local.whisper import WhisperSTT, WhisperSTTProvider
from flowkit_local.whisper_window import fitted_frames
from support import Collect, collected
from wer import wer

import flowkit as fk
from flowkit.messages import Transcript
from flowkit.nodes.audio import WavSource
from flowkit.providers import BatchSTT, ProviderRejected

EXAMPLES = Path(__file__).parents[2] / "examples" / "audio"

UTTERANCES = [
    "What is the weather in Paris today?",
    "Please book a table for two at seven.",
    "Turn off the lights in the kitchen.",
    "How long does it take to drive to the airport?",
    "Remind me to call my mother tomorrow morning.",
    "Can you play some relaxing music?",
    "Send a message to Sarah saying I will be late.",
]


@pytest.fixture(scope="module", autouse=True)
def _offline() -> Iterator[None]:
    # A guard: nothing here may fetch weights (models load by local path only).
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield


@pytest.fixture(scope="module")
def stt(_offline: None) -> WhisperSTTProvider:
    provider = WhisperSTTProvider()
    provider.load()  # once per module: loading costs about a second
    return provider


@pytest.fixture(scope="module")
def tts(_offline: None) -> PiperTTSProvider:
    # Without its noise the voice says each sentence the same way every time: with it, one
    # CI run in many heard "pairs" for "Paris" (the recogniser's tiny model is borderline
    # on that word), a flake in the input, not in the recogniser.
    provider = PiperTTSProvider(noise_scale=0.0, noise_w_scale=0.0)
    provider.load()
    return provider


async def _speech(tts: PiperTTSProvider, text: str) -> np.ndarray:
    frames = [frame async for frame in tts.synthesize(text)]
    return np.concatenate(
        [np.frombuffer(f.data, dtype=np.int16, count=f.samples_per_channel) for f in frames]
    )


def test_provider_is_a_batch_stt_and_loads_lazily() -> None:
    provider = WhisperSTTProvider()
    assert not provider.loaded  # construction only checks the model directory
    assert provider.name.startswith("whisper/")
    assert isinstance(provider, BatchSTT)


async def test_transcribes_piper_speech_with_a_low_word_error_rate(
    stt: WhisperSTTProvider, tts: PiperTTSProvider
) -> None:
    pairs = []
    for text in UTTERANCES:
        pcm = await _speech(tts, text)
        result = await stt.recognize(pcm, tts.sample_rate)  # 22.05 kHz: resampled inside
        assert result.final and result.language == "en"
        assert result.confidence is not None and 0.0 < result.confidence <= 1.0
        assert 0.0 <= result.start_time < result.end_time <= pcm.size / tts.sample_rate + 0.01
        assert result.text == result.text.strip()
        pairs.append((text, result.text))
    error_rate = wer(pairs)
    print(f"WER {error_rate:.1%} over {len(pairs)} utterances: {pairs}")
    assert error_rate <= 0.15, pairs


async def test_48khz_input_is_resampled(
    stt: WhisperSTTProvider, tts: PiperTTSProvider
) -> None:
    speech = await _speech(tts, UTTERANCES[0])
    hi = soxr.resample(speech.astype(np.float32) / 32768, tts.sample_rate, 48_000)
    pcm48 = np.clip(np.round(hi * 32767), -32768, 32767).astype(np.int16)
    result = await stt.recognize(pcm48, 48_000)
    words = result.text.lower()
    assert "weather" in words and "paris" in words
    assert math.isclose(result.end_time, pcm48.size / 48_000, abs_tol=0.5)


async def test_empty_audio_gives_empty_text(stt: WhisperSTTProvider) -> None:
    result = await stt.recognize(np.zeros(0, dtype=np.int16), 16_000)
    assert result.text == "" and result.final


async def test_bad_input_is_refused_with_the_remedy(stt: WhisperSTTProvider) -> None:
    with pytest.raises(TypeError, match="int16"):
        await stt.recognize(np.zeros(16_000, dtype=np.float32), 16_000)
    with pytest.raises(ValueError, match="mono"):
        await stt.recognize(np.zeros((16_000, 2), dtype=np.int16), 16_000)
    with pytest.raises(ProviderRejected, match="English only"):
        await stt.recognize(np.zeros(16_000, dtype=np.int16), 16_000, language="fr-FR")


def test_a_directory_without_a_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProviderRejected, match=r"no model\.bin"):
        WhisperSTTProvider(tmp_path)


async def test_whisper_stt_node_transcribes_a_wav_file(stt: WhisperSTTProvider) -> None:
    g = fk.Graph("transcribe")
    out = Collect()
    g.add(WavSource(EXAMPLES / "weather_question.wav")) >> g.add(WhisperSTT(stt)) >> out
    await fk.GraphRunner(g).run()
    finals: list[Transcript] = [t for t in collected(out) if t.final]
    text = " ".join(t.text for t in finals).lower()
    assert "weather" in text and "paris" in text, finals
    assert all(t.speaker == "user" and t.end_time > t.start_time for t in finals)


def test_the_fitted_window_is_the_audio_plus_a_margin_within_whispers_window() -> None:
    assert fitted_frames(16_000 * 2) == 1000  # a short turn: the 10 s floor
    assert fitted_frames(16_000 * 12) == 1200 + 1 + 300  # the audio, then 3 s of padding
    assert fitted_frames(16_000 * 27) is None  # would not be shorter than 30 s: as before
    assert fitted_frames(16_000 * 45) is None  # several windows: faster-whisper's own way


async def test_the_encoder_hears_a_fitted_window_and_the_words_stay_the_same(
    stt: WhisperSTTProvider, tts: PiperTTSProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    from faster_whisper import WhisperModel

    encoded: list[int] = []
    encode = WhisperModel.encode

    def spy(self: WhisperModel, features: np.ndarray) -> object:
        encoded.append(features.shape[-1])
        return encode(self, features)

    monkeypatch.setattr(WhisperModel, "encode", spy)
    whole = WhisperSTTProvider(fit_window=False)
    fitted_texts, whole_texts = [], []
    for text in UTTERANCES:
        pcm = await _speech(tts, text)
        fitted_texts.append((await stt.recognize(pcm, tts.sample_rate)).text)
        whole_texts.append((await whole.recognize(pcm, tts.sample_rate)).text)
    # Each utterance is under 7 s: 10 s of frames, against the 30 s window without the fit.
    assert set(encoded[0::2]) == {1000} and set(encoded[1::2]) == {3000}, encoded
    pairs = list(zip(whole_texts, fitted_texts, strict=True))
    assert wer(pairs) <= 0.05, pairs
