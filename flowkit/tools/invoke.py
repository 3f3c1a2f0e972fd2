"""Running tool calls: from a :class:`~flowkit.messages.ToolCall` to a :class:`ToolOutcome`.

:func:`invoke_tool` never raises because of what the LLM sent or what the tool did: every
failure becomes an error :class:`~flowkit.messages.ToolResult` written for the LLM (what was
wrong, what to do), so the conversation goes on. Only programming errors in the tool set
(duplicate names, an unbound method tool) and cancellation propagate.

A tool steers the conversation through its return value or exception:

- a value: sent back as text (``str`` as is; pydantic models, dicts, lists, numbers as JSON;
  ``None`` as :data:`EMPTY_OUTPUT`);
- an agent (anything :class:`AgentLike`), or a tuple ``(agent, message)``: a handoff; the
  LLM node switches to the agent's instructions and tools and keeps the history;
- :class:`~flowkit.tools.errors.ToolError`: its message, as an error result;
- :class:`~flowkit.tools.errors.StopResponse`: an empty result, and no reply from the LLM.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import pydantic
import pydantic_core

from flowkit.messages import ToolCall, ToolResult
from flowkit.tools.context import RunContext
from flowkit.tools.errors import StopResponse, ToolError
from flowkit.tools.function_tool import FunctionTool, ToolSet
from flowkit.tools.task import TaskEnded, TaskStarted

__all__ = [
    "EMPTY_OUTPUT",
    "AgentLike",
    "ToolOutcome",
    "ToolsLike",
    "deadline_paused",
    "invoke_all",
    "invoke_tool",
    "lift_deadline",
]

logger = logging.getLogger("flowkit.tools")

EMPTY_OUTPUT = "done"
"""The output of a tool that returned ``None``: LLMs handle an empty result poorly."""

_MAX_INPUT_REPR = 80

# The running tool's timeout and its length, for deadline_paused(): set by invoke_tool in
# the task that runs the tool, so each tool sees its own.
_deadline: contextvars.ContextVar[tuple[asyncio.Timeout, float | None]] = contextvars.ContextVar(
    "flowkit_tool_deadline"
)


@runtime_checkable
class AgentLike(Protocol):
    """Anything a tool can hand the conversation over to.

    An agent brings its own instructions and tools; the LLM node swaps them in and keeps the
    chat history. Any object with these two attributes qualifies.
    """

    @property
    def instructions(self) -> str:
        """The system instructions of the agent."""
        ...

    @property
    def tools(self) -> Sequence[FunctionTool]:
        """The tools the agent may call."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolOutcome:
    """What came of one tool call.

    Attributes:
        result: The result to send back to the LLM.
        stop_response: ``True`` when the tool asked that the LLM not reply to this call.
        handoff: The agent to hand the conversation to, when the tool returned one (or, from
            the ToolRouter, a task's start or end: :mod:`flowkit.tools.task`).
    """

    result: ToolResult
    stop_response: bool = False
    handoff: AgentLike | TaskStarted | TaskEnded | None = None


ToolsLike = FunctionTool | ToolSet | Iterable[FunctionTool]
"""What the invoke functions accept as the available tools."""


async def invoke_tool(
    tools: ToolsLike, call: ToolCall, ctx: RunContext[Any], *, timeout: float | None
) -> ToolOutcome:
    """Validate a call's arguments, run the tool, and turn what happened into an outcome.

    Sync tools run on a worker thread so they never block the event loop.

    Args:
        tools: The tools the LLM may call (one tool, a :class:`ToolSet` or an iterable).
        call: The call to answer.
        ctx: The context the tool receives, if it asks for one.
        timeout: Seconds the tool may run, or ``None`` for no limit. A sync tool that times
            out keeps running on its thread (threads cannot be cancelled); its result is
            dropped.

    Returns:
        The outcome; errors are in ``outcome.result`` with ``is_error=True``.

    Raises:
        DuplicateToolError: When ``tools`` holds two tools with one name.
        ToolDefinitionError: When ``tools`` holds a method tool not bound to an instance.
    """
    toolset = _as_toolset(tools)
    tool = toolset.get(call.name)
    if tool is None:
        available = ", ".join(toolset.names) or "(none)"
        return _error(
            call,
            f"Unknown tool {call.name!r}. Available tools: {available}. "
            "Call one of these by its exact name.",
        )
    args = _parse_arguments(tool, call)
    if isinstance(args, ToolOutcome):
        return args

    deadline = asyncio.timeout(timeout)
    token = _deadline.set((deadline, timeout))
    try:
        async with deadline:
            value = await _run(tool, ctx, args)
    except ToolError as exc:
        logger.debug("tool %r (call %s) raised ToolError: %s", call.name, call.call_id, exc)
        return _error(call, exc.message)
    except StopResponse:
        return ToolOutcome(result=_result(call, ""), stop_response=True)
    except TimeoutError:
        if deadline.expired():
            return _error(
                call,
                f"Tool {call.name!r} timed out after {timeout:g} s and was stopped; it may not "
                "have taken effect. Tell the user it is taking too long, or try again.",
            )
        # The tool's own TimeoutError (a slow backend, say) is an internal failure.
        logger.exception("tool %r (call %s) failed", call.name, call.call_id)
        return _internal_error(call)
    except Exception:
        logger.exception("tool %r (call %s) failed", call.name, call.call_id)
        return _internal_error(call)
    finally:
        _deadline.reset(token)
    return _outcome_of(call, value)


@contextlib.contextmanager
def deadline_paused() -> Iterator[None]:
    """Stop the running tool's timeout inside the block; it starts afresh on leaving.

    For a tool that waits on the user (a task it runs) rather than on work: the wait is
    not the tool being slow. Outside a tool run by :func:`invoke_tool`, it does nothing.
    """
    running = _deadline.get(None)
    if running is None:
        yield
        return
    deadline, timeout = running
    deadline.reschedule(None)
    try:
        yield
    finally:
        if timeout is not None and not deadline.expired():
            deadline.reschedule(asyncio.get_running_loop().time() + timeout)


def lift_deadline() -> None:
    """Take the running tool's timeout away for good: it may run as long as it needs.

    For a tool that has answered its call and goes on in the background
    (``ctx.update()``): nothing waits for it any more, so its length is no one's delay.
    Outside a tool run by :func:`invoke_tool`, it does nothing.
    """
    running = _deadline.get(None)
    if running is not None:
        running[0].reschedule(None)


async def invoke_all(
    tools: ToolsLike,
    calls: Sequence[ToolCall],
    ctx_factory: Callable[[ToolCall], RunContext[Any]],
    *,
    timeout: float | None,
    parallel: bool = True,
) -> list[ToolOutcome]:
    """Run several calls (one LLM reply's worth), concurrently by default.

    Args:
        tools: The tools the LLM may call.
        calls: The calls, in the order the LLM made them.
        ctx_factory: Builds the context for each call.
        timeout: Seconds each call may run, or ``None`` for no limit.
        parallel: Run the calls concurrently (``False``: one after another, in order, for
            tools whose effects must not interleave).

    Returns:
        One outcome per call, in call order whatever order they finished in.
    """
    toolset = _as_toolset(tools)
    # Contexts are built up front so a failing factory raises before any tool has started.
    contexts = [ctx_factory(c) for c in calls]
    if not parallel:
        return [
            await invoke_tool(toolset, c, ctx, timeout=timeout)
            for c, ctx in zip(calls, contexts, strict=True)
        ]
    async with asyncio.TaskGroup() as group:
        tasks = [
            group.create_task(invoke_tool(toolset, c, ctx, timeout=timeout))
            for c, ctx in zip(calls, contexts, strict=True)
        ]
    return [task.result() for task in tasks]


def _as_toolset(tools: ToolsLike) -> ToolSet:
    if isinstance(tools, ToolSet):
        return tools
    if isinstance(tools, FunctionTool):
        return ToolSet([tools])
    return ToolSet(tools)


def _parse_arguments(tool: FunctionTool, call: ToolCall) -> pydantic.BaseModel | ToolOutcome:
    # Some providers send "" for a call without arguments.
    text = call.arguments.strip() or "{}"
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        return _error(
            call,
            f"Arguments for tool {call.name!r} are not valid JSON ({exc.msg} at position "
            f"{exc.pos}). Send one JSON object; expected {_expected(tool)}.",
        )
    if not isinstance(raw, dict):
        return _error(
            call,
            f"Arguments for tool {call.name!r} must be a JSON object, got "
            f"{type(raw).__name__}; expected {_expected(tool)}.",
        )
    try:
        return tool.args_model.model_validate(raw)
    except pydantic.ValidationError as exc:
        problems = "; ".join(_problem(error) for error in exc.errors(include_url=False))
        return _error(
            call,
            f"Invalid arguments for tool {call.name!r}: {problems}. Expected {_expected(tool)}. "
            "Call the tool again with corrected arguments.",
        )


async def _run(tool: FunctionTool, ctx: RunContext[Any], args: pydantic.BaseModel) -> Any:
    sig = tool.signature

    def value(name: str) -> Any:
        # Validated values are read as attributes so nested models stay model instances.
        return ctx if name == sig.context_param else getattr(args, name)

    names = sig.positional[1:] if sig.takes_self else sig.positional
    positional = [value(name) for name in names]
    if sig.takes_self:
        positional.insert(0, tool.bound_to)
    keywords = {name: value(name) for name in sig.keyword_only}
    if tool.is_async:
        return await tool.fn(*positional, **keywords)
    result = await asyncio.to_thread(tool.fn, *positional, **keywords)
    # A sync callable may still hand back an awaitable (an object with an async __call__).
    return await result if inspect.isawaitable(result) else result


def _outcome_of(call: ToolCall, value: Any) -> ToolOutcome:
    if isinstance(value, AgentLike):
        return ToolOutcome(
            result=_result(call, f"Transferred to {type(value).__name__}."), handoff=value
        )
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], AgentLike):
        return ToolOutcome(result=_result(call, _to_text(value[1])), handoff=value[0])
    return ToolOutcome(result=_result(call, _to_text(value)))


def _to_text(value: Any) -> str:
    if value is None:
        return EMPTY_OUTPUT
    if isinstance(value, str):
        return value
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump_json()
    try:
        return pydantic_core.to_json(value).decode()
    except pydantic_core.PydanticSerializationError:
        logger.warning("tool result of type %s is not JSON-serialisable; sending str()",
                       type(value).__name__)
        return str(value)


def _result(call: ToolCall, output: str, *, is_error: bool = False) -> ToolResult:
    return ToolResult(
        turn_id=call.turn_id, call_id=call.call_id, name=call.name, output=output,
        is_error=is_error,
    )


def _error(call: ToolCall, message: str) -> ToolOutcome:
    return ToolOutcome(result=_result(call, message, is_error=True))


def _internal_error(call: ToolCall) -> ToolOutcome:
    # The exception stays in the logs: its text may hold internals the LLM must not repeat.
    return _error(
        call,
        f"Tool {call.name!r} failed with an internal error. Tell the user it could not be "
        "done right now; do not retry with the same arguments.",
    )


def _problem(error: Any) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "(arguments)"
    kind = error["type"]
    if kind == "missing":
        return f"{where!r} is required but missing"
    if kind == "extra_forbidden":
        return f"{where!r} is not a parameter of this tool"
    got = repr(error.get("input"))
    if len(got) > _MAX_INPUT_REPR:
        got = got[: _MAX_INPUT_REPR - 3] + "..."
    return f"{where!r}: {error['msg']} (got {got})"


def _expected(tool: FunctionTool) -> str:
    schema = tool.parameters
    defs = schema.get("$defs", {})
    required = set(schema.get("required", ()))
    parts = [
        f"{name}: {_type_of(prop, defs)}{' (required)' if name in required else ''}"
        for name, prop in schema.get("properties", {}).items()
    ]
    return "{" + ", ".join(parts) + "}" if parts else "no arguments ({})"


def _type_of(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in prop:
        name = str(prop["$ref"]).rsplit("/", 1)[-1]
        target = defs.get(name, {})
        return _type_of(target, {}) if "enum" in target else name
    if "enum" in prop:
        return " | ".join(json.dumps(v) for v in prop["enum"])
    if "const" in prop:
        return json.dumps(prop["const"])
    if "anyOf" in prop:
        return " | ".join(_type_of(option, defs) for option in prop["anyOf"])
    kind = prop.get("type", "any")
    if kind == "array" and isinstance(prop.get("items"), dict):
        return f"array of {_type_of(prop['items'], defs)}"
    return str(kind)
