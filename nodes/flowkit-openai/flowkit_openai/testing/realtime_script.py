"""What the test Realtime server says: scripted replies, its tone, and its event shapes.

Kept apart from the server itself (:mod:`.realtime_server`) so a test can build replies and
read the event shapes without starting anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = ["SAMPLE_RATE", "ScriptedReply", "error_event", "tone"]

SAMPLE_RATE = 24_000
"""The Realtime API's PCM16 rate, both ways."""


def tone(ms: int, *, hz: float = 220.0, level: float = 0.3) -> bytes:
    """``ms`` milliseconds of a sine tone as 24 kHz mono PCM16 (what the fake model "says")."""
    t = np.arange(SAMPLE_RATE * ms // 1000) / SAMPLE_RATE
    return (np.sin(2 * np.pi * hz * t) * level * 32767).astype("<i2").tobytes()


@dataclass(frozen=True, slots=True)
class ScriptedReply:
    """One response of the fake model.

    Attributes:
        text: The transcript of its speech, sent word by word beside the audio (in a
            text-only session, its text, word by word, and no audio); ``{output}``
            is replaced by the output of the last ``function_call_output`` item (so a
            reply can use a tool's result). Empty: no message item.
        audio_ms: Duration of the tone it speaks (ignored when ``pcm`` is given).
        pcm: The speech itself, 24 kHz mono PCM16.
        tool_call: ``(name, arguments JSON)``: a ``function_call`` item after the speech.
        status: ``completed``, or ``failed`` (``response.done`` with an error in
            ``status_details``, as the API reports a failed generation).
    """

    text: str = "Hello from the test server."
    audio_ms: int = 1000
    pcm: bytes | None = None
    tool_call: tuple[str, str] | None = None
    status: Literal["completed", "failed"] = "completed"

    def speech(self) -> bytes:
        """The PCM it speaks (nothing when it has no text)."""
        if not self.text:
            return b""
        return self.pcm if self.pcm is not None else tone(self.audio_ms)


def error_event(
    event_id: str,
    kind: str,
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    caused_by: str | None = None,
) -> dict[str, Any]:
    """An ``error`` server event, shaped as the Realtime API sends it.

    Args:
        event_id: The server event's own id.
        kind: ``error.type``: ``invalid_request_error``, ``server_error``, ...
        message: ``error.message``.
        code: ``error.code``.
        param: ``error.param``: the parameter at fault.
        caused_by: ``error.event_id``: the id of the client event at fault.
    """
    return {
        "type": "error",
        "event_id": event_id,
        "error": {
            "type": kind,
            "code": code,
            "message": message,
            "param": param,
            "event_id": caused_by,
        },
    }
