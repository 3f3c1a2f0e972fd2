"""Room I/O: where a graph's room source hears audio and where its room sink plays it.

A graph names the room, not the transport: :class:`~flowkit.nodes.room.RoomSource` and
:class:`~flowkit.nodes.room.RoomSink` read and write through the :class:`RoomIO` of the job
they run for (``ctx.job.io``). An offline run binds them to WAV files; a LiveKit job binds them
to the room's tracks. The same graph runs in both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from livekit import rtc

from flowkit.messages import Transcript

__all__ = ["AudioInput", "AudioOutput", "RoomIO"]


@runtime_checkable
class AudioInput(Protocol):
    """One participant's audio, as the room source asked for it."""

    def frames(self) -> AsyncIterator[rtc.AudioFrame]:
        """The audio, in the rate and channel count that was asked for; ends with the input."""
        ...


@runtime_checkable
class AudioOutput(Protocol):
    """Where the agent's audio is played."""

    @property
    def paced(self) -> bool:
        """Whether ``write`` returns only when the frame is due (real time) or at once."""
        ...

    async def write(self, frame: rtc.AudioFrame) -> None:
        """Play ``frame`` after the ones written before it."""
        ...

    def clear(self) -> None:
        """Drop audio written but not yet played, now (barge-in)."""
        ...

    async def aclose(self) -> None:
        """Finish playing what was written and release the output."""
        ...


@runtime_checkable
class RoomIO(Protocol):
    """The job's binding of room nodes to the world (files offline, tracks in LiveKit)."""

    def audio_input(
        self, sample_rate: int, num_channels: int, participant: str | None = None
    ) -> AudioInput:
        """A participant's audio (the first participant when ``participant`` is ``None``)."""
        ...

    def audio_output(self, sample_rate: int, num_channels: int) -> AudioOutput:
        """The agent's audio output, opened at the format of the first frame to play."""
        ...

    def publish_transcript(self, transcript: Transcript) -> None:
        """Publish a user or agent transcript (LiveKit: the ``lk.transcription`` topic)."""
        ...
