"""A voice agent whose replies are checked before they are spoken.

The pipeline of graphs/voice_agent.py with a ReplyGuard between the LLM and TTS:

    LLM.text ─▶ ReplyGuard ─▶ TTS ─▶ RoomSink
                    └─ rejected (the failed replies, for logs and review)

Each reply is held until the LLM has finished it, or until it asks for what it wrote to be
spoken at once (a flush: before a tool runs, and a tool's own words), then checked; a reply
that contains a banned word or a phone number is replaced by a safe reply, and only the
replacement is spoken (after what an earlier check let through). In a fixed STT → LLM →
TTS pipeline the check would be a callback inside the session; here it is a node you can see
in the drawing, measure (the guard's latency is its own line in the metrics) and move.

Providers: ``job.extra["stt"]`` / ``["llm"]`` / ``["tts"]`` replace the stand-ins.
"""

from __future__ import annotations

import flowkit as fk
from flowkit.nodes import audio, interrupt, llm, room, stt, text, tts, turn, vad
from flowkit.testing.demo import echo_llm, stand_ins
from flowkit.vad import EnergyVAD

BANNED_WORDS = ("password", "guarantee", "diagnosis")
SAFE_REPLY = "Sorry, I can't share that. Is there anything else I can help with?"


def build(job: fk.JobContext) -> fk.Graph:
    recogniser, model, voice_provider = stand_ins(job, echo_llm())
    g = fk.Graph("reply-guard", description="a voice agent whose replies are checked")
    mic = g.add(room.RoomSource(sample_rate=48_000), name="mic")
    ears = g.add(vad.VAD(EnergyVAD()), name="vad")
    asr = g.add(stt.STT(recogniser), name="stt")
    turns = g.add(turn.TurnDetector(mode="vad"), name="turns")
    brain = g.add(llm.LLM(model, instructions="You are a helpful assistant."), name="llm")
    guard = g.add(
        text.ReplyGuard(
            banned_words=BANNED_WORDS, patterns=[text.PHONE_NUMBER], fallback=SAFE_REPLY
        ),
        name="guard",
    )
    voice = g.add(tts.TTS(voice_provider), name="tts")
    speaker = g.add(room.RoomSink(), name="speaker")
    barge = g.add(interrupt.Interruptions(), name="interruptions")

    mic >> audio.Resample(16_000, channels=1) >> ears >> asr >> turns >> brain
    brain >> guard >> voice >> speaker  # nothing reaches TTS without passing the guard
    ears.events >> [asr.speech, turns.vad, barge.vad]
    asr >> barge.transcripts
    barge >> [speaker.interrupt, voice.interrupt, brain.interrupt]
    speaker >> [brain.playout, barge.playout]
    return g
