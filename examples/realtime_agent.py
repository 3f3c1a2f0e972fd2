"""A speech-to-speech voice agent: one realtime model in place of STT, LLM and TTS.

LiveKit Agents' ``AgentSession(llm=openai.realtime.RealtimeModel(voice="alloy"))`` as a
graph. The room's audio is resampled to 24 kHz and streamed to the OpenAI Realtime API; the
model's speech plays in the room. The server detects the user's turns (server VAD) and
barge-ins: its ``speech_started`` flushes the reply still playing, and the sink's report of
what was played truncates the model's copy of the reply to what the user heard. The model
calls ``get_weather`` through a ToolRouter (a feedback loop), both sides' transcripts are
published to the room, and so is the agent's state (``lk.agent.state``: listening, thinking,
speaking), as the cascaded voice agent (graphs/voice_agent.py) publishes it.

    flowkit viz examples/realtime_agent.py
    OPENAI_API_KEY=sk-... flowkit start examples/realtime_agent.py

Settings: ``OPENAI_API_KEY`` and ``OPENAI_BASE_URL`` (any server speaking the GA Realtime
API), ``FLOWKIT_REALTIME_MODEL`` (``gpt-realtime``) and ``FLOWKIT_REALTIME_VOICE``
(``alloy``); ``job.extra["base_url"]`` / ``["api_key"]`` take precedence (the tests point
them at ``flowkit_openai.testing.realtime_server``). Nothing connects until a job runs, so
``flowkit validate`` and ``viz`` work without a key.
"""

from __future__ import annotations

import os

from flowkit_openai.realtime import RealtimeModel, ServerVAD

import flowkit as fk
from flowkit.nodes import audio, room, room_state, tools

INSTRUCTIONS = (
    "You are a friendly voice assistant. Keep answers to one or two short sentences. Use "
    "get_weather for questions about the weather."
)

FORECASTS = {"paris": "sunny, 24 degrees", "london": "light rain, 15 degrees"}


@fk.function_tool
async def get_weather(city: str) -> str:
    """Look up today's weather for a city.

    Args:
        city: The city's name, e.g. Paris.
    """
    forecast = FORECASTS.get(city.strip().lower())
    if forecast is None:
        raise fk.ToolError(f"I have no forecast for {city}.")
    return f"{forecast} in {city}"


def build(job: fk.JobContext) -> fk.Graph:
    extra = job.extra
    g = fk.Graph("realtime-agent", description="a speech-to-speech agent on a realtime model")
    mic = g.add(room.RoomSource(sample_rate=48_000), name="mic")
    model = g.add(RealtimeModel(
        os.environ.get("FLOWKIT_REALTIME_MODEL", "gpt-realtime"),
        voice=os.environ.get("FLOWKIT_REALTIME_VOICE", "alloy"),
        instructions=INSTRUCTIONS,
        tools=[get_weather],
        turn_detection=ServerVAD(silence_duration_ms=extra.get("silence_ms", 500)),
        base_url=extra.get("base_url"),
        api_key=extra.get("api_key"),
    ), name="model")
    router = g.add(tools.ToolRouter([get_weather]), name="tools")
    speaker = g.add(room.RoomSink(), name="speaker")
    published = g.add(room.TranscriptPublisher(), name="transcripts")
    shown = g.add(room_state.AgentStatePublisher(), name="agent_state")

    mic >> audio.Resample(24_000, channels=1) >> model >> speaker
    model.tool_calls >> router >> model.tool_results  # the tool loop
    model.interrupts >> speaker.interrupt  # barge-in: flush what is still queued
    speaker >> model.playout  # what was played: truncation to what was heard
    model.transcripts >> published  # the user, as the server transcribes them
    model.agent_transcripts >> published  # the agent, cut to what was heard
    model.agent_state >> shown  # lk.agent.state: listening, thinking, speaking
    return g
