"""Hold music: what a caller hears while the agent puts them on hold.

:func:`hold_music` makes the default loop (a soft arpeggio of four chords, eight seconds,
synthesised here so that no audio file ships or downloads); :func:`load_hold_audio` reads a
WAV of your own instead. :class:`HoldPlayer` plays a loop on an audio track of the agent's
own (``track_output`` of the room I/O, beside its voice) until it is stopped, as LiveKit
Agents' ``BackgroundAudioPlayer`` plays its hold music during a warm transfer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os

import numpy as np
from numpy.typing import NDArray

from flowkit.audio.frames import frame_from_samples
from flowkit.nodes.background import load_sound
from flowkit.ports import AudioFormat
from flowkit.room_io import AudioOutput, TrackOutputs

__all__ = ["HOLD_FORMAT", "HOLD_TRACK", "HoldPlayer", "hold_music", "load_hold_audio"]

logger = logging.getLogger("flowkit.livekit")

HOLD_FORMAT = AudioFormat(48_000, 1)
"""The format hold music is played at."""

HOLD_TRACK = "hold_music"
"""The name of the agent's track that hold music is published on."""

_FRAME_MS = 20
# Cmaj7, Am7, Fmaj7, G6 as MIDI notes, each arpeggiated up over two seconds.
_CHORDS = ((60, 64, 67, 71), (57, 60, 64, 67), (53, 57, 60, 64), (55, 59, 62, 64))
_NOTE_S = 0.5
_LEVEL = 0.12  # of full scale: background music, well under a voice


@functools.cache
def hold_music(sample_rate: int = HOLD_FORMAT.sample_rate) -> NDArray[np.int16]:
    """The default hold music: an eight-second loop, mono int16 at ``sample_rate``.

    Each note is a sine with a little of its octave, struck and decaying, and rings into the
    next, so the loop is smooth; it starts and ends near silence, so it loops without a click.
    """
    note_len = int(_NOTE_S * sample_rate)
    ring = 3 * note_len  # a note rings under the two after it
    notes = [note for chord in _CHORDS for note in chord]
    out = np.zeros(len(notes) * note_len + ring, dtype=np.float64)
    t = np.arange(ring) / sample_rate
    envelope = np.minimum(t / 0.01, 1.0) * np.exp(-t / 0.45)  # 10 ms attack, no click
    for i, note in enumerate(notes):
        hz = 440.0 * 2.0 ** ((note - 69) / 12)
        tone = np.sin(2 * np.pi * hz * t) + 0.25 * np.sin(4 * np.pi * hz * t)
        out[i * note_len : i * note_len + ring] += envelope * tone
    loop = out[: len(notes) * note_len]
    loop[: ring - note_len] += out[len(notes) * note_len :][: ring - note_len]  # wrap the tail
    loop *= _LEVEL * 32767 / np.max(np.abs(loop))
    music = loop.astype(np.int16)
    music.flags.writeable = False  # cached and shared: nobody may change it
    return music


def load_hold_audio(path: str | os.PathLike[str]) -> NDArray[np.int16]:
    """A WAV file (16-bit PCM, any rate and channels) as hold music at :data:`HOLD_FORMAT`.

    Raises:
        AudioFileError: The file is missing, not a 16-bit PCM WAV, or holds no audio.
    """
    return load_sound(path, HOLD_FORMAT).reshape(-1)


class HoldPlayer:
    """Plays a loop on an audio track of the agent's own until :meth:`stop`.

    Args:
        io: The room I/O whose ``track_output`` publishes the track.
        clip: The loop, mono int16 at :data:`HOLD_FORMAT` (:func:`hold_music`,
            :func:`load_hold_audio`).
        track: The track's name.
    """

    def __init__(
        self, io: TrackOutputs, clip: NDArray[np.int16], *, track: str = HOLD_TRACK
    ) -> None:
        if len(clip) == 0:
            raise ValueError("hold music with no samples; give a clip of some length")
        self._io = io
        self._clip = clip
        self._track = track
        self._task: asyncio.Task[None] | None = None
        self._output: AudioOutput | None = None

    @property
    def playing(self) -> bool:
        """Whether the loop is playing."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the loop (again, from its beginning, if it was stopped)."""
        if self.playing:
            return
        self._output = self._io.track_output(
            self._track, HOLD_FORMAT.sample_rate, HOLD_FORMAT.num_channels
        )
        self._task = asyncio.get_running_loop().create_task(
            self._play(self._output), name=f"hold music on {self._track}"
        )

    async def stop(self) -> None:
        """Stop the loop at once: what the track still queues is dropped."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._output is not None:
            self._output.clear()

    async def _play(self, output: AudioOutput) -> None:
        piece = HOLD_FORMAT.sample_rate * _FRAME_MS // 1000
        clip = np.concatenate([self._clip, self._clip[:piece]])  # every piece whole
        at = 0
        try:
            while True:
                # The output takes the pace: its write returns once the frame is queued.
                frame = frame_from_samples(clip[at : at + piece], HOLD_FORMAT.sample_rate)
                await output.write(frame)
                at = (at + piece) % len(self._clip)
        except Exception as exc:  # a hold without music is still a hold
            logger.warning("hold music stopped: %s", exc)
