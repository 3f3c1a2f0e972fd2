"""``@function_tool``: a plain or async function (or method) as a tool the LLM can call.

::

    @function_tool
    async def get_weather(ctx: RunContext, city: str, unit: Literal["C", "F"] = "C") -> str:
        '''Look up today's weather; an Args section describes each argument.'''

    class Concierge:
        instructions = "You are a concierge."

        @function_tool
        async def book_table(self, ctx: RunContext, people: int) -> str:
            '''Book a table for tonight.'''

    ToolSet([get_weather, *tools_of(Concierge())]).specs()

A :class:`FunctionTool` defined in a class body is a descriptor: reading it from an instance
gives a tool bound to that instance, which is what :func:`tools_of` collects.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, get_args, overload

import pydantic

from flowkit.providers.chat import ToolSpec
from flowkit.tools.errors import DuplicateToolError, ToolDefinitionError
from flowkit.tools.schema import ToolSignature, read_signature

__all__ = ["DuplicatePolicy", "FunctionTool", "ToolSet", "ToolSpec", "function_tool", "tools_of"]

DuplicatePolicy = Literal["allow", "reject", "replace"]
"""What a call of a tool does while an earlier call of it runs in the background
(``ctx.update``): run too, be refused with an error the model reads, or replace (cancel) the
earlier ones. See :mod:`flowkit.nodes.tool_background`."""


@dataclass(frozen=True, slots=True, eq=False)
class FunctionTool:
    """A function the LLM may call, with its name, description and argument schema.

    Build one with :func:`function_tool`. Treat ``parameters`` as read-only: it is shared by
    every copy of the tool.

    Attributes:
        fn: The decorated function.
        signature: What :func:`~flowkit.tools.schema.read_signature` found in it.
        bound_to: The instance a method tool is bound to, or ``None``.
        on_duplicate: What a call does while an earlier call of the tool runs in the
            background (:data:`DuplicatePolicy`).
        cancellable: Whether the model may stop a call of it in the background
            (:data:`~flowkit.tools.cancel_background.cancel_background_tool`).
    """

    fn: Callable[..., Any]
    signature: ToolSignature
    bound_to: object | None = None
    on_duplicate: DuplicatePolicy = "allow"
    cancellable: bool = False

    @property
    def name(self) -> str:
        """The name the LLM calls the tool by."""
        return self.signature.name

    @property
    def description(self) -> str:
        """What the tool does, for the LLM."""
        return self.signature.description

    @property
    def parameters(self) -> dict[str, Any]:
        """The JSON schema of the arguments (OpenAI "function" style)."""
        return self.signature.parameters

    @property
    def args_model(self) -> type[pydantic.BaseModel]:
        """The pydantic model that validates the LLM's arguments."""
        return self.signature.args_model

    @property
    def is_async(self) -> bool:
        """``True`` when the function is a coroutine function."""
        return inspect.iscoroutinefunction(self.fn)

    @property
    def needs_instance(self) -> bool:
        """``True`` for a method tool read from the class rather than from an instance."""
        return self.signature.takes_self and self.bound_to is None

    def spec(self) -> ToolSpec:
        """The tool as an LLM provider is told about it.

        Returns:
            Name, description and parameters.
        """
        return ToolSpec(self.name, self.description, self.parameters)

    def __get__(self, instance: object | None, owner: type | None = None) -> FunctionTool:
        # Reading a method tool from an instance binds it, like a function becoming a method.
        if instance is None or not self.signature.takes_self:
            return self
        return dataclasses.replace(self, bound_to=instance)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function directly (in tests, or from other code), bypassing validation.

        Args:
            *args: Positional arguments, the context first if the tool takes one.
            **kwargs: Keyword arguments.

        Returns:
            Whatever the function returns (a coroutine for an async tool).
        """
        if self.signature.takes_self:
            if self.bound_to is None:
                raise TypeError(_unbound_message(self))
            return self.fn(self.bound_to, *args, **kwargs)
        return self.fn(*args, **kwargs)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FunctionTool):
            return NotImplemented
        return self.fn is other.fn and self.bound_to is other.bound_to and self.name == other.name

    def __hash__(self) -> int:
        return hash((id(self.fn), id(self.bound_to), self.name))

    def __repr__(self) -> str:
        bound = f" bound to {type(self.bound_to).__name__}" if self.bound_to is not None else ""
        return f"<FunctionTool {self.name!r}{bound}>"


@overload
def function_tool(fn: Callable[..., Any], /) -> FunctionTool: ...
@overload
def function_tool(
    *,
    name: str | None = None,
    description: str | None = None,
    on_duplicate: DuplicatePolicy = "allow",
    cancellable: bool = False,
) -> Callable[[Callable[..., Any]], FunctionTool]: ...
def function_tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    on_duplicate: DuplicatePolicy = "allow",
    cancellable: bool = False,
) -> FunctionTool | Callable[[Callable[..., Any]], FunctionTool]:
    """Make a tool from a sync or async function or method (see the module docstring).

    Args:
        fn: The function, when used bare as ``@function_tool``.
        name: The tool's name; defaults to the function's name.
        description: The tool's description; defaults to the docstring's summary and body.
        on_duplicate: For a tool that goes on in the background (``ctx.update``): what a
            call does while an earlier call of it is still there. ``"allow"`` runs it too,
            ``"reject"`` answers it with an error saying the first is under way (one booking
            at a time), ``"replace"`` cancels the earlier ones, whose results never come (a
            search whose terms changed).
        cancellable: For a tool that goes on in the background: the model may stop a call
            of it there with :data:`~flowkit.tools.cancel_background.cancel_background`
            (give the LLM node and the ToolRouter that tool too), when the user calls the
            work off. Off by default: stopping work halfway is not safe for every tool.

    Returns:
        A :class:`FunctionTool`, or a decorator making one when called with options.

    Raises:
        ToolDefinitionError: When the function cannot be described to an LLM; the message
            names the parameter and the fix. Or ``on_duplicate`` is not a policy.
    """

    def build(func: Callable[..., Any]) -> FunctionTool:
        if isinstance(func, FunctionTool):
            raise ToolDefinitionError(f"{func!r} is already a tool; apply @function_tool once")
        if isinstance(func, staticmethod | classmethod):
            raise ToolDefinitionError(
                f"@function_tool cannot wrap a {type(func).__name__}; make the tool a plain "
                "method (it gets self) or a module-level function"
            )
        return FunctionTool(
            func, read_signature(func, name=name, description=description),
            on_duplicate=on_duplicate, cancellable=cancellable,
        )

    policies = get_args(DuplicatePolicy)
    if on_duplicate not in policies:
        raise ToolDefinitionError(
            f"@function_tool(on_duplicate={on_duplicate!r}): the policies are "
            f"{', '.join(repr(policy) for policy in policies)}"
        )

    return build(fn) if fn is not None else build


def tools_of(obj: object) -> list[FunctionTool]:
    """The method tools of an object, bound to it, in definition order (base classes first).

    Args:
        obj: An instance of a class with ``@function_tool`` methods (an agent, say).

    Returns:
        The bound tools. A subclass attribute that overrides a tool with a non-tool hides it.
    """
    names: dict[str, None] = {}
    for klass in reversed(type(obj).__mro__):
        for attr, value in vars(klass).items():
            if isinstance(value, FunctionTool):
                names[attr] = None
            else:
                names.pop(attr, None)
    return [getattr(obj, attr) for attr in names]


class ToolSet:
    """The tools one LLM may call, by name.

    Args:
        tools: The tools; their names must be unique.

    Raises:
        DuplicateToolError: When two tools share a name.
        ToolDefinitionError: When a method tool was taken from its class instead of from an
            instance, or an element is not a :class:`FunctionTool`.
    """

    def __init__(self, tools: Iterable[FunctionTool] = ()) -> None:
        self._tools: dict[str, FunctionTool] = {}
        for tool in tools:
            if not isinstance(tool, FunctionTool):
                raise ToolDefinitionError(
                    f"ToolSet got {tool!r}, which is not a tool; decorate it with @function_tool"
                )
            if tool.needs_instance:
                raise ToolDefinitionError(_unbound_message(tool))
            if tool.name in self._tools:
                first = self._tools[tool.name]
                raise DuplicateToolError(tool.name, _describe(first), _describe(tool))
            self._tools[tool.name] = tool

    @property
    def names(self) -> list[str]:
        """The tool names, in the order the tools were given."""
        return list(self._tools)

    def get(self, name: str) -> FunctionTool | None:
        """The tool with this name, or ``None``.

        Args:
            name: A tool name.

        Returns:
            The tool, or ``None`` when there is none by that name.
        """
        return self._tools.get(name)

    def specs(self) -> list[ToolSpec]:
        """Every tool as an LLM provider is told about it, in order.

        Returns:
            One :class:`ToolSpec` per tool.
        """
        return [tool.spec() for tool in self._tools.values()]

    def __getitem__(self, name: str) -> FunctionTool:
        try:
            return self._tools[name]
        except KeyError:
            raise KeyError(
                f"no tool named {name!r}; the tools are {', '.join(self._tools) or '(none)'}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[FunctionTool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def __repr__(self) -> str:
        return f"ToolSet({self.names!r})"


def _describe(tool: FunctionTool) -> str:
    return f"{getattr(tool.fn, '__module__', '?')}.{getattr(tool.fn, '__qualname__', tool.fn)}"


def _unbound_message(tool: FunctionTool) -> str:
    return (
        f"tool {tool.name!r} is a method ({_describe(tool)}) read from its class, so it has no "
        "instance to run on; take it from an instance (agent.tool, or tools_of(agent))"
    )
