from pathlib import Path

import numpy as np
import pytest
from support import Collect, collected

import flowkit as fk
from flowkit.audio import frame_from_samples
from flowkit.audio.wav import write_wav
from flowkit.nodes.audio import WavSource
from flowkit.nodes.stt import STT
from flowkit.nodes.vad import VAD
from flowkit.testing import FakeSTT


def _two_utterances(path: Path, rate: int = 16_000) -> None:
    """Silence, 1 s voiced tone, 1 s silence, 1 s tone, 1 s silence."""
    t = np.arange(rate) / rate
    tone = sum(np.sin(2 * np.pi * 300 * k * t) / k for k in range(1, 5)) * 0.2
    quiet = np.random.default_rng(2).normal(0, 1e-4, rate)
    signal = np.concatenate([quiet, tone + quiet, quiet, tone + quiet, quiet])
    pcm = np.clip(np.round(signal * 32767), -32768, 32767).astype(np.int16)
    step = rate // 50
    write_wav(path, [frame_from_samples(pcm[i:i + step].copy(), rate)
                     for i in range(0, pcm.size, step)])


@pytest.mark.looptime
async def test_streaming_fake_gives_interim_and_final_transcripts(tmp_path: Path) -> None:
    wav = tmp_path / "two.wav"
    _two_utterances(wav)
    g = fk.Graph("stt")
    stt = g.add(STT(FakeSTT(["hello there", "what time is it"], delay=0.2), speaker="bob"))
    out = Collect()
    g.add(WavSource(wav)) >> stt >> out
    await fk.GraphRunner(g).run()
    finals = [t for t in collected(out) if t.final]
    assert [t.text for t in finals] == ["hello there", "what time is it"]
    assert {t.speaker for t in collected(out)} == {"bob"}
    assert any(not t.final for t in collected(out))  # interim results come first


@pytest.mark.looptime
async def test_batch_recogniser_is_cut_by_a_vad_and_latency_is_measured(tmp_path: Path) -> None:
    wav = tmp_path / "two.wav"
    _two_utterances(wav)
    fake = FakeSTT(["one", "two"], delay=0.25)

    class BatchOnly:
        """Only recognize(): the node must wrap it with the VAD adapter."""

        @property
        def name(self) -> str:
            return "batch-only"

        async def recognize(self, samples, sample_rate, *, language=None):  # type: ignore[no-untyped-def]
            return await fake.recognize(samples, sample_rate, language=language)

    g = fk.Graph("batch")
    vad = g.add(VAD())
    stt = g.add(STT(BatchOnly()))  # type: ignore[arg-type]
    texts, metrics = Collect(), Collect()
    g.add(WavSource(wav)) >> vad >> stt >> texts
    vad.events >> stt.speech
    stt.metrics >> metrics
    await fk.GraphRunner(g).run()
    assert [t.text for t in collected(texts)] == ["one", "two"]
    assert all(t.final for t in collected(texts))
    assert len(fake.requests) == 2
    assert all(r.sample_rate == 16_000 and r.samples > 8_000 for r in fake.requests)
    latencies = [m.values["latency"] for m in collected(metrics)]
    assert len(latencies) == 2 and all(0.2 <= x < 1.0 for x in latencies)
    # The audio counted is what each request carried (a service bills that: the 1 s of
    # speech with the adapter's padding and trailing silence), not the speech the graph's
    # VAD measured.
    sent = [r.samples / r.sample_rate for r in fake.requests]
    counted = [m.values["audio_duration"] for m in collected(metrics)]
    assert counted == pytest.approx(sent)
    assert all(x > 1.2 for x in counted)


def test_stt_refuses_what_is_not_a_recogniser() -> None:
    with pytest.raises(TypeError, match="streaming recogniser"):
        STT(provider=object())  # type: ignore[arg-type]
