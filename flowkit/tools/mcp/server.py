"""The connection to one MCP server, for one job: connect, list, call, reconnect, close.

An :class:`MCPServer` is made where the graph is built (``build(job)``), so each job has
its own connection. The nodes that use it (:class:`~flowkit.nodes.llm.LLM` and
:class:`~flowkit.nodes.tools.ToolRouter`) hold it while they run (``async with server``);
the first to ask for the tools connects and lists them under a lock, the other gets the
same list, and the last one to stop closes the connection, so it ends with the graph.

The connection lives in a task of its own (:class:`~flowkit.tools.mcp.connection.Connection`),
so a dying server ends that task, never a node's. The next call (or listing) that finds
the connection gone opens another under the same lock, so two nodes calling at once open
one, and lists the tools again; a server that keeps failing to come back is tried further
and further apart (:class:`~flowkit.tools.mcp.backoff.ReconnectBackoff`). A call that was
running when the connection died is not sent again: it may have taken effect.

When the server says its tools changed (``notifications/tools/list_changed``), they are
listed again at once, and :attr:`MCPServer.tools` is a new tuple the nodes' toolboxes see.

A server that cannot be used is never the end of a job: a failed first listing is logged
once (naming the server and the remedy) and raises :class:`MCPServerError`, which the nodes
catch to go on with their other tools; a failed call becomes a
:class:`~flowkit.tools.ToolError`, which the LLM reads. A first connection that failed is
then made again like a lost one, on the same backoff, but by a timer
(:class:`~flowkit.tools.mcp.retry.RetryTimer`): with no tools on offer no call would come
to do it, and requests read the tools without waiting. Once it connects,
:attr:`MCPServer.tools` is the new listing, which the next request offers; until then a
listing fails at once.
"""

from __future__ import annotations

import abc
import asyncio
import importlib
import importlib.util
import logging
import sys
from collections.abc import Iterable
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from flowkit.tools.errors import ToolError
from flowkit.tools.mcp.backoff import FIRST_DELAY, MAX_DELAY, ReconnectBackoff
from flowkit.tools.mcp.connection import CONNECTION_CLOSED, Connection, reason
from flowkit.tools.mcp.convert import MCPTool, llm_name, output_of
from flowkit.tools.mcp.listing import changes, chosen_tools, read_listing
from flowkit.tools.mcp.retry import RetryTimer
from flowkit.tools.mcp.session import open_client

if TYPE_CHECKING:
    from mcp import Client
    from mcp.client import Transport

__all__ = ["MCPServer", "MCPServerError"]

logger = logging.getLogger("flowkit.tools.mcp")

_CLOSE_TIMEOUT = 8.0  # the SDK's stdio shutdown waits at most 0.5 + 2 + 2 + 2 s


class _UnreachableError(Exception):
    """Connecting or listing failed; the message is why, as a clause."""


class MCPServerError(Exception):
    """An MCP server's tools could not be had: not reached, too slow, or a bad answer.

    Args:
        server: The server's name.
        message: What went wrong and what to do.

    Attributes:
        server: The server's name.
    """

    def __init__(self, server: str, message: str) -> None:
        super().__init__(message)
        self.server = server


class MCPServer(abc.ABC):
    """A Model Context Protocol server whose tools an LLM may call (one connection per job).

    Use a transport's class (:class:`~flowkit.tools.mcp.MCPServerStdio`,
    :class:`~flowkit.tools.mcp.MCPServerHTTP`, :class:`~flowkit.tools.mcp.MCPServerSSE`)
    and give the same object to ``LLM(mcp_servers=...)`` and ``ToolRouter(mcp_servers=...)``.
    Outside a graph, ``async with server: await server.list_tools()``.

    Args:
        name: What logs and errors call the server; defaults to the command or the host.
        allowed_tools: Offer only these of the server's tools (names on the server);
            ``None``: all of them.
        tool_prefix: Put before each tool's name for the LLM (``"crm_"``), to keep apart
            tools of the same name from two servers or from a function tool.
        timeout: Seconds to connect and list the tools (also when reconnecting). After that
            the job goes on without this server's tools, and tries again later.

    Raises:
        ImportError: The ``mcp`` SDK is not installed.
        ValueError: ``timeout`` is not positive or ``tool_prefix`` has characters LLM APIs
            refuse in tool names.
    """

    _mode = "auto"
    """The SDK's ``Client(mode=...)``: the newest protocol both sides speak. Tests pin
    ``"legacy"`` (the 2025 handshake) to stand for the servers made before 2026."""

    def __init__(
        self,
        *,
        name: str | None = None,
        allowed_tools: Iterable[str] | None = None,
        tool_prefix: str = "",
        timeout: float = 10.0,
    ) -> None:
        if not timeout > 0:
            raise ValueError(
                f"{type(self).__name__}(timeout={timeout!r}): the time to connect and list "
                "the tools must be positive; 10 s is the default"
            )
        if importlib.util.find_spec("mcp") is None:
            raise ImportError(
                f"{type(self).__name__} needs the MCP SDK, which is not installed; install "
                "it with pip install 'flowkit-agents[mcp]'"
            )
        if llm_name(tool_prefix) != tool_prefix:
            raise ValueError(
                f"{type(self).__name__}(tool_prefix={tool_prefix!r}): tool names may only "
                "hold letters, digits, '_' and '-' (at most 64); use e.g. 'crm_'"
            )
        self.name = name or self._default_name()
        self._named = name is not None
        self.allowed_tools = None if allowed_tools is None else tuple(allowed_tools)
        self.tool_prefix = tool_prefix
        self.timeout = timeout
        self._users = 0
        self._lock: asyncio.Lock | None = None
        self._connection: Connection | None = None
        self._tools: tuple[MCPTool, ...] | None = None
        self._stale = False  # the server said its tools changed since they were listed
        self._relisting: asyncio.Task[None] | None = None
        self._outage: str | None = None  # why the connection went away, until reconnected
        self._failure: MCPServerError | None = None
        self._closing: list[Connection] = []
        # On the loop's clock, which the retry timer sleeps on (and which tests can fake).
        self._backoff = ReconnectBackoff(clock=_loop_time)
        self._retry: RetryTimer | None = None  # connecting after a failed first connection
        self._down_since = 0.0  # when the first connection failed (on the backoff's clock)
        self.reported: set[str] = set()
        """Problems already logged while this connection lives (clashes found by two nodes)."""

    # -- what a transport provides ----------------------------------------------------------

    @abc.abstractmethod
    def _transport(self, stack: AsyncExitStack, connection: Connection) -> Transport:
        """The SDK transport to connect through (the SDK is imported when this is called).

        Args:
            stack: Where to enter anything the transport needs closed with it.
            connection: The connection it is for (to mark lost when the transport can tell).
        """

    @abc.abstractmethod
    def _default_name(self) -> str:
        """The name used when none is given."""

    @abc.abstractmethod
    def _remedy(self) -> str:
        """What to check when the server cannot be reached."""

    @abc.abstractmethod
    def _settings(self) -> list[str]:
        """The transport's settings for ``repr``, with no secrets (``key=value`` each)."""

    # -- use --------------------------------------------------------------------------------

    @property
    def tools(self) -> tuple[MCPTool, ...]:
        """The tools as last listed: none before the first listing, nor once closed.

        Each listing (the first, which the retry timer makes when the first connection
        failed; after a reconnect; after ``tools/list_changed``) is a new tuple, so a
        holder tells that the tools changed by identity, without waiting for a listing.
        """
        return self._tools or ()

    @property
    def connected(self) -> bool:
        """Whether a connection is open and not known to be lost.

        When it is not (and the tools were listed once), the next call reconnects.
        """
        return self._connection is not None and self._connection.alive

    def llm_names(self) -> frozenset[str] | None:
        """The names the LLM will see, when they are known before connecting.

        Returns:
            The prefixed ``allowed_tools``, or ``None`` when every listed tool is offered.
        """
        if self.allowed_tools is None:
            return None
        return frozenset(llm_name(name, self.tool_prefix) for name in self.allowed_tools)

    async def list_tools(self) -> tuple[MCPTool, ...]:
        """The server's tools; connects and lists on the first call.

        They are listed again only when the server said they changed, or when the
        connection had to be opened again.

        Returns:
            The tools (``allowed_tools`` only, when given), named for the LLM. When the
            server went away and cannot be reached again, the tools listed before.

        Raises:
            MCPServerError: The server has not connected yet: the first connection failed
                (not reached, nothing listed within ``timeout``). It is logged once and
                tried again on a timer, 1, 2, 4, ... 30 s apart, until it connects or the
                server is closed (:meth:`aclose`, or the last holder leaving); meanwhile
                this raises the same error at once, without an attempt or waiting for one.
        """
        if self._failure is not None:
            # Not behind the lock, which a timed attempt holds for up to ``timeout``.
            raise self._failure
        async with self._locked():
            if self._failure is not None:
                raise self._failure
            if self._tools is None:
                self._tools = await self._connect_first()
            elif not self.connected:
                await self._reconnect()
            elif self._stale:
                await self._list_again()
            return self._tools

    async def call_tool(self, remote_name: str, arguments: dict[str, Any]) -> str | None:
        """Run one of the server's tools, reconnecting first if the connection is gone.

        Args:
            remote_name: The tool's name on the server.
            arguments: The arguments, as the LLM sent them (the server validates them).

        Returns:
            The tool's output for the LLM, or ``None`` when the result was empty.

        Raises:
            ToolError: The tool reported an error, the server refused the call, its answer
                could not be read, the connection died while it ran, or the server cannot
                be reached; the message is for the LLM.
        """
        from mcp import MCPError

        reconnected = False
        while True:
            connection = self._connection
            if connection is None or not connection.alive:
                if reconnected:  # once per call: a server that fails again is down
                    raise ToolError(self._unreachable(remote_name))
                connection = await self._reconnected(remote_name)
                reconnected = True
            try:
                result = await connection.client.call_tool(remote_name, arguments)
            except MCPError as exc:
                if exc.code == CONNECTION_CLOSED:
                    raise ToolError(self._lost_during(connection, remote_name)) from None
                if connection.forgotten:
                    continue  # refused by a server that no longer knew the session: not run
                raise ToolError(
                    f"The tool server {self.name!r} refused the call to {remote_name!r}: "
                    f"{exc.message}"
                ) from None
            except Exception:
                # A reply that does not parse as a result, or does not match the tool's
                # declared output: a server bug the LLM cannot fix by retrying.
                logger.exception(
                    "MCP server %r (%r) answered a call to %r with a reply that could not be "
                    "read", self.name, self, remote_name,
                )
                raise ToolError(
                    f"The tool server {self.name!r} sent an answer to {remote_name!r} that "
                    "could not be read. Tell the user it could not be done; do not retry."
                ) from None
            relisting = self._relisting
            if relisting is not None and not relisting.done():
                # The tool changed the server's tools (a server sends the notification
                # before the result): the result goes back once the new ones are listed, so
                # the request that reads it can offer them.
                await asyncio.wait({relisting})
            return output_of(result, remote_name)

    async def aclose(self) -> None:
        """Close the connection (the subprocess ends, the HTTP session is deleted).

        The next use connects again. Safe to call at any time, also more than once.
        """
        self._tools = None
        self._stale = False
        self._outage = None
        self._failure = None
        self._lock = None
        self._backoff.succeeded()
        self.reported.clear()
        relisting, self._relisting = self._relisting, None
        retry, self._retry = self._retry, None
        if relisting is not None:
            relisting.cancel()
        if retry is not None:
            await retry.cancel()  # an attempt it was making stops its connection
        if relisting is not None:
            await asyncio.wait({relisting})
        await self._discard_connection()

    async def __aenter__(self) -> MCPServer:
        """Hold the connection open: the last holder to leave closes it."""
        self._users += 1
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._users -= 1
        if self._users == 0:
            await self.aclose()

    def __repr__(self) -> str:
        named = [f"name={self.name!r}"] if self._named else []
        settings = ", ".join([*named, *self._settings()])  # a chosen name reads first
        if self.allowed_tools is not None:
            settings += f", allowed_tools={list(self.allowed_tools)!r}"
        if self.tool_prefix:
            settings += f", tool_prefix={self.tool_prefix!r}"
        return f"{type(self).__name__}({settings})"

    # -- connecting -------------------------------------------------------------------------

    def _locked(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def _connect_first(self) -> tuple[MCPTool, ...]:
        self._backoff.attempt()
        try:
            return await self._connect_and_list()
        except _UnreachableError as exc:
            self._backoff.failed()
            self._down_since = self._backoff.clock()
            self._failure = self._error(str(exc))
            logger.error("%s", self._failure)
            # Closing may take seconds (a process that ignores its closed stdin is
            # killed after a grace time): the job goes on meanwhile; aclose() waits.
            self._stop_connection()
            self._retry = RetryTimer(self._connect_later, self._backoff, self.name)
            raise self._failure from exc.__cause__
        except BaseException:
            await self._discard_connection()  # cancelled while connecting: nothing left open
            raise

    async def _connect_later(self) -> bool:
        """One timed attempt after a failed first connection (its :class:`RetryTimer`'s).

        Returns:
            Whether the retries are over: connected, or closed meanwhile.
        """
        async with self._locked():
            if self._failure is None:
                return True  # closed (and maybe opened again) since the timer started
            if self._backoff.remaining() > 0:
                return False
            attempts = self._backoff.failures + 1
            tools = await self._attempt()
            if isinstance(tools, _UnreachableError):
                # Once per outage at ERROR (the first failure, with the remedy): each
                # attempt after it would say the same thing every 30 s.
                logger.debug(
                    "MCP server %r is still not reachable (attempt %d): %s; next in %g s",
                    self.name, self._backoff.failures, tools, self._backoff.remaining(),
                )
                return False
            self._tools, self._failure = tools, None
            logger.warning(
                "MCP server %r (%r) connected on attempt %d, %.0f s after its first "
                "connection failed; its tools are offered from the next request: %s",
                self.name, self, attempts, self._backoff.clock() - self._down_since,
                changes((), tools),
            )
            return True

    async def _reconnected(self, remote_name: str) -> Connection:
        """The connection, opened again unless another call did it meanwhile."""
        if self._tools is None:
            raise ToolError(
                f"The tool server {self.name!r} is not connected, so {remote_name!r} cannot "
                "run now. Tell the user this service is unavailable at the moment."
            )
        async with self._locked():
            if not self.connected and not await self._reconnect():
                raise ToolError(self._unreachable(remote_name))
            assert self._connection is not None
            return self._connection

    async def _reconnect(self) -> bool:
        """Open a new connection and list the tools again (under the lock), backoff allowing.

        Returns:
            Whether the server is connected again; if not, the tools listed before stay.
        """
        if self._outage is None:  # the first attempt since the connection was lost
            self._outage = (self._connection and self._connection.lost_because) or "it closed"
        lost = self._outage
        wait = self._backoff.remaining()
        if wait > 0:
            logger.debug("MCP server %r: not reconnecting for %.1f s yet", self.name, wait)
            return False
        self._stop_connection()
        tools = await self._attempt()
        if isinstance(tools, _UnreachableError):
            logger.error(
                "MCP server %r (%r) could not be reconnected after %s: %s. Its tools fail "
                "until it is back; a call tries again in %g s or later. %s",
                self.name, self, lost, tools, self._backoff.remaining(), self._remedy(),
            )
            return False
        before, self._tools = self._tools or (), tools
        logger.warning(
            "MCP server %r (%r) reconnected after %s; its tools: %s", self.name, self, lost,
            changes(before, tools),
        )
        self._outage = None
        return True

    async def _attempt(self) -> tuple[MCPTool, ...] | _UnreachableError:
        """One attempt to connect and list, counted by the backoff (under the lock).

        Returns:
            The tools listed, or why the server could not be reached (the connection is
            stopped then); the caller logs it as its state calls for.
        """
        self._backoff.attempt()
        try:
            tools = await self._connect_and_list()
        except _UnreachableError as exc:
            self._backoff.failed()
            self._stop_connection()
            return exc
        except BaseException:
            self._stop_connection()  # cancelled while connecting: aclose() waits for it
            raise
        self._backoff.succeeded()
        return tools

    async def _connect_and_list(self) -> tuple[MCPTool, ...]:
        if "mcp" not in sys.modules:
            # A large import (most of a second): on a worker thread, so other jobs' audio goes on.
            await asyncio.to_thread(importlib.import_module, "mcp")
        try:
            async with asyncio.timeout(self.timeout):
                self._connection = Connection(self._open, f"mcp:{self.name}")
                client = await self._connection.ready()
                self._stale = False  # a change announced from now on is listed again
                return await self._list(client)
        except TimeoutError:
            raise _UnreachableError(f"it gave no tool list within {self.timeout:g} s") from None
        except Exception as exc:
            raise _UnreachableError(reason(exc)) from exc

    async def _list(self, client: Any) -> tuple[MCPTool, ...]:
        return chosen_tools(
            await read_listing(client), server=self.name, allowed_tools=self.allowed_tools,
            prefix=self.tool_prefix, call=self.call_tool,
        )

    async def _open(self, stack: AsyncExitStack, connection: Connection) -> Client:
        transport = connection.watched(self._transport(stack, connection))
        return await open_client(
            transport, stack, connection, server=self.name, mode=self._mode,
            tools_changed=self._tools_changed,
        )

    # -- the tools changing -----------------------------------------------------------------

    def _tools_changed(self) -> None:
        # Called on the SDK's task, which reads the answers a listing waits for: the listing
        # runs in a task of its own.
        self._stale = True
        if self._relisting is None or self._relisting.done():
            self._relisting = asyncio.get_running_loop().create_task(
                self._follow_changes(), name=f"flowkit:mcp:{self.name}:list"
            )

    async def _follow_changes(self) -> None:
        # Again while changes are announced during a listing; a failed one was logged and
        # leaves the tools stale, for the next asker.
        while self._stale and self._tools is not None and self.connected:
            before = self._tools
            await self.list_tools()
            if self._tools is before:
                return

    async def _list_again(self) -> None:
        connection = self._connection
        assert connection is not None and self._tools is not None
        self._stale = False
        try:
            async with asyncio.timeout(self.timeout):
                tools = await self._list(connection.client)
        except BaseException as exc:
            self._stale = True
            if isinstance(exc, Exception):
                logger.warning(
                    "MCP server %r said its tools changed, but listing them again failed "
                    "(%s); the tools listed before are kept", self.name,
                    f"no answer within {self.timeout:g} s" if isinstance(exc, TimeoutError)
                    else reason(exc),
                )
                return
            raise
        before, self._tools = self._tools, tools
        logger.info("MCP server %r changed its tools: %s", self.name, changes(before, tools))

    # -- messages ---------------------------------------------------------------------------

    def _lost_during(self, connection: Connection, remote_name: str) -> str:
        """Mark the connection lost by a call in flight; log once; the LLM's message."""
        connection.lose(f"it closed the connection during a call to {remote_name!r}")
        if not connection.loss_logged:  # once, however many calls were in flight
            connection.loss_logged = True
            # Not sent again on a new connection: the tool may have run (a payment, a
            # booking), and only the server knew.
            logger.error(
                "MCP server %r (%r) closed the connection during a call to %r: the call "
                "failed and is not sent again, as it may have taken effect; the next call "
                "reconnects. %s", self.name, self, remote_name, self._remedy(),
            )
        return (
            f"The tool server {self.name!r} stopped answering while {remote_name!r} ran; it "
            "may not have taken effect. Tell the user this service is unavailable at the "
            "moment."
        )

    def _unreachable(self, remote_name: str) -> str:
        return (
            f"The tool server {self.name!r} went away and cannot be reached now, so "
            f"{remote_name!r} did not run. Tell the user this service is unavailable at the "
            "moment."
        )

    def _error(self, reason: str) -> MCPServerError:
        return MCPServerError(
            self.name,
            f"MCP server {self.name!r} ({self!r}) could not be used: {reason}. The job goes on "
            f"without its tools until it answers: it is tried again {FIRST_DELAY:g}, "
            f"{FIRST_DELAY * 2:g}, {FIRST_DELAY * 4:g}, ... s after each attempt began "
            f"({MAX_DELAY:g} s at most), and its tools are offered once it connects. "
            f"{self._remedy()}",
        )

    # -- closing ----------------------------------------------------------------------------

    def _stop_connection(self) -> None:
        connection, self._connection = self._connection, None
        # Connections ended since: nothing to wait for (a long job may reconnect often).
        self._closing = [closing for closing in self._closing if not closing.done]
        if connection is not None:
            connection.stop()
            self._closing.append(connection)

    async def _discard_connection(self) -> None:
        self._stop_connection()
        closing, self._closing = self._closing, []
        await asyncio.gather(*(connection.close(_CLOSE_TIMEOUT) for connection in closing))


def _loop_time() -> float:
    return asyncio.get_running_loop().time()
