"""flowkit: voice AI agents for LiveKit as typed, checked, drawn and measured graphs.

The public API is what ``__all__`` lists; everything else is internal.
"""

from importlib.metadata import PackageNotFoundError, version

from flowkit.converters import find_converter, register_converter, unregister_converter
from flowkit.function_node import FunctionNode, node
from flowkit.graph import Edge, Graph, Subgraph
from flowkit.job import JobContext
from flowkit.messages import (
    AgentAudio,
    AgentState,
    AgentStateKind,
    AMDCategory,
    AMDVerdict,
    DTMFDigit,
    Image,
    Interrupt,
    InterruptAction,
    Message,
    Metrics,
    ParticipantUpdate,
    Playout,
    PlayoutEvent,
    ReplyRequest,
    SoundCue,
    SpeechPrefetch,
    TentativeTurn,
    TextChunk,
    TimedWord,
    ToolCall,
    ToolResult,
    ToolSpeech,
    Transcript,
    UserState,
    UserStateKind,
    UserTurn,
    VADEvent,
    VADEventKind,
    new_turn_id,
)
from flowkit.node import Node, NodeParams, NodeStyle
from flowkit.policy import ErrorPolicy
from flowkit.ports import AudioFormat, In, Out, Overflow
from flowkit.problems import GraphError, NodeDefinitionError, NodeParamsError, Problem, ProblemKind
from flowkit.runtime import (
    GraphFailed,
    GraphMetrics,
    GraphRunner,
    NodeContext,
    NodeError,
    Stage,
    for_each,
    from_async_iterable,
    to_async_iterator,
)
from flowkit.spec import GraphSpec
from flowkit.tools import (
    FunctionTool,
    MCPServer,
    MCPServerError,
    MCPServerHTTP,
    MCPServerSSE,
    MCPServerStdio,
    RunContext,
    StopResponse,
    ToolError,
    ToolSet,
    function_tool,
)

try:
    __version__ = version("flowkit-agents")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "AMDCategory",
    "AMDVerdict",
    "AgentAudio",
    "AgentState",
    "AgentStateKind",
    "AudioFormat",
    "DTMFDigit",
    "Edge",
    "ErrorPolicy",
    "FunctionNode",
    "FunctionTool",
    "Graph",
    "GraphError",
    "GraphFailed",
    "GraphMetrics",
    "GraphRunner",
    "GraphSpec",
    "Image",
    "In",
    "Interrupt",
    "InterruptAction",
    "JobContext",
    "MCPServer",
    "MCPServerError",
    "MCPServerHTTP",
    "MCPServerSSE",
    "MCPServerStdio",
    "Message",
    "Metrics",
    "Node",
    "NodeContext",
    "NodeDefinitionError",
    "NodeError",
    "NodeParams",
    "NodeParamsError",
    "NodeStyle",
    "Out",
    "Overflow",
    "ParticipantUpdate",
    "Playout",
    "PlayoutEvent",
    "Problem",
    "ProblemKind",
    "ReplyRequest",
    "RunContext",
    "SoundCue",
    "SpeechPrefetch",
    "Stage",
    "StopResponse",
    "Subgraph",
    "TentativeTurn",
    "TextChunk",
    "TimedWord",
    "ToolCall",
    "ToolError",
    "ToolResult",
    "ToolSet",
    "ToolSpeech",
    "Transcript",
    "UserState",
    "UserStateKind",
    "UserTurn",
    "VADEvent",
    "VADEventKind",
    "__version__",
    "find_converter",
    "for_each",
    "from_async_iterable",
    "function_tool",
    "new_turn_id",
    "node",
    "register_converter",
    "to_async_iterator",
    "unregister_converter",
]
