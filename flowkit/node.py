"""The node: a pure operator with typed ports and validated parameters.

A node never links itself: the graph owns the edges. A node class declares its ports as
annotations, its parameters as a nested pydantic ``Params`` model, and its behaviour in one of
two methods, which decides its *style*:

- ``wire(self, **inputs: Observable) -> Observable | Mapping[str, Observable] | None``: an Rx
  node composes reactivex operators over its input observables and returns one observable per
  output (a bare observable when it has one output, or nothing to drive for a sink);
- ``async def run(self, **inputs: AsyncIterator) -> None``: an async node reads its inputs as
  async iterators and emits with ``self.<output>.send(value)`` or ``await ...put(value)``.

The third style, a plain function, is made with :func:`flowkit.node` (see
:mod:`flowkit.function_node`) and compiles to the same runtime form.
"""

from __future__ import annotations

import enum
import inspect
import typing
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import pydantic

from flowkit.policy import ErrorPolicy
from flowkit.ports import In, Linkable, Out, Port
from flowkit.problems import NodeDefinitionError, NodeParamsError, Problem

if TYPE_CHECKING:
    from collections.abc import Sequence

    from flowkit.graph import Edge, Graph
    from flowkit.runtime.context import NodeContext

__all__ = ["Node", "NodeParams", "NodeStyle"]



class NodeStyle(enum.StrEnum):
    """How a node's behaviour is written."""

    RX = "rx"
    ASYNC = "async"
    FUNCTION = "function"


class NodeParams(pydantic.BaseModel):
    """Base of a node's parameter model: frozen, unknown fields rejected.

    Provider objects are allowed as fields (``arbitrary_types_allowed``); specs show them by
    their ``repr``.
    """

    model_config = pydantic.ConfigDict(
        frozen=True, extra="forbid", arbitrary_types_allowed=True
    )


class Node(Linkable):
    """Base class of every node.

    Class attributes a subclass may set:
        Params: The pydantic model of the node's parameters.
        error_policy: The default :class:`~flowkit.policy.ErrorPolicy` (overridable per node
            in ``Graph.add``).
        threaded: Run CPU-heavy work off the event loop (function nodes run their function
            on a worker thread; results come back on the loop in order).
        max_restarts: How many ``RESTART`` s the runtime allows before ending the graph.

    Attributes:
        name: The node's name in its graph (set by ``Graph.add``).
        params: The validated parameters.
        inputs: The bound input ports by name.
        outputs: The bound output ports by name.
    """

    Params: ClassVar[type[NodeParams]] = NodeParams
    error_policy: ErrorPolicy = ErrorPolicy.SKIP
    threaded: ClassVar[bool] = False
    max_restarts: ClassVar[int] = 3
    style: ClassVar[NodeStyle]
    _input_templates: ClassVar[dict[str, tuple[In[Any], Any]]] = {}
    _output_templates: ClassVar[dict[str, tuple[Out[Any], Any]]] = {}

    def __init_subclass__(cls, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._input_templates, cls._output_templates = _collect_ports(cls)
        if abstract:
            return
        has_wire = callable(getattr(cls, "wire", None))
        has_run = callable(getattr(cls, "run", None))
        if has_wire and has_run:
            raise NodeDefinitionError(
                f"node class {cls.__qualname__} defines both wire() and run(); "
                "define wire() for an Rx node or async run() for an async node, not both"
            )
        if has_run:
            if not inspect.iscoroutinefunction(cls.run):  # type: ignore[attr-defined]
                raise NodeDefinitionError(
                    f"node class {cls.__qualname__}: run() must be 'async def'; "
                    "for a synchronous transform write wire() or use @flowkit.node"
                )
            cls.style = NodeStyle.ASYNC
        elif has_wire:
            cls.style = NodeStyle.RX
        elif not hasattr(cls, "style"):
            raise NodeDefinitionError(
                f"node class {cls.__qualname__} has no behaviour: define wire(self, ...) "
                "(Rx) or async run(self, ...) (async), or pass abstract=True for a base class"
            )

    def __init__(self, **params: Any) -> None:
        cls = type(self)
        try:
            self.params: NodeParams = cls.Params(**params)
        except pydantic.ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(params)'}: {err['msg']}"
                for err in exc.errors()
            )
            accepted = ", ".join(cls.Params.model_fields) or "none"
            raise NodeParamsError(
                f"{cls.__qualname__}: invalid parameters: {problems} "
                f"(accepted parameters: {accepted})"
            ) from None
        self.name = ""
        self.group = ""
        self.graph: Graph | None = None
        self.inserted = False
        self.error_policy = cls.error_policy
        self.inputs: dict[str, In[Any]] = {}
        self.outputs: dict[str, Out[Any]] = {}
        for name, (in_template, type_) in cls._input_templates.items():
            bound_in = typing.cast(In[Any], in_template._bound(self, name, type_))
            self.inputs[name] = bound_in
            self.__dict__[name] = bound_in
        for name, (out_template, type_) in cls._output_templates.items():
            bound_out = typing.cast(Out[Any], out_template._bound(self, name, type_))
            self.outputs[name] = bound_out
            self.__dict__[name] = bound_out
        self._ctx: NodeContext | None = None

    @property
    def ctx(self) -> NodeContext:
        """The node's runtime context (loop, scheduler, logger, job); only while running."""
        if self._ctx is None:
            raise RuntimeError(
                f"node {self.name or type(self).__qualname__}: ctx is only available while "
                "the graph runs (inside wire/run)"
            )
        return self._ctx

    @classmethod
    def library(cls) -> str:
        """The top-level package the node class comes from (``flowkit``, ``flowkit_local``)."""
        return cls.__module__.split(".")[0]

    def default_input(self) -> In[Any] | str:
        """The input ``>>`` links to, or a sentence saying why there is none.

        The default is the only input, else the one marked ``default=True``, else the only
        required one.
        """
        return typing.cast("In[Any] | str", _default_port(self, self.inputs, "input"))

    def default_output(self) -> Out[Any] | str:
        """The output ``>>`` links from, or a sentence saying why there is none."""
        return typing.cast("Out[Any] | str", _default_port(self, self.outputs, "output"))

    def link_problems(self, edges: Sequence[Edge]) -> list[Problem]:
        """Problems with this node's links that its ports' types cannot say.

        Validation calls it with every edge of the graph into or out of this node, as the
        graph's author wrote them (before converters are inserted), and reports what it
        returns with every other problem: in ``validate()``, ``flowkit validate`` and the
        drawings. Override it when whether a link makes sense depends on how the node was
        built, e.g. an output that one mode of the node never writes. Name both ends of the
        link and the remedy, as every problem does.

        Args:
            edges: The edges into or out of this node.

        Returns:
            The problems found; none by default.
        """
        return []

    def __getattr__(self, attr: str) -> Any:
        # Only reached for missing attributes: say which ports exist instead of a bare error.
        if attr.startswith("_") or "inputs" not in self.__dict__:
            raise AttributeError(attr)
        import difflib

        ports = [*self.inputs, *self.outputs]
        close = difflib.get_close_matches(attr, ports, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise AttributeError(
            f"{type(self).__qualname__} node {self.name or '(not added)'!r} has no port or "
            f"attribute {attr!r} (ports: {', '.join(ports) or 'none'}){hint}"
        )

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.params.model_dump().items())
        name = f" {self.name!r}" if self.name else ""
        return f"<{type(self).__qualname__}{name}{' ' + params if params else ''}>"


def _default_port(
    node: Node, ports: Mapping[str, Port[Any]], direction: str
) -> Port[Any] | str:
    if len(ports) == 1:
        return next(iter(ports.values()))
    marked = [p for p in ports.values() if p.default]
    if len(marked) == 1:
        return marked[0]
    # A sink with one required input and optional controls (e.g. audio + interrupt) reads
    # naturally as ``tts >> sink``.
    required = [p for p in ports.values() if isinstance(p, In) and p.required]
    if not marked and len(required) == 1:
        return required[0]
    label = f"{type(node).__qualname__} node {node.name!r}"
    if not ports:
        return f"{label} has no {direction} port"
    names = ", ".join(ports)
    return (
        f"{label} has {len(ports)} {direction}s ({names}) and none is marked default=True; "
        f"name the port, e.g. {node.name or 'node'}.{next(iter(ports))}"
    )


_RESERVED = frozenset(
    {"name", "group", "graph", "inserted", "params", "inputs", "outputs", "ctx", "wire", "run"}
)


def _collect_ports(
    cls: type[Node],
) -> tuple[dict[str, tuple[In[Any], Any]], dict[str, tuple[Out[Any], Any]]]:
    inputs: dict[str, tuple[In[Any], Any]] = {}
    outputs: dict[str, tuple[Out[Any], Any]] = {}
    for klass in reversed(cls.__mro__):
        if not issubclass(klass, Node):
            continue
        try:
            annotations = inspect.get_annotations(klass, eval_str=True)
        except NameError as exc:
            raise NodeDefinitionError(
                f"node class {klass.__qualname__}: cannot resolve a port annotation ({exc}); "
                "define the class at module level or import the type where the module can "
                "see it"
            ) from None
        for name, annotation in annotations.items():
            origin: Any = typing.get_origin(annotation)
            if origin is None:
                origin = annotation
            if origin not in (In, Out):
                continue
            args = typing.get_args(annotation)
            if not args:
                raise NodeDefinitionError(
                    f"port {klass.__qualname__}.{name} has no message type: write "
                    f"{origin.__name__}[SomeType], or {origin.__name__}[Any] to accept anything"
                )
            if name in _RESERVED:
                raise NodeDefinitionError(
                    f"port {klass.__qualname__}.{name}: the name {name!r} is taken by Node "
                    "itself; choose another port name"
                )
            template = klass.__dict__.get(name, None)
            if template is None:
                template = origin()
            elif not isinstance(template, origin):
                raise NodeDefinitionError(
                    f"port {klass.__qualname__}.{name} is annotated {origin.__name__}[...] but "
                    f"its default is {template!r}; write = {origin.__name__}(...) or drop it"
                )
            if origin is In:
                inputs[name] = (template, args[0])
                outputs.pop(name, None)
            else:
                outputs[name] = (template, args[0])
                inputs.pop(name, None)
    return inputs, outputs
