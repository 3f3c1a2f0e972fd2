"""``>>``: how the left and right of a link are turned into an output and an input port.

``a >> b`` links ``a``'s default output to ``b``'s default input and returns ``b``, so chains
read left to right. ``b`` may be a node, a node class (built with default parameters), an
input port, a subgraph, or a list of those (fan-out; the list is returned). A node that is not
yet in a graph joins the graph of the other side. A link that cannot be made (no default port,
two candidate ports) is recorded as a problem on the graph, not raised, so validation reports
it with everything else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from flowkit.node import Node
from flowkit.ports import In, Out
from flowkit.problems import Problem, ProblemKind

if TYPE_CHECKING:
    from flowkit.graph import Graph

__all__ = ["link", "resolve_endpoint"]

PortT = TypeVar("PortT", In[Any], Out[Any])


def _graph_of(item: Any) -> Graph | None:
    from flowkit.graph import Subgraph

    if isinstance(item, Node):
        return item.graph
    if isinstance(item, (In, Out)):
        return item.node.graph if item.node is not None else None
    if isinstance(item, Subgraph):
        return item.graph._merged_into
    return None


def _describe(item: Any) -> str:
    if isinstance(item, (In, Out)):
        return f"port {item.qualname}"
    if isinstance(item, Node):
        return f"node {item.name or type(item).__qualname__!r}"
    return repr(item)


def link(left: Any, right: Any) -> Any:
    """Link ``left``'s default output to ``right`` (see the module docstring); return ``right``."""
    if isinstance(right, list):
        for item in right:
            link(left, item)
        return right
    if isinstance(right, type) and issubclass(right, Node):
        right = right()
    graph = _graph_of(left) or _graph_of(right)
    if graph is None:
        raise ValueError(
            f"cannot link {_describe(left)} >> {_describe(right)}: neither side is in a graph; "
            "add the first node with g.add(node) and chain from it"
        )
    src = resolve_endpoint(graph, left, Out)
    dst = resolve_endpoint(graph, right, In)
    if src is not None and dst is not None:
        graph._add_edge(src, dst)
    elif isinstance(right, Node) and right.graph is None:
        graph.add(right)
    return right


def resolve_endpoint(graph: Graph, item: Any, kind: type[PortT]) -> PortT | None:
    """Turn one side of a link into a port of ``kind``, recording a problem when it can't."""
    from flowkit.graph import Subgraph

    direction = "output" if kind is Out else "input"
    if isinstance(item, str):
        return _from_string(graph, item, kind, direction)
    if isinstance(item, kind):
        return item
    if isinstance(item, (In, Out)):
        wrong = "input" if isinstance(item, In) else "output"
        graph._problems.append(
            Problem(
                ProblemKind.INVALID_LINK,
                f"{item.qualname} is an {wrong} port but is used as the {direction} side of a "
                f"link; links go from an output to an input",
                (item.node.name,) if item.node else (),
            )
        )
        return None
    if isinstance(item, (Node, Subgraph)):
        if isinstance(item, Node) and item.graph is None:
            graph.add(item)
        port = item.default_input() if kind is In else item.default_output()
        if isinstance(port, str):
            graph._problems.append(
                Problem(
                    ProblemKind.AMBIGUOUS_PORT,
                    f"'>>' cannot choose an {direction}: {port}",
                    (item.name,),
                )
            )
            return None
        return port  # type: ignore[return-value]
    raise TypeError(
        f"cannot link {item!r}: the {direction} side of a link must be a node, a port, a "
        "subgraph or a 'node.port' string"
    )


def _from_string(graph: Graph, ref: str, kind: type[PortT], direction: str) -> PortT | None:
    node_name, _, port_name = ref.partition(".")
    node = graph.nodes.get(node_name)
    if node is None:
        import difflib

        close = difflib.get_close_matches(node_name, list(graph.nodes), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        graph._problems.append(
            Problem(
                ProblemKind.UNKNOWN_PORT,
                f"{ref!r} names no node of graph {graph.name!r}{hint}",
                (node_name,),
            )
        )
        return None
    if not port_name:
        return resolve_endpoint(graph, node, kind)
    ports: dict[str, Any] = dict(node.inputs if kind is In else node.outputs)
    if port_name in ports:
        return ports[port_name]  # type: ignore[no-any-return]
    graph._problems.append(
        Problem(
            ProblemKind.UNKNOWN_PORT,
            f"{type(node).__qualname__} node {node_name!r} has no {direction} port "
            f"{port_name!r} ({direction}s: {', '.join(ports) or 'none'})",
            (node_name,),
        )
    )
    return None
