"""``@flowkit.node``: a node from a plain or async function, typed by its annotations.

The first parameter is the input port (named after the parameter, typed by its annotation);
keyword-only parameters become the node's validated parameters; the return annotation is the
output port ``out`` (``-> None`` makes a sink). A generator, sync or async, emits every value
it yields (``-> Iterator[str]`` gives ``Out[str]``); a function typed ``-> T | None`` emits
nothing when it returns ``None``::

    @fk.node
    def gain(frame: AudioFrame, *, db: float = 0.0) -> AudioFrame: ...

    g.add(gain(db=6.0))
"""

from __future__ import annotations

import collections.abc
import inspect
import re
import types
import typing
from collections.abc import Callable
from typing import Any, ClassVar, Literal, overload

import pydantic

from flowkit.node import Node, NodeParams, NodeStyle
from flowkit.policy import ErrorPolicy
from flowkit.ports import In, Out
from flowkit.problems import NodeDefinitionError

__all__ = ["FunctionMode", "FunctionNode", "node"]

FunctionMode = Literal["sync", "generator", "async", "async_generator"]

# Port classes subscripted with types only known at run time (typing sees Any).
_In: Any = In
_Out: Any = Out

_ITERATORS = {
    collections.abc.Iterator, collections.abc.Iterable, collections.abc.Generator,
}
_ASYNC_ITERATORS = {
    collections.abc.AsyncIterator, collections.abc.AsyncIterable, collections.abc.AsyncGenerator,
}


class FunctionNode(Node, abstract=True):
    """Base of nodes made by :func:`node`. The runtime calls ``fn(message, **params)``."""

    style: ClassVar[NodeStyle] = NodeStyle.FUNCTION
    fn: ClassVar[Callable[..., Any]]
    mode: ClassVar[FunctionMode]
    skip_none: ClassVar[bool] = False
    input_name: ClassVar[str]

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.kwargs: dict[str, Any] = {
            name: getattr(self.params, name) for name in type(self).Params.model_fields
        }


@overload
def node(fn: Callable[..., Any], /) -> type[FunctionNode]: ...
@overload
def node(
    *, name: str | None = None, threaded: bool = False, error_policy: ErrorPolicy | None = None
) -> Callable[[Callable[..., Any]], type[FunctionNode]]: ...
def node(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    threaded: bool = False,
    error_policy: ErrorPolicy | None = None,
) -> type[FunctionNode] | Callable[[Callable[..., Any]], type[FunctionNode]]:
    """Make a node class from a function (see the module docstring).

    Args:
        fn: The function.
        name: The node class name (defaults to the function name in CamelCase).
        threaded: Run the function on a worker thread (for CPU-heavy work); results come
            back to the event loop in order.
        error_policy: The default error policy of nodes of this class.

    Returns:
        A :class:`FunctionNode` subclass; call it (with any keyword parameters) to get a node.
    """

    def build(func: Callable[..., Any]) -> type[FunctionNode]:
        return _build(func, name, threaded, error_policy)

    return build(fn) if fn is not None else build


def _build(
    fn: Callable[..., Any], name: str | None, threaded: bool, policy: ErrorPolicy | None
) -> type[FunctionNode]:
    label = getattr(fn, "__qualname__", repr(fn))
    try:
        # include_extras keeps Annotated[int, Field(ge=1)] constraints for the Params model.
        hints = typing.get_type_hints(fn, include_extras=True)
    except NameError as exc:
        raise NodeDefinitionError(
            f"@node {label}: cannot resolve an annotation ({exc}); import the type at module "
            "level"
        ) from None
    signature = inspect.signature(fn)
    positional = [
        p for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if len(positional) != 1:
        raise NodeDefinitionError(
            f"@node {label}: a function node takes exactly one positional parameter (its "
            f"input message), found {len(positional)}; make node parameters keyword-only "
            "(after a '*')"
        )
    input_name = positional[0].name
    if input_name not in hints:
        raise NodeDefinitionError(
            f"@node {label}: annotate the input parameter {input_name!r} with its message "
            "type (Any if it takes anything)"
        )
    if "return" not in hints:
        raise NodeDefinitionError(
            f"@node {label}: annotate the return type (-> None for a sink that emits nothing)"
        )
    mode, out_type, skip_none = _output_of(fn, hints["return"], label)

    fields: dict[str, Any] = {}
    for param in signature.parameters.values():
        if param.kind is param.KEYWORD_ONLY:
            annotation = hints.get(param.name, Any)
            default = ... if param.default is param.empty else param.default
            fields[param.name] = (annotation, default)
        elif param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise NodeDefinitionError(
                f"@node {label}: *args/**kwargs cannot become node parameters; list them"
            )
    class_name = name or "".join(part.title() for part in re.split(r"_+", fn.__name__) if part)
    params_model = pydantic.create_model(
        f"{class_name}Params", __base__=NodeParams, **fields
    )
    namespace: dict[str, Any] = {
        "__module__": fn.__module__,
        "__qualname__": class_name,
        "__doc__": inspect.getdoc(fn),
        "__annotations__": {input_name: _In[hints[input_name]]},
        "Params": params_model,
        "fn": staticmethod(fn),
        "mode": mode,
        "skip_none": skip_none,
        "input_name": input_name,
        "threaded": threaded,
    }
    if out_type is not None:
        namespace["__annotations__"]["out"] = _Out[out_type]
    if policy is not None:
        namespace["error_policy"] = ErrorPolicy(policy)
    cls = types.new_class(
        class_name, (FunctionNode,), {}, lambda ns: ns.update(namespace)
    )
    return typing.cast(type[FunctionNode], cls)


def _output_of(fn: Callable[..., Any], returns: Any, label: str) -> tuple[FunctionMode, Any, bool]:
    origin = typing.get_origin(returns)
    args = typing.get_args(returns)
    if inspect.isasyncgenfunction(fn):
        if origin not in _ASYNC_ITERATORS or not args:
            raise NodeDefinitionError(
                f"@node {label}: an async generator must be annotated -> AsyncIterator[T]"
            )
        return "async_generator", args[0], False
    if inspect.isgeneratorfunction(fn):
        if origin not in _ITERATORS or not args:
            raise NodeDefinitionError(
                f"@node {label}: a generator must be annotated -> Iterator[T]"
            )
        return "generator", args[0], False
    mode: FunctionMode = "async" if inspect.iscoroutinefunction(fn) else "sync"
    if returns is None or returns is type(None):
        return mode, None, False
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        out_type = rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]  # noqa: UP007
        return mode, out_type, True
    return mode, returns, False
