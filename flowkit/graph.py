"""The graph builder: nodes, the edges between their ports, and subgraphs.

A :class:`Graph` is private and mutable while it is built; :meth:`Graph.spec` gives the
frozen public view. Building never stops at the first mistake: problems (a duplicate name,
an ambiguous ``>>``, an unknown port named in a string) are recorded and reported together
with everything validation finds, so one run of ``flowkit validate`` lists them all.
"""

from __future__ import annotations

import re
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, overload

from flowkit.node import Node
from flowkit.policy import ErrorPolicy
from flowkit.ports import In, Linkable, Out
from flowkit.problems import GraphError, Problem, ProblemKind

if TYPE_CHECKING:
    from flowkit.spec import GraphSpec
    from flowkit.validation import ResolvedGraph

__all__ = ["Edge", "Graph", "Subgraph"]

N = TypeVar("N", bound=Node)


@dataclass(frozen=True, slots=True)
class Edge:
    """A link from an output port to an input port.

    Attributes:
        src: The producing output port.
        dst: The consuming input port.
        feedback: Declared as closing a feedback loop (or the input is ``In(feedback=True)``).
    """

    src: Out[Any]
    dst: In[Any]
    feedback: bool = False

    @property
    def is_feedback(self) -> bool:
        """Whether the edge closes a declared feedback loop."""
        return self.feedback or self.dst.feedback

    def __str__(self) -> str:
        return f"{self.src.qualname} -> {self.dst.qualname}"


class Subgraph(Linkable):
    """A graph added to another graph: its nodes joined the parent, its exposed ports remain.

    Exposed ports are reachable as attributes (``asr.audio``) and ``>>`` uses the default
    exposed port, exactly as for a node.

    Attributes:
        name: The name the subgraph was added under (its nodes are named ``name/inner``).
        inputs: The exposed input ports by exposed name.
        outputs: The exposed output ports by exposed name.
    """

    def __init__(
        self, name: str, graph: Graph, inputs: dict[str, In[Any]], outputs: dict[str, Out[Any]]
    ) -> None:
        self.name = name
        self.graph = graph
        self.inputs = inputs
        self.outputs = outputs

    def default_input(self) -> In[Any] | str:
        """The exposed input ``>>`` links to, or why there is none."""
        port = _single(self.inputs, f"subgraph {self.name!r}", "input")
        return port if isinstance(port, (In, str)) else f"subgraph {self.name!r}: not an input"

    def default_output(self) -> Out[Any] | str:
        """The exposed output ``>>`` links from, or why there is none."""
        port = _single(self.outputs, f"subgraph {self.name!r}", "output")
        return port if isinstance(port, (Out, str)) else f"subgraph {self.name!r}: not an output"

    def __getattr__(self, attr: str) -> Any:
        ports = self.__dict__.get("inputs", {}) | self.__dict__.get("outputs", {})
        if attr in ports:
            return ports[attr]
        raise AttributeError(
            f"subgraph {self.__dict__.get('name')!r} exposes no port {attr!r} "
            f"(exposed: {', '.join(ports) or 'none'}); expose it with sub.expose(name, port)"
        )



def _single(ports: Mapping[str, Any], label: str, direction: str) -> object:
    if len(ports) == 1:
        return next(iter(ports.values()))
    if not ports:
        return f"{label} exposes no {direction}; expose one with sub.expose(name, port)"
    return f"{label} exposes {len(ports)} {direction}s ({', '.join(ports)}); name one"


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-/]*$")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class Graph:
    """A typed directed graph of nodes, built in Python.

    Args:
        name: The graph's name (shown in specs, drawings, logs and metrics).
        convert_formats: When an audio format differs across an edge, insert a registered
            converter (e.g. a resampler) instead of reporting a format mismatch.
        description: One line saying what the graph does.
    """

    def __init__(self, name: str, *, convert_formats: bool = True, description: str = "") -> None:
        self.name = name
        self.convert_formats = convert_formats
        self.description = description
        self._nodes: dict[str, Node] = {}
        self._edges: list[Edge] = []
        self._problems: list[Problem] = []
        self._exposed_inputs: dict[str, In[Any]] = {}
        self._exposed_outputs: dict[str, Out[Any]] = {}
        self._merged_into: Graph | None = None

    @property
    def nodes(self) -> Mapping[str, Node]:
        """The nodes by name, in the order they were added (read-only)."""
        return types.MappingProxyType(self._nodes)

    @property
    def edges(self) -> tuple[Edge, ...]:
        """The edges as linked (converters the graph will insert are not among them)."""
        return tuple(self._edges)

    @overload
    def add(
        self, node: N, name: str | None = None, *, error_policy: ErrorPolicy | None = None
    ) -> N: ...
    @overload
    def add(
        self, node: type[N], name: str | None = None, *, error_policy: ErrorPolicy | None = None
    ) -> N: ...
    @overload
    def add(
        self, node: Graph, name: str | None = None, *, error_policy: ErrorPolicy | None = None
    ) -> Subgraph: ...
    def add(
        self,
        node: Node | type[Node] | Graph,
        name: str | None = None,
        *,
        error_policy: ErrorPolicy | None = None,
    ) -> Node | Subgraph:
        """Add a node (or a node class, built with default parameters, or a subgraph).

        Args:
            node: The node to add; adding a node already in this graph returns it unchanged.
            name: Its name; defaults to the class name in snake case, made unique.
            error_policy: Overrides the node class's error policy for this node.

        Returns:
            The node itself (so ``mic = g.add(RoomSource())`` reads naturally), or a
            :class:`Subgraph` handle for a graph.
        """
        self._check_open()
        if isinstance(node, Graph):
            return self._add_subgraph(node, name)
        if isinstance(node, type):
            if not issubclass(node, Node):
                raise TypeError(f"Graph.add() takes a node or a Graph, not the class {node!r}")
            node = node()
        if not isinstance(node, Node):
            raise TypeError(
                f"Graph.add() takes a node or a Graph, not {type(node).__name__}: "
                "wrap a plain function with @flowkit.node first"
            )
        if node.graph is self:
            return node
        if node.graph is not None:
            self._problems.append(
                Problem(
                    ProblemKind.INVALID_LINK,
                    f"node {node.name!r} already belongs to graph {node.graph.name!r}; "
                    f"a node lives in one graph: create a new {type(node).__qualname__}() "
                    f"for graph {self.name!r}",
                    (node.name,),
                )
            )
            return node
        if error_policy is not None:
            node.error_policy = ErrorPolicy(error_policy)
        node.name = self._unique_name(node, name)
        node.graph = self
        self._nodes[node.name] = node
        return node

    def _unique_name(self, node: Node, name: str | None) -> str:
        if name is not None:
            if not _NAME.match(name):
                raise ValueError(
                    f"node name {name!r}: use letters, digits, '_', '-' (and '/' for groups); "
                    "a '.' would be read as 'node.port'"
                )
            if name not in self._nodes:
                return name
            taken = self._nodes[name]
            self._problems.append(
                Problem(
                    ProblemKind.DUPLICATE_NAME,
                    f"two nodes are named {name!r} ({type(taken).__qualname__} and "
                    f"{type(node).__qualname__}); give each a unique name in g.add(node, name=...)",
                    (name,),
                )
            )
        base = name or _snake(type(node).__name__)
        candidate, n = base, 1
        while candidate in self._nodes:
            n += 1
            candidate = f"{base}_{n}"
        return candidate

    def _add_subgraph(self, sub: Graph, name: str | None) -> Subgraph:
        if sub is self:
            raise ValueError(f"graph {self.name!r} cannot be added to itself")
        if sub._merged_into is not None:
            raise ValueError(
                f"graph {sub.name!r} was already added to graph {sub._merged_into.name!r}; "
                "build a new one for each use (a function that returns a Graph helps)"
            )
        prefix = name or sub.name
        if not _NAME.match(prefix):
            raise ValueError(f"subgraph name {prefix!r}: use letters, digits, '_', '-'")
        for inner in sub._nodes.values():
            full = f"{prefix}/{inner.name}"
            if full in self._nodes:
                self._problems.append(
                    Problem(
                        ProblemKind.DUPLICATE_NAME,
                        f"subgraph {prefix!r} brings node {full!r}, which already exists; "
                        "add the subgraph under another name",
                        (full,),
                    )
                )
                full = self._unique_name(inner, None) + f"@{prefix}"
            inner.name = full
            inner.group = f"{prefix}/{inner.group}" if inner.group else prefix
            inner.graph = self
            self._nodes[full] = inner
        self._edges.extend(sub._edges)
        self._problems.extend(sub._problems)
        sub._merged_into = self
        return Subgraph(prefix, sub, dict(sub._exposed_inputs), dict(sub._exposed_outputs))

    def connect(
        self, src: Out[Any] | Node | Subgraph | str, dst: In[Any] | Node | Subgraph | str,
        *, feedback: bool = False,
    ) -> None:
        """Link ``src`` to ``dst`` explicitly.

        Args:
            src: An output port, a node or subgraph (its default output), or ``"node.port"``.
            dst: An input port, a node or subgraph (its default input), or ``"node.port"``.
            feedback: Declare that this edge closes a feedback loop.
        """
        from flowkit.linking import resolve_endpoint

        self._check_open()
        out = resolve_endpoint(self, src, Out)
        inp = resolve_endpoint(self, dst, In)
        if out is not None and inp is not None:
            self._add_edge(out, inp, feedback=feedback)

    def _add_edge(self, src: Out[Any], dst: In[Any], *, feedback: bool = False) -> None:
        for node in (src.node, dst.node):
            if node is not None and node.graph is None:
                self.add(node)
        foreign = [
            n for n in (src.node, dst.node) if n is not None and n.graph is not self
        ]
        if foreign:
            self._problems.append(
                Problem(
                    ProblemKind.INVALID_LINK,
                    f"edge {src.qualname} -> {dst.qualname} leaves graph {self.name!r} "
                    f"(node {foreign[0].name!r} is in another graph); link nodes of one graph, "
                    "or add the other graph as a subgraph",
                    tuple(n.name for n in foreign),
                )
            )
            return
        edge = Edge(src, dst, feedback)
        if edge not in self._edges:
            self._edges.append(edge)

    def expose(self, name: str, port: In[Any] | Out[Any]) -> None:
        """Expose an inner port under ``name``, so the graph can be used as a subgraph."""
        self._check_open()
        if isinstance(port, In):
            self._exposed_inputs[name] = port
        elif isinstance(port, Out):
            self._exposed_outputs[name] = port
        else:
            raise TypeError(f"Graph.expose({name!r}, ...) takes a port, not {port!r}")
        if port.node is not None and port.node.graph is None:
            self.add(port.node)

    def resolve(self) -> ResolvedGraph:
        """Check the graph and plan it: converters inserted, problems listed, nodes ordered."""
        from flowkit.validation import resolve

        return resolve(self)

    def problems(self) -> list[Problem]:
        """Every problem found in the graph (an empty list when it is valid)."""
        return list(self.resolve().problems)

    def validate(self) -> None:
        """Raise :class:`~flowkit.problems.GraphError` listing every problem, if any."""
        found = self.problems()
        if found:
            raise GraphError(self.name, found)

    def spec(self) -> GraphSpec:
        """The frozen, JSON-serialisable public view of the graph (problems included)."""
        from flowkit.spec import graph_spec

        return graph_spec(self.resolve())

    def _check_open(self) -> None:
        if self._merged_into is not None:
            raise ValueError(
                f"graph {self.name!r} was added to graph {self._merged_into.name!r} as a "
                "subgraph; change the parent graph instead"
            )

    def __repr__(self) -> str:
        return f"<Graph {self.name!r}: {len(self._nodes)} nodes, {len(self._edges)} edges>"
