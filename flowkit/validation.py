"""Graph validation and planning: every problem at once, converters inserted, nodes ordered.

:func:`resolve` never changes the graph it checks: converters it inserts live only in the
returned :class:`ResolvedGraph`, which is what the spec, the drawings and the runner read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import networkx as nx

from flowkit.converters import find_converter
from flowkit.node import Node
from flowkit.problems import Problem, ProblemKind
from flowkit.typenames import is_assignable, type_name

if TYPE_CHECKING:
    from flowkit.graph import Edge, Graph

__all__ = ["ResolvedGraph", "resolve"]


@dataclass(frozen=True, slots=True)
class ResolvedGraph:
    """A graph as it will run.

    Attributes:
        graph: The graph this was resolved from.
        nodes: Every node, inserted converters included, sources first in dataflow order.
        edges: Every edge, with converter edges in place of the mismatched ones.
        problems: Every problem found; the graph can run only when this is empty.
    """

    graph: Graph
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        """Whether the graph has no problem."""
        return not self.problems


def resolve(graph: Graph) -> ResolvedGraph:
    """Check ``graph`` and plan it (see :class:`ResolvedGraph`)."""
    problems: list[Problem] = list(graph._problems)
    nodes: list[Node] = list(graph.nodes.values())
    edges: list[Edge] = []
    for edge in graph.edges:
        src, dst = edge.src, edge.dst
        src_name = src.node.name if src.node else "?"
        dst_name = dst.node.name if dst.node else "?"
        if not is_assignable(src.type, dst.type):
            problems.append(
                Problem(
                    ProblemKind.TYPE_MISMATCH,
                    f"{src.qualname} sends {type_name(src.type)} but {dst.qualname} expects "
                    f"{type_name(dst.type)}; link {dst.qualname} to an output of type "
                    f"{type_name(dst.type)}, or put a node between them that turns "
                    f"{type_name(src.type)} into {type_name(dst.type)}",
                    (src_name, dst_name),
                )
            )
        if src.format is not None and dst.format is not None and src.format != dst.format:
            converter = (
                find_converter(dst.type, src.format, dst.format) if graph.convert_formats else None
            )
            if converter is None:
                remedy = (
                    "register a converter for this type (flowkit.register_converter)"
                    if graph.convert_formats
                    else "build the graph with convert_formats=True to insert one"
                )
                problems.append(
                    Problem(
                        ProblemKind.FORMAT_MISMATCH,
                        f"{src.qualname} sends {src.format} but {dst.qualname} expects "
                        f"{dst.format}; insert a converter node between them, or {remedy}",
                        (src_name, dst_name),
                    )
                )
            else:
                edges.extend(_insert(graph, converter, edge, nodes))
                continue
        edges.append(edge)

    problems.extend(_unconnected_inputs(nodes, edges))
    cycle_problems, order = _order(nodes, edges)
    problems.extend(cycle_problems)
    return ResolvedGraph(graph, tuple(order), tuple(edges), tuple(problems))


def _insert(graph: Graph, converter: Node, edge: Edge, nodes: list[Node]) -> list[Edge]:
    from flowkit.graph import Edge

    dst = edge.dst
    base = f"{type(converter).__name__.lower()}@{dst.node.name if dst.node else '?'}.{dst.name}"
    taken = {n.name for n in nodes}
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    converter.name = name
    converter.graph = graph
    converter.inserted = True
    converter.group = dst.node.group if dst.node else ""
    nodes.append(converter)
    conv_in = next(iter(converter.inputs.values()))
    conv_out = next(iter(converter.outputs.values()))
    if conv_out.format is not None and conv_out.format != dst.format:
        raise TypeError(
            f"converter {type(converter).__qualname__} inserted before {dst.qualname} "
            f"produces {conv_out.format}, not the {dst.format} that port expects; fix the "
            "converter factory so the node's output declares the format it was asked for"
        )
    return [Edge(edge.src, conv_in, edge.feedback), Edge(conv_out, dst, edge.feedback)]


def _unconnected_inputs(nodes: list[Node], edges: list[Edge]) -> list[Problem]:
    fed: set[tuple[int, str]] = {(id(e.dst.node), e.dst.name) for e in edges}
    problems = []
    for node in nodes:
        for name, port in node.inputs.items():
            if port.required and (id(node), name) not in fed:
                problems.append(
                    Problem(
                        ProblemKind.UNCONNECTED_INPUT,
                        f"required input {port.qualname} ({type_name(port.type)}) has no edge; "
                        f"link a producer to it (e.g. other.out >> {port.qualname}) or declare "
                        "it In(required=False)",
                        (node.name,),
                    )
                )
    return problems


def _order(nodes: list[Node], edges: list[Edge]) -> tuple[list[Problem], list[Node]]:
    dag: Any = nx.DiGraph()
    dag.add_nodes_from(n.name for n in nodes)
    for edge in edges:
        if edge.src.node is not None and edge.dst.node is not None and not edge.is_feedback:
            dag.add_edge(edge.src.node.name, edge.dst.node.name)
    problems = []
    added = {n.name: i for i, n in enumerate(nodes)}
    for component in nx.strongly_connected_components(dag):
        # Name the cycle from the node added first, so the message is the same every run.
        members = sorted(component, key=added.__getitem__)
        if len(members) == 1 and not dag.has_edge(members[0], members[0]):
            continue
        cycle = nx.find_cycle(dag.subgraph(members), source=members[0])
        path = " -> ".join([cycle[0][0], *(v for _, v in cycle)])
        problems.append(
            Problem(
                ProblemKind.UNDECLARED_CYCLE,
                f"the edges {path} form a cycle that is not declared as a feedback loop; "
                "declare the edge that closes it with g.connect(src, dst, feedback=True) "
                "(or make the input In(feedback=True)), or remove one of the edges",
                tuple(members),
            )
        )
    if problems:
        return problems, nodes
    # Dataflow order, ties broken by the order nodes were added, so plans are deterministic.
    by_name = {n.name: n for n in nodes}
    ordered = nx.lexicographical_topological_sort(dag, key=lambda name: f"{added[name]:08d}")
    return [], [by_name[name] for name in ordered]
