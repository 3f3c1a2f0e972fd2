"""EventAssert.judge: an LLM checks that a message does what an intent says."""

import json

import pytest
from support import Collect, Script

import flowkit as fk
from flowkit.nodes.llm import LLM
from flowkit.providers.llm import ToolCallChunk
from flowkit.testing import FakeLLM, FakeReply
from flowkit.testing.harness import JUDGE_TOOL, Harness, RunResult

ASK = "What is your email address, please?"


def _verdict(arguments: str) -> FakeReply:
    return FakeReply(tool_calls=(ToolCallChunk("v1", "check_intent", arguments),))


async def _asked() -> RunResult:
    g = fk.Graph("agent")
    llm = g.add(LLM(FakeLLM([ASK], ttft=0.0, token_gap=0.0), instructions="Help."),
                name="llm")
    g.add(Script(hold=True), name="user") >> llm
    llm >> g.add(Collect(), name="speaker")
    async with Harness(g) as agent:
        return await agent.run("I want the newsletter")


@pytest.mark.looptime
async def test_a_message_the_judge_approves_passes_with_its_reason() -> None:
    judge = FakeLLM([_verdict(json.dumps({"success": True, "reason": "It asks politely."}))])
    result = await _asked()
    reason = await result.expect.next_event().judge(judge, intent="asks for the email address")
    assert reason == "It asks politely."
    # What the judge was asked: the user's words, the answer and the intent; one tool it
    # must call.
    [request] = judge.requests
    assert request.tool_choice == "check_intent" and request.tools == (JUDGE_TOOL,)
    system, asked = request.history
    assert system.role == "system" and "check_intent" in system.content
    assert asked.content == (
        f"The user said: 'I want the newsletter'\n\nThe agent answered: {ASK!r}\n\n"
        "Intent: asks for the email address"
    )


@pytest.mark.looptime
async def test_a_message_the_judge_rejects_fails_with_its_reason() -> None:
    judge = FakeLLM([_verdict(json.dumps({"success": False, "reason": "It asks for a name."}))])
    result = await _asked()
    with pytest.raises(AssertionError, match=r"found it does not do what was intended "
                       r"\('asks for the phone number'\): It asks for a name\."):
        await result.expect.next_event().judge(judge, intent="asks for the phone number")


@pytest.mark.looptime
@pytest.mark.parametrize(("reply", "problem"), [
    ("I think it is fine.", "gave no verdict on 'polite' (it must call check_intent; it wrote "
                            "'I think it is fine.')"),
    (_verdict('{"success": "yes"}'), "gave a malformed verdict on 'polite'"),
    (_verdict("not json"), "gave a malformed verdict on 'polite'"),
])
async def test_a_judge_without_a_proper_verdict_fails_the_check(
    reply: str | FakeReply, problem: str
) -> None:
    result = await _asked()
    with pytest.raises(AssertionError) as failed:
        await result.expect.next_event().judge(FakeLLM([reply]), intent="polite")
    assert problem in str(failed.value)


@pytest.mark.looptime
async def test_only_an_agents_message_is_judged() -> None:
    result = RunResult("hi", events=[])
    result.events.append(fk.testing.harness.FunctionCallEvent("lookup", {}, "c1"))
    judge = FakeLLM([])
    with pytest.raises(AssertionError, match="expected a message from assistant"):
        await result.expect.next_event().judge(judge, intent="anything")
    assert judge.requests == []
