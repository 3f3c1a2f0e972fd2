"""Prebuilt tasks that collect one thing from the user, as LiveKit Agents' prebuilt tasks.

Each is an :class:`~flowkit.tools.AgentTask` (see :mod:`flowkit.tools.task`) that a tool
runs with ``await ctx.run_task(...)``: the conversation moves to the task, which asks the
user for the value, reads it back and has it confirmed, and the tool gets a frozen result::

    from flowkit.tasks import GetEmailTask

    @fk.function_tool
    async def subscribe(ctx: fk.RunContext) -> str:
        '''Subscribe the user to the newsletter.'''
        try:
            email = await ctx.run_task(GetEmailTask())
        except fk.ToolError as declined:
            return f"not subscribed: {declined.message}"
        return f"subscribed {email.email_address}"

- :class:`GetEmailTask` gives a :class:`GetEmailResult` (``email_address``);
- :class:`GetPhoneNumberTask` gives a :class:`GetPhoneNumberResult` (``phone_number``,
  E.164);
- :class:`GetAddressTask` gives a :class:`GetAddressResult` (``address`` and its parts);
- :class:`GetDateOfBirthTask` gives a :class:`GetDateOfBirthResult` (``date_of_birth``, a
  :class:`datetime.date`);
- :class:`GetNameTask` gives a :class:`GetNameResult` (``first_name``, ``middle_name``,
  ``last_name``);
- :class:`GetDtmfTask` gives a :class:`GetDtmfResult` (``user_input``, the digits keyed in
  on the phone or said).

Each task has three tools, named after its value: ``update_<value>`` records every new
reading of the value (checking it: a wrong one is sent back to the LLM with what to ask),
``confirm_<value>`` ends the task once the user has said the value read back is right, and
``decline_<value>_capture`` ends it when the user will not give it: ``run_task`` then raises
a :class:`~flowkit.tools.ToolError` with their reason. ``require_confirmation=False`` ends
the task with the first valid value instead (the default of :class:`GetDtmfTask`), and
``extra_instructions`` adds to the task's instructions (:class:`CaptureOptions` lists the
options every task takes; ``own_history=True`` shows the LLM only the task's part of the
conversation).

Importing :mod:`flowkit` does not import this package (nor ``email-validator`` and
``phonenumbers``, which it uses); import it where you use it.
"""

from flowkit.tasks.address import GetAddressResult, GetAddressTask
from flowkit.tasks.capture import CaptureOptions
from flowkit.tasks.date_of_birth import MAX_AGE_YEARS, GetDateOfBirthResult, GetDateOfBirthTask
from flowkit.tasks.dtmf_digits import GetDtmfResult, GetDtmfTask
from flowkit.tasks.email import GetEmailResult, GetEmailTask
from flowkit.tasks.name import GetNameResult, GetNameTask
from flowkit.tasks.phone_number import GetPhoneNumberResult, GetPhoneNumberTask

__all__ = [
    "MAX_AGE_YEARS",
    "CaptureOptions",
    "GetAddressResult",
    "GetAddressTask",
    "GetDateOfBirthResult",
    "GetDateOfBirthTask",
    "GetDtmfResult",
    "GetDtmfTask",
    "GetEmailResult",
    "GetEmailTask",
    "GetNameResult",
    "GetNameTask",
    "GetPhoneNumberResult",
    "GetPhoneNumberTask",
]
