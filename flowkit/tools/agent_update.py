"""Changing the agent from code, as LiveKit Agents' ``update_agent`` and ``update_tools`` do.

A tool changes the agent by returning another one (a handoff). Code that is not a tool (a
node that reacts to a room event, a key pressed, a record loaded mid-call) sends an
:class:`AgentUpdate` instead (LiveKit's ``update_agent``, ``update_instructions`` and
``update_tools``), to every node that keeps the agent's instructions and tools:
the LLM node (or a RealtimeModel) and the ToolRouter, which must agree on the tools (the
ToolRouter's link check refuses a graph in which a source reaches only one of them)::

    updates = g.add(MyUpdates())                 # a node with an Out[AgentUpdate]
    updates >> [llm.updates, router.updates]

Each node applies it as it comes: the next request the model gets has the new
instructions and tools (a request under way finishes as it began), and the router runs the
new tools from then on. It starts no reply: send a ``ReplyRequest`` after it for the new
agent to speak first. While a task runs (:mod:`flowkit.tools.task`) it changes the task's
agent; the agent kept aside for the task's end is left as it was.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flowkit.messages import Message
from flowkit.tools.function_tool import FunctionTool, ToolSet
from flowkit.tools.invoke import AgentLike
from flowkit.tools.toolbox import Toolbox

__all__ = ["AgentUpdate"]

Logger = logging.Logger | logging.LoggerAdapter[Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentUpdate(Message):
    """A change to the agent talking now, from code (see the module).

    Give ``agent`` to hand the conversation over (``update_agent``), or ``instructions``,
    ``tools`` or both to change the agent talking now (``update_instructions``,
    ``update_tools``; what is not given stays). MCP servers' tools stay either way.

    Attributes:
        agent: The agent to hand over to: its instructions and function tools.
        instructions: New system instructions.
        tools: New function tools, in place of the current ones.

    Raises:
        ValueError: Nothing to change, or ``agent`` with ``instructions`` or ``tools``.
        DuplicateToolError: Two of ``tools`` share a name.
    """

    agent: AgentLike | None = None
    instructions: str | None = None
    tools: tuple[FunctionTool, ...] | None = None

    def __post_init__(self) -> None:
        if self.agent is not None and (self.instructions is not None or self.tools is not None):
            raise ValueError(
                "AgentUpdate(agent=...) hands over to that agent, with its own instructions "
                "and tools; give either agent, or instructions and/or tools for the agent "
                "talking now"
            )
        if self.agent is None and self.instructions is None and self.tools is None:
            raise ValueError(
                "AgentUpdate() changes nothing; give agent=, instructions= or tools="
            )
        if self.agent is not None and not isinstance(self.agent, AgentLike):
            raise ValueError(
                f"AgentUpdate(agent={self.agent!r}): not an agent; give an object with "
                "instructions and tools"
            )
        if self.tools is not None:
            ToolSet(self.tools)  # a duplicate name is refused here, not in each node

    def applied(
        self, toolbox: Toolbox, instructions: str | None, logger: Logger
    ) -> str | None:
        """Apply the update to a node's :class:`~flowkit.tools.Toolbox`.

        Args:
            toolbox: The node's toolbox.
            instructions: The node's instructions now (``None`` for a node without any).
            logger: Where clashes with the MCP servers' tools are reported.

        Returns:
            The instructions to use from now on.
        """
        if self.agent is not None:
            return toolbox.switch(self.agent, instructions, logger)
        if self.tools is not None:
            toolbox.hand_over(self.tools, logger)
        return self.instructions if self.instructions is not None else instructions
