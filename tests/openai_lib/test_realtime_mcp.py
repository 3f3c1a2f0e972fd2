"""RealtimeModel with MCP servers: their tools in the session, their calls through the router.

The MCP server is the SDK's own (tests/tools/mcp_server_app.py) in a subprocess over stdio,
the Realtime server the test double: real sockets and processes, so real time.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable

import pytest
from fake_server import close_clients  # noqa: F401 (a fixture)
from flowkit_openai.testing.realtime_script import ScriptedReply
from flowkit_openai.testing.realtime_server import RealtimeTestServer
from realtime_helpers import agent
from support import speech
from tools.mcp_support import SERVER_TOOLS, free_port, stdio_server

import flowkit as fk
from flowkit.tools.mcp import MCPServerHTTP, MCPServerStdio

pytestmark = pytest.mark.usefixtures("close_clients")

QUESTION = "What is nineteen plus twenty three?"


@pytest.fixture
async def server() -> AsyncIterator[RealtimeTestServer]:
    async with RealtimeTestServer(user_transcripts=[QUESTION, "And another?"]) as fake:
        yield fake


@fk.function_tool
async def get_time() -> str:
    """The time of day."""
    return "noon"


class Sales:
    """The agent a tool hands the conversation to."""

    instructions = "You sell."

    @property
    def tools(self) -> list[fk.FunctionTool]:
        """Its function tools."""
        return [get_time]


@fk.function_tool
async def to_sales() -> Sales:
    """Hand the conversation to sales."""
    return Sales()


def _question() -> list[object]:
    return speech(("silence", 0.3), ("voice", 0.6), ("silence", 1.8))


def _tool_names(session: dict[str, object]) -> list[str]:
    return [tool["name"] for tool in session["tools"]]  # type: ignore[attr-defined]


def _outputs(server: RealtimeTestServer) -> list[str]:
    return [e["item"]["output"] for e in server.of_type("conversation.item.create")
            if e["item"]["type"] == "function_call_output"]


def _kinds(server: RealtimeTestServer) -> list[str]:
    return [e["type"] for e in server.events if e["type"] != "input_audio_buffer.append"]


async def _when(condition: Callable[[], bool], action: Callable[[], object]) -> None:
    """Do ``action`` once ``condition`` holds (polled; the test's timeout bounds it)."""
    while not condition():
        await asyncio.sleep(0.02)
    result = action()
    if asyncio.iscoroutine(result):
        await result


async def test_the_session_offers_the_servers_tools_and_a_call_reaches_the_server(
    server: RealtimeTestServer,
) -> None:
    server.replies.extend([
        ScriptedReply("Let me add.", audio_ms=300,
                      tool_call=("add", json.dumps({"a": 19, "b": 23}))),
        ScriptedReply("It is {output}.", audio_ms=300),
    ])
    a = agent(server.base_url, _question(), tools=[get_time], mcp_servers=[stdio_server()])
    runner = await a.run()
    assert runner.node_errors == []
    # The first session.update already had the server's tools (the server takes a while to
    # start): the connection waited for the listing. Function tools come first.
    first = server.sessions[0]
    assert _tool_names(first) == ["get_time", *SERVER_TOOLS]
    [add] = [tool for tool in first["tools"] if tool["name"] == "add"]
    assert add["type"] == "function" and add["description"] == "Add two numbers."
    assert add["parameters"]["required"] == ["a", "b"]
    # The call went through the ToolRouter to the MCP server, its real result to the model.
    [call] = a.calls.items
    assert (call.name, json.loads(call.arguments)) == ("add", {"a": 19, "b": 23})
    assert _outputs(server) == ["42.0"]
    assert _kinds(server) == ["session.update", "conversation.item.create", "response.create"]
    assert [t.text for t in a.agents.items] == ["Let me add. It is 42.0."]


async def test_an_unreachable_server_is_left_out_and_the_other_tools_work(
    server: RealtimeTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="flowkit")
    server.replies.extend([
        ScriptedReply("", tool_call=("get_time", "{}")),
        ScriptedReply("It is {output}.", audio_ms=300),
    ])
    refused = MCPServerHTTP(f"http://127.0.0.1:{free_port()}/mcp", name="crm")
    missing = MCPServerStdio("/nonexistent/mcp-server", name="files")
    a = agent(server.base_url, _question(), tools=[get_time],
              mcp_servers=[refused, missing, stdio_server(name="calc")])
    runner = await a.run()
    assert runner.node_errors == []
    assert _tool_names(server.sessions[0]) == ["get_time", *SERVER_TOOLS]
    assert _outputs(server) == ["noon"]
    assert [t.text for t in a.agents.items] == ["It is noon."]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2  # once per server, though the model and the router both asked
    assert any("MCP server 'crm'" in e for e in errors)
    assert any("MCP server 'files'" in e for e in errors)


async def test_a_tool_the_server_adds_is_sent_in_a_new_session_update_and_called(
    server: RealtimeTestServer,
) -> None:
    server.replies.extend([
        ScriptedReply("", tool_call=("grow", json.dumps({"name": "shout"}))),
        ScriptedReply("", tool_call=("shout", json.dumps({"text": "hi"}))),
        ScriptedReply("Done: {output}.", audio_ms=300),
    ])
    a = agent(server.base_url, _question(), mcp_servers=[stdio_server()])
    runner = await a.run()
    assert runner.node_errors == []
    first, second = server.sessions
    assert _tool_names(first) == SERVER_TOOLS
    assert _tool_names(second) == [*SERVER_TOOLS, "shout"]
    # The new tools went ahead of the result, so the response asked for next could call it.
    assert _kinds(server) == [
        "session.update", "session.update", "conversation.item.create", "response.create",
        "conversation.item.create", "response.create",
    ]
    assert _outputs(server) == ["added shout", "shout: hi"]
    assert [t.text for t in a.agents.items] == ["Done: shout: hi."]


async def test_a_handoff_swaps_the_function_tools_and_keeps_the_servers_tools(
    server: RealtimeTestServer,
) -> None:
    server.replies.extend([
        ScriptedReply("", tool_call=("to_sales", "{}")),
        ScriptedReply("", tool_call=("add", json.dumps({"a": 40, "b": 2}))),
        ScriptedReply("Sales here: {output}.", audio_ms=300),
    ])
    a = agent(server.base_url, _question(), tools=[to_sales], mcp_servers=[stdio_server()])
    runner = await a.run()
    assert runner.node_errors == []
    first, second = server.sessions
    assert _tool_names(first) == ["to_sales", *SERVER_TOOLS]
    assert _tool_names(second) == ["get_time", *SERVER_TOOLS]
    assert second["instructions"] == "You sell."
    # The server's tool still works for the agent handed to.
    assert _outputs(server)[-1] == "42.0"
    assert [t.text for t in a.agents.items] == ["Sales here: 42.0."]


async def test_a_reconnection_sends_the_servers_tools_again(server: RealtimeTestServer) -> None:
    server.replies.append(ScriptedReply("Forty two.", audio_ms=300))
    # The question comes after the drop and the reconnection.
    voice = speech(("silence", 3.0), ("voice", 0.6), ("silence", 1.5))
    a = agent(server.base_url, voice, mcp_servers=[stdio_server()])
    drop = asyncio.ensure_future(_when(lambda: len(server.sessions) == 1, server.drop))
    runner = await a.run()
    await drop
    assert runner.node_errors == []
    assert server.connections == 2
    first, second = server.sessions
    assert _tool_names(first) == _tool_names(second) == SERVER_TOOLS
    assert [t.text for t in a.agents.items] == ["Forty two."]
