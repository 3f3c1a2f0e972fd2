"""MCP servers that go away mid-job: a stdio process killed, an HTTP server restarted (with
the 2026 protocol and with the 2025 one), a call in flight, two calls at once, and a server
that keeps crashing (on a virtual clock)."""

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Iterator

import pytest
from mcp_support import SERVER_TOOLS, OpenCount, ServedOverHTTP, alive, eventually, stdio_server

from flowkit.tools import ToolError
from flowkit.tools.mcp import MCPServer, MCPServerHTTP, MCPServerSSE, MCPServerStdio


@pytest.fixture(autouse=True)
def _info_and_up(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="flowkit")


@pytest.fixture
def http() -> Iterator[list[ServedOverHTTP]]:
    """The test server over HTTP; a test that restarts it puts the new one in the list."""
    served = [ServedOverHTTP()]
    yield served
    served[-1].stop()


def _other_tasks() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]


def _logged(caplog: pytest.LogCaptureFixture, level: int, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level and text in r.getMessage()]


@pytest.mark.parametrize("protocol", ["2026", "2025"])
async def test_a_killed_stdio_server_is_started_again_by_the_next_call(
    protocol: str, caplog: pytest.LogCaptureFixture,
) -> None:
    server = stdio_server(name="calc")
    if protocol == "2025":
        server._mode = "legacy"  # no change subscription: the end of stdout tells
    opened = OpenCount(server)
    async with server:
        first_listing = await server.list_tools()
        pid = int(await server.call_tool("pid", {}) or 0)
        os.kill(pid, signal.SIGKILL)
        await eventually(lambda: not server.connected, "the connection noticed the kill")

        assert await server.call_tool("add", {"a": 2, "b": 3}) == "5.0"
        new_pid = int(await server.call_tool("pid", {}) or 0)
        assert new_pid != pid and alive(new_pid)
        assert opened.count == 2
        # Listed again on the new connection: a new tuple, the same tools.
        assert server.tools is not first_listing
        assert [t.name for t in await server.list_tools()] == SERVER_TOOLS
        [reconnected] = _logged(caplog, logging.WARNING, "reconnected")
        assert reconnected.startswith("MCP server 'calc' (MCPServerStdio(name='calc'")
        assert "reconnected after its connection ended; its tools: no change (9)" in reconnected
        # Found before a call was sent into it: no call failed, nothing logged as an error.
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not alive(new_pid)
    assert _other_tasks() == []


async def test_a_listing_that_finds_the_connection_dead_reconnects() -> None:
    server = stdio_server()
    opened = OpenCount(server)
    async with server:
        await _kill_and_notice(server)
        assert [t.name for t in await server.list_tools()] == SERVER_TOOLS
        assert server.connected and opened.count == 2


async def test_two_calls_finding_the_connection_dead_open_one_connection() -> None:
    server = stdio_server()
    opened = OpenCount(server)
    async with server:
        pid = await _kill_and_notice(server)
        # Two nodes (or one LLM asking for two tools) at once: one waits for the other's
        # connection under the lock, and uses it.
        first, second = await asyncio.gather(
            server.call_tool("pid", {}), server.call_tool("pid", {})
        )
        assert first == second and int(first or 0) != pid
        assert opened.count == 2


@pytest.mark.parametrize("transport", ["http", "sse"])
async def test_an_http_server_restarted_between_calls(
    transport: str, caplog: pytest.LogCaptureFixture,
) -> None:
    served = ServedOverHTTP(transport)
    try:
        server = (MCPServerHTTP if transport == "http" else MCPServerSSE)(served.url, name="remote")
        opened = OpenCount(server)
        async with server:
            await server.list_tools()
            assert await server.call_tool("add", {"a": 1, "b": 1}) == "2.0"
            served = served.restart()
            # Streamable HTTP with the 2026 protocol keeps no session: the restart shows as
            # the end of the tools/list_changed subscription (changes would no longer be
            # heard); over SSE, as the end of the event stream.
            await eventually(lambda: not server.connected, "the restart was noticed")
            assert await server.call_tool("add", {"a": 2, "b": 2}) == "4.0"
            assert opened.count == 2
    finally:
        served.stop()
    [reconnected] = _logged(caplog, logging.WARNING, "reconnected")
    assert "MCP server 'remote'" in reconnected
    assert _other_tasks() == []


async def test_an_http_server_down_then_back(
    http: list[ServedOverHTTP], caplog: pytest.LogCaptureFixture,
) -> None:
    server = MCPServerHTTP(http[0].url, name="remote")
    now = [0.0]
    server._backoff.clock = lambda: now[0]
    opened = OpenCount(server)
    async with server:
        await server.list_tools()
        http[0].stop()
        await eventually(lambda: not server.connected, "the server's end was noticed")
        with pytest.raises(ToolError, match="'remote' went away and cannot be reached now, so "
                                            "'add' did not run"):
            await server.call_tool("add", {"a": 1, "b": 1})
        [failed] = _logged(caplog, logging.ERROR, "could not be reconnected")
        assert "ConnectError" in failed and "a call tries again in 1 s or later" in failed
        assert "Check that the server is up and serves MCP at" in failed

        http.append(ServedOverHTTP(port=http[0].port))
        # Within a second of the failed attempt no other is made, even with the server up.
        with pytest.raises(ToolError, match="cannot be reached now"):
            await server.call_tool("add", {"a": 1, "b": 1})
        assert opened.count == 2
        now[0] += 1.0
        assert await server.call_tool("add", {"a": 1, "b": 1}) == "2.0"
        assert opened.count == 3


async def test_an_http_server_with_sessions_restarted_between_calls(
    http: list[ServedOverHTTP], caplog: pytest.LogCaptureFixture,
) -> None:
    # The 2025 protocol (most servers today): a session the restarted server does not know.
    # It answers 404, having run nothing, so the call is sent again on a new session.
    server = MCPServerHTTP(http[0].url, name="remote")
    server._mode = "legacy"
    opened = OpenCount(server)
    async with server:
        await server.list_tools()
        assert await server.call_tool("add", {"a": 1, "b": 1}) == "2.0"
        http.append(http[0].restart())
        assert await server.call_tool("add", {"a": 3, "b": 3}) == "6.0"
        assert opened.count == 2
    [reconnected] = _logged(caplog, logging.WARNING, "reconnected")
    assert "reconnected after it no longer knew the session (HTTP 404: it restarted)" in \
        reconnected
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_crash_looping_server_is_tried_further_and_further_apart(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = stdio_server(name="calc")
    now = [0.0]
    server._backoff.clock = lambda: now[0]
    opened = OpenCount(server)
    async with server:
        await server.list_tools()
        # From now on the server exits as it starts, and its process dies mid-job.
        server.args = ("-c", "import sys; sys.exit(3)")
        pid = int(await server.call_tool("pid", {}) or 0)
        os.kill(pid, signal.SIGKILL)
        await eventually(lambda: not server.connected, "the connection noticed the kill")

        attempts_at: list[float] = []
        # A call every half second for a virtual minute: 120 calls.
        for step in range(120):
            now[0] = step * 0.5
            before = opened.count
            with pytest.raises(ToolError, match="'calc' went away and cannot be reached now"):
                await server.call_tool("add", {"a": 1, "b": 1})
            if opened.count > before:
                attempts_at.append(now[0])
        # The first attempt at once, then 1, 2, 4, 8 and 16 s apart (30 s at most).
        assert attempts_at == [0.0, 1.0, 3.0, 7.0, 15.0, 31.0]
        failures = _logged(caplog, logging.ERROR, "could not be reconnected")
        assert len(failures) == 6  # logged per attempt, not per call
        assert "could not be reconnected after its connection ended: it closed the connection " \
            "before answering. Its tools fail until it is back; a call tries again in 1 s" in \
            failures[0]
        assert "a call tries again in 30 s or later" in failures[-1]  # the longest wait
    assert _other_tasks() == []


async def test_a_server_that_never_connected_is_not_reconnected_by_calls() -> None:
    # Calls do not reconnect a server that never connected (no tool of it is on offer to
    # call); its retry timer does (test_mcp_first_connect.py).
    dies = MCPServerStdio(sys.executable, ["-c", "import sys; sys.exit(3)"], name="dies")
    opened = OpenCount(dies)
    async with dies:
        with pytest.raises(Exception, match="could not be used"):
            await dies.list_tools()
        with pytest.raises(ToolError, match="'dies' is not connected, so 'add' cannot run"):
            await dies.call_tool("add", {})
    assert opened.count == 1


async def _kill_and_notice(server: MCPServer) -> int:
    """List, kill the stdio server's process, and wait until the connection noticed; its pid."""
    await server.list_tools()
    pid = int(await server.call_tool("pid", {}) or 0)
    os.kill(pid, signal.SIGKILL)
    await eventually(lambda: not server.connected, "the connection noticed the kill")
    return pid
