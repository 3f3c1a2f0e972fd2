"""Room I/O: where a graph's room source hears audio and where its room sink plays it.

A graph names the room, not the transport: :class:`~flowkit.nodes.room.RoomSource` and
:class:`~flowkit.nodes.room.RoomSink` read and write through the :class:`RoomIO` of the job
they run for (``ctx.job.io``). An offline run binds them to WAV files; a LiveKit job binds them
to the room's tracks. The same graph runs in both.

What only some I/Os have is an optional protocol, checked with ``isinstance`` by the node
that needs it (:class:`PushAudioInput`, :class:`QueuedAudioOutput`,
:class:`SegmentedAudioOutput`, :class:`AvatarOutputs`, :class:`TrackOutputs`,
:class:`VideoInputSource`, :class:`DTMFInputSource`, :class:`DTMFOutput`,
:class:`ParticipantUpdates`, :class:`RpcMethods`), so an I/O written without it keeps
working.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Literal, Protocol, runtime_checkable

from livekit import rtc

from flowkit.messages import DTMFDigit, ParticipantUpdate, Transcript

__all__ = [
    "AudioInput",
    "AudioOutput",
    "AvatarOutputs",
    "DTMFInputSource",
    "DTMFOutput",
    "ParticipantUpdates",
    "PushAudioInput",
    "QueuedAudioOutput",
    "RoomIO",
    "RpcHandler",
    "RpcMethods",
    "SegmentedAudioOutput",
    "TrackOutputs",
    "VideoInputSource",
    "VideoSource",
]

VideoSource = Literal["camera", "screen_share"]
"""Where a participant's video comes from: their camera or their shared screen."""

RpcHandler = Callable[[rtc.RpcInvocationData], Awaitable[str] | str]
"""An RPC method: gets the call (caller identity, payload, ...), returns the response text."""


@runtime_checkable
class AudioInput(Protocol):
    """One participant's audio, as the room source asked for it."""

    def frames(self) -> AsyncIterator[rtc.AudioFrame]:
        """The audio, in the rate and channel count that was asked for; ends with the input."""
        ...


@runtime_checkable
class PushAudioInput(AudioInput, Protocol):
    """An audio input that can hand each frame to the graph where it arrives.

    Optional: :class:`~flowkit.nodes.room.RoomSource` uses :meth:`deliver` when the input has
    it, and :meth:`AudioInput.frames` otherwise. Delivering from the transport's own callback
    spares the room source a task wake-up per 20 ms frame, which adds up over hundreds of
    sessions in one process. A pushed frame cannot wait for a full ``BLOCK`` queue downstream
    (a live room does not slow down); it is kept and counted as an overflow.
    """

    async def deliver(self, on_frame: Callable[[rtc.AudioFrame], None]) -> None:
        """Call ``on_frame`` with every frame as it arrives, until the input ends.

        ``on_frame`` is synchronous; if it raises, delivery stops and ``deliver`` raises
        that error (the room source fails, and its error policy applies).
        """
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
class QueuedAudioOutput(AudioOutput, Protocol):
    """An audio output whose ``write`` returns before the frame is heard.

    Optional, like :class:`PushAudioInput`. LiveKit's ``rtc.AudioSource`` takes a frame into
    a playout queue (200 ms by default) and ``write`` returns once it is queued, so what was
    written runs ahead of what was heard by up to the queue's length. An output that says how
    much is queued lets :class:`~flowkit.nodes.room.RoomSink` report what was *heard*: a
    reply finishes when its last frame has played, not when it was queued; an interrupted
    reply's ``played_text`` leaves out the queued audio the barge-in dropped; a paused reply
    plays that audio again when it resumes. An output without it is taken to play each frame
    as ``write`` returns (a paced file or memory output).
    """

    @property
    def queued_seconds(self) -> float:
        """Seconds of audio written and not yet heard, now."""
        ...


@runtime_checkable
class SegmentedAudioOutput(AudioOutput, Protocol):
    """An audio output that wants to know where each reply's audio ends.

    Optional, like :class:`PushAudioInput`. :class:`~flowkit.nodes.room.RoomSink` calls
    :meth:`end_segment` once a reply's last frame is written. An avatar's output
    (:class:`flowkit.livekit.avatar.AvatarAudioOutput`) sends each reply as one stream,
    which the avatar plays out and reports on when it ends.
    """

    def end_segment(self) -> None:
        """The audio written so far ends a reply; what comes next starts another."""
        ...


@runtime_checkable
class AvatarOutputs(Protocol):
    """A room I/O whose agent voice an avatar participant can speak instead of a track.

    Optional, like :class:`PushAudioInput`: ``RoomSink(avatar="identity")`` opens
    :meth:`avatar_output` when the job's I/O has it (a LiveKit room), and the plain
    :meth:`RoomIO.audio_output` otherwise (an offline run, which has no avatar to send to).
    """

    def avatar_output(self, identity: str, sample_rate: int, num_channels: int) -> AudioOutput:
        """The agent's voice at this format, sent to the avatar participant ``identity``."""
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


@runtime_checkable
class TrackOutputs(Protocol):
    """A room I/O that can play audio on tracks of its own, beside the agent's voice.

    Optional, like :class:`PushAudioInput`: :class:`~flowkit.nodes.background.BackgroundAudio`
    plays on a track of this kind when the job's I/O has it. A LiveKit room publishes each
    track separately (listeners mix them); an offline run mixes them into the output file;
    :class:`~flowkit.testing.memory_io.MemoryIO` records each apart.
    """

    def track_output(self, name: str, sample_rate: int, num_channels: int) -> AudioOutput:
        """The audio track ``name`` at this format, opened on the first call for that name.

        Raises:
            ValueError: ``name`` is already open at another format.
        """
        ...


@runtime_checkable
class VideoInputSource(Protocol):
    """A room I/O that sees participants' video (LiveKit: their camera or screen share tracks).

    Optional, like :class:`TrackOutputs`: :class:`~flowkit.nodes.video.VideoInput` reads
    frames from an I/O of this kind, and sends nothing where the I/O has none.
    """

    def video_input(
        self, participant: str | None = None, source: VideoSource = "camera"
    ) -> AsyncIterator[rtc.VideoFrame]:
        """The participant's video frames, as they arrive, until the room closes.

        Args:
            participant: The identity to watch; ``None``: the participant the I/O is bound
                to, or the one its audio input hears, or the first.
            source: The camera or the shared screen.
        """
        ...


@runtime_checkable
class DTMFInputSource(Protocol):
    """A room I/O that hears telephone keypad presses (LiveKit: SIP DTMF data packets).

    Optional, like :class:`TrackOutputs`: :class:`~flowkit.nodes.dtmf.DTMFInput` reads
    presses from an I/O of this kind, and sends nothing where the I/O has none (an offline
    run: a WAV file has no keypad).
    """

    def dtmf_input(self, participant: str | None = None) -> AsyncIterator[DTMFDigit]:
        """Every key press, as it arrives, until the room closes.

        Args:
            participant: Only this identity's presses; ``None``: the presses of the
                participant the I/O is bound to (a participant job's), or everyone's when it
                is bound to none.
        """
        ...


@runtime_checkable
class DTMFOutput(Protocol):
    """A room I/O through which the agent can press keys itself (LiveKit: ``publish_dtmf``).

    Optional: an agent dialling through a phone menu (an IVR of a bank, say) sends its keys
    here; SIP participants of the room play them as tones on their line.
    """

    async def publish_dtmf(self, digit: str) -> None:
        """Press ``digit`` (one of :data:`~flowkit.messages.DTMF_DIGITS`) for the room.

        Raises:
            ValueError: ``digit`` is not a keypad key.
        """
        ...


@runtime_checkable
class ParticipantUpdates(Protocol):
    """A room I/O that follows a participant: present or gone, and their attributes.

    Optional: :class:`~flowkit.nodes.participant.ParticipantWatch` reads it, and sends
    nothing where the I/O has none (an offline run has no room). A LiveKit room gives its
    participants' attributes, among them a SIP call's state
    (:data:`~flowkit.messages.SIP_CALL_STATUS`).
    """

    def participant_updates(
        self, participant: str | None = None
    ) -> AsyncIterator[ParticipantUpdate]:
        """The participant as they are when first seen, then after every change, until the end.

        A change is a change of attributes, leaving (``present=False``) or coming back.
        Consecutive updates differ; the iterator ends when the room closes.

        Args:
            participant: The identity to follow; ``None``: the participant the I/O is
                bound to, or the one its audio input hears, or the first.
        """
        ...


@runtime_checkable
class RpcMethods(Protocol):
    """A room I/O whose participants can call methods on the agent (LiveKit: RPC).

    Optional: a node that answers calls (:class:`~flowkit.nodes.push_to_talk.PushToTalk`'s
    button) registers its methods here, and does without where the I/O has none (an
    offline run has nobody to call).
    """

    def register_rpc(self, name: str, handler: RpcHandler) -> None:
        """Let other participants call ``name`` on the agent; ``handler`` answers each call."""
        ...

    def unregister_rpc(self, name: str) -> None:
        """Remove the method ``name`` (nothing happens when there is none)."""
        ...
