"""How a :class:`~flowkit.messages.Transcript` becomes a LiveKit transcription text stream.

LiveKit clients (the agents playground, ``@livekit/components``) read transcriptions as text
streams on topic ``lk.transcription``, one stream per update, with attributes:

- ``lk.segment_id``: the segment the text belongs to. Interim transcripts of one utterance and
  the final one that ends it share an id; the next transcript of that speaker starts a new one.
  The agent's transcripts are final (a sentence as it starts playing), so each is a segment.
- ``lk.transcribed_track_id``: the audio track the text transcribes (the user's microphone,
  or the agent's own track), when it is known;
- ``lk.transcription_final``: ``"true"`` or ``"false"``.

Each update carries the segment's whole text so far (not a delta), and a user's transcript is
sent on the user's behalf (the stream's sender identity is the user), as LiveKit Agents does.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from flowkit.messages import Transcript

__all__ = [
    "AGENT_SPEAKER",
    "ATTR_FINAL",
    "ATTR_SEGMENT_ID",
    "ATTR_TRACK_ID",
    "TOPIC_TRANSCRIPTION",
    "TranscriptPacket",
    "TranscriptSegments",
    "new_segment_id",
]

TOPIC_TRANSCRIPTION = "lk.transcription"
ATTR_SEGMENT_ID = "lk.segment_id"
ATTR_TRACK_ID = "lk.transcribed_track_id"
ATTR_FINAL = "lk.transcription_final"

AGENT_SPEAKER = "agent"
"""The ``Transcript.speaker`` of the agent's own speech."""


def new_segment_id() -> str:
    """A fresh segment id (``SG_`` and 12 hex digits, LiveKit Agents' shape)."""
    return "SG_" + secrets.token_hex(6)


@dataclass(frozen=True, slots=True)
class TranscriptPacket:
    """One text stream to send on ``lk.transcription``.

    Attributes:
        text: The segment's text so far.
        attributes: The stream's attributes (segment id, final, track id when known).
        sender_identity: Whose words these are when not the agent's (the stream is sent on
            their behalf); ``None`` for the agent.
    """

    text: str
    attributes: dict[str, str]
    sender_identity: str | None


class TranscriptSegments:
    """Gives each speaker's transcripts stable segment ids and LiveKit's attributes.

    Args:
        new_id: Makes a segment id (tests pass a counter).
    """

    def __init__(self, new_id: Callable[[], str] = new_segment_id) -> None:
        self._new_id = new_id
        self._open: dict[str, str] = {}  # speaker -> the id of their unfinished segment

    def packet(
        self, transcript: Transcript, speaker: str, track_id: str | None
    ) -> TranscriptPacket:
        """The text stream for ``transcript``.

        Args:
            transcript: The transcript to send.
            speaker: Who spoke: a participant identity, or :data:`AGENT_SPEAKER` (the caller
                resolves a generic ``"user"`` to the identity it hears).
            track_id: The sid of the audio track transcribed, if known.
        """
        segment = self._open.pop(speaker, None) or self._new_id()
        if not transcript.final:
            self._open[speaker] = segment  # later interims and the final one continue it
        attributes = {
            ATTR_SEGMENT_ID: segment,
            ATTR_FINAL: "true" if transcript.final else "false",
        }
        if track_id:
            attributes[ATTR_TRACK_ID] = track_id
        sender = None if speaker == AGENT_SPEAKER else speaker
        return TranscriptPacket(transcript.text, attributes, sender)
