"""Stand-in providers that let the ready graphs run end to end with no model and no network.

They do not understand speech. :class:`DescribingSTT` reports what it heard as a description
(``"[1.4 s of speech]"``), and :func:`echo_llm` answers by saying what it was told. They exist
so that ``flowkit run graphs/voice_agent.py`` works on any machine and shows every stage of
the pipeline and its timing; the local node library swaps in real models.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from flowkit.job import JobContext
from flowkit.providers.chat import ChatMessage
from flowkit.providers.stt import SpeechResult
from flowkit.testing.fakes import FakeLLM, FakeReply, FakeTTS
from flowkit.vad.contract import PCMSamples, check_pcm

__all__ = ["DescribingSTT", "echo_llm", "stand_ins"]


class DescribingSTT:
    """A batch "recogniser" that describes each utterance instead of transcribing it.

    Args:
        delay: Seconds each recognition takes (on the loop clock).
    """

    def __init__(self, delay: float = 0.1) -> None:
        self._delay = delay

    @property
    def name(self) -> str:
        """The provider's name."""
        return "describing-stt"

    async def recognize(
        self, samples: PCMSamples, sample_rate: int, *, language: str | None = None
    ) -> SpeechResult:
        """Describe the utterance: ``"[1.4 s of speech]"``."""
        check_pcm(samples, sample_rate)
        await asyncio.sleep(self._delay)
        seconds = samples.size / sample_rate
        return SpeechResult(
            text=f"[{seconds:.1f} s of speech]", end_time=seconds, language=language
        )


def echo_llm(*, ttft: float = 0.2, token_gap: float = 0.02) -> FakeLLM:
    """A model that repeats what it was told (and the size of what it was shown), word by word."""

    def reply(history: Sequence[ChatMessage]) -> FakeReply:
        said = next((m for m in reversed(history) if m.role == "user"), None)
        heard = "" if said is None else said.content
        seen = "" if said is None else "".join(
            f" I see a {image.width} by {image.height} picture from your {image.source}."
            for image in said.images
        )
        return FakeReply(
            text=f"I heard {heard}.{seen} I am a demo agent on scripted providers. "
            "Install the local node library for a real conversation."
        )

    return FakeLLM(reply, ttft=ttft, token_gap=token_gap, name="echo-llm")


def stand_ins(job: JobContext, llm: Any, *, tts: Any = None) -> tuple[Any, Any, Any]:
    """STT, LLM and TTS for a graph file: the job's, else the stand-ins.

    ``job.extra["stt"]``, ``["llm"]`` and ``["tts"]`` (a test's or the caller's providers)
    take the place of :class:`DescribingSTT`, ``llm`` and ``tts`` (a 24 kHz
    :class:`~flowkit.testing.fakes.FakeTTS` when ``None``).
    """
    extra = job.extra
    return (
        extra.get("stt") or DescribingSTT(),
        extra.get("llm") or llm,
        extra.get("tts") or tts or FakeTTS(sample_rate=24_000),
    )
