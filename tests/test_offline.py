import asyncio
import re
import wave
from pathlib import Path

import numpy as np
import pytest
from livekit import rtc

from flowkit.audio import AudioFileError, frame_from_samples, probe, read_frames, samples
from flowkit.messages import Transcript, dtmf_code
from flowkit.offline import KEY_GAP_S, KeyEntry, OfflineIO
from flowkit.ports import AudioFormat
from flowkit.room_io import AudioInput, AudioOutput, RoomIO


def sine(seconds: float, rate: int, channels: int = 1, freq: float = 440.0) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    mono = (10000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    return np.ascontiguousarray(np.repeat(mono[:, None], channels, axis=1))


def write(path: Path, block: np.ndarray, rate: int) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(block.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(block.tobytes())
    return path


def tone(ms: int = 20, rate: int = 16_000) -> rtc.AudioFrame:
    return frame_from_samples(sine(ms / 1000, rate)[:, 0].copy(), rate)


def read_mono(path: Path) -> np.ndarray:
    return np.concatenate([samples(f)[:, 0] for f in read_frames(path)])


@pytest.fixture
def one_second(tmp_path: Path) -> Path:
    return write(tmp_path / "in.wav", sine(1.0, 16_000), 16_000)


def test_offline_io_keeps_the_room_io_contract(one_second: Path, tmp_path: Path) -> None:
    io = OfflineIO(one_second, tmp_path / "out.wav")
    assert isinstance(io, RoomIO)
    assert isinstance(io.audio_input(16_000, 1), AudioInput)
    assert isinstance(io.audio_output(16_000, 1), AudioOutput)


async def test_input_is_resampled_and_downmixed_to_the_asked_format(tmp_path: Path) -> None:
    path = write(tmp_path / "in.wav", sine(1.5, 48_000, channels=2), 48_000)
    io = OfflineIO(path, tmp_path / "out.wav")
    frames = [f async for f in io.audio_input(16_000, 1).frames()]
    assert {(f.sample_rate, f.num_channels) for f in frames} == {(16_000, 1)}
    assert sum(f.samples_per_channel for f in frames) == 24_000  # 1.5 s at 16 kHz
    assert all(f.samples_per_channel == 320 for f in frames[:-1])
    audio = np.concatenate([samples(f)[:, 0] for f in frames]).astype(np.float64)
    # The sine survives: same loudness (rms of a 10000-peak sine), away from the edges.
    assert np.sqrt(np.mean(audio[1000:-1000] ** 2)) == pytest.approx(10000 / np.sqrt(2), rel=0.02)
    assert io.input_position == pytest.approx(1.5)
    assert io.input_duration == pytest.approx(1.5)


async def test_input_at_the_files_format_is_the_files_samples(
    one_second: Path,
    tmp_path: Path,
) -> None:
    io = OfflineIO(one_second, tmp_path / "out.wav")
    frames = [f async for f in io.audio_input(16_000, 1).frames()]
    assert len(frames) == 50
    assert np.array_equal(np.concatenate([samples(f)[:, 0] for f in frames]), read_mono(one_second))


async def test_mono_input_is_copied_up_to_stereo(one_second: Path, tmp_path: Path) -> None:
    io = OfflineIO(one_second, tmp_path / "out.wav")
    frames = [f async for f in io.audio_input(16_000, 2).frames()]
    block = np.concatenate([samples(f) for f in frames])
    assert block.shape == (16_000, 2)
    assert np.array_equal(block[:, 0], block[:, 1])


@pytest.mark.looptime
async def test_realtime_input_hands_each_frame_over_once_recorded(
    one_second: Path,
    tmp_path: Path,
) -> None:
    io = OfflineIO(one_second, tmp_path / "out.wav", realtime=True)
    loop = asyncio.get_running_loop()
    start = loop.time()
    times, positions = [], []
    async for _ in io.audio_input(16_000, 1).frames():
        times.append(loop.time() - start)
        positions.append(io.input_position)
    assert times == pytest.approx([0.02 * k for k in range(1, 51)])
    assert positions == pytest.approx(times)


@pytest.mark.looptime
async def test_input_without_realtime_takes_no_time(one_second: Path, tmp_path: Path) -> None:
    io = OfflineIO(one_second, tmp_path / "out.wav")
    loop = asyncio.get_running_loop()
    start = loop.time()
    count = len([f async for f in io.audio_input(16_000, 1).frames()])
    assert count == 50
    assert loop.time() == start


async def test_output_places_agent_audio_on_the_inputs_clock(
    one_second: Path,
    tmp_path: Path,
) -> None:
    out_path = tmp_path / "out.wav"
    io = OfflineIO(one_second, out_path)
    output = io.audio_output(16_000, 1)
    assert not output.paced
    frames = io.audio_input(16_000, 1).frames()
    for _ in range(25):  # 0.5 s heard
        await anext(frames)
    for _ in range(10):  # a 0.2 s reply, written at once: starts at 0.5 s
        await output.write(tone())
    for _ in range(5):  # 0.1 s more heard: still inside the reply, which stays contiguous
        await anext(frames)
    for _ in range(5):
        await output.write(tone())
    async for _ in frames:  # the rest of the input: 1.0 s heard
        pass
    await output.write(tone())  # the output was idle: this frame starts at 1.0 s
    await io.aclose()
    audio = read_mono(out_path)
    assert not audio[:8000].any()  # silence until 0.5 s (the tone's first sample is 0)
    assert audio[8001] != 0
    assert np.count_nonzero(audio[8000:12800]) > 4000  # 0.3 s of tone from 0.5 s, no gap
    assert not audio[12800:16000].any()  # silence until the input's 1.0 s
    assert audio[16000:].any()
    assert len(audio) == 16_320
    assert output.duration == pytest.approx(1.02)


async def test_closing_pads_the_output_to_the_input_heard(one_second: Path, tmp_path: Path) -> None:
    out_path = tmp_path / "out.wav"
    io = OfflineIO(one_second, out_path)
    output = io.audio_output(16_000, 1)
    await output.write(tone())
    async for _ in io.audio_input(16_000, 1).frames():
        pass
    await output.aclose()
    await io.aclose()  # after the sink closed it: nothing more to do
    assert probe(out_path).num_samples == 16_000


async def test_no_agent_audio_writes_silence_as_long_as_the_input(tmp_path: Path) -> None:
    path = write(tmp_path / "in.wav", sine(0.5, 22_050, channels=2), 22_050)
    out_path = tmp_path / "out.wav"
    io = OfflineIO(path, out_path)
    async for _ in io.audio_input(16_000, 1).frames():
        pass
    await io.aclose()
    await io.aclose()
    info = probe(out_path)
    assert info.format == AudioFormat(22_050, 2)
    assert info.duration == pytest.approx(0.5, abs=1e-3)
    assert not read_mono(out_path).any()


async def test_nothing_heard_and_nothing_said_writes_no_file(
    one_second: Path,
    tmp_path: Path,
) -> None:
    io = OfflineIO(one_second, tmp_path / "out.wav")
    await io.aclose()
    assert not (tmp_path / "out.wav").exists()


@pytest.mark.looptime
async def test_realtime_output_returns_when_each_frame_is_due(
    one_second: Path,
    tmp_path: Path,
) -> None:
    out_path = tmp_path / "out.wav"
    io = OfflineIO(one_second, out_path, realtime=True)
    output = io.audio_output(16_000, 1)
    assert output.paced
    loop = asyncio.get_running_loop()
    start = loop.time()
    returned = []
    for _ in range(5):
        await output.write(tone())
        returned.append(loop.time() - start)
    assert returned == pytest.approx([0.0, 0.02, 0.04, 0.06, 0.08])
    await asyncio.sleep(0.5)  # the agent is silent: the gap is written as silence
    await output.write(tone())
    assert loop.time() - start == pytest.approx(0.58)
    await output.aclose()  # waits for the last frame to finish playing
    assert loop.time() - start == pytest.approx(0.60)
    audio = read_mono(out_path)
    assert len(audio) == round(0.60 * 16_000)
    assert not audio[1600:9280].any()
    assert audio[9280:].any()


async def test_clear_drops_nothing_and_is_recorded(one_second: Path, tmp_path: Path) -> None:
    out_path = tmp_path / "out.wav"
    io = OfflineIO(one_second, out_path)
    output = io.audio_output(16_000, 1)
    frames = io.audio_input(16_000, 1).frames()
    for _ in range(10):
        await anext(frames)
    for _ in range(3):
        await output.write(tone())
    output.clear()
    assert io.clears == [pytest.approx(0.2)]
    await output.aclose()
    assert probe(out_path).num_samples == round(0.26 * 16_000)


async def test_output_has_one_format(one_second: Path, tmp_path: Path) -> None:
    io = OfflineIO(one_second, tmp_path / "out.wav")
    output = io.audio_output(16_000, 1)
    assert io.audio_output(16_000, 1) is output
    with pytest.raises(ValueError, match="open at 16 kHz mono, not 24 kHz mono"):
        io.audio_output(24_000, 1)
    with pytest.raises(ValueError, match="resample the agent's audio"):
        await output.write(tone(rate=24_000))
    await output.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        io.audio_output(16_000, 1)
    with pytest.raises(RuntimeError, match=r"write\(\) after aclose"):
        await output.write(tone())


def test_unusable_input_formats_fail_when_asked(tmp_path: Path) -> None:
    path = write(tmp_path / "six.wav", sine(0.1, 16_000, channels=3), 16_000)
    io = OfflineIO(path, tmp_path / "out.wav")
    with pytest.raises(ValueError, match=r"six\.wav: cannot mix 3 channels into 2"):
        io.audio_input(16_000, 2)
    with pytest.raises(ValueError, match="not a positive whole number"):
        io.audio_input(11_025, 1)


def test_transcripts_are_recorded(one_second: Path, tmp_path: Path) -> None:
    io = OfflineIO(one_second, tmp_path / "out.wav")
    said = Transcript(text="hello", speaker="agent")
    io.publish_transcript(said)
    assert io.transcripts == [said]


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _raw(path: Path, width: int, frames: bytes) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(width)
        w.setframerate(16_000)
        w.writeframes(frames)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.wav", "no such file"),
        (lambda d: d, "is a directory"),
        (lambda d: _bytes(d / "empty.wav", b""), "is empty"),
        (lambda d: _bytes(d / "text.wav", b"hello, not audio"), "is not a WAV file"),
        (lambda d: _raw(d / "u8.wav", 1, b"\x80" * 100), "is 8-bit PCM, but only 16-bit"),
        (lambda d: _raw(d / "s24.wav", 3, b"\0" * 300), "is 24-bit PCM, but only 16-bit"),
        (lambda d: _raw(d / "none.wav", 2, b""), "no audio"),
    ],
    ids=["missing", "directory", "empty", "not-wav", "8-bit", "24-bit", "no-samples"],
)
def test_bad_input_files_fail_at_construction(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "in"
    src.mkdir()
    with pytest.raises(AudioFileError, match=message):
        OfflineIO(make(src), tmp_path / "out.wav")
    assert not (tmp_path / "out.wav").exists()


def test_output_cannot_overwrite_the_input(one_second: Path) -> None:
    with pytest.raises(ValueError, match="the output file is the input file"):
        OfflineIO(one_second, one_second)


def constant(value: int, ms: int, rate: int) -> rtc.AudioFrame:
    return frame_from_samples(np.full(rate * ms // 1000, value, np.int16), rate)


@pytest.mark.looptime
async def test_a_track_is_mixed_into_the_output_at_the_outputs_format(
    one_second: Path,
    tmp_path: Path,
) -> None:
    out_path = tmp_path / "out.wav"
    io = OfflineIO(one_second, out_path, realtime=True)
    voice = io.audio_output(16_000, 1)
    background = io.track_output("background_audio", 48_000, 1)
    assert background.paced and io.tracks == {"background_audio": background}

    async def speak() -> None:
        for _ in range(10):  # 0.2 s of voice at 1000
            await voice.write(constant(1000, 20, 16_000))

    async def hum() -> None:
        for _ in range(20):  # 0.4 s of background at 500, at 48 kHz
            await background.write(constant(500, 20, 48_000))

    await asyncio.gather(speak(), hum())
    await io.aclose()
    info = probe(out_path)
    assert info.format == AudioFormat(16_000, 1)  # the voice's format; the track converted
    audio = read_mono(out_path)
    assert len(audio) == 6400  # the longer of the two: 0.4 s
    assert io.file_duration == 0.4  # what `flowkit run` reports: the file's length
    # Away from the resampler's edges: the sum while both play, then the background alone.
    assert np.abs(audio[400:2800].astype(int) - 1500).max() <= 10
    assert np.abs(audio[3600:6000].astype(int) - 500).max() <= 10


@pytest.mark.looptime
async def test_the_mix_is_clipped_not_wrapped(one_second: Path, tmp_path: Path) -> None:
    out_path = tmp_path / "out.wav"
    io = OfflineIO(one_second, out_path, realtime=True)
    voice = io.audio_output(16_000, 1)
    background = io.track_output("bg", 16_000, 1)
    await asyncio.gather(
        voice.write(constant(30_000, 20, 16_000)), background.write(constant(30_000, 20, 16_000))
    )
    await io.aclose()
    assert (read_mono(out_path) == 32767).all()


@pytest.mark.looptime
async def test_a_track_alone_makes_the_file_at_the_inputs_format(tmp_path: Path) -> None:
    path = write(tmp_path / "in.wav", sine(0.5, 22_050, channels=2), 22_050)
    out_path = tmp_path / "out.wav"
    io = OfflineIO(path, out_path, realtime=True)
    background = io.track_output("bg", 48_000, 1)
    for _ in range(10):
        await background.write(constant(800, 20, 48_000))
    await io.aclose()
    info = probe(out_path)
    assert info.format == AudioFormat(22_050, 2)
    assert info.duration == pytest.approx(0.2, abs=1e-3)
    both = np.concatenate([samples(f) for f in read_frames(out_path)])
    assert np.abs(both[1000:3000].astype(int) - 800).max() <= 10  # on both channels


def test_track_output_refuses_a_second_format_and_names_the_track(
    one_second: Path,
    tmp_path: Path,
) -> None:
    io = OfflineIO(one_second, tmp_path / "out.wav")
    first = io.track_output("bg", 48_000, 1)
    assert io.track_output("bg", 48_000, 1) is first
    with pytest.raises(ValueError, match=r"track .bg. is open at 48 kHz mono, not 24 kHz mono"):
        io.track_output("bg", 24_000, 1)


async def test_scripted_keys_come_when_the_input_reaches_their_time(one_second: Path,
                                                                    tmp_path: Path) -> None:
    io = OfflineIO(one_second, tmp_path / "out.wav", dtmf=[(0.7, "9"), KeyEntry(0.1, "12#")])
    source = io.audio_input(16_000, 1)
    heard: list[tuple[str, float]] = []

    async def keypad() -> None:
        async for press in io.dtmf_input():
            heard.append((press.digit, io.input_position))
            assert press.code == dtmf_code(press.digit) and press.participant == "user"

    keys = asyncio.create_task(keypad())
    async for _ in source.frames():
        pass
    await keys
    # in key order across entries, each as soon as the input passed its time (20 ms frames)
    assert [digit for digit, _ in heard] == ["1", "2", "#", "9"]
    times = [0.1, 0.1 + KEY_GAP_S, 0.1 + 2 * KEY_GAP_S, 0.7]
    for (_, position), due in zip(heard, times, strict=True):
        assert due <= position < due + 0.02 + 1e-9


async def test_keys_after_the_input_ended_are_not_held_back(one_second: Path,
                                                            tmp_path: Path) -> None:
    io = OfflineIO(one_second, tmp_path / "out.wav", dtmf=[(1.0, "1234")])  # 1.0 + 0.75 s
    async for _ in io.audio_input(16_000, 1).frames():
        pass
    pressed = await asyncio.wait_for(_digits(io), 1.0)
    assert pressed == "1234"


@pytest.mark.looptime
async def test_in_real_time_keys_are_pressed_at_their_session_time(one_second: Path,
                                                                   tmp_path: Path) -> None:
    io = OfflineIO(one_second, tmp_path / "out.wav", realtime=True, dtmf=[(0.5, "47")])
    start = asyncio.get_running_loop().time()
    io.origin()
    times = []
    async for _press in io.dtmf_input():
        times.append(asyncio.get_running_loop().time() - start)
    assert times == pytest.approx([0.5, 0.5 + KEY_GAP_S])


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ((0.2, "12x#"), "keypad entry '12x#' at 0.2 s: 'x' is not a keypad key"),
        ((0.2, ""), "keypad entry '' at 0.2 s: no keys"),
        ((3.0, "1"), "keypad entry '1' at 3 s is outside"),
        ((-1.0, "1"), "keypad entry '1' at -1 s is outside"),
    ],
)
def test_a_wrong_keypad_entry_is_refused_before_the_run(
    one_second: Path, tmp_path: Path, entry: tuple[float, str], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        OfflineIO(one_second, tmp_path / "out.wav", dtmf=[entry])


async def _digits(io: OfflineIO) -> str:
    return "".join([press.digit async for press in io.dtmf_input()])
