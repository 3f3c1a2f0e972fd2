"""A voice agent: the whole pipeline, from the room's audio to the agent's voice.

RoomSource → Resample → VAD → STT → TurnDetector → LLM (⇄ ToolRouter) → TTS → RoomSink, with
barge-in (Interruptions), agent states, and transcripts of both sides.

Until the local node library provides real models, it runs on stand-in providers: EnergyVAD
(a real detector, no model), a recogniser that describes each utterance instead of
transcribing it, a model that repeats what it heard, and a TTS that speaks a tone. Every stage
runs and is measured as it will with real providers.
"""

from __future__ import annotations

import datetime

import flowkit as fk
from flowkit.nodes import audio, interrupt, llm, room, state, stt, tools, tts, turn, vad
from flowkit.testing import FakeTTS
from flowkit.testing.demo import DescribingSTT, echo_llm
from flowkit.vad import EnergyVAD

INSTRUCTIONS = (
    "You are a helpful voice assistant. Keep answers short: they are spoken, not read."
)


@fk.function_tool
async def get_time() -> str:
    """Tell the current time (UTC)."""
    return datetime.datetime.now(datetime.UTC).strftime("%H:%M UTC")


def build(job: fk.JobContext) -> fk.Graph:
    """Build one voice agent graph for ``job``."""
    g = fk.Graph("voice-agent", description="a voice agent: listen, think, speak, barge-in")
    mic = g.add(room.RoomSource(sample_rate=48_000), name="mic")
    ears = g.add(vad.VAD(EnergyVAD()), name="vad")
    asr = g.add(stt.STT(DescribingSTT()), name="stt")
    turns = g.add(turn.TurnDetector(mode="vad", min_endpointing_delay=0.5), name="turns")
    brain = g.add(llm.LLM(echo_llm(), instructions=INSTRUCTIONS, tools=[get_time]), name="llm")
    router = g.add(tools.ToolRouter([get_time]), name="tools")
    voice = g.add(tts.TTS(FakeTTS(sample_rate=24_000)), name="tts")
    speaker = g.add(room.RoomSink(), name="speaker")
    barge = g.add(interrupt.Interruptions(min_interruption_duration=0.5), name="interruptions")
    states = g.add(state.AgentStates(), name="states")

    mic >> audio.Resample(16_000, channels=1) >> ears >> asr >> turns >> brain >> voice >> speaker
    ears.events >> [asr.speech, turns.vad, barge.vad]
    asr >> barge.transcripts
    asr >> g.add(room.TranscriptPublisher(), name="user_transcripts")
    turns >> states
    brain.tool_calls >> router >> brain.tool_results          # the tool loop
    barge >> [speaker.interrupt, voice.interrupt, brain.interrupt]  # barge-in
    speaker >> [brain.playout, barge.playout, states.playout]  # what was played, fed back
    return g
