"""BackgroundAudio's ``audio`` input: frames made on the fly, played once as they come."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import numpy as np
import pytest
from livekit import rtc
from support import Script, VoiceOnlyIO

import flowkit as fk
from flowkit.audio import frame_from_samples, samples
from flowkit.audio.wav import write_wav
from flowkit.nodes.background import STREAM_AHEAD_MS, BackgroundAudio, BackgroundSound
from flowkit.testing.memory_io import MemoryIO

RATE = 48_000
BLOCK = 960  # 20 ms at 48 kHz


class FrameSender(fk.Node):
    """Sends its frames from ``start`` on, ``gap`` seconds apart (0: as fast as the edge
    takes them), and records when each send returned."""

    out: fk.Out[rtc.AudioFrame]

    def __init__(
        self, frames: list[rtc.AudioFrame], *, start: float = 0.0, gap: float = 0.0
    ) -> None:
        super().__init__()
        self.frames, self.start, self.gap = frames, start, gap
        self.sent_at: list[float] = []

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await asyncio.sleep(self.start)
        for frame in self.frames:
            await self.out.put(frame)  # waits while the input's queue is full
            self.sent_at.append(loop.time() - t0)
            if self.gap:
                await asyncio.sleep(self.gap)


def pcm_frames(pcm: np.ndarray, rate: int = RATE, ms: float = 20.0) -> list[rtc.AudioFrame]:
    step = int(rate * ms / 1000)
    return [frame_from_samples(pcm[i : i + step].astype(np.int16), rate)
            for i in range(0, len(pcm), step)]


async def play(
    node: BackgroundAudio, sender: FrameSender, *, end_at: float, io: MemoryIO | None = None
) -> MemoryIO:
    g = fk.Graph("stream")
    sounds = g.add(node, name="background")
    g.add(Script(end_at=end_at)) >> sounds
    g.add(sender, name="sender") >> sounds.audio
    io = io or MemoryIO(paced=True)
    await fk.GraphRunner(g, job=fk.JobContext(io=io)).run()
    return io


def track(io: MemoryIO) -> tuple[list[float], np.ndarray]:
    played = io.tracks.get("background_audio", [])
    times = [t for t, _ in played]
    audio = np.concatenate([samples(f)[:, 0] for _, f in played]) if played else np.zeros(0)
    return times, audio


@pytest.mark.looptime
async def test_streamed_frames_play_once_in_order_as_they_come() -> None:
    pcm = np.arange(10 * BLOCK) % 5000 + 100  # counts up: a reordered or repeated piece shows
    sender = FrameSender(pcm_frames(pcm), start=0.1)
    io = await play(BackgroundAudio(), sender, end_at=0.8)

    times, audio = track(io)
    assert np.array_equal(audio, pcm)  # the same samples, once, nothing else
    assert np.diff(times) == pytest.approx([0.02] * 9)  # in real time, no gap
    assert times[0] == pytest.approx(0.1, abs=0.025)  # from when the first frame came
    assert io.played == []  # never in the agent's voice


@pytest.mark.looptime
async def test_streamed_audio_is_mixed_over_the_ambient(tmp_path: Path) -> None:
    ramp = np.arange(RATE // 2) % 7000
    write_wav(tmp_path / "ramp.wav", [frame_from_samples(ramp.astype(np.int16), RATE)])
    ambient = BackgroundSound(path=str(tmp_path / "ramp.wav"), volume=0.5)
    tone = np.full(5 * BLOCK, 300)
    io = await play(BackgroundAudio(ambient=ambient), FrameSender(pcm_frames(tone), start=0.11),
                    end_at=0.6)

    _, audio = track(io)
    extra = audio - np.rint(np.resize(ramp, len(audio)) * 0.5)
    joins = int(np.flatnonzero(extra)[0])
    assert joins % BLOCK == 0  # from the start of a frame of the mix
    assert np.array_equal(extra[joins : joins + len(tone)], tone)
    assert not extra[joins + len(tone) :].any() and not extra[:joins].any()


@pytest.mark.looptime
async def test_audio_in_another_format_is_converted_to_the_track() -> None:
    rate = 16_000
    t = np.arange(rate) / rate  # 1 s of a 440 Hz tone at 16 kHz, in 10 ms frames
    tone = np.rint(8000 * np.sin(2 * np.pi * 440 * t))
    io = await play(BackgroundAudio(num_channels=2), FrameSender(pcm_frames(tone, rate, 10.0)),
                    end_at=1.5)

    played = io.tracks["background_audio"]
    assert {(f.sample_rate, f.num_channels) for _, f in played} == {(RATE, 2)}
    stereo = np.concatenate([samples(f) for _, f in played])
    assert np.array_equal(stereo[:, 0], stereo[:, 1])
    assert len(stereo) == pytest.approx(RATE, abs=BLOCK)  # 1 s, at 48 kHz
    spectrum = np.abs(np.fft.rfft(stereo[:, 0].astype(np.float64)))
    peak_hz = np.argmax(spectrum) * RATE / len(stereo)
    assert peak_hz == pytest.approx(440, abs=2)


@pytest.mark.looptime
async def test_a_sender_faster_than_real_time_is_held_back_not_buffered() -> None:
    pcm = np.arange(100 * BLOCK) % 3000 + 1  # 2 s, sent as fast as the input takes it
    sender = FrameSender(pcm_frames(pcm))
    io = await play(BackgroundAudio(), sender, end_at=2.5)

    times, audio = track(io)
    assert np.array_equal(audio, pcm)
    assert np.diff(times) == pytest.approx([0.02] * 99)
    # The last send returned once all but what is read ahead and queued had played.
    queued_s = BackgroundAudio.audio.queue * 0.02
    assert sender.sent_at[-1] >= 2.0 - STREAM_AHEAD_MS / 1000 - queued_s - 0.06
    assert sender.sent_at[49] > 0.5  # not all read at once


@pytest.mark.looptime
async def test_a_late_frame_leaves_silence_and_delays_nothing_after_it() -> None:
    pcm = np.full(5 * BLOCK, 700)
    sender = FrameSender(pcm_frames(pcm), start=0.1, gap=0.06)  # one 20 ms frame per 60 ms
    io = await play(BackgroundAudio(), sender, end_at=0.6)

    times, audio = track(io)
    assert np.array_equal(audio, pcm)  # each frame played whole, once
    # Each frame played as it came: 60 ms apart like the sends, not back to back.
    assert len(times) == 5
    assert np.diff(times) == pytest.approx([0.06] * 4, abs=0.021)
    for played, sent in zip(times, sender.sent_at, strict=True):
        assert 0 <= played - sent <= 0.041


@pytest.mark.looptime
async def test_a_format_change_loses_the_stream_not_the_session(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = pcm_frames(np.full(3 * BLOCK, 500))
    other = pcm_frames(np.full(320, 900), 16_000)  # then a 16 kHz frame: one stream, one format
    after = pcm_frames(np.full(2 * BLOCK, 800))
    sender = FrameSender([*first, *other, *after], start=0.05)
    with caplog.at_level(logging.WARNING):
        io = await play(BackgroundAudio(), sender, end_at=0.5)

    _, audio = track(io)
    assert np.array_equal(audio, np.full(3 * BLOCK, 500))
    assert "a 16 kHz mono frame came after 48 kHz mono frames" in caplog.messages[-1]
    assert "Resample node" in caplog.messages[-1]  # the remedy
    assert len(sender.sent_at) == 6  # what came after was read (and dropped), not held


@pytest.mark.looptime
async def test_without_tracks_the_audio_is_read_so_its_sender_is_never_held() -> None:
    sender = FrameSender(pcm_frames(np.ones(50 * BLOCK)))
    # Bounded: a node that stopped reading would hold the sender, and the graph, for good.
    await asyncio.wait_for(play(BackgroundAudio(), sender, end_at=0.3, io=VoiceOnlyIO()), 5.0)
    assert len(sender.sent_at) == 50
    assert sender.sent_at[-1] < 0.05

