"""MCP servers whose first connection fails: tried again on a timer, on the reconnect
backoff, until they answer; their tools are then offered from the next request, and no
request or listing waits for a server that is down."""

import asyncio
import logging
import sys
from collections.abc import Iterator
from contextlib import AsyncExitStack
from typing import Any

# Imported before any test: a server's first connection imports it on a worker thread,
# which the virtual clock of the looptime test would not follow.
import mcp  # noqa: F401
import pytest
from mcp_support import (
    APP,
    SERVER_TOOLS,
    OpenCount,
    ServedOverHTTP,
    answered,
    eventually,
    free_port,
    mcp_agent,
    stdio_server,
    tool_call,
)

from flowkit.testing import FakeLLM
from flowkit.tools import ToolError
from flowkit.tools.mcp import MCPServer, MCPServerError, MCPServerHTTP, MCPServerStdio
from flowkit.tools.mcp.connection import Connection


@pytest.fixture(autouse=True)
def _debug_and_up(caplog: pytest.LogCaptureFixture) -> None:
    # DEBUG: the attempts after the first are logged there, and must not be logged above.
    caplog.set_level(logging.DEBUG, logger="flowkit")


@pytest.fixture
def http_servers() -> Iterator[list[ServedOverHTTP]]:
    """Where a test starts the HTTP server once it is meant to be up; stopped afterwards."""
    served: list[ServedOverHTTP] = []
    yield served
    for one in served:
        one.stop()


def _offered(fake: FakeLLM, request: int) -> list[str]:
    return [spec.name for spec in fake.requests[request].tools]


def _logged(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == level and r.name.startswith("flowkit")]


def _other_tasks() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]


class AttemptTimes:
    """The loop's time at each connection a server opens (its first included)."""

    def __init__(self, server: MCPServer) -> None:
        self.times: list[float] = []
        real_open = server._open
        loop = asyncio.get_running_loop()

        async def timed_open(stack: AsyncExitStack, connection: Connection) -> Any:
            self.times.append(loop.time())
            return await real_open(stack, connection)

        server._open = timed_open  # type: ignore[method-assign]


async def test_an_http_server_down_at_start_is_offered_from_the_first_request_after_it_is_up(
    http_servers: list[ServedOverHTTP], caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    server = MCPServerHTTP(f"http://127.0.0.1:{port}/mcp", name="crm")
    opened = OpenCount(server)
    fake = FakeLLM(["Not right now.", tool_call("add", {"a": 1, "b": 1}, "c1"), "Two."],
                   ttft=0.0, token_gap=0.0)
    runner, turns = mcp_agent(fake, server, "mcp-first-connect")
    await runner.start()
    try:
        # The LLM answers once its tools are listed: without the server's, which is down.
        turns.queue.put_nowait("add one and one")
        await answered(fake, 1)
        assert _offered(fake, 0) == [] and server.tools == ()

        # The deploy is over: the server is up again at its address. No call fails first
        # (none could: no tool was offered); the timer connects and lists.
        http_servers.append(ServedOverHTTP(port=port))
        await eventually(lambda: bool(server.tools), "the server's tools listed")
        assert server.connected

        turns.queue.put_nowait("add one and one, now")
        await answered(fake, 3)
    finally:
        turns.queue.put_nowait(None)
        await runner.close()
    # The first request after the listing offered the tools, and the ToolRouter ran one.
    assert _offered(fake, 1) == SERVER_TOOLS
    assert [(m.name, m.content) for m in fake.requests[2].history if m.role == "tool"] == \
        [("add", "2.0")]
    # Once per state change: down (with the remedy and what happens next), then up.
    [down] = _logged(caplog, logging.ERROR)
    assert down.startswith("MCP server 'crm' (MCPServerHTTP(name='crm'") and "ConnectError" in down
    assert "The job goes on without its tools until it answers: it is tried again 1, 2, 4, " \
        "... s after each attempt began (30 s at most)" in down
    assert f"Check that the server is up and serves MCP at http://127.0.0.1:{port}/mcp" in down
    [up] = _logged(caplog, logging.WARNING)
    assert up.startswith("MCP server 'crm' (MCPServerHTTP(name='crm'")
    assert f"connected on attempt {opened.count}" in up
    assert "its tools are offered from the next request: added 'add', 'crash'" in up
    assert _other_tasks() == []


async def test_a_stdio_server_that_failed_to_start_is_started_again_and_used() -> None:
    server = stdio_server(name="calc")
    server.args = ("-c", "import sys; sys.exit(3)")  # a start-up that fails: say, a bad deploy
    opened = OpenCount(server)
    async with server:
        with pytest.raises(MCPServerError, match=r"'calc' .* could not be used: it closed"):
            await server.list_tools()
        # Calls do not connect it (the LLM was offered no tool to call); the timer does.
        with pytest.raises(ToolError, match="'calc' is not connected, so 'add' cannot run"):
            await server.call_tool("add", {"a": 1, "b": 1})
        server.args = (APP, "stdio")  # fixed
        await eventually(lambda: bool(server.tools), "the server started again and listed")
        assert [t.name for t in await server.list_tools()] == SERVER_TOOLS
        assert await server.call_tool("add", {"a": 2, "b": 3}) == "5.0"
        assert opened.count == 2  # one connection for the job once it is up
    assert _other_tasks() == []


@pytest.mark.looptime
async def test_a_server_that_stays_down_is_tried_on_the_backoff_schedule_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Spawning a command that does not exist fails at once, without waiting for I/O: the
    # virtual clock is the only clock here.
    server = MCPServerStdio("/nonexistent/mcp-server", name="ghost")
    attempts = AttemptTimes(server)
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with server, server:  # the LLM and the ToolRouter
        with pytest.raises(MCPServerError) as first:
            await server.list_tools()
        # A listing every half second for a virtual 100 s (the nodes' starts, a user's
        # code): each fails at once with the first error.
        for _ in range(200):
            asked = loop.time()
            with pytest.raises(MCPServerError) as again:
                await server.list_tools()
            assert again.value is first.value and loop.time() == asked
            await asyncio.sleep(0.5)
        # The first at once, then 1, 2, 4, 8, 16 and 30 s apart (at most).
        assert [t - start for t in attempts.times] == [0, 1, 3, 7, 15, 31, 61, 91]
        assert server.tools == () and not server.connected
    assert _other_tasks() == []
    # The failure once, at ERROR with the remedy; each later attempt at DEBUG only.
    [error] = _logged(caplog, logging.ERROR)
    assert "'ghost'" in error and "FileNotFoundError" in error
    assert "Run `/nonexistent/mcp-server` by hand" in error
    assert _logged(caplog, logging.WARNING) == []
    retries = [m for m in _logged(caplog, logging.DEBUG) if "is still not reachable" in m]
    assert len(retries) == 7
    assert retries[0].startswith("MCP server 'ghost' is still not reachable (attempt 2): ")
    assert retries[0].endswith("; next in 2 s") and retries[-1].endswith("; next in 30 s")


async def test_no_request_waits_for_an_attempt_to_reach_a_down_server() -> None:
    # A server that starts and never answers (one hung mid-deploy): each attempt holds the
    # connection lock for the whole timeout.
    silent = MCPServerStdio(sys.executable, ["-c", "import time; time.sleep(60)"],
                            name="silent", timeout=3.0)
    opened = OpenCount(silent)
    fake = FakeLLM(["Hello.", "Hello again."], ttft=0.0, token_gap=0.0)
    runner, turns = mcp_agent(fake, silent, "mcp-first-connect")
    loop = asyncio.get_running_loop()
    await runner.start()  # the LLM waits for the first attempt (up to the timeout), once
    try:
        # The first attempt took 3 s, more than the 1 s to wait after it: the timer's
        # attempt starts as it fails, and holds the lock for 3 s.
        await eventually(lambda: opened.count == 2, "the timer's attempt started")
        lock = silent._lock
        assert lock is not None and lock.locked()

        asked = loop.time()
        turns.queue.put_nowait("hello")
        await answered(fake, 1)
        assert loop.time() - asked < 0.5  # not held up by the attempt
        assert _offered(fake, 0) == []

        asked = loop.time()
        with pytest.raises(MCPServerError, match="gave no tool list within 3 s"):
            await silent.list_tools()
        assert loop.time() - asked < 0.5 and lock.locked()  # nor is a listing
    finally:
        turns.queue.put_nowait(None)
        await runner.close()
    # Closed mid-attempt: the attempt and its process are ended with the graph.
    assert silent._retry is None and silent._closing == []
    assert _other_tasks() == []
