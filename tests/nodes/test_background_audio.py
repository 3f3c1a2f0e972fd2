"""BackgroundAudio: the ambient loop, thinking sounds on agent states, its track, its errors."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import pydantic
import pytest
from livekit import rtc
from support import Script, VoiceOnlyIO

import flowkit as fk
from flowkit.audio import AudioFileError, frame_from_samples, probe, read_frames, samples
from flowkit.audio.wav import write_wav
from flowkit.messages import AgentState, AgentStateKind, Playout, PlayoutEvent
from flowkit.nodes.background import BackgroundAudio, BackgroundSound, choose_sound, load_sound
from flowkit.offline import OfflineIO
from flowkit.ports import AudioFormat
from flowkit.testing.memory_io import MemoryIO

RATE = 48_000
BLOCK = 960  # 20 ms at 48 kHz


def clip(path: Path, pcm: np.ndarray, rate: int = RATE) -> Path:
    write_wav(path, [frame_from_samples(pcm.astype(np.int16), rate)])
    return path


def state(kind: AgentStateKind) -> AgentState:
    return AgentState(turn_id=0, state=kind)


async def play(node: BackgroundAudio, *events: tuple[float, AgentState], end_at: float) -> MemoryIO:
    """Run ``node`` on a paced MemoryIO with the states scripted; return the I/O."""
    g = fk.Graph("background")
    g.add(Script(*events, end_at=end_at)) >> g.add(node, name="background")
    io = MemoryIO(paced=True)
    await fk.GraphRunner(g, job=fk.JobContext(io=io)).run()
    return io


def track(io: MemoryIO, start: float = 0.0) -> tuple[list[float], np.ndarray]:
    """The background track's frame start times and its samples, mono."""
    played = io.tracks.get("background_audio", [])
    times = [t - start for t, _ in played]
    audio = np.concatenate([samples(f)[:, 0] for _, f in played]) if played else np.zeros(0)
    return times, audio


@pytest.fixture
def ramp(tmp_path: Path) -> Path:
    """0.5 s whose samples count up, so a wrong position in the loop shows."""
    return clip(tmp_path / "ramp.wav", np.arange(RATE // 2) % 7000)


@pytest.fixture
def flat(tmp_path: Path) -> Path:
    """1 s at a constant 2000."""
    return clip(tmp_path / "flat.wav", np.full(RATE, 2000))


@pytest.mark.looptime
async def test_ambient_loops_in_real_time_at_its_volume_until_the_states_end(ramp: Path) -> None:
    node = BackgroundAudio(ambient=BackgroundSound(path=str(ramp), volume=0.5))
    io = await play(node, end_at=1.2)

    times, audio = track(io)
    assert np.diff(times) == pytest.approx([0.02] * (len(times) - 1))  # paced, no gap
    assert times[0] == pytest.approx(0.0, abs=1e-6)
    assert len(times) == pytest.approx(60, abs=1)  # 1.2 s, then the node ends
    source = np.arange(RATE // 2) % 7000
    expected = np.rint(np.tile(source, 3)[: len(audio)] * 0.5)
    assert np.array_equal(audio, expected)  # the loop wraps where the file ends
    assert io.played == []  # nothing on the agent's voice
    assert io._track_outputs["background_audio"].closed


@pytest.mark.looptime
async def test_with_the_playout_linked_the_sound_lasts_until_it_ends(ramp: Path) -> None:
    g = fk.Graph("background")
    sounds = g.add(BackgroundAudio(ambient=ramp), name="background")
    g.add(Script(end_at=0.5)) >> sounds.states  # the user's input ends at 0.5 s
    done = Playout(turn_id=1, event=PlayoutEvent.FINISHED)
    g.add(Script((1.0, done), end_at=1.2)) >> sounds.playout  # the last reply plays on
    io = MemoryIO(paced=True)
    await fk.GraphRunner(g, job=fk.JobContext(io=io)).run()
    times, _ = track(io)
    assert times[-1] == pytest.approx(1.2, abs=0.021)


@pytest.mark.looptime
async def test_thinking_plays_while_the_agent_thinks_and_fades_out(flat: Path) -> None:
    node = BackgroundAudio(thinking=flat)
    io = await play(
        node,
        (0.2, state(AgentStateKind.LISTENING)),  # not thinking: nothing plays
        (0.3, state(AgentStateKind.THINKING)),
        (0.61, state(AgentStateKind.SPEAKING)),
        end_at=1.0,
    )
    times, audio = track(io)
    assert times[0] == pytest.approx(0.3, abs=1e-6)
    # The frame due at 0.62 was made (and queued) at 0.60, before the state changed; the
    # next one is the fade, and then nothing.
    assert times[-1] == pytest.approx(0.64, abs=1e-6)
    assert len(times) == 18
    assert (audio[: 17 * BLOCK] == 2000).all()
    fade = audio[17 * BLOCK :]
    assert fade[0] == 2000 and fade[-1] == 0 and (np.diff(fade) <= 0).all()


@pytest.mark.looptime
async def test_a_thinking_sound_plays_once_and_thinking_again_starts_it_over(
    tmp_path: Path,
) -> None:
    short = clip(tmp_path / "short.wav", np.full(RATE // 10, 1000))  # 0.1 s
    node = BackgroundAudio(thinking=short)
    io = await play(
        node,
        (0.0, state(AgentStateKind.THINKING)),
        (0.5, state(AgentStateKind.SPEAKING)),
        (0.8, state(AgentStateKind.THINKING)),
        end_at=1.5,
    )
    times, audio = track(io)
    assert times == pytest.approx([0.0, 0.02, 0.04, 0.06, 0.08, 0.8, 0.82, 0.84, 0.86, 0.88])
    assert (audio == 1000).all()


@pytest.mark.looptime
async def test_thinking_is_mixed_over_the_ambient(ramp: Path, flat: Path) -> None:
    node = BackgroundAudio(
        ambient=BackgroundSound(path=str(ramp), volume=0.5),
        thinking=BackgroundSound(path=str(flat), volume=0.25),
    )
    io = await play(node, (0.11, state(AgentStateKind.THINKING)), end_at=0.4)
    _, audio = track(io)
    ambient = np.rint(np.tile(np.arange(RATE // 2) % 7000, 2)[: len(audio)] * 0.5)
    # The ambient frame due at 0.12 was queued at 0.10; thinking joins from the next one.
    joins = 7 * BLOCK
    assert np.array_equal(audio[:joins], ambient[:joins])
    assert np.array_equal(audio[joins:], ambient[joins:] + 500)


@pytest.mark.looptime
async def test_the_thinking_sound_is_chosen_by_probability(tmp_path: Path) -> None:
    low = clip(tmp_path / "low.wav", np.full(BLOCK, 100))
    high = clip(tmp_path / "high.wav", np.full(BLOCK, 200))
    sounds = [
        BackgroundSound(path=str(low), probability=0.5),
        BackgroundSound(path=str(high), probability=0.5),
    ]
    events = []
    for k in range(40):  # 40 thinking episodes, 0.1 s apart
        events += [(0.1 * k, state(AgentStateKind.THINKING))]
        events += [(0.1 * k + 0.05, state(AgentStateKind.LISTENING))]
    io = await play(BackgroundAudio(thinking=sounds, seed=7), *events, end_at=4.0)
    _, audio = track(io)
    heard = audio.reshape(-1, BLOCK)[:, 0].tolist()
    expect = random.Random(7)
    chosen = [choose_sound(sounds, expect) for _ in heard]
    assert heard == [200 if sound is sounds[1] else 100 for sound in chosen]
    assert 10 <= heard.count(100) <= 30 and len(heard) == 40


def test_choose_sound_follows_the_probabilities() -> None:
    rng = random.Random(1)
    a, b = BackgroundSound(path="a", probability=0.2), BackgroundSound(path="b", probability=0.3)
    draws = [choose_sound([a, b], rng) for _ in range(20_000)]
    # Below 1 in total: the rest (0.5) is the chance that nothing plays.
    assert draws.count(None) / 20_000 == pytest.approx(0.5, abs=0.02)
    assert draws.count(a) / 20_000 == pytest.approx(0.2, abs=0.02)
    # Above 1 in total: shares of the total, never nothing.
    c, d = BackgroundSound(path="c", probability=1.0), BackgroundSound(path="d", probability=0.5)
    draws = [choose_sound([c, d], rng) for _ in range(20_000)]
    assert draws.count(None) == 0
    assert draws.count(c) / 20_000 == pytest.approx(2 / 3, abs=0.02)
    assert choose_sound([BackgroundSound(path="e", probability=0.0)], rng) is None
    assert choose_sound([], rng) is None


def test_a_missing_sound_file_fails_when_the_graph_is_built(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.wav"
    with pytest.raises(AudioFileError, match=r"nowhere\.wav"):
        BackgroundAudio(ambient=missing)
    not_wav = tmp_path / "notes.txt"
    not_wav.write_text("not audio")
    with pytest.raises(AudioFileError, match=r"notes\.txt"):
        BackgroundAudio(thinking=[not_wav])


def test_volume_and_probability_are_checked(flat: Path) -> None:
    with pytest.raises(pydantic.ValidationError, match="volume"):
        BackgroundSound(path=str(flat), volume=1.5)
    with pytest.raises(pydantic.ValidationError, match="probability"):
        BackgroundSound(path=str(flat), probability=-0.1)
    with pytest.raises(ValueError, match="20 ms"):
        BackgroundAudio(ambient=flat, sample_rate=44_123)


def test_sounds_are_converted_once_and_shared_read_only(tmp_path: Path) -> None:
    stereo = np.repeat((np.arange(2205) % 300)[:, None], 2, axis=1)
    path = clip(tmp_path / "stereo.wav", stereo, rate=22_050)
    one = load_sound(path, AudioFormat(48_000, 1))
    assert one.shape == (4800, 1)  # 0.1 s at 48 kHz, mono
    assert load_sound(path, AudioFormat(48_000, 1)) is one  # a second job shares it
    assert not one.flags.writeable
    assert load_sound(path, AudioFormat(16_000, 1)).shape == (1600, 1)


@pytest.mark.looptime
async def test_an_io_without_tracks_only_consumes_the_states(flat: Path) -> None:
    g = fk.Graph("background")
    g.add(Script((0.1, state(AgentStateKind.THINKING)), end_at=0.3)) >> g.add(
        BackgroundAudio(ambient=flat), name="background"
    )
    runner = fk.GraphRunner(g, job=fk.JobContext(io=VoiceOnlyIO()))
    await runner.run()  # ends with the states, no error
    assert runner.metrics().node("background").messages_in == 1


class BrokenTrack:
    """A track output whose writes fail (a transport gone wrong)."""

    paced = True
    closed = False

    async def write(self, frame: rtc.AudioFrame) -> None:
        raise ConnectionError("the track went away")

    def clear(self) -> None:
        pass

    async def aclose(self) -> None:
        self.closed = True


class BrokenTrackIO(MemoryIO):
    def track_output(self, name: str, sample_rate: int, num_channels: int) -> BrokenTrack:  # type: ignore[override]
        return BrokenTrack()


@pytest.mark.looptime
async def test_a_failing_track_loses_the_sound_not_the_session(
    flat: Path, caplog: pytest.LogCaptureFixture
) -> None:
    g = fk.Graph("background")
    g.add(Script((0.5, state(AgentStateKind.THINKING)), end_at=1.0)) >> g.add(
        BackgroundAudio(ambient=flat), name="background"
    )
    runner = fk.GraphRunner(g, job=fk.JobContext(io=BrokenTrackIO(paced=True)))
    with caplog.at_level(logging.WARNING):
        await runner.run()  # no GraphFailed: the node kept reading the states
    assert "background sound stopped" in caplog.text and "the track went away" in caplog.text
    assert runner.metrics().node("background").messages_in == 1
    assert runner.metrics().node("background").errors == 0


@pytest.mark.looptime
async def test_offline_the_background_is_mixed_into_the_output_file(
    tmp_path: Path, flat: Path
) -> None:
    heard = clip(tmp_path / "in.wav", np.zeros(16_000), rate=16_000)  # 1 s of silence
    out_path = tmp_path / "out.wav"
    io = OfflineIO(heard, out_path, realtime=True)
    io.origin()  # the session starts now (a room source's first frame would start it)
    g = fk.Graph("background")
    g.add(Script((0.2, state(AgentStateKind.THINKING)), end_at=0.6)) >> g.add(
        BackgroundAudio(thinking=BackgroundSound(path=str(flat), volume=0.5)), name="background"
    )
    await fk.GraphRunner(g, job=fk.JobContext(io=io)).run()
    await io.aclose()
    assert probe(out_path).format == AudioFormat(16_000, 1)  # the input's format
    audio = np.concatenate([samples(f)[:, 0] for f in read_frames(out_path)])
    # The session's 0.6 s, and the frame the node had queued ahead when it ended.
    assert 0.6 * 16_000 <= len(audio) <= 0.64 * 16_000
    assert not audio[: 3000].any()  # silent before the agent thinks (0.2 s)
    assert np.abs(audio[3600:8000].astype(int) - 1000).max() <= 10  # then at half volume


def test_a_sound_whose_channels_cannot_be_mixed_names_the_file(tmp_path: Path) -> None:
    import wave

    path = tmp_path / "surround.wav"
    with wave.open(str(path), "wb") as w:  # 3 channels: only N to 1 and 1 to N have a meaning
        w.setnchannels(3)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(np.zeros((BLOCK, 3), np.int16).tobytes())
    with pytest.raises(ValueError, match=r"surround\.wav: cannot mix 3 channels into 2"):
        BackgroundAudio(ambient=path, num_channels=2)
