"""Collect a postal address: :class:`GetAddressTask`, as LiveKit Agents' ``GetAddressTask``.

Addresses differ too much between countries to be checked here: the task makes sure that
the street, the locality and the country were given, and leaves the rest to the user's
confirmation (and to an address service of your own, if you need a deliverable address).
"""

from __future__ import annotations

from dataclasses import dataclass

from flowkit.tasks.capture import CaptureTask
from flowkit.tools.context import RunContext
from flowkit.tools.errors import ToolError
from flowkit.tools.function_tool import function_tool

__all__ = ["GetAddressResult", "GetAddressTask"]


@dataclass(frozen=True, slots=True)
class GetAddressResult:
    """What :class:`GetAddressTask` collected.

    Attributes:
        address: The whole address on one line, its parts joined with commas.
        street_address: House number, street, building or district, as the country has it.
        unit_number: The flat, apartment, suite or floor; ``""`` when there is none.
        locality: The town or city, with the region and postal code where they are used.
        country: The country, in full.
    """

    address: str
    street_address: str
    unit_number: str
    locality: str
    country: str


class GetAddressTask(CaptureTask[GetAddressResult]):
    """Ask the user for their address, read it back and have it confirmed.

    Args:
        extra_instructions: Added at the end of the task's instructions (which address:
            delivery, billing, ...).
        require_confirmation: Read the address back and wait for the user's yes; ``False``
            takes the first complete address.
        tools: Function tools offered besides the task's own.
        own_history: Show the LLM only the task's part of the conversation.
    """

    subject = "address"

    def _describe(self) -> str:
        return (
            "Start by asking the user for their address. Addresses differ by country: take "
            "the street part (house number, street, building or district), the unit (flat, "
            "apartment, suite or floor) if there is one, the locality (town or city, with "
            "the region and postal code where the country uses them) and the country. Turn "
            "spoken numbers into numerals, keep the accents of local names, and when the "
            "user spells a name, the spelling wins. Read house numbers and postal codes back "
            "digit by digit, and spell back the names the user spelled. If the address stays "
            "unclear, ask for it a part at a time: street, unit, locality, country."
        )

    @function_tool
    async def update_address(
        self,
        ctx: RunContext,
        street_address: str,
        locality: str,
        country: str,
        unit_number: str = "",
    ) -> str:
        """Record the address as you now understand it; call again for each correction.

        Args:
            ctx: The call's context (flowkit fills it in; the LLM does not see it).
            street_address: House number and street, or building and district, as the
                country writes them, e.g. "12 Rue de la Paix".
            locality: Town or city, with region and postal code where used, e.g.
                "75002 Paris".
            country: The country, in full, e.g. "France".
            unit_number: Flat, apartment, suite or floor, e.g. "Apartment 4B"; empty when
                there is none.
        """
        parts = {
            "street": street_address.strip(),
            "locality": locality.strip(),
            "country": country.strip(),
        }
        missing = [name for name, value in parts.items() if not value]
        if missing:
            raise ToolError(
                f"The address has no {' and no '.join(missing)} yet. Ask the user for "
                f"{'them' if len(missing) > 1 else 'it'}, then call update_address with the "
                "whole address."
            )
        unit = unit_number.strip()
        lines = [parts["street"], unit, parts["locality"], parts["country"]]
        address = ", ".join(line for line in lines if line)
        return self._record(
            ctx,
            GetAddressResult(address, parts["street"], unit, parts["locality"], parts["country"]),
            f"{address} (house numbers and postal codes digit by digit)",
        )
