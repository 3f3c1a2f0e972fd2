"""flowkit in LiveKit rooms: a job's room, its room I/O, join tokens.

- :class:`LiveKitRoomIO`: the :class:`flowkit.room_io.RoomIO` of a LiveKit room (audio in and
  out, video in, transcripts, agent state, chat, DTMF, RPC, data);
- :func:`connect_job` / :class:`LiveKitJob`: make a :class:`flowkit.JobContext` a LiveKit
  job and join its room;
- :func:`room_token` / :class:`Credentials`: tokens for joining a room.

Call control lives in modules of its own, imported when used: :mod:`flowkit.livekit.calls`
(hang up, dial out, transfer, move a participant), :mod:`flowkit.livekit.hold` (hold music)
and :mod:`flowkit.livekit.warm_transfer` (brief a human agent, then hand them the call).
"""

from flowkit.livekit.audio import LiveKitAudioInput, LiveKitAudioOutput
from flowkit.livekit.job import AutoSubscribe, LiveKitJob, attach_job, connect_job
from flowkit.livekit.room_io import (
    ATTR_AGENT_STATE,
    TOPIC_CHAT,
    ChatMessage,
    LiveKitRoomIO,
    RpcHandler,
)
from flowkit.livekit.tokens import Credentials, room_token
from flowkit.livekit.transcripts import (
    ATTR_FINAL,
    ATTR_SEGMENT_ID,
    ATTR_TRACK_ID,
    TOPIC_TRANSCRIPTION,
)
from flowkit.livekit.video import LiveKitVideoInput

__all__ = [
    "ATTR_AGENT_STATE",
    "ATTR_FINAL",
    "ATTR_SEGMENT_ID",
    "ATTR_TRACK_ID",
    "TOPIC_CHAT",
    "TOPIC_TRANSCRIPTION",
    "AutoSubscribe",
    "ChatMessage",
    "Credentials",
    "LiveKitAudioInput",
    "LiveKitAudioOutput",
    "LiveKitJob",
    "LiveKitRoomIO",
    "LiveKitVideoInput",
    "RpcHandler",
    "attach_job",
    "connect_job",
    "room_token",
]
