"""A voice agent: the whole pipeline, from the room's audio to the agent's voice.

RoomSource → Resample → VAD → STT → TurnDetector → LLM (⇄ ToolRouter) → TTS → RoomSink, with
barge-in (Interruptions), preemptive generation (LLM and TTS), agent states, transcripts of
both sides, typed chat (lk.chat) and telephone keypad entries (DTMF) as user turns, where the
model can see, the participant's camera (VideoInput → VideoSampler → ImageEncoder → LLM), and,
where an audio turn model is installed, a TurnPredictor that tells the TurnDetector whether a
pause sounds like the end of the turn.

Providers, chosen by ``job.extra["providers"]`` or the ``FLOWKIT_PROVIDERS`` environment
variable:

- ``local`` (the default): local models from the flowkit-local library, offline: Silero VAD,
  Whisper tiny.en, SmolLM2-135M on llama.cpp, Piper, and Smart Turn (an audio turn model:
  a pause that sounds mid-sentence does not end the turn) when its wheel is installed
  (``pip install --no-deps pipecat-ai==1.14.0``). Each model loads once per process.
- ``openai``: any OpenAI-compatible endpoint for STT, LLM and TTS (flowkit-openai), with
  ``OPENAI_BASE_URL``, ``OPENAI_API_KEY`` and ``FLOWKIT_OPENAI_MODEL`` (default
  ``gpt-4o-mini``, which sees images); voice activity stays local (Silero).
- ``demo``: stand-ins with no model at all: EnergyVAD, a recogniser that describes each
  utterance instead of transcribing it, a model that repeats what it heard (and says the size
  of what it was shown), a TTS that speaks a tone. Every stage still runs and is measured.

SmolLM2 reads text only, so the local graph has no camera nodes.

``FLOWKIT_NOISE_SUPPRESSION=1`` (or ``job.extra["noise_suppression"]``) puts WebRTC's noise
suppressor (``AudioProcessing``) between the resampler and the VAD.

``prewarm()`` loads the models ``FLOWKIT_PROVIDERS`` names before a worker takes its first
job (``flowkit start`` and ``flowkit dev`` call it before registering), so no caller waits
for them.
"""

from __future__ import annotations

import datetime
import functools
import logging
import os
from typing import Any, NamedTuple

import flowkit as fk
from flowkit.nodes import (
    audio,
    audio_processing,
    dtmf,
    interrupt,
    llm,
    room,
    room_state,
    state,
    stt,
    tools,
    tts,
    turn,
    turn_prediction,
    vad,
    video,
)
from flowkit.testing import FakeTTS
from flowkit.testing.demo import DescribingSTT, echo_llm
from flowkit.vad import EnergyVAD

INSTRUCTIONS = (
    "You are a helpful voice assistant. Answer in one or two short sentences: they are "
    "spoken, not read."
)


class Providers(NamedTuple):
    """The providers a job runs on, and whether its model can use tools and see images."""

    vad: Any
    stt: Any
    llm: Any
    tts: Any
    tools: bool
    vision: bool = False
    turn_model: Any = None  # an audio turn model (Smart Turn), when it is installed


def _flowkit_local() -> Any:
    try:
        import flowkit_local
    except ImportError as exc:
        raise RuntimeError(
            f"the local providers need the flowkit-local library ({exc}); install it with "
            "`pip install -e nodes/flowkit-local`, or run with FLOWKIT_PROVIDERS=demo"
        ) from exc
    return flowkit_local


# Cached: graphs are built per job, models should load once per process.
@functools.cache
def _silero() -> Any:
    # batch=True: the jobs of a worker process share one model and its windows go through
    # it together (a quarter of the CPU per window at dozens of jobs; docs/performance.md).
    # A lone job never waits for a batch: it is always full.
    return _flowkit_local().SileroVADProvider(batch=True)


@functools.cache
def _smart_turn() -> Any:
    """Smart Turn v3, loaded; ``None`` (VAD-only endpointing) when its wheel is missing."""
    try:
        model = _flowkit_local().SmartTurnModel()
        model.load()
    except (FileNotFoundError, RuntimeError) as exc:
        logging.getLogger(__name__).warning(
            "no audio turn model, turns end after a fixed silence: %s", exc
        )
        return None
    return model


@functools.cache
def _local() -> Providers:
    local = _flowkit_local()
    stt_, llm_, tts_ = (
        local.WhisperSTTProvider(),
        local.LlamaLLMProvider(max_tokens=60),
        local.PiperTTSProvider(),
    )
    for provider in (stt_, llm_, tts_):
        provider.load()  # now, not inside the first turn's latency
    # SmolLM2-135M cannot use tools reliably (it speaks the call syntax): offer it none.
    return Providers(_silero(), stt_, llm_, tts_, tools=False, turn_model=_smart_turn())


def prewarm() -> None:
    """Load the models of the providers the environment chooses, before the first job."""
    providers(fk.JobContext.local())


def providers(job: fk.JobContext) -> Providers:
    """The providers this job runs on (see the module docstring)."""
    choice = str(job.extra.get("providers") or os.environ.get("FLOWKIT_PROVIDERS") or "local")
    if choice == "local":
        return _local()
    if choice == "demo":
        return Providers(
            EnergyVAD(), DescribingSTT(), echo_llm(), FakeTTS(sample_rate=24_000), tools=True,
            vision=True,
        )
    if choice == "openai":
        from flowkit_openai import OpenAILLMProvider, OpenAISTTProvider, OpenAITTSProvider

        model = os.environ.get("FLOWKIT_OPENAI_MODEL", "gpt-4o-mini")
        return Providers(
            _silero(), OpenAISTTProvider(), OpenAILLMProvider(model), OpenAITTSProvider(),
            tools=True, vision=True, turn_model=_smart_turn(),
        )
    raise ValueError(f"providers {choice!r}: choose 'local', 'openai' or 'demo'")


@fk.function_tool
async def get_time() -> str:
    """Tell the current time (UTC)."""
    return datetime.datetime.now(datetime.UTC).strftime("%H:%M UTC")


def _noise_suppression(job: fk.JobContext) -> bool:
    """Whether the job asks for noise suppression (``job.extra`` or the environment)."""
    flag = job.extra.get("noise_suppression", os.environ.get("FLOWKIT_NOISE_SUPPRESSION", ""))
    return str(flag).strip().lower() in ("1", "true", "yes", "on")


def build(job: fk.JobContext) -> fk.Graph:
    """Build one voice agent graph for ``job``."""
    chosen = providers(job)
    agent_tools = [get_time] if chosen.tools else []
    g = fk.Graph("voice-agent", description="a voice agent: listen, think, speak, barge-in")
    mic = g.add(room.RoomSource(sample_rate=48_000), name="mic")
    ears = g.add(vad.VAD(chosen.vad), name="vad")
    asr = g.add(stt.STT(chosen.stt), name="stt")
    # With a turn model, a pause that sounds mid-sentence waits up to 3 s (LiveKit Agents'
    # default) before the turn ends; one that sounds finished, 0.5 s.
    turns = g.add(
        turn.TurnDetector(mode="vad", min_endpointing_delay=0.5, max_endpointing_delay=3.0),
        name="turns",
    )
    brain = g.add(llm.LLM(chosen.llm, instructions=INSTRUCTIONS, tools=agent_tools), name="llm")
    router = g.add(tools.ToolRouter(agent_tools), name="tools")
    voice = g.add(tts.TTS(chosen.tts), name="tts")
    speaker = g.add(room.RoomSink(), name="speaker")
    barge = g.add(interrupt.Interruptions(min_interruption_duration=0.5), name="interruptions")
    states = g.add(state.AgentStates(), name="states")

    # LQ: half the resampler's hold-back of HQ (11 ms against 21 on average), so the VAD hears
    # the end of speech sooner; flat to 6 kHz with aliases > 100 dB down, plenty for the VAD
    # and the recogniser (see Resample's docstring).
    hear = audio.Resample(16_000, channels=1, quality="LQ")
    if _noise_suppression(job):
        # WebRTC's noise suppressor at 16 kHz, before anything listens (0.13 CPU s per
        # session-minute: opt-in, see docs/voice-pipeline.md).
        mic >> hear >> g.add(audio_processing.AudioProcessing(), name="denoise") >> ears
    else:
        mic >> hear >> ears
    ears >> asr >> turns >> brain >> voice >> speaker
    ears.events >> [asr.speech, turns.vad, barge.vad]
    if chosen.turn_model is not None:
        # Does the voice say the turn is over? Asked at each end of speech, on a worker thread.
        predictor = g.add(turn_prediction.TurnPredictor(chosen.turn_model), name="turn_model")
        ears >> predictor
        ears.events >> predictor.vad
        predictor >> turns.predictions
    asr >> barge.transcripts
    asr >> g.add(room.TranscriptPublisher(), name="user_transcripts")
    turns >> states
    # The user is away after 15 s in which neither side spoke (not during a long reply).
    states >> turns.agent_state
    # Preemptive generation: the LLM starts on the text the turn would commit with while the
    # endpointing delay runs, and keeps the request only if the turn commits unchanged.
    turns.tentative >> brain.tentative
    # What a tool in the background reports waits while the user speaks (ctx.update).
    turns.user_state >> brain.user_state
    # Preemptive TTS: the early answer's first sentence is synthesised during the delay too,
    # and played only if the committed reply starts with it.
    brain.prefetch >> voice.prefetch
    states >> g.add(room_state.AgentStatePublisher(), name="agent_state")  # lk.agent.state
    brain.tool_calls >> router >> brain.tool_results          # the tool loop
    router.speech >> brain.tool_speech  # what a tool says while it runs (ctx.say)
    barge >> [speaker.interrupt, voice.interrupt, brain.interrupt]  # barge-in
    # What was played, fed back (the router: for tools that wait for it, ctx.wait_for_playout).
    speaker >> [brain.playout, barge.playout, states.playout, router.playout]
    if chosen.vision:
        # Sight: the camera's newest frame, kept about once a second while the user speaks,
        # goes with their turn (a room without a camera leaves the agent blind, no error).
        eyes = g.add(video.VideoInput(), name="camera")
        sampler = g.add(video.VideoSampler(), name="sampler")
        eyes >> sampler >> g.add(video.ImageEncoder(), name="images") >> brain.images
        turns.user_state >> sampler.user_state
    # Typed and keyed turns: a chat message (lk.chat) or a keypad entry (a caller on a SIP
    # line; ended by '#' or 5 s without a key) is a user turn too, and barges in as speech
    # does. Where the room I/O has neither (an offline run without --dtmf), they end at once.
    chat = g.add(room_state.ChatInput(), name="chat")
    keypad = g.add(dtmf.DTMFInput(), name="keypad")
    for typed in (chat, keypad):
        typed.turns >> [brain.turns, states.turns]
        typed.interrupts >> [speaker.interrupt, voice.interrupt, brain.interrupt]
    return g
