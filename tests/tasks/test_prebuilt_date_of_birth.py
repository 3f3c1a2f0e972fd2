"""GetDateOfBirthTask: ISO dates, refused when impossible, in the future or too long ago."""

import datetime

from prebuilt_support import call_tool, confirmed

from flowkit.tasks import MAX_AGE_YEARS, GetDateOfBirthResult, GetDateOfBirthTask


def _years_ago(years: int, today: datetime.date) -> datetime.date:
    day = 28 if (today.month, today.day) == (2, 29) else today.day  # no 29 February then
    return today.replace(year=today.year - years, day=day)


async def test_an_iso_date_is_kept_as_a_date_and_read_back_with_the_month_in_words() -> None:
    task = GetDateOfBirthTask()
    recorded = await call_tool(task, "update_date_of_birth", date_of_birth="1985-03-03")
    assert not recorded.is_error and "March 3, 1985" in recorded.output
    result = await confirmed(task, "confirm_date_of_birth")
    assert result == GetDateOfBirthResult(datetime.date(1985, 3, 3))
    assert isinstance(result.date_of_birth, datetime.date)


async def test_a_day_the_month_does_not_have_is_refused() -> None:
    result = await call_tool(GetDateOfBirthTask(), "update_date_of_birth",
                             date_of_birth="1985-02-30")
    assert result.is_error
    assert result.output.startswith("'1985-02-30' is not a date in the form YYYY-MM-DD")
    assert "day is out of range for month" in result.output


async def test_a_date_not_in_iso_form_is_refused_asking_for_yyyy_mm_dd() -> None:
    result = await call_tool(GetDateOfBirthTask(), "update_date_of_birth",
                             date_of_birth="3 March 1985")
    assert result.is_error and "Pass the date as YYYY-MM-DD" in result.output


async def test_a_date_in_the_future_is_refused() -> None:
    tomorrow = datetime.date.today() + datetime.timedelta(days=1)
    task = GetDateOfBirthTask()
    result = await call_tool(task, "update_date_of_birth", date_of_birth=tomorrow.isoformat())
    assert result.is_error and "is in the future, so it cannot be a date of birth" in result.output
    today = await call_tool(task, "update_date_of_birth",
                            date_of_birth=datetime.date.today().isoformat())
    assert not today.is_error  # born today is possible (a newborn's parent calling)


async def test_a_date_more_than_max_age_years_ago_is_refused() -> None:
    today = datetime.date.today()
    task = GetDateOfBirthTask()
    too_old = _years_ago(MAX_AGE_YEARS + 1, today)
    result = await call_tool(task, "update_date_of_birth", date_of_birth=too_old.isoformat())
    assert result.is_error and f"over {MAX_AGE_YEARS} years old" in result.output
    oldest = _years_ago(MAX_AGE_YEARS, today)
    assert not (await call_tool(task, "update_date_of_birth",
                                date_of_birth=oldest.isoformat())).is_error
