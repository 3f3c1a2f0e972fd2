"""A restaurant agent: a greeter that hands the caller over to a reservation agent, and back.

A port of the handoff idea of LiveKit's examples/voice_agents/restaurant_agent.py. Each agent
is an object with ``instructions`` and ``tools``; a tool that returns another agent hands the
conversation over: the LLM node swaps in the new instructions and tools, the ToolRouter the
new tools, and the chat history carries over, so the reservation agent knows what the caller
already said. The booking lives in the router's ``userdata`` (what ``RunContext.userdata``
gives the tools), shared by both agents.

Before it books, ``book_table`` runs a task (LiveKit's ``AgentTask``): ``GetPhoneNumber``
asks for the number to text the confirmation to, for as many turns as it takes, and hands
it back to the tool, which then books and answers.

Until a real model is installed the LLM is scripted as a function of the history: it reads
the system message to know which agent it is playing.

    flowkit viz examples/restaurant_agent.py

Providers: ``job.extra["stt"]`` / ``["llm"]`` / ``["tts"]`` replace the stand-ins.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import flowkit as fk
from flowkit.nodes import audio, interrupt, llm, room, stt, tools, tts, turn, vad
from flowkit.providers.chat import ChatMessage
from flowkit.providers.llm import ToolCallChunk
from flowkit.testing import FakeLLM, FakeReply
from flowkit.testing.demo import stand_ins
from flowkit.vad import EnergyVAD


@dataclass(frozen=True)
class Agent:
    """An agent: what it is told and what it can do."""

    name: str
    instructions: str
    tools: tuple[fk.FunctionTool, ...] = ()


@dataclass
class Booking:
    """The reservation being taken, shared by every agent's tools."""

    time: str | None = None
    party_size: int | None = None
    phone: str | None = None
    confirmed: bool = False
    notes: list[str] = field(default_factory=list)


@fk.function_tool
async def to_reservations() -> Agent:
    """Transfer the caller to the reservation agent, to book a table."""
    return RESERVATIONS


@fk.function_tool
async def to_greeter() -> Agent:
    """Transfer the caller back to the greeter, for anything but a booking."""
    return GREETER


class GetPhoneNumber(fk.AgentTask[str]):
    """A task: ask for the caller's phone number until a whole one is given."""

    instructions = (
        "Ask for the caller's phone number, to text them the booking's confirmation. When "
        "they give it, call phone_number_given; if it is not a whole number, ask again."
    )

    @fk.function_tool
    async def phone_number_given(self, phone: str) -> None:
        """The caller gave their phone number.

        Args:
            phone: The number as the caller said it, digits and spaces.
        """
        if sum(c.isdigit() for c in phone) < 7:
            # The task goes on: the LLM reads the error and asks again.
            raise fk.ToolError(f"{phone!r} is not a whole phone number; ask for all of it.")
        self.complete(phone)


@fk.function_tool
async def book_table(ctx: fk.RunContext[Booking], time: str, party_size: int) -> str:
    """Book a table.

    Args:
        time: When, e.g. "7 pm".
        party_size: How many people.
    """
    if not 1 <= party_size <= 12:
        raise fk.ToolError("We take bookings for 1 to 12 people.")
    # The conversation moves to the task until it has the number; then this goes on.
    phone = await ctx.run_task(GetPhoneNumber())
    # Heard while the booking is made (a real one waits on a reservation system).
    await ctx.say("One moment while I book that.")
    ctx.userdata.time, ctx.userdata.party_size = time, party_size
    ctx.userdata.phone, ctx.userdata.confirmed = phone, True
    return f"booked a table for {party_size} at {time}; the confirmation goes to {phone}"


GREETER = Agent(
    "greeter",
    "You are the greeter of Flowkit Bistro. Welcome callers, answer questions about the "
    "menu, and transfer them to reservations when they want to book a table.",
    (to_reservations,),
)
RESERVATIONS = Agent(
    "reservations",
    "You take table reservations for Flowkit Bistro: ask for the time and the party size, "
    "then book the table. Transfer the caller back to the greeter for anything else.",
    (book_table, to_greeter),
)

_PARTY = re.compile(r"(\d{1,2}(?::\d\d)? ?[ap]m)\b.*?\b(\d+) (?:people|persons|guests)", re.I)
_PHONE = re.compile(r"\d[\d ]*\d")


def scripted_model() -> FakeLLM:
    """A stand-in LLM that plays whichever agent the system message describes."""

    def call(name: str, history: Sequence[ChatMessage], **arguments: Any) -> FakeReply:
        chunk = ToolCallChunk(f"call_{len(history)}", name, json.dumps(arguments))
        return FakeReply(tool_calls=(chunk,))

    def reply(history: Sequence[ChatMessage]) -> str | FakeReply:
        roles = {RESERVATIONS.instructions: "reservations", GetPhoneNumber.instructions: "phone"}
        role = roles.get(history[0].content, "greeter")
        last = history[-1]
        if role == "phone":
            number = _PHONE.search(last.content) if last.role == "user" else None
            if number is not None:
                return call("phone_number_given", history, phone=number[0])
            if last.role == "tool" and last.name == "phone_number_given":
                return "Sorry, I need the whole number. What is it?"
            return "What phone number should we text the confirmation to?"
        if role == "greeter":
            if last.role == "tool":
                return "Welcome back to the greeter. What else can I do for you?"
            if re.search(r"\b(book|reserv\w*|table)\b", last.content, re.I):
                return call("to_reservations", history)
            return "Welcome to Flowkit Bistro! Would you like to book a table?"
        if last.role == "tool":
            if last.name == "phone_number_given":  # answered with what book_table returned
                return f"Done: I have {last.content}. See you then!"
            return "Reservations here. For what time, and how many people?"
        party = _PARTY.search(last.content)
        if party is not None:
            return call("book_table", history, time=party[1], party_size=int(party[2]))
        if re.search(r"\b(menu|something else)\b", last.content, re.I):
            return call("to_greeter", history)
        return "For what time, and how many people?"

    return FakeLLM(reply, ttft=0.2, token_gap=0.02, name="scripted-restaurant-llm")


def build(job: fk.JobContext) -> fk.Graph:
    recogniser, model, voice_provider = stand_ins(job, scripted_model())
    booking = job.extra.setdefault("booking", Booking())  # the caller can read it after
    g = fk.Graph("restaurant-agent", description="a greeter and a reservation agent, handoff")
    mic = g.add(room.RoomSource(sample_rate=48_000), name="mic")
    ears = g.add(vad.VAD(EnergyVAD()), name="vad")
    asr = g.add(stt.STT(recogniser), name="stt")
    turns = g.add(turn.TurnDetector(mode="vad"), name="turns")
    brain = g.add(llm.LLM(model, agent=GREETER), name="llm")
    router = g.add(tools.ToolRouter(agent=GREETER, userdata=booking), name="tools")
    voice = g.add(tts.TTS(voice_provider), name="tts")
    speaker = g.add(room.RoomSink(), name="speaker")
    barge = g.add(interrupt.Interruptions(), name="interruptions")

    mic >> audio.Resample(16_000, channels=1) >> ears >> asr >> turns >> brain >> voice >> speaker
    brain.tool_calls >> router >> brain.tool_results  # calls, results and handoffs
    router.speech >> brain.tool_speech  # what a tool says as it runs (ctx.say)
    ears.events >> [asr.speech, turns.vad, barge.vad]
    asr >> barge.transcripts
    barge >> [speaker.interrupt, voice.interrupt, brain.interrupt]
    speaker >> [brain.playout, barge.playout, router.playout]  # router: ctx.wait_for_playout
    return g
