"""The MCP servers by transport: a subprocess (stdio), streamable HTTP, and HTTP with SSE.

Each is an :class:`~flowkit.tools.mcp.server.MCPServer`; only how it reaches the server
differs. Their ``repr`` (what ``flowkit viz`` and the graph's spec show) names the command
or the URL, never a header's value, an environment variable's value or a URL's password or
query, which may hold secrets.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from flowkit.tools.mcp.server import MCPServer

if TYPE_CHECKING:
    import httpx2
    from mcp.client import Transport

    from flowkit.tools.mcp.connection import Connection

__all__ = ["MCPServerHTTP", "MCPServerSSE", "MCPServerStdio"]

_SESSION_HEADER = "mcp-session-id"


class MCPServerStdio(MCPServer):
    """An MCP server run as a subprocess of the job, speaking on its stdin and stdout.

    The process starts when the tools are first listed and ends with the job's graph
    (stdin closed, then SIGTERM and SIGKILL if it lingers). Its stderr goes to the
    worker's.

    Args:
        command: The program (``"python"``, ``"npx"``, a path).
        args: Its arguments.
        env: Environment variables for it, on top of the few the SDK passes on (``HOME``,
            ``PATH``, ``USER``, ...): the worker's other variables are not inherited.
        cwd: Its working directory; defaults to the worker's.
        name: See :class:`~flowkit.tools.mcp.server.MCPServer` (default: the command and
            its first argument).
        allowed_tools: See :class:`~flowkit.tools.mcp.server.MCPServer`.
        tool_prefix: See :class:`~flowkit.tools.mcp.server.MCPServer`.
        timeout: Seconds to start, connect and list the tools (the process's start-up
            included).
    """

    def __init__(
        self,
        command: str,
        args: Sequence[str] = (),
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        name: str | None = None,
        allowed_tools: Iterable[str] | None = None,
        tool_prefix: str = "",
        timeout: float = 10.0,
    ) -> None:
        self.command = command
        self.args = tuple(args)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        super().__init__(
            name=name, allowed_tools=allowed_tools, tool_prefix=tool_prefix, timeout=timeout
        )

    def _transport(self, stack: AsyncExitStack, connection: Connection) -> Transport:
        from mcp import StdioServerParameters, stdio_client

        params = StdioServerParameters(
            command=self.command, args=list(self.args), env=self.env, cwd=self.cwd
        )
        # sys.stderr now, not the SDK's default bound when it was imported.
        return stdio_client(params, errlog=sys.stderr)

    def _default_name(self) -> str:
        first = next((arg for arg in self.args if not arg.startswith("-")), None)
        return " ".join(Path(part).name for part in (self.command, first) if part)

    def _remedy(self) -> str:
        return (
            f"Run `{shlex.join((self.command, *self.args))}` by hand: it must start and "
            "speak MCP on stdin/stdout (pass env= for the variables it needs); if it is only "
            f"slow to start, give it more than timeout={self.timeout:g} s"
        )

    def _settings(self) -> list[str]:
        settings = [f"command={self.command!r}", f"args={list(self.args)!r}"]
        if self.env:
            settings.append(f"env={sorted(self.env)!r}")  # names only: values may be secrets
        if self.cwd is not None:
            settings.append(f"cwd={str(self.cwd)!r}")
        return settings


class MCPServerHTTP(MCPServer):
    """An MCP server at a URL, over streamable HTTP (the transport MCP recommends).

    Args:
        url: The server's MCP endpoint, e.g. ``"https://example.com/mcp"``.
        headers: HTTP headers for every request (``{"Authorization": "Bearer ..."}``).
        name: See :class:`~flowkit.tools.mcp.server.MCPServer` (default: the URL's host).
        allowed_tools: See :class:`~flowkit.tools.mcp.server.MCPServer`.
        tool_prefix: See :class:`~flowkit.tools.mcp.server.MCPServer`.
        timeout: Seconds to connect and list the tools; also the HTTP connect timeout.
        read_timeout: Seconds an HTTP response (or the server's event stream) may stay
            silent before the request fails.
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        name: str | None = None,
        allowed_tools: Iterable[str] | None = None,
        tool_prefix: str = "",
        timeout: float = 10.0,
        read_timeout: float = 300.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"{type(self).__name__}(url={url!r}): give the server's full http:// or "
                "https:// address, e.g. 'http://127.0.0.1:8000/mcp'"
            )
        self.url = url
        self.headers = dict(headers or {})
        self.read_timeout = read_timeout
        super().__init__(
            name=name, allowed_tools=allowed_tools, tool_prefix=tool_prefix, timeout=timeout
        )

    def _http_client(self, stack: AsyncExitStack, connection: Connection) -> httpx2.AsyncClient:
        import httpx2

        async def on_response(response: httpx2.Response) -> None:
            # MCP's streamable HTTP: a 404 to a request naming a session means the server
            # no longer knows it (it restarted) and handled nothing; the client must open
            # another. The SDK reports it only as the server's error for each request.
            if response.status_code == 404 and _SESSION_HEADER in response.request.headers:
                connection.forget()

        client = httpx2.AsyncClient(
            headers=self.headers, timeout=httpx2.Timeout(self.timeout, read=self.read_timeout),
            event_hooks={"response": [on_response]},
        )
        stack.push_async_callback(client.aclose)  # a client given to the SDK stays ours
        return client

    def _transport(self, stack: AsyncExitStack, connection: Connection) -> Transport:
        from mcp.client.streamable_http import streamable_http_client

        return streamable_http_client(self.url, http_client=self._http_client(stack, connection))

    def _default_name(self) -> str:
        return urlsplit(self.url).hostname or self.url

    def _remedy(self) -> str:
        return (
            f"Check that the server is up and serves MCP at {_shown(self.url)} (streamable "
            "HTTP; an older server may need MCPServerSSE), and its headers= if it needs "
            "authorisation"
        )

    def _settings(self) -> list[str]:
        settings = [f"url={_shown(self.url)!r}"]
        if self.headers:
            settings.append(f"headers={sorted(self.headers)!r}")  # names only
        return settings


class MCPServerSSE(MCPServerHTTP):
    """An MCP server at a URL over HTTP with server-sent events (MCP's older transport).

    Args:
        url: The server's SSE endpoint, e.g. ``"https://example.com/sse"``.
        headers: HTTP headers for every request.
        name: See :class:`~flowkit.tools.mcp.server.MCPServer` (default: the URL's host).
        allowed_tools: See :class:`~flowkit.tools.mcp.server.MCPServer`.
        tool_prefix: See :class:`~flowkit.tools.mcp.server.MCPServer`.
        timeout: Seconds to connect and list the tools; also the HTTP timeout.
        read_timeout: Seconds the event stream may stay silent before it is closed.
    """

    def _transport(self, stack: AsyncExitStack, connection: Connection) -> Transport:
        from mcp.client.sse import sse_client

        return sse_client(
            self.url, headers=self.headers, timeout=self.timeout,
            sse_read_timeout=self.read_timeout,
        )

    def _remedy(self) -> str:
        return (
            f"Check that the server is up and serves MCP over SSE at {_shown(self.url)} (a "
            "newer server may need MCPServerHTTP), and its headers= if it needs authorisation"
        )


def _shown(url: str) -> str:
    """The URL without a password, query or fragment (they may hold tokens)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
