"""Following one participant's track of a kind through the room's changes.

A room input (a microphone, a camera) must outlive the track it reads: the participant may
unpublish it and publish another, leave and come back, or give way to someone else.
:class:`TrackFollower` waits for the track it is told to pick, reads it through the SDK's
stream until the track goes away, then waits for the next one. It ends only when the room
closes. :class:`~flowkit.livekit.audio.LiveKitAudioInput` and
:class:`~flowkit.livekit.video.LiveKitVideoInput` are followers of audio and of video.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, Protocol, TypeVar

from livekit import rtc

from flowkit.livekit.watch import RoomWatch

__all__ = [
    "FrameStream",
    "PickPublication",
    "TrackFollower",
    "choose_participant",
    "publication_of",
]

logger = logging.getLogger("flowkit.livekit")

FrameT = TypeVar("FrameT")
TrackT = TypeVar("TrackT", bound=rtc.RemoteTrack)

_CLOSE_TIMEOUT_S = 5.0

PickPublication = Callable[[rtc.RemoteParticipant], "rtc.RemoteTrackPublication | None"]
"""Which of a participant's publications a follower reads (``None``: none of them)."""


class FrameStream(Protocol):
    """What a follower reads a track through: an SDK stream (``rtc.AudioStream``, ...)."""

    def __aiter__(self) -> AsyncIterator[Any]:
        """Events with a ``frame``, until the stream ends."""
        ...

    async def aclose(self) -> None:
        """Release the stream."""
        ...


def publication_of(
    participant: rtc.RemoteParticipant, kind: rtc.TrackKind.ValueType, source: int
) -> rtc.RemoteTrackPublication | None:
    """The participant's publication of ``kind`` from ``source``, else their first of ``kind``.

    Args:
        participant: Whose publications to look at.
        kind: Audio or video.
        source: The preferred source (``rtc.TrackSource``: microphone, camera, ...).
    """
    of_kind = [pub for pub in participant.track_publications.values() if pub.kind == kind]
    preferred = [pub for pub in of_kind if pub.source == source]
    found = preferred or of_kind
    return found[0] if found else None


def _publishes_audio(participant: rtc.RemoteParticipant) -> bool:
    return any(
        pub.kind == rtc.TrackKind.KIND_AUDIO for pub in participant.track_publications.values()
    )


def choose_participant(
    room: rtc.Room, want: str | None, linked: str | None = None
) -> rtc.RemoteParticipant | None:
    """Whom a room input follows now.

    Args:
        room: The room.
        want: An identity to follow, and only them; ``None`` for "the first participant".
        linked: Whom the input followed last; kept while they stay in the room.

    Returns:
        ``want`` when in the room; otherwise ``linked`` when still there; otherwise the first
        participant (in joining order) that is not an agent and publishes audio, or the first
        that is not an agent; ``None`` when there is nobody.
    """
    people = room.remote_participants
    if want is not None:
        return people.get(want)
    if linked is not None and linked in people:
        return people[linked]
    humans = [p for p in people.values() if p.kind != rtc.ParticipantKind.PARTICIPANT_KIND_AGENT]
    speaking = [p for p in humans if _publishes_audio(p)]
    found = speaking or humans
    return found[0] if found else None


class TrackFollower(Generic[TrackT, FrameT]):
    """One participant's track of a kind, read track after track until the room closes.

    Args:
        watch: The room being followed.
        participant: The identity to follow; ``None`` for the first participant (then kept
            while they stay).
        pick: Which of the participant's publications to read.
        track_type: The SDK's remote track class of that kind (a publication whose track is
            not one yet is not subscribed yet).
        open_stream: Opens the SDK stream that reads a track.
        on_track: Told (identity, track sid) each time a track starts being read.
        linked: Whom to prefer when ``participant`` is ``None`` (the participant another
            input of the same room already follows).
    """

    def __init__(
        self,
        watch: RoomWatch,
        participant: str | None,
        pick: PickPublication,
        track_type: type[TrackT],
        open_stream: Callable[[TrackT], FrameStream],
        on_track: Callable[[str, str], None] | None = None,
        linked: str | None = None,
    ) -> None:
        self._watch = watch
        self.participant = participant
        self._pick = pick
        self._track_type = track_type
        self._open_stream = open_stream
        self._on_track = on_track
        self.heard: str | None = linked  # the identity followed last

    def frames(self) -> AsyncIterator[FrameT]:
        """The participant's frames, track after track; ends when the room closes."""
        return self._read()

    async def _read(self) -> AsyncIterator[FrameT]:
        while (found := await self._next_track()) is not None:
            participant, publication, track = found
            self.heard = participant.identity
            if self._on_track is not None:
                self._on_track(participant.identity, publication.sid)
            logger.debug("reading %s (track %s)", participant.identity, publication.sid)
            async for frame in self._track_frames(participant, publication, track):
                yield frame
            logger.debug("track %s of %s ended", publication.sid, participant.identity)

    async def _next_track(
        self,
    ) -> tuple[rtc.RemoteParticipant, rtc.RemoteTrackPublication, TrackT] | None:
        watch = self._watch
        while not watch.closed:
            participant = choose_participant(watch.room, self.participant, self.heard)
            publication = None if participant is None else self._pick(participant)
            if participant is not None and publication is not None:
                track = publication.track
                if isinstance(track, self._track_type):
                    return participant, publication, track
                if not publication.subscribed:  # the room joined without auto-subscribe
                    publication.set_subscribed(True)
            await watch.changed()
        return None

    def _live(
        self,
        participant: rtc.RemoteParticipant,
        publication: rtc.RemoteTrackPublication,
        track: TrackT,
    ) -> bool:
        watch = self._watch
        return (
            not watch.closed
            and watch.room.remote_participants.get(participant.identity) is participant
            and participant.track_publications.get(publication.sid) is publication
            and publication.track is track
        )

    async def _track_frames(
        self,
        participant: rtc.RemoteParticipant,
        publication: rtc.RemoteTrackPublication,
        track: TrackT,
    ) -> AsyncIterator[FrameT]:
        stream = self._open_stream(track)
        # One queue fed by the stream and ended by whichever comes first: the stream's end
        # or the track going away (the SDK does not always end a stream when that happens).
        frames: asyncio.Queue[FrameT | None] = asyncio.Queue()

        async def pump() -> None:
            try:
                async for event in stream:
                    frames.put_nowait(event.frame)
            finally:
                frames.put_nowait(None)

        async def watch_track() -> None:
            while self._live(participant, publication, track):
                await self._watch.changed()
            frames.put_nowait(None)

        tasks = [
            asyncio.create_task(pump(), name=f"frames of {publication.sid}"),
            asyncio.create_task(watch_track(), name=f"watch {publication.sid}"),
        ]
        try:
            while (frame := await frames.get()) is not None:
                yield frame
        finally:
            for task in tasks:
                task.cancel()
            # asyncio.timeout, not wait_for: on Python 3.11, wait_for returns normally when
            # its task is cancelled just as the awaited close completes, and the cancellation
            # is lost. Here that happens when a job ends as its participant leaves: this
            # generator would then wait for the participant's next track, the room source's
            # task would never end, and neither would the job's graph.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                    await stream.aclose()
