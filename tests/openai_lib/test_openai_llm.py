"""OpenAILLMProvider against the in-process fake server: parsing, errors, cancellation."""

from __future__ import annotations

import asyncio
import re
import time

import pytest
from fake_server import FakeOpenAI, close_clients  # noqa: F401 (a fixture)
from flowkit_openai import OpenAILLM, OpenAILLMProvider, to_openai_messages
from support import Collect, Script

import flowkit as fk
from flowkit.messages import Image, ToolCall
from flowkit.providers import (
    ChatMessage,
    FallbackLLM,
    LLMProvider,
    ProviderError,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    TextDelta,
    ToolCallChunk,
    ToolSpec,
    Usage,
)
from flowkit.testing.harness import ChatMessageEvent, Harness, RunResult

WEATHER = ToolSpec(
    "get_weather",
    "Look up the weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
TIME = ToolSpec("get_time", "The time in a zone.")
HISTORY = (ChatMessage("system", "Be brief."), ChatMessage("user", "Weather in Paris?"))


# Every provider a test makes has its HTTP clients closed after the test.
pytestmark = pytest.mark.usefixtures("close_clients")

def llm(server: FakeOpenAI, prefix: str, **options: object) -> OpenAILLMProvider:
    return OpenAILLMProvider("fake", base_url=server.url(prefix), **options)  # type: ignore[arg-type]


async def collect(provider: LLMProvider, **kwargs: object) -> list[object]:
    return [chunk async for chunk in provider.chat(HISTORY, **kwargs)]  # type: ignore[arg-type]


def test_is_an_llm_provider() -> None:
    provider = OpenAILLMProvider("m", base_url="http://127.0.0.1:1/v1", api_key="sk-secret")
    assert isinstance(provider, LLMProvider)
    assert provider.name == "openai:m"
    assert "sk-secret" not in repr(provider)


def test_history_conversion() -> None:
    call = ToolCall(turn_id=1, call_id="c1", name="get_weather", arguments='{"city": "Oslo"}')
    history = (
        ChatMessage("system", "sys"),
        ChatMessage("user", "hi", name="ann"),
        ChatMessage("assistant", "", tool_calls=(call,)),
        ChatMessage("tool", "sunny", tool_call_id="c1", name="get_weather"),
        ChatMessage("assistant", "It is sunny.", interrupted=True),
    )
    assert to_openai_messages(history) == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "hi", "name": "ann"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{
                "id": "c1", "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
            }],
        },
        {"role": "tool", "content": "sunny", "tool_call_id": "c1"},
        {"role": "assistant", "content": "It is sunny."},
    ]


async def test_stream_text_parallel_tool_calls_and_usage(server: FakeOpenAI) -> None:
    chunks = await collect(
        llm(server, "ok", max_tokens=50, temperature=0.1),
        tools=(WEATHER, TIME),
        tool_choice="required",
    )
    assert chunks == [
        TextDelta("Hello"),
        TextDelta(" there"),
        ToolCallChunk("call_a", "get_weather", '{"city": "Paris"}'),
        ToolCallChunk("call_b", "get_time", '{"zone": "UTC"}'),
        Usage(prompt_tokens=11, completion_tokens=7),
    ]
    body = server.requests[-1].json
    assert body is not None
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 50 and body["temperature"] == 0.1
    assert body["tool_choice"] == "required"
    assert [t["function"]["name"] for t in body["tools"]] == ["get_weather", "get_time"]
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}


async def test_a_user_message_with_an_image_is_sent_as_content_parts(server: FakeOpenAI) -> None:
    seen = Image(data=b"\x89PNG-bytes", mime_type="image/png", width=2, height=2)
    history = (*HISTORY[:1], ChatMessage("user", "What is this?", images=(seen,)))
    chunks = [chunk async for chunk in llm(server, "ok").chat(history)]
    assert TextDelta("Hello") in chunks
    body = server.requests[-1].json
    assert body is not None
    assert body["messages"][1] == {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORy1ieXRlcw=="}},
        ],
    }


async def test_named_tool_choice_and_no_tools(server: FakeOpenAI) -> None:
    provider = llm(server, "ok", stream_usage=False)
    await collect(provider, tools=(WEATHER,), tool_choice="get_weather")
    body = server.requests[-1].json
    assert body is not None
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert "stream_options" not in body
    await collect(provider, tool_choice="required")  # no tools: no tool_choice either
    body = server.requests[-1].json
    assert body is not None
    assert "tool_choice" not in body and "tools" not in body


async def test_unknown_tool_choice_is_rejected(server: FakeOpenAI) -> None:
    with pytest.raises(ProviderRejected, match="get_time"):
        await collect(llm(server, "ok"), tools=(WEATHER,), tool_choice="get_time")
    assert server.requests == []


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_overload_and_server_errors_are_unavailable(server: FakeOpenAI, status: int) -> None:
    with pytest.raises(ProviderUnavailable) as caught:
        await collect(llm(server, f"status{status}"))
    error = caught.value
    assert error.retryable and error.status == status
    assert f"fake error {status}" in str(error) and server.url(f"status{status}") in str(error)
    assert len(server.requests) == 1  # the SDK's own retries are off


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_errors_are_rejected(server: FakeOpenAI, status: int) -> None:
    with pytest.raises(ProviderRejected) as caught:
        await collect(llm(server, f"status{status}", api_key="sk-wrong"))
    assert not caught.value.retryable
    assert "check the API key" in str(caught.value)


async def test_auth_error_without_a_key_says_how_to_set_one(
    server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ProviderRejected, match="OPENAI_API_KEY"):
        await collect(llm(server, "status401"))


async def test_connection_refused_is_unavailable() -> None:
    provider = OpenAILLMProvider("m", base_url="http://127.0.0.1:9/v1", timeout=2)
    expected = re.escape("the connection to http://127.0.0.1:9/v1 failed")
    with pytest.raises(ProviderUnavailable, match=expected):
        await collect(provider)


async def test_hanging_server_times_out_within_the_timeout(server: FakeOpenAI) -> None:
    started = time.monotonic()
    with pytest.raises(ProviderTimeout, match=re.escape("within 0.5 s")):
        await collect(llm(server, "hang", timeout=0.5))
    assert time.monotonic() - started < 3.0


async def test_stalled_stream_times_out(server: FakeOpenAI) -> None:
    chunks: list[object] = []
    with pytest.raises(ProviderTimeout):
        async for chunk in llm(server, "stall", timeout=0.5).chat(HISTORY):
            chunks.append(chunk)
    assert chunks == [TextDelta("Hello")]


async def test_malformed_stream_names_provider_and_url(server: FakeOpenAI) -> None:
    with pytest.raises(ProviderError) as caught:
        await collect(llm(server, "malformed"))
    message = str(caught.value)
    assert type(caught.value) is ProviderError and not caught.value.retryable
    assert message.startswith("openai:fake: ")
    assert server.url("malformed") in message and "malformed answer" in message


async def test_aclose_mid_stream_closes_the_connection(server: FakeOpenAI) -> None:
    stream = llm(server, "endless").chat(HISTORY)
    assert await anext(stream) == TextDelta(" word")
    assert not server.disconnected.is_set()
    await stream.aclose()  # type: ignore[attr-defined]
    await asyncio.wait_for(server.disconnected.wait(), timeout=5)


async def test_cancelling_the_reader_closes_the_connection(server: FakeOpenAI) -> None:
    async def read() -> None:
        async for _ in llm(server, "endless").chat(HISTORY):
            pass

    task = asyncio.create_task(read())
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(server.disconnected.wait(), timeout=5)


async def test_fallback_switches_from_a_failing_server(server: FakeOpenAI) -> None:
    for failing in ("status429", "status500"):
        fallback = FallbackLLM(
            [llm(server, failing), llm(server, "ok")], max_retry=0, timeout=5
        )
        chunks = await collect(fallback)
        assert chunks[0] == TextDelta("Hello")
        assert fallback.last_provider == "openai:fake#1"
        assert fallback.availability == {"openai:fake#0": False, "openai:fake#1": True}


async def test_fallback_does_not_hide_a_rejected_key(server: FakeOpenAI) -> None:
    fallback = FallbackLLM([llm(server, "status401"), llm(server, "ok")], max_retry=0)
    with pytest.raises(ProviderRejected):
        await collect(fallback)


def test_node_wraps_the_provider() -> None:
    node = OpenAILLM("m", base_url="http://127.0.0.1:1/v1", instructions="Be kind.")
    provider = node.params.provider  # type: ignore[attr-defined]
    assert isinstance(provider, OpenAILLMProvider)
    assert provider.connection.base_url == "http://127.0.0.1:1/v1"
    assert node.history.instructions == "Be kind."
    assert OpenAILLM.library() == "flowkit_openai"


async def test_node_answers_a_turn_in_a_graph(server: FakeOpenAI) -> None:
    g = fk.Graph("agent")
    brain = g.add(
        OpenAILLM("fake", base_url=server.url("text"), instructions="Be brief."), name="llm"
    )
    g.add(Script(hold=True), name="user") >> brain
    brain >> g.add(Collect(), name="speaker")
    async with Harness(g, reply_timeout=10) as agent:
        result = await agent.run("Hi!")
    result.expect.next_event().is_message(role="assistant", content="Hello there")
    body = server.requests[-1].json
    assert body is not None
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi!"},
    ]


async def test_a_harness_judge_through_the_openai_sdk(server: FakeOpenAI) -> None:
    # The judge is the real SDK against a server whose verdict comes in fragments.
    result = RunResult("newsletter please", events=[
        ChatMessageEvent("assistant", "What is your email address?"),
    ])
    reason = await result.expect.next_event().judge(
        llm(server, "judge"), intent="asks for the email address"
    )
    assert reason == "It asks for the email."
    body = server.requests[-1].json
    assert body is not None
    assert body["tool_choice"] == {"type": "function", "function": {"name": "check_intent"}}
    assert [tool["function"]["name"] for tool in body["tools"]] == ["check_intent"]
    assert "Intent: asks for the email address" in body["messages"][-1]["content"]
