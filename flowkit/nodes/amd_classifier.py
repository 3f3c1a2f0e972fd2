"""The LLM half of answering-machine detection: what kind of greeting a transcript is.

:func:`classify_greeting` sends one request: a system prompt that names the categories of
:class:`~flowkit.messages.AMDCategory` with examples, the greeting as the user message, and
``tool_choice="required"`` over two tools, so the answer is structured instead of free text:

- ``record_category(category)``: the greeting is one of the five categories;
- ``wait_for_more(seconds)``: the greeting is cut off and more of it is coming (offered only
  while the caller allows more waits).

The answer is read, not trusted: a call of an unknown tool, arguments that are not JSON, a
category or a wait outside the schema are logged and ignored, so a model that answers badly
leaves the verdict undecided (the detector's timeouts then settle it) instead of failing
the call. :class:`~flowkit.nodes.amd.AnsweringMachineDetector` drives it.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from typing import Any

from flowkit.messages import AMDCategory
from flowkit.providers.chat import ChatMessage, ToolSpec
from flowkit.providers.llm import LLMProvider, ToolCallChunk

__all__ = [
    "DEFAULT_AMD_PROMPT",
    "RECORD_TOOL",
    "WAIT_TOOL",
    "GreetingClass",
    "classify_greeting",
]

log = logging.getLogger("flowkit.nodes.amd")

DEFAULT_AMD_PROMPT = """You listen to the first words heard on an outbound phone call and \
decide what answered it. Call record_category with exactly one category:

- human: a person picked up. "Hello?", "Hi, Sam speaking.", "Yes, who is this?"
- machine-ivr: an automated menu or a call screener that wants a key or an answer. "For \
billing press 2.", "Please say the name of the person you are calling.", "State your name \
and I will see if they are available."
- machine-vm: a voicemail greeting after which a message can be left. "You've reached \
Dana, leave a message after the tone.", "I can't take your call right now, I'll call you back."
- machine-unavailable: a mailbox or number that takes no message. "The mailbox is full.", \
"The voicemail box has not been set up. Goodbye.", "The number you have dialed is not in \
service."
- uncertain: the words so far fit more than one category, e.g. a business announcing its \
opening hours before any menu.

The transcript comes from speech recognition and may be cut off or misheard. If it stops \
mid-sentence and more is likely to follow, call wait_for_more instead of guessing."""
"""The classification prompt (the system message); the node's ``prompt`` replaces it."""

RECORD_TOOL = ToolSpec(
    name="record_category",
    description="Record what answered the call.",
    parameters={
        "type": "object",
        "properties": {
            "category": {
                "type": "string",
                "enum": [category.value for category in AMDCategory],
                "description": "The category of the greeting.",
            }
        },
        "required": ["category"],
    },
)
"""The tool through which the model gives its category."""

WAIT_TOOL = ToolSpec(
    name="wait_for_more",
    description=(
        "The greeting was cut off and more of it is coming: listen this many seconds more "
        "before deciding."
    ),
    parameters={
        "type": "object",
        "properties": {
            "seconds": {"type": "number", "minimum": 0, "description": "Seconds to wait."}
        },
        "required": ["seconds"],
    },
)
"""The tool through which the model asks to hear more of the greeting."""


@dataclass(frozen=True, slots=True)
class GreetingClass:
    """The model's answer about one transcript.

    Attributes:
        category: The category it recorded; ``None`` when it recorded none (it waited, or
            its answer was unusable).
        wait: Seconds it asked to wait for more of the greeting (already capped by the
            caller's ``max_wait``); ``None`` when it did not ask.
    """

    category: AMDCategory | None = None
    wait: float | None = None


async def classify_greeting(
    llm: LLMProvider,
    transcript: str,
    *,
    prompt: str = DEFAULT_AMD_PROMPT,
    may_wait: bool = True,
    max_wait: float = 10.0,
) -> GreetingClass:
    """Ask ``llm`` what answered the call, from the greeting's transcript.

    Args:
        llm: The chat model; it must support tool calls.
        transcript: What the other side said so far.
        prompt: The system message.
        may_wait: Whether to offer ``wait_for_more``.
        max_wait: The longest wait granted, in seconds; longer asks are cut to it.

    Returns:
        The category and the wait the model asked for; both ``None`` when its answer had
        neither in a usable form (logged).

    Raises:
        flowkit.providers.errors.ProviderError: The request failed.
    """
    history = [ChatMessage("system", prompt), ChatMessage("user", transcript)]
    tools = [RECORD_TOOL, WAIT_TOOL] if may_wait else [RECORD_TOOL]
    category: AMDCategory | None = None
    wait: float | None = None
    async for chunk in llm.chat(history, tools, tool_choice="required"):
        if not isinstance(chunk, ToolCallChunk):
            continue  # text beside the tool call says nothing the call does not
        arguments = _arguments(llm.name, chunk)
        if arguments is None:
            continue
        if chunk.name == RECORD_TOOL.name:
            category = _category(llm.name, arguments.get("category")) or category
        elif chunk.name == WAIT_TOOL.name and may_wait:
            wait = _wait(llm.name, arguments.get("seconds"), max_wait)
        else:
            log.warning(
                "AMD: %s called %r, which it was not offered (%s); ignored",
                llm.name, chunk.name, ", ".join(tool.name for tool in tools),
            )
    if category is None and wait is None:
        log.warning(
            "AMD: %s gave neither a category nor a wait for %r; the verdict stays open",
            llm.name, transcript,
        )
    return GreetingClass(category, wait)


def _arguments(provider: str, call: ToolCallChunk) -> dict[str, Any] | None:
    try:
        arguments = json.loads(call.arguments or "{}")
    except json.JSONDecodeError as exc:
        log.warning(
            "AMD: %s called %s with arguments that are not JSON (%s): %r; ignored",
            provider, call.name, exc, call.arguments,
        )
        return None
    if not isinstance(arguments, dict):
        log.warning(
            "AMD: %s called %s with %r instead of a JSON object; ignored",
            provider, call.name, call.arguments,
        )
        return None
    return arguments


def _category(provider: str, value: object) -> AMDCategory | None:
    for category in AMDCategory:
        if value == category.value:
            return category
    log.warning(
        "AMD: %s recorded the category %r, which is not one of %s; ignored",
        provider, value, ", ".join(repr(category.value) for category in AMDCategory),
    )
    return None


def _wait(provider: str, value: object, max_wait: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        log.warning("AMD: %s asked to wait %r seconds, not a number; ignored", provider, value)
        return None
    return min(max(float(value), 0.0), max_wait)
