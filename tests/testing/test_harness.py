import pytest
from support import Collect, Script

import flowkit as fk
from flowkit.nodes.llm import LLM
from flowkit.nodes.tools import ToolRouter
from flowkit.providers.llm import ToolCallChunk
from flowkit.testing import FakeLLM, FakeReply
from flowkit.testing.harness import Harness


@fk.function_tool
async def get_weather(city: str) -> str:
    """Look up today's weather for a city."""
    return f"sunny in {city}"


def _agent(fake: FakeLLM) -> fk.Graph:
    g = fk.Graph("agent")
    llm = g.add(LLM(fake, instructions="Help.", tools=[get_weather]), name="llm")
    g.add(Script(hold=True), name="user") >> llm  # a live source: the graph stays open
    llm.tool_calls >> g.add(ToolRouter([get_weather]), name="router") >> llm.tool_results
    llm >> g.add(Collect(), name="speaker")
    return g


@pytest.mark.looptime
async def test_expect_reads_a_tool_round_in_order() -> None:
    fake = FakeLLM([
        FakeReply(text="Let me check.", tool_calls=(
            ToolCallChunk("c1", "get_weather", '{"city": "Paris"}'),)),
        "It is sunny in Paris.",
    ])
    async with Harness(_agent(fake)) as agent:
        result = await agent.run("What's the weather in Paris?")
    # One cursor per result: each .expect goes on where the last check stopped.
    result.expect.next_event().is_message(content="Let me check.")
    result.expect.next_event().is_function_call(name="get_weather", arguments={"city": "Paris"})
    expect = result.expect
    expect.next_event().is_function_call_output(output="sunny in Paris", is_error=False)
    expect.next_event().is_message(role="assistant", contains="SUNNY")
    expect.no_more_events()


@pytest.mark.looptime
async def test_expectations_fail_with_a_clear_message() -> None:
    fake = FakeLLM(["Hello!", "Again."])
    async with Harness(_agent(fake)) as agent:
        result = await agent.run("hi")
        second = await agent.run("hi again")
    assert [type(e).__name__ for e in second.events] == ["ChatMessageEvent"]
    with pytest.raises(
        AssertionError, match=r"event 0 for 'hi' \(assistant message 'Hello!'\): expected a call"
    ):
        result.expect.next_event().is_function_call(name="get_weather")
    with pytest.raises(AssertionError, match="did nothing more"):
        result.expect.next_event()  # the one event was read by the failed check above
    with pytest.raises(AssertionError, match="expected no more events"):
        second.expect.no_more_events()


@pytest.mark.looptime
async def test_a_reply_that_never_ends_fails_the_run() -> None:
    fake = FakeLLM(["never"], hang={0})
    async with Harness(_agent(fake), reply_timeout=5) as agent:
        with pytest.raises(AssertionError, match="did not finish its reply"):
            await agent.run("hello?")


def test_the_turn_input_must_be_unambiguous() -> None:
    g = _agent(FakeLLM())
    g.add(LLM(FakeLLM()), name="other") >> g.add(Collect(), name="sink2")
    g.nodes["user"].outputs["out"] >> g.nodes["other"].inputs["turns"]
    with pytest.raises(ValueError, match="2 UserTurn inputs"):
        Harness(g)
