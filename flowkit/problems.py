"""What can be wrong with a node or a graph, said so that the reader knows what to do."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "GraphError",
    "NodeDefinitionError",
    "NodeParamsError",
    "Problem",
    "ProblemKind",
]


class ProblemKind(enum.StrEnum):
    """The kinds of problem graph validation reports."""

    UNKNOWN_PORT = "unknown-port"
    UNCONNECTED_INPUT = "unconnected-input"
    TYPE_MISMATCH = "type-mismatch"
    FORMAT_MISMATCH = "format-mismatch"
    UNDECLARED_CYCLE = "undeclared-cycle"
    DUPLICATE_NAME = "duplicate-name"
    AMBIGUOUS_PORT = "ambiguous-port"
    INVALID_LINK = "invalid-link"


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem found in a graph.

    Attributes:
        kind: What sort of problem.
        message: What is wrong, naming nodes, ports and types, and what to do about it.
        nodes: The names of the nodes involved, for tools that highlight them.
    """

    kind: ProblemKind
    message: str
    nodes: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"[{self.kind}] {self.message}"


class GraphError(Exception):
    """A graph failed validation. Carries every problem found, not just the first.

    Attributes:
        graph_name: The graph's name.
        problems: All problems, in the order they were found.
    """

    def __init__(self, graph_name: str, problems: list[Problem]) -> None:
        self.graph_name = graph_name
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        count = len(self.problems)
        super().__init__(
            f"graph {graph_name!r} has {count} problem{'s' if count != 1 else ''}:\n{lines}"
        )


class NodeDefinitionError(TypeError):
    """A node class is declared wrongly (a port without a type, no wire/run, ...)."""


class NodeParamsError(ValueError):
    """A node was given parameters its ``Params`` model rejects."""
