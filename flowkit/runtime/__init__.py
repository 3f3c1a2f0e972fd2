"""The runtime: runs a graph on an asyncio loop, measures it, and closes it cleanly."""

from flowkit.runtime.bridges import from_async_iterable, to_async_iterator
from flowkit.runtime.context import NodeContext
from flowkit.runtime.errors import GraphFailed, NodeError
from flowkit.runtime.metrics import EdgeMetrics, GraphMetrics, NodeMetrics
from flowkit.runtime.runner import GraphRunner, RunnerState

__all__ = [
    "EdgeMetrics",
    "GraphFailed",
    "GraphMetrics",
    "GraphRunner",
    "NodeContext",
    "NodeError",
    "NodeMetrics",
    "RunnerState",
    "from_async_iterable",
    "to_async_iterator",
]
