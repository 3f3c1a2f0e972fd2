"""Collect digits, keyed in or spoken: :class:`GetDtmfTask`, as LiveKit Agents' ``GetDtmfTask``.

For an account number, a PIN, a menu choice. The user presses the keys on their phone or
says the digits. Key presses reach the LLM as user turns from the
:class:`~flowkit.nodes.dtmf.DTMFInput` node (``<dtmf>1 2 3 4</dtmf>`` by default; wire one
into the graph, see docs/voice-pipeline.md "DTMF"), spoken digits as words; the LLM passes
the digits to the task's tool, which checks that there are as many as asked for.

Unlike the other prebuilt tasks, and as in LiveKit Agents, the digits are not read back
unless asked (``require_confirmation=True``): keyed digits are not misheard.
"""

from __future__ import annotations

from dataclasses import dataclass

from typing_extensions import Unpack

from flowkit.tasks.capture import CaptureOptions, CaptureTask
from flowkit.tools.context import RunContext
from flowkit.tools.errors import ToolError
from flowkit.tools.function_tool import function_tool

__all__ = ["GetDtmfResult", "GetDtmfTask"]

# What may separate the digits the LLM passes ("1 2 3 4", "12-34"); deleted before the check.
_SEPARATORS = str.maketrans("", "", " \t\n-.,")


@dataclass(frozen=True, slots=True)
class GetDtmfResult:
    """What :class:`GetDtmfTask` collected.

    Attributes:
        user_input: The digits, with nothing between them, e.g. ``"1234"``.
    """

    user_input: str


class GetDtmfTask(CaptureTask[GetDtmfResult]):
    """Ask the user to key in (or say) a string of digits.

    Give the length: ``num_digits`` for an exact count, or ``min_digits`` and/or
    ``max_digits`` for a range.

    Args:
        num_digits: How many digits the entry has.
        min_digits: The fewest digits an entry may have.
        max_digits: The most digits an entry may have.
        **options: The options of every prebuilt task (:class:`CaptureOptions`):
            ``extra_instructions`` (say what the digits are: "the 8-digit account number on
            the customer's card"), ``require_confirmation`` (here ``False`` by default: the
            first entry of the right length ends the task), ``tools``, ``own_history``.

    Raises:
        ValueError: No length, both an exact length and a range, or an impossible one.

    Attributes:
        min_digits: The fewest digits an entry may have.
        max_digits: The most digits an entry may have, or ``None`` for no limit.
    """

    subject = "digits"

    def __init__(
        self,
        *,
        num_digits: int | None = None,
        min_digits: int | None = None,
        max_digits: int | None = None,
        **options: Unpack[CaptureOptions],
    ) -> None:
        if num_digits is not None and (min_digits is not None or max_digits is not None):
            raise ValueError(
                "GetDtmfTask got num_digits and a range; give num_digits for an exact length, "
                "or min_digits/max_digits for a range"
            )
        if num_digits is None and min_digits is None and max_digits is None:
            raise ValueError(
                "GetDtmfTask needs the length of the entry: num_digits=4 for exactly four "
                "digits, or min_digits=/max_digits= for a range"
            )
        low = num_digits if num_digits is not None else 1 if min_digits is None else min_digits
        high = num_digits if num_digits is not None else max_digits
        if low < 1 or (high is not None and high < low):
            raise ValueError(
                f"GetDtmfTask cannot take from {low} to {high} digits; an entry has at least "
                "one digit, and max_digits must not be below min_digits"
            )
        self.min_digits, self.max_digits = low, high
        # Keyed digits are not misheard: no read-back unless asked for (as LiveKit's task).
        options.setdefault("require_confirmation", False)
        super().__init__(**options)

    def _describe(self) -> str:
        return (
            f"Start by asking the user to enter {self._length()} on their phone's keypad, or "
            "to say them. Keys the user presses reach you as a user turn such as "
            "<dtmf>1 2 3 4</dtmf>; spoken digits come as words ('oh' and 'zero' are 0). Pass "
            "only the digits to the tool, e.g. 1234. Read digits back one at a time, as in "
            "'one, two, three, four', never as a number."
        )

    def _length(self) -> str:
        low, high = self.min_digits, self.max_digits
        if low == high:
            return f"exactly {low} digit{'s' if low > 1 else ''}"
        if high is None:
            return f"at least {low} digits"
        return f"from {low} to {high} digits" if low > 1 else f"up to {high} digits"

    @function_tool
    async def update_digits(self, ctx: RunContext, digits: str) -> str:
        """Record the digits the user entered or said; call again for each new entry.

        Args:
            ctx: The call's context (flowkit fills it in; the LLM does not see it).
            digits: Only the digits 0-9, in order, e.g. "1234".
        """
        entered = digits.translate(_SEPARATORS)
        if not entered:
            raise ToolError(
                f"{digits!r} has no digits. Ask the user to enter {self._length()} again."
            )
        # str.isdigit() alone would take other scripts' digits and superscripts.
        if not (entered.isascii() and entered.isdigit()):
            others = sorted({c for c in entered if not (c.isascii() and c.isdigit())})
            raise ToolError(
                f"{digits!r} has characters that are not digits ({' '.join(others)}). Pass "
                "only the digits 0-9 the user entered or said, e.g. '1234'; if the user "
                "pressed other keys, ask them to enter the digits again."
            )
        count = len(entered)
        if count < self.min_digits or (self.max_digits is not None and count > self.max_digits):
            raise ToolError(
                f"The user entered {count} digit{'s' if count > 1 else ''} ({' '.join(entered)}) "
                f"but the entry needs {self._length()}. Tell them, and ask them to enter the "
                "digits again."
            )
        return self._record(
            ctx,
            GetDtmfResult(entered),
            f"{' '.join(entered)} (one digit at a time)",
        )
