"""Conversation messages: the payloads that travel on a graph's edges.

Audio travels as :class:`livekit.rtc.AudioFrame` itself; everything else a voice agent says
about a conversation is one of the small immutable classes below. They are frozen, slotted
dataclasses (cheap to create, safe to share between branches of a fan-out) and every one
carries a ``turn_id``: the conversation's epoch. A new user turn or an interruption bumps
the epoch, so a node downstream can drop output of a stale turn by comparing ids instead of
tracking cancellations.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AgentState",
    "AgentStateKind",
    "Interrupt",
    "Message",
    "Metrics",
    "TextChunk",
    "ToolCall",
    "ToolResult",
    "Transcript",
    "UserState",
    "UserStateKind",
    "UserTurn",
    "VADEvent",
    "VADEventKind",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """Base of every conversation message.

    Attributes:
        turn_id: The conversation epoch this message belongs to. ``0`` before the first turn.
    """

    turn_id: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Transcript(Message):
    """Text recognised from speech, interim or final.

    Attributes:
        text: The recognised text.
        final: ``False`` for an interim hypothesis that may still change.
        speaker: Who spoke: a participant identity, or ``"agent"`` for the agent's own speech.
        language: BCP-47 language code when the recogniser reports one.
        confidence: The recogniser's confidence in ``[0, 1]``, when reported.
        start_time: Seconds from the start of the stream to the first word.
        end_time: Seconds from the start of the stream to the end of the last word.
    """

    text: str
    final: bool = True
    speaker: str = "user"
    language: str | None = None
    confidence: float | None = None
    start_time: float = 0.0
    end_time: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class UserTurn(Message):
    """A committed user turn: what the user said, ready for the LLM.

    Attributes:
        text: The whole turn's text.
        speaker: The participant identity of the speaker.
        interrupted_agent: ``True`` when the turn began while the agent was speaking.
    """

    text: str
    speaker: str = "user"
    interrupted_agent: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class TextChunk(Message):
    """A piece of the agent's reply text, streamed from the LLM toward TTS.

    Attributes:
        text: The text delta.
        final: ``True`` on the last chunk of the reply (its text may be empty).
    """

    text: str
    final: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCall(Message):
    """A function call requested by the LLM.

    Attributes:
        call_id: The provider's id for this call, echoed back in the result.
        name: The tool's name.
        arguments: The arguments as a JSON object text, as the LLM produced them.
    """

    call_id: str
    name: str
    arguments: str = "{}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolResult(Message):
    """The outcome of one :class:`ToolCall`, sent back to the LLM.

    Attributes:
        call_id: The id of the call this answers.
        name: The tool's name.
        output: The tool's return value as text (JSON for structured values).
        is_error: ``True`` when ``output`` describes an error for the LLM to see.
    """

    call_id: str
    name: str
    output: str
    is_error: bool = False


class VADEventKind(enum.StrEnum):
    """What a voice activity detector saw."""

    START_OF_SPEECH = "start_of_speech"
    END_OF_SPEECH = "end_of_speech"


@dataclass(frozen=True, slots=True, kw_only=True)
class VADEvent(Message):
    """Start or end of speech in an audio stream.

    Attributes:
        kind: Start or end of speech.
        timestamp: Seconds from the start of the stream at which the event was decided.
        speech_duration: Seconds of speech so far (for an end: the whole utterance).
        silence_duration: Seconds of silence that led to an end of speech.
        speaker: The participant identity whose audio this is.
    """

    kind: VADEventKind
    timestamp: float = 0.0
    speech_duration: float = 0.0
    silence_duration: float = 0.0
    speaker: str = "user"


@dataclass(frozen=True, slots=True, kw_only=True)
class Interrupt(Message):
    """Stop the agent's current reply now (barge-in, or an explicit request from code).

    Attributes:
        reason: Why: ``"barge_in"``, ``"new_turn"``, ``"manual"``, ...
    """

    reason: str = "barge_in"


class AgentStateKind(enum.StrEnum):
    """The agent's conversational state, as LiveKit's ``lk.agent.state`` attribute names it."""

    INITIALIZING = "initializing"
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentState(Message):
    """The agent changed state.

    Attributes:
        state: The new state.
    """

    state: AgentStateKind


class UserStateKind(enum.StrEnum):
    """The user's conversational state."""

    SPEAKING = "speaking"
    LISTENING = "listening"
    AWAY = "away"


@dataclass(frozen=True, slots=True, kw_only=True)
class UserState(Message):
    """The user changed state.

    Attributes:
        state: The new state.
        speaker: The participant identity.
    """

    state: UserStateKind
    speaker: str = "user"


@dataclass(frozen=True, slots=True, kw_only=True)
class Metrics(Message):
    """Figures a provider node measured for one request (time to first token, ...).

    Attributes:
        kind: What was measured: ``"stt"``, ``"llm"``, ``"tts"``, ``"vad"``, ...
        node: The name of the node that measured it.
        values: Named figures; durations are in seconds.
    """

    kind: str
    node: str = ""
    values: Mapping[str, float] = field(default_factory=dict)
    labels: Mapping[str, Any] = field(default_factory=dict)
