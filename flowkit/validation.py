"""Graph validation and planning: every problem at once, converters inserted, nodes ordered.

:func:`resolve` never changes the graph it checks: converters it inserts live only in the
returned :class:`ResolvedGraph`, which is what the spec, the drawings and the runner read.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

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

    problems.extend(_node_link_problems(graph))
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


def _node_link_problems(graph: Graph) -> list[Problem]:
    touching: dict[int, list[Edge]] = {}
    for edge in graph.edges:
        ends = {id(n): n for n in (edge.src.node, edge.dst.node) if n is not None}
        for key in ends:
            touching.setdefault(key, []).append(edge)
    problems: list[Problem] = []
    for node in graph.nodes.values():
        problems.extend(node.link_problems(tuple(touching.get(id(node), ()))))
    return problems


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
    # The dataflow graph by node name: successors in the order their first edge was added,
    # each once (the runner runs this for every graph it starts, so it is plain Python rather
    # than networkx, whose import alone costs about 14 MiB of a voice worker's memory).
    succ: dict[str, dict[str, None]] = {n.name: {} for n in nodes}
    for edge in edges:
        if edge.src.node is not None and edge.dst.node is not None and not edge.is_feedback:
            src, dst = edge.src.node.name, edge.dst.node.name
            succ.setdefault(src, {})
            succ.setdefault(dst, {})
            succ[src][dst] = None
    problems = []
    added = {n.name: i for i, n in enumerate(nodes)}
    for component in _strongly_connected(succ):
        # Name the cycle from the node added first, so the message is the same every run.
        members = sorted(component, key=added.__getitem__)
        if len(members) == 1 and members[0] not in succ[members[0]]:
            continue
        cycle = _find_cycle(succ, component, members[0])
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
    return [], [by_name[name] for name in _topological(succ, added)]


# The three graph algorithms _order needs, each visiting nodes and edges in the same order as
# the networkx function it replaces (strongly_connected_components, find_cycle on the
# component's subgraph, lexicographical_topological_sort), so problems and plans are unchanged.


def _strongly_connected(succ: dict[str, dict[str, None]]) -> Iterator[set[str]]:
    """Tarjan's algorithm with Nuutila's changes, without recursion."""
    preorder: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    found: set[str] = set()
    scc_queue: list[str] = []
    counter = 0
    neighbours = {v: iter(succ[v]) for v in succ}
    for source in succ:
        if source in found:
            continue
        queue = [source]
        while queue:
            v = queue[-1]
            if v not in preorder:
                counter += 1
                preorder[v] = counter
            done = True
            for w in neighbours[v]:
                if w not in preorder:
                    queue.append(w)
                    done = False
                    break
            if not done:
                continue
            lowlink[v] = preorder[v]
            for w in succ[v]:
                if w not in found:
                    if preorder[w] > preorder[v]:
                        lowlink[v] = min(lowlink[v], lowlink[w])
                    else:
                        lowlink[v] = min(lowlink[v], preorder[w])
            queue.pop()
            if lowlink[v] == preorder[v]:
                scc = {v}
                while scc_queue and preorder[scc_queue[-1]] > preorder[v]:
                    scc.add(scc_queue.pop())
                found.update(scc)
                yield scc
            else:
                scc_queue.append(v)


def _edges_dfs(
    succ: dict[str, dict[str, None]], members: set[str], source: str
) -> Iterator[tuple[str, str]]:
    """Every edge between ``members`` reachable from ``source``, depth first."""
    visited: set[tuple[str, str]] = set()
    pending: dict[str, Iterator[str]] = {}
    stack = [source]
    while stack:
        node = stack[-1]
        if node not in pending:
            pending[node] = (w for w in succ[node] if w in members)
        head = next(pending[node], None)
        if head is None:
            stack.pop()
        elif (node, head) not in visited:
            visited.add((node, head))
            stack.append(head)
            yield node, head


def _find_cycle(
    succ: dict[str, dict[str, None]], members: set[str], source: str
) -> list[tuple[str, str]]:
    """The first cycle a depth-first walk from ``source`` inside ``members`` meets, as edges."""
    path: list[tuple[str, str]] = []
    active = {source}
    previous_head: str | None = None
    for tail, head in _edges_dfs(succ, members, source):
        if previous_head is not None and tail != previous_head:
            # Backtracked: drop the path's edges back to the one that ends at this tail.
            while True:
                if not path:
                    active = {tail}
                    break
                active.remove(path.pop()[1])
                if path and path[-1][1] == tail:
                    break
        path.append((tail, head))
        if head in active:
            start = next(i for i, (t, _) in enumerate(path) if t == head)
            return path[start:]
        active.add(head)
        previous_head = head
    raise AssertionError(f"no cycle through {source} inside its strongly connected component")


def _topological(succ: dict[str, dict[str, None]], added: dict[str, int]) -> Iterator[str]:
    """Kahn's algorithm, always taking the ready node that was added first."""
    indegree: dict[str, int] = dict.fromkeys(succ, 0)
    for targets in succ.values():
        for target in targets:
            indegree[target] += 1
    ready = [(added[v], v) for v, d in indegree.items() if d == 0]
    heapq.heapify(ready)
    while ready:
        _, v = heapq.heappop(ready)
        for child in succ[v]:
            indegree[child] -= 1
            if indegree[child] == 0:
                heapq.heappush(ready, (added[child], child))
        yield v
