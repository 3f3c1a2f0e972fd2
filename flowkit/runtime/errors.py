"""What the runtime reports when a node fails."""

from __future__ import annotations

from dataclasses import dataclass

from flowkit.policy import ErrorPolicy

__all__ = ["GraphFailed", "NodeError"]


@dataclass(frozen=True, slots=True)
class NodeError:
    """One error caught at a node's boundary, as sent on the runner's error stream.

    Attributes:
        graph: The graph's name.
        node: The failing node's name.
        error: The exception the node raised.
        policy: The node's error policy.
        action: What the runtime did: ``"skipped"``, ``"restarted"`` or ``"ended graph"``.
    """

    graph: str
    node: str
    error: BaseException
    policy: ErrorPolicy
    action: str

    def __str__(self) -> str:
        return (
            f"node {self.node!r} of graph {self.graph!r} raised "
            f"{type(self.error).__name__}: {self.error} ({self.action})"
        )


class GraphFailed(Exception):  # noqa: N818 - reads as what happened: "raise GraphFailed"
    """A graph ended: a node failed under ``END_GRAPH`` or ran out of restarts.

    Attributes:
        node_error: The error that ended the graph.
    """

    def __init__(self, node_error: NodeError) -> None:
        self.node_error = node_error
        super().__init__(
            f"graph {node_error.graph!r} ended: {node_error}; fix the node, or give it "
            "error_policy='skip' or 'restart' in g.add(...) to keep the graph running"
        )
