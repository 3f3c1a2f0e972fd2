"""The shape every prebuilt task shares (flowkit.tasks.capture), on a task of the test's own."""

from dataclasses import dataclass

import pytest
from prebuilt_support import call_tool, confirmed

from flowkit.tasks.capture import CaptureTask
from flowkit.tools import RunContext, ToolError, function_tool


@dataclass(frozen=True)
class Colour:
    name: str


class GetColourTask(CaptureTask[Colour]):
    subject = "favourite colour"

    def _describe(self) -> str:
        return "Start by asking the user for their favourite colour."

    @function_tool
    async def update_favourite_colour(self, ctx: RunContext, colour: str) -> str:
        """Record the colour."""
        if colour == "plaid":
            raise ToolError("plaid is a pattern; ask for a colour")
        return self._record(ctx, Colour(colour), f"{colour} (as it is)")


@function_tool
async def lookup_palette() -> str:
    """Another tool the task offers."""
    return "red, green, blue"


def test_the_tools_are_named_after_the_subject_and_the_given_tools_come_last() -> None:
    task = GetColourTask(tools=[lookup_palette])
    assert [t.name for t in task.tools] == [
        "update_favourite_colour", "confirm_favourite_colour",
        "decline_favourite_colour_capture", "lookup_palette",
    ]
    confirm = {t.name: t for t in task.tools}["confirm_favourite_colour"]
    assert "favourite colour you read back" in confirm.description
    assert confirm.parameters["properties"] == {}  # the context is not shown to the LLM


def test_without_confirmation_there_is_no_confirm_tool() -> None:
    task = GetColourTask(require_confirmation=False)
    assert [t.name for t in task.tools] == [
        "update_favourite_colour", "decline_favourite_colour_capture",
    ]


def test_the_instructions_ask_first_name_the_tools_and_end_with_the_extra_ones() -> None:
    instructions = GetColourTask(extra_instructions="  It is for a survey.  ").instructions
    assert "Start by asking the user for their favourite colour." in instructions
    assert "call update_favourite_colour with that reading at once" in instructions
    assert "Call confirm_favourite_colour only after the user has explicitly said" in instructions
    assert "call decline_favourite_colour_capture with their reason" in instructions
    assert instructions.endswith("\nIt is for a survey.")
    quick = GetColourTask(require_confirmation=False).instructions
    assert "confirm_favourite_colour" not in quick
    assert "do not ask the user for a confirmation" in quick


async def test_confirm_before_anything_was_recorded_is_refused_and_the_task_goes_on() -> None:
    task = GetColourTask()
    result = await call_tool(task, "confirm_favourite_colour")
    assert result.is_error
    assert "Nothing has been recorded as the favourite colour yet" in result.output
    assert "call update_favourite_colour with it first" in result.output
    assert not task.done()


async def test_a_refused_reading_is_not_recorded() -> None:
    task = GetColourTask()
    refused = await call_tool(task, "update_favourite_colour", colour="plaid")
    assert refused.is_error and refused.output == "plaid is a pattern; ask for a colour"
    assert (await call_tool(task, "confirm_favourite_colour", turn=2)).is_error
    assert not task.done()


async def test_an_update_reads_the_value_back_and_waits_for_the_users_yes() -> None:
    task = GetColourTask()
    recorded = await call_tool(task, "update_favourite_colour", turn=1, colour="teal")
    assert not recorded.is_error
    assert recorded.output.startswith("Recorded the favourite colour: teal (as it is).")
    assert "call confirm_favourite_colour only after they say it is" in recorded.output
    assert not task.done()


async def test_confirm_in_the_turn_of_the_update_is_refused_the_user_has_not_answered() -> None:
    task = GetColourTask()
    await call_tool(task, "update_favourite_colour", turn=3, colour="teal")
    result = await call_tool(task, "confirm_favourite_colour", turn=3)
    assert result.is_error
    assert "The user has not answered since the favourite colour was recorded" in result.output
    assert not task.done()


async def test_confirm_in_a_later_turn_completes_with_the_last_value_recorded() -> None:
    task = GetColourTask()
    await call_tool(task, "update_favourite_colour", turn=1, colour="teal")
    await call_tool(task, "update_favourite_colour", turn=2, colour="olive")  # a correction
    assert await confirmed(task, "confirm_favourite_colour", turn=3) == Colour("olive")


async def test_without_confirmation_the_first_accepted_value_completes_the_task() -> None:
    task = GetColourTask(require_confirmation=False)
    assert (await call_tool(task, "update_favourite_colour", colour="plaid")).is_error
    assert not task.done()
    await call_tool(task, "update_favourite_colour", colour="teal")
    assert task.done() and await task.result() == Colour("teal")


async def test_decline_completes_the_task_with_a_tool_error_giving_the_reason() -> None:
    task = GetColourTask()
    result = await call_tool(task, "decline_favourite_colour_capture",
                             reason="they would rather not say")
    assert not result.is_error and task.done()
    with pytest.raises(ToolError) as raised:
        await task.result()
    assert raised.value.message == (
        "The user declined to give the favourite colour: they would rather not say"
    )


async def test_decline_without_a_reason_still_says_the_user_declined() -> None:
    task = GetColourTask()
    await call_tool(task, "decline_favourite_colour_capture", reason="  ")
    with pytest.raises(ToolError, match="declined to give the favourite colour: they gave no"):
        await task.result()


async def test_calls_after_the_task_ended_change_nothing() -> None:
    task = GetColourTask()
    await call_tool(task, "update_favourite_colour", turn=1, colour="teal")
    await confirmed(task, "confirm_favourite_colour", turn=2)
    late = await call_tool(task, "update_favourite_colour", turn=2, colour="olive")
    assert late.is_error and "has ended already" in late.output
    assert not (await call_tool(task, "decline_favourite_colour_capture", reason="x")).is_error
    assert await task.result() == Colour("teal")


def test_a_capture_task_without_its_update_tool_is_refused_naming_the_tool() -> None:
    class Forgetful(CaptureTask[str]):
        subject = "shoe size"

        def _describe(self) -> str:
            return "Ask for the shoe size."

    with pytest.raises(TypeError, match="Forgetful has no method tool 'update_shoe_size'"):
        Forgetful()


def test_own_history_reaches_the_task_and_drops_the_look_back_in_the_instructions() -> None:
    from flowkit.tasks import GetDtmfTask, GetPhoneNumberTask

    shared, private = GetColourTask(), GetColourTask(own_history=True)
    assert not shared.own_history and private.own_history
    assert "earlier in the conversation" in shared.instructions
    assert "earlier in the conversation" not in private.instructions
    # The tasks with options of their own pass it on too, and keep their defaults.
    assert GetPhoneNumberTask(own_history=True, default_region="GB").own_history
    digits = GetDtmfTask(num_digits=4, own_history=True)
    assert digits.own_history and not digits.require_confirmation
    assert GetDtmfTask(num_digits=4, require_confirmation=True).require_confirmation
