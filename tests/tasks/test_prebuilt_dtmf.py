"""GetDtmfTask: digits keyed in or said, their count, and optional confirmation."""

import pytest
from prebuilt_support import call_tool, confirmed

from flowkit.tasks import GetDtmfResult, GetDtmfTask

FULL_WIDTH_1234 = "\uff11\uff12\uff13\uff14"


@pytest.mark.parametrize("digits", ["1 2 3 4", "1234", "12-34", " 1, 2, 3, 4 "])
async def test_the_digits_are_kept_without_what_separates_them(digits: str) -> None:
    task = GetDtmfTask(num_digits=4)
    result = await call_tool(task, "update_digits", digits=digits)
    assert not result.is_error, result.output
    # No confirmation by default: the first entry of the right length ends the task.
    assert task.done() and await task.result() == GetDtmfResult("1234")


async def test_a_wrong_count_is_refused_saying_how_many_are_needed() -> None:
    task = GetDtmfTask(num_digits=4)
    result = await call_tool(task, "update_digits", digits="1 2 3")
    assert result.is_error
    assert result.output.startswith(
        "The user entered 3 digits (1 2 3) but the entry needs exactly 4 digits."
    )
    assert not task.done()


async def test_a_range_takes_any_count_within_it() -> None:
    too_long = await call_tool(GetDtmfTask(min_digits=4, max_digits=6), "update_digits",
                               digits="1234567")
    assert too_long.is_error and "needs from 4 to 6 digits" in too_long.output
    task = GetDtmfTask(min_digits=4, max_digits=6)
    await call_tool(task, "update_digits", digits="12345")
    assert await task.result() == GetDtmfResult("12345")


@pytest.mark.parametrize(("digits", "named"), [
    ("12a4", "(a)"), ("<dtmf>1 2 3 4</dtmf>", "(/ < > d f m t)"), ("12*4", "(*)"),
    # Full-width digits: str.isdigit() alone would take them.
    (FULL_WIDTH_1234, f"({' '.join(FULL_WIDTH_1234)})"),
])
async def test_characters_that_are_not_digits_are_refused_and_named(
    digits: str, named: str
) -> None:
    task = GetDtmfTask(num_digits=4)
    result = await call_tool(task, "update_digits", digits=digits)
    assert result.is_error and f"has characters that are not digits {named}" in result.output
    assert not task.done()


async def test_an_empty_entry_is_refused() -> None:
    result = await call_tool(GetDtmfTask(num_digits=4), "update_digits", digits=" - ")
    assert result.is_error and "has no digits" in result.output


async def test_with_confirmation_the_digits_are_read_back_one_by_one_first() -> None:
    task = GetDtmfTask(num_digits=4, require_confirmation=True)
    recorded = await call_tool(task, "update_digits", digits="4321")
    assert "4 3 2 1 (one digit at a time)" in recorded.output and not task.done()
    assert await confirmed(task, "confirm_digits") == GetDtmfResult("4321")


@pytest.mark.parametrize(("options", "length"), [
    ({"num_digits": 1}, "exactly 1 digit on"),
    ({"num_digits": 6}, "exactly 6 digits"),
    ({"min_digits": 4, "max_digits": 8}, "from 4 to 8 digits"),
    ({"min_digits": 4}, "at least 4 digits"),
    ({"max_digits": 8}, "up to 8 digits"),
])
def test_the_instructions_ask_for_the_length_and_explain_keypad_turns(
    options: dict[str, int], length: str
) -> None:
    instructions = GetDtmfTask(**options).instructions
    assert f"Start by asking the user to enter {length}" in instructions
    assert "<dtmf>1 2 3 4</dtmf>" in instructions


@pytest.mark.parametrize(("options", "message"), [
    ({}, "needs the length of the entry"),
    ({"num_digits": 4, "max_digits": 6}, "got num_digits and a range"),
    ({"num_digits": 0}, "cannot take from 0 to 0 digits"),
    ({"min_digits": 6, "max_digits": 4}, "max_digits must not be below min_digits"),
    ({"min_digits": 0}, "an entry has at least one digit"),
])
def test_an_impossible_length_is_refused(options: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GetDtmfTask(**options)
