"""Connecting on a timer: for a server whose first connection failed.

A server that went away after it listed its tools is reconnected by the next call or
listing that needs it (its old tools stay on offer, so calls keep coming). A server that
never connected offers no tools, so no call comes to reconnect it; and the nodes read
their tool sets for each request without waiting (a request must not wait for a server
that is down). So a timer makes the attempts instead, each when the backoff allows (1, 2,
4, ... 30 s apart), until one connects or the server is closed: the tools then appear in
the server's listing between two requests, and the next request offers them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from flowkit.tools.mcp.backoff import ReconnectBackoff

__all__ = ["RetryTimer"]

logger = logging.getLogger("flowkit.tools.mcp")


class RetryTimer:
    """A task that makes an attempt whenever ``backoff`` allows, until one succeeds.

    It starts at once; its first attempt is made when ``backoff.remaining()`` is 0.

    Args:
        attempt: Makes one attempt, marking ``backoff`` itself (``attempt()``, then
            ``failed()`` or ``succeeded()``); returns ``True`` once nothing is left to do
            (connected, or the server was closed meanwhile).
        backoff: When the next attempt may be made. Its clock must be the event loop's,
            which the timer sleeps on.
        server: The server's name, for its task's name and the logs.
    """

    def __init__(
        self, attempt: Callable[[], Awaitable[bool]], backoff: ReconnectBackoff, server: str
    ) -> None:
        self._attempt = attempt
        self._backoff = backoff
        self._server = server
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"flowkit:mcp:{server}:connect"
        )

    @property
    def done(self) -> bool:
        """Whether it stopped: an attempt succeeded, it was cancelled, or it failed."""
        return self._task.done()

    async def cancel(self) -> None:
        """Stop it, and wait until an attempt it was making gave up."""
        self._task.cancel()
        await asyncio.wait({self._task})  # not `await task`: its cancellation is not ours

    async def _run(self) -> None:
        try:
            while True:
                await asyncio.sleep(self._backoff.remaining())
                if await self._attempt():
                    return
        except Exception:
            # An attempt reports a server that cannot be reached by returning False: this is
            # a bug. Stopping (rather than trying again at once) cannot spin the loop; the
            # job goes on without the server's tools.
            logger.exception(
                "MCP server %r: connecting it again stopped on an unexpected error; it is "
                "not tried again in this job, which goes on without its tools. This is a "
                "flowkit bug: please report it with this traceback", self._server,
            )
