"""Collect a date of birth: :class:`GetDateOfBirthTask`, as LiveKit Agents' ``GetDOBTask``.

The LLM turns what the user said ("the third of March, eighty-five") into an ISO date
(``1985-03-03``); the task refuses dates that do not exist, dates in the future and dates
more than :data:`MAX_AGE_YEARS` years ago, each with what to ask the user.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from flowkit.tasks.capture import CaptureTask
from flowkit.tools.context import RunContext
from flowkit.tools.errors import ToolError
from flowkit.tools.function_tool import function_tool

__all__ = ["MAX_AGE_YEARS", "GetDateOfBirthResult", "GetDateOfBirthTask"]

MAX_AGE_YEARS = 120
"""The oldest age a date of birth may give: an earlier year is taken as misheard."""


@dataclass(frozen=True, slots=True)
class GetDateOfBirthResult:
    """What :class:`GetDateOfBirthTask` collected.

    Attributes:
        date_of_birth: The date.
    """

    date_of_birth: datetime.date


class GetDateOfBirthTask(CaptureTask[GetDateOfBirthResult]):
    """Ask the user for their date of birth, read it back and have it confirmed.

    Args:
        extra_instructions: Added at the end of the task's instructions.
        require_confirmation: Read the date back and wait for the user's yes; ``False``
            takes the first valid date.
        tools: Function tools offered besides the task's own.
        own_history: Show the LLM only the task's part of the conversation.
    """

    subject = "date of birth"

    def _describe(self) -> str:
        return (
            "Start by asking the user for their date of birth. Users say dates in many ways "
            "('March 3rd 1985', 'the third of March eighty-five', 'three four eighty-five'); "
            "pass the date to the tool as YYYY-MM-DD. A two-digit year is the latest year "
            "that makes sense for a birth date. If the day and the month could be either way "
            "round, ask which is which. Read the date back with the month as a word, as in "
            "'March third, nineteen eighty-five'. If it stays unclear, ask for the year, "
            "then the month, then the day."
        )

    @function_tool
    async def update_date_of_birth(self, ctx: RunContext, date_of_birth: str) -> str:
        """Record the date of birth as you now understand it; call again for each correction.

        Args:
            ctx: The call's context (flowkit fills it in; the LLM does not see it).
            date_of_birth: The date as YYYY-MM-DD, e.g. "1985-03-03".
        """
        try:
            born = datetime.date.fromisoformat(date_of_birth.strip())
        except ValueError as error:
            raise ToolError(
                f"{date_of_birth!r} is not a date in the form YYYY-MM-DD ({error}). Pass the "
                "date as YYYY-MM-DD; if the user gave a day the month does not have, ask "
                "them for the date again."
            ) from None
        today = datetime.date.today()
        if born > today:
            raise ToolError(
                f"{born.isoformat()} is in the future, so it cannot be a date of birth. Ask "
                "the user for the date again; the year was probably misheard."
            )
        age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
        if age > MAX_AGE_YEARS:
            raise ToolError(
                f"{born.isoformat()} would make the user over {MAX_AGE_YEARS} years old. Ask "
                "the user for the year again; it was probably misheard."
            )
        return self._record(
            ctx,
            GetDateOfBirthResult(born),
            f"{born:%B} {born.day}, {born.year} (the day as an ordinal, the year as spoken)",
        )
