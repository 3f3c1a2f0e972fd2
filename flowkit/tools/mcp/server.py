"""The connection to one MCP server, for one job: connect once, list, call, close.

An :class:`MCPServer` is made where the graph is built (``build(job)``), so each job has
its own connection. The nodes that use it (:class:`~flowkit.nodes.llm.LLM` and
:class:`~flowkit.nodes.tools.ToolRouter`) hold it while they run (``async with server``);
the first to ask for the tools connects and lists them under a lock, the other gets the
same list, and the last one to stop closes the connection, so it ends with the graph.

The connection lives in a task of its own (:class:`~flowkit.tools.mcp.connection.Connection`),
so a dying server ends that task, never a node's; calls made from the nodes' tasks then
fail with a clear error.

A server that cannot be used is never the end of a job: a failed listing is logged once
(naming the server and the remedy) and raises :class:`MCPServerError`, which the nodes
catch to go on with their other tools; a failed call becomes a
:class:`~flowkit.tools.ToolError`, which the LLM reads.
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
from flowkit.tools.mcp.connection import CONNECTION_CLOSED, Connection, reason
from flowkit.tools.mcp.convert import MCPTool, llm_name, mcp_tool, output_of

if TYPE_CHECKING:
    from mcp import Client
    from mcp.client import Transport

__all__ = ["MCPServer", "MCPServerError"]

logger = logging.getLogger("flowkit.tools.mcp")

_MAX_PAGES = 100  # a server whose listing never ends cannot hang a job
_CLOSE_TIMEOUT = 8.0  # the SDK's stdio shutdown waits at most 0.5 + 2 + 2 + 2 s


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
        timeout: Seconds to connect and list the tools. After that the job goes on without
            this server's tools.

    Raises:
        ImportError: The ``mcp`` SDK is not installed.
        ValueError: ``timeout`` is not positive or ``tool_prefix`` has characters LLM APIs
            refuse in tool names.
    """

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
        self._failure: MCPServerError | None = None
        self._closing: list[Connection] = []
        self.reported: set[str] = set()
        """Problems already logged while this connection lives (clashes found by two nodes)."""

    # -- what a transport provides ----------------------------------------------------------

    @abc.abstractmethod
    def _transport(self, stack: AsyncExitStack) -> Transport:
        """The SDK transport to connect through (the SDK is imported when this is called).

        Args:
            stack: Where to enter anything the transport needs closed with it.
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

    def llm_names(self) -> frozenset[str] | None:
        """The names the LLM will see, when they are known before connecting.

        Returns:
            The prefixed ``allowed_tools``, or ``None`` when every listed tool is offered.
        """
        if self.allowed_tools is None:
            return None
        return frozenset(llm_name(name, self.tool_prefix) for name in self.allowed_tools)

    async def list_tools(self) -> tuple[MCPTool, ...]:
        """The server's tools; connects and lists on the first call, once per connection.

        Returns:
            The tools (``allowed_tools`` only, when given), named for the LLM.

        Raises:
            MCPServerError: The server could not be reached or listed within ``timeout``.
                It is logged once; later calls raise it again without retrying, until the
                connection is closed.
        """
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._tools is not None:
                return self._tools
            if self._failure is not None:
                raise self._failure
            try:
                self._tools = await self._connect_and_list()
            except MCPServerError as failure:
                self._failure = failure
                logger.error("%s", failure)
                # Closing may take seconds (a process that ignores its closed stdin is
                # killed after a grace time): the job goes on meanwhile; aclose() waits.
                self._stop_connection()
                raise
            except BaseException:
                await self._discard_connection()  # cancelled while connecting: nothing left open
                raise
            return self._tools

    async def call_tool(self, remote_name: str, arguments: dict[str, Any]) -> str | None:
        """Run one of the server's tools.

        Args:
            remote_name: The tool's name on the server.
            arguments: The arguments, as the LLM sent them (the server validates them).

        Returns:
            The tool's output for the LLM, or ``None`` when the result was empty.

        Raises:
            ToolError: The tool reported an error, the server refused the call, its answer
                could not be read, or the connection is gone; the message is for the LLM.
        """
        connection = self._connection
        client = connection.client if connection is not None else None
        if client is None or connection is None or connection.lost:
            raise ToolError(
                f"The tool server {self.name!r} is not connected, so {remote_name!r} cannot "
                "run now. Tell the user this service is unavailable at the moment."
            )
        from mcp import MCPError

        try:
            result = await client.call_tool(remote_name, arguments)
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED:
                if not connection.lost:  # once, however many calls were in flight
                    connection.lost = True
                    logger.error(
                        "MCP server %r (%r) closed the connection during a call to %r; its "
                        "tools fail for the rest of the job. %s", self.name, self, remote_name,
                        self._remedy(),
                    )
                raise ToolError(
                    f"The tool server {self.name!r} stopped answering while {remote_name!r} "
                    "ran; it may not have taken effect. Tell the user this service is "
                    "unavailable at the moment."
                ) from None
            raise ToolError(
                f"The tool server {self.name!r} refused the call to {remote_name!r}: "
                f"{exc.message}"
            ) from None
        except Exception:
            # A reply that does not parse as a result, or does not match the tool's declared
            # output: a server bug the LLM cannot fix by retrying.
            logger.exception(
                "MCP server %r (%r) answered a call to %r with a reply that could not be read",
                self.name, self, remote_name,
            )
            raise ToolError(
                f"The tool server {self.name!r} sent an answer to {remote_name!r} that could "
                "not be read. Tell the user it could not be done; do not retry."
            ) from None
        return output_of(result, remote_name)

    async def aclose(self) -> None:
        """Close the connection (the subprocess ends, the HTTP session is deleted).

        The next use connects again. Safe to call at any time, also more than once.
        """
        self._tools = None
        self._failure = None
        self._lock = None
        self.reported.clear()
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

    # -- inside -----------------------------------------------------------------------------

    async def _connect_and_list(self) -> tuple[MCPTool, ...]:
        if "mcp" not in sys.modules:
            # A large import (most of a second): on a worker thread, so other jobs' audio goes on.
            await asyncio.to_thread(importlib.import_module, "mcp")
        try:
            async with asyncio.timeout(self.timeout):
                self._connection = Connection(self._open, f"mcp:{self.name}")
                client = await self._connection.ready()
                listed = await _all_tools(client)
                return self._chosen(listed)
        except TimeoutError:
            raise self._error(f"it gave no tool list within {self.timeout:g} s") from None
        except Exception as exc:
            raise self._error(reason(exc)) from exc

    async def _open(self, stack: AsyncExitStack) -> Client:
        from mcp import Client, Implementation

        client = Client(
            self._transport(stack), client_info=Implementation(name="flowkit", version="0.1")
        )
        return await stack.enter_async_context(client)

    def _chosen(self, listed: list[Any]) -> tuple[MCPTool, ...]:
        if self.allowed_tools is not None:
            names = {str(tool.name) for tool in listed}
            missing = [name for name in self.allowed_tools if name not in names]
            if missing:
                logger.warning(
                    "MCP server %r does not list %s named in allowed_tools; it lists %s",
                    self.name, ", ".join(map(repr, missing)),
                    ", ".join(sorted(map(repr, names))) or "no tools",
                )
            listed = [tool for tool in listed if tool.name in self.allowed_tools]
        return tuple(
            mcp_tool(tool, server=self.name, prefix=self.tool_prefix, call=self.call_tool)
            for tool in listed
        )

    def _error(self, reason: str) -> MCPServerError:
        return MCPServerError(
            self.name,
            f"MCP server {self.name!r} ({self!r}) could not be used: {reason}. The job goes on "
            f"without its tools. {self._remedy()}",
        )

    def _stop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.stop()
            self._closing.append(connection)

    async def _discard_connection(self) -> None:
        self._stop_connection()
        closing, self._closing = self._closing, []
        await asyncio.gather(*(connection.close(_CLOSE_TIMEOUT) for connection in closing))


async def _all_tools(client: Any) -> list[Any]:
    tools: list[Any] = []
    cursor: str | None = None
    for _ in range(_MAX_PAGES):
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return tools
