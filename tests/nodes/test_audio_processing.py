"""AudioProcessing: WebRTC's noise suppression and high-pass filter on the user's audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from livekit import rtc
from support import Collect, Script, collected

import flowkit as fk
from flowkit.audio import read_frames, samples
from flowkit.nodes.audio import convert_recording
from flowkit.nodes.audio_processing import AudioProcessing

RATE = 16_000
QUESTION = Path(__file__).parents[2] / "examples" / "audio" / "weather_question.wav"


def frames_of(pcm: np.ndarray, size: int = RATE // 50) -> list[rtc.AudioFrame]:
    """``pcm`` (mono int16) in frames of ``size`` samples (the last one shorter)."""
    return [rtc.AudioFrame(pcm[i:i + size].tobytes(), RATE, 1, len(pcm[i:i + size]))
            for i in range(0, len(pcm), size)]


async def process(node: AudioProcessing, frames: list[rtc.AudioFrame]) -> list[rtc.AudioFrame]:
    g = fk.Graph("processing")
    out = Collect()
    g.add(Script(*((0.0, f) for f in frames))) >> g.add(node) >> g.add(out)
    await fk.GraphRunner(g).run()
    return list(collected(out))


def level_db(pcm: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)) + 1e-9))


def joined(frames: list[rtc.AudioFrame]) -> np.ndarray:
    return np.concatenate([samples(f)[:, 0] for f in frames])


async def test_noise_is_taken_out_and_the_voice_kept() -> None:
    speech = joined(convert_recording(list(read_frames(QUESTION)), RATE, 1)).astype(np.float64)
    pad = np.zeros(2 * RATE)
    clean = np.concatenate([pad, speech, pad])
    noise = np.random.default_rng(7).standard_normal(clean.size) * 600
    mixed = np.clip(clean + noise, -32768, 32767).astype(np.int16)
    mixed = mixed[: len(mixed) // 320 * 320]
    out = await process(AudioProcessing(), frames_of(mixed))
    # A 20 ms frame in is a 20 ms frame out, as early as it came.
    assert [f.samples_per_channel for f in out] == [320] * (len(mixed) // 320)
    got = joined(out)
    quiet = slice(RATE // 2, 2 * RATE - RATE // 10)  # noise alone, once the suppressor adapted
    voiced = slice(2 * RATE, 2 * RATE + speech.size)
    assert level_db(got[quiet]) < level_db(mixed[quiet]) - 8  # about 12 dB measured
    assert abs(level_db(got[voiced]) - level_db(mixed[voiced])) < 2  # 0.5 dB measured


async def test_the_high_pass_filter_takes_out_rumble() -> None:
    t = np.arange(2 * RATE) / RATE
    rumble = (np.sin(2 * np.pi * 30 * t) * 6000).astype(np.int16)
    node = AudioProcessing(noise_suppression=False, high_pass_filter=True)
    got = joined(await process(node, frames_of(rumble)))
    assert level_db(got[RATE:]) < level_db(rumble[RATE:]) - 10


async def test_a_frame_not_a_whole_10_ms_carries_its_rest() -> None:
    pcm = np.zeros(RATE // 10, np.int16)  # 100 ms in frames of 15 ms
    out = await process(AudioProcessing(), frames_of(pcm, size=240))
    # 15 ms → 10 out (5 carried), 15 → 20, ...: every whole 10 ms comes out in order.
    assert [f.samples_per_channel for f in out][:4] == [160, 320, 160, 320]
    assert sum(f.samples_per_channel for f in out) == 1600


@pytest.mark.parametrize(
    ("frames", "error"),
    [
        ([rtc.AudioFrame(bytes(882), 44_100, 1, 441)],
         "takes 8, 16, 32 or 48 kHz audio, not 44100 Hz; put a Resample"),
        ([rtc.AudioFrame(bytes(640), RATE, 1, 320), rtc.AudioFrame(bytes(1920), 48_000, 1, 960)],
         "got 48000 Hz x1 audio after 16000 Hz x1"),
    ],
)
async def test_audio_it_cannot_take_is_a_clear_error(
    frames: list[rtc.AudioFrame], error: str
) -> None:
    g = fk.Graph("bad audio")
    g.add(Script(*((0.0, f) for f in frames))) >> g.add(
        AudioProcessing(), error_policy=fk.ErrorPolicy.END_GRAPH
    ) >> g.add(Collect())
    with pytest.raises(fk.GraphFailed, match=error):
        await fk.GraphRunner(g).run()


def test_a_node_with_every_feature_off_is_refused() -> None:
    with pytest.raises(ValueError, match="every feature off would pass the audio through"):
        AudioProcessing(noise_suppression=False, high_pass_filter=False)
