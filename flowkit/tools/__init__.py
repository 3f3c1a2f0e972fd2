"""Function tools: Python functions an LLM can call, and the machinery that runs them.

- :func:`function_tool` turns a sync or async function (or method) into a
  :class:`FunctionTool` with a name, a description and a JSON schema of its arguments;
- :class:`RunContext` is what a tool sees of the conversation while it runs (it speaks,
  waits for its words to be heard, runs tasks, and goes on in the background with
  ``await ctx.update(...)``, each through a session the ToolRouter gives it);
- :class:`ToolError` and :class:`StopResponse` let a tool steer the conversation;
- :func:`invoke_tool` / :func:`invoke_all` run calls and turn every outcome, failures
  included, into a :class:`~flowkit.messages.ToolResult` for the LLM;
- :class:`ToolSet` holds the tools one LLM may call and gives their specs to a provider;
- :class:`MCPServerStdio`, :class:`MCPServerHTTP` and :class:`MCPServerSSE` bring the tools
  of Model Context Protocol servers (:mod:`flowkit.tools.mcp`; the SDK is the ``mcp``
  extra, imported only when a server connects);
- :class:`AgentTask` is a sub-conversation a tool runs with ``await ctx.run_task(task)``
  and gets a result from (:mod:`flowkit.tools.task`); :class:`TaskGroup` runs several in a
  row, with a way back to earlier ones (:mod:`flowkit.tools.task_group`);
- :class:`Toolbox` is what a node holds: its function tools and its MCP servers' tools;
- :class:`AgentUpdate` changes the agent from code, not a tool: a handoff, or new
  instructions or tools (:mod:`flowkit.tools.agent_update`);
- :data:`send_dtmf` (and :func:`send_dtmf_tool`) lets the LLM press telephone keys on the
  job's phone line, for phone menus (:mod:`flowkit.tools.dtmf`);
- :data:`cancel_background` (and :func:`cancel_background_tool`) lets the LLM stop a
  ``cancellable`` tool that goes on in the background (:mod:`flowkit.tools.cancel_background`);
- :data:`end_call` (and :func:`end_call_tool`) lets the LLM end the call: the
  :class:`~flowkit.nodes.end_call.EndCall` node hangs up once the goodbye has played
  (:mod:`flowkit.tools.end_call`).

This package does not depend on the graph runtime; the tool router node builds on it.
"""

from flowkit.tools.agent_update import AgentUpdate
from flowkit.tools.cancel_background import cancel_background, cancel_background_tool
from flowkit.tools.context import (
    BackgroundControl,
    BackgroundSession,
    RunContext,
    TaskSession,
    ToolSession,
)
from flowkit.tools.dtmf import DEFAULT_KEY_GAP, DEFAULT_MAX_KEYS, send_dtmf, send_dtmf_tool
from flowkit.tools.end_call import end_call, end_call_tool
from flowkit.tools.errors import DuplicateToolError, StopResponse, ToolDefinitionError, ToolError
from flowkit.tools.function_tool import (
    DuplicatePolicy,
    FunctionTool,
    ToolSet,
    ToolSpec,
    function_tool,
    tools_of,
)
from flowkit.tools.invoke import (
    EMPTY_OUTPUT,
    AgentLike,
    ToolOutcome,
    deadline_paused,
    invoke_all,
    invoke_tool,
)
from flowkit.tools.mcp import (
    MCPServer,
    MCPServerError,
    MCPServerHTTP,
    MCPServerSSE,
    MCPServerStdio,
    MCPTool,
)
from flowkit.tools.schema import ToolSignature
from flowkit.tools.task import AgentTask, TaskEnded, TaskStarted
from flowkit.tools.task_group import TaskCompletedEvent, TaskGroup, TaskGroupResult
from flowkit.tools.toolbox import Toolbox, ToolClashError

__all__ = [
    "DEFAULT_KEY_GAP",
    "DEFAULT_MAX_KEYS",
    "EMPTY_OUTPUT",
    "AgentLike",
    "AgentTask",
    "AgentUpdate",
    "BackgroundControl",
    "BackgroundSession",
    "DuplicatePolicy",
    "DuplicateToolError",
    "FunctionTool",
    "MCPServer",
    "MCPServerError",
    "MCPServerHTTP",
    "MCPServerSSE",
    "MCPServerStdio",
    "MCPTool",
    "RunContext",
    "StopResponse",
    "TaskCompletedEvent",
    "TaskEnded",
    "TaskGroup",
    "TaskGroupResult",
    "TaskSession",
    "TaskStarted",
    "ToolClashError",
    "ToolDefinitionError",
    "ToolError",
    "ToolOutcome",
    "ToolSession",
    "ToolSet",
    "ToolSignature",
    "ToolSpec",
    "Toolbox",
    "cancel_background",
    "cancel_background_tool",
    "deadline_paused",
    "end_call",
    "end_call_tool",
    "function_tool",
    "invoke_all",
    "invoke_tool",
    "send_dtmf",
    "send_dtmf_tool",
    "tools_of",
]
