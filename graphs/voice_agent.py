"""A voice agent: the whole pipeline, from the room's audio to the agent's voice.

RoomSource → Resample → VAD → STT → TurnDetector → LLM (⇄ ToolRouter) → TTS → RoomSink, with
barge-in (Interruptions), agent states, and transcripts of both sides.

Providers, chosen by ``job.extra["providers"]`` or the ``FLOWKIT_PROVIDERS`` environment
variable:

- ``local`` (the default): local models from the flowkit-local library, offline: Silero VAD,
  Whisper tiny.en, SmolLM2-135M on llama.cpp, Piper. Each model loads once per process.
- ``openai``: any OpenAI-compatible endpoint for STT, LLM and TTS (flowkit-openai), with
  ``OPENAI_BASE_URL``, ``OPENAI_API_KEY`` and ``FLOWKIT_OPENAI_MODEL`` (default
  ``gpt-4o-mini``); voice activity stays local (Silero).
- ``demo``: stand-ins with no model at all: EnergyVAD, a recogniser that describes each
  utterance instead of transcribing it, a model that repeats what it heard, a TTS that speaks
  a tone. Every stage still runs and is measured.
"""

from __future__ import annotations

import datetime
import functools
import os
from typing import Any

import flowkit as fk
from flowkit.nodes import (
    audio,
    interrupt,
    llm,
    room,
    room_state,
    state,
    stt,
    tools,
    tts,
    turn,
    vad,
)
from flowkit.testing import FakeTTS
from flowkit.testing.demo import DescribingSTT, echo_llm
from flowkit.vad import EnergyVAD

INSTRUCTIONS = (
    "You are a helpful voice assistant. Answer in one or two short sentences: they are "
    "spoken, not read."
)


@functools.cache
def _local() -> tuple[Any, Any, Any, Any]:
    # Cached: graphs are built per job, models should load once per process.
    try:
        import flowkit_local
    except ImportError as exc:
        raise RuntimeError(
            f"the local providers need the flowkit-local library ({exc}); install it with "
            "`pip install -e nodes/flowkit-local`, or run with FLOWKIT_PROVIDERS=demo"
        ) from exc
    local = (
        flowkit_local.SileroVADProvider(),
        flowkit_local.WhisperSTTProvider(),
        flowkit_local.LlamaLLMProvider(max_tokens=60),
        flowkit_local.PiperTTSProvider(),
    )
    for provider in local[1:]:
        provider.load()  # now, not inside the first turn's latency
    return local


def providers(job: fk.JobContext) -> tuple[Any, Any, Any, Any]:
    """The VAD, STT, LLM and TTS providers this job runs on (see the module docstring)."""
    choice = str(job.extra.get("providers") or os.environ.get("FLOWKIT_PROVIDERS") or "local")
    if choice == "local":
        return _local()
    if choice == "demo":
        return EnergyVAD(), DescribingSTT(), echo_llm(), FakeTTS(sample_rate=24_000)
    if choice == "openai":
        from flowkit_openai import OpenAILLMProvider, OpenAISTTProvider, OpenAITTSProvider

        model = os.environ.get("FLOWKIT_OPENAI_MODEL", "gpt-4o-mini")
        return _local()[0], OpenAISTTProvider(), OpenAILLMProvider(model), OpenAITTSProvider()
    raise ValueError(f"providers {choice!r}: choose 'local', 'openai' or 'demo'")


@fk.function_tool
async def get_time() -> str:
    """Tell the current time (UTC)."""
    return datetime.datetime.now(datetime.UTC).strftime("%H:%M UTC")


def build(job: fk.JobContext) -> fk.Graph:
    """Build one voice agent graph for ``job``."""
    vad_provider, stt_provider, llm_provider, tts_provider = providers(job)
    # SmolLM2-135M cannot use tools reliably (it speaks the call syntax), so the local
    # configuration offers none; a capable model gets the clock tool.
    agent_tools = [] if llm_provider is _local()[2] else [get_time]
    g = fk.Graph("voice-agent", description="a voice agent: listen, think, speak, barge-in")
    mic = g.add(room.RoomSource(sample_rate=48_000), name="mic")
    ears = g.add(vad.VAD(vad_provider), name="vad")
    asr = g.add(stt.STT(stt_provider), name="stt")
    turns = g.add(turn.TurnDetector(mode="vad", min_endpointing_delay=0.5), name="turns")
    brain = g.add(llm.LLM(llm_provider, instructions=INSTRUCTIONS, tools=agent_tools), name="llm")
    router = g.add(tools.ToolRouter(agent_tools), name="tools")
    voice = g.add(tts.TTS(tts_provider), name="tts")
    speaker = g.add(room.RoomSink(), name="speaker")
    barge = g.add(interrupt.Interruptions(min_interruption_duration=0.5), name="interruptions")
    states = g.add(state.AgentStates(), name="states")

    mic >> audio.Resample(16_000, channels=1) >> ears >> asr >> turns >> brain >> voice >> speaker
    ears.events >> [asr.speech, turns.vad, barge.vad]
    asr >> barge.transcripts
    asr >> g.add(room.TranscriptPublisher(), name="user_transcripts")
    turns >> states
    states >> g.add(room_state.AgentStatePublisher(), name="agent_state")  # lk.agent.state
    brain.tool_calls >> router >> brain.tool_results          # the tool loop
    barge >> [speaker.interrupt, voice.interrupt, brain.interrupt]  # barge-in
    speaker >> [brain.playout, barge.playout, states.playout]  # what was played, fed back
    return g
