"""Tools that go on in the background (``await ctx.update(...)``), for the ToolRouter.

A tool whose work takes more than a few seconds (a booking, a search, a document) should
not hold the conversation: the user hears silence and cannot talk about anything else. With
``await ctx.update("Searching flights to Tokyo")`` the tool answers its call at once, with
that message and a note that it goes on, so the model can say so and the conversation
continues; the tool keeps running without its timeout. What it reports next (each later
``update``) and its outcome (what it returns or raises) cannot answer that call again: the
router makes a call of its own, the same tool with the same arguments, and sends its result
as ``ToolResult(call=..., deferred=True)``. The LLM node holds such results until the agent
is idle and replies to them then (:mod:`flowkit.nodes.llm`).

A second call of a tool while an earlier call of it runs in the background follows the
tool's ``on_duplicate`` (:func:`~flowkit.tools.function_tool.function_tool`): ``"allow"``
runs it too, ``"reject"`` answers it at once with an error saying the first is under way,
``"replace"`` cancels the earlier ones (their results never come) and runs it. The model
stops a call of a ``cancellable`` tool with :data:`~flowkit.tools.cancel_background.
cancel_background`, through the session the router gives that tool.

:class:`BackgroundCalls` keeps the calls in the background and writes what the model reads
of them; the router owns it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from typing import Any

from flowkit.messages import ToolCall, ToolResult, new_turn_id
from flowkit.tools.errors import ToolError
from flowkit.tools.function_tool import DuplicatePolicy
from flowkit.tools.invoke import ToolOutcome
from flowkit.tools.toolbox import Logger

__all__ = ["BackgroundCalls"]


@dataclasses.dataclass(eq=False)
class _Running:
    """One call gone to the background: the call that started it and the task running it."""

    call: ToolCall
    task: asyncio.Task[Any]


class BackgroundCalls:
    """The tool calls running in the background, and the results they send (see the module)."""

    def __init__(self) -> None:
        self._running: list[_Running] = []

    def started(self, call: ToolCall, task: asyncio.Task[Any], message: str) -> ToolOutcome:
        """The call's tool went to the background: the outcome that answers its call now.

        Args:
            call: The call the tool runs for.
            task: The task running the tool (cancelled by :meth:`cancel_all` and ``replace``).
            message: The tool's first update.
        """
        self._running.append(_Running(call, task))
        output = (
            f"{message}\n(The tool {call.name!r} goes on in the background and the "
            "conversation can continue meanwhile. Its updates and its result will come as "
            f"the results of later {call.name!r} calls with the same arguments; do not call it "
            "again to wait for them.)"
        )
        return ToolOutcome(result=ToolResult(
            turn_id=call.turn_id, call_id=call.call_id, name=call.name, output=output,
        ))

    def update(self, call: ToolCall, message: str) -> ToolOutcome:
        """What a later update of the call's tool sends: a result of a call made again.

        Args:
            call: The call the tool runs for (the one that went to the background).
            message: What the tool reports.
        """
        return _deferred(call, ToolOutcome(result=ToolResult(
            turn_id=0, call_id="", name=call.name,
            output=f"Update from {call.name!r}, which is still running in the background: "
            f"{message}",
        )))

    def finished(self, call: ToolCall, outcome: ToolOutcome) -> ToolOutcome:
        """The call's tool ended with ``outcome``: what it sends, a result of a call made again.

        Args:
            call: The call the tool ran for.
            outcome: What :func:`~flowkit.tools.invoke_tool` made of the tool's end.
        """
        self._running = [running for running in self._running if running.call is not call]
        result = outcome.result
        how = "failed" if result.is_error else "has finished"
        output = f"{call.name!r}, which ran in the background, {how}: {result.output}"
        return _deferred(call, dataclasses.replace(
            outcome, result=dataclasses.replace(result, output=output)
        ))

    def forget(self, call: ToolCall) -> None:
        """The call's tool was cancelled: it sends nothing more."""
        self._running = [running for running in self._running if running.call is not call]

    def admit(self, call: ToolCall, policy: DuplicatePolicy, logger: Logger) -> ToolOutcome | None:
        """Apply the tool's duplicate policy to a new call; the answer that refuses it, if any.

        Args:
            call: The new call.
            policy: The tool's ``on_duplicate``.
            logger: Where a replacement is noted.

        Returns:
            The error outcome of a refused call (``"reject"``), or ``None`` to run it (after
            cancelling the earlier calls, for ``"replace"``).
        """
        earlier = [running for running in self._running if running.call.name == call.name]
        if not earlier or policy == "allow":
            return None
        if policy == "reject":
            first = earlier[0].call
            return ToolOutcome(result=ToolResult(
                turn_id=call.turn_id, call_id=call.call_id, name=call.name, is_error=True,
                output=f"{call.name!r} is already running in the background (called with "
                f"{first.arguments or '{}'}) and takes one call at a time; its result will "
                "come when it is done. Do not call it again: tell the user it is under way.",
            ))
        for running in earlier:
            logger.info(
                "tool %r (call %s) in the background was replaced by call %s and cancelled",
                call.name, running.call.call_id, call.call_id,
            )
            running.task.cancel()
            self.forget(running.call)
        return None

    def cancel(self, name: str, cancellable: bool, logger: Logger) -> list[ToolCall]:
        """Stop the calls of tool ``name`` in the background, for the model; the calls stopped.

        Args:
            name: The tool's name, as the model gave it.
            cancellable: Whether that tool was made ``cancellable``.
            logger: Where each stop is noted.

        Raises:
            ToolError: Nothing could be stopped: no call of ``name`` is in the background, or
                the tool is not cancellable. The message says what runs there now.
        """
        mine = [running for running in self._running if running.call.name == name]
        if not mine:
            now = ", ".join(sorted({running.call.name for running in self._running}))
            raise ToolError(
                f"no call of {name!r} is running in the background"
                + (f"; these are: {now}" if now else "; none is")
                + ". Tell the user what is still under way, if anything."
            )
        if not cancellable:
            raise ToolError(
                f"{name!r} cannot be stopped once it has started; its result will come when "
                "it is done. Tell the user so."
            )
        for running in mine:
            logger.info(
                "tool %r (call %s) in the background was stopped by the model",
                name, running.call.call_id,
            )
            running.task.cancel()
            self.forget(running.call)
        return [running.call for running in mine]

    def cancel_all(self, logger: Logger) -> None:
        """The conversation has ended: cancel every tool still in the background."""
        for running in self._running:
            logger.info(
                "cancelled tool %r (call %s), still in the background when the calls ended",
                running.call.name, running.call.call_id,
            )
            running.task.cancel()
        self._running = []


def _deferred(call: ToolCall, outcome: ToolOutcome) -> ToolOutcome:
    """``outcome`` as the result of ``call``'s tool called again: a call of the router's own.

    The model reads it as the outcome of the same tool, called with the same arguments; its
    turn is drawn now, newer than any reply started before (the LLM node replies to it on a
    turn of its own when it delivers it).
    """
    again = ToolCall(
        turn_id=new_turn_id(), call_id=f"fk_{secrets.token_hex(8)}", name=call.name,
        arguments=call.arguments,
    )
    return dataclasses.replace(outcome, result=dataclasses.replace(
        outcome.result, turn_id=again.turn_id, call_id=again.call_id, name=call.name,
        call=again, deferred=True,
    ))
