"""Room video in LiveKit: a participant's camera or screen share, as ``rtc.VideoFrame`` s.

:class:`LiveKitVideoInput` reads one participant's video track of a source through
``rtc.VideoStream`` and follows them as the audio input does
(:class:`~flowkit.livekit.follow.TrackFollower`): a track that ends is replaced by the
participant's next one, and the input ends only when the room closes.

Frames come in the track's own buffer format (I420 from the SDK's decoder) and are not
converted here: a camera sends 15-30 frames a second and a vision model looks at one every
few seconds, so only the frames that are kept are converted, by
:func:`flowkit.images.encode_frame`.
"""

from __future__ import annotations

from collections.abc import Callable

from livekit import rtc

from flowkit.livekit.follow import TrackFollower, publication_of
from flowkit.livekit.watch import RoomWatch
from flowkit.room_io import VideoSource

__all__ = ["VIDEO_SOURCES", "LiveKitVideoInput", "video_publication"]

VIDEO_SOURCES: dict[str, int] = {
    "camera": rtc.TrackSource.SOURCE_CAMERA,
    "screen_share": rtc.TrackSource.SOURCE_SCREENSHARE,
}
"""The SDK's track source of each :data:`VideoSource`."""

# Frames the SDK holds for a reader that is behind; older ones are dropped. The reader keeps
# up (it only forwards frames), so this bounds memory only when the loop is starved.
_STREAM_CAPACITY = 4


def video_publication(
    participant: rtc.RemoteParticipant, source: VideoSource = "camera"
) -> rtc.RemoteTrackPublication | None:
    """The participant's video publication from ``source``, else their first video one."""
    return publication_of(participant, rtc.TrackKind.KIND_VIDEO, VIDEO_SOURCES[source])


class LiveKitVideoInput(TrackFollower[rtc.RemoteVideoTrack, rtc.VideoFrame]):
    """A participant's camera (or screen share), following them through leaving and coming back.

    Made by :meth:`flowkit.livekit.LiveKitRoomIO.video_input`.

    Args:
        watch: The room being followed.
        participant: The identity to watch; ``None`` for the first participant.
        source: Camera or screen share (a participant without one is watched through their
            other video track, if any).
        linked: Whom to prefer when ``participant`` is ``None``: the participant the audio
            input hears, so that the agent looks at whom it listens to.
        on_track: Told (identity, track sid) each time a track starts being read.

    Raises:
        ValueError: ``source`` is not one of :data:`VIDEO_SOURCES`.
    """

    def __init__(
        self,
        watch: RoomWatch,
        participant: str | None,
        source: VideoSource = "camera",
        *,
        linked: str | None = None,
        on_track: Callable[[str, str], None] | None = None,
    ) -> None:
        if source not in VIDEO_SOURCES:
            raise ValueError(
                f"video source {source!r} is not one of {sorted(VIDEO_SOURCES)}; "
                "use 'camera' or 'screen_share'"
            )
        self.source: VideoSource = source

        def pick(participant: rtc.RemoteParticipant) -> rtc.RemoteTrackPublication | None:
            return video_publication(participant, source)

        def open_stream(track: rtc.RemoteVideoTrack) -> rtc.VideoStream:
            return rtc.VideoStream(track, capacity=_STREAM_CAPACITY)

        super().__init__(
            watch, participant, pick, rtc.RemoteVideoTrack, open_stream, on_track, linked
        )
