"""Collect an email address: :class:`GetEmailTask`, as LiveKit Agents' ``GetEmailTask``.

The address is checked with ``email-validator``, for syntax only (no DNS look-up: a task
must not wait on the network while the user listens), and kept in its normalized form
(the domain lowercased; the part before the @ as given, since it may be case-sensitive).
"""

from __future__ import annotations

from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email

from flowkit.tasks.capture import CaptureTask
from flowkit.tools.context import RunContext
from flowkit.tools.errors import ToolError
from flowkit.tools.function_tool import function_tool

__all__ = ["GetEmailResult", "GetEmailTask"]


@dataclass(frozen=True, slots=True)
class GetEmailResult:
    """What :class:`GetEmailTask` collected.

    Attributes:
        email_address: The address, normalized by ``email-validator``.
    """

    email_address: str


class GetEmailTask(CaptureTask[GetEmailResult]):
    """Ask the user for their email address, read it back and have it confirmed.

    Run it from a tool with ``email = await ctx.run_task(GetEmailTask())``; then
    ``email.email_address`` is the address. A user who declines makes ``run_task`` raise a
    :class:`~flowkit.tools.ToolError` with their reason.

    Args:
        extra_instructions: Added at the end of the task's instructions.
        require_confirmation: Read the address back and wait for the user's yes; ``False``
            takes the first valid address.
        tools: Function tools offered besides the task's own.
        own_history: Show the LLM only the task's part of the conversation.
    """

    subject = "email address"

    def _describe(self) -> str:
        return (
            "Start by asking the user for their email address. People say addresses aloud: "
            "turn 'at' into @, 'dot' into a period, 'underscore', 'dash' and 'plus' into _, - "
            "and +, and letters spelled one by one into the word they spell; leave out filler "
            "words. When the user spells a word after saying it, the spelling wins. If the "
            "address stays unclear, ask for the part before the @ first, then the domain."
        )

    @function_tool
    async def update_email_address(self, ctx: RunContext, email_address: str) -> str:
        """Record the email address as you now understand it; call again for each correction.

        Args:
            ctx: The call's context (flowkit fills it in; the LLM does not see it).
            email_address: The whole address in written form, e.g. "ana.lopez@example.com".
        """
        try:
            valid = validate_email(email_address.strip(), check_deliverability=False)
        except EmailNotValidError as error:
            raise ToolError(
                f"{email_address!r} is not a valid email address: {error} Ask the user to say "
                "it again; if it stays unclear, ask for the part before the @ and then the "
                "domain."
            ) from None
        spelled = " ".join(valid.local_part)
        return self._record(
            ctx,
            GetEmailResult(valid.normalized),
            f"{valid.normalized} (spell the part before the @ letter by letter: {spelled}; say "
            "symbols as words, like 'dot' and 'underscore')",
        )
