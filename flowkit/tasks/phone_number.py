"""Collect a phone number: :class:`GetPhoneNumberTask`, as LiveKit Agents' task of that name.

The number is checked with ``phonenumbers`` (Google's libphonenumber metadata): a number
without a country code is read as one of ``default_region``, and it must be a valid number
there, not just the right count of digits. It is kept in E.164 form (``+16502530000``).
"""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers
from typing_extensions import Unpack

from flowkit.tasks.capture import CaptureOptions, CaptureTask
from flowkit.tools.context import RunContext
from flowkit.tools.errors import ToolError
from flowkit.tools.function_tool import function_tool

__all__ = ["GetPhoneNumberResult", "GetPhoneNumberTask"]


@dataclass(frozen=True, slots=True)
class GetPhoneNumberResult:
    """What :class:`GetPhoneNumberTask` collected.

    Attributes:
        phone_number: The number in E.164 form, e.g. ``"+16502530000"``.
    """

    phone_number: str


class GetPhoneNumberTask(CaptureTask[GetPhoneNumberResult]):
    """Ask the user for their phone number, read it back and have it confirmed.

    Args:
        default_region: The region of numbers given without a country code, as an ISO
            3166-1 alpha-2 code (``"US"``, ``"GB"``, ``"DE"``); ``None`` takes only numbers
            with a country code.
        **options: The options of every prebuilt task (:class:`CaptureOptions`):
            ``extra_instructions``, ``require_confirmation`` (``False`` takes the first valid
            number), ``tools``, ``own_history``.

    Raises:
        ValueError: ``default_region`` is not a region ``phonenumbers`` knows.

    Attributes:
        default_region: The region of numbers without a country code, upper case, or ``None``.
    """

    subject = "phone number"

    def __init__(
        self,
        *,
        default_region: str | None = "US",
        **options: Unpack[CaptureOptions],
    ) -> None:
        region = default_region.upper() if default_region is not None else None
        if region is not None and region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(
                f"default_region {default_region!r} is not a region phonenumbers knows; give an "
                "ISO 3166-1 alpha-2 code such as 'US', 'GB' or 'DE', or None to take only "
                "numbers with a country code"
            )
        self.default_region = region
        super().__init__(**options)

    def _describe(self) -> str:
        if self.default_region is None:
            region = "Every number needs its country code: ask for it when it is missing."
        else:
            region = (
                f"A number without a country code is taken as a {self.default_region} number; "
                "pass the country code when the user gives one ('plus forty-four ...')."
            )
        return (
            "Start by asking the user for their phone number. Turn spoken digits into numerals "
            f"('oh' and 'zero' are 0, 'double five' is 55) and leave out filler words. {region} "
            "Read the number back digit by digit, pausing between its groups, never as one "
            "large number. If it stays unclear, ask for it a group at a time."
        )

    @function_tool
    async def update_phone_number(self, ctx: RunContext, phone_number: str) -> str:
        """Record the phone number as you now understand it; call again for each correction.

        Args:
            ctx: The call's context (flowkit fills it in; the LLM does not see it).
            phone_number: The number in digits, with a leading + and the country code when
                the user gave one, e.g. "+44 20 7946 0958" or "650 253 0000".
        """
        try:
            number = phonenumbers.parse(phone_number, self.default_region)
        except phonenumbers.NumberParseException as error:
            if error.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
                raise ToolError(
                    f"{phone_number!r} has no country code this task knows. Ask the user for "
                    "the number with its country code."
                ) from None
            raise ToolError(
                f"{phone_number!r} could not be read as a phone number. Ask the user to say it "
                "again, digit by digit."
            ) from None
        if not phonenumbers.is_valid_number(number):
            read_as = (
                f" (read as a {self.default_region} number, as it has no country code)"
                if not phone_number.strip().startswith("+") and self.default_region else ""
            )
            raise ToolError(
                f"{phone_number!r} is not a valid phone number{read_as}: digits may be missing, "
                "extra or misheard. Ask the user to say it again, digit by digit."
            )
        formats = phonenumbers.PhoneNumberFormat
        # Read back as the user would write it: a local number without its country code.
        local = phonenumbers.region_code_for_number(number) == self.default_region
        style = formats.NATIONAL if local else formats.INTERNATIONAL
        spoken = phonenumbers.format_number(number, style)
        return self._record(
            ctx,
            GetPhoneNumberResult(phonenumbers.format_number(number, formats.E164)),
            f"{spoken} (digit by digit, group by group)",
        )
