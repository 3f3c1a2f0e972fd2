"""The agent ends the call: a tool the LLM calls when the user is done.

:data:`end_call` is a function tool the LLM calls when the conversation is over ("that's
all, thanks, bye"). The tool itself only answers the LLM with what to do next (by default
"say goodbye to the user"), so the LLM's reply after it is the goodbye. Hanging up is done
by :class:`~flowkit.nodes.end_call.EndCall`, a node that reads the tool router's results
and the sink's playout reports: once the reply of the tool's turn has played (or was cut
off), it deletes the room, which disconnects everyone, phone callers included, and ends the
job. Give the same tool to the LLM node, the router and the node::

    from flowkit.nodes.end_call import EndCall
    from flowkit.tools.end_call import end_call

    llm = g.add(LLM(model, instructions=..., tools=[end_call]))
    router = g.add(ToolRouter([end_call]))
    llm.tool_calls >> router >> llm.tool_results
    hang_up = g.add(EndCall(end_call))
    router.results >> hang_up.results
    sink.playout >> hang_up.playout

This is LiveKit Agents' ``EndCallTool`` (its description's advice to the model is written
afresh here), with the hang-up as a node of the graph, where it can be seen and measured.
:func:`end_call_tool` makes the tool with another name, description or instruction.
"""

from __future__ import annotations

from flowkit.tools.context import RunContext
from flowkit.tools.function_tool import FunctionTool, function_tool

__all__ = ["DEFAULT_END_INSTRUCTIONS", "END_CALL_DESCRIPTION", "end_call", "end_call_tool"]

END_CALL_DESCRIPTION = (
    "End the call and hang up. Call it when the user has clearly said they are done (for "
    "example \"that's all, goodbye\"). Do not call it when the user asks to wait, to hold or "
    "to be transferred, or when you are not sure they want to end the call. After this "
    "tool, only your goodbye is spoken; nothing else can happen in the call."
)
"""What the LLM is told the tool does."""

DEFAULT_END_INSTRUCTIONS = "The call ends after your next reply: say goodbye to the user."
"""The tool's answer to the LLM, so that its next reply is the goodbye."""


def end_call_tool(
    *,
    name: str = "end_call",
    description: str = END_CALL_DESCRIPTION,
    end_instructions: str = DEFAULT_END_INSTRUCTIONS,
) -> FunctionTool:
    """Make a tool that ends the call after the agent's goodbye (see the module).

    Args:
        name: The tool's name, as the LLM calls it (:class:`~flowkit.nodes.end_call.EndCall`
            recognises its results by it: give the node the tool itself).
        description: What the LLM is told; add your own rules for when to hang up.
        end_instructions: The tool's answer to the LLM, which its next reply follows.

    Returns:
        The tool.

    Raises:
        ToolDefinitionError: ``name`` is not a valid tool name.
    """

    async def end_call(ctx: RunContext) -> str:
        return end_instructions

    return function_tool(name=name, description=description)(end_call)


end_call = end_call_tool()
"""The tool, named ``end_call``, with the default description and instructions."""
