"""Collect the user's name: :class:`GetNameTask`, as LiveKit Agents' ``GetNameTask``.

The task asks for the parts it was told to (the first name by default; the middle and the
last name on request) and refuses a reading that lacks one of them or has a part without
a single letter. Names are not checked further: any spelling is someone's name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from typing_extensions import Unpack

from flowkit.tasks.capture import CaptureOptions, CaptureTask
from flowkit.tools.context import RunContext
from flowkit.tools.errors import ToolError
from flowkit.tools.function_tool import function_tool

__all__ = ["GetNameResult", "GetNameTask"]


@dataclass(frozen=True, slots=True)
class GetNameResult:
    """What :class:`GetNameTask` collected; a part it was not asked for is ``None``.

    Attributes:
        first_name: The first (given) name.
        middle_name: The middle name.
        last_name: The last (family) name.
    """

    first_name: str | None = None
    middle_name: str | None = None
    last_name: str | None = None


class GetNameTask(CaptureTask[GetNameResult]):
    """Ask the user for their name, read it back and have it confirmed.

    Args:
        first_name: Ask for the first name.
        middle_name: Ask for the middle name.
        last_name: Ask for the last name.
        verify_spelling: Spell the name back letter by letter, for names that must be
            written right (a booking, an account).
        **options: The options of every prebuilt task (:class:`CaptureOptions`):
            ``extra_instructions``, ``require_confirmation`` (``False`` takes the first
            complete name), ``tools``, ``own_history``.

    Raises:
        ValueError: No part of the name is asked for.

    Attributes:
        parts: The parts asked for, in order: ``"first_name"``, ``"middle_name"``,
            ``"last_name"``.
        verify_spelling: Whether the name is spelled back.
    """

    subject = "name"

    def __init__(
        self,
        *,
        first_name: bool = True,
        middle_name: bool = False,
        last_name: bool = False,
        verify_spelling: bool = False,
        **options: Unpack[CaptureOptions],
    ) -> None:
        asked = {"first_name": first_name, "middle_name": middle_name, "last_name": last_name}
        self.parts = tuple(part for part, wanted in asked.items() if wanted)
        if not self.parts:
            raise ValueError(
                "GetNameTask asks for no part of the name; keep first_name=True or set "
                "middle_name=True or last_name=True"
            )
        self.verify_spelling = verify_spelling
        super().__init__(**options)

    def _describe(self) -> str:
        spelling = (
            " After recording the name, spell each part back letter by letter and ask "
            "whether the spelling is right."
            if self.verify_spelling
            else ""
        )
        return (
            f"Start by asking the user for their {_in_words(self.parts)}. Names come from every "
            "culture: keep accents, hyphens and apostrophes as the user gives them, write "
            "each part with a capital letter, and when the user spells a name letter by "
            "letter (or with a spelling alphabet, as in 'M as in Mike'), the spelling wins. "
            f"If the name stays unclear, ask for one part at a time.{spelling}"
        )

    @function_tool
    async def update_name(
        self, ctx: RunContext, first_name: str = "", middle_name: str = "", last_name: str = ""
    ) -> str:
        """Record the name as you now understand it; call again for each correction.

        Pass the parts you were asked to collect; leave the others empty.

        Args:
            ctx: The call's context (flowkit fills it in; the LLM does not see it).
            first_name: The first (given) name.
            middle_name: The middle name.
            last_name: The last (family) name.
        """
        given = {"first_name": first_name, "middle_name": middle_name, "last_name": last_name}
        values = {part: given[part].strip() for part in self.parts}
        missing = [part for part, value in values.items() if not value]
        if missing:
            raise ToolError(
                f"The {_in_words(missing)} {_is_are(missing)} missing. Ask the user for "
                f"{'it' if len(missing) == 1 else 'them'}, then call update_name with every part."
            )
        no_letters = [part for part, value in values.items() if not any(map(str.isalpha, value))]
        if no_letters:
            raise ToolError(
                f"The {_in_words(no_letters)} {_is_are(no_letters)} without a letter, so it "
                "was misheard. Ask the user to say it again, or to spell it."
            )
        full = " ".join(values.values())
        if self.verify_spelling:
            spelled = "; ".join(" ".join(value) for value in values.values())
            read_back = f"{full} (spell it back letter by letter: {spelled})"
        else:
            read_back = full
        return self._record(ctx, GetNameResult(**values), read_back)


def _in_words(parts: Sequence[str]) -> str:
    """``("first_name", "last_name")`` as ``"first and last name"``."""
    words = [part.removesuffix("_name") for part in parts]
    listed = words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"
    return f"{listed} name"


def _is_are(parts: Sequence[str]) -> str:
    return "is" if len(parts) == 1 else "are"
