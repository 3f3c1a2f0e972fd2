"""The LLM and ToolRouter nodes with MCP servers: a scripted model asks for a server's tool
and the tool's real result (from the SDK's own server, over stdio or HTTP) must reach it."""

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from mcp_support import (
    SERVER_TOOLS,
    ServedOverHTTP,
    alive,
    free_port,
    served_over_http,
    stdio_server,
)
from support import Collect, Script, collected, to_billing

import flowkit as fk
from flowkit.nodes.llm import LLM
from flowkit.nodes.tools import ToolRouter
from flowkit.providers.llm import ToolCallChunk
from flowkit.testing import FakeLLM, FakeReply
from flowkit.tools import DuplicateToolError, ToolClashError, ToolDefinitionError
from flowkit.tools.mcp import MCPServer, MCPServerHTTP, MCPServerStdio


@pytest.fixture(autouse=True)
def _warnings_and_up(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="flowkit")


@pytest.fixture(scope="module")
def http() -> Iterator[ServedOverHTTP]:
    with served_over_http() as served:
        yield served


def _call(name: str, arguments: dict[str, Any] | None = None, call_id: str = "c1") -> FakeReply:
    return FakeReply(tool_calls=(ToolCallChunk(call_id, name, json.dumps(arguments or {})),))


def _run_graph(
    fake: FakeLLM,
    servers: list[MCPServer],
    *,
    tools: tuple[fk.FunctionTool, ...] = (),
    turns: tuple[str, ...] = ("hello",),
    gap: float = 0.1,
    router_servers: list[MCPServer] | None = None,
    timeout: float | None = 30.0,
) -> tuple[fk.Graph, Collect, LLM]:
    g = fk.Graph("mcp-agent")
    llm = LLM(fake, tools=tools, mcp_servers=servers)
    router = ToolRouter(tools, mcp_servers=servers if router_servers is None else router_servers,
                        timeout=timeout)
    script = Script(*[(i * gap, fk.UserTurn(turn_id=fk.new_turn_id(), text=text))
                      for i, text in enumerate(turns)])
    g.add(script, name="turns") >> g.add(llm, name="llm")
    llm.tool_calls >> g.add(router, name="tools") >> [llm.tool_results, g.add(Collect(),
                                                                            name="results")]
    text = g.add(Collect(), name="text")
    llm >> text
    return g, text, llm


def _results(g: fk.Graph) -> list[fk.ToolResult]:
    return collected(g.nodes["results"])


def _tool_outputs(fake: FakeLLM, request: int) -> list[tuple[str, str]]:
    history = fake.requests[request].history
    return [(m.name or "", m.content) for m in history if m.role == "tool"]


def _other_tasks() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]


async def test_the_llm_calls_a_stdio_servers_tool_and_reads_its_real_result() -> None:
    fake = FakeLLM([_call("add", {"a": 19, "b": 23}), "It is 42."], ttft=0.0, token_gap=0.0)
    g, text, _ = _run_graph(fake, [stdio_server()])
    await fk.GraphRunner(g).run()
    # The first request already offered the server's tools (the server takes ~0.8 s to start,
    # the turn came at once): the node waited for the listing.
    first = fake.requests[0]
    assert [t.name for t in first.tools] == SERVER_TOOLS
    add = first.tools[0]
    assert add.description == "Add two numbers." and add.parameters["required"] == ["a", "b"]
    assert _tool_outputs(fake, 1) == [("add", "42.0")]
    assert "".join(c.text for c in collected(text)) == "It is 42."
    assert _other_tasks() == []


async def test_the_llm_calls_an_http_servers_tool_with_headers(http: ServedOverHTTP) -> None:
    server = MCPServerHTTP(http.url, headers={"X-Token": "abc"})
    fake = FakeLLM([_call("whoami"), _call("add", {"a": 1, "b": 2}, "c2"), "Done."],
                   ttft=0.0, token_gap=0.0)
    g, _, _ = _run_graph(fake, [server])
    await fk.GraphRunner(g).run()
    assert _tool_outputs(fake, 2) == [("whoami", "token=abc"), ("add", "3.0")]


async def test_function_tools_and_mcp_tools_work_side_by_side() -> None:
    @fk.function_tool
    async def get_time(city: str) -> str:
        """The local time of a city."""
        return f"noon in {city}"

    fake = FakeLLM([
        FakeReply(tool_calls=(ToolCallChunk("c1", "get_time", '{"city": "Oslo"}'),
                              ToolCallChunk("c2", "add", '{"a": 1, "b": 1}'))),
        "Noon, and two.",
    ], ttft=0.0, token_gap=0.0)
    g, _, _ = _run_graph(fake, [stdio_server()], tools=(get_time,))
    await fk.GraphRunner(g).run()
    assert [t.name for t in fake.requests[0].tools] == ["get_time", *SERVER_TOOLS]
    assert _tool_outputs(fake, 1) == [("get_time", "noon in Oslo"), ("add", "2.0")]


async def test_the_server_process_ends_with_the_graph() -> None:
    fake = FakeLLM([_call("pid"), "Noted."], ttft=0.0, token_gap=0.0)
    g, _, _ = _run_graph(fake, [stdio_server()])
    await fk.GraphRunner(g).run()
    [(_, pid)] = _tool_outputs(fake, 1)
    assert not alive(int(pid))
    assert _other_tasks() == []


async def test_closing_a_running_graph_ends_the_server_process() -> None:
    # The turns stay open like a live room: the graph ends only because it is closed.
    fake = FakeLLM([_call("pid"), "Noted."], ttft=0.0, token_gap=0.0)
    server = stdio_server()
    g = fk.Graph("mcp-live")
    llm = LLM(fake, mcp_servers=[server])
    turn = fk.UserTurn(turn_id=fk.new_turn_id(), text="pid?")
    g.add(Script((0.0, turn), hold=True), name="turns") >> g.add(llm, name="llm")
    llm.tool_calls >> g.add(ToolRouter(mcp_servers=[server]), name="tools") >> llm.tool_results
    llm >> g.add(Collect(), name="text")
    runner = fk.GraphRunner(g)
    await runner.start()
    for _ in range(200):
        if len(fake.requests) == 2 and fake.requests[1].completed:
            break
        await asyncio.sleep(0.05)
    [(_, pid)] = _tool_outputs(fake, 1)
    assert alive(int(pid))
    await runner.close()
    assert not alive(int(pid))
    assert runner.pending_tasks() == [] and _other_tasks() == []


async def test_an_unreachable_server_is_left_out_and_the_job_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @fk.function_tool
    async def get_time() -> str:
        """The time."""
        return "noon"

    refused = MCPServerHTTP(f"http://127.0.0.1:{free_port()}/mcp", name="crm")
    missing = MCPServerStdio("/nonexistent/mcp-server", name="files")
    fake = FakeLLM([_call("get_time"), "It is noon."], ttft=0.0, token_gap=0.0)
    g, text, _ = _run_graph(fake, [refused, missing, stdio_server(name="calc")],
                            tools=(get_time,))
    await fk.GraphRunner(g).run()
    assert [t.name for t in fake.requests[0].tools] == ["get_time", *SERVER_TOOLS]
    assert _tool_outputs(fake, 1) == [("get_time", "noon")]
    assert "".join(c.text for c in collected(text)) == "It is noon."
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    # Once per server, though the LLM and the ToolRouter both asked for its tools.
    assert len(errors) == 2
    [crm] = [e for e in errors if "MCP server 'crm'" in e]
    [files] = [e for e in errors if "MCP server 'files'" in e]
    assert "ConnectError" in crm and "FileNotFoundError" in files
    assert all("The job goes on without its tools" in e for e in errors)
    assert _other_tasks() == []


async def test_a_tool_that_raises_gives_the_llm_an_error_result() -> None:
    fake = FakeLLM([_call("fail", {"reason": "the vault is shut"}), "Sorry."],
                   ttft=0.0, token_gap=0.0)
    g, _, _ = _run_graph(fake, [stdio_server()])
    await fk.GraphRunner(g).run()
    [(name, output)] = _tool_outputs(fake, 1)
    assert name == "fail" and output.endswith("cannot do that: the vault is shut")
    [result] = _results(g)
    assert result.is_error and result.output == output


async def test_a_call_that_hangs_times_out_and_the_server_stays_usable() -> None:
    fake = FakeLLM([_call("slow", {"seconds": 60}), _call("add", {"a": 2, "b": 2}, "c2"),
                    "Done."], ttft=0.0, token_gap=0.0)
    g, _, _ = _run_graph(fake, [stdio_server()], timeout=1.0)
    loop = asyncio.get_running_loop()
    start = loop.time()
    await fk.GraphRunner(g).run()
    assert loop.time() - start < 10
    [(_, timed_out)] = _tool_outputs(fake, 1)
    assert "timed out after 1 s" in timed_out
    assert _tool_outputs(fake, 2)[-1] == ("add", "4.0")


async def test_a_crash_mid_call_is_an_error_result_and_the_next_call_reconnects() -> None:
    fake = FakeLLM([_call("crash"), _call("add", {"a": 1, "b": 1}, "c2"), "It is back."],
                   ttft=0.0, token_gap=0.0)
    g, text, _ = _run_graph(fake, [stdio_server(name="calc")])
    await fk.GraphRunner(g).run()
    outputs = _tool_outputs(fake, 2)
    assert "'calc' stopped answering while 'crash' ran" in outputs[0][1]
    assert outputs[1] == ("add", "2.0")  # on a new process
    assert "".join(c.text for c in collected(text)) == "It is back."
    assert _other_tasks() == []


async def test_garbage_from_the_server_is_an_error_result() -> None:
    fake = FakeLLM([_call("broken"), "Sorry."], ttft=0.0, token_gap=0.0)
    g, _, _ = _run_graph(fake, [stdio_server("raw", name="raw")])
    await fk.GraphRunner(g).run()
    [(_, output)] = _tool_outputs(fake, 1)
    assert "could not be read" in output


async def test_a_name_clash_with_a_function_tool_is_reported_and_the_function_wins(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @fk.function_tool
    async def add(a: int, b: int) -> str:
        """Our own adder."""
        return f"ours: {a + b}"

    fake = FakeLLM([_call("add", {"a": 1, "b": 2}), "Three."], ttft=0.0, token_gap=0.0)
    g, _, _ = _run_graph(fake, [stdio_server(name="calc")], tools=(add,))
    await fk.GraphRunner(g).run()
    names = [t.name for t in fake.requests[0].tools]
    assert names.count("add") == 1 and names[0] == "add"
    assert fake.requests[0].tools[0].description == "Our own adder."
    assert _tool_outputs(fake, 1) == [("add", "ours: 3")]
    [clash] = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert "tool 'add' of MCP server 'calc' has the name of function tool 'add'" in clash
    assert "test_mcp_nodes" in clash  # where the function tool is defined
    assert "tool_prefix='calc_'" in clash and "allowed_tools=[...]" in clash
    assert "@function_tool(name=...)" in clash


async def test_two_servers_with_the_same_tools_clash_unless_prefixed(
    http: ServedOverHTTP, caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakeLLM([_call("remote_add", {"a": 5, "b": 5}), "Ten."], ttft=0.0, token_gap=0.0)
    local, remote = stdio_server(name="local"), MCPServerHTTP(http.url, name="remote")
    g, _, _ = _run_graph(fake, [local, remote])
    await fk.GraphRunner(g).run()
    assert [t.name for t in fake.requests[0].tools] == SERVER_TOOLS  # remote's left out
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == len(SERVER_TOOLS)
    assert "tool 'add' of MCP server 'remote' has the name of tool 'add' of MCP server " \
        "'local'" in errors[0]
    assert "tool_prefix='remote_'" in errors[0]

    caplog.clear()
    fake = FakeLLM([_call("remote_add", {"a": 5, "b": 5}), "Ten."], ttft=0.0, token_gap=0.0)
    remote = MCPServerHTTP(http.url, name="remote", tool_prefix="remote_")
    g, _, _ = _run_graph(fake, [stdio_server(name="local"), remote])
    await fk.GraphRunner(g).run()
    assert [t.name for t in fake.requests[0].tools][-3:] == [
        "remote_pid", "remote_whoami", "remote_grow",
    ]
    assert _tool_outputs(fake, 1) == [("remote_add", "10.0")]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_clash_known_when_the_graph_is_built_is_an_error_then() -> None:
    @fk.function_tool
    async def add(a: int, b: int) -> int:
        """Our own adder."""
        return a + b

    with pytest.raises(ToolClashError) as clash:
        LLM(FakeLLM(), tools=[add], mcp_servers=[stdio_server(name="calc", allowed_tools=["add"])])
    assert isinstance(clash.value, DuplicateToolError)
    message = str(clash.value)
    assert "function tool 'add'" in message and "MCP server 'calc'" in message
    assert "tool_prefix='calc_'" in message
    # With a prefix the names differ, and the node is built.
    LLM(FakeLLM(), tools=[add],
        mcp_servers=[stdio_server(name="calc", allowed_tools=["add"], tool_prefix="calc_")])
    with pytest.raises(ToolClashError, match="tool 'add' of MCP server 'b'"):
        ToolRouter(mcp_servers=[stdio_server(name="a", allowed_tools=["add"]),
                                stdio_server(name="b", allowed_tools=["add"])])


def test_mcp_servers_must_be_servers_and_given_once() -> None:
    server = stdio_server()
    with pytest.raises(ToolDefinitionError, match="not an MCP server"):
        LLM(FakeLLM(), mcp_servers=["http://localhost/mcp"])  # type: ignore[list-item]
    with pytest.raises(ToolDefinitionError, match="one server twice"):
        ToolRouter(mcp_servers=[server, server])


async def test_a_handoff_swaps_the_function_tools_and_keeps_the_servers_tools() -> None:
    fake = FakeLLM([
        _call("to_billing"),
        "Billing here.",
        FakeReply(tool_calls=(ToolCallChunk("c2", "refund", '{"order": "7"}'),
                              ToolCallChunk("c3", "add", '{"a": 40, "b": 2}'))),
        "Refunded 42.",
    ], ttft=0.0, token_gap=0.0)
    g, _, _ = _run_graph(fake, [stdio_server()], tools=(to_billing,),
                           turns=("refund please", "order 7, 42 euros"), gap=3.0)
    await fk.GraphRunner(g).run()
    assert [t.name for t in fake.requests[0].tools] == ["to_billing", *SERVER_TOOLS]
    assert [t.name for t in fake.requests[2].tools] == ["refund", *SERVER_TOOLS]
    assert fake.requests[2].history[0].content == "You are the billing agent."
    assert _tool_outputs(fake, 3)[-2:] == [("refund", "refunded 7"), ("add", "42.0")]


def test_the_spec_and_drawing_show_the_servers_readably() -> None:
    from flowkit.viz import render

    server = MCPServerHTTP("https://crm.example.com/mcp?key=secret",
                           headers={"Authorization": "Bearer secret"}, tool_prefix="crm_")
    g = fk.Graph("spec")
    llm = LLM(FakeLLM(), mcp_servers=[server])
    g.add(Script(), name="turns") >> g.add(llm, name="llm")
    llm.tool_calls >> g.add(ToolRouter(mcp_servers=[server]), name="tools") >> llm.tool_results
    llm >> g.add(Collect(), name="text")
    spec = g.spec()
    shown = ("MCPServerHTTP(url='https://crm.example.com/mcp', headers=['Authorization'], "
             "tool_prefix='crm_')")
    assert spec.node("llm").params["mcp_servers"] == [shown]
    assert spec.node("tools").params["mcp_servers"] == [shown]
    dumped = spec.model_dump_json()
    assert "secret" not in dumped and " at 0x" not in dumped
    assert "crm.example.com" in render(spec, "text")
