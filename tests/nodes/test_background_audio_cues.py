"""BackgroundAudio's cues: named sounds played once or looped on a SoundCue, over the rest."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support import Script, VoiceOnlyIO

import flowkit as fk
from flowkit.audio import AudioFileError, frame_from_samples, samples
from flowkit.audio.wav import write_wav
from flowkit.messages import AgentState, AgentStateKind, SoundCue, ToolResult
from flowkit.nodes.background import MAX_CUES, BackgroundAudio, BackgroundSound
from flowkit.testing.memory_io import MemoryIO

RATE = 48_000
BLOCK = 960  # 20 ms at 48 kHz
RAMP = np.arange(RATE // 2) % 7000  # the ambient: counts up, so a wrong position shows


def clip(path: Path, pcm: np.ndarray) -> Path:
    write_wav(path, [frame_from_samples(pcm.astype(np.int16), RATE)])
    return path


def cue(sound: str, **options: Any) -> SoundCue:
    return SoundCue(sound=sound, **options)


async def play(
    node: BackgroundAudio,
    *cues: tuple[float, Any],
    end_at: float,
    states: tuple[tuple[float, AgentState], ...] = (),
) -> tuple[MemoryIO, fk.GraphRunner]:
    """Run ``node`` with scripted cues until the states end at ``end_at``."""
    g = fk.Graph("cues")
    sounds = g.add(node, name="background")
    g.add(Script(*states, end_at=end_at)) >> sounds
    g.add(Script(*cues)) >> sounds.cues
    io = MemoryIO(paced=True)
    runner = fk.GraphRunner(g, job=fk.JobContext(io=io))
    await runner.run()
    return io, runner


def track(io: MemoryIO) -> tuple[list[float], np.ndarray]:
    """The background track's frame start times and its samples, mono."""
    played = io.tracks.get("background_audio", [])
    times = [t for t, _ in played]
    audio = np.concatenate([samples(f)[:, 0] for _, f in played]) if played else np.zeros(0)
    return times, audio


@pytest.fixture
def ambient(tmp_path: Path) -> BackgroundSound:
    return BackgroundSound(path=str(clip(tmp_path / "ramp.wav", RAMP)), volume=0.5)


@pytest.fixture
def chime(tmp_path: Path) -> np.ndarray:
    """0.1 s (five frames) of a sawtooth, written to chime.wav."""
    pcm = 1000 + np.arange(RATE // 10) % 300
    clip(tmp_path / "chime.wav", pcm)
    return pcm


@pytest.mark.looptime
async def test_a_cue_plays_its_sound_once_at_its_volume_over_the_ambient(
    tmp_path: Path, ambient: BackgroundSound, chime: np.ndarray
) -> None:
    sound = BackgroundSound(path=str(tmp_path / "chime.wav"), volume=0.5)
    node = BackgroundAudio(ambient=ambient, sounds={"chime": sound})
    io, runner = await play(node, (0.11, cue("chime")), end_at=0.6)

    times, audio = track(io)
    assert np.diff(times) == pytest.approx([0.02] * (len(times) - 1))  # no gap, no extra frame
    assert len(times) == pytest.approx(30, abs=1)
    hum = np.rint(np.resize(RAMP, len(audio)) * 0.5)
    # The ambient frame due at 0.12 was queued at 0.10; the chime joins from the next one,
    # plays its 0.1 s once, and the ambient goes on alone.
    joins, ends = 7 * BLOCK, 7 * BLOCK + len(chime)
    assert np.array_equal(audio[:joins], hum[:joins])
    expected = np.rint(np.resize(RAMP, len(audio))[joins:ends] * 0.5 + chime * 0.5)
    assert np.array_equal(audio[joins:ends], expected)
    assert np.array_equal(audio[ends:], hum[ends:])
    assert runner.metrics().node("background").messages_in == 1
    assert io.played == []  # never in the agent's voice


@pytest.mark.looptime
async def test_cues_overlap_and_mix_with_the_thinking_sound(tmp_path: Path) -> None:
    flat = clip(tmp_path / "flat.wav", np.full(RATE, 2000))
    ding = clip(tmp_path / "ding.wav", np.full(4 * BLOCK, 300))
    node = BackgroundAudio(
        thinking=BackgroundSound(path=str(flat), volume=0.5), sounds={"ding": ding}
    )
    io, _ = await play(
        node,
        (0.11, cue("ding")),
        (0.15, cue("ding")),  # a second one starts over, on top of the first
        end_at=0.5,
        states=((0.0, AgentState(state=AgentStateKind.THINKING)),),
    )
    _, audio = track(io)
    levels = audio.reshape(-1, BLOCK)
    assert (levels == levels[:, :1]).all()  # whole frames at one level
    heard = levels[:, 0].tolist()
    # Thinking (1000) all along; one ding from frame 7, a second from frame 9, 4 frames each.
    assert heard[:13] == [1000] * 7 + [1300] * 2 + [1600] * 2 + [1300] * 2
    assert set(heard[13:]) == {1000}


@pytest.mark.looptime
async def test_a_looping_cue_wraps_until_a_stop_cue_fades_it_out(tmp_path: Path) -> None:
    # 0.05 s (2.5 frames): the loop's end falls inside a frame, so a wrong wrap shows.
    hold = np.arange(2400) % 2400 + 100
    node = BackgroundAudio(sounds={"hold": clip(tmp_path / "hold.wav", hold)})
    io, _ = await play(
        node,
        (0.05, cue("hold", stop=True)),  # nothing playing: nothing to stop
        (0.1, cue("hold", loop=True)),
        (0.41, cue("hold", stop=True)),
        end_at=1.0,
    )
    times, audio = track(io)
    assert times[0] == pytest.approx(0.1, abs=1e-6)
    # The frame due at 0.42 was queued at 0.40, before the stop; the next one is the fade,
    # and then nothing although the node runs on to 1.0 s.
    assert times[-1] == pytest.approx(0.44, abs=1e-6)
    assert len(times) == 18
    looped = np.resize(hold, len(audio))
    assert np.array_equal(audio[: 17 * BLOCK], looped[: 17 * BLOCK])
    fade = audio[17 * BLOCK :].astype(float)
    envelope = np.linspace(1.0, 0.0, BLOCK)
    assert np.abs(fade - looped[17 * BLOCK :] * envelope).max() <= 1
    assert fade[-1] == 0


@pytest.mark.looptime
async def test_a_looping_cue_never_stopped_plays_until_the_node_ends(tmp_path: Path) -> None:
    node = BackgroundAudio(sounds={"hold": clip(tmp_path / "hold.wav", np.full(BLOCK, 500))})
    io, _ = await play(node, (0.2, cue("hold", loop=True)), end_at=1.0)
    times, audio = track(io)
    assert times[0] == pytest.approx(0.2, abs=1e-6)
    assert times[-1] == pytest.approx(1.0, abs=0.021)  # to the end of the states
    assert (audio == 500).all()
    assert io._track_outputs["background_audio"].closed


@pytest.mark.looptime
async def test_an_unknown_sound_warns_naming_it_and_the_session_carries_on(
    tmp_path: Path, chime: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    node = BackgroundAudio(sounds={"chime": tmp_path / "chime.wav", "bell": tmp_path / "chime.wav"})
    with caplog.at_level(logging.WARNING):
        io, runner = await play(
            node,
            (0.1, cue("chmie")),
            (0.2, cue("chmie", stop=True)),
            (0.3, cue("chime")),
            end_at=0.6,
        )
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "'chmie'" in warnings[0] and "bell, chime" in warnings[0]
    times, audio = track(io)
    assert times[0] == pytest.approx(0.3, abs=1e-6)  # the next good cue still plays
    assert np.array_equal(audio, chime)
    metrics = runner.metrics().node("background")
    assert metrics.messages_in == 3 and metrics.errors == 0


@pytest.mark.looptime
async def test_more_than_max_cues_stops_the_oldest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    loop = clip(tmp_path / "loop.wav", np.full(BLOCK, 100))
    node = BackgroundAudio(sounds={f"s{k}": loop for k in range(MAX_CUES + 1)})
    cues = [(0.1 + 0.1 * k, cue(f"s{k}", loop=True)) for k in range(MAX_CUES + 1)]
    with caplog.at_level(logging.WARNING):
        io, _ = await play(node, *cues, end_at=0.1 * MAX_CUES + 0.5)
    _, audio = track(io)
    heard = audio.reshape(-1, BLOCK)[:, 0]
    assert heard.max() == 100 * MAX_CUES  # never more than MAX_CUES at once
    assert heard[-1] == 100 * MAX_CUES  # the newest plays; one was stopped for it
    assert f"stopped the oldest ('s0') to play 's{MAX_CUES}'" in caplog.text


@pytest.mark.looptime
async def test_cues_ending_early_or_never_do_not_change_when_the_node_ends(
    tmp_path: Path, chime: np.ndarray
) -> None:
    sounds = {"chime": tmp_path / "chime.wav"}
    # Cues that end at once: the node plays on until the states end.
    io, _ = await play(BackgroundAudio(sounds=sounds), (0.0, cue("chime")), end_at=0.5)
    assert np.array_equal(track(io)[1], chime)

    # Cues that never end: the node still ends (and closes its track) with the states.
    g = fk.Graph("cues")
    node = g.add(BackgroundAudio(sounds=sounds), name="background")
    g.add(Script(end_at=0.5)) >> node
    g.add(Script((0.1, cue("chime", loop=True)), hold=True)) >> node.cues
    io = MemoryIO(paced=True)
    loop = asyncio.get_running_loop()
    async with fk.GraphRunner(g, job=fk.JobContext(io=io)):
        start = loop.time()
        await asyncio.sleep(1.0)
        times, _ = track(io)
        assert times[0] - start == pytest.approx(0.1, abs=1e-6)
        assert times[-1] - start == pytest.approx(0.5, abs=0.021)
        assert io._track_outputs["background_audio"].closed


@fk.node
def chime_on_tool(result: ToolResult) -> SoundCue | None:
    """A chime when a tool answers; a buzz when it failed."""
    return SoundCue(sound="buzz" if result.is_error else "chime")


@pytest.mark.looptime
async def test_cues_from_a_function_node_in_a_built_graph(tmp_path: Path) -> None:
    chime = clip(tmp_path / "chime.wav", np.full(2 * BLOCK, 1000))
    buzz = clip(tmp_path / "buzz.wav", np.full(BLOCK, -800))
    g = fk.Graph("tool-chimes")
    sounds = g.add(BackgroundAudio(sounds={"chime": chime, "buzz": buzz}), name="sounds")
    tools = g.add(
        Script(
            (0.2, ToolResult(call_id="1", name="get_weather", output="sunny")),
            (0.6, ToolResult(call_id="2", name="get_weather", output="?", is_error=True)),
        ),
        name="tools",
    )
    tools >> chime_on_tool() >> sounds.cues
    g.add(Script(end_at=1.0), name="states") >> sounds
    assert g.problems() == []
    io = MemoryIO(paced=True)
    runner = fk.GraphRunner(g, job=fk.JobContext(io=io))
    await runner.run()

    times, audio = track(io)
    assert times == pytest.approx([0.2, 0.22, 0.6])
    assert audio.tolist() == [1000] * 2 * BLOCK + [-800] * BLOCK
    assert runner.metrics().node("sounds").messages_in == 2


def test_a_missing_sound_file_fails_at_construction_naming_it(tmp_path: Path) -> None:
    with pytest.raises(AudioFileError, match=r"nowhere\.wav"):
        BackgroundAudio(sounds={"chime": tmp_path / "nowhere.wav"})
    with pytest.raises(ValueError, match="a sound named ''"):
        BackgroundAudio(sounds={"": tmp_path / "nowhere.wav"})


def test_a_cue_plays_or_stops_not_both() -> None:
    with pytest.raises(ValueError, match=r"SoundCue\(sound='hold'\).*send stop=True alone"):
        SoundCue(sound="hold", loop=True, stop=True)
    assert SoundCue(sound="hold", stop=True).stop


@pytest.mark.looptime
async def test_without_tracks_the_cues_are_read_and_checked(
    tmp_path: Path, chime: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    g = fk.Graph("cues")
    node = g.add(BackgroundAudio(sounds={"chime": tmp_path / "chime.wav"}), name="background")
    g.add(Script(end_at=0.5)) >> node
    g.add(Script((0.1, cue("chime")), (0.2, cue("gong")))) >> node.cues
    runner = fk.GraphRunner(g, job=fk.JobContext(io=VoiceOnlyIO()))
    with caplog.at_level(logging.WARNING):
        await runner.run()  # ends with the states, no error
    assert runner.metrics().node("background").messages_in == 2
    assert "'gong'" in caplog.text and "chime" in caplog.text
