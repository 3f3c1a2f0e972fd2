"""A clinic's front desk: one tool registers a new patient with a group of prebuilt tasks.

The TaskGroup counterpart of restaurant_agent.py, after LiveKit Agents' ``TaskGroup`` and
its prebuilt tasks (``livekit.agents.beta.workflows``). The front desk has one tool,
``register_patient``; it runs a ``fk.TaskGroup`` of three tasks from ``flowkit.tasks``, one
after another: ``GetNameTask`` (first and last name), ``GetDateOfBirthTask`` and
``GetPhoneNumberTask``. Each task takes the conversation over for as many turns as it needs:
it asks, records each reading with ``update_<value>`` (which checks it: a US phone number
without its area code is refused), reads it back, and ends with ``confirm_<value>`` once the
caller said yes, in a later turn. The call that ends one task is answered with the start of
the next; the one that ends the last is answered with what ``register_patient`` returns once
it has booked the visit with the group's results.

From the second task on the LLM also has ``revisit_tasks``: when the caller, asked for their
phone number, says their name was wrong, the phone task ends, the name task runs again, then
the phone task starts afresh. The date of birth is not asked again.

Until a real model is installed the LLM is scripted as a function of the history: the system
message says which agent or task it plays, the last message what just happened.

    flowkit viz examples/intake_agent.py

Providers: ``job.extra["stt"]`` / ``["llm"]`` / ``["tts"]`` replace the stand-ins.
"""

from __future__ import annotations

import calendar
import functools
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import flowkit as fk
from flowkit.nodes import audio, interrupt, llm, room, stt, tools, tts, turn, vad
from flowkit.providers.chat import ChatMessage
from flowkit.providers.llm import ToolCallChunk
from flowkit.tasks import (
    GetDateOfBirthResult,
    GetDateOfBirthTask,
    GetNameResult,
    GetNameTask,
    GetPhoneNumberResult,
    GetPhoneNumberTask,
)
from flowkit.testing import FakeLLM, FakeReply
from flowkit.testing.demo import stand_ins
from flowkit.vad import EnergyVAD

FRONT_DESK = (
    "You are the front desk of the Flowkit Clinic. Greet callers and answer briefly. When a "
    "caller wants to register as a new patient, call register_patient with the reason for "
    "their first visit; it collects their details and books the visit."
)
FIRST_FREE_SLOT = "Monday at 9:30 am"  # a stand-in for the clinic's calendar

# The name goes on the patient's record: first and last name, not the first alone (the
# default). A factory, as the group makes the task afresh each time it runs.
GetFullName = functools.partial(GetNameTask, last_name=True)


@dataclass
class Registration:
    """The patient being registered and their first visit, shared by the tools.

    Attributes:
        name: First and last name, once confirmed.
        date_of_birth: As ISO 8601, ``YYYY-MM-DD``.
        phone: In E.164 form, ``+16502530000``.
        visit: What the first visit is for, and when.
        steps: The ids of the group's tasks in the order they completed (a task run again
            after ``revisit_tasks`` shows twice).
    """

    name: str | None = None
    date_of_birth: str | None = None
    phone: str | None = None
    visit: str | None = None
    steps: list[str] = field(default_factory=list)


def intake_group(registration: Registration) -> fk.TaskGroup:
    """The tasks that collect a new patient's details, in the order they are asked."""

    async def completed(event: fk.TaskCompletedEvent) -> None:
        # Kept as they come: a call dropped halfway still leaves what was confirmed.
        registration.steps.append(event.task_id)

    return (
        fk.TaskGroup(on_task_completed=completed)
        .add(GetFullName, id="name", description="the patient's first and last name")
        .add(GetDateOfBirthTask, id="dob", description="the patient's date of birth")
        .add(GetPhoneNumberTask, id="phone", description="the patient's phone number")
    )


@fk.function_tool
async def register_patient(ctx: fk.RunContext[Registration], reason: str) -> str:
    """Register a new patient and book their first visit.

    Args:
        reason: What the first visit is for, e.g. "a check-up".
    """
    # The conversation moves to the group's tasks until each has its value; then this goes on.
    try:
        results = (await ctx.run_task(intake_group(ctx.userdata))).task_results
    except fk.ToolError as declined:  # the caller would not give one of the values
        return f"not registered: {declined.message}"
    name: GetNameResult = results["name"]
    born: GetDateOfBirthResult = results["dob"]
    phone: GetPhoneNumberResult = results["phone"]
    # Heard while the visit is booked (a real one waits on the clinic's calendar).
    await ctx.say("One moment while I book that.")
    record = ctx.userdata
    record.name = f"{name.first_name} {name.last_name}"
    record.date_of_birth = born.date_of_birth.isoformat()
    record.phone = phone.phone_number
    record.visit = f"{reason} on {FIRST_FREE_SLOT}"
    return (
        f"registered {record.name}, born {record.date_of_birth}, phone {record.phone}; "
        f"booked {record.visit}"
    )


# --------------------------------------------------------------------------- the stand-in LLM

_NAME = re.compile(r"(?i:\b(?:it's|it is|my name is|i'm|i am))\s+([A-Z][\w'-]+)\s+([A-Z][\w'-]+)")
_MONTHS = "|".join(calendar.month_name[1:])
_DATE = re.compile(rf"\b({_MONTHS})\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b", re.I)
_PHONE = re.compile(r"\+?\d[\d ()-]{5,}\d")
_YES = re.compile(r"^\s*(?:yes|yeah|yep|correct|that's right)\b", re.I)
_WRONG = re.compile(r"\b(?:wrong|mistake|actually)\b", re.I)
_READ_BACK = re.compile(r"^Recorded the [\w ]+?: (.+?)(?: \([^()]*\))?\. Read it back")
_REASON = re.compile(r"\bfor (an? [\w -]+?)\s*[.!?]?$", re.I)


def _parse_name(text: str) -> dict[str, str] | None:
    found = _NAME.search(text)
    return None if found is None else {"first_name": found[1], "last_name": found[2]}


def _parse_date(text: str) -> dict[str, str] | None:
    found = _DATE.search(text)
    if found is None:
        return None
    month = [m.lower() for m in calendar.month_name].index(found[1].lower())
    # The model turns the spoken date into the ISO form the tool asks for.
    return {"date_of_birth": f"{int(found[3]):04d}-{month:02d}-{int(found[2]):02d}"}


def _parse_phone(text: str) -> dict[str, str] | None:
    found = _PHONE.search(text)
    return None if found is None else {"phone_number": found[0]}


def _ordinal_date(read_back: str) -> str:
    """``March 3, 1985`` as ``March 3rd, 1985``: the tool asks for the day as an ordinal."""
    month, day, year = read_back.replace(",", "").split()
    suffix = "th" if int(day) in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(
        int(day) % 10, "th"
    )
    return f"{month} {day}{suffix}, {year}"


def _digit_by_digit(read_back: str) -> str:
    """``(650) 253-0000`` as ``6 5 0, 2 5 3, 0 0 0 0``: digit by digit, group by group."""
    return ", ".join(" ".join(group) for group in re.findall(r"\d+", read_back))


@dataclass(frozen=True)
class _Step:
    """How the stand-in LLM plays one of the group's tasks."""

    id: str  # the task's id in the group, as revisit_tasks takes it
    slug: str  # the value as the task's tools name it: update_<slug>
    mentioned: re.Pattern[str]  # how the caller refers to the value
    parse: Callable[[str], dict[str, str] | None]  # the update tool's arguments, if said
    question: str
    retry: str  # after the update tool refused a reading
    say_back: Callable[[str], str] = str


_STEPS = (
    _Step(
        "name", "name", re.compile(r"\bname\b", re.I), _parse_name,
        "Happy to help. What is your first and last name?",
        "Sorry, I need both your first and last name. What are they?",
    ),
    _Step(
        "dob", "date_of_birth", re.compile(r"\b(?:date of birth|birthday)\b", re.I), _parse_date,
        "Thank you. What is your date of birth?",
        "Sorry, that date does not work. What is your date of birth, with the year?",
        _ordinal_date,
    ),
    _Step(
        "phone", "phone_number", re.compile(r"\bphone\b", re.I), _parse_phone,
        "And what phone number can we reach you at?",
        "Sorry, that number seems incomplete. Could you say it again, with the area code?",
        _digit_by_digit,
    ),
)


def scripted_model() -> FakeLLM:
    """A stand-in LLM that plays the front desk or whichever task the system message gives."""
    # Each task's instructions, as the LLM node sends them when the task runs.
    roles = {
        GetFullName().instructions: _STEPS[0],
        GetDateOfBirthTask().instructions: _STEPS[1],
        GetPhoneNumberTask().instructions: _STEPS[2],
    }

    def call(name: str, history: Sequence[ChatMessage], **arguments: Any) -> FakeReply:
        chunk = ToolCallChunk(f"call_{len(history)}", name, json.dumps(arguments))
        return FakeReply(tool_calls=(chunk,))

    def play_step(step: _Step, history: Sequence[ChatMessage]) -> str | FakeReply:
        last = history[-1]
        said = next((m.content for m in reversed(history) if m.role == "user"), "")
        if last.role == "tool":
            if last.name == f"update_{step.slug}":
                read_back = _READ_BACK.match(last.content)
                if read_back is None:  # the tool refused the reading
                    return step.retry
                return f"I have {step.say_back(read_back[1])}. Is that right?"
            if last.name == f"confirm_{step.slug}":  # refused: the caller has not said yes
                return "Before I go on: is that right?"
            # The task has just started: its instructions say to record a value the caller
            # gave already (as after revisit_tasks), or else to ask for it.
            value = step.parse(said)
            if value is not None:
                return call(f"update_{step.slug}", history, **value)
            return step.question
        earlier = [s.id for s in _STEPS[: _STEPS.index(step)] if s.mentioned.search(said)]
        if earlier and _WRONG.search(said):  # an answer of an earlier task to change
            return call("revisit_tasks", history, task_ids=earlier)
        if _YES.search(said):
            return call(f"confirm_{step.slug}", history)
        value = step.parse(said)
        if value is not None:  # a first reading, or a correction of the one read back
            return call(f"update_{step.slug}", history, **value)
        return f"Sorry, I didn't catch that. {step.question}"

    def reply(history: Sequence[ChatMessage]) -> str | FakeReply:
        step = roles.get(history[0].content)
        if step is not None:
            return play_step(step, history)
        last = history[-1]
        if last.role == "tool":  # register_patient's answer, once the group has ended
            if last.content.startswith("registered"):
                return f"You're all set: {last.content}. See you then!"
            return f"I could not register you: {last.content}."
        if re.search(r"\b(register|new patient)\b", last.content, re.I):
            reason = _REASON.search(last.content)
            return call("register_patient", history, reason=reason[1] if reason else "a visit")
        return "Flowkit Clinic, front desk. Would you like to register as a new patient?"

    return FakeLLM(reply, ttft=0.2, token_gap=0.02, name="scripted-intake-llm")


def build(job: fk.JobContext) -> fk.Graph:
    """The front-desk agent: a voice pipeline whose tool loop runs the intake group."""
    recogniser, model, voice_provider = stand_ins(job, scripted_model())
    registration = job.extra.setdefault("registration", Registration())  # read it after
    g = fk.Graph("intake-agent", description="a front desk that registers patients, TaskGroup")
    mic = g.add(room.RoomSource(sample_rate=48_000), name="mic")
    ears = g.add(vad.VAD(EnergyVAD()), name="vad")
    asr = g.add(stt.STT(recogniser), name="stt")
    turns = g.add(turn.TurnDetector(mode="vad"), name="turns")
    brain = g.add(llm.LLM(model, instructions=FRONT_DESK, tools=[register_patient]), name="llm")
    router = g.add(tools.ToolRouter([register_patient], userdata=registration), name="tools")
    voice = g.add(tts.TTS(voice_provider), name="tts")
    speaker = g.add(room.RoomSink(), name="speaker")
    barge = g.add(interrupt.Interruptions(), name="interruptions")

    mic >> audio.Resample(16_000, channels=1) >> ears >> asr >> turns >> brain >> voice >> speaker
    brain.tool_calls >> router >> brain.tool_results  # calls, results and the tasks' turns
    router.speech >> brain.tool_speech  # what a tool says as it runs (ctx.say)
    ears.events >> [asr.speech, turns.vad, barge.vad]
    asr >> barge.transcripts
    barge >> [speaker.interrupt, voice.interrupt, brain.interrupt]
    speaker >> [brain.playout, barge.playout, router.playout]  # router: ctx.wait_for_playout
    return g
