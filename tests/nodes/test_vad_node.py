from pathlib import Path

import numpy as np
import pytest
from support import Collect, collected

import flowkit as fk
from flowkit.audio import frame_from_samples
from flowkit.audio.wav import write_wav
from flowkit.nodes.audio import WavSource
from flowkit.nodes.vad import VAD
from flowkit.vad import EnergyVAD, VADProvider, VADStream


def _speech_wav(path: Path, rate: int) -> None:
    """1 s silence, 1 s of a voiced tone, 1 s silence, as 20 ms frames."""
    t = np.arange(rate) / rate
    tone = sum(np.sin(2 * np.pi * 300 * k * t) / k for k in range(1, 5)) * 0.2
    rng = np.random.default_rng(1)
    quiet = rng.normal(0, 1e-4, rate)
    signal = np.concatenate([quiet, tone + quiet, quiet])
    pcm = np.clip(np.round(signal * 32767), -32768, 32767).astype(np.int16)
    step = rate // 50
    write_wav(path, [frame_from_samples(pcm[i:i + step].copy(), rate)
                     for i in range(0, pcm.size, step)])


async def test_vad_node_sends_start_and_end_and_passes_audio_through(tmp_path: Path) -> None:
    wav = tmp_path / "speech.wav"
    _speech_wav(wav, 16_000)
    g = fk.Graph("vad")
    vad = g.add(VAD(EnergyVAD(), speaker="alice"))
    events, audio = Collect(), Collect()
    g.add(WavSource(wav)) >> vad >> audio
    vad.events >> events
    await fk.GraphRunner(g).run()
    kinds = [e.kind for e in collected(events)]
    assert kinds == [fk.VADEventKind.START_OF_SPEECH, fk.VADEventKind.END_OF_SPEECH]
    start, end = collected(events)
    assert start.speaker == "alice"
    assert 1.0 <= start.timestamp <= 1.4
    assert end.speech_duration == pytest.approx(1.0, abs=0.25)
    assert sum(f.samples_per_channel for f in collected(audio)) == 3 * 16_000


class Needs16k:
    """A provider that only takes 16 kHz, like Silero: the graph must resample for it."""

    def __init__(self) -> None:
        self.inner = EnergyVAD()
        self.rates: set[int] = set()

    @property
    def sample_rate(self) -> int | None:
        return 16_000

    @property
    def window_ms(self) -> float:
        return self.inner.window_ms

    def stream(self) -> VADStream:
        inner = self.inner.stream()
        rates = self.rates

        class Recording:
            def push(self, samples: np.ndarray, sample_rate: int) -> list:  # type: ignore[type-arg]
                rates.add(sample_rate)
                return inner.push(samples, sample_rate)

            def flush(self) -> list:  # type: ignore[type-arg]
                return inner.flush()

        return Recording()  # type: ignore[return-value]


async def test_a_provider_with_a_fixed_rate_gets_a_resampler_inserted(tmp_path: Path) -> None:
    wav = tmp_path / "speech48k.wav"
    _speech_wav(wav, 48_000)
    provider = Needs16k()
    assert isinstance(provider, VADProvider)
    g = fk.Graph("vad48")
    vad = g.add(VAD(provider))
    events = Collect()
    g.add(WavSource(wav)) >> vad
    vad.events >> events
    spec = g.spec()
    assert [n.kind.rsplit(".", 1)[1] for n in spec.nodes if n.inserted] == ["Resample"]
    await fk.GraphRunner(g).run()
    assert provider.rates == {16_000}
    assert len(collected(events)) == 2


def test_vad_refuses_something_that_is_not_a_provider() -> None:
    with pytest.raises(TypeError, match="a VAD provider has sample_rate"):
        VAD(provider="silero")  # type: ignore[arg-type]


class DeferredEnergy:
    """A deferred provider: EnergyVAD's decisions, delivered one loop iteration late."""

    deferred = True

    def __init__(self) -> None:
        self.inner = EnergyVAD()
        self.late = 0

    @property
    def sample_rate(self) -> int | None:
        return None

    @property
    def window_ms(self) -> float:
        return self.inner.window_ms

    def stream(self, on_decisions=None):  # type: ignore[no-untyped-def]
        import asyncio

        inner = self.inner.stream()
        owner = self
        pending: list = []  # type: ignore[type-arg]

        def deliver() -> None:
            if pending:
                owner.late += len(pending)
                on_decisions(pending[:])
                pending.clear()

        class Deferred:
            def push(self, samples: np.ndarray, sample_rate: int) -> list:  # type: ignore[type-arg]
                decisions = inner.push(samples, sample_rate)
                if decisions:
                    pending.extend(decisions)
                    asyncio.get_running_loop().call_soon(deliver)
                return []

            def flush(self) -> list:  # type: ignore[type-arg]
                out = pending[:]
                pending.clear()
                return out + inner.flush()

        return Deferred()


async def test_a_deferred_provider_gets_a_callback_and_events_match(tmp_path: Path) -> None:
    from flowkit.vad import is_deferred

    wav = tmp_path / "speech.wav"
    _speech_wav(wav, 16_000)
    outcomes = []
    for provider in (EnergyVAD(), DeferredEnergy()):
        g = fk.Graph("vad-deferred")
        vad = g.add(VAD(provider))  # type: ignore[arg-type]
        events, audio = Collect(), Collect()
        g.add(WavSource(wav)) >> vad >> audio
        vad.events >> events
        await fk.GraphRunner(g).run()
        outcomes.append(
            (
                [(e.kind, e.timestamp) for e in collected(events)],
                sum(f.samples_per_channel for f in collected(audio)),
            )
        )
    assert is_deferred(provider)
    assert outcomes[0] == outcomes[1]
    assert len(outcomes[0][0]) == 2
