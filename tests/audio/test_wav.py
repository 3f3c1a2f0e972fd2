import struct
import wave
from pathlib import Path

import numpy as np
import pytest
from livekit import rtc

from flowkit.audio import (
    AudioFileError,
    WavWriter,
    frame_from_samples,
    probe,
    read_frames,
    samples,
    write_wav,
)
from flowkit.ports import AudioFormat


def _noise(n: int, channels: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(-32768, 32767, size=(n, channels), dtype=np.int16, endpoint=True)


def _write_raw(path: Path, width: int, rate: int = 8000, frames: bytes = b"\0\0" * 10) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(frames)
    return path


def _float_wav(path: Path) -> Path:
    data = np.zeros(8, np.float32).tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, 8000, 8000 * 4, 4, 32)  # format code 3: IEEE float
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def test_round_trip_is_exact_and_frames_have_the_requested_size(tmp_path: Path) -> None:
    audio = _noise(16000 + 123, 2)
    path = tmp_path / "noise.wav"
    chunks = [audio[i : i + 1000] for i in range(0, len(audio), 1000)]
    written = write_wav(path, (frame_from_samples(np.ascontiguousarray(c), 16000) for c in chunks))
    assert written == len(audio)

    info = probe(path)
    assert info.format == AudioFormat(16000, 2)
    assert info.num_samples == len(audio)
    assert info.duration == pytest.approx(len(audio) / 16000)

    frames = list(read_frames(path, frame_ms=20))
    assert [f.samples_per_channel for f in frames[:-1]] == [320] * 50
    assert frames[-1].samples_per_channel == 123
    assert all((f.sample_rate, f.num_channels) == (16000, 2) for f in frames)
    np.testing.assert_array_equal(np.concatenate([samples(f) for f in frames]), audio)


def test_writer_rejects_a_second_format_and_writes_nothing_without_frames(
    tmp_path: Path,
) -> None:
    path = tmp_path / "mixed.wav"
    with WavWriter(path) as writer:
        writer.write(rtc.AudioFrame.create(16000, 1, 160))
        with pytest.raises(ValueError, match="one format"):
            writer.write(rtc.AudioFrame.create(48000, 1, 480))
    assert probe(path).num_samples == 160

    with pytest.raises(ValueError, match="no frames"):
        write_wav(tmp_path / "none.wav", [])
    assert not (tmp_path / "none.wav").exists()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AudioFileError, match="no such file") as info:
        probe(tmp_path / "absent.wav")
    assert info.value.path == tmp_path / "absent.wav"


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(AudioFileError, match="directory"):
        probe(tmp_path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioFileError, match="empty"):
        probe(path)


def test_truncated_header(tmp_path: Path) -> None:
    path = tmp_path / "cut.wav"
    path.write_bytes(b"RIFF\x10\x00")
    with pytest.raises(AudioFileError, match="truncated"):
        probe(path)


def test_not_a_wav(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("this is a text file, not audio\n" * 4)
    with pytest.raises(AudioFileError, match=r"not a WAV file.*sox"):
        probe(path)


@pytest.mark.parametrize("width", [1, 3, 4])
def test_wrong_sample_width(tmp_path: Path, width: int) -> None:
    path = _write_raw(tmp_path / f"w{width}.wav", width, frames=b"\0" * width * 10)
    with pytest.raises(AudioFileError, match=rf"{8 * width}-bit PCM.*only 16-bit.*sox") as info:
        probe(path)
    assert "-b 16" in str(info.value)


def test_float_wav(tmp_path: Path) -> None:
    with pytest.raises(AudioFileError, match=r"IEEE float.*only 16-bit PCM.*sox"):
        probe(_float_wav(tmp_path / "float.wav"))


def test_wav_without_samples(tmp_path: Path) -> None:
    path = _write_raw(tmp_path / "silent.wav", 2, frames=b"")
    with pytest.raises(AudioFileError, match="no audio"):
        probe(path)


def test_read_frames_raises_the_same_errors(tmp_path: Path) -> None:
    with pytest.raises(AudioFileError, match="no such file"):
        next(read_frames(tmp_path / "absent.wav"))


def test_read_frames_rejects_a_frame_duration_that_is_not_whole_samples(tmp_path: Path) -> None:
    path = _write_raw(tmp_path / "ok.wav", 2, rate=22050)
    with pytest.raises(ValueError, match="whole number"):
        next(read_frames(path, frame_ms=1))
