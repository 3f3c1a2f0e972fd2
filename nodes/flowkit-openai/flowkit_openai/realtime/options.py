"""What a realtime session is configured with, and the ``session.update`` that says so.

Turn detection is the server's: :class:`ServerVAD` (voice activity by energy and a model
threshold, the API's default) or :class:`SemanticVAD` (a model judges whether the user has
finished). Both are frozen pydantic models, so they validate when the node is built and show
in the graph's spec. :class:`SessionSettings` holds everything else that goes into
``session.update``; the instructions and tools are passed separately because a handoff
changes them mid-session.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pydantic
from openai.types.realtime.realtime_function_tool_param import RealtimeFunctionToolParam

from flowkit.providers.chat import ToolSpec

__all__ = [
    "SAMPLE_RATE",
    "OutputModality",
    "SemanticVAD",
    "ServerVAD",
    "SessionSettings",
    "TurnDetection",
    "tool_param",
]

SAMPLE_RATE = 24_000
"""The rate of the PCM16 mono audio the Realtime API takes and sends (``audio/pcm``)."""

_FROZEN = pydantic.ConfigDict(frozen=True, extra="forbid")


class ServerVAD(pydantic.BaseModel):
    """Server-side voice activity detection: speech starts above a level, ends after silence.

    Attributes:
        threshold: Activation threshold, 0 to 1; higher needs louder speech (noisy rooms).
        prefix_padding_ms: Audio kept before the detected start of speech.
        silence_duration_ms: Silence that ends the user's turn; shorter answers sooner
            but may cut in on a pause.
        create_response: Answer automatically when the user's turn ends.
        interrupt_response: Cancel the model's reply when the user starts speaking; the
            node then also flushes the audio still playing (barge-in).
        idle_timeout_ms: Prompt the model to speak after this much silence from the user
            (phone calls); ``None`` never does.
    """

    model_config = _FROZEN

    type: Literal["server_vad"] = "server_vad"
    threshold: float = pydantic.Field(default=0.5, ge=0.0, le=1.0)
    prefix_padding_ms: int = pydantic.Field(default=300, ge=0, le=10_000)
    silence_duration_ms: int = pydantic.Field(default=500, ge=0, le=10_000)
    create_response: bool = True
    interrupt_response: bool = True
    idle_timeout_ms: int | None = pydantic.Field(default=None, ge=1)

    def to_api(self) -> dict[str, Any]:
        """The ``audio.input.turn_detection`` object of ``session.update``."""
        return self.model_dump(exclude_none=True)


class SemanticVAD(pydantic.BaseModel):
    """Server-side semantic turn detection: a model decides when the user has finished.

    Attributes:
        eagerness: How soon the model answers: ``low`` waits longest (up to 8 s),
            ``high`` answers quickest (2 s); ``auto`` is ``medium`` (4 s).
        create_response: Answer automatically when the user's turn ends.
        interrupt_response: Cancel the model's reply when the user starts speaking (and
            flush the audio still playing).
    """

    model_config = _FROZEN

    type: Literal["semantic_vad"] = "semantic_vad"
    eagerness: Literal["low", "medium", "high", "auto"] = "auto"
    create_response: bool = True
    interrupt_response: bool = True

    def to_api(self) -> dict[str, Any]:
        """The ``audio.input.turn_detection`` object of ``session.update``."""
        return self.model_dump()


TurnDetection = ServerVAD | SemanticVAD
"""The turn detection a session may use; ``None`` in its place turns it off."""

OutputModality = Literal["audio", "text"]
"""What the model answers in: speech (with its transcript), or text only. The API's
``output_modalities`` takes one of them, not both."""


def tool_param(spec: ToolSpec) -> RealtimeFunctionToolParam:
    """A flowkit tool description as a Realtime ``session.tools`` entry.

    The Realtime API takes the function's fields flat (``{"type": "function", "name", ...}``),
    not nested under ``"function"`` as Chat Completions does.
    """
    return {
        "type": "function",
        "name": spec.name,
        "description": spec.description,
        "parameters": dict(spec.parameters),
    }


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """The session's settings apart from its instructions and tools.

    Attributes:
        model: The realtime model (also sent in the connection URL).
        voice: The voice the model speaks with.
        turn_detection: Server turn detection, or ``None`` (turns are committed by the node's
            ``commit`` input).
        transcription_model: The model that transcribes the user's audio, or ``None`` for
            no user transcripts.
        speed: Speaking speed (0.25 to 1.5), sent only when set.
        max_output_tokens: The most tokens a response may have, ``None`` for no limit.
        noise_reduction: ``near_field`` (headsets) or ``far_field`` (laptops, rooms)
            filtering of the input, or ``None``.
        output_modality: ``audio`` (speech and its transcript) or ``text`` (text only).
    """

    model: str
    voice: str
    turn_detection: TurnDetection | None
    transcription_model: str | None
    speed: float | None = None
    max_output_tokens: int | None = None
    noise_reduction: Literal["near_field", "far_field"] | None = None
    output_modality: OutputModality = "audio"

    def payload(
        self, instructions: str, tools: Sequence[ToolSpec], tool_choice: str
    ) -> dict[str, Any]:
        """The ``session`` object of a ``session.update`` event.

        Args:
            instructions: The system instructions.
            tools: The functions the model may call.
            tool_choice: ``auto``, ``none``, ``required`` or one tool's name.
        """
        pcm = {"type": "audio/pcm", "rate": SAMPLE_RATE}
        audio_in: dict[str, Any] = {
            "format": pcm,
            "turn_detection": (
                self.turn_detection.to_api() if self.turn_detection is not None else None
            ),
        }
        if self.transcription_model is not None:
            audio_in["transcription"] = {"model": self.transcription_model}
        if self.noise_reduction is not None:
            audio_in["noise_reduction"] = {"type": self.noise_reduction}
        audio_out: dict[str, Any] = {"format": pcm, "voice": self.voice}
        if self.speed is not None:
            audio_out["speed"] = self.speed
        session: dict[str, Any] = {
            "type": "realtime",
            "model": self.model,
            "output_modalities": [self.output_modality],
            "instructions": instructions,
            "audio": {"input": audio_in, "output": audio_out},
            "tools": [tool_param(spec) for spec in tools],
            "tool_choice": _tool_choice(tool_choice, tools),
        }
        if self.max_output_tokens is not None:
            session["max_output_tokens"] = self.max_output_tokens
        return session


def _tool_choice(choice: str, tools: Sequence[ToolSpec]) -> Any:
    if not tools:
        return "auto"
    if choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "name": choice}
