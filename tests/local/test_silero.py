"""SileroVAD on the real vendored model: segments of a known recording, streams, rates, graph."""

from __future__ import annotations

import math
import wave
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soxr
from flowkit_local.silero import SileroVAD, SileroVADOptions, SileroVADProvider
from support import Collect, collected

import flowkit as fk
from flowkit.audio import frame_from_samples
from flowkit.audio.wav import write_wav
from flowkit.messages import VADEventKind
from flowkit.nodes.audio import WavSource
from flowkit.nodes.vad import VAD
from flowkit.vad import VADDecision, VADProvider, VADStream

START = VADEventKind.START_OF_SPEECH
END = VADEventKind.END_OF_SPEECH
RATE = 16_000
AUDIO = Path(__file__).resolve().parents[2] / "examples" / "audio"
PCM = npt.NDArray[np.int16]


def read_pcm(name: str) -> PCM:
    with wave.open(str(AUDIO / name)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (RATE, 1, 2)
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


def speech_edges(pcm: PCM, rate: int = RATE) -> tuple[float, float]:
    """The truth: first and last 10 ms frame within 40 dB of the loudest one."""
    hop = rate // 100
    frames = pcm[: pcm.size // hop * hop].reshape(-1, hop).astype(np.float64)
    db = 10 * np.log10(np.maximum((frames**2).mean(axis=1), 1.0))
    active = np.nonzero(db > db.max() - 40)[0]
    return active[0] / 100, (active[-1] + 1) / 100


def run(
    pcm: PCM,
    provider: SileroVADProvider,
    piece: int | Iterable[int] = 320,
    rate: int = RATE,
) -> list[VADDecision]:
    stream = provider.stream()
    sizes = [piece] * math.ceil(pcm.size / piece) if isinstance(piece, int) else piece
    out: list[VADDecision] = []
    pos = 0
    for size in sizes:
        out += stream.push(pcm[pos : pos + size], rate)
        pos += size
    assert pos >= pcm.size
    return out + stream.flush()


@pytest.fixture(scope="module")
def provider() -> SileroVADProvider:
    return SileroVADProvider()


@pytest.fixture(scope="module")
def weather() -> PCM:
    return read_pcm("weather_question.wav")


def test_the_provider_keeps_the_vad_contract(provider: SileroVADProvider) -> None:
    assert isinstance(provider, VADProvider)
    assert isinstance(provider.stream(), VADStream)
    assert provider.sample_rate == 16_000
    assert provider.window_ms == pytest.approx(32.0)


def test_one_utterance_is_found_at_the_speech_edges(
    provider: SileroVADProvider, weather: PCM
) -> None:
    onset, offset = speech_edges(weather)
    # The file as described: 0.5 s of silence, then Piper (which starts ~50 ms into its audio).
    assert (onset, offset) == pytest.approx((0.55, 2.32), abs=0.05)
    decisions = run(weather, provider)
    assert [d.kind for d in decisions] == [START, END]
    start, end = decisions
    # The start comes min_speech_duration (two 32 ms windows) after the onset.
    assert start.timestamp - start.speech_duration == pytest.approx(onset, abs=0.07)
    assert onset < start.timestamp <= onset + 0.15
    assert start.probability >= 0.5
    # The end reports where speech stopped and comes min_silence_duration later.
    assert end.timestamp - end.silence_duration == pytest.approx(offset, abs=0.1)
    assert end.silence_duration == pytest.approx(0.576, abs=1e-9)  # 0.55 s in 32 ms windows
    assert end.speech_duration == pytest.approx(offset - onset, abs=0.12)


def test_the_end_is_found_without_a_flush(provider: SileroVADProvider, weather: PCM) -> None:
    stream = provider.stream()
    decisions = stream.push(weather, RATE)
    assert [d.kind for d in decisions] == [START, END]
    assert stream.flush() == []


@pytest.mark.parametrize(
    "audio",
    [
        np.zeros(3 * RATE, dtype=np.int16),
        np.random.default_rng(3).normal(0, 1000, 3 * RATE).astype(np.int16),  # -30 dBFS hiss
        (3000 * np.sin(2 * np.pi * 50 * np.arange(3 * RATE) / RATE)).astype(np.int16),  # hum
    ],
    ids=["silence", "white-noise", "mains-hum"],
)
def test_silence_and_noise_are_not_speech(provider: SileroVADProvider, audio: PCM) -> None:
    assert run(audio, provider) == []


def test_push_sizes_do_not_change_the_decisions(provider: SileroVADProvider, weather: PCM) -> None:
    reference = run(weather, provider, piece=320)
    sizes = np.random.default_rng(5).integers(0, 1500, size=400).tolist()
    sizes.append(weather.size)
    for piece in (1 + 7 * 73, 512, 4096, weather.size, sizes):
        assert run(weather, provider, piece=piece) == reference


def test_audio_at_another_rate_is_refused_with_the_remedy(provider: SileroVADProvider) -> None:
    stream = provider.stream()
    with pytest.raises(ValueError, match=r"16000 Hz but got audio at 48000 Hz; put a resampler"):
        stream.push(np.zeros(960, dtype=np.int16), 48_000)
    with pytest.raises(ValueError, match="sample_rate must be 16000 or 8000"):
        SileroVADOptions(sample_rate=48_000)


def test_streams_of_one_provider_keep_separate_state(
    provider: SileroVADProvider, weather: PCM
) -> None:
    other = read_pcm("hello_joke.wav")
    alone_a, alone_b = run(weather, provider), run(other, provider)
    a, b = provider.stream(), provider.stream()
    got_a: list[VADDecision] = []
    got_b: list[VADDecision] = []
    for pos in range(0, max(weather.size, other.size), 320):
        got_a += a.push(weather[pos : pos + 320], RATE)
        got_b += b.push(other[pos : pos + 320], RATE)
    got_a += a.flush()
    got_b += b.flush()
    assert got_a == alone_a
    assert got_b == alone_b
    assert got_a != got_b


def test_8khz_works_with_its_own_window(weather: PCM) -> None:
    provider = SileroVADProvider(SileroVADOptions(sample_rate=8000))
    assert provider.window == 256
    assert provider.window_ms == pytest.approx(32.0)
    pcm8 = soxr.resample(weather, RATE, 8000)
    decisions = run(pcm8, provider, piece=160, rate=8000)
    assert [d.kind for d in decisions] == [START, END]
    _, offset = speech_edges(weather)
    assert decisions[1].timestamp - decisions[1].silence_duration == pytest.approx(offset, abs=0.1)
    with pytest.raises(ValueError, match="8000 Hz but got audio at 16000 Hz"):
        provider.stream().push(weather, RATE)


def test_kept_speech_spans_prefix_speech_and_trailing_silence(weather: PCM) -> None:
    provider = SileroVADProvider(SileroVADOptions(keep_speech_samples=True))
    start, end = run(weather, provider)
    assert end.speech_samples is not None
    onset = start.timestamp - start.speech_duration
    first = max(0.0, onset - 0.5)
    assert end.speech_samples.size == round((end.timestamp - first) * RATE)
    assert not end.speech_samples.flags.writeable


def window_levels(pcm: PCM, window: int = 512) -> npt.NDArray[np.float64]:
    """Each whole window's RMS level in dBFS (a full-scale square wave is 0 dBFS)."""
    blocks = pcm[: pcm.size // window * window].reshape(-1, window).astype(np.int64)
    energy = np.maximum((blocks**2).sum(axis=1), 1)
    levels: npt.NDArray[np.float64] = 10 * np.log10(energy / (window * 32768.0**2))
    return levels


@pytest.mark.parametrize("shift", [0, 300, 450])
def test_the_level_gate_ends_speech_where_the_voice_stops(
    provider: SileroVADProvider, weather: PCM, shift: int
) -> None:
    # Shifted so that the 32 ms windows fall differently on the end of the voice.
    pcm = np.concatenate((np.zeros(shift, dtype=np.int16), weather))
    ungated = SileroVADProvider(SileroVADOptions(min_speech_level_db=None))
    start, end = run(pcm, provider)
    start_off, end_off = run(pcm, ungated)
    # The end of the last window at or above -60 dBFS: where the voice really stops.
    loud = np.nonzero(window_levels(pcm) >= -60.0)[0]
    voice_end = (loud[-1] + 1) * 512 / RATE
    assert end.timestamp - end.silence_duration == pytest.approx(voice_end, abs=1e-9)
    assert end.silence_duration == pytest.approx(0.576, abs=1e-9)
    # Without the gate, the model's probability stays up for windows of near-silence
    # (Piper's tail, at -70 to -90 dBFS) and the end comes at least one window later.
    assert end_off.timestamp >= end.timestamp + 0.032 - 1e-9
    assert start == start_off


def test_a_quiet_voice_above_the_gate_is_still_judged_by_the_model(
    provider: SileroVADProvider, weather: PCM
) -> None:
    quiet = (weather * 0.1).astype(np.int16)  # 20 dB down
    levels = window_levels(quiet)
    speaking = levels[(levels > -60.0)]
    assert np.median(speaking) < -40.0  # a quiet voice, yet above the gate
    ungated = SileroVADProvider(SileroVADOptions(min_speech_level_db=None))
    gated_decisions, ungated_decisions = run(quiet, provider), run(quiet, ungated)
    assert [d.kind for d in gated_decisions] == [START, END]
    # Its start is the model's call alone, as without the gate.
    assert gated_decisions[0] == ungated_decisions[0]
    assert gated_decisions[1].timestamp <= ungated_decisions[1].timestamp


def test_a_bad_level_gate_is_refused_with_the_remedy() -> None:
    with pytest.raises(ValueError, match=r"min_speech_level_db must be a level below 0 dBFS.*-60"):
        SileroVADOptions(min_speech_level_db=0.0)
    with pytest.raises(ValueError, match=r"did you mean -55\?"):
        SileroVAD(min_speech_level_db=55.0)
    with pytest.raises(TypeError, match="min_speech_level_db must be a number of dBFS or None"):
        SileroVAD(min_speech_level_db="quiet")  # type: ignore[arg-type]
    node = SileroVAD(min_speech_level_db=None)
    assert node.params.provider.options.min_speech_level_db is None  # type: ignore[attr-defined]
    assert SileroVADOptions().min_speech_level_db == -60.0


def test_a_batch_call_equals_single_calls(provider: SileroVADProvider, weather: PCM) -> None:
    window, context = provider.window, provider.context
    starts = [8000, 16000, 24000, 30000]  # silence and three places in the speech
    rows = np.zeros((len(starts), context + window), dtype=np.float32)
    for row, first in zip(rows, starts, strict=True):
        row[:] = weather[first - context : first + window] / 32768.0
    states = np.random.default_rng(0).normal(0, 0.1, (2, len(starts), 128)).astype(np.float32)
    probabilities, new_states = provider.infer_batch(rows, states)
    assert probabilities.shape == (4,)
    assert new_states.shape == (2, 4, 128)
    for i in range(len(starts)):
        p1, s1 = provider.infer_batch(rows[i : i + 1], states[:, i : i + 1])
        assert p1[0] == pytest.approx(probabilities[i], abs=1e-5)
        np.testing.assert_allclose(s1[:, 0], new_states[:, i], atol=1e-5)
    with pytest.raises(ValueError, match=r"windows must have shape \[batch, 576\]"):
        provider.infer_batch(rows[:, :512], states)


def test_silero_vad_node_shares_one_model_and_declares_16khz() -> None:
    a, b = SileroVAD(min_silence_duration=0.3), SileroVAD(min_silence_duration=0.3)
    assert isinstance(a, VAD)
    assert a.params.provider is b.params.provider  # type: ignore[attr-defined]
    assert a.audio.format == fk.AudioFormat(16_000, 1)
    assert SileroVAD(sample_rate=8000).audio.format == fk.AudioFormat(8000, 1)
    with pytest.raises(ValueError, match="activation_threshold must be in"):
        SileroVAD(activation_threshold=1.5)


async def test_a_48khz_graph_gets_a_resampler_and_finds_the_utterance(
    tmp_path: Path, provider: SileroVADProvider, weather: PCM
) -> None:
    pcm48 = soxr.resample(weather, RATE, 48_000)
    wav = tmp_path / "weather48k.wav"
    write_wav(
        wav,
        [frame_from_samples(pcm48[i : i + 960].copy(), 48_000) for i in range(0, pcm48.size, 960)],
    )
    g = fk.Graph("silero48")
    vad = g.add(VAD(provider))
    events = Collect()
    g.add(WavSource(wav)) >> vad
    vad.events >> events
    spec = g.spec()
    assert [n.kind.rsplit(".", 1)[1] for n in spec.nodes if n.inserted] == ["Resample"]
    await fk.GraphRunner(g).run()
    kinds = [e.kind for e in collected(events)]
    assert kinds == [START, END]
