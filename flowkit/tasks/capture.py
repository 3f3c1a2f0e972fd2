"""What the prebuilt tasks share: record a value, read it back, confirm it or hear it declined.

Every prebuilt task collects one value (an email address, a phone number, ...) with three
tools, named after the value's ``subject`` (``"email address"`` gives ``email_address``):

- ``update_<subject>``: written by each task, with the arguments its value needs. The LLM
  calls it with every new reading of the value; it checks the reading (a
  :class:`~flowkit.tools.ToolError` tells the LLM what was wrong and what to ask), keeps it,
  and returns the words to read it back with. Without confirmation it ends the task at once.
- ``confirm_<subject>``: ends the task with the value kept last. It refuses while nothing is
  kept, and in the turn the value was kept in: the user has not answered the read-back yet.
  LiveKit Agents offers its confirm tool only once a value is kept; flowkit's tasks keep
  their tools for the whole task, so the tool checks instead.
- ``decline_<subject>_capture``: ends the task with a :class:`~flowkit.tools.ToolError`
  saying that the user declined, and why; ``run_task`` raises it in the tool that ran the
  task.

This module is internal: the tasks are the public API (:mod:`flowkit.tasks`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import ClassVar, TypedDict, TypeVar

from flowkit.tools.context import RunContext
from flowkit.tools.errors import ToolError
from flowkit.tools.function_tool import FunctionTool, function_tool, tools_of
from flowkit.tools.task import AgentTask

__all__ = ["CaptureOptions", "CaptureTask"]

ResultT = TypeVar("ResultT")


class CaptureOptions(TypedDict, total=False):
    """The options every prebuilt task takes (see :class:`CaptureTask`), for ``**options``."""

    extra_instructions: str
    require_confirmation: bool
    tools: Sequence[FunctionTool]
    own_history: bool


class CaptureTask(AgentTask[ResultT]):
    """A task that collects one value from the user, reads it back and has it confirmed.

    Subclasses set :attr:`subject`, write :meth:`_describe` (how to ask for the value and how
    users say it) and an ``update_<subject>`` method tool that checks the LLM's reading and
    hands the result to :meth:`_record`.

    Args:
        extra_instructions: Added at the end of the task's instructions (what the value is
            for, say, or a house style).
        require_confirmation: Read the value back and wait for the user's yes before the
            task ends; ``False`` ends it with the first value the update tool accepts.
        tools: Function tools offered besides the task's own.
        own_history: Show the LLM only the task's part of the conversation (see
            :class:`~flowkit.tools.AgentTask`); the user's earlier words are then not seen.

    Raises:
        TypeError: The subclass has no ``update_<subject>`` method tool.

    Attributes:
        subject: The value, in words (``"email address"``); it names the tools.
        require_confirmation: Whether the user must confirm the value.
    """

    subject: ClassVar[str] = ""

    def __init__(
        self,
        *,
        extra_instructions: str = "",
        require_confirmation: bool = True,
        tools: Sequence[FunctionTool] = (),
        own_history: bool = False,
    ) -> None:
        self.require_confirmation = require_confirmation
        self._recorded: ResultT | None = None
        self._recorded_in_turn: int | None = None
        update, confirm, _ = _tool_names(self.subject)
        if update not in (tool.name for tool in tools_of(self)):
            raise TypeError(
                f"{type(self).__name__} has no method tool {update!r}: a CaptureTask about "
                f"{self.subject!r} records its value with @function_tool def {update}(...)"
            )
        closing = _closing_tools(self.subject)
        # Bound as reading a method tool from the task would bind it.
        own = [tool.__get__(self, type(self)) for tool in closing]
        if not require_confirmation:
            own = [tool for tool in own if tool.name != confirm]
        self.own_history = own_history  # read by _instructions
        super().__init__(
            self._instructions(extra_instructions), tools=[*own, *tools], own_history=own_history
        )

    def _describe(self) -> str:
        """The task's own part of the instructions: how to ask, hear and read back the value."""
        raise NotImplementedError(f"{type(self).__name__} must define _describe()")

    def _instructions(self, extra: str) -> str:
        noun = self.subject
        update, confirm, decline = _tool_names(noun)
        lines = [
            f"Your one job now is to collect the {noun} from the user. This is one step of a "
            "longer conversation: keep to it, and keep each reply short.",
            self._describe(),
            ""
            if self.own_history
            else f"If the user gave the {noun} earlier in the conversation, record it rather "
            "than asking again.",
            f"Whenever you have a new reading of the {noun} (the first answer, a correction, a "
            f"part spelled out), call {update} with that reading at once, before you reply. Use "
            f"only what the user said: never make up or complete the {noun} yourself.",
        ]
        if self.require_confirmation:
            lines.append(
                f"{update} tells you how to read the {noun} back: do so, and ask whether it is "
                f"right. Call {confirm} only after the user has explicitly said it is right; if "
                f"they correct it, call {update} again with the correction."
            )
        else:
            lines.append(
                f"This step ends as soon as {update} accepts the {noun}; do not ask the user "
                "for a confirmation."
            )
        lines += [
            "When a tool returns an error, tell the user in a few words what was wrong and ask "
            "again.",
            f"If the user will not or cannot give the {noun}, call {decline} with their reason.",
            "Speak in plain sentences: no markdown, lists or emoji.",
        ]
        if extra.strip():
            lines.append(extra.strip())
        return "\n".join(line for line in lines if line)

    def _record(self, ctx: RunContext, value: ResultT, read_back: str) -> str:
        """Keep ``value`` as the user's answer (or end the task with it, without confirmation).

        Args:
            ctx: The context of the update tool's call: its turn is when the value was heard.
            value: The task's result, should the user confirm it.
            read_back: The value as the LLM should say it back (with how to say it).

        Returns:
            The update tool's result, for the LLM.

        Raises:
            ToolError: The task ended already.
        """
        if self.done():
            raise ToolError(f"The task has ended already; this did not change the {self.subject}.")
        self._recorded, self._recorded_in_turn = value, ctx.turn_id
        if not self.require_confirmation:
            self.complete(value)
            return f"Recorded the {self.subject}: {read_back}."
        _, confirm, _ = _tool_names(self.subject)
        return (
            f"Recorded the {self.subject}: {read_back}. Read it back to the user and ask "
            f"whether it is right; call {confirm} only after they say it is."
        )

    async def _confirm(self, ctx: RunContext) -> None:
        # The body of confirm_<subject> (built in _closing_tools, named after the subject).
        update, confirm, _ = _tool_names(self.subject)
        if self._recorded is None:
            raise ToolError(
                f"Nothing has been recorded as the {self.subject} yet, so there is nothing to "
                f"confirm. Ask the user for the {self.subject} and call {update} with it first."
            )
        if ctx.turn_id == self._recorded_in_turn:
            raise ToolError(
                f"The user has not answered since the {self.subject} was recorded. Read it "
                f"back, ask whether it is right, and call {confirm} only after they say it is."
            )
        if not self.done():
            self.complete(self._recorded)

    async def _decline(self, reason: str) -> None:
        """The body of decline_<subject>_capture.

        Args:
            reason: Why the user would not or could not give it, in a few words.
        """
        if not self.done():
            why = reason.strip() or "they gave no reason"
            self.complete(ToolError(f"The user declined to give the {self.subject}: {why}"))


def _tool_names(subject: str) -> tuple[str, str, str]:
    """The names of a task's update, confirm and decline tools."""
    slug = "_".join(subject.split())
    return f"update_{slug}", f"confirm_{slug}", f"decline_{slug}_capture"


@functools.cache
def _closing_tools(subject: str) -> tuple[FunctionTool, FunctionTool]:
    """The confirm and decline tools of the tasks about ``subject``, not bound to a task.

    Built once per subject rather than written as methods, so that their names and
    descriptions name the value while their bodies are written once.
    """
    update, confirm, decline = _tool_names(subject)
    confirm_tool = function_tool(
        name=confirm,
        description=(
            f"Call this once the user has explicitly confirmed the {subject} you read back. "
            f"It ends this step with the {subject} that {update} recorded last."
        ),
    )(CaptureTask._confirm)
    decline_tool = function_tool(
        name=decline,
        description=(
            f"Call this when the user will not or cannot give the {subject}. It ends this "
            f"step without a {subject}."
        ),
    )(CaptureTask._decline)
    return confirm_tool, decline_tool
