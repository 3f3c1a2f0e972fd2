"""Helpers for testing flowkit graphs and nodes without networks or models.

:mod:`flowkit.testing.fakes` holds scripted STT, LLM and TTS providers: deterministic,
timed with :func:`asyncio.sleep` so tests can run them under virtual time, and recording
every request they get.
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

__all__ = [
    "FakeLLM",
    "FakeLLMRequest",
    "FakeReply",
    "FakeSTT",
    "FakeSTTRequest",
    "FakeTTS",
    "FakeTTSRequest",
    "word_tokens",
]
