"""From a Python signature to a tool's arguments model and JSON schema.

:func:`read_signature` looks at a function once, when it becomes a tool:

- a parameter annotated ``RunContext`` (or ``RunContext[T]``) is the context, filled by
  flowkit and left out of the schema;
- the receiver (``self``) of a function defined in a class body is left out too;
- every other parameter becomes a field of a pydantic model (type, default,
  ``Annotated[..., Field(...)]`` constraints and descriptions);
- the docstring (Google, reST, numpydoc or epydoc, via docstring-parser) gives the tool's
  description and the descriptions of arguments that have none in ``Field``.

The model validates the LLM's arguments; its JSON schema, cleaned of pydantic's titles, is
the OpenAI-style ``parameters`` object (``type: object``, ``properties``, ``required``,
``additionalProperties: false``).
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import docstring_parser
import pydantic
from pydantic.fields import FieldInfo

from flowkit.tools.context import RunContext
from flowkit.tools.errors import ToolDefinitionError

__all__ = ["ToolSignature", "is_run_context", "json_schema_of", "read_signature"]

# OpenAI, Anthropic and Gemini all accept this; most reject anything else.
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Keys whose values are data, not sub-schemas: a "title" inside them is the user's.
_DATA_KEYS = frozenset({"default", "const", "enum", "examples"})
# Keys whose values map user-chosen names to sub-schemas: the names are not keywords.
_NAMED_SCHEMAS = frozenset({"properties", "$defs", "definitions", "patternProperties"})


@dataclass(frozen=True, slots=True)
class ToolSignature:
    """What a tool's function looks like, as the tool machinery needs it.

    Attributes:
        name: The tool's name.
        description: The tool's description for the LLM.
        args_model: The pydantic model validating the LLM's arguments.
        parameters: The JSON schema of the arguments (OpenAI "function" style).
        context_param: The name of the ``RunContext`` parameter, if any.
        takes_self: ``True`` for a function defined in a class body (a method).
        positional: Parameter names passed positionally, in order (receiver and context
            included, when present).
        keyword_only: Keyword-only parameter names (context included, when it is one).
    """

    name: str
    description: str
    args_model: type[pydantic.BaseModel]
    parameters: dict[str, Any]
    context_param: str | None
    takes_self: bool
    positional: tuple[str, ...]
    keyword_only: tuple[str, ...]


def is_run_context(annotation: object) -> bool:
    """Tell whether an annotation asks for the :class:`RunContext`.

    Args:
        annotation: A resolved annotation (``RunContext``, ``RunContext[T]``, or either
            inside ``Annotated``).

    Returns:
        ``True`` when the parameter should receive the context.
    """
    if typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    target = typing.get_origin(annotation) or annotation
    return isinstance(target, type) and issubclass(target, RunContext)


def read_signature(
    fn: Callable[..., Any], *, name: str | None = None, description: str | None = None
) -> ToolSignature:
    """Read a function's signature and docstring into a :class:`ToolSignature`.

    Args:
        fn: The tool's function, sync or async.
        name: The tool's name; defaults to the function's name.
        description: The tool's description; defaults to the docstring's summary and body.

    Returns:
        The signature, with the arguments model and its JSON schema.

    Raises:
        ToolDefinitionError: When the name is not a valid tool name, a parameter has no
            annotation or a type that cannot be expressed as JSON, or the function takes
            ``*args``/``**kwargs`` or two contexts.
    """
    label = getattr(fn, "__qualname__", repr(fn))
    tool_name = name if name is not None else getattr(fn, "__name__", "")
    if not _NAME.fullmatch(tool_name):
        raise ToolDefinitionError(
            f"tool {label}: name {tool_name!r} is not a valid tool name; use 1-64 letters, "
            "digits, '_' or '-' (pass @function_tool(name=...))"
        )
    params = list(inspect.signature(fn).parameters.values())
    takes_self = _defined_in_class(fn) and bool(params) and params[0].kind in (
        inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD
    )
    hints = _parameter_hints(fn, label)
    if takes_self and is_run_context(hints.get(params[0].name)):
        takes_self = False  # a staticmethod-like function whose first parameter is the context
    docstring = docstring_parser.parse(inspect.getdoc(fn) or "")
    arg_docs = {p.arg_name: p.description for p in docstring.params if p.description}

    context_param: str | None = None
    fields: dict[str, Any] = {}
    for index, param in enumerate(params):
        if index == 0 and takes_self:
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ToolDefinitionError(
                f"tool {tool_name!r} ({label}): *{param.name} cannot be described to the LLM; "
                "list each argument as its own parameter"
            )
        if param.name not in hints:
            raise ToolDefinitionError(
                f"tool {tool_name!r} ({label}): parameter {param.name!r} has no type "
                f"annotation; annotate it (e.g. {param.name}: str) so the LLM knows what to send"
            )
        annotation = hints[param.name]
        if is_run_context(annotation):
            if context_param is not None:
                raise ToolDefinitionError(
                    f"tool {tool_name!r} ({label}): parameters {context_param!r} and "
                    f"{param.name!r} both ask for the RunContext; keep one"
                )
            context_param = param.name
            continue
        if param.name.startswith("_"):
            raise ToolDefinitionError(
                f"tool {tool_name!r} ({label}): parameter {param.name!r} starts with '_', "
                "which pydantic cannot use as a field; rename it"
            )
        doc = arg_docs.get(param.name)
        if doc and not _has_description(annotation, param.default):
            annotation = Annotated[annotation, pydantic.Field(description=doc)]
        fields[param.name] = (annotation, ... if param.default is param.empty else param.default)

    args_model = _build_model(tool_name, label, fields)
    positional = tuple(
        p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    )
    keyword_only = tuple(p.name for p in params if p.kind is p.KEYWORD_ONLY)
    summary = "\n\n".join(
        part for part in (docstring.short_description, docstring.long_description) if part
    )
    return ToolSignature(
        name=tool_name,
        description=description if description is not None else summary,
        args_model=args_model,
        parameters=json_schema_of(args_model),
        context_param=context_param,
        takes_self=takes_self,
        positional=positional,
        keyword_only=keyword_only,
    )


def json_schema_of(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    """The OpenAI-style JSON schema of an arguments model.

    Args:
        model: The arguments model.

    Returns:
        ``{"type": "object", "properties": ..., "required": [...],
        "additionalProperties": False}`` plus ``$defs`` for nested models and enums,
        without pydantic's generated titles (they cost tokens and tell the LLM nothing).
    """
    raw = _strip_titles(model.model_json_schema())
    schema: dict[str, Any] = {
        "type": "object",
        "properties": raw.get("properties", {}),
        "required": raw.get("required", []),
        "additionalProperties": False,
    }
    for key, value in raw.items():
        schema.setdefault(key, value)
    return schema


class _Annotations:
    """A stand-in carrying only parameter annotations for :func:`typing.get_type_hints`."""

    def __init__(self, annotations: dict[str, Any], globalns: dict[str, Any]) -> None:
        self.__annotations__ = annotations
        self.__globals__ = globalns


def _parameter_hints(fn: Callable[..., Any], label: str) -> dict[str, Any]:
    # The return annotation is left out on purpose: a handoff tool is often annotated with an
    # agent class defined later in the module, which cannot be resolved yet.
    target = inspect.unwrap(fn)
    annotations = {
        k: v for k, v in getattr(target, "__annotations__", {}).items() if k != "return"
    }
    try:
        return typing.get_type_hints(
            _Annotations(annotations, getattr(target, "__globals__", {})), include_extras=True
        )
    except NameError as exc:
        raise ToolDefinitionError(
            f"tool {label}: cannot resolve a parameter annotation ({exc}); define or import "
            "the type at module level, before the tool"
        ) from None


def _defined_in_class(fn: Callable[..., Any]) -> bool:
    # "Agent.lookup" or "build.<locals>.Agent.lookup" are methods; "build.<locals>.lookup"
    # is a nested function. The receiver has no annotation to go by, so the qualname decides.
    qualname = getattr(fn, "__qualname__", "")
    owner, _, _ = qualname.rpartition(".")
    return bool(owner) and not owner.endswith("<locals>")


def _has_description(annotation: Any, default: Any) -> bool:
    metadata = typing.get_args(annotation)[1:] if typing.get_origin(annotation) is Annotated else ()
    infos = [m for m in (*metadata, default) if isinstance(m, FieldInfo)]
    return any(info.description for info in infos)


def _build_model(
    tool_name: str, label: str, fields: dict[str, Any]
) -> type[pydantic.BaseModel]:
    model_name = "".join(part.title() for part in re.split(r"[_-]+", tool_name) if part) + "Args"
    try:
        model: type[pydantic.BaseModel] = pydantic.create_model(
            model_name, __config__=pydantic.ConfigDict(extra="forbid"), **fields
        )
        model.model_json_schema()
    except (pydantic.PydanticSchemaGenerationError, pydantic.PydanticUserError) as exc:
        raise ToolDefinitionError(
            f"tool {tool_name!r} ({label}): its arguments cannot be described as JSON "
            f"({exc.__class__.__name__}: {str(exc).splitlines()[0]}); use str, numbers, bool, "
            "Literal, Enum, lists, dicts or pydantic models"
        ) from None
    return model


def _strip_titles(node: Any) -> Any:
    if isinstance(node, dict):
        cleaned: dict[str, Any] = {}
        for key, value in node.items():
            if key == "title":
                continue
            if key in _DATA_KEYS:
                cleaned[key] = value
            elif key in _NAMED_SCHEMAS and isinstance(value, dict):
                cleaned[key] = {name: _strip_titles(sub) for name, sub in value.items()}
            else:
                cleaned[key] = _strip_titles(value)
        return cleaned
    if isinstance(node, list):
        return [_strip_titles(item) for item in node]
    return node
