"""A travel agent whose flight booking goes on in the background while the caller talks.

A port of the idea of LiveKit's examples/voice_agents/async_tool_agent.py. ``book_flight``
takes a while (a search, then the booking), so it reports as it goes with ``ctx.update``:
the first update answers the call at once ("Searching flights to Tokyo"), the agent says
so, and the conversation goes on (ask about the weather meanwhile); the later update and
the booking's result are answered when the agent is idle, or by the answer to whatever the
caller says first. ``on_duplicate="reject"`` refuses a second booking while one runs, and
``cancellable=True`` with the ``cancel_background`` tool lets the caller call it off.

Until a real model is installed the LLM is scripted as a function of the history (which
tool to call, how to word a tool's result), and the airline is a timer.

    flowkit viz examples/async_tool_agent.py
    flowkit run examples/async_tool_agent.py --input in.wav --output out.wav

Providers: ``job.extra["stt"]`` / ``["llm"]`` / ``["tts"]`` replace the stand-ins;
``job.extra["search_seconds"]`` / ``["booking_seconds"]`` how long the airline takes
(4 and 6 by default).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence

import flowkit as fk
from flowkit.nodes import audio, interrupt, llm, room, stt, tools, tts, turn, vad
from flowkit.providers.chat import ChatMessage
from flowkit.providers.llm import ToolCallChunk
from flowkit.testing import FakeLLM, FakeReply
from flowkit.testing.demo import stand_ins
from flowkit.tools.cancel_background import cancel_background
from flowkit.vad import EnergyVAD

INSTRUCTIONS = (
    "You are a travel agent. Book flights with book_flight: it works in the background and "
    "reports as it goes, so keep talking with the caller meanwhile and tell them each "
    "report. If they call the booking off, use cancel_background."
)


class Airline:
    """How long the stand-in airline takes, in seconds."""

    def __init__(self, search: float, booking: float) -> None:
        self.search, self.booking = search, booking


def book_flight_tool(airline: Airline) -> fk.FunctionTool:
    """The ``book_flight`` tool, against ``airline``."""

    @fk.function_tool(on_duplicate="reject", cancellable=True)
    async def book_flight(ctx: fk.RunContext, city: str) -> str:
        """Book the cheapest flight to a city. Takes a minute; reports as it goes.

        Args:
            city: Where to, e.g. Tokyo.
        """
        await ctx.update(f"Searching flights to {city}; this takes a minute.")
        await asyncio.sleep(airline.search)
        await ctx.update(f"Found 3 flights to {city}; booking the cheapest, 289 dollars.")
        await asyncio.sleep(airline.booking)
        return f"Booked on the 9:40 flight to {city}, confirmation DL289."

    return book_flight


_BOOK = re.compile(r"\bflight\b.*\bto ([A-Z][\w-]*)", re.I)
_CANCEL = re.compile(r"\b(cancel|call it off|never ?mind)\b", re.I)


def scripted_model() -> FakeLLM:
    """A stand-in LLM that behaves like a tool-calling model on this one task."""

    def reply(history: Sequence[ChatMessage]) -> str | FakeReply:
        last = history[-1]
        if last.role == "tool":
            return _spoken(last.name, last.content)
        if _CANCEL.search(last.content):
            arguments = json.dumps({"tool": "book_flight"})
            return FakeReply(tool_calls=(
                ToolCallChunk(f"call_{len(history)}", "cancel_background", arguments),
            ))
        asked = _BOOK.search(last.content)
        if asked is not None:
            arguments = json.dumps({"city": asked.group(1)})
            return FakeReply(tool_calls=(
                ToolCallChunk(f"call_{len(history)}", "book_flight", arguments),
            ))
        return "I'm here. Anything else while I work on your flight?"

    return FakeLLM(reply, ttft=0.2, token_gap=0.02, name="scripted-travel-llm")


def _spoken(tool: str | None, result: str) -> str:
    """How the stand-in words a tool's result (a real model says it in its own words)."""
    if tool == "cancel_background":
        return "Okay, I've called the booking off." if result.startswith("Stopped") else (
            "There is no booking under way to call off."
        )
    if "is already running in the background" in result:
        return "I'm already booking one; it's under way."
    for lead in ("which is still running in the background: ", "has finished: ", "failed: "):
        if lead in result:
            return result.split(lead, 1)[1]
    return result.split("\n")[0]  # the first update: what the tool is doing


def build(job: fk.JobContext) -> fk.Graph:
    recogniser, model, voice_provider = stand_ins(job, scripted_model())
    airline = Airline(float(job.extra.get("search_seconds", 4.0)),
                      float(job.extra.get("booking_seconds", 6.0)))
    agent_tools = [book_flight_tool(airline), cancel_background]
    g = fk.Graph("async-tool-agent", description="a flight booking that runs in the background")
    mic = g.add(room.RoomSource(sample_rate=48_000), name="mic")
    ears = g.add(vad.VAD(EnergyVAD()), name="vad")
    asr = g.add(stt.STT(recogniser), name="stt")
    turns = g.add(turn.TurnDetector(mode="vad"), name="turns")
    brain = g.add(llm.LLM(model, instructions=INSTRUCTIONS, tools=agent_tools), name="llm")
    router = g.add(tools.ToolRouter(agent_tools), name="tools")
    voice = g.add(tts.TTS(voice_provider), name="tts")
    speaker = g.add(room.RoomSink(), name="speaker")
    barge = g.add(interrupt.Interruptions(), name="interruptions")

    mic >> audio.Resample(16_000, channels=1) >> ears >> asr >> turns >> brain >> voice >> speaker
    brain.tool_calls >> router >> brain.tool_results  # the tool loop
    ears.events >> [asr.speech, turns.vad, barge.vad]
    asr >> barge.transcripts
    barge >> [speaker.interrupt, voice.interrupt, brain.interrupt]
    # The reports wait for the agent's last reply to be heard, and for the caller to stop.
    speaker >> [brain.playout, barge.playout]
    turns.user_state >> brain.user_state
    return g
