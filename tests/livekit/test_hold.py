"""Hold: the default hold music, its player on a track of its own, and the silenced input."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest
from livekit import rtc

from flowkit.audio.frames import samples
from flowkit.livekit.audio import LiveKitAudioInput
from flowkit.livekit.hold import HOLD_FORMAT, HOLD_TRACK, HoldPlayer, hold_music
from flowkit.testing.memory_io import MemoryIO

RATE = HOLD_FORMAT.sample_rate


def test_the_default_hold_music_is_an_eight_second_loop_that_wraps_without_a_click() -> None:
    music = hold_music()
    assert music.dtype == np.int16 and music.shape == (8 * RATE,)
    peak = int(np.abs(music).max())
    assert 0.1 * 32767 < peak < 0.15 * 32767  # background level, under a voice
    assert float(np.sqrt(np.mean(music.astype(np.float64) ** 2))) > 500  # not silence
    # Around the wrap the steps stay as small as inside the loop: no click when it repeats.
    inside = int(np.abs(np.diff(music.astype(np.int32))).max())
    wrap = abs(int(music[0]) - int(music[-1]))
    assert wrap <= inside
    assert not music.flags.writeable  # shared by every transfer of the process
    assert hold_music() is music


@pytest.mark.looptime
async def test_the_player_loops_the_clip_on_its_own_track_until_stopped() -> None:
    io = MemoryIO(paced=True)
    clip = np.arange(1, 1 + RATE // 10, dtype=np.int16)  # 100 ms, every sample told apart
    player = HoldPlayer(io, clip)
    player.start()
    assert player.playing
    await asyncio.sleep(0.25)
    await player.stop()
    assert not player.playing and io.played == []  # not the agent's voice track
    played = np.concatenate([samples(frame).reshape(-1) for _, frame in io.tracks[HOLD_TRACK]])
    assert len(played) >= 2 * len(clip)  # it went round at least twice
    # The clip, again and again, with nothing skipped or repeated at the wrap.
    expected = np.resize(clip, len(played))
    assert np.array_equal(played, expected)
    frames = len(io.tracks[HOLD_TRACK])
    await asyncio.sleep(0.2)
    assert len(io.tracks[HOLD_TRACK]) == frames  # stopped means stopped


def test_a_player_refuses_an_empty_clip() -> None:
    with pytest.raises(ValueError, match="no samples"):
        HoldPlayer(MemoryIO(), np.zeros(0, dtype=np.int16))


async def test_the_input_delivers_silence_frame_for_frame_while_on_hold() -> None:
    held = False

    async def heard() -> AsyncIterator[rtc.AudioFrame]:
        nonlocal held
        for i in range(4):
            held = i in (1, 2)  # the hold starts before the second frame, ends after the third
            yield rtc.AudioFrame(np.full(160, 1000 + i, dtype=np.int16).tobytes(), 16_000, 1, 160)

    got = [
        frame async for frame in LiveKitAudioInput._silenced(heard(), lambda: held)
    ]
    assert [(f.sample_rate, f.num_channels, f.samples_per_channel) for f in got] == [
        (16_000, 1, 160)] * 4
    assert [int(samples(f).max()) for f in got] == [1000, 0, 0, 1003]
