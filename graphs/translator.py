"""A live translator: what the user says, spoken back in another language, in another voice.

RoomSource → Resample → VAD → STT → TurnDetector → LLM (translating instructions, no tools,
no memory) → TTS (a second voice) → RoomSink.

The LLM keeps no conversation: ``max_history=1`` sends it only the instructions and the
utterance to translate, so earlier sentences neither cost tokens nor leak into the
translation. There is no barge-in node: the speaker talking on is not an interruption of the
translation. A new utterance that ends while the last translation is still being spoken does
replace it (a newer turn ends the older reply); raise ``min_endpointing_delay`` to let the
speaker pause longer within one utterance.

Providers: ``job.extra["stt"]`` / ``["llm"]`` / ``["tts"]`` replace the stand-ins; the target
language is ``job.extra["language"]`` (French by default).
"""

from __future__ import annotations

from collections.abc import Sequence

import flowkit as fk
from flowkit.nodes import audio, llm, room, stt, tts, turn, vad
from flowkit.providers.chat import ChatMessage
from flowkit.testing import FakeLLM, FakeTTS
from flowkit.testing.demo import stand_ins
from flowkit.vad import EnergyVAD


def instructions(language: str) -> str:
    return (
        f"You are an interpreter. Translate what the user says into {language}. "
        "Answer with the translation only: no comments, no quotes, no explanations."
    )


def stand_in_translator() -> FakeLLM:
    """A model that marks the text as translated instead of translating it."""

    def reply(history: Sequence[ChatMessage]) -> str:
        return f"(translated) {history[-1].content}"

    return FakeLLM(reply, ttft=0.2, token_gap=0.02, name="stand-in-translator")


def build(job: fk.JobContext) -> fk.Graph:
    recogniser, model, voice_provider = stand_ins(  # a lower voice than the agents'
        job, stand_in_translator(), tts=FakeTTS(sample_rate=24_000, frequency=220.0)
    )
    language = job.extra.get("language", "French")
    g = fk.Graph("translator", description=f"speech translated into {language}")
    mic = g.add(room.RoomSource(sample_rate=48_000), name="mic")
    ears = g.add(vad.VAD(EnergyVAD()), name="vad")
    asr = g.add(stt.STT(recogniser), name="stt")
    turns = g.add(turn.TurnDetector(mode="vad", min_endpointing_delay=0.6), name="turns")
    interpreter = g.add(
        llm.LLM(model, instructions=instructions(language), max_history=1), name="translate"
    )
    voice = g.add(tts.TTS(voice_provider), name="tts")
    mic >> audio.Resample(16_000, channels=1) >> ears >> asr >> turns >> interpreter
    interpreter >> voice >> g.add(room.RoomSink(), name="speaker")
    ears.events >> [asr.speech, turns.vad]
    return g
