"""One client session with an MCP server, opened and closed by a task of its own.

The SDK's transports are anyio context managers: their task groups must be entered and
left by one task, and a transport that fails (the server went away) cancels the task that
entered it. Held in a task of its own, a dying server ends that task, never a node's; calls
made from other tasks see the closed session as an error.

A connection knows when it stops being usable, so that the server can open another before
a call is sent into a dead one: when the transport stops delivering messages (a stdio
process exited; the SDK's session reads no more), when its task ends, or when the server
says so (a lost change subscription, an HTTP session the server no longer knows).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from mcp.client import Transport
    from mcp.client._transport import ReadStream, TransportStreams
    from mcp.shared.message import SessionMessage

__all__ = ["CONNECTION_CLOSED", "Connection", "reason"]

logger = logging.getLogger("flowkit.tools.mcp")

CONNECTION_CLOSED = -32000
"""The SDK's error code for a session whose transport closed (``mcp.types.CONNECTION_CLOSED``)."""


class Connection:
    """One client session with a server, opened and closed by a task of its own.

    Args:
        open_client: Enters the transport and the client on the stack it is given and
            returns the client, connected; it is given this connection, to watch.
        name: The task's name.

    Attributes:
        client: The connected client, or ``None`` before it is ready and once it ended.
        lost_because: Why the session can no longer be used, once it cannot.
        forgotten: The server no longer knows the session: what it refused since did not run.
        loss_logged: Whether losing it was logged (by the first call that found out).
    """

    def __init__(
        self, open_client: Callable[[AsyncExitStack, Connection], Awaitable[Any]], name: str
    ) -> None:
        self.client: Any = None
        self.lost_because: str | None = None
        self.forgotten = False
        self.loss_logged = False
        self._open = open_client
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._error: BaseException | None = None
        self._cancelled = False
        self._task = asyncio.get_running_loop().create_task(self._hold(), name=f"flowkit:{name}")

    @property
    def alive(self) -> bool:
        """Whether calls can be sent: connected, and not known to be lost."""
        return self.client is not None and self.lost_because is None

    @property
    def done(self) -> bool:
        """Whether its task has ended (the transport is closed)."""
        return self._task.done()

    def lose(self, why: str) -> None:
        """Mark the session unusable; the first reason is kept (for the logs).

        Args:
            why: What happened, to read after "reconnected after" ("its connection ended").
        """
        if self.lost_because is None:
            self.lost_because = why
            logger.debug("MCP connection %s lost: %s", self._task.get_name(), why)

    def forget(self) -> None:
        """The server answered that it does not know the session (HTTP 404): it restarted."""
        self.forgotten = True
        self.lose("it no longer knew the session (HTTP 404: it restarted)")

    def watched(self, transport: Transport) -> Transport:
        """The transport, marking this connection lost when it stops delivering messages.

        Args:
            transport: The SDK transport to connect through.
        """
        return _watched(transport, self)

    async def ready(self) -> Any:
        """The connected client, once the handshake is done.

        Raises:
            Exception: Why connecting failed.
        """
        await self._ready.wait()
        if self.client is None:
            raise self._error or ConnectionError("the connection closed before it was ready")
        return self.client

    def stop(self) -> None:
        """Start closing: leave a session in use, or give up one still connecting.

        Safe to call more than once: a connecting task is cancelled only once.
        """
        self._stop.set()
        if not self._ready.is_set() and not self._cancelled:
            # The SDK's shutdown is shielded, so a process is still ended; but a second
            # cancel, landing while that shutdown runs, gets through the shield and leaves
            # the transport half closed (its process running, its reader waiting).
            self._cancelled = True
            self._task.cancel()

    async def close(self, timeout: float) -> None:
        """Leave the session and the transport, waiting at most ``timeout`` seconds."""
        self.stop()
        if self._task.done():
            return
        try:
            done, _ = await asyncio.wait({self._task}, timeout=timeout)
        finally:
            # Cancelled while waiting, or the transport would not end: end its task anyway.
            if not self._task.done():
                self._task.cancel()
        if not done:
            logger.error(
                "MCP connection %s did not close within %g s and was cancelled",
                self._task.get_name(), timeout,
            )

    async def _hold(self) -> None:
        try:
            async with AsyncExitStack() as stack:
                self.client = await self._open(stack, self)
                self._ready.set()
                await self._stop.wait()
        except Exception as exc:
            # The transport failed (the server went away): calls see the closed session.
            self._error = exc
            self.lose(f"its connection failed ({reason(exc)})")
        finally:
            self.client = None
            self._ready.set()


@asynccontextmanager
async def _watched(transport: Transport, connection: Connection) -> AsyncIterator[TransportStreams]:
    async with transport as (read_stream, write_stream):
        yield _EndWatchingStream(read_stream, connection), write_stream


class _EndWatchingStream:
    """A transport's read stream that marks the connection lost when it is no longer read.

    The SDK's session reads it in one ``async with`` block, which ends when the stream
    does (the process exited, the HTTP transport failed) and only then: past it, no answer
    can arrive, so a call sent would only wait for its error.
    """

    def __init__(
        self, stream: ReadStream[SessionMessage | Exception], connection: Connection
    ) -> None:
        self._stream = stream
        self._connection = connection

    async def receive(self) -> SessionMessage | Exception:
        return await self._stream.receive()

    async def aclose(self) -> None:
        await self._stream.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        return await self._stream.__anext__()

    async def __aenter__(self) -> Self:
        await self._stream.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        try:
            return await self._stream.__aexit__(exc_type, exc_val, exc_tb)
        finally:
            self._connection.lose("its connection ended")

    def __getattr__(self, name: str) -> Any:
        # What else the SDK may read off the stream (``last_context``) is the stream's.
        return getattr(self._stream, name)


def reason(exc: BaseException) -> str:
    """One line: the innermost errors of an (anyio) exception group, by type and message."""
    leaves: list[BaseException] = []

    def walk(error: BaseException) -> None:
        if isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                walk(inner)
        else:
            leaves.append(error)

    walk(exc)
    texts = [
        "it closed the connection before answering"
        if getattr(e, "code", None) == CONNECTION_CLOSED
        else f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        for e in leaves
    ]
    return "; ".join(dict.fromkeys(texts))
