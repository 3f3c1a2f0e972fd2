"""The model stops a tool that goes on in the background, when the user calls the work off.

A tool in the background (``await ctx.update(...)``, :mod:`flowkit.nodes.tool_background`)
runs until it returns; when the user changes their mind ("never mind the flight"), the
model can stop it with :data:`cancel_background`, as LiveKit Agents' cancellation tool for
its async tools. Only tools made with ``@function_tool(cancellable=True)`` can be stopped:
stopping work halfway is not safe for every tool. Give the tool to the LLM node and to the
ToolRouter, beside the tools it stops::

    @fk.function_tool(cancellable=True)
    async def search_flights(ctx: fk.RunContext, city: str) -> str: ...

    tools = [search_flights, cancel_background]
    llm = g.add(LLM(model, tools=tools))
    router = g.add(ToolRouter(tools))

A stopped call's tool is cancelled (``asyncio.CancelledError`` at its ``await``) and its
later updates and result never come; the tool's answer tells the model what was stopped, or,
when nothing could be, what runs in the background now and what to do.
"""

from __future__ import annotations

from flowkit.tools.context import BackgroundControl, RunContext
from flowkit.tools.function_tool import FunctionTool, function_tool

__all__ = ["CANCEL_BACKGROUND_DESCRIPTION", "cancel_background", "cancel_background_tool"]

CANCEL_BACKGROUND_DESCRIPTION = (
    "Stop a tool that is still running in the background, when the user no longer wants "
    "what it is doing (they called it off, or changed their mind). Its result will then "
    "never come. Only call it when the user asked for the work to stop."
)
"""What the LLM is told the tool does."""


def cancel_background_tool(
    *, name: str = "cancel_background", description: str = CANCEL_BACKGROUND_DESCRIPTION,
) -> FunctionTool:
    """Make a tool that stops calls of a tool in the background (see the module).

    Args:
        name: The tool's name, as the LLM calls it.
        description: What the LLM is told.

    Returns:
        The tool.

    Raises:
        ToolDefinitionError: ``name`` is not a valid tool name.
    """

    async def cancel_background(ctx: RunContext, tool: str) -> str:
        """Stop the calls of a tool in the background.

        Args:
            ctx: The call's context (not shown to the model).
            tool: The name of the tool to stop, as you called it.
        """
        session = ctx.session
        if not isinstance(session, BackgroundControl):
            raise RuntimeError(
                f"tool {ctx.call.name!r} runs without a session that can stop tools in the "
                "background; in a graph the ToolRouter runs it"
            )
        stopped = session.cancel_background(tool)
        calls = ", ".join(call.arguments or "{}" for call in stopped)
        return f"Stopped {tool!r} (called with {calls}); its result will not come."

    return function_tool(name=name, description=description)(cancel_background)


cancel_background = cancel_background_tool()
"""The tool, named ``cancel_background``, with the default description."""
