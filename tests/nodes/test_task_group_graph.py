"""A TaskGroup in a graph: the ToolRouter and the LLM node follow its tasks, a way back
included (the group on its own is in tests/tools/test_task_group.py)."""

import pytest
from support import collected, tool_call, tool_loop_graph, user_turn

import flowkit as fk
from flowkit.testing import FakeLLM
from flowkit.tools.task_group import REVISIT_TOOL

FRONT_DESK = "You are the front desk."


class Ask(fk.AgentTask[str]):
    @fk.function_tool
    async def answered(self, value: str) -> None:
        """The user answered."""
        self.complete(value)


class GetName(Ask):
    instructions = "Ask for the user's name."


class GetPhone(Ask):
    instructions = "Ask for the user's phone number."


@fk.function_tool
async def sign_up(ctx: fk.RunContext) -> str:
    """Sign the user up."""
    group = (
        fk.TaskGroup()
        .add(GetName, id="name", description="the user's name")
        .add(GetPhone, id="phone", description="the user's phone number")
    )
    answers = (await ctx.run_task(group)).task_results
    return f"signed up {answers['name']}, {answers['phone']}"




@pytest.mark.looptime
async def test_the_conversation_follows_the_group_back_to_a_step_and_on_to_the_end() -> None:
    fake = FakeLLM([
        tool_call("c1", "sign_up"), "What is your name?",
        tool_call("c2", "answered", '{"value": "Ana"}'), "And your phone number?",
        tool_call("c3", REVISIT_TOOL, '{"task_ids": ["name"]}'), "Sure, what is your name?",
        tool_call("c4", "answered", '{"value": "Anna"}'), "And your phone number?",
        tool_call("c5", "answered", '{"value": "555 0100"}'), "You are signed up.",
    ], ttft=0.0, token_gap=0.0)
    turns = [(0, user_turn("Sign me up")), (5.0, user_turn("Ana")),
             (10.0, user_turn("sorry, my name is Anna")), (15.0, user_turn("Anna")),
             (20.0, user_turn("555 0100"))]
    g, llm, _, results = tool_loop_graph(fake, FRONT_DESK, [sign_up], turns, timeout=1.0)
    await fk.GraphRunner(g).run()

    systems = [request.history[0].content for request in fake.requests]
    assert systems == [
        FRONT_DESK, GetName.instructions, GetName.instructions, GetPhone.instructions,
        GetPhone.instructions, GetName.instructions, GetName.instructions,
        GetPhone.instructions, GetPhone.instructions, FRONT_DESK,
    ]
    offered = [{tool.name for tool in request.tools} for request in fake.requests]
    assert offered[1] == {"answered"}  # nothing to go back to from the first step
    assert offered[3] == {"answered", REVISIT_TOOL}
    assert offered[-1] == {"sign_up"}

    sent = {r.call_id: r for r in collected(results)}
    assert sent["c3"].output == (
        "GetPhone ended (going back to name). GetName has started: follow its instructions "
        "until it is complete."
    )
    assert sent["c5"].output == "signed up Anna, 555 0100"
    assert isinstance(sent["c5"].handoff, fk.tools.TaskEnded)
    assert llm.history.instructions == FRONT_DESK
