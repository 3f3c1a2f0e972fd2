"""One client connection to the test Realtime server: its session, VAD and responses.

See :mod:`flowkit_openai.testing.realtime_server` for what it speaks. Session keys are
checked against the SDK's own ``RealtimeSessionCreateRequestParam``, so what it refuses is
what the GA API's schema does not have. The session's items are kept in a
:class:`~.realtime_conversation.ServerConversation`, which tests read.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from aiohttp import WSMsgType, web
from openai.types.realtime.realtime_session_create_request_param import (
    RealtimeSessionCreateRequestParam,
)

from flowkit_openai.testing.realtime_conversation import ConversationItem, ServerConversation
from flowkit_openai.testing.realtime_script import SAMPLE_RATE, ScriptedReply, error_event

if TYPE_CHECKING:
    from flowkit_openai.testing.realtime_server import RealtimeTestServer

__all__ = ["ServerConnection"]

_SESSION_KEYS = frozenset(RealtimeSessionCreateRequestParam.__annotations__)
_WINDOW = SAMPLE_RATE // 100  # 10 ms, in samples
_CLIENT_EVENTS = (
    "session.update", "input_audio_buffer.append", "input_audio_buffer.commit",
    "input_audio_buffer.clear", "conversation.item.create", "conversation.item.truncate",
    "conversation.item.delete", "response.create", "response.cancel",
)


@dataclass
class _Response:
    """A response being generated; ``stopped`` once it was cancelled (its done is sent)."""

    head: dict[str, Any]
    output: list[dict[str, Any]]
    stopped: bool = False


class _Stopped(Exception):  # noqa: N818 - internal signal: the response was cancelled
    pass


class _Refused(Exception):  # noqa: N818 - internal signal: the event is answered with an error
    def __init__(self, message: str, *, code: str = "invalid_value", param: str | None = None):
        super().__init__(message)
        self.code, self.param = code, param


def _ms(pcm_bytes: int) -> float:
    return pcm_bytes / 2 / SAMPLE_RATE * 1000


class ServerConnection:
    """The server side of one WebSocket (see the module)."""

    def __init__(
        self, server: RealtimeTestServer, ws: web.WebSocketResponse, request: web.Request,
        model: str,
    ) -> None:
        self.server, self.ws, self.request = server, ws, request
        self.session: dict[str, Any] = {
            "type": "realtime", "model": model, "output_modalities": ["audio"],
            "audio": {"input": {"turn_detection": {"type": "server_vad"}}},
        }
        self.conversation = ServerConversation()
        server.conversations.append(self.conversation)
        self.last_output = ""
        self.buffer = bytearray()  # the audio appended since the last commit or clear
        self.heard_ms = 0.0  # audio appended since the connection opened
        self.leftover = b""
        self.speaking_since: float | None = None
        self.silence_ms = 0.0
        self.speech_item: str | None = None
        self.current: _Response | None = None  # the response being generated
        self.task: asyncio.Task[None] | None = None

    # -- the socket ------------------------------------------------------------------------

    async def send(self, event: dict[str, Any]) -> None:
        """Send a server event (nothing if the socket has closed)."""
        if not self.ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.send_str(json.dumps(event))

    def abort(self) -> None:
        """Cut the TCP connection without a close frame."""
        transport = self.request.transport
        if transport is not None:
            transport.abort()

    async def close(self) -> None:
        """Stop the response under way and close the socket."""
        if self.task is not None:
            self.task.cancel()
        await self.ws.close()

    async def serve(self) -> None:
        """Answer client events until the socket closes."""
        await self.send({"type": "session.created", "event_id": self._id("event"),
                         "session": self.session})
        async for message in self.ws:
            if message.type is not WSMsgType.TEXT:
                continue
            event = await self._parse(message.data)
            if event is None:
                continue
            try:
                await self._dispatch(event)
            except _Refused as refused:
                await self._error(str(refused), code=refused.code, param=refused.param,
                                  caused_by=event.get("event_id"))
        if self.task is not None:
            self.task.cancel()

    async def _parse(self, data: str) -> dict[str, Any] | None:
        try:
            event = json.loads(data)
        except ValueError:
            await self._error("The server could not parse the message as JSON.",
                              code="invalid_json")
            return None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            await self._error("Missing required parameter: 'type'.",
                              code="missing_required_parameter", param="type")
            return None
        return event

    async def _dispatch(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        recorded = dict(event)
        if kind == "input_audio_buffer.append":
            recorded.pop("audio", None)
        self.server.events.append(recorded)
        if kind not in _CLIENT_EVENTS:
            raise _Refused(
                f"Invalid value: '{kind}'. Supported values are: "
                + ", ".join(f"'{name}'" for name in _CLIENT_EVENTS) + ".",
                param="type",
            )
        handler = getattr(self, "_on_" + kind.replace(".", "_"))
        await handler(event)

    # -- client events ---------------------------------------------------------------------

    async def _on_session_update(self, event: dict[str, Any]) -> None:
        session = event.get("session")
        if not isinstance(session, dict):
            raise _Refused("Missing required parameter: 'session'.",
                           code="missing_required_parameter", param="session")
        if session.get("type") != "realtime":
            raise _Refused("Invalid value for 'session.type': expected 'realtime'.",
                           param="session.type")
        for key in session:
            if key not in _SESSION_KEYS:
                raise _Refused(f"Unknown parameter: 'session.{key}'.",
                               code="unknown_parameter", param=f"session.{key}")
        modalities = session.get("output_modalities", ["audio"])
        if modalities not in (["audio"], ["text"]):
            # The API answers in one modality: audio (with its transcript) or text.
            raise _Refused(
                f"Invalid 'session.output_modalities': {modalities!r}; expected ['audio'] or "
                "['text'] (text and audio cannot be asked for together).",
                param="session.output_modalities",
            )
        self.session.update(session)
        self.server.sessions.append(session)
        await self.send({"type": "session.updated", "event_id": self._id("event"),
                         "session": self.session})

    async def _on_input_audio_buffer_append(self, event: dict[str, Any]) -> None:
        try:
            pcm = base64.b64decode(str(event.get("audio", "")), validate=True)
        except (binascii.Error, ValueError):
            raise _Refused("Invalid 'audio': not base64-encoded audio.", param="audio") from None
        self.server.events[-1]["bytes"] = len(pcm)
        self.buffer += pcm
        await self._vad(self.leftover + pcm)

    async def _on_input_audio_buffer_commit(self, event: dict[str, Any]) -> None:
        if _ms(len(self.buffer)) < 100:
            raise _Refused(
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"100ms of audio, but buffer only has {_ms(len(self.buffer)):.2f}ms of audio.",
                code="input_audio_buffer_commit_empty",
            )
        await self._commit(self.speech_item or self._id("item"))

    async def _on_input_audio_buffer_clear(self, event: dict[str, Any]) -> None:
        self.buffer.clear()
        self.speaking_since, self.speech_item = None, None
        await self.send({"type": "input_audio_buffer.cleared", "event_id": self._id("event")})

    async def _on_conversation_item_create(self, event: dict[str, Any]) -> None:
        item = event.get("item")
        if not isinstance(item, dict) or item.get("type") not in (
            "message", "function_call_output", "function_call"
        ):
            raise _Refused("Invalid 'item': expected a message or function call item.",
                           param="item")
        text = _content_text(item)
        if item["type"] == "function_call_output":
            self.last_output = text
        item_id = str(item.get("id") or self._id("item"))
        if self.conversation.get(item_id) is not None:
            raise _Refused(f"Item with id '{item_id}' already exists.", param="item.id")
        previous = event.get("previous_item_id")
        role = str(item.get("role", "")) if item["type"] == "message" else ""
        entry = ConversationItem(item_id, item["type"], role, text)
        await self._added({**item, "id": item_id, "status": "completed"}, entry,
                          None if previous is None else str(previous))

    async def _on_conversation_item_delete(self, event: dict[str, Any]) -> None:
        item_id = str(event.get("item_id"))
        if self.conversation.get(item_id) is None:
            raise _Refused(f"Invalid 'item_id': no item '{item_id}'.", param="item_id")
        self.conversation.delete(item_id)
        self.server.deletions.append(event)
        await self.send({"type": "conversation.item.deleted", "event_id": self._id("event"),
                         "item_id": item_id})

    async def _on_conversation_item_truncate(self, event: dict[str, Any]) -> None:
        item_id, end = event.get("item_id"), event.get("audio_end_ms")
        item = self.conversation.get(str(item_id))
        if item is None or item.role != "assistant":
            raise _Refused(f"Invalid 'item_id': no assistant message '{item_id}'.",
                           param="item_id")
        if not isinstance(end, int) or end < 0:
            raise _Refused("Invalid 'audio_end_ms': expected a non-negative integer.",
                           param="audio_end_ms")
        if end > item.audio_ms:
            raise _Refused(
                f"Audio content of {math.floor(item.audio_ms)}ms is already shorter than "
                f"{end}ms", param="audio_end_ms",
            )
        self.server.truncations.append(event)
        item.audio_ms = end
        await self.send({"type": "conversation.item.truncated", "event_id": self._id("event"),
                         "item_id": item_id, "content_index": 0, "audio_end_ms": end})

    async def _on_response_create(self, event: dict[str, Any]) -> None:
        if self.current is not None:
            raise _Refused("Conversation already has an active response in progress.",
                           code="conversation_already_has_active_response")
        options = event.get("response") if isinstance(event.get("response"), dict) else {}
        await self._respond(options or {})

    async def _on_response_cancel(self, event: dict[str, Any]) -> None:
        if self.current is None:
            raise _Refused("Cancellation failed: no active response found",
                           code="response_cancel_not_active")
        await self._cancel("client_cancelled")

    # -- server VAD ------------------------------------------------------------------------

    def _detection(self) -> dict[str, Any] | None:
        audio = self.session.get("audio") or {}
        detection = (audio.get("input") or {}).get("turn_detection")
        return detection if isinstance(detection, dict) else None

    async def _vad(self, pcm: bytes) -> None:
        detection = self._detection()
        usable = len(pcm) - len(pcm) % (2 * _WINDOW)
        self.leftover = pcm[usable:]
        samples = np.frombuffer(pcm[:usable], dtype="<i2").astype(np.float32) / 32768
        for window in samples.reshape(-1, _WINDOW) if samples.size else ():
            now, self.heard_ms = self.heard_ms, self.heard_ms + 10
            if detection is None:
                continue
            level = 10 * math.log10(float(np.mean(window * window)) + 1e-12)
            loud = level > self.server.vad_threshold_dbfs
            if self.speaking_since is None:
                if loud:
                    await self._speech_started(detection, now)
                continue
            self.silence_ms = 0.0 if loud else self.silence_ms + 10
            if self.silence_ms >= self._silence_ms(detection):
                await self._speech_stopped(detection, now + 10)

    @staticmethod
    def _silence_ms(detection: dict[str, Any]) -> int:
        if detection.get("type") == "semantic_vad":
            return 500
        return int(detection.get("silence_duration_ms", 500))

    async def _speech_started(self, detection: dict[str, Any], now: float) -> None:
        self.speaking_since, self.silence_ms = now, 0.0
        self.speech_item = self._id("item")
        padding = int(detection.get("prefix_padding_ms", 300))
        await self.send({
            "type": "input_audio_buffer.speech_started", "event_id": self._id("event"),
            "audio_start_ms": int(max(0.0, now - padding)), "item_id": self.speech_item,
        })
        if detection.get("interrupt_response", True):
            await self._cancel("turn_detected")

    async def _speech_stopped(self, detection: dict[str, Any], now: float) -> None:
        item_id = self.speech_item or self._id("item")
        self.speaking_since = None
        await self.send({"type": "input_audio_buffer.speech_stopped",
                         "event_id": self._id("event"), "audio_end_ms": int(now),
                         "item_id": item_id})
        await self._commit(item_id)
        if detection.get("create_response", True):
            await self._respond({})

    async def _commit(self, item_id: str) -> None:
        self.server.committed_audio.append(bytes(self.buffer))
        self.buffer.clear()
        self.speech_item = None
        await self.send({"type": "input_audio_buffer.committed", "event_id": self._id("event"),
                         "previous_item_id": self.conversation.last, "item_id": item_id})
        entry = ConversationItem(item_id, "message", "user")
        await self._added({"id": item_id, "type": "message", "role": "user",
                           "status": "completed", "content": [{"type": "input_audio"}]}, entry)
        audio = self.session.get("audio") or {}
        if (audio.get("input") or {}).get("transcription"):
            entry.text = self.server.next_transcript()
            await self.send({
                "type": "conversation.item.input_audio_transcription.completed",
                "event_id": self._id("event"), "item_id": item_id, "content_index": 0,
                "transcript": entry.text,
                "usage": {"type": "duration", "seconds": 1.0},
            })

    # -- responses -------------------------------------------------------------------------

    async def _respond(self, options: dict[str, Any]) -> None:
        if self.current is not None:
            return  # server VAD does not start a second response meanwhile
        reply = self.server.next_reply()
        metadata = options.get("metadata") if self.server.echo_metadata else None
        head = {"id": self._id("resp"), "object": "realtime.response", "metadata": metadata}
        response = self.current = _Response(head, [])
        await self.send({"type": "response.created", "event_id": self._id("event"),
                         "response": {**head, "status": "in_progress", "output": []}})
        self.task = asyncio.ensure_future(self._stream(response, reply, options))

    async def _cancel(self, reason: str) -> None:
        """End the response under way now: ``response.done`` goes out before anything else."""
        response, self.current = self.current, None
        if response is None:
            return
        response.stopped = True
        await self._done(response.head, response.output, "cancelled",
                         {"type": "cancelled", "reason": reason})

    async def _stream(
        self, response: _Response, reply: ScriptedReply, options: dict[str, Any]
    ) -> None:
        modalities = options.get("output_modalities") or self.session.get("output_modalities")
        try:
            if reply.text and modalities == ["text"]:
                response.output.append(await self._write(response, reply))
            elif reply.text:
                response.output.append(await self._speak(response, reply))
            if reply.tool_call is not None and options.get("tool_choice") != "none":
                index = len(response.output)
                response.output.append(await self._call(response, index, *reply.tool_call))
        except _Stopped:
            return
        if response.stopped:
            return
        self.current = None
        if reply.status == "failed":
            details = {"type": "failed", "error": {"type": "server_error",
                                                   "code": "scripted_failure",
                                                   "message": "The scripted reply failed."}}
            await self._done(response.head, response.output, "failed", details)
        else:
            await self._done(response.head, response.output, "completed", None)

    async def _emit(self, response: _Response, event: dict[str, Any]) -> None:
        """Send an event of ``response``, unless it was cancelled meanwhile."""
        if response.stopped:
            raise _Stopped
        await self.send({**event, "event_id": self._id("event")})

    async def _open_message(
        self, response: _Response, reply: ScriptedReply
    ) -> tuple[str, dict[str, Any], dict[str, Any], ConversationItem]:
        """Add the reply's assistant message item: its text, its events' ids, it, its state."""
        response_id, item_id = response.head["id"], self._id("item")
        text = reply.text.replace("{output}", self.last_output)
        where = {"response_id": response_id, "item_id": item_id, "output_index": 0,
                 "content_index": 0}
        item = {"id": item_id, "type": "message", "role": "assistant", "status": "in_progress",
                "content": []}
        state = ConversationItem(item_id, "message", "assistant")
        await self._emit(response, {"type": "response.output_item.added",
                                    "response_id": response_id, "output_index": 0,
                                    "item": item})
        await self._added(item, state)
        return text, where, item, state

    async def _speak(self, response: _Response, reply: ScriptedReply) -> dict[str, Any]:
        text, where, item, state = await self._open_message(response, reply)
        item_id, response_id = where["item_id"], where["response_id"]
        await self._emit(response, {"type": "response.content_part.added", **where,
                                    "part": {"type": "audio"}})
        pcm = reply.speech()
        size = SAMPLE_RATE * self.server.chunk_ms // 1000 * 2
        chunks = [pcm[i:i + size] for i in range(0, len(pcm), size)] or [b""]
        words = text.split(" ")
        per_chunk = max(1, math.ceil(len(words) / len(chunks)))
        loop = asyncio.get_running_loop()
        for index, chunk in enumerate(chunks):
            if spoken := words[index * per_chunk:(index + 1) * per_chunk]:
                delta = (" " if index else "") + " ".join(spoken)
                await self._emit(response, {"type": "response.output_audio_transcript.delta",
                                            **where, "delta": delta})
                state.text += delta
            await self._emit(response, {"type": "response.output_audio.delta", **where,
                                        "delta": base64.b64encode(chunk).decode("ascii")})
            state.audio_ms += _ms(len(chunk))
            self.server.deltas.append((loop.time(), item_id, len(chunk)))
            await asyncio.sleep(self.server.pace)
        for kind, extra in (("response.output_audio.done", {}),
                            ("response.output_audio_transcript.done", {"transcript": text}),
                            ("response.content_part.done", {"part": {"type": "audio",
                                                                     "transcript": text}})):
            await self._emit(response, {"type": kind, **where, **extra})
        done = {**item, "status": "completed",
                "content": [{"type": "output_audio", "transcript": text}]}
        await self._emit(response, {"type": "response.output_item.done",
                                    "response_id": response_id, "output_index": 0,
                                    "item": done})
        return done

    async def _write(self, response: _Response, reply: ScriptedReply) -> dict[str, Any]:
        """A text-only message item: its text word by word, then the ``.done`` events.

        It has no audio, so a truncation of it is refused.
        """
        text, where, item, state = await self._open_message(response, reply)
        response_id = where["response_id"]
        await self._emit(response, {"type": "response.content_part.added", **where,
                                    "part": {"type": "text", "text": ""}})
        for index, word in enumerate(text.split(" ")):
            delta = (" " if index else "") + word
            await self._emit(response, {"type": "response.output_text.delta", **where,
                                        "delta": delta})
            state.text += delta  # a cancelled response keeps what it wrote, as the API does
            await asyncio.sleep(self.server.pace)
        await self._emit(response, {"type": "response.output_text.done", **where, "text": text})
        await self._emit(response, {"type": "response.content_part.done", **where,
                                    "part": {"type": "text", "text": text}})
        done = {**item, "status": "completed",
                "content": [{"type": "output_text", "text": text}]}
        await self._emit(response, {"type": "response.output_item.done",
                                    "response_id": response_id, "output_index": 0,
                                    "item": done})
        return done

    async def _call(
        self, response: _Response, index: int, name: str, arguments: str
    ) -> dict[str, Any]:
        response_id, item_id, call_id = response.head["id"], self._id("item"), self._id("call")
        item = {"id": item_id, "type": "function_call", "status": "in_progress",
                "call_id": call_id, "name": name, "arguments": ""}
        where = {"response_id": response_id, "item_id": item_id, "output_index": index,
                 "call_id": call_id}
        await self._emit(response, {"type": "response.output_item.added",
                                    "response_id": response_id, "output_index": index,
                                    "item": item})
        await self._added(item, ConversationItem(item_id, "function_call",
                                                 text=f"{name}({arguments})"))
        await self._emit(response, {"type": "response.function_call_arguments.delta", **where,
                                    "delta": arguments})
        await self._emit(response, {"type": "response.function_call_arguments.done", **where,
                                    "name": name, "arguments": arguments})
        done = {**item, "status": "completed", "arguments": arguments}
        await self._emit(response, {"type": "response.output_item.done",
                                    "response_id": response_id, "output_index": index,
                                    "item": done})
        return done

    async def _done(self, head: dict[str, Any], output: list[dict[str, Any]], status: str,
                    details: dict[str, Any] | None) -> None:
        usage = {"total_tokens": 30, "input_tokens": 20, "output_tokens": 10}
        await self.send({"type": "response.done", "event_id": self._id("event"), "response": {
            **head, "status": status, "status_details": details, "output": output,
            "usage": usage,
        }})

    # -- helpers ---------------------------------------------------------------------------

    async def _added(
        self, item: dict[str, Any], entry: ConversationItem, previous: str | None = None
    ) -> None:
        """Put ``entry`` in the conversation (after ``previous``, else last) and say so."""
        try:
            before = self.conversation.add(entry, previous)
        except KeyError:
            raise _Refused(f"Invalid 'previous_item_id': no item '{previous}'.",
                           param="previous_item_id") from None
        await self.send({"type": "conversation.item.added", "event_id": self._id("event"),
                         "previous_item_id": before, "item": item})

    async def _error(self, message: str, *, code: str, param: str | None = None,
                     caused_by: str | None = None) -> None:
        await self.send(error_event(self._id("event"), "invalid_request_error", message,
                                    code=code, param=param, caused_by=caused_by))

    def _id(self, prefix: str) -> str:
        return self.server.new_id(prefix)


def _content_text(item: dict[str, Any]) -> str:
    """A created item's text: a message's text parts, or a call output's output."""
    if item.get("type") == "function_call_output":
        return str(item.get("output", ""))
    content = item.get("content")
    parts = content if isinstance(content, list) else []
    return "".join(str(part.get("text", "")) for part in parts if isinstance(part, dict))
