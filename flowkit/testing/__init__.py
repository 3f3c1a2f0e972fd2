"""Helpers for testing flowkit graphs and nodes without networks or models.

- :mod:`flowkit.testing.fakes`: scripted STT, LLM and TTS providers, deterministic, timed
  with :func:`asyncio.sleep` so tests can run them under virtual time, recording every
  request they get.
- :mod:`flowkit.testing.harness`: send an agent user turns as text and check, event by
  event, what it did (tool calls, their outputs, its messages).
"""

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

__all__ = [
    "AgentHandoffEvent",
    "ChatMessageEvent",
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
    "RunResult",
    "word_tokens",
]
