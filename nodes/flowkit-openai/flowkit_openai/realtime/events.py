"""The server events the node acts on, read from the SDK's typed models.

The SDK parses every server event into its pydantic model without validating it, so a field
the server left out reads as ``None``. :class:`EventHandlers` picks the fields each event
needs, checks they are there, and calls the matching :class:`~.dialogue.Dialogue` method
with plain values; an event missing what it needs is logged (naming the server) and
skipped, so one malformed event never ends the session. Event types the node has no use
for (``rate_limits.updated``, ``response.content_part.*``, ...) are ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

from openai.types.realtime import (
    ConversationItemAdded,
    ConversationItemInputAudioTranscriptionCompletedEvent,
    ConversationItemInputAudioTranscriptionDeltaEvent,
    ConversationItemInputAudioTranscriptionFailedEvent,
    InputAudioBufferSpeechStartedEvent,
    InputAudioBufferSpeechStoppedEvent,
    RealtimeErrorEvent,
    ResponseAudioDeltaEvent,
    ResponseAudioDoneEvent,
    ResponseAudioTranscriptDeltaEvent,
    ResponseAudioTranscriptDoneEvent,
    ResponseCreatedEvent,
    ResponseDoneEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
)
from openai.types.realtime.realtime_server_event import RealtimeServerEvent

if TYPE_CHECKING:
    from flowkit_openai.realtime.dialogue import Dialogue

__all__ = ["Event", "EventHandlers", "MalformedEventError"]

Event: TypeAlias = RealtimeServerEvent


class MalformedEventError(ValueError):
    """A server event without a field the node needs."""


def _need(value: Any, event: str, name: str) -> Any:
    if value is None:
        raise MalformedEventError(f"{event} has no {name}")
    return value


class EventHandlers:
    """Calls the dialogue for each server event it knows (see the module)."""

    def __init__(self, dialogue: Dialogue) -> None:
        """Bind the handlers to ``dialogue``."""
        self.d = dialogue
        self._table: dict[str, Callable[[Any], None]] = {
            "session.updated": self._session_updated,
            "input_audio_buffer.speech_started": self._speech_started,
            "input_audio_buffer.speech_stopped": self._speech_stopped,
            "conversation.item.input_audio_transcription.delta": self._user_delta,
            "conversation.item.input_audio_transcription.completed": self._user_done,
            "conversation.item.input_audio_transcription.failed": self._user_failed,
            "response.created": self._response_created,
            "response.output_item.added": self._item_added,
            "conversation.item.added": self._item_placed,
            "response.output_audio.delta": self._audio,
            "response.output_audio.done": self._audio_done,
            "response.output_audio_transcript.delta": self._agent_delta,
            "response.output_audio_transcript.done": self._agent_done,
            "response.output_text.delta": self._text_delta,
            "response.output_text.done": self._text_done,
            "response.output_item.done": self._item_done,
            "response.done": self._response_done,
            "error": self._error,
        }

    def handle(self, event: Event) -> None:
        """Act on ``event``; log and skip one that lacks what its type needs."""
        kind = getattr(event, "type", None)
        handler = self._table.get(kind) if isinstance(kind, str) else None
        if handler is None:
            return
        try:
            handler(event)
        except MalformedEventError as error:
            self.d.log.warning(
                "the server at %s sent a malformed event (%s); skipped. Check that base_url "
                "points at a server that speaks the GA Realtime API", self.d.url, error,
            )

    def _session_updated(self, _: Any) -> None:
        self.d.session_confirmed = True

    def _speech_started(self, event: InputAudioBufferSpeechStartedEvent) -> None:
        self.d.speech_started(_need(event.item_id, event.type, "item_id"))

    def _speech_stopped(self, event: InputAudioBufferSpeechStoppedEvent) -> None:
        # Without its item the user's state still changes; only its turn id is a guess.
        self.d.speech_stopped(event.item_id)

    def _user_delta(self, event: ConversationItemInputAudioTranscriptionDeltaEvent) -> None:
        item = _need(event.item_id, event.type, "item_id")
        self.d.user_text(item, event.delta or "", final=False)

    def _user_done(self, event: ConversationItemInputAudioTranscriptionCompletedEvent) -> None:
        item = _need(event.item_id, event.type, "item_id")
        self.d.user_text(item, _need(event.transcript, event.type, "transcript"), final=True)

    def _user_failed(self, event: ConversationItemInputAudioTranscriptionFailedEvent) -> None:
        error = event.error
        self.d.log.warning(
            "the server at %s could not transcribe the user's item %s (%s); the model still "
            "heard the audio, only the user transcript is missing",
            self.d.url, event.item_id, getattr(error, "message", None) or "no reason given",
        )

    def _response_created(self, event: ResponseCreatedEvent) -> None:
        response = _need(event.response, event.type, "response")
        response_id = _need(response.id, event.type, "response.id")
        metadata = response.metadata if isinstance(response.metadata, dict) else None
        self.d.response_created(response_id, metadata)

    def _item_added(self, event: ResponseOutputItemAddedEvent) -> None:
        item = _need(event.item, event.type, "item")
        if getattr(item, "type", None) == "message":
            self.d.message_item(
                _need(event.response_id, event.type, "response_id"),
                _need(item.id, event.type, "item.id"),
            )

    def _item_placed(self, event: ConversationItemAdded) -> None:
        item = _need(event.item, event.type, "item")
        if getattr(item, "type", None) == "message" and getattr(item, "role", None) == "assistant":
            self.d.item_placed(_need(item.id, event.type, "item.id"), event.previous_item_id)

    def _audio(self, event: ResponseAudioDeltaEvent) -> None:
        self.d.audio(
            _need(event.response_id, event.type, "response_id"),
            _need(event.item_id, event.type, "item_id"),
            _need(event.delta, event.type, "delta"),
        )

    def _audio_done(self, event: ResponseAudioDoneEvent) -> None:
        self.d.audio_done(
            _need(event.response_id, event.type, "response_id"),
            _need(event.item_id, event.type, "item_id"),
        )

    def _agent_delta(self, event: ResponseAudioTranscriptDeltaEvent) -> None:
        self.d.agent_text(
            _need(event.response_id, event.type, "response_id"),
            _need(event.item_id, event.type, "item_id"),
            event.delta or "",
            done=False,
        )

    def _agent_done(self, event: ResponseAudioTranscriptDoneEvent) -> None:
        self.d.agent_text(
            _need(event.response_id, event.type, "response_id"),
            _need(event.item_id, event.type, "item_id"),
            _need(event.transcript, event.type, "transcript"),
            done=True,
        )

    def _text_delta(self, event: ResponseTextDeltaEvent) -> None:
        self.d.text(
            _need(event.response_id, event.type, "response_id"),
            _need(event.item_id, event.type, "item_id"),
            event.delta or "",
            done=False,
        )

    def _text_done(self, event: ResponseTextDoneEvent) -> None:
        self.d.text(
            _need(event.response_id, event.type, "response_id"),
            _need(event.item_id, event.type, "item_id"),
            _need(event.text, event.type, "text"),
            done=True,
        )

    def _item_done(self, event: ResponseOutputItemDoneEvent) -> None:
        item = _need(event.item, event.type, "item")
        if getattr(item, "type", None) != "function_call":
            return
        self.d.function_call(
            _need(event.response_id, event.type, "response_id"),
            _need(getattr(item, "call_id", None), event.type, "item.call_id"),
            _need(getattr(item, "name", None), event.type, "item.name"),
            getattr(item, "arguments", None) or "{}",
        )

    def _response_done(self, event: ResponseDoneEvent) -> None:
        response = _need(event.response, event.type, "response")
        response_id = _need(response.id, event.type, "response.id")
        self.d.response_done(response_id, response.status or "completed", event)

    def _error(self, event: RealtimeErrorEvent) -> None:
        error = _need(event.error, event.type, "error")
        self.d.on_error(
            str(error.type or "error"), error.code, str(error.message or "(no message)"),
            error.param, error.event_id,
        )
