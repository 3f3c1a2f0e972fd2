"""The agent presses telephone keys (DTMF): a tool the LLM calls to get through phone menus.

An agent that calls a company through SIP meets its phone menu (an IVR: "press 1 for
sales"). :data:`send_dtmf` is a function tool the LLM calls with the keys to press; it
presses them on the job's room I/O (:class:`~flowkit.room_io.DTMFOutput`: LiveKit's
``publish_dtmf``, which SIP participants play as tones on their line)::

    from flowkit.tools.dtmf import send_dtmf

    llm = g.add(LLM(model, instructions=IVR_PROMPT, tools=[send_dtmf]))
    router = g.add(ToolRouter([send_dtmf]))
    llm.tool_calls >> router >> llm.tool_results

The LLM sends the keys as one string (``"1"``, ``"1234#"``). Every key must be one of
:data:`~flowkit.messages.DTMF_DIGITS` (lowercase ``a``-``d`` count as ``A``-``D``; spaces,
commas and hyphens between keys are ignored, as in ``"555-1234"``); otherwise nothing is
pressed and the LLM gets an error result naming the keys it got wrong. Keys are pressed
``gap`` seconds apart, and the call returns ``gap`` after its last key: 0.3 s, LiveKit
Agents' pace (``send_dtmf_events``), slow enough for a phone menu to tell two presses of
one key apart. A call of more than :data:`DEFAULT_MAX_KEYS` keys (32) presses none and
tells the LLM to split the entry: a string that long is more likely a model looping than a
number to enter, and at 0.3 s a key it would hold the line for a long while.
:func:`send_dtmf_tool` makes the tool with another gap, cap or name.

Calls on one line take turns: the router runs the calls of one reply concurrently, and two
calls pressing at once would mix their keys. A session without a phone line (an offline
run: a WAV file cannot carry tones) answers the LLM with an error result, and the
conversation goes on.

Compared with LiveKit Agents, whose tool takes a list of key names: one string is what an
LLM writes for "press 1 2 3 #", and a wrong key is reported by name, before any key of the
call is pressed, rather than as a schema error.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated

import pydantic

from flowkit.messages import DTMF_DIGITS
from flowkit.room_io import DTMFOutput
from flowkit.tools.context import RunContext
from flowkit.tools.errors import ToolError
from flowkit.tools.function_tool import FunctionTool, function_tool

__all__ = ["DEFAULT_KEY_GAP", "DEFAULT_MAX_KEYS", "send_dtmf", "send_dtmf_tool"]

logger = logging.getLogger("flowkit.tools")

DEFAULT_KEY_GAP = 0.3
"""Seconds between two presses (and after the last): LiveKit Agents' pace."""

DEFAULT_MAX_KEYS = 32
"""The most keys one call presses: a card number, its expiry and a PIN fit."""

# Written between keys by people and LLMs ("555-1234", "1, 2"); never a key themselves.
_SEPARATORS = frozenset(",-")

_KEYS_DOC = (
    "The keys to press, in order: digits 0-9, * and #, or A-D; e.g. \"1\" for a menu "
    "option or \"1234#\" for an account number ended with the pound key."
)


def send_dtmf_tool(
    *,
    gap: float = DEFAULT_KEY_GAP,
    max_keys: int = DEFAULT_MAX_KEYS,
    name: str = "send_dtmf",
    description: str | None = None,
) -> FunctionTool:
    """Make a tool that presses telephone keys on the job's phone line (see the module).

    Give the same tool to the LLM node (it offers the tool) and to the
    :class:`~flowkit.nodes.tools.ToolRouter` (it runs the calls, with the job's room I/O).

    Args:
        gap: Seconds between two presses, and after the last one before the call returns
            (a later call's first key keeps the pace too). ``0`` presses as fast as the I/O
            takes them, which some phone menus miss.
        max_keys: The most keys one call presses; a call with more presses none and its
            error result asks the LLM to split the entry.
        name: The tool's name, as the LLM calls it.
        description: What the LLM is told the tool does; the default says it presses keys
            for phone menus and entries.

    Returns:
        The tool.

    Raises:
        ValueError: ``gap`` is negative or not finite, or ``max_keys`` is below 1.
        ToolDefinitionError: ``name`` is not a valid tool name.
    """
    if not math.isfinite(gap) or gap < 0:
        raise ValueError(
            f"send_dtmf_tool(gap={gap!r}): the gap between key presses must be a finite "
            f"number of seconds >= 0; LiveKit's pace is {DEFAULT_KEY_GAP}"
        )
    if max_keys < 1:
        raise ValueError(
            f"send_dtmf_tool(max_keys={max_keys!r}): a call must be allowed at least one "
            f"key; the default is {DEFAULT_MAX_KEYS}"
        )

    async def send_dtmf(
        ctx: RunContext,
        keys: Annotated[str, pydantic.Field(description=_KEYS_DOC)],
    ) -> str:
        """Press keys on the telephone keypad of this call, as a caller does.

        Use it to choose an option of an automated phone menu ("press 1 for sales") or to
        enter a number the line asks for. Press all the keys of one entry in one call.
        """
        return await _press(ctx, keys, gap, max_keys)

    return function_tool(name=name, description=description)(send_dtmf)


async def _press(ctx: RunContext, text: str, gap: float, max_keys: int) -> str:
    # No line first: keys corrected for a session that cannot press them are a wasted call.
    output = _phone_line(ctx)
    keys = _keys_of(text)
    if len(keys) > max_keys:
        raise ToolError(
            f"keys={text!r} has {len(keys)} keys, more than the {max_keys} one call may "
            "press, so nothing was pressed. Press the entry in parts, one call each "
            "(e.g. the account number, then the PIN)."
        )
    async with _taking_turns(output):
        for index, key in enumerate(keys):
            try:
                await output.publish_dtmf(key)
            except Exception as exc:  # the line failed: a room that closed, a lost link
                logger.warning("send_dtmf: pressing %r failed", key, exc_info=True)
                raise ToolError(_failed(keys, index, exc)) from exc
            if gap:
                await asyncio.sleep(gap)
    return f"Pressed {' '.join(keys)} on the phone keypad."


def _keys_of(text: str) -> list[str]:
    """The keys of the LLM's string; a :class:`ToolError` naming the ones that are not keys."""
    keys: list[str] = []
    wrong: list[str] = []
    for char in text:
        if char.isspace() or char in _SEPARATORS:
            continue
        key = char.upper() if char in "abcd" else char
        if key in DTMF_DIGITS:
            keys.append(key)
        elif char not in wrong:
            wrong.append(char)
    if wrong:
        named = ", ".join(repr(char) for char in wrong)
        are = "is not a telephone keypad key" if len(wrong) == 1 else "are not keypad keys"
        raise ToolError(
            f"{named} {are} (in keys={text!r}), so nothing was pressed. A keypad has "
            f"0-9, * and # (and A-D on some lines); call the tool again with those only, "
            'e.g. "1" or "1234#".'
        )
    if not keys:
        raise ToolError(
            f"keys={text!r} has no key to press, so nothing was pressed. Call the tool with "
            'the keys to press, e.g. "1" or "1234#".'
        )
    return keys


def _phone_line(ctx: RunContext) -> DTMFOutput:
    """The job's room I/O, when it can press keys; otherwise a :class:`ToolError` saying why."""
    job = ctx.job
    if job is None:
        why = "the tool runs outside a job"
    elif job.io is None:
        why = "the job has no room I/O"
    elif isinstance(job.io, DTMFOutput):
        return job.io
    else:
        why = f"its room I/O, {type(job.io).__name__}, cannot send DTMF tones"
    # The developer sees this in the log; the LLM, in the result, tells the user.
    logger.info("send_dtmf (call %s): no phone line: %s", ctx.call.call_id, why)
    raise ToolError(
        f"This session has no phone line to press keys on ({why}), so nothing was pressed. "
        "Do not call the tool again in this session; tell the user you cannot press keys here."
    )


def _failed(keys: list[str], index: int, exc: Exception) -> str:
    pressed, rest = " ".join(keys[:index]), " ".join(keys[index:])
    outcome = f"{pressed} went through, {rest} did not" if pressed else "no key went through"
    return (
        f"The phone line failed while pressing {keys[index]!r} ({type(exc).__name__}: "
        f"{exc}): {outcome}. The call may have ended: press the missing keys again only if "
        "the line is still there; otherwise tell the user."
    )


@dataclass(slots=True)
class _Line:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


# The I/Os being pressed on now, by id, so the calls on one line take turns however many
# tools (or jobs in this process) there are. An entry lives only while a call holds its
# I/O, so the id cannot be reused under it, and nothing outlives the calls.
_lines: dict[int, _Line] = {}


@asynccontextmanager
async def _taking_turns(output: DTMFOutput) -> AsyncIterator[None]:
    key = id(output)
    line = _lines.setdefault(key, _Line())
    line.users += 1
    try:
        # asyncio.Lock wakes its waiters in order: concurrent calls press in call order.
        async with line.lock:
            yield
    finally:
        line.users -= 1
        if not line.users:
            del _lines[key]


send_dtmf: FunctionTool = send_dtmf_tool()
"""Press telephone keys on the job's phone line, 0.3 s apart (see the module)."""
