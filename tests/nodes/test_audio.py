import math
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import numpy as np
import pytest
import reactivex
import soxr
from livekit import rtc

import flowkit as fk
from flowkit.audio import AudioFileError, frame_from_samples, probe, read_frames, samples, write_wav
from flowkit.nodes.audio import (
    SILENCE_SETTLES_MS,
    Downmix,
    Rechunk,
    Resample,
    ResampleQuality,
    WavSink,
    WavSource,
    _output_pattern,
    _Resampler,  # the node's per-run state, to count soxr's calls
    convert_recording,
    converted_recording,
    mix_channels,
    resample_converter,
)

# --------------------------------------------------------------------------- helpers


def sine(freq: float, rate: int, seconds: float, channels: int = 1, amp: int = 12000) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    mono = (amp * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    return np.ascontiguousarray(np.repeat(mono[:, None], channels, axis=1))


def chunked(audio: np.ndarray, rate: int, size: int) -> list[rtc.AudioFrame]:
    return [
        frame_from_samples(np.ascontiguousarray(audio[i : i + size]), rate)
        for i in range(0, len(audio), size)
    ]


def through(node: fk.Node, frames: Sequence[rtc.AudioFrame]) -> list[rtc.AudioFrame]:
    """Run an Rx node's wire() over a finite stream, without a graph."""
    out: list[rtc.AudioFrame] = []
    errors: list[Exception] = []
    node.wire(reactivex.from_iterable(frames)).subscribe(  # type: ignore[attr-defined]
        out.append, errors.append
    )
    assert not errors, errors
    return out


def joined(frames: Sequence[rtc.AudioFrame]) -> np.ndarray:
    return np.concatenate([samples(f) for f in frames])


def peak_hz(signal: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    return float(np.fft.rfftfreq(len(signal), 1 / rate)[np.argmax(spectrum)])


class FrameSource(fk.Node):
    """Emits a list of frames."""

    out: fk.Out[rtc.AudioFrame] = fk.Out()

    def __init__(self, frames: list[rtc.AudioFrame], fmt: fk.AudioFormat | None = None) -> None:
        super().__init__()
        self.frames = frames
        self.out.format = fmt

    async def run(self) -> None:
        for frame in self.frames:
            await self.out.put(frame)


class Collect(fk.Node):
    """Keeps every frame it receives."""

    audio: fk.In[rtc.AudioFrame] = fk.In()

    def __init__(self) -> None:
        super().__init__()
        self.frames: list[rtc.AudioFrame] = []

    async def run(self, audio: AsyncIterator[rtc.AudioFrame]) -> None:
        async for frame in audio:
            self.frames.append(frame)


class Collect16k(Collect):
    """A consumer that declares 16 kHz mono audio."""

    audio: fk.In[rtc.AudioFrame] = fk.In(format=fk.AudioFormat(16000))


@pytest.fixture
def wav48k(tmp_path: Path) -> Path:
    path = tmp_path / "tone48k.wav"
    write_wav(path, chunked(sine(440, 48000, 1.0), 48000, 4800))
    return path


# --------------------------------------------------------------------------- Resample


def test_resample_48k_to_16k_keeps_duration_and_frequency() -> None:
    tone = sine(440, 48000, 2.0)
    out = through(Resample(16000), chunked(tone, 48000, 960))
    assert all(f.sample_rate == 16000 and f.num_channels == 1 for f in out)
    total = sum(f.samples_per_channel for f in out)
    assert abs(total - len(tone) // 3) <= 2  # the flush returns soxr's held-back tail
    result = joined(out)[:, 0].astype(np.float64)
    assert peak_hz(result, 16000) == pytest.approx(440, abs=1.0)
    # The level is kept too (not just the length): RMS of a sine is amp / sqrt(2).
    assert np.sqrt(np.mean(result[1000:-1000] ** 2)) == pytest.approx(12000 / np.sqrt(2), rel=0.02)


def test_resample_flush_emits_the_tail() -> None:
    # One frame: soxr holds all of it back until the flush.
    out = through(Resample(16000), chunked(sine(440, 48000, 0.02), 48000, 960))
    assert sum(f.samples_per_channel for f in out) == 320


def sound_then_silence(rate: int, rounds: int = 2) -> np.ndarray:
    """Rounds of 0.6 s of loud noise and 1 s of digital silence (all-zero samples)."""
    rng = np.random.default_rng(rate)
    parts = []
    for _ in range(rounds):
        parts += [(rng.standard_normal(rate * 6 // 10) * 8000).astype(np.int16)]
        parts += [np.zeros(rate, np.int16)]
    return np.concatenate(parts)[:, None]


class CountingStream:
    """A soxr stream that counts its calls and the samples it was given."""

    def __init__(self, stream: object) -> None:
        self.stream = stream
        self.calls = 0
        self.samples = 0

    def resample_chunk(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        self.calls += 1
        self.samples += block.shape[0]
        resample = self.stream.resample_chunk  # type: ignore[attr-defined]
        return resample(block, last=last)  # type: ignore[no-any-return]


def resampled_counting(
    rate_out: int, quality: ResampleQuality, shortcut: bool, audio: np.ndarray, rate_in: int,
    size: int | list[int],
) -> tuple[np.ndarray, CountingStream, list[int]]:
    """The node's resampling of ``audio`` in frames of ``size`` (or of these sizes), its soxr
    stream's count (from the second frame on), and how long each frame's output was."""
    resampler = _Resampler(rate_out, None, quality, shortcut)
    out: list[rtc.AudioFrame] = []
    lengths: list[int] = []
    counting: CountingStream | None = None
    sizes = size if isinstance(size, list) else [size]
    start, index = 0, 0
    while start < audio.shape[0]:
        step = sizes[index % len(sizes)]
        made = resampler.push(frame_from_samples(audio[start : start + step].copy(), rate_in))
        lengths.append(sum(f.samples_per_channel for f in made))
        out += made
        start, index = start + step, index + 1
        if counting is None:  # the stream is made at the first frame
            counting = resampler.stream = CountingStream(resampler.stream)
    out += resampler.flush()
    assert counting is not None
    return joined(out)[:, 0], counting, lengths


@pytest.mark.parametrize("quality", ["QQ", "LQ", "MQ", "HQ", "VHQ"])
@pytest.mark.parametrize(("rate_in", "rate_out"), [(48000, 16000), (24000, 48000), (44100, 16000)])
def test_settled_digital_silence_is_made_without_soxr_and_changes_only_its_dither(
    quality: ResampleQuality, rate_in: int, rate_out: int
) -> None:
    audio = sound_then_silence(rate_in)
    size = rate_in // 50  # 20 ms frames
    on, stream_on, lengths_on = resampled_counting(rate_out, quality, True, audio, rate_in, size)
    off, stream_off, lengths_off = resampled_counting(
        rate_out, quality, False, audio, rate_in, size
    )
    # The same samples: as many, each within soxr's dither (±1 LSB on either side) ...
    assert on.size == off.size
    assert np.abs(on.astype(np.int32) - off).max() <= 2
    # ... in frames as long as soxr's, which follow its blocks (so sessions fed together
    # keep completing VAD windows together).
    assert lengths_on == lengths_off
    # Each second of silence past the settling time went around soxr, but for the frames
    # that catch soxr up when sound comes back (or at the flush): what is left of them after
    # whole periods of soxr's output pattern.
    pattern = _output_pattern(rate_in, rate_out, 1, quality, size)
    assert pattern is not None
    skipped_frames = rate_in // size - math.ceil(rate_in * SILENCE_SETTLES_MS / 1000 / size)
    spared = skipped_frames - skipped_frames % pattern.period
    assert stream_off.samples - stream_on.samples == 2 * spared * size
    if quality == "LQ":  # 15 frames at 48 to 16 kHz: most of the silence is spared
        assert spared >= skipped_frames - pattern.period
    # ... and came out as exact zeros, where soxr's own output is dither.
    # From 100 ms after the skipping starts to 100 ms before the next sound: soxr's
    # held-back output (up to its delay, 20-40 ms) is what lies in those margins.
    settled_at = 0.6 + SILENCE_SETTLES_MS / 1000 + 0.1
    quiet = slice(round(settled_at * rate_out), round(1.5 * rate_out))
    assert not on[quiet].any()
    assert off[quiet].any()


def test_the_resample_node_takes_the_shortcut_unless_told_not_to() -> None:
    frames = chunked(sound_then_silence(48000, rounds=1), 48000, 960)
    quiet = slice(16000 * 9 // 10, 16000 * 15 // 10)  # 0.3 s after the sound ends
    assert not joined(through(Resample(16000), frames))[quiet].any()
    assert joined(through(Resample(16000, silence_shortcut=False), frames))[quiet].any()


def test_silence_in_frames_of_varying_length_still_goes_through_soxr() -> None:
    # soxr's output pattern is learnt for one frame length: other lengths go through soxr.
    audio = sound_then_silence(48000, rounds=1)
    on, stream_on, _ = resampled_counting(16000, "LQ", True, audio, 48000, [960, 480])
    off, _, _ = resampled_counting(16000, "LQ", False, audio, 48000, [960, 480])
    assert stream_on.samples == audio.shape[0] - 960  # all but the first frame, counted after
    assert on.size == off.size
    assert np.abs(on.astype(np.int32) - off).max() <= 2
    assert on[16000 * 12 // 10 : 16000 * 15 // 10].any()  # soxr's dither, on the silence too


@pytest.mark.parametrize("quality", ["QQ", "LQ", "MQ", "HQ", "VHQ"])
def test_every_soxr_filter_settles_within_the_silence_the_shortcut_waits_for(
    quality: ResampleQuality,
) -> None:
    # Without dither (float samples), a filter's output after loud noise falls below half a
    # 16-bit step, so that it rounds to zero, once its memory holds only silence: find
    # when, for the rate pairs a voice agent meets.
    rng = np.random.default_rng(7)
    half_step = 0.5 / 32768
    for rate_in, rate_out in [(48000, 16000), (44100, 16000), (48000, 24000), (8000, 48000),
                              (16000, 48000), (24000, 48000), (48000, 8000), (22050, 16000)]:
        stream = soxr.ResampleStream(rate_in, rate_out, 1, dtype="float32", quality=quality)
        stream.resample_chunk((rng.standard_normal((rate_in // 5, 1)) * 0.3).astype(np.float32))
        step = rate_in // 100
        last_sound_at = 0
        for fed in range(step, rate_in + step, step):
            out = stream.resample_chunk(np.zeros((step, 1), np.float32))
            if out.size and np.abs(out).max() >= half_step:
                last_sound_at = fed
        assert last_sound_at < rate_in * SILENCE_SETTLES_MS // 1000, (rate_in, rate_out)


def test_resample_hq_filters_what_qq_aliases() -> None:
    # 12 kHz is above 16 kHz's Nyquist (8 kHz): a filtered resampler removes it, cubic
    # interpolation folds it to 4 kHz.
    tone = sine(12000, 48000, 0.5)
    rms = {
        q: np.sqrt(np.mean(joined(through(Resample(16000, quality=q), chunked(tone, 48000, 960)))
                          .astype(np.float64) ** 2))
        for q in ("HQ", "QQ")
    }
    assert rms["HQ"] < 100 < rms["QQ"]


def test_resample_passes_a_frame_at_the_target_format_untouched() -> None:
    frame = frame_from_samples(sine(440, 16000, 0.02), 16000)
    assert through(Resample(16000), [frame])[0] is frame


def test_resample_converts_channels() -> None:
    stereo = sine(440, 48000, 0.5, channels=2)
    down = through(Resample(16000, channels=1), chunked(stereo, 48000, 960))
    assert {f.num_channels for f in down} == {1}
    mono = sine(440, 16000, 0.1)
    up = through(Resample(16000, channels=2), chunked(mono, 16000, 160))
    both = joined(up)
    assert both.shape == (1600, 2)
    np.testing.assert_array_equal(both[:, 0], mono[:, 0])
    np.testing.assert_array_equal(both[:, 1], mono[:, 0])


def test_resample_rejects_a_format_change_mid_stream() -> None:
    frames = [rtc.AudioFrame.create(48000, 1, 480), rtc.AudioFrame.create(44100, 1, 441)]
    errors: list[Exception] = []
    Resample(16000).wire(reactivex.from_iterable(frames)).subscribe(
        on_error=errors.append
    )
    assert len(errors) == 1
    assert "one input format" in str(errors[0])


def test_resample_declares_its_output_format_only_when_channels_are_known() -> None:
    assert Resample(16000, 1).out.format == fk.AudioFormat(16000, 1)
    assert Resample(16000).out.format is None
    assert Resample(16000).audio.format is None
    with pytest.raises(fk.NodeParamsError, match="quality"):
        Resample(16000, quality="best")  # type: ignore[arg-type]


def test_converter_factory() -> None:
    node = resample_converter(fk.AudioFormat(48000, 2), fk.AudioFormat(16000, 1))
    assert isinstance(node, Resample)
    assert node.out.format == fk.AudioFormat(16000, 1)
    assert resample_converter(fk.AudioFormat(48000, 6), fk.AudioFormat(48000, 2)) is None
    assert isinstance(fk.find_converter(rtc.AudioFrame, fk.AudioFormat(8000),
                                        fk.AudioFormat(16000)), Resample)


# --------------------------------------------------------------------------- Rechunk


def test_rechunk_makes_exact_frames_and_loses_nothing() -> None:
    audio = sine(440, 16000, 1.1, channels=2)[:16080]  # 50 frames of 320, then 80
    sizes = [100, 333, 1, 700, 320, 96]
    frames, start, i = [], 0, 0
    while start < len(audio):
        size = sizes[i % len(sizes)]
        frames.append(frame_from_samples(np.ascontiguousarray(audio[start : start + size]), 16000))
        start, i = start + size, i + 1
    out = through(Rechunk(20), frames)
    assert [f.samples_per_channel for f in out[:-1]] == [320] * (len(audio) // 320)
    assert out[-1].samples_per_channel == 80
    np.testing.assert_array_equal(joined(out), audio)
    # Emitted frames own their buffers: later input does not change earlier output.
    assert len({id(f.data.obj) for f in out}) == len(out)


def test_rechunk_passes_frames_of_the_right_size_untouched() -> None:
    frames = chunked(sine(440, 16000, 0.1), 16000, 160)
    out = through(Rechunk(10), frames)
    assert all(a is b for a, b in zip(out, frames, strict=True))


def test_rechunk_rejects_a_duration_that_is_not_whole_samples() -> None:
    errors: list[Exception] = []
    Rechunk(1).wire(reactivex.of(rtc.AudioFrame.create(22050, 1, 100))).subscribe(
        on_error=errors.append
    )
    assert "whole number" in str(errors[0])


# --------------------------------------------------------------------------- Downmix


def test_downmix_of_identical_channels_is_the_same_signal() -> None:
    stereo = sine(440, 16000, 0.1, channels=2)
    stereo[5] = (-32768, -32768)  # the int16 extremes must not wrap around
    stereo[6] = (32767, 32767)
    out = through(Downmix(), [frame_from_samples(stereo, 16000)])
    assert out[0].num_channels == 1
    np.testing.assert_array_equal(samples(out[0])[:, 0], stereo[:, 0])


def test_downmix_averages_and_refuses_ambiguous_layouts() -> None:
    block = np.array([[100, 300], [-100, -301]], np.int16)
    np.testing.assert_array_equal(mix_channels(block, 1)[:, 0], [200, -201])
    with pytest.raises(ValueError, match="mono"):
        mix_channels(np.zeros((4, 6), np.int16), 2)
    mono = frame_from_samples(np.zeros(10, np.int16), 8000)
    assert through(Downmix(), [mono])[0] is mono


# --------------------------------------------------------------------------- WAV nodes


def test_wav_source_reads_the_header_at_construction(tmp_path: Path, wav48k: Path) -> None:
    source = WavSource(wav48k)
    assert source.out.format == fk.AudioFormat(48000, 1)
    with pytest.raises(AudioFileError, match="no such file"):
        WavSource(tmp_path / "absent.wav")
    with pytest.raises(ValueError, match="whole number"):
        WavSource(wav48k, frame_ms=0.01)


async def test_graph_inserts_a_resampler_for_a_16k_consumer(wav48k: Path) -> None:
    g = fk.Graph("resample-inserted")
    source = g.add(WavSource(wav48k))
    sink = g.add(Collect16k())
    source >> sink
    spec = g.spec()
    inserted = [n for n in spec.nodes if n.inserted]
    assert len(inserted) == 1
    assert inserted[0].kind.endswith("Resample")
    assert not spec.problems
    await fk.GraphRunner(g).run()
    assert sink.frames
    assert {(f.sample_rate, f.num_channels) for f in sink.frames} == {(16000, 1)}
    total = sum(f.samples_per_channel for f in sink.frames)
    assert abs(total - 16000) <= 2
    assert peak_hz(joined(sink.frames)[:, 0].astype(np.float64), 16000) == pytest.approx(440, abs=1)


async def test_graph_without_conversion_reports_the_mismatch(wav48k: Path) -> None:
    g = fk.Graph("no-convert", convert_formats=False)
    g.add(WavSource(wav48k)) >> g.add(Collect16k())
    problems = g.problems()
    assert any(p.kind is fk.ProblemKind.FORMAT_MISMATCH for p in problems)


async def test_wav_source_to_wav_sink_reproduces_the_file(tmp_path: Path) -> None:
    original = sine(523, 24000, 0.77, channels=2)
    original[::7, 1] = -5  # make the channels differ
    src_path, dst_path = tmp_path / "in.wav", tmp_path / "out.wav"
    write_wav(src_path, chunked(original, 24000, 1000))
    g = fk.Graph("copy")
    sink = g.add(WavSink(dst_path))
    g.add(WavSource(src_path, frame_ms=10)) >> sink
    runner = fk.GraphRunner(g)
    await runner.run()
    assert probe(dst_path).format == fk.AudioFormat(24000, 2)
    np.testing.assert_array_equal(joined(list(read_frames(dst_path))), original)
    assert sink.num_samples == len(original)
    assert runner.live_subscriptions() == 0


async def test_a_pipeline_of_all_nodes_in_a_graph(tmp_path: Path) -> None:
    stereo = sine(440, 48000, 0.5, channels=2)
    g = fk.Graph("chain")
    collect = g.add(Collect())
    source = g.add(FrameSource(chunked(stereo, 48000, 1000)))
    source >> Downmix() >> Resample(16000) >> Rechunk(32) >> collect
    await fk.GraphRunner(g).run()
    sizes = [f.samples_per_channel for f in collect.frames]
    assert sizes[:-1] == [512] * (len(sizes) - 1)
    assert abs(sum(sizes) - 8000) <= 2
    assert {(f.sample_rate, f.num_channels) for f in collect.frames} == {(16000, 1)}


async def test_wav_sink_ends_the_graph_on_a_format_change(tmp_path: Path) -> None:
    frames = [rtc.AudioFrame.create(16000, 1, 160), rtc.AudioFrame.create(8000, 1, 80)]
    g = fk.Graph("mixed")
    g.add(FrameSource(frames)) >> g.add(WavSink(tmp_path / "x.wav"))
    with pytest.raises(fk.GraphFailed, match="one format"):
        await fk.GraphRunner(g).run()
    assert probe(tmp_path / "x.wav").num_samples == 160  # closed cleanly with what it had


async def test_wav_source_realtime_paces_with_sleeps(
    wav48k: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Record the requested sleeps instead of sleeping: deadlines accumulate per frame.
    import asyncio

    import flowkit.nodes.audio as audio_nodes

    delays: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(delay: float) -> None:
        delays.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(audio_nodes.asyncio, "sleep", fake_sleep)
    g = fk.Graph("paced")
    sink = g.add(Collect())
    g.add(WavSource(wav48k, frame_ms=100, realtime=True)) >> sink
    await fk.GraphRunner(g).run()
    assert len(sink.frames) == 10
    # No time passes while sleeps are faked, so frame k waits its whole deadline k * 0.1 s.
    assert len(delays) == 9
    assert delays == pytest.approx([0.1 * k for k in range(1, 10)], abs=0.05)


async def test_a_recording_is_converted_off_the_loop_a_chunk_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rate = 44_100
    t = np.arange(round(3.3 * rate)) / rate
    tone = np.stack([np.sin(2 * np.pi * 300 * t), np.sin(2 * np.pi * 500 * t)], axis=1)
    pcm = (tone * 8000).astype(np.int16)
    step = rate // 50
    frames = [frame_from_samples(pcm[i:i + step], rate) for i in range(0, len(pcm), step)]
    whole = convert_recording(frames, 24_000, 1)

    threads: list[int] = []
    push = _Resampler.push

    def watched(self: _Resampler, frame: rtc.AudioFrame) -> tuple[rtc.AudioFrame, ...]:
        threads.append(threading.get_ident())
        return push(self, frame)

    monkeypatch.setattr(_Resampler, "push", watched)
    # The first frame comes before the rest is converted: one chunk of about a second.
    stream = converted_recording(frames, 24_000, 1, chunk_s=1.0)
    first = await anext(stream)
    assert 40 <= len(threads) <= 60  # 50 frames of 20 ms, not the recording's 165
    chunked = [first] + [frame async for frame in stream]
    assert len(threads) == len(frames)
    assert threading.get_ident() not in threads  # never on the event loop's thread
    # The same audio as converting it at once, every sample (soxr's int16 output differs
    # from run to run by a unit or two even in one thread: its rounding is dithered).
    got = np.concatenate([samples(f) for f in chunked]).astype(np.int32)
    want = np.concatenate([samples(f) for f in whole]).astype(np.int32)
    assert got.shape == want.shape and np.abs(got - want).max() <= 2
    assert {(f.sample_rate, f.num_channels) for f in chunked} == {(24_000, 1)}
