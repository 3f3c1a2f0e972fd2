"""The tools one node offers or runs: its agent's function tools and its MCP servers' tools.

The two kinds live differently. Function tools are known when the graph is built and swap
when a tool hands the conversation to another agent. An MCP server's tools are known only
once the server answers, and they belong to the session, as with LiveKit Agents'
``AgentSession(mcp_servers=...)``: they stay across handoffs. They may also change while
the job runs (the server said its tools changed, or it was reconnected and lists others):
:attr:`Toolbox.toolset` is merged again when it is read after a server's list changed.

Names must be unique, since the LLM calls tools by name. A clash that can be seen when the
graph is built (a server's ``allowed_tools`` against a function tool) raises
:class:`ToolClashError` then; one found when a server lists its tools is logged as an error
naming both tools and the remedy, and the MCP tool is left out (function tools win, then
servers in the order given), so the job goes on with a well-defined tool set.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import PurePath
from typing import Any

from flowkit.providers.chat import ToolSpec
from flowkit.tools.errors import DuplicateToolError, ToolDefinitionError
from flowkit.tools.function_tool import FunctionTool, ToolSet
from flowkit.tools.invoke import AgentLike
from flowkit.tools.mcp.convert import MCPTool
from flowkit.tools.mcp.server import MCPServer, MCPServerError
from flowkit.tools.task import TaskEnded, TaskStarted

__all__ = ["ToolClashError", "Toolbox"]

Logger = logging.Logger | logging.LoggerAdapter[Any]


class ToolClashError(DuplicateToolError):
    """An MCP server's tool would have the name of another tool.

    Args:
        name: The shared name.
        first: The tool that has the name.
        second: The MCP tool that would have it too.
        remedy: What to change.
    """

    def __init__(self, name: str, first: str, second: str, remedy: str) -> None:
        ValueError.__init__(self, f"two tools are named {name!r}: {first} and {second}; {remedy}")
        self.name = name


class Toolbox:
    """Function tools (swapped by handoffs) and MCP servers' tools (kept for the session).

    Args:
        tools: The function tools.
        mcp_servers: The MCP servers whose tools are added once they are listed.

    Raises:
        DuplicateToolError: Two function tools share a name, or a server's
            ``allowed_tools`` (with its prefix) names a function tool or another server's.
        ToolDefinitionError: An element is not a tool or not an MCP server, or a server is
            given twice.
    """

    def __init__(
        self, tools: Sequence[FunctionTool] = (), mcp_servers: Sequence[MCPServer] = ()
    ) -> None:
        self._functions = ToolSet(tools)
        for server in mcp_servers:
            if not isinstance(server, MCPServer):
                raise ToolDefinitionError(
                    f"mcp_servers got {server!r}, which is not an MCP server; use "
                    "flowkit.tools.mcp.MCPServerStdio, MCPServerHTTP or MCPServerSSE"
                )
        if len({id(server) for server in mcp_servers}) != len(mcp_servers):
            raise ToolDefinitionError(
                f"mcp_servers lists one server twice ({list(mcp_servers)!r}); give each once"
            )
        self.servers = tuple(mcp_servers)
        self._check_known_names()
        # While opened: each server's tools as merged into _toolset, and where to report.
        self._listed: tuple[tuple[MCPTool, ...], ...] = ()
        self._logger: Logger | None = None
        self._toolset = self._functions
        # The agents kept aside while tasks run, innermost last: (instructions, tools).
        self._set_aside: list[tuple[str | None, ToolSet]] = []
        # For each running task, innermost last: the call that started it, if the task has
        # its own history (the LLM sees the conversation from that call on), else None.
        self._history_from: list[str | None] = []

    @property
    def functions(self) -> ToolSet:
        """The function tools in use (the current agent's)."""
        return self._functions

    @property
    def toolset(self) -> ToolSet:
        """The tools in use: the function tools, then each server's as it last listed them."""
        if self._logger is not None:
            listed = tuple(server.tools for server in self.servers)
            # A server's new listing is a new tuple: merged again only when one changed.
            if any(now is not then for now, then in zip(listed, self._listed, strict=True)):
                self._listed = listed
                self._toolset = self._merged(self._logger)
        return self._toolset

    def specs(self) -> tuple[ToolSpec, ...]:
        """Every tool in use, as the LLM provider is told about it: function tools first."""
        return tuple(self.toolset.specs())

    @asynccontextmanager
    async def opened(self, logger: Logger) -> AsyncIterator[ToolSet]:
        """Hold the servers' connections, list their tools, and give the whole tool set.

        The servers are listed concurrently; one that fails is left out (it logged why, and
        its tools join the set when its retry timer connects it) and the others are used.
        On leaving, the servers are released: the last node to leave closes them.

        Args:
            logger: Where clashes are reported (the node's logger names graph and node).

        Yields:
            The tools as listed now: the function tools, then each server's (read
            :attr:`toolset` for the tools of later listings).
        """
        async with AsyncExitStack() as stack:
            for server in self.servers:
                await stack.enter_async_context(server)
            await asyncio.gather(*(_list(server, logger) for server in self.servers))
            self._listed = tuple(server.tools for server in self.servers)
            self._logger = logger
            self._toolset = self._merged(logger)
            try:
                yield self._toolset
            finally:
                # The MCP tools go with the connection; the next opening lists them again.
                self._logger = None
                self._listed = ()
                self._toolset = self._functions

    def switch(
        self, handoff: Any, instructions: str | None, logger: Logger, *, call_id: str = ""
    ) -> str | None:
        """Follow a tool result's ``handoff``; the instructions to use from now on.

        An agent swaps the function tools for its own. :class:`~flowkit.tools.task.TaskStarted`
        keeps the current instructions and tools aside first, and
        :class:`~flowkit.tools.task.TaskEnded` brings back the ones kept aside, then follows
        its ``then`` (an agent handed to, or the next task's start). Anything else changes
        nothing.

        Args:
            handoff: The result's ``handoff``, or ``None``.
            instructions: The instructions in use now (a node without any passes ``None``).
            logger: Where clashes with the MCP tools are reported.
            call_id: The id of the call the result answers: where the conversation of a
                task with its own history starts (see :attr:`history_from`).
        """
        if isinstance(handoff, TaskStarted):
            self._set_aside.append((instructions, self._functions))
            self._history_from.append(call_id if handoff.task.own_history else None)
            handoff = handoff.task
        elif isinstance(handoff, TaskEnded):
            if self._set_aside:
                instructions, functions = self._set_aside.pop()
                self._history_from.pop()
                self.hand_over(tuple(functions), logger)
            # The tool that ran the task may have handed over, or started its next task.
            return self.switch(handoff.then, instructions, logger, call_id=call_id)
        if isinstance(handoff, AgentLike):
            self.hand_over(tuple(handoff.tools), logger)
            return handoff.instructions or None
        return instructions

    @property
    def history_from(self) -> str | None:
        """The call from which the LLM sees the conversation, or ``None`` for all of it.

        That is the call that started the innermost running task with its own history
        (``AgentTask(own_history=True)``); a task nested in it without one sees what it sees.
        """
        return next((call for call in reversed(self._history_from) if call), None)

    def hand_over(self, tools: Sequence[FunctionTool], logger: Logger) -> ToolSet:
        """Swap the function tools for another agent's; the MCP servers' tools stay.

        Args:
            tools: The new agent's tools.
            logger: Where clashes with the MCP tools are reported.

        Returns:
            The new tool set.
        """
        self._functions = ToolSet(tools)
        self._toolset = self._merged(logger)
        return self._toolset

    def _merged(self, logger: Logger) -> ToolSet:
        owners = {tool.name: f"function tool {tool.name!r} ({_where(tool)})"
                  for tool in self._functions}
        kept: list[FunctionTool] = list(self._functions)
        for server, tools in zip(self.servers, self._listed, strict=False):  # () if closed
            for tool in tools:
                owner = owners.get(tool.name)
                if owner is None:
                    owners[tool.name] = _describe(tool)
                    kept.append(tool)
                    continue
                message = (
                    f"{_describe(tool)} has the name of {owner}, and the LLM calls tools by "
                    f"name: the MCP tool is left out. {_remedy(server, owner)}"
                )
                if message not in server.reported:  # the LLM and the ToolRouter both find it
                    server.reported.add(message)
                    logger.error("%s", message)
        return ToolSet(kept)

    def _check_known_names(self) -> None:
        owners = {tool.name: f"function tool {tool.name!r} ({_where(tool)})"
                  for tool in self._functions}
        for server in self.servers:
            for name in sorted(server.llm_names() or ()):
                mine = f"tool {name!r} of MCP server {server.name!r} (in its allowed_tools)"
                if name in owners:
                    raise ToolClashError(name, owners[name], mine, _remedy(server, owners[name]))
                owners[name] = mine


async def _list(server: MCPServer, logger: Logger) -> None:
    try:
        await server.list_tools()
    except MCPServerError:
        # The server logged why, once; every node using it goes on without its tools.
        logger.debug("going on without the tools of MCP server %r", server.name)


def _describe(tool: MCPTool) -> str:
    renamed = f" (offered as {tool.name!r})" if tool.name != tool.remote_name else ""
    return f"tool {tool.remote_name!r} of MCP server {tool.server!r}{renamed}"


def _where(tool: FunctionTool) -> str:
    return f"{getattr(tool.fn, '__module__', '?')}.{getattr(tool.fn, '__qualname__', tool.fn)}"


def _remedy(server: MCPServer, owner: str) -> str:
    # A short prefix from the server's name: "crm.example.com" -> "crm", "python app.py" -> "app".
    last = PurePath(server.name.split()[-1] if server.name.split() else "mcp").stem
    prefix = (re.findall(r"[A-Za-z0-9_-]+", last) or ["mcp"])[0][:20].lower()
    fix = (
        f"Give the server a prefix ({type(server).__name__}(..., tool_prefix='{prefix}_')) "
        "or leave the tool out with allowed_tools=[...]"
    )
    if owner.startswith("function tool"):
        return f"{fix}, or rename the function tool with @function_tool(name=...)."
    return f"{fix}."
