"""A test double of the OpenAI Realtime API that the real ``openai`` SDK connects to.

An aiohttp WebSocket server on 127.0.0.1 at ``/v1/realtime?model=...``: give a node
``base_url=server.base_url``. It speaks the subset of the GA Realtime protocol (event names
as in ``openai.types.realtime``) that :class:`~flowkit_openai.realtime.RealtimeModel` uses:

* on connect: ``session.created``; ``session.update`` -> ``session.updated``. The session
  must have ``type: "realtime"``, and a key the GA API does not take (``temperature``, say)
  is refused with ``unknown_parameter`` naming it, as the API refuses it; so are
  ``output_modalities`` other than ``["audio"]`` or ``["text"]`` (the API answers in one).
* ``input_audio_buffer.append`` (base64 PCM16, 24 kHz mono): server VAD by energy, in 10 ms
  windows above ``vad_threshold_dbfs`` (the session's ``threshold`` is not modelled).
  ``speech_started`` (with ``audio_start_ms`` less the prefix padding) at the first loud
  window, ``speech_stopped`` after the session's ``silence_duration_ms`` of quiet, then
  ``input_audio_buffer.committed``, ``conversation.item.added`` and, when the session asks
  for transcription, ``conversation.item.input_audio_transcription.completed`` with the
  next of ``user_transcripts``; then a response if ``create_response``. Speech that starts
  while a response is generating cancels it when ``interrupt_response`` (``response.done``
  with status ``cancelled``, reason ``turn_detected``). ``semantic_vad`` is treated as
  server VAD with 500 ms of silence. ``input_audio_buffer.commit`` (at least 100 ms) and
  ``.clear`` work as in the API.
* a response plays the next :class:`~.realtime_script.ScriptedReply`: ``response.created``
  (echoing ``metadata``), a message item (``response.output_item.added``,
  ``conversation.item.added``, ``response.content_part.added``, then
  ``response.output_audio.delta`` chunks of ``chunk_ms`` interleaved with
  ``response.output_audio_transcript.delta`` words, then the ``.done`` events), a
  ``function_call`` item with its arguments when scripted (not with ``tool_choice:
  "none"``), and ``response.done`` with usage. When the session's (or the
  ``response.create``'s) ``output_modalities`` is ``["text"]``, the message item is text
  instead: ``response.content_part.added`` of type ``text``, the words as
  ``response.output_text.delta`` events, ``response.output_text.done`` with the whole text,
  an ``output_text`` content part, and no audio at all.
* ``conversation.item.create`` (messages and ``function_call_output``, with the client's
  item ``id`` if it gives one, after ``previous_item_id`` if given, ``root`` for first) ->
  ``conversation.item.added``, or an error for an id already there or an unknown previous
  item; ``conversation.item.delete`` -> ``conversation.item.deleted``, or an error for an
  unknown item; ``conversation.item.truncate`` -> ``conversation.item.truncated``,
  or an error for an unknown item or an ``audio_end_ms`` past the item's audio;
  ``response.create`` while one is active and ``response.cancel`` with none active are
  errors with the API's codes.
* a message that is not JSON, an unknown event type or a missing field: an ``error`` event
  in the API's shape (``type``, ``code``, ``message``, ``param``, ``event_id``); the
  connection stays open, as with the API.

Not spoken: other audio formats, images, MCP, item retrieve/delete, rate limits,
the WebRTC-only ``output_audio_buffer`` events, transcription-only sessions. Tests steer it
with :meth:`RealtimeTestServer.drop` (cut every connection without a close frame),
``refuse`` (answer new connections with an HTTP status), ``api_key`` (401 without it) and
:meth:`RealtimeTestServer.push_error`; they read what it got in ``events``, ``sessions``,
``truncations``, ``deletions`` and ``deltas``, and what each session's conversation holds
in the end in ``conversations`` (the items in order, with their text).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from aiohttp import web

from flowkit_openai.testing.realtime_connection import ServerConnection
from flowkit_openai.testing.realtime_conversation import ServerConversation
from flowkit_openai.testing.realtime_script import ScriptedReply, error_event

__all__ = ["RealtimeTestServer"]


class RealtimeTestServer:
    """The server (see the module). Use it as ``async with RealtimeTestServer(...) as server``.

    Attributes:
        events: Every client event received, in order, across connections (an append is
            kept as its type and ``bytes`` of audio, not its audio).
        sessions: The ``session`` of each accepted ``session.update``.
        truncations: Each accepted ``conversation.item.truncate`` event.
        committed_audio: The user's audio of each committed buffer (PCM16, 24 kHz mono),
            by the client's commit or the server VAD's.
        deletions: Each accepted ``conversation.item.delete`` event.
        conversations: Each connection's conversation (its items in order, with their
            text), as it stands now.
        deltas: ``(loop time sent, item id, bytes)`` of each audio delta sent.
        connections: How many WebSocket connections were accepted.
        attempts: How many connections were asked for (refused ones included).
        refuse: When set, new connections are answered with this HTTP status.
    """

    def __init__(
        self,
        replies: Sequence[ScriptedReply] = (),
        *,
        user_transcripts: Sequence[str] = (),
        api_key: str | None = None,
        chunk_ms: int = 100,
        pace: float = 0.0,
        vad_threshold_dbfs: float = -40.0,
        accept_delay: float = 0.0,
        echo_metadata: bool = True,
    ) -> None:
        """Script the server.

        Args:
            replies: The responses, in order; once used up, a default reply (one second of
                tone saying "Hello from the test server.").
            user_transcripts: What each committed user item "said", in order; after them,
                ``"(user speech <n>)"``.
            api_key: When set, a connection without ``Authorization: Bearer <api_key>`` is
                refused with HTTP 401.
            chunk_ms: Milliseconds of audio per ``response.output_audio.delta``.
            pace: Seconds between audio deltas, or between text deltas in a text session (0:
                as fast as the socket takes them, which is faster than real time, like the
                API).
            vad_threshold_dbfs: The level above which a 10 ms window is speech.
            accept_delay: Seconds to wait before accepting a connection (a distant server).
            echo_metadata: Echo a ``response.create``'s ``metadata`` in its response, as
                the API does (``False``: a compatible server that leaves it out).
        """
        self.replies: deque[ScriptedReply] = deque(replies)
        self.user_transcripts: deque[str] = deque(user_transcripts)
        self.api_key = api_key
        self.chunk_ms = chunk_ms
        self.pace = pace
        self.vad_threshold_dbfs = vad_threshold_dbfs
        self.accept_delay = accept_delay
        self.echo_metadata = echo_metadata
        self.events: list[dict[str, Any]] = []
        self.sessions: list[dict[str, Any]] = []
        self.truncations: list[dict[str, Any]] = []
        self.committed_audio: list[bytes] = []
        self.deletions: list[dict[str, Any]] = []
        self.conversations: list[ServerConversation] = []
        self.deltas: list[tuple[float, str, int]] = []
        self.connections = 0
        self.attempts = 0
        self.refuse: int | None = None
        self._open: set[ServerConnection] = set()
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._port = 0

    @property
    def base_url(self) -> str:
        """The API root to give the client: ``http://127.0.0.1:<port>/v1``."""
        return f"http://127.0.0.1:{self._port}/v1"

    @property
    def open_connections(self) -> int:
        """How many connections are open now."""
        return len(self._open)

    def new_id(self, prefix: str) -> str:
        """A fresh id, such as ``item_007``."""
        return f"{prefix}_{next(self._ids):03d}"

    def next_reply(self) -> ScriptedReply:
        """The next scripted reply (the default one when the script is used up)."""
        return self.replies.popleft() if self.replies else ScriptedReply()

    def next_transcript(self) -> str:
        """What the next committed user item said."""
        if self.user_transcripts:
            return self.user_transcripts.popleft()
        return f"(user speech {next(self._ids)})"

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        """The client events of one type, in order."""
        return [event for event in self.events if event.get("type") == kind]

    async def push_error(self, message: str, *, kind: str = "server_error",
                         code: str | None = None) -> None:
        """Send an ``error`` event on every open connection (a server-side failure)."""
        for connection in list(self._open):
            await connection.send(error_event(self.new_id("event"), kind, message, code=code))

    async def drop(self) -> None:
        """Cut every open connection at once, without a close frame (a network failure)."""
        for connection in list(self._open):
            connection.abort()
        await asyncio.sleep(0)

    async def __aenter__(self) -> RealtimeTestServer:
        app = web.Application()
        app.router.add_get("/v1/realtime", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        self._port = server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        for connection in list(self._open):
            await connection.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.attempts += 1
        if self.refuse is not None:
            return web.Response(status=self.refuse, text=f"refused ({self.refuse})")
        wanted = f"Bearer {self.api_key}"
        if self.api_key is not None and request.headers.get("Authorization") != wanted:
            return web.json_response(
                {"error": {"type": "invalid_request_error", "code": "invalid_api_key",
                           "message": "Incorrect API key provided."}},
                status=401,
            )
        await asyncio.sleep(self.accept_delay)
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        self.connections += 1
        connection = ServerConnection(self, ws, request, request.query.get("model", ""))
        self._open.add(connection)
        try:
            await connection.serve()
        finally:
            self._open.discard(connection)
            with contextlib.suppress(Exception):
                await connection.close()
        return ws
