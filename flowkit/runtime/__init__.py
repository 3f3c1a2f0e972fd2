"""The runtime: runs a graph on an asyncio loop, measures it, and closes it cleanly."""

from flowkit.runtime.bridges import from_async_iterable, to_async_iterator
from flowkit.runtime.context import NodeContext
from flowkit.runtime.errors import GraphFailed, NodeError
from flowkit.runtime.loop_watch import LoopStall, LoopWatch
from flowkit.runtime.metrics import EdgeMetrics, GraphMetrics, NodeMetrics
from flowkit.runtime.queues import for_each
from flowkit.runtime.runner import GraphRunner, RunnerState
from flowkit.runtime.stage import Stage

__all__ = [
    "EdgeMetrics",
    "GraphFailed",
    "GraphMetrics",
    "GraphRunner",
    "LoopStall",
    "LoopWatch",
    "NodeContext",
    "NodeError",
    "NodeMetrics",
    "RunnerState",
    "Stage",
    "for_each",
    "from_async_iterable",
    "to_async_iterator",
]
