"""GetAddressTask: the parts required, and the one-line address."""

from prebuilt_support import call_tool, confirmed

from flowkit.tasks import GetAddressResult, GetAddressTask


async def test_the_address_is_kept_on_one_line_and_in_parts() -> None:
    task = GetAddressTask()
    recorded = await call_tool(
        task, "update_address", street_address="12 Rue de la Paix", unit_number="Apt 4B",
        locality="75002 Paris", country="France",
    )
    assert "12 Rue de la Paix, Apt 4B, 75002 Paris, France" in recorded.output
    assert await confirmed(task, "confirm_address") == GetAddressResult(
        "12 Rue de la Paix, Apt 4B, 75002 Paris, France",
        "12 Rue de la Paix", "Apt 4B", "75002 Paris", "France",
    )


async def test_without_a_unit_the_line_has_no_empty_part() -> None:
    task = GetAddressTask(require_confirmation=False)
    await call_tool(task, "update_address", street_address="1 Main St",
                    locality="Springfield IL 62701", country="United States")
    result = await task.result()
    assert result.address == "1 Main St, Springfield IL 62701, United States"
    assert result.unit_number == ""


async def test_missing_parts_are_refused_naming_them() -> None:
    task = GetAddressTask()
    result = await call_tool(task, "update_address", street_address="1 Main St",
                             locality=" ", country="")
    assert result.is_error
    assert result.output.startswith("The address has no locality and no country yet.")
    assert "Ask the user for them" in result.output
    assert not task.done()
