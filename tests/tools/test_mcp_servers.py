"""MCP servers on their own, against a real server made with the SDK: over stdio (a
subprocess), streamable HTTP and SSE (uvicorn on 127.0.0.1); connecting once, failures of
every kind, and closing."""

import asyncio
import json
import logging
import sys
import time
from collections.abc import Iterator

import pytest
from mcp_support import (
    SERVER_TOOLS,
    OpenCount,
    ServedOverHTTP,
    alive,
    free_port,
    served_over_http,
    stdio_server,
)

from flowkit.tools import ToolError
from flowkit.tools.mcp import MCPServerError, MCPServerHTTP, MCPServerSSE, MCPServerStdio


@pytest.fixture(autouse=True)
def _warnings_and_up(caplog: pytest.LogCaptureFixture) -> None:
    # The shared conftest leaves caplog at CRITICAL; these tests read the errors logged.
    caplog.set_level(logging.WARNING, logger="flowkit")


@pytest.fixture(scope="module")
def http() -> Iterator[ServedOverHTTP]:
    with served_over_http() as served:
        yield served


def _other_tasks() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]


async def test_stdio_lists_the_tools_with_their_schemas_and_calls_one() -> None:
    async with stdio_server() as server:
        tools = await server.list_tools()
        assert [t.name for t in tools] == SERVER_TOOLS
        add = tools[0]
        assert add.description == "Add two numbers."
        assert add.parameters == {
            "type": "object",
            "properties": {"a": {"title": "A", "type": "number"},
                           "b": {"title": "B", "type": "number"}},
            "required": ["a", "b"],
        }
        assert await server.call_tool("add", {"a": 2, "b": 3.5}) == "5.5"
        pid = int(await server.call_tool("pid", {}) or 0)
        assert alive(pid)
    # Leaving the last hold ends the process and the connection's task.
    assert not alive(pid)
    assert _other_tasks() == []


async def test_http_sends_the_headers_and_calls_the_tools(http: ServedOverHTTP) -> None:
    server = MCPServerHTTP(http.url, headers={"X-Token": "s3cret"})
    async with server:
        assert [t.name for t in await server.list_tools()] == SERVER_TOOLS
        assert await server.call_tool("add", {"a": 1, "b": 1}) == "2.0"
        assert await server.call_tool("whoami", {}) == "token=s3cret"
    assert _other_tasks() == []


async def test_sse_lists_and_calls() -> None:
    with served_over_http("sse") as sse:
        async with MCPServerSSE(sse.url) as server:
            assert "add" in [t.name for t in await server.list_tools()]
            assert await server.call_tool("add", {"a": 4, "b": 4}) == "8.0"


async def test_two_users_asking_at_once_get_one_connection() -> None:
    server = stdio_server()
    opened = OpenCount(server)
    async with server, server:
        first, second = await asyncio.gather(server.list_tools(), server.list_tools())
        assert first is second
        assert opened.count == 1
    # Released by both: a later use connects again, to a new process.
    async with server:
        await server.list_tools()
    assert opened.count == 2


async def test_a_command_that_does_not_exist_fails_once_with_the_remedy(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = MCPServerStdio("/nonexistent/mcp-server", ["--port", "1"], name="ghost")
    async with server:
        with pytest.raises(MCPServerError) as failure:
            await server.list_tools()
        # Asked again (the ToolRouter after the LLM): the same failure, no second attempt.
        with pytest.raises(MCPServerError) as again:
            await server.list_tools()
        assert again.value is failure.value
    message = str(failure.value)
    assert failure.value.server == "ghost"
    assert "MCP server 'ghost'" in message and "FileNotFoundError" in message
    assert "the job goes on without its tools" in message.lower()
    assert "Run `/nonexistent/mcp-server --port 1` by hand" in message
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [message]


async def test_a_server_that_exits_at_once_fails_with_a_readable_reason() -> None:
    dies = MCPServerStdio(sys.executable, ["-c", "import sys; sys.exit(3)"], name="dies")
    async with dies:
        with pytest.raises(MCPServerError) as failure:
            await dies.list_tools()
    assert "'dies'" in str(failure.value)
    assert "could not be used: it closed the connection before answering." in str(failure.value)
    assert f"Run `{sys.executable} -c 'import sys; sys.exit(3)'` by hand" in str(failure.value)


async def test_a_refused_port_fails_with_the_connection_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/mcp"
    async with MCPServerHTTP(url) as server:
        start = time.monotonic()
        with pytest.raises(MCPServerError, match="ConnectError") as failure:
            await server.list_tools()
        assert time.monotonic() - start < 5
    assert "Check that the server is up and serves MCP at" in str(failure.value)
    assert _other_tasks() == []


async def test_a_server_that_never_answers_times_out_and_its_process_is_ended() -> None:
    silent = MCPServerStdio(
        sys.executable, ["-c", "import os, time; print(os.getpid(), flush=True); time.sleep(60)"],
        timeout=1.0,
    )
    async with silent:
        start = time.monotonic()
        with pytest.raises(MCPServerError, match="gave no tool list within 1 s"):
            await silent.list_tools()
        # The failure is reported when the time is up; closing the process is not waited for.
        assert time.monotonic() - start < 2.5  # closing (2 s' grace, a kill) would add more
        assert silent._closing
    assert silent._closing == [] and _other_tasks() == []


async def test_a_tool_error_reaches_the_caller_as_a_tool_error() -> None:
    async with stdio_server() as server:
        await server.list_tools()
        with pytest.raises(ToolError, match="cannot do that: no reason"):
            await server.call_tool("fail", {"reason": "no reason"})
        with pytest.raises(ToolError, match="validation error"):
            await server.call_tool("add", {"a": "one"})
        # The connection is still good.
        assert await server.call_tool("add", {"a": 1, "b": 2}) == "3.0"


async def test_a_cancelled_call_leaves_the_connection_usable() -> None:
    async with stdio_server() as server:
        await server.list_tools()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await server.call_tool("slow", {"seconds": 30})
        assert await server.call_tool("slow", {"seconds": 0.01}) == "waited 0.01 s"


async def test_a_server_that_dies_mid_call_fails_that_call_and_the_next_reconnects(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = stdio_server(name="calc")
    opened = OpenCount(server)
    async with server:
        await server.list_tools()
        pid = int(await server.call_tool("pid", {}) or 0)
        with pytest.raises(ToolError, match="'calc' stopped answering while 'crash' ran"):
            await server.call_tool("crash", {})
        assert "closed the connection during a call to 'crash'" in caplog.text
        assert "not sent again, as it may have taken effect" in caplog.text
        # The next call runs on a new process; the crashing call was not sent again (that
        # would have started a third process, and crashed it).
        assert await server.call_tool("add", {"a": 1, "b": 2}) == "3.0"
        new_pid = int(await server.call_tool("pid", {}) or 0)
        assert opened.count == 2
        assert new_pid != pid and alive(new_pid) and not alive(pid)
    assert not alive(new_pid)
    assert _other_tasks() == []


async def test_a_server_that_dies_mid_call_over_http() -> None:
    served = ServedOverHTTP()
    try:
        async with MCPServerHTTP(served.url, name="remote") as server:
            await server.list_tools()
            call = asyncio.ensure_future(server.call_tool("slow", {"seconds": 30}))
            await asyncio.sleep(0.3)
            served.process.kill()
            with pytest.raises(ToolError, match="'remote' stopped answering"):
                await asyncio.wait_for(call, 10)
    finally:
        served.stop()
    assert _other_tasks() == []


async def test_garbage_in_a_result_is_an_error_for_the_caller(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with stdio_server("raw", name="raw") as server:
        assert [t.name for t in await server.list_tools()] == ["broken"]
        with pytest.raises(ToolError, match="sent an answer to 'broken' that could not be read"):
            await server.call_tool("broken", {})
    assert "MCP server 'raw'" in caplog.text and "ValidationError" in caplog.text


async def test_a_line_that_is_not_json_rpc_is_skipped() -> None:
    async with stdio_server() as server:
        await server.list_tools()
        assert await server.call_tool("garble", {}) == "garbled"
        assert await server.call_tool("add", {"a": 1, "b": 2}) == "3.0"


async def test_allowed_tools_and_prefix_choose_and_rename(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with stdio_server(allowed_tools=["add", "nope"], tool_prefix="calc_") as server:
        [add] = await server.list_tools()
        assert (add.name, add.remote_name) == ("calc_add", "add")
        assert await add.fn({"a": 2, "b": 2}) == "4.0"
    assert "does not list 'nope' named in allowed_tools" in caplog.text


async def test_closing_while_connecting_ends_the_process() -> None:
    server = stdio_server()
    task = asyncio.ensure_future(server.list_tools())
    await asyncio.sleep(0.3)  # the process has started; the handshake is not done
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await server.aclose()
    assert _other_tasks() == []


def test_repr_names_the_transport_without_secrets() -> None:
    http = MCPServerHTTP(
        "https://user:pw@crm.example.com:8443/mcp?key=abc", headers={"Authorization": "x"},
        tool_prefix="crm_",
    )
    assert repr(http) == (
        "MCPServerHTTP(url='https://crm.example.com:8443/mcp', headers=['Authorization'], "
        "tool_prefix='crm_')"
    )
    assert http.name == "crm.example.com"
    stdio = MCPServerStdio("npx", ["-y", "@acme/files", "/srv"], env={"TOKEN": "t"}, name="files")
    assert repr(stdio) == (
        "MCPServerStdio(name='files', command='npx', args=['-y', '@acme/files', '/srv'], "
        "env=['TOKEN'])"
    )
    assert MCPServerStdio("npx", ["-y", "@acme/files"]).name == "npx files"
    assert "s3cret" not in json.dumps(repr(MCPServerSSE("http://h/sse", headers={"k": "s3cret"})))


def test_bad_settings_are_refused_when_the_graph_is_built() -> None:
    with pytest.raises(ValueError, match="timeout"):
        MCPServerHTTP("http://localhost/mcp", timeout=0)
    with pytest.raises(ValueError, match="tool_prefix"):
        MCPServerHTTP("http://localhost/mcp", tool_prefix="crm.")
    with pytest.raises(ValueError, match="full http:// or https:// address"):
        MCPServerHTTP("localhost:8000/mcp")
