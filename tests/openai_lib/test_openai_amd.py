"""Answering-machine classification through OpenAILLMProvider and the fake server.

The classifier's request (two tools, ``tool_choice="required"``) goes through the real
``openai`` client, and its answer comes back as a stream whose tool-call arguments arrive
in fragments, as OpenAI-compatible servers send them.
"""

from __future__ import annotations

import logging

import pytest
from fake_server import FakeOpenAI, close_clients  # noqa: F401 (a fixture)
from flowkit_openai import OpenAILLMProvider

from flowkit.messages import AMDCategory
from flowkit.nodes.amd_classifier import DEFAULT_AMD_PROMPT, classify_greeting

pytestmark = pytest.mark.usefixtures("close_clients")

GREETING = "Hi, you have reached Sam. Leave a message after the tone."


async def test_the_category_and_the_wait_come_back_from_fragmented_tool_calls(
    server: FakeOpenAI,
) -> None:
    provider = OpenAILLMProvider("fake", base_url=server.url("amd"))
    answer = await classify_greeting(provider, GREETING, max_wait=10.0)

    assert answer.category is AMDCategory.MACHINE_VM
    assert answer.wait == 10.0  # the 25 s asked for, capped
    body = server.requests[-1].json
    assert body is not None
    assert body["tool_choice"] == "required"
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert body["messages"][0]["content"] == DEFAULT_AMD_PROMPT
    assert body["messages"][1]["content"] == GREETING
    record, wait = body["tools"]
    assert record["type"] == "function" and record["function"]["name"] == "record_category"
    categories = record["function"]["parameters"]["properties"]["category"]["enum"]
    assert categories == [category.value for category in AMDCategory]
    assert wait["function"]["name"] == "wait_for_more"


async def test_without_waits_only_the_category_tool_is_offered(server: FakeOpenAI) -> None:
    provider = OpenAILLMProvider("fake", base_url=server.url("amd"))
    answer = await classify_greeting(provider, GREETING, may_wait=False)

    assert answer.category is AMDCategory.MACHINE_VM
    assert answer.wait is None  # the server's wait_for_more was not offered: ignored
    body = server.requests[-1].json
    assert body is not None
    assert [tool["function"]["name"] for tool in body["tools"]] == ["record_category"]


async def test_tools_it_was_not_offered_give_no_category(
    server: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    # The "ok" server calls get_weather and get_time, whatever it was asked.
    provider = OpenAILLMProvider("fake", base_url=server.url("ok"))
    with caplog.at_level(logging.WARNING):
        answer = await classify_greeting(provider, GREETING)

    assert answer.category is None and answer.wait is None
    warned = [r.getMessage() for r in caplog.records if "not offered" in r.getMessage()]
    assert len(warned) == 2 and "'get_weather'" in warned[0]
