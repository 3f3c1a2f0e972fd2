"""Audio building blocks: numpy views of LiveKit frames and WAV files in and out.

The nodes built on these live in :mod:`flowkit.nodes.audio`.
"""

from flowkit.audio.frames import (
    duration_ms,
    duration_s,
    frame_format,
    frame_from_samples,
    samples,
    samples_for,
    silence,
)
from flowkit.audio.wav import AudioFileError, WavInfo, WavWriter, probe, read_frames, write_wav

__all__ = [
    "AudioFileError",
    "WavInfo",
    "WavWriter",
    "duration_ms",
    "duration_s",
    "frame_format",
    "frame_from_samples",
    "probe",
    "read_frames",
    "samples",
    "samples_for",
    "silence",
    "write_wav",
]
