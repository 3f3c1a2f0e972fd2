"""The connection's life: connect, configure, read, send, and reconnect when it drops.

A Realtime connection is a server session: the conversation lives on the server and ends
with the socket. :class:`RealtimeSession` therefore treats a drop as the end of one session
and the start of another: it connects again, sends the setup events again (the session's
settings, then the conversation's text so far, so the model keeps its context) and carries
on. It tries ``max_reconnects`` times in a row (the count starts over once the server has
confirmed a session); a refusal that retrying cannot change (a bad key, a wrong path) ends
it at once. Giving up is logged as an error that names the endpoint and the remedy, and the
node goes on without a model rather than ending the job.

Sending goes through one queue per connection, drained by a task, so audio pushed from a
frame callback never waits for the socket. Until the first connection is open, events wait
in the queue (a greeting asked for at the start, the user's first words); the setup events
go straight onto the socket ahead of them. Between a drop and the next connection, events
are dropped (the user's words of that moment are gone, rather than replayed late to a new
session, which is given the conversation's text instead), as is audio while more than
``max_queued`` events wait (a stalled socket), with one warning each time.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from openai.resources.realtime.realtime import AsyncRealtimeConnection

from flowkit.providers.errors import ProviderError
from flowkit_openai.realtime.events import Event
from flowkit_openai.realtime.link import ConnectionLost, RealtimeLink

__all__ = ["RealtimeSession"]

Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]


class RealtimeSession:
    """One node's connection to a Realtime endpoint, across reconnections (see the module).

    Args:
        link: Opens and reads connections.
        logger: The node's logger.
        spawn: Starts a task owned by the node (the sender).
        setup: The events to send first on a connection; its argument says whether this is
            a reconnection.
        on_event: Called with each server event.
        on_lost: Called when a connection has ended.
        confirmed: Whether the server confirmed the session on the current connection.
        max_reconnects: Attempts in a row to connect again before giving up.
        reconnect_delay: Seconds between attempts.
        max_queued: The most events waiting to be sent; audio beyond it is dropped.
    """

    def __init__(
        self,
        link: RealtimeLink,
        *,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
        spawn: Spawn,
        setup: Callable[[bool], list[dict[str, Any]]],
        on_event: Callable[[Event], None],
        on_lost: Callable[[], None],
        confirmed: Callable[[], bool],
        max_reconnects: int = 1,
        reconnect_delay: float = 0.5,
        max_queued: int = 100,
    ) -> None:
        self.link, self.log, self._spawn = link, logger, spawn
        self._setup, self._on_event, self._on_lost = setup, on_event, on_lost
        self._confirmed = confirmed
        self.max_reconnects = max_reconnects
        self.reconnect_delay = reconnect_delay
        self.max_queued = max_queued
        self.connections = 0  # how many times it has connected
        self.last_heard = 0.0  # loop time of the server's last event (or of connecting)
        self.failed: str | None = None  # why it gave up, once it has
        self._socket: AsyncRealtimeConnection | None = None
        self._queue: asyncio.Queue[str] | None = asyncio.Queue()  # until the first connection
        self._closing = False
        self._dropping = False  # warned about dropped audio in this stretch
        self._confirmed_at_loss = False
        self._lost: str | None = None  # why the last connection ended

    @property
    def closing(self) -> bool:
        """:meth:`close` was called."""
        return self._closing

    @property
    def connected(self) -> bool:
        """A connection is open."""
        return self._socket is not None

    @property
    def unsent(self) -> int:
        """How many events wait in the queue to be sent (0 with no queue)."""
        return 0 if self._queue is None else self._queue.qsize()

    def send(self, event: dict[str, Any]) -> None:
        """Queue a client event; between connections it is dropped (a debug line)."""
        if self._queue is None:
            self.log.debug("no connection: %s not sent", event.get("type"))
            return
        self._queue.put_nowait(json.dumps(event))

    def send_audio(self, pcm: bytes) -> None:
        """Queue 16-bit 24 kHz mono PCM for ``input_audio_buffer.append``."""
        queue = self._queue
        if queue is None or queue.qsize() >= self.max_queued:
            if not self._dropping and not self._closing and self.failed is None:
                self._dropping = True
                why = "no connection" if queue is None else f"{self.max_queued} events waiting"
                self.log.warning(
                    "the user's audio is being dropped (%s to %s); it resumes when the "
                    "connection takes audio again", why, self.link.url,
                )
            return
        self._dropping = False
        audio = base64.b64encode(pcm).decode("ascii")
        queue.put_nowait(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))

    async def run(self) -> None:
        """Connect and serve until closed, or until it gives up (``failed`` says why)."""
        failures = 0
        while not self._closing:
            try:
                socket = await self.link.open()
            except ProviderError as error:
                failures += 1
                if not error.retryable or failures > self.max_reconnects:
                    attempts = failures if self._lost is None else failures - 1
                    self._give_up(str(error), attempts, retryable=error.retryable)
                    return
                self.log.warning(
                    "%s; trying again in %g s (attempt %d of %d)",
                    error, self.reconnect_delay, failures, self.max_reconnects,
                )
                await asyncio.sleep(self.reconnect_delay)
                continue
            reason = self._lost = await self._serve(socket)
            if self.closing:  # (a property: mypy would keep the loop's narrowing of the flag)
                return
            failures = 0 if self._confirmed_at_loss else failures
            failures += 1
            if failures > self.max_reconnects:
                self._give_up(reason, 0, retryable=True)
                return
            self.log.warning(
                "%s: %s; reconnecting in %g s (attempt %d of %d), with the conversation so far",
                self.link.url, reason, self.reconnect_delay, failures, self.max_reconnects,
            )
            await asyncio.sleep(self.reconnect_delay)

    async def close(self) -> None:
        """Close the connection; ``run`` returns."""
        self._closing = True
        socket = self._socket
        if socket is not None:
            with contextlib.suppress(Exception):
                await socket.close()

    async def _serve(self, socket: AsyncRealtimeConnection) -> str:
        """Set the session up, read it until it ends, and say why it ended."""
        if self._closing:  # closed during the handshake: hang up at once
            with contextlib.suppress(Exception):
                await socket.close()
            return "closed during the handshake"
        # What waited for the first connection is sent; a later one starts afresh.
        first_queue = self._queue if self.connections == 0 else None
        queue = first_queue if first_queue is not None else asyncio.Queue()
        self.connections += 1
        self._confirmed_at_loss = False
        sender: asyncio.Task[None] | None = None
        try:
            for first in self._setup(self.connections > 1):
                await self.link.send(socket, first)
            self._socket, self._queue, self._dropping = socket, queue, False
            clock = asyncio.get_running_loop().time
            self.last_heard = clock()
            sender = self._spawn(self._send_all(socket, queue))
            while True:
                event = await self.link.receive(socket)
                self.last_heard = clock()
                if event is None:
                    self.log.warning("the server at %s sent a message that is not JSON; "
                                     "skipped", self.link.url)
                    continue
                try:
                    self._on_event(event)
                except Exception:
                    # A bug in handling one event must not end the conversation.
                    self.log.exception("handling %s from %s failed; the session goes on",
                                       getattr(event, "type", "an event"), self.link.url)
        except ConnectionLost as lost:
            return str(lost)
        finally:
            self._confirmed_at_loss = self._confirmed()
            if sender is not None:
                sender.cancel()
            self._socket = self._queue = None
            with contextlib.suppress(Exception):
                await socket.close()
            self._on_lost()

    async def _send_all(self, socket: AsyncRealtimeConnection, queue: asyncio.Queue[str]) -> None:
        while True:
            data = await queue.get()
            try:
                await socket.send_raw(data)
            except Exception:  # the reader sees the same failure and ends the connection
                return

    def _give_up(self, last_error: str, attempts: int, *, retryable: bool) -> None:
        self._queue = None  # nothing will send what waits
        silent = "the agent is silent for the rest of this job"
        if not retryable:
            self.failed = f"{last_error}; {silent}"
        elif self._lost is None:
            self.failed = (
                f"{last_error}; gave up after {attempts} attempt(s), so {silent} (allow more "
                "tries with max_reconnects=)"
            )
        else:
            tried = (
                f"{attempts} attempt(s), the last: {last_error}" if attempts
                else "reconnecting is off: max_reconnects=0"
            )
            self.failed = (
                f"lost the connection to {self.link.url} ({self._lost}) and could not get it "
                f"back ({tried}); {silent}. Check that the server is running and reachable "
                "at base_url, or allow more tries with max_reconnects="
            )
        self.log.error("%s", self.failed)
