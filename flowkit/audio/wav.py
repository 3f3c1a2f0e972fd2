"""WAV files in and out as 16-bit :class:`livekit.rtc.AudioFrame` s, with the stdlib ``wave``.

Only 16-bit signed PCM is accepted, because that is what LiveKit frames carry; any other
file fails with an :class:`AudioFileError` that says what the file is and how to convert it.
"""

from __future__ import annotations

import os
import re
import wave
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from livekit import rtc

from flowkit.audio.frames import frame_format, samples_for
from flowkit.ports import AudioFormat

__all__ = ["AudioFileError", "WavInfo", "WavWriter", "probe", "read_frames", "write_wav"]

StrPath = str | os.PathLike[str]

_CONVERT = "convert it with: sox {path} -b 16 -e signed-integer out.wav (or ffmpeg -i {path} " \
    "-c:a pcm_s16le out.wav)"

# WAV format codes worth naming in an error (the rest are shown as numbers).
_FORMAT_NAMES = {
    3: "32/64-bit IEEE float",
    6: "A-law",
    7: "µ-law",
    0x11: "IMA ADPCM",
    0x55: "MP3",
    0xFFFE: "WAVE_FORMAT_EXTENSIBLE (which Python 3.11's wave module cannot read)",
}


class AudioFileError(Exception):
    """An audio file cannot be used: missing, empty, not a WAV, or not 16-bit PCM.

    The message names the file, what is wrong and how to fix it.

    Attributes:
        path: The file.
    """

    def __init__(self, path: StrPath, problem: str) -> None:
        self.path = Path(path)
        super().__init__(f"{os.fspath(path)}: {problem}")


@dataclass(frozen=True, slots=True)
class WavInfo:
    """What a WAV file's header says.

    Attributes:
        path: The file.
        format: Its sample rate and channel count.
        num_samples: Samples per channel the header declares.
    """

    path: Path
    format: AudioFormat
    num_samples: int

    @property
    def duration(self) -> float:
        """The audio's duration in seconds."""
        return self.num_samples / self.format.sample_rate


def _open(path: StrPath) -> wave.Wave_read:
    """Open ``path`` for reading, turning every way it can be unusable into AudioFileError."""
    file = Path(path)
    convert = _CONVERT.format(path=os.fspath(path))
    if not file.exists():
        raise AudioFileError(
            path, f"no such file (looked in {file.resolve().parent}); check the path"
        )
    if file.is_dir():
        raise AudioFileError(path, "is a directory, not a WAV file; give the path of a .wav file")
    if file.stat().st_size == 0:
        raise AudioFileError(path, "is empty (0 bytes), not a WAV file; record or copy it again")
    try:
        reader = wave.open(os.fspath(path), "rb")  # noqa: SIM115 - the caller closes it
    except EOFError:
        raise AudioFileError(
            path, f"is truncated: its WAV header is incomplete; re-export the file or {convert}"
        ) from None
    except wave.Error as exc:
        raise AudioFileError(path, _describe_wave_error(str(exc), convert)) from None
    try:
        width = reader.getsampwidth()
        if width != 2:
            raise AudioFileError(
                path,
                f"is {8 * width}-bit PCM, but only 16-bit PCM is accepted (LiveKit frames are "
                f"int16); {convert}",
            )
        if reader.getnframes() == 0:
            raise AudioFileError(path, "has a WAV header but no audio (0 samples)")
    except BaseException:
        reader.close()
        raise
    return reader


def _describe_wave_error(message: str, convert: str) -> str:
    code = re.search(r"unknown format: (\d+)", message)
    if code is not None:
        number = int(code.group(1))
        kind = _FORMAT_NAMES.get(number, f"format code {number}")
        return f"is a WAV file in {kind}, but only 16-bit PCM is accepted; {convert}"
    return f"is not a WAV file ({message}); {convert}"


def probe(path: StrPath) -> WavInfo:
    """Read a WAV file's header, checking that flowkit can play it.

    Args:
        path: The file.

    Returns:
        Its format and length.

    Raises:
        AudioFileError: The file is missing, empty, not a WAV, not 16-bit PCM, or has no audio.
    """
    with _open(path) as reader:
        return WavInfo(
            Path(path),
            AudioFormat(reader.getframerate(), reader.getnchannels()),
            reader.getnframes(),
        )


def read_frames(path: StrPath, frame_ms: float = 20) -> Iterator[rtc.AudioFrame]:
    """Read a WAV file as frames of ``frame_ms`` each; the last one may be shorter.

    Each frame wraps the ``bytes`` the file was read into, so reading costs one copy (file to
    memory) and no more; those frames are read-only (see :func:`flowkit.audio.samples`).

    Args:
        path: The file.
        frame_ms: Each frame's duration; a whole number of samples at the file's rate.

    Yields:
        The frames, in order.

    Raises:
        AudioFileError: The file cannot be used (see :func:`probe`); raised on the first
            ``next()``, so call :func:`probe` first to fail early.
        ValueError: ``frame_ms`` is not a whole number of samples at the file's rate.
    """
    with _open(path) as reader:
        rate, channels = reader.getframerate(), reader.getnchannels()
        per_frame = samples_for(frame_ms, rate)
        bytes_per_sample = 2 * channels
        while True:
            data = reader.readframes(per_frame)
            count = len(data) // bytes_per_sample
            if count == 0:
                return
            if len(data) != count * bytes_per_sample:
                # A file cut mid-sample: keep the whole samples.
                data = data[: count * bytes_per_sample]
            yield rtc.AudioFrame(data, rate, channels, count)


class WavWriter:
    """Writes frames to a 16-bit PCM WAV file; the first frame sets its format.

    The file is created on the first frame (an empty stream leaves no file, since it would
    have no format) and finished on :meth:`close`. Use it as a context manager.

    Args:
        path: The file to create (overwritten if it exists).
    """

    def __init__(self, path: StrPath) -> None:
        self.path = Path(path)
        self.format: AudioFormat | None = None
        self.num_samples = 0
        self._writer: wave.Wave_write | None = None

    def write(self, frame: rtc.AudioFrame) -> None:
        """Append ``frame``.

        Raises:
            ValueError: The frame's format differs from the first frame's; put a
                ``Resample`` (or ``Downmix``) in front so the whole stream has one format.
        """
        fmt = frame_format(frame)
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            writer = wave.open(os.fspath(self.path), "wb")  # noqa: SIM115 - closed by close()
            writer.setnchannels(fmt.num_channels)
            writer.setsampwidth(2)
            writer.setframerate(fmt.sample_rate)
            self._writer, self.format = writer, fmt
        elif fmt != self.format:
            raise ValueError(
                f"{self.path}: got a {fmt} frame after {self.format} frames; a WAV file has "
                "one format, so resample (flowkit.nodes.audio.Resample) before writing"
            )
        count = frame.samples_per_channel * frame.num_channels
        # A memoryview slice: no copy, and it trims a buffer longer than the frame.
        self._writer.writeframesraw(frame.data[:count])
        self.num_samples += frame.samples_per_channel

    def close(self) -> None:
        """Finish the file (writes the final header sizes). Safe to call twice."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def write_wav(path: StrPath, frames: Iterable[rtc.AudioFrame]) -> int:
    """Write ``frames`` to a 16-bit PCM WAV file.

    Args:
        path: The file to create (overwritten if it exists).
        frames: Frames of one format.

    Returns:
        The number of samples per channel written.

    Raises:
        ValueError: No frames were given (a WAV needs a format), or their formats differ.
    """
    with WavWriter(path) as writer:
        for frame in frames:
            writer.write(frame)
    if writer.format is None:
        raise ValueError(f"{path}: no frames to write; a WAV file needs at least one frame")
    return writer.num_samples
