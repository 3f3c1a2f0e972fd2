"""A weather agent: a voice agent with one tool, ``get_weather(city)``.

A port of LiveKit's examples/voice_agents/weather_agent.py: the user asks about the weather,
the LLM calls ``get_weather``, the ToolRouter runs it, and the LLM answers with its result.
When the user says goodbye, the LLM calls ``end_call``: it says goodbye, and ``EndCall``
hangs up once that has played (in LiveKit the room is deleted; every run ends the job).
The forecasts are a fixed table (no network). Until a real model is installed the LLM is
scripted as a function of the history: it calls the tool when asked about the weather in a
city, and answers with the tool's output once the result is back.

    flowkit viz examples/weather_agent.py
    flowkit run examples/weather_agent.py --input in.wav --output out.wav

Providers: ``job.extra["stt"]`` / ``["llm"]`` / ``["tts"]`` replace the stand-ins.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import flowkit as fk
from flowkit.nodes import audio, interrupt, llm, room, stt, tools, tts, turn, vad
from flowkit.nodes.end_call import EndCall
from flowkit.providers.chat import ChatMessage
from flowkit.providers.llm import ToolCallChunk
from flowkit.testing import FakeLLM, FakeReply
from flowkit.testing.demo import stand_ins
from flowkit.tools.end_call import end_call
from flowkit.vad import EnergyVAD

INSTRUCTIONS = (
    "You are a weather agent. Use get_weather to answer questions about the weather; "
    "keep answers to one sentence. When the user says goodbye, call end_call."
)

FORECASTS = {
    "paris": "sunny and 24 degrees",
    "london": "light rain and 15 degrees",
    "tokyo": "cloudy and 19 degrees",
}


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


_ASKED = re.compile(r"weather\b.*\bin ([A-Z][\w-]*(?: [A-Z][\w-]*)*)", re.I)
_BYE = re.compile(r"\b(bye|goodbye|that's all)\b", re.I)


def scripted_model() -> FakeLLM:
    """A stand-in LLM that behaves like a tool-calling model on this one task."""

    def reply(history: Sequence[ChatMessage]) -> str | FakeReply:
        last = history[-1]
        if last.role == "tool":
            if last.name == "end_call":  # the tool's answer: say goodbye
                return "Goodbye, and enjoy the weather!"
            return f"Today it is {last.content}."
        if _BYE.search(last.content):
            return FakeReply(tool_calls=(ToolCallChunk(f"call_{len(history)}", "end_call", "{}"),))
        asked = _ASKED.search(last.content)
        if asked is None:
            return "I am a weather agent: ask me about the weather in a city."
        arguments = json.dumps({"city": asked.group(1).strip()})
        call = ToolCallChunk(f"call_{len(history)}", "get_weather", arguments)
        return FakeReply(tool_calls=(call,))

    return FakeLLM(reply, ttft=0.2, token_gap=0.02, name="scripted-weather-llm")


def build(job: fk.JobContext) -> fk.Graph:
    recogniser, model, voice_provider = stand_ins(job, scripted_model())
    g = fk.Graph("weather-agent", description="a voice agent with a get_weather tool")
    mic = g.add(room.RoomSource(sample_rate=48_000), name="mic")
    ears = g.add(vad.VAD(EnergyVAD()), name="vad")
    asr = g.add(stt.STT(recogniser), name="stt")
    turns = g.add(turn.TurnDetector(mode="vad"), name="turns")
    brain = g.add(
        llm.LLM(model, instructions=INSTRUCTIONS, tools=[get_weather, end_call]), name="llm"
    )
    router = g.add(tools.ToolRouter([get_weather, end_call]), name="tools")
    hang_up = g.add(EndCall(end_call), name="end_call")
    voice = g.add(tts.TTS(voice_provider), name="tts")
    speaker = g.add(room.RoomSink(), name="speaker")
    barge = g.add(interrupt.Interruptions(), name="interruptions")

    mic >> audio.Resample(16_000, channels=1) >> ears >> asr >> turns >> brain >> voice >> speaker
    brain.tool_calls >> router >> brain.tool_results  # the tool loop
    ears.events >> [asr.speech, turns.vad, barge.vad]
    asr >> barge.transcripts
    barge >> [speaker.interrupt, voice.interrupt, brain.interrupt]
    speaker >> [brain.playout, barge.playout, hang_up.playout]
    router.results >> hang_up.results  # end_call's result: hang up after the goodbye
    return g
