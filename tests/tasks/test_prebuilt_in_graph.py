"""Prebuilt tasks in a graph: a front-desk tool runs one through the ToolRouter and LLM node."""

from typing import Any

import pytest
from support import (
    Collect,
    collected,
    offered_tools,
    system_prompt,
    tool_call,
    tool_loop_graph,
    user_turn,
)

import flowkit as fk
from flowkit.tasks import GetDtmfResult, GetDtmfTask, GetEmailResult, GetEmailTask
from flowkit.testing import FakeLLM

FRONT_DESK = "You are the front desk."
EMAIL_TOOLS = {"update_email_address", "confirm_email_address", "decline_email_address_capture"}

received: list[Any] = []  # what the front-desk tools got from their tasks


@fk.function_tool
async def sign_up(ctx: fk.RunContext) -> str:
    """Sign the user up for the newsletter."""
    try:
        email = await ctx.run_task(GetEmailTask())
    except fk.ToolError as declined:
        return f"not signed up: {declined.message}"
    received.append(email)
    return f"signed up {email.email_address}"


@fk.function_tool
async def check_account(ctx: fk.RunContext) -> str:
    """Check the user's account."""
    entry = await ctx.run_task(GetDtmfTask(num_digits=4))
    received.append(entry)
    return f"account {entry.user_input} is in good standing"




def _run_graph(
    fake: FakeLLM, tool: fk.FunctionTool, turns: list[tuple[float, Any]]
) -> tuple[fk.Graph, Collect]:
    g, _, _, results = tool_loop_graph(fake, FRONT_DESK, [tool], turns)
    return g, results




@pytest.mark.looptime
async def test_the_email_task_records_waits_for_the_users_yes_and_returns_its_result() -> None:
    received.clear()
    fake = FakeLLM([
        tool_call("c1", "sign_up"),
        "What is your email address?",
        tool_call("c2", "update_email_address", '{"email_address": "Ana@Example.COM"}'),
        # Confirming in the same turn, before the user could answer, is refused...
        tool_call("c3", "confirm_email_address"),
        "I have A n a at example dot com. Is that right?",
        # ...and accepted once the user said yes.
        tool_call("c4", "confirm_email_address"),
        "You are signed up.",
    ], ttft=0.0, token_gap=0.0)
    turns = [(0, user_turn("Sign me up")), (5.0, user_turn("ana at example dot com")),
             (10.0, user_turn("yes"))]
    g, results = _run_graph(fake, sign_up, turns)
    await fk.GraphRunner(g).run()

    task_instructions = GetEmailTask().instructions
    assert [system_prompt(fake, i) for i in range(7)] == [
        FRONT_DESK, *[task_instructions] * 5, FRONT_DESK,
    ]
    assert all(offered_tools(fake, i) == EMAIL_TOOLS for i in range(1, 6))
    assert offered_tools(fake, 6) == {"sign_up"}

    started, recorded, too_soon, ended = collected(results)
    assert isinstance(started.handoff, fk.tools.TaskStarted)
    assert isinstance(started.handoff.task, GetEmailTask)
    assert not recorded.is_error and "Recorded the email address: Ana@example.com" in (
        recorded.output
    )
    assert too_soon.is_error and "The user has not answered" in too_soon.output
    assert too_soon.handoff is None
    assert isinstance(ended.handoff, fk.tools.TaskEnded)
    assert ended.output == "signed up Ana@example.com"
    assert received == [GetEmailResult("Ana@example.com")]


@pytest.mark.looptime
async def test_a_declined_email_raises_in_the_front_desk_tool_with_the_reason() -> None:
    received.clear()
    fake = FakeLLM([
        tool_call("c1", "sign_up"),
        "What is your email address?",
        tool_call("c2", "decline_email_address_capture", '{"reason": "no email account"}'),
        "No problem.",
    ], ttft=0.0, token_gap=0.0)
    g, results = _run_graph(fake, sign_up, [(0, user_turn("Sign me up")),
                                            (5.0, user_turn("I don't have email"))])
    await fk.GraphRunner(g).run()
    ended = collected(results)[-1]
    assert isinstance(ended.handoff, fk.tools.TaskEnded)
    assert ended.output == (
        "not signed up: The user declined to give the email address: no email account"
    )
    assert system_prompt(fake, 3) == FRONT_DESK and received == []


@pytest.mark.looptime
async def test_a_keypad_entry_completes_the_dtmf_task_without_a_read_back() -> None:
    received.clear()
    fake = FakeLLM([
        tool_call("c1", "check_account"),
        "Please enter your four-digit account number.",
        tool_call("c2", "update_digits", '{"digits": "1 2 3 4"}'),
        "Your account is in good standing.",
    ], ttft=0.0, token_gap=0.0)
    turns = [(0, user_turn("Check my account")), (5.0, user_turn("<dtmf>1 2 3 4</dtmf>"))]
    g, results = _run_graph(fake, check_account, turns)
    await fk.GraphRunner(g).run()
    assert system_prompt(fake, 1) == GetDtmfTask(num_digits=4).instructions
    assert offered_tools(fake, 1) == {"update_digits", "decline_digits_capture"}
    assert any(m.content == "<dtmf>1 2 3 4</dtmf>" for m in fake.requests[2].history)
    ended = collected(results)[-1]
    assert isinstance(ended.handoff, fk.tools.TaskEnded)
    assert ended.output == "account 1234 is in good standing"
    assert received == [GetDtmfResult("1234")] and system_prompt(fake, 3) == FRONT_DESK
