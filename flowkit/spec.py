"""GraphSpec: the frozen, JSON-serialisable public view of a graph.

``viz``, ``validate``, traces and diffs read this, never the mutable builder. It is built from
a :class:`~flowkit.validation.ResolvedGraph`, so inserted converters and problems are in it.
"""

from __future__ import annotations

import inspect
from typing import Any

import pydantic
import pydantic_core

from flowkit.node import Node
from flowkit.ports import In, Port
from flowkit.typenames import type_name
from flowkit.validation import ResolvedGraph

__all__ = ["EdgeSpec", "GraphSpec", "NodeSpec", "PortSpec", "ProblemSpec", "graph_spec"]

_FROZEN = pydantic.ConfigDict(frozen=True, extra="forbid")


class PortSpec(pydantic.BaseModel):
    """One port of a node."""

    model_config = _FROZEN
    name: str
    direction: str
    type: str
    format: str | None = None
    sample_rate: int | None = None
    num_channels: int | None = None
    required: bool = False
    feedback: bool = False
    default: bool = False
    doc: str = ""


class NodeSpec(pydantic.BaseModel):
    """One node: what it is, where it comes from, its parameters and ports."""

    model_config = _FROZEN
    name: str
    kind: str
    style: str
    library: str
    group: str = ""
    inserted: bool = False
    error_policy: str
    threaded: bool = False
    params: dict[str, pydantic.JsonValue] = pydantic.Field(default_factory=dict)
    inputs: tuple[PortSpec, ...] = ()
    outputs: tuple[PortSpec, ...] = ()
    doc: str = ""


class EdgeSpec(pydantic.BaseModel):
    """One edge from ``source.source_port`` to ``target.target_port``."""

    model_config = _FROZEN
    source: str
    source_port: str
    target: str
    target_port: str
    type: str
    format: str | None = None
    feedback: bool = False


class ProblemSpec(pydantic.BaseModel):
    """A validation problem."""

    model_config = _FROZEN
    kind: str
    message: str
    nodes: tuple[str, ...] = ()


class GraphSpec(pydantic.BaseModel):
    """The whole graph, as it will run."""

    model_config = _FROZEN
    name: str
    description: str = ""
    nodes: tuple[NodeSpec, ...]
    edges: tuple[EdgeSpec, ...]
    problems: tuple[ProblemSpec, ...] = ()

    def node(self, name: str) -> NodeSpec:
        """The node named ``name`` (``KeyError`` if there is none)."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f"graph {self.name!r} has no node {name!r}")


def _port_spec(port: Port[Any]) -> PortSpec:
    fmt = port.format
    return PortSpec(
        name=port.name,
        direction=port.direction,
        type=type_name(port.type),
        format=str(fmt) if fmt else None,
        sample_rate=fmt.sample_rate if fmt else None,
        num_channels=fmt.num_channels if fmt else None,
        required=port.required if isinstance(port, In) else False,
        feedback=port.feedback if isinstance(port, In) else False,
        default=port.default,
        doc=port.doc,
    )


def _jsonable(value: Any) -> pydantic.JsonValue:
    try:
        result: pydantic.JsonValue = pydantic_core.to_jsonable_python(
            value, fallback=_described
        )
    except pydantic_core.PydanticSerializationError:
        return repr(value)
    return result


def _described(value: Any) -> str:
    """A parameter JSON cannot hold: a function by its dotted name, anything else by repr.

    A function's name is stable between runs, unlike its repr, which has an address.
    """
    if inspect.isroutine(value) and hasattr(value, "__qualname__"):
        # A method of a builtin type (str.strip) has its module on the type it belongs to.
        owner = getattr(value, "__objclass__", None)
        module = getattr(value, "__module__", None) or getattr(owner, "__module__", None)
        return f"{module}.{value.__qualname__}" if module else str(value.__qualname__)
    return repr(value)


def _node_spec(node: Node) -> NodeSpec:
    cls = type(node)
    params = {name: _jsonable(getattr(node.params, name)) for name in cls.Params.model_fields}
    doc = (cls.__doc__ or "").strip().splitlines()
    return NodeSpec(
        name=node.name,
        kind=f"{cls.__module__}.{cls.__qualname__}",
        style=str(cls.style),
        library=cls.library(),
        group=node.group,
        inserted=node.inserted,
        error_policy=str(node.error_policy),
        threaded=cls.threaded,
        params=params,
        inputs=tuple(_port_spec(p) for p in node.inputs.values()),
        outputs=tuple(_port_spec(p) for p in node.outputs.values()),
        doc=doc[0] if doc else "",
    )


def graph_spec(resolved: ResolvedGraph) -> GraphSpec:
    """Build the spec of a resolved graph."""
    graph = resolved.graph
    edges = []
    for edge in resolved.edges:
        if edge.src.node is None or edge.dst.node is None:
            continue
        fmt = edge.src.format or edge.dst.format
        edges.append(
            EdgeSpec(
                source=edge.src.node.name,
                source_port=edge.src.name,
                target=edge.dst.node.name,
                target_port=edge.dst.name,
                type=type_name(edge.src.type),
                format=str(fmt) if fmt else None,
                feedback=edge.is_feedback,
            )
        )
    return GraphSpec(
        name=graph.name,
        description=graph.description,
        nodes=tuple(_node_spec(n) for n in resolved.nodes),
        edges=tuple(edges),
        problems=tuple(
            ProblemSpec(kind=str(p.kind), message=p.message, nodes=p.nodes)
            for p in resolved.problems
        ),
    )
