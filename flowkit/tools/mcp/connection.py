"""One client session with an MCP server, opened and closed by a task of its own.

The SDK's transports are anyio context managers: their task groups must be entered and
left by one task, and a transport that fails (the server went away) cancels the task that
entered it. Held in a task of its own, a dying server ends that task, never a node's; calls
made from other tasks see the closed session as an error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

__all__ = ["CONNECTION_CLOSED", "Connection", "reason"]

logger = logging.getLogger("flowkit.tools.mcp")

CONNECTION_CLOSED = -32000
"""The SDK's error code for a session whose transport closed (``mcp.types.CONNECTION_CLOSED``)."""


class Connection:
    """One client session with a server, opened and closed by a task of its own.

    Args:
        open_client: Enters the transport and the client on the stack it is given and
            returns the client, connected.
        name: The task's name.

    Attributes:
        client: The connected client, or ``None`` before it is ready and once it ended.
        lost: ``True`` once a call found the session closed by the server.
    """

    def __init__(self, open_client: Callable[[AsyncExitStack], Awaitable[Any]], name: str) -> None:
        self.client: Any = None
        self.lost = False  # the server closed the session: calls fail at once
        self._open = open_client
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._error: BaseException | None = None
        self._task = asyncio.get_running_loop().create_task(self._hold(), name=f"flowkit:{name}")

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
        """Start closing: leave a session in use, or give up one still connecting."""
        self._stop.set()
        if not self._ready.is_set():
            self._task.cancel()  # the SDK's shutdown is shielded: a process is still ended

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
                self.client = await self._open(stack)
                self._ready.set()
                await self._stop.wait()
        except Exception as exc:
            # The transport failed (the server went away): calls see the closed session.
            self._error = exc
            if self._ready.is_set():
                logger.debug("MCP connection %s ended: %s", self._task.get_name(), reason(exc))
        finally:
            self.client = None
            self._ready.set()


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
