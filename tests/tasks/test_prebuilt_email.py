"""GetEmailTask: email-validator's checks and normalized form."""

from prebuilt_support import call_tool, confirmed

from flowkit.tasks import GetEmailResult, GetEmailTask


def test_the_tools_and_instructions() -> None:
    task = GetEmailTask(extra_instructions="The receipt goes there.")
    assert [t.name for t in task.tools] == [
        "update_email_address", "confirm_email_address", "decline_email_address_capture",
    ]
    assert "asking the user for their email address" in task.instructions
    assert task.instructions.endswith("The receipt goes there.")


async def test_a_valid_address_is_kept_normalized_and_spelled_for_the_read_back() -> None:
    task = GetEmailTask()
    recorded = await call_tool(task, "update_email_address", email_address=" Ana@Example.COM ")
    assert not recorded.is_error
    # email-validator lowercases the domain, not the part before the @.
    assert "Ana@example.com" in recorded.output and "letter by letter: A n a" in recorded.output
    assert await confirmed(task, "confirm_email_address") == GetEmailResult("Ana@example.com")


async def test_an_address_without_a_proper_domain_is_refused_with_what_to_ask() -> None:
    task = GetEmailTask()
    result = await call_tool(task, "update_email_address", email_address="ana@example")
    assert result.is_error
    assert result.output.startswith("'ana@example' is not a valid email address: ")
    assert "It should have a period." in result.output  # email-validator's reason
    assert "Ask the user to say it again" in result.output
    assert not task.done()


async def test_spaces_inside_are_refused_not_guessed_away() -> None:
    result = await call_tool(GetEmailTask(), "update_email_address",
                             email_address="ana lopez@example.com")
    assert result.is_error and "SPACE" in result.output


async def test_without_confirmation_the_first_valid_address_completes_the_task() -> None:
    task = GetEmailTask(require_confirmation=False)
    await call_tool(task, "update_email_address", email_address="ana@example.com")
    assert task.done() and await task.result() == GetEmailResult("ana@example.com")
