"""classify_greeting: the model's tool call read into a category or a wait, garbage refused."""

from __future__ import annotations

import logging

import pytest

from flowkit.messages import AMDCategory
from flowkit.nodes.amd_classifier import GreetingClass, classify_greeting
from flowkit.providers.llm import ToolCallChunk
from flowkit.testing import FakeLLM, FakeReply


def calling(*calls: tuple[str, str], text: str = "") -> FakeLLM:
    chunks = tuple(ToolCallChunk(f"c{i}", name, args) for i, (name, args) in enumerate(calls))
    return FakeLLM([FakeReply(text=text, tool_calls=chunks)], ttft=0.0, token_gap=0.0)


async def test_a_recorded_category_is_returned_and_text_beside_it_ignored() -> None:
    llm = calling(("record_category", '{"category": "machine-ivr"}'), text="It is a menu.")
    answer = await classify_greeting(llm, "For sales press 1.")
    assert answer == GreetingClass(AMDCategory.MACHINE_IVR, None)


async def test_a_wait_is_capped_to_max_wait_and_kept_non_negative() -> None:
    assert await classify_greeting(
        calling(("wait_for_more", '{"seconds": 45}')), "Our hours are", max_wait=10.0
    ) == GreetingClass(None, 10.0)
    assert await classify_greeting(
        calling(("wait_for_more", '{"seconds": -2}')), "Our hours are"
    ) == GreetingClass(None, 0.0)


async def test_without_waits_left_only_the_record_tool_is_offered_and_a_wait_is_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    llm = calling(("wait_for_more", '{"seconds": 3}'))
    with caplog.at_level(logging.WARNING, logger="flowkit.nodes.amd"):
        answer = await classify_greeting(llm, "Our hours are", may_wait=False)
    assert [tool.name for tool in llm.requests[0].tools] == ["record_category"]
    assert answer == GreetingClass(None, None)
    assert "called 'wait_for_more', which it was not offered (record_category)" in caplog.text


@pytest.mark.parametrize(
    ("call", "complaint"),
    [
        (("record_category", "{category: human"), "arguments that are not JSON"),
        (("record_category", '["human"]'), "instead of a JSON object"),
        (("record_category", '{"category": "robot"}'), "the category 'robot', which is not one"),
        (("wait_for_more", '{"seconds": "soon"}'), "asked to wait 'soon' seconds, not a number"),
        (("hang_up", "{}"), "called 'hang_up', which it was not offered"),
    ],
)
async def test_an_unusable_answer_decides_nothing_and_says_what_was_wrong(
    call: tuple[str, str], complaint: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="flowkit.nodes.amd"):
        answer = await classify_greeting(calling(call), "Hello, this is Lisa.")
    assert answer == GreetingClass(None, None)
    assert complaint in caplog.text
    assert "gave neither a category nor a wait" in caplog.text
