"""Room audio in LiveKit: a participant's microphone in, the agent's tracks out.

:class:`LiveKitAudioInput` hears one participant through ``rtc.AudioStream`` at the rate the
room source asked for, and follows them (:class:`~flowkit.livekit.follow.TrackFollower`): it
waits for their audio track, and when the track ends (unpublished, unsubscribed, the
participant left) it waits for the next one, of the same participant while they stay in the
room, or of whoever it picks next. It ends only when the room closes.

:class:`LiveKitAudioOutput` is an ``rtc.AudioSource`` behind one ``LocalAudioTrack``,
published on the first write: the agent's voice, or another track of its own (background
sound). ``write`` queues audio in the SDK's playout queue and returns once it is queued, so a
writer runs at most the queue's length ahead of what is heard; ``queued_seconds`` says how far
(:class:`~flowkit.room_io.QueuedAudioOutput`), which the room sink takes off what it reports
as heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from livekit import rtc

from flowkit.livekit.follow import TrackFollower, publication_of
from flowkit.livekit.watch import RoomWatch
from flowkit.ports import AudioFormat

__all__ = [
    "LiveKitAudioInput",
    "LiveKitAudioOutput",
    "audio_publication",
    "capture_when_ready",
]

logger = logging.getLogger("flowkit.livekit")

# Audio is handed to the source in pieces of at most this long: a barge-in's clear_queue()
# then drops everything not yet heard, since no bigger frame is still being pushed.
_PIECE_MS = 20


# How long capture_when_ready waits, at most, for the source to take a frame again.
_CAPTURE_WAIT_S = 1.0
_CAPTURE_RETRY_S = 0.01  # the source's own tick: it takes 10 ms of its queue at a time


async def capture_when_ready(source: rtc.AudioSource, frame: rtc.AudioFrame) -> None:
    """``source.capture_frame(frame)``, waiting while the source cannot take a frame yet.

    The SDK refuses a frame (``InvalidState``) while the capture before it is pending: its
    completion comes with the source's next 10 ms tick, and a write cancelled while it
    waited (a barge-in stops the speaker mid-frame, then ``clear_queue()``) leaves it
    pending for that long. The next reply's first frame then comes within the tick, and
    under load the tick comes late. Refused, the frame is offered again every 10 ms, for
    up to a second, before the error is raised.

    Raises:
        Exception: The SDK's error, when the source still refuses the frame after the wait
            (the source was closed, or the frame is malformed).
    """
    deadline: float | None = None  # set at the first refusal: no clock read per frame
    while True:
        try:
            await source.capture_frame(frame)
            return
        except Exception as exc:
            # The SDK raises a bare Exception naming the error type (livekit.rtc 1.x).
            if "InvalidState" not in str(exc):
                raise
            now = asyncio.get_running_loop().time()
            if deadline is None:
                deadline = now + _CAPTURE_WAIT_S
            elif now >= deadline:
                raise
        await asyncio.sleep(_CAPTURE_RETRY_S)


def audio_publication(participant: rtc.RemoteParticipant) -> rtc.RemoteTrackPublication | None:
    """The participant's microphone publication, else their first audio one, else ``None``."""
    return publication_of(participant, rtc.TrackKind.KIND_AUDIO, rtc.TrackSource.SOURCE_MICROPHONE)


class LiveKitAudioInput(TrackFollower[rtc.RemoteAudioTrack, rtc.AudioFrame]):
    """A participant's audio, following them through leaving and coming back.

    Made by :meth:`flowkit.livekit.LiveKitRoomIO.audio_input`.

    Args:
        watch: The room being followed.
        fmt: The format to deliver (the SDK resamples and mixes).
        participant: The identity to hear; ``None`` for the first participant.
        frame_size_ms: The frames' duration; ``None`` for the SDK's (10 ms).
        on_track: Told (identity, track sid) each time a track starts being heard.
        held: Whether the participant is on hold now: each frame is then delivered as
            silence of the same length (see :meth:`LiveKitRoomIO.set_on_hold
            <flowkit.livekit.LiveKitRoomIO.set_on_hold>`).
    """

    def __init__(
        self,
        watch: RoomWatch,
        fmt: AudioFormat,
        participant: str | None,
        frame_size_ms: int | None = None,
        on_track: Callable[[str, str], None] | None = None,
        held: Callable[[], bool] | None = None,
    ) -> None:
        self.format = fmt
        self._held = held

        def open_stream(track: rtc.RemoteAudioTrack) -> rtc.AudioStream:
            return rtc.AudioStream(
                track,
                sample_rate=fmt.sample_rate,
                num_channels=fmt.num_channels,
                frame_size_ms=frame_size_ms,
            )

        super().__init__(
            watch, participant, audio_publication, rtc.RemoteAudioTrack, open_stream, on_track
        )

    def frames(self) -> AsyncIterator[rtc.AudioFrame]:
        """The participant's frames, silenced while on hold; ends when the room closes."""
        heard = super().frames()
        return heard if self._held is None else self._silenced(heard, self._held)

    @staticmethod
    async def _silenced(
        heard: AsyncIterator[rtc.AudioFrame], held: Callable[[], bool]
    ) -> AsyncIterator[rtc.AudioFrame]:
        # Silence, not nothing: the clock of the graph's audio goes on, so a VAD hears the
        # speech that was going on end, and no turn is left open for the hold's length.
        async for frame in heard:
            if held():
                frame = rtc.AudioFrame.create(
                    frame.sample_rate, frame.num_channels, frame.samples_per_channel
                )
            yield frame


class LiveKitAudioOutput:
    """An audio track of the agent: one ``rtc.AudioSource`` and its ``LocalAudioTrack``.

    Made by :meth:`flowkit.livekit.LiveKitRoomIO.audio_output` (the agent's voice) and
    :meth:`~flowkit.livekit.LiveKitRoomIO.track_output` (other tracks). The track is published
    on the first write (after the room is connected) and stays published until
    :meth:`release`; :meth:`aclose` only waits for the audio written to be played.

    Args:
        room: The room to publish in.
        fmt: The output's format.
        ready: Waits until the room is connected.
        track_name: The published track's name.
        queue_ms: The SDK's playout queue: how far ``write`` may run ahead of what is heard.
        subscription_timeout: How long the first write waits for someone to subscribe to the
            track (so a greeting is not spoken into nobody's ears); ``0``: do not wait.
        track_source: The source the track is published as: ``SOURCE_MICROPHONE`` for the
            agent's voice (LiveKit clients look for the agent's microphone track);
            ``SOURCE_UNKNOWN`` for any other track, so that they keep finding the voice.
    """

    def __init__(
        self,
        room: rtc.Room,
        fmt: AudioFormat,
        ready: Callable[[], Awaitable[None]],
        *,
        track_name: str = "agent-audio",
        queue_ms: int = 200,
        subscription_timeout: float = 3.0,
        track_source: rtc.TrackSource.ValueType = rtc.TrackSource.SOURCE_MICROPHONE,
    ) -> None:
        self.format = fmt
        self.track_name = track_name
        self.track_source = track_source
        self._room = room
        self._ready = ready
        self._subscription_timeout = subscription_timeout
        self.source = rtc.AudioSource(fmt.sample_rate, fmt.num_channels, queue_size_ms=queue_ms)
        self.track = rtc.LocalAudioTrack.create_audio_track(track_name, self.source)
        self.publication: rtc.LocalTrackPublication | None = None
        self._publishing: asyncio.Task[None] | None = None
        self._piece = fmt.sample_rate * _PIECE_MS // 1000
        # Seconds of the write in progress already handed to the source: a write cancelled
        # midway (a barge-in) leaves them queued, but its caller holds the frame as unwritten.
        self._partial = 0.0
        self.released = False

    @property
    def paced(self) -> bool:
        """Always ``True``: ``write`` returns once the SDK's playout queue takes the frame."""
        return True

    @property
    def queued_seconds(self) -> float:
        """Seconds of audio written and not yet heard: in the SDK's playout queue.

        The part of a write still in progress (or cancelled midway) is left out: its
        caller has not been told it was written, and writes it again whole.
        """
        return max(self.source.queued_duration - self._partial, 0.0)

    @property
    def track_sid(self) -> str | None:
        """The published track's sid (``None`` before the first write publishes it)."""
        return None if self.publication is None else self.publication.sid

    async def publish(self) -> None:
        """Publish the track now (the first write does it otherwise); safe to call again."""
        if self._publishing is None:
            self._publishing = asyncio.create_task(
                self._publish(), name=f"publish {self.track_name}"
            )
        task = self._publishing
        try:
            await asyncio.shield(task)
        except Exception:
            if task.done() and self._publishing is task:
                self._publishing = None  # the next write tries again
            raise

    async def write(self, frame: rtc.AudioFrame) -> None:
        """Queue ``frame`` for playout; return once the SDK's queue has taken it.

        Raises:
            ValueError: The frame's format is not the output's.
            RuntimeError: The output was released.
        """
        if self.released:
            raise RuntimeError(
                f"LiveKitAudioOutput {self.track_name!r}: write() after release(); open "
                "another output with LiveKitRoomIO.audio_output() (or track_output())"
            )
        have = AudioFormat(frame.sample_rate, frame.num_channels)
        if have != self.format:
            raise ValueError(
                f"the agent's audio track {self.track_name!r} was opened at {self.format} "
                f"but got a {have} frame; resample the agent's audio to {self.format} before "
                "writing it"
            )
        await self.publish()
        count = frame.samples_per_channel
        # capture_frame queues a piece before its first await, so a piece counts as queued
        # as soon as it is handed over, even if the write is cancelled while it waits.
        if count <= self._piece:
            self._partial = count / frame.sample_rate
            await capture_when_ready(self.source, frame)
            self._partial = 0.0
            return
        data = frame.data  # int16, interleaved
        step = self._piece * frame.num_channels
        self._partial = 0.0
        for start in range(0, count * frame.num_channels, step):
            chunk = data[start : start + step]
            piece = len(chunk) // frame.num_channels
            self._partial += piece / frame.sample_rate
            await capture_when_ready(
                self.source,
                rtc.AudioFrame(chunk.tobytes(), frame.sample_rate, frame.num_channels, piece),
            )
        self._partial = 0.0

    def clear(self) -> None:
        """Drop the audio queued but not yet played (barge-in)."""
        self.source.clear_queue()
        self._partial = 0.0

    async def aclose(self) -> None:
        """Wait until the audio written has been played; the track stays published."""
        if not self.released:
            await self.source.wait_for_playout()

    async def release(self) -> None:
        """Unpublish the track and free the source (when the job ends)."""
        if self.released:
            return
        self.released = True
        if self._publishing is not None and not self._publishing.done():
            self._publishing.cancel()
        if self.publication is not None and self._room.isconnected():
            with contextlib.suppress(Exception):  # the room may be going away under us
                await self._room.local_participant.unpublish_track(self.publication.sid)
        await self.source.aclose()

    async def _publish(self) -> None:
        await self._ready()
        options = rtc.TrackPublishOptions(source=self.track_source)
        self.publication = await self._room.local_participant.publish_track(self.track, options)
        logger.debug("published audio track %r (%s)", self.track_name, self.publication.sid)
        if self._subscription_timeout > 0:
            try:
                # Not wait_for, which can lose a cancellation on Python 3.11 (see _track_frames).
                async with asyncio.timeout(self._subscription_timeout):
                    await self.publication.wait_for_subscription()
            except TimeoutError:
                logger.debug(
                    "nobody subscribed to audio track %r within %.1f s; playing anyway",
                    self.track_name,
                    self._subscription_timeout,
                )
