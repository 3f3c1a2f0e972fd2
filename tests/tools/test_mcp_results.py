"""From MCP's types to flowkit's tools: listed tools, the output of results, and how the
tool machinery runs an MCP tool (with the SDK's own result and tool types)."""

import base64
from typing import Any

import mcp.types as mt
import pytest

import flowkit as fk
from flowkit.tools import ToolError, ToolSet, ToolSpec, invoke_tool
from flowkit.tools.mcp.connection import CONNECTION_CLOSED
from flowkit.tools.mcp.convert import MCPTool, llm_name, mcp_tool, output_of

PNG = base64.b64encode(b"\x89PNG" + bytes(96)).decode()


def _result(*content: Any, structured: dict[str, Any] | None = None,
            error: bool = False) -> mt.CallToolResult:
    return mt.CallToolResult(content=list(content), structured_content=structured, is_error=error)


def test_text_parts_are_joined() -> None:
    result = _result(mt.TextContent(type="text", text="first"),
                     mt.TextContent(type="text", text="second"))
    assert output_of(result, "t") == "first\n\nsecond"


def test_images_audio_and_binary_resources_become_short_notes() -> None:
    result = _result(
        mt.TextContent(type="text", text="Here is the chart."),
        mt.ImageContent(type="image", data=PNG, mime_type="image/png"),
        mt.AudioContent(type="audio", data=base64.b64encode(bytes(10)).decode(),
                        mime_type="audio/wav"),
        mt.EmbeddedResource(type="resource", resource=mt.BlobResourceContents(
            uri="file:///report.pdf", mime_type="application/pdf",
            blob=base64.b64encode(bytes(5)).decode())),
    )
    assert output_of(result, "chart") == (
        "Here is the chart.\n\n[image (image/png, 100 bytes) not shown]\n\n"
        "[audio (audio/wav, 10 bytes) not shown]\n\n"
        "[resource file:///report.pdf (application/pdf, 5 bytes) not shown]"
    )


def test_text_resources_and_links_are_read() -> None:
    result = _result(
        mt.EmbeddedResource(type="resource", resource=mt.TextResourceContents(
            uri="file:///notes.txt", text="buy milk")),
        mt.ResourceLink(type="resource_link", name="notes", uri="file:///notes.txt"),
    )
    assert output_of(result, "notes") == "buy milk\n\n[resource 'notes': file:///notes.txt]"


def test_structured_content_is_sent_as_json_only_when_no_text_came_with_it() -> None:
    alone = _result(structured={"temperature": 21.5, "city": "Zürich"})
    assert output_of(alone, "w") == '{"temperature": 21.5, "city": "Zürich"}'
    both = _result(mt.TextContent(type="text", text="21.5 degrees"), structured={"t": 21.5})
    assert output_of(both, "w") == "21.5 degrees"


def test_an_error_result_raises_its_text_for_the_llm() -> None:
    with pytest.raises(ToolError, match=r"^no such city$"):
        output_of(_result(mt.TextContent(type="text", text="no such city"), error=True), "w")
    with pytest.raises(ToolError, match="'w' reported an error and gave no message"):
        output_of(_result(error=True), "w")


def test_an_empty_result_is_none_which_the_machinery_sends_as_done() -> None:
    assert output_of(_result(), "t") is None


def test_names_are_made_acceptable_to_llm_apis() -> None:
    assert llm_name("search") == "search"
    assert llm_name("github.search/repos", "gh_") == "gh_github_search_repos"
    assert len(llm_name("x" * 100)) == 64


def _listed(name: str, schema: dict[str, Any], description: str | None = "Search.") -> mt.Tool:
    return mt.Tool(name=name, description=description, input_schema=schema)


async def test_a_listed_tool_keeps_its_schema_and_is_called_by_its_remote_name() -> None:
    schema = {"type": "object", "title": "searchArguments",
              "properties": {"q": {"type": "string", "title": "Q"}}, "required": ["q"]}
    calls: list[tuple[str, dict[str, Any]]] = []

    async def call(name: str, arguments: dict[str, Any]) -> str:
        calls.append((name, arguments))
        return "found"

    tool = mcp_tool(_listed("docs.search", schema), server="docs", prefix="", call=call)
    assert isinstance(tool, MCPTool) and isinstance(tool, fk.FunctionTool)
    assert (tool.name, tool.remote_name, tool.server) == ("docs_search", "docs.search", "docs")
    assert tool.spec() == ToolSpec("docs_search", "Search.", {
        "type": "object", "properties": {"q": {"type": "string", "title": "Q"}},
        "required": ["q"],
    })
    assert schema["title"] == "searchArguments"  # the listing itself is left alone
    assert repr(tool) == (
        "<MCPTool 'docs_search' ('docs.search' on the server) of MCP server 'docs'>"
    )
    assert await tool.fn({"q": "x"}) == "found"
    assert calls == [("docs.search", {"q": "x"})]


def _call(name: str, arguments: str) -> fk.ToolCall:
    return fk.ToolCall(turn_id=1, call_id="c", name=name, arguments=arguments)


async def test_the_machinery_passes_the_arguments_through_and_reports_bad_json() -> None:
    seen: list[dict[str, Any]] = []

    async def call(name: str, arguments: dict[str, Any]) -> str | None:
        seen.append(arguments)
        if arguments.get("q") == "boom":
            raise ToolError("the index is down")
        return None

    schema = {"type": "object", "properties": {"q": {"type": "string"},
                                               "arguments": {"type": "integer"}}}
    tool = mcp_tool(_listed("search", schema), server="docs", prefix="", call=call)
    tools = ToolSet([tool])
    ctx: fk.RunContext[Any] = fk.RunContext(call=_call("search", "{}"), userdata=None)

    done = await invoke_tool(tools, _call("search", '{"q": "cats", "arguments": 2}'), ctx,
                             timeout=5)
    assert seen == [{"q": "cats", "arguments": 2}]  # nothing added, nothing dropped
    assert (done.result.output, done.result.is_error) == ("done", False)

    failed = await invoke_tool(tools, _call("search", '{"q": "boom"}'), ctx, timeout=5)
    assert (failed.result.output, failed.result.is_error) == ("the index is down", True)

    bad = await invoke_tool(tools, _call("search", '{"q": '), ctx, timeout=5)
    assert bad.result.is_error and "not valid JSON" in bad.result.output
    assert "expected {q: string, arguments: integer}" in bad.result.output
    assert len(seen) == 2


def test_the_connection_closed_code_is_the_sdks() -> None:
    # Kept as a number so that reading an error needs no import of the SDK.
    assert mt.CONNECTION_CLOSED == CONNECTION_CLOSED
