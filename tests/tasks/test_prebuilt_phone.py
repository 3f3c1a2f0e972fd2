"""GetPhoneNumberTask: phonenumbers' parsing by region, validity, and E.164 results."""

import pytest
from prebuilt_support import call_tool, confirmed

from flowkit.tasks import GetPhoneNumberResult, GetPhoneNumberTask


async def test_a_national_number_is_read_in_the_default_region_and_kept_as_e164() -> None:
    task = GetPhoneNumberTask()  # US by default
    recorded = await call_tool(task, "update_phone_number", phone_number="(650) 253-0000")
    assert not recorded.is_error
    assert "(650) 253-0000 (digit by digit" in recorded.output  # read back as written locally
    assert await confirmed(task, "confirm_phone_number") == GetPhoneNumberResult("+16502530000")


async def test_a_number_with_a_country_code_is_read_back_with_it() -> None:
    task = GetPhoneNumberTask()
    recorded = await call_tool(task, "update_phone_number", phone_number="+44 20 7946 0958")
    assert "+44 20 7946 0958" in recorded.output
    assert await confirmed(task, "confirm_phone_number") == GetPhoneNumberResult("+442079460958")


async def test_the_default_region_decides_national_numbers() -> None:
    task = GetPhoneNumberTask(default_region="gb", require_confirmation=False)
    assert task.default_region == "GB"
    await call_tool(task, "update_phone_number", phone_number="020 7946 0958")
    assert await task.result() == GetPhoneNumberResult("+442079460958")


async def test_without_a_default_region_a_country_code_is_required() -> None:
    task = GetPhoneNumberTask(default_region=None)
    result = await call_tool(task, "update_phone_number", phone_number="650 253 0000")
    assert result.is_error and "Ask the user for the number with its country code" in result.output
    assert "country code" in task.instructions
    assert not (await call_tool(task, "update_phone_number",
                                phone_number="+1 650 253 0000")).is_error


async def test_a_number_with_the_right_digit_count_but_not_valid_is_refused() -> None:
    task = GetPhoneNumberTask()
    result = await call_tool(task, "update_phone_number", phone_number="555 123 4567")
    assert result.is_error
    assert "not a valid phone number (read as a US number" in result.output
    assert "Ask the user to say it again, digit by digit." in result.output
    assert (await call_tool(task, "confirm_phone_number", turn=2)).is_error  # nothing kept


async def test_text_that_is_no_number_is_refused() -> None:
    result = await call_tool(GetPhoneNumberTask(), "update_phone_number", phone_number="soon")
    assert result.is_error and "could not be read as a phone number" in result.output


def test_an_unknown_region_is_refused_naming_the_codes_to_use() -> None:
    with pytest.raises(ValueError, match="default_region 'XX' is not a region") as raised:
        GetPhoneNumberTask(default_region="XX")
    assert "ISO 3166-1 alpha-2" in str(raised.value)
