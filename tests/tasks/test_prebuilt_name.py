"""GetNameTask: the parts asked for, their checks, and spelling back."""

import pytest
from prebuilt_support import call_tool, confirmed

from flowkit.tasks import GetNameResult, GetNameTask


async def test_by_default_only_the_first_name_is_asked_for_and_kept() -> None:
    task = GetNameTask()
    assert "asking the user for their first name." in task.instructions
    recorded = await call_tool(task, "update_name", first_name=" Ana ", last_name="López")
    assert not recorded.is_error and "Recorded the name: Ana." in recorded.output
    # A part that was not asked for is None, even when the LLM passed one.
    assert await confirmed(task, "confirm_name") == GetNameResult(first_name="Ana")


async def test_the_parts_asked_for_are_required() -> None:
    task = GetNameTask(last_name=True)
    assert "their first and last name" in task.instructions
    result = await call_tool(task, "update_name", first_name="Ana")
    assert result.is_error and result.output.startswith("The last name is missing.")
    both = await call_tool(task, "update_name")
    assert both.is_error and both.output.startswith("The first and last name are missing.")
    recorded = await call_tool(task, "update_name", first_name="Ana", last_name="López")
    assert "Ana López" in recorded.output
    assert await confirmed(task, "confirm_name") == GetNameResult("Ana", None, "López")


async def test_a_part_without_a_letter_is_refused_as_misheard() -> None:
    task = GetNameTask(first_name=False, last_name=True)
    result = await call_tool(task, "update_name", last_name="42")
    assert result.is_error and "The last name is without a letter" in result.output


async def test_verify_spelling_spells_every_part_back() -> None:
    task = GetNameTask(middle_name=True, last_name=True, verify_spelling=True)
    assert "their first, middle and last name" in task.instructions
    assert "spell each part back letter by letter" in task.instructions
    recorded = await call_tool(task, "update_name", first_name="Ana", middle_name="Sofía",
                               last_name="O'Neil")
    assert "letter by letter: A n a; S o f í a; O ' N e i l" in recorded.output


def test_asking_for_no_part_of_the_name_is_refused() -> None:
    with pytest.raises(ValueError, match="asks for no part of the name"):
        GetNameTask(first_name=False)
