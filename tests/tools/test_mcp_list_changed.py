"""A server whose tools change mid-job (``notifications/tools/list_changed``): listed again,
over stdio and HTTP, with the 2026 protocol (a subscription) and the 2025 one (sent
unasked); what the nodes' toolboxes and the ToolRouter then offer and run."""

import logging
from collections.abc import Iterator

import pytest
from mcp_support import (
    SERVER_TOOLS,
    OpenCount,
    ServedOverHTTP,
    answered,
    eventually,
    mcp_agent,
    stdio_server,
    tool_call,
)

import flowkit as fk
from flowkit.testing import FakeLLM
from flowkit.tools import Toolbox
from flowkit.tools.mcp import MCPServer, MCPServerHTTP


@pytest.fixture(autouse=True)
def _info_and_up(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="flowkit")


@pytest.fixture
def http() -> Iterator[ServedOverHTTP]:
    # One per test: growing a tool changes the server for whoever connects next.
    served = ServedOverHTTP()
    yield served
    served.stop()


def _names(server: MCPServer) -> list[str]:
    return [tool.name for tool in server.tools]


def _server(
    transport: str, protocol: str, request: pytest.FixtureRequest | None = None
) -> MCPServer:
    if transport == "stdio":
        server: MCPServer = stdio_server(name="calc")
    else:
        assert request is not None
        server = MCPServerHTTP(request.getfixturevalue("http").url, name="calc")
    if protocol == "2025":
        server._mode = "legacy"  # the handshake of servers made before 2026
    return server


@pytest.mark.parametrize("protocol", ["2026", "2025"])
@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_a_tool_the_server_adds_is_listed_and_called(
    transport: str, protocol: str, request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = _server(transport, protocol, request)
    opened = OpenCount(server)
    async with server:
        assert [t.name for t in await server.list_tools()] == SERVER_TOOLS
        assert await server.call_tool("grow", {"name": "echo1"}) == "added echo1"
        await eventually(lambda: "echo1" in _names(server), "the server's tools listed again")
        assert _names(server) == [*SERVER_TOOLS, "echo1"]
        # The next asker gets the new listing, from the same connection.
        assert await server.list_tools() is server.tools
        assert await server.call_tool("echo1", {"text": "hi"}) == "echo1: hi"
        assert opened.count == 1
    assert "MCP server 'calc' changed its tools: added 'echo1'" in caplog.text


async def test_a_tool_that_changes_the_tools_returns_once_they_are_listed() -> None:
    # Over stdio with the 2025 protocol the notification comes before the result, on the
    # same stream: the result waits for the new listing, so whoever reads it sees the tool.
    server = _server("stdio", "2025")
    async with server:
        await server.list_tools()
        before = server.tools
        assert await server.call_tool("grow", {"name": "echo1"}) == "added echo1"
        assert server.tools is not before and _names(server) == [*SERVER_TOOLS, "echo1"]


async def test_allowed_tools_and_the_prefix_apply_to_a_new_listing() -> None:
    server = stdio_server(name="calc", allowed_tools=["add", "grow", "echo1"], tool_prefix="c_")
    async with server:
        assert [t.name for t in await server.list_tools()] == ["c_add", "c_grow"]
        await server.call_tool("grow", {"name": "echo2"})  # not allowed: not offered
        await server.call_tool("grow", {"name": "echo1"})
        await eventually(lambda: "c_echo1" in _names(server), "the server's tools listed again")
        assert _names(server) == ["c_add", "c_grow", "c_echo1"]


async def test_the_toolbox_follows_the_servers_tools(caplog: pytest.LogCaptureFixture) -> None:
    @fk.function_tool
    async def get_time() -> str:
        """The time."""
        return "noon"

    @fk.function_tool
    async def refund(order: str) -> str:
        """Refund an order."""
        return f"refunded {order}"

    server = stdio_server(name="calc")
    toolbox = Toolbox([get_time], [server])
    logger = logging.getLogger("flowkit.test")
    async with toolbox.opened(logger) as tools:
        assert [t.name for t in tools] == ["get_time", *SERVER_TOOLS]
        await server.call_tool("grow", {"name": "echo1"})
        await eventually(lambda: "echo1" in _names(server), "the server's tools listed again")
        assert [t.name for t in toolbox.toolset] == ["get_time", *SERVER_TOOLS, "echo1"]
        assert [spec.name for spec in toolbox.specs()][-1] == "echo1"
        # A handoff keeps the server's tools, the new one included.
        toolbox.hand_over([refund], logger)
        assert [t.name for t in toolbox.toolset] == ["refund", *SERVER_TOOLS, "echo1"]

        # A new tool named like a function tool is left out, and reported once.
        await server.call_tool("grow", {"name": "refund"})
        await eventually(lambda: "refund" in _names(server), "the server's tools listed again")
        assert [t.name for t in toolbox.toolset] == ["refund", *SERVER_TOOLS, "echo1"]
        assert toolbox.toolset["refund"].description == "Refund an order."
        clashes = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(clashes) == 1
        assert "tool 'refund' of MCP server 'calc' has the name of function tool 'refund'" \
            in clashes[0]
    # Closed: the function tools only.
    assert [t.name for t in toolbox.toolset] == ["refund"]


async def test_the_llm_offers_and_the_router_runs_a_tool_the_server_added_mid_job() -> None:
    server = stdio_server(name="calc")
    fake = FakeLLM([
        tool_call("grow", {"name": "echo1"}, "c1"), "Added.",
        tool_call("echo1", {"text": "hi"}, "c2"), "Echoed.",
    ], ttft=0.0, token_gap=0.0)
    runner, turns = mcp_agent(fake, server, "mcp-changes")
    await runner.start()
    try:
        turns.queue.put_nowait("add a tool")
        await answered(fake, 2)
        await eventually(lambda: "echo1" in _names(server), "the server's tools listed again")
        turns.queue.put_nowait("use it")
        await answered(fake, 4)
    finally:
        turns.queue.put_nowait(None)
        await runner.close()
    outputs = [(m.name, m.content) for m in fake.requests[3].history if m.role == "tool"]
    assert outputs == [("grow", "added echo1"), ("echo1", "echo1: hi")]
    # the LLM offers the tool from the first request after the server said its tools changed
    offered = [{spec.name for spec in request.tools} for request in fake.requests]
    assert "echo1" not in offered[0] and "echo1" in offered[2]
