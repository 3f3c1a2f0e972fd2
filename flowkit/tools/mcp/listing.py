"""A server's tool list: read page by page, narrowed to ``allowed_tools``, and compared.

Nothing here imports the ``mcp`` SDK: the client and its answers are read by their
attributes.
"""

from __future__ import annotations

import logging
from typing import Any

from flowkit.tools.mcp.convert import Caller, MCPTool, mcp_tool

__all__ = ["MAX_PAGES", "changes", "chosen_tools", "read_listing"]

logger = logging.getLogger("flowkit.tools.mcp")

MAX_PAGES = 100
"""Pages of ``tools/list`` read at most: a server whose listing never ends cannot hang a job."""


async def read_listing(client: Any) -> list[Any]:
    """Every tool the server lists.

    Args:
        client: The SDK's connected ``Client``.

    Returns:
        The ``mcp.types.Tool`` of every page, in the server's order.
    """
    tools: list[Any] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


def chosen_tools(
    listed: list[Any],
    *,
    server: str,
    allowed_tools: tuple[str, ...] | None,
    prefix: str,
    call: Caller,
) -> tuple[MCPTool, ...]:
    """The listed tools to offer, named for the LLM.

    Args:
        listed: What :func:`read_listing` read.
        server: The server's name, for messages.
        allowed_tools: Offer only these (names on the server); a name the server does not
            list is logged as a warning. ``None``: all.
        prefix: The server's ``tool_prefix``.
        call: What runs a tool on the server.

    Returns:
        A new tuple (holders tell a new listing by identity).
    """
    if allowed_tools is not None:
        names = {str(tool.name) for tool in listed}
        missing = [name for name in allowed_tools if name not in names]
        if missing:
            logger.warning(
                "MCP server %r does not list %s named in allowed_tools; it lists %s",
                server, ", ".join(map(repr, missing)),
                ", ".join(sorted(map(repr, names))) or "no tools",
            )
        listed = [tool for tool in listed if tool.name in allowed_tools]
    return tuple(mcp_tool(tool, server=server, prefix=prefix, call=call) for tool in listed)


def changes(before: tuple[MCPTool, ...], after: tuple[MCPTool, ...]) -> str:
    """What a new listing changed, for the logs: the names added and removed.

    Args:
        before: The tools listed before.
        after: The tools listed now.

    Returns:
        ``"added 'a'; removed 'b'"``, or ``"no change (N)"``.
    """
    old, new = {tool.name for tool in before}, {tool.name for tool in after}
    parts = [
        f"{verb} {', '.join(map(repr, sorted(names)))}"
        for verb, names in (("added", new - old), ("removed", old - new))
        if names
    ]
    return "; ".join(parts) or f"no change ({len(after)})"
