"""Helpers for testing flowkit graphs and nodes without networks or models.

- :mod:`flowkit.testing.fakes`: scripted STT, LLM and TTS providers, deterministic, timed
  with :func:`asyncio.sleep` so tests can run them under virtual time, recording every
  request they get.
- :mod:`flowkit.testing.harness`: send an agent user turns as text and check, event by
  event, what it did (tool calls, their outputs, its messages).
- :mod:`flowkit.testing.memory_io`: a room in memory: scripted user audio in, the agent's
  audio recorded with the time it played.
- :mod:`flowkit.testing.demo`: stand-in providers that let the ready graphs run with no model.
"""

from flowkit.testing.demo import DescribingSTT, echo_llm
from flowkit.testing.fakes import (
    FakeLLM,
    FakeLLMRequest,
    FakeReply,
    FakeSTT,
    FakeSTTRequest,
    FakeTTS,
    FakeTTSRequest,
    word_tokens,
)
from flowkit.testing.harness import (
    AgentHandoffEvent,
    ChatMessageEvent,
    FunctionCallEvent,
    FunctionCallOutputEvent,
    Harness,
    RunResult,
)
from flowkit.testing.memory_io import MemoryIO

__all__ = [
    "AgentHandoffEvent",
    "ChatMessageEvent",
    "DescribingSTT",
    "FakeLLM",
    "FakeLLMRequest",
    "FakeReply",
    "FakeSTT",
    "FakeSTTRequest",
    "FakeTTS",
    "FakeTTSRequest",
    "FunctionCallEvent",
    "FunctionCallOutputEvent",
    "Harness",
    "MemoryIO",
    "RunResult",
    "echo_llm",
    "word_tokens",
]
