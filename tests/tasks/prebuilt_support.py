"""Calling a prebuilt task's tools as the ToolRouter does, in a chosen conversation turn."""

import json
from typing import Any

from flowkit.messages import ToolCall, ToolResult
from flowkit.tools import AgentTask, RunContext, invoke_tool


async def call_tool(
    task: AgentTask[Any], name: str, *, turn: int = 1, **arguments: Any
) -> ToolResult:
    """Call the task's tool ``name`` with ``arguments`` (validated as the LLM's would be)."""
    call = ToolCall(turn_id=turn, call_id=f"call-{turn}-{name}", name=name,
                    arguments=json.dumps(arguments))
    outcome = await invoke_tool(task.tools, call, RunContext(call=call, userdata=None),
                                timeout=None)
    return outcome.result


async def confirmed(task: AgentTask[Any], name: str, *, turn: int = 2) -> Any:
    """Confirm in a later turn than the update's, and return the task's result."""
    result = await call_tool(task, name, turn=turn)
    assert not result.is_error, result.output
    assert task.done()
    return await task.result()
