"""SmartTurnModel and SmartTurn on the real model (Smart Turn v3.2), fed Piper speech."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import soxr
from flowkit_local.piper import PiperTTSProvider
from flowkit_local.silero import SileroVAD
from flowkit_local.smart_turn import SmartTurn, SmartTurnModel, smart_turn_model_path
from livekit import rtc
from numpy.typing import NDArray
from support import Collect, Script, collected

import flowkit as fk

RATE = 16_000


@pytest.fixture(scope="module")
def tts() -> PiperTTSProvider:
    provider = PiperTTSProvider(noise_scale=0.0, noise_w_scale=0.0)  # the same audio each run
    provider.load()
    return provider


@pytest.fixture(scope="module")
def model() -> SmartTurnModel:
    loaded = SmartTurnModel()
    loaded.load()
    return loaded


async def _speech(tts: PiperTTSProvider, text: str, silence: float = 0.2) -> NDArray[np.float32]:
    """``text`` spoken at 16 kHz in [-1, 1], then ``silence`` seconds of nothing."""
    frames = [frame async for frame in tts.synthesize(text)]
    pcm = np.concatenate(
        [np.frombuffer(f.data, dtype=np.int16, count=f.samples_per_channel) for f in frames]
    )
    audio = soxr.resample(pcm.astype(np.float32) / 32768, frames[0].sample_rate, RATE)
    return np.concatenate([audio, np.zeros(round(silence * RATE), np.float32)])


FINISHED = ["What is the weather in Paris today?", "I would like to book a table for four people."]
UNFINISHED = ["What is the weather in", "So I was thinking that maybe"]


async def test_finished_sentences_sound_finished_and_cut_ones_do_not(
    model: SmartTurnModel, tts: PiperTTSProvider
) -> None:
    finished = [model.predict(await _speech(tts, text)) for text in FINISHED]
    unfinished = [model.predict(await _speech(tts, text)) for text in UNFINISHED]
    assert min(finished) > 0.8, dict(zip(FINISHED, finished, strict=True))
    assert max(unfinished) < 0.2, dict(zip(UNFINISHED, unfinished, strict=True))


def test_the_features_are_the_ones_the_model_was_trained_on(model: SmartTurnModel) -> None:
    # Pipecat's own feature code (a numpy copy of transformers' WhisperFeatureExtractor),
    # loaded from its file: the package itself is installed without its dependencies.
    spec = importlib.util.spec_from_file_location(
        "pipecat_whisper_features",
        smart_turn_model_path().parents[1] / "_whisper_features.py",
    )
    assert spec is not None and spec.loader is not None
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)
    rng = np.random.default_rng(7)
    speech = (rng.normal(0, 0.1, 3 * RATE) * np.sin(np.linspace(0, 900, 3 * RATE))).astype(
        np.float32
    )
    padded = np.pad(speech, (8 * RATE - speech.size, 0))  # as the model gets it: zeros first
    expected = reference.compute_whisper_log_mel_features(padded, do_normalize=True)
    assert model.features(speech).shape == (80, 800)
    assert np.abs(model.features(speech) - expected).max() < 1e-4


def test_a_missing_model_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps pipecat-ai==1\.14\.0"):
        smart_turn_model_path()


@pytest.mark.parametrize("threads", [0, -1])
def test_a_thread_count_below_one_is_refused_with_the_value(threads: int) -> None:
    with pytest.raises(ValueError, match=rf"intra_op_threads must be at least 1, got {threads}"):
        SmartTurnModel(intra_op_threads=threads)


def test_audio_that_is_not_mono_is_refused(model: SmartTurnModel) -> None:
    with pytest.raises(ValueError, match="expected mono samples"):
        model.predict(np.zeros((2, RATE), np.float32))


async def test_in_a_graph_each_utterance_gets_its_prediction(
    model: SmartTurnModel, tts: PiperTTSProvider
) -> None:
    # Silero finds the two utterances in one stream; the predictor judges each on its own
    # (the first sounds finished, so the second starts a new turn).
    pause = np.zeros(RATE, np.float32)
    audio = np.concatenate([
        pause, await _speech(tts, FINISHED[0], 1.5), await _speech(tts, UNFINISHED[0], 1.5),
    ])
    pcm = (audio * 32767).astype(np.int16)
    frames = [
        (0.0, rtc.AudioFrame(pcm[i : i + 320].tobytes(), RATE, 1, 320))
        for i in range(0, pcm.size - 319, 320)
    ]
    g = fk.Graph("smart-turn")
    vad = g.add(SileroVAD(), name="vad")
    predictor = g.add(SmartTurn(model), name="turn_model")
    g.add(Script(*frames), name="audio") >> vad >> predictor
    vad.events >> predictor.vad
    predictions = g.add(Collect(), name="out")
    predictor >> predictions
    await fk.GraphRunner(g).run()
    got = collected(predictions)
    assert [p.probability > 0.5 for p in got] == [True, False], got
    assert all(p.elapsed > 0 for p in got)


def test_the_model_file_comes_from_the_installed_wheel() -> None:
    path = smart_turn_model_path()
    assert path.name == "smart-turn-v3.2-cpu.onnx" and path.stat().st_size > 1_000_000
    assert Path(path).is_file()
