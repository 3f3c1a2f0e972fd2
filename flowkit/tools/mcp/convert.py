"""From MCP to flowkit's tool machinery: listed tools and the results of calls.

A listed tool becomes an :class:`MCPTool`; a ``CallToolResult`` becomes the text the LLM
reads.

An :class:`MCPTool` is a :class:`~flowkit.tools.FunctionTool` whose function forwards the
LLM's arguments to the server, so :class:`~flowkit.tools.ToolSet`,
:func:`~flowkit.tools.invoke_tool` and the nodes run it as they run any tool: the server's
JSON schema is what the LLM is shown, and the server validates the arguments (an MCP server
answers bad arguments with an error result, which reaches the LLM like a ``ToolError``).

Nothing here imports the ``mcp`` SDK: results are read by their attributes.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pydantic

from flowkit.tools.errors import ToolError
from flowkit.tools.function_tool import FunctionTool
from flowkit.tools.schema import ToolSignature

__all__ = ["MCPTool", "llm_name", "mcp_tool", "output_of"]

# What OpenAI, Anthropic and Gemini accept as a tool name; MCP also allows '.' and '/'.
_INVALID = re.compile(r"[^A-Za-z0-9_-]")
_MAX_NAME = 64

Caller = Callable[[str, dict[str, Any]], Awaitable[str | None]]
"""Calls a server's tool by its name on the server, with the arguments; returns its output."""


class MCPArguments(pydantic.BaseModel):
    """Whatever object the LLM sent, passed through: the MCP server validates it."""

    model_config = pydantic.ConfigDict(extra="allow")

    @property
    def arguments(self) -> dict[str, Any]:
        """The arguments as the LLM sent them."""
        return dict(self.model_extra or {})


@dataclass(frozen=True, slots=True, eq=False)
class MCPTool(FunctionTool):
    """A tool an MCP server lists, runnable by the tool machinery like any function tool.

    Attributes:
        server: The name of the server it comes from (for messages).
        remote_name: The tool's name on the server (``name`` may carry a prefix).
    """

    server: str = ""
    remote_name: str = ""

    def __repr__(self) -> str:
        renamed = f" ({self.remote_name!r} on the server)" if self.remote_name != self.name else ""
        return f"<MCPTool {self.name!r}{renamed} of MCP server {self.server!r}>"


def llm_name(remote_name: str, prefix: str = "") -> str:
    """The name the LLM calls a server's tool by.

    Args:
        remote_name: The tool's name on the server.
        prefix: The server's ``tool_prefix``.

    Returns:
        ``prefix + remote_name`` with every character LLM APIs refuse (MCP allows ``.`` and
        ``/``) replaced by ``_``, cut to 64 characters.
    """
    return _INVALID.sub("_", prefix + remote_name)[:_MAX_NAME]


def mcp_tool(tool: Any, *, server: str, prefix: str, call: Caller) -> MCPTool:
    """Turn one tool of a ``tools/list`` answer into an :class:`MCPTool`.

    Args:
        tool: An ``mcp.types.Tool`` (name, description, title, input_schema).
        server: The server's name, for messages.
        prefix: Put before the tool's name (the server's ``tool_prefix``).
        call: What runs the tool on the server.

    Returns:
        The tool, named for the LLM (see :func:`llm_name`).
    """
    remote = str(tool.name)
    name = llm_name(remote, prefix)

    async def run_remote(arguments: dict[str, Any]) -> str | None:
        return await call(remote, arguments)

    # What logs and tracebacks show for the function: the server and the tool.
    run_remote.__qualname__ = run_remote.__name__ = f"{server}.{remote}"
    run_remote.__module__ = "mcp"
    description = str(tool.description or getattr(tool, "title", None) or "")
    signature = ToolSignature(
        name=name,
        description=description,
        args_model=MCPArguments,
        parameters=_parameters(tool.input_schema),
        context_param=None,
        takes_self=False,
        positional=("arguments",),
        keyword_only=(),
    )
    return MCPTool(run_remote, signature, server=server, remote_name=remote)


def _parameters(schema: Mapping[str, Any] | None) -> dict[str, Any]:
    # Copied: the tool keeps it for the whole job and providers may read it concurrently.
    parameters = copy.deepcopy(dict(schema or {}))
    parameters.pop("title", None)  # a generated name ("addArguments") costs tokens, says nothing
    parameters["type"] = "object"
    parameters.setdefault("properties", {})
    return parameters


def output_of(result: Any, tool: str) -> str | None:
    """The text the LLM reads for a ``CallToolResult``.

    Text parts are joined by blank lines; an image, audio or binary resource becomes a short
    note (the LLM node sends text only); a resource link names its URI; structured content
    is sent as JSON when no text came with it (servers are asked to send both, the text
    being the JSON).

    Args:
        result: An ``mcp.types.CallToolResult``.
        tool: The tool's name, for the error message.

    Returns:
        The output, or ``None`` for a result with nothing in it (sent as ``"done"``).

    Raises:
        ToolError: The result has ``isError`` set: its text goes to the LLM as the error.
    """
    parts = [text for block in result.content or () if (text := _block_text(block))]
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    if result.is_error:
        raise ToolError(
            "\n\n".join(parts) or f"Tool {tool!r} reported an error and gave no message."
        )
    return "\n\n".join(parts) or None


def _block_text(block: Any) -> str:
    kind = getattr(block, "type", None)
    if kind == "text":
        return str(block.text)
    if kind in ("image", "audio"):
        return f"[{kind} ({block.mime_type}, {_decoded_size(block.data)}) not shown]"
    if kind == "resource_link":
        return f"[resource {block.name!r}: {block.uri}]"
    if kind == "resource":
        resource = block.resource
        text = getattr(resource, "text", None)
        if text is not None:
            return str(text)
        mime = resource.mime_type or "binary"
        return f"[resource {resource.uri} ({mime}, {_decoded_size(resource.blob)}) not shown]"
    return f"[{kind or type(block).__name__} content not shown]"


def _decoded_size(data: str) -> str:
    try:
        size = len(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError):
        return "undecodable data"
    return f"{size} bytes"
