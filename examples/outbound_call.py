"""An outbound call: find out who answered, then talk, navigate a menu, or leave a message.

A port of LiveKit's examples/telephony/amd.py. ``AnsweringMachineDetector`` listens to the
greeting and holds the user turns until its verdict:

- a person, or a phone menu: the turns go to the LLM and the conversation goes on (the LLM
  has ``send_dtmf`` for menus, and ``IVRWatch``, started by a menu verdict only, asks it to
  act when the menu stalls);
- a voicemail: the turns are dropped, the LLM leaves a message, and ``CallOutcome`` ends
  the job once the message has played;
- a mailbox that takes no message: ``CallOutcome`` ends the job at once.

The detector listens once the callee's call is answered (``ParticipantWatch`` reads their
``sip.callStatus``), so the graph can start while the phone still rings.

Until real models are given the LLM is scripted: it classifies a greeting by its words and
answers a person with one line. The stand-in STT describes each utterance ("[4.0 s of
speech]"), which the scripted classifier cannot place: give a real recogniser in
``job.extra["stt"]`` (and ``["llm"]``, ``["tts"]``) to hear real greetings.

    flowkit viz examples/outbound_call.py
    flowkit run examples/outbound_call.py --input greeting.wav --output reply.wav
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence

import flowkit as fk
from flowkit.messages import AMDCategory, AMDVerdict, Playout, PlayoutEvent
from flowkit.nodes import (
    amd,
    audio,
    interrupt,
    ivr,
    llm,
    participant,
    room,
    state,
    stt,
    tools,
    tts,
    turn,
    vad,
)
from flowkit.nodes.amd_classifier import DEFAULT_AMD_PROMPT
from flowkit.providers.chat import ChatMessage
from flowkit.providers.llm import ToolCallChunk
from flowkit.testing import FakeLLM, FakeReply
from flowkit.testing.demo import stand_ins
from flowkit.tools.dtmf import send_dtmf
from flowkit.vad import EnergyVAD

INSTRUCTIONS = (
    "You are calling a customer about their appointment tomorrow at 10. You may reach a "
    "phone menu or voicemail; the goal is to reach the customer. Keep answers short."
)
VOICEMAIL_MESSAGE = (
    "Hello, this is the clinic calling about your appointment tomorrow at 10. "
    "Please call us back."
)

# Words that give a greeting away, for the stand-in classifier (a real LLM reads meaning).
_CLUES = (
    (("mailbox is full", "not been set up", "not in service"), AMDCategory.MACHINE_UNAVAILABLE),
    (("leave a message", "after the tone", "can't take your call"), AMDCategory.MACHINE_VM),
    (("press", "say the name", "state your name"), AMDCategory.MACHINE_IVR),
)


def scripted_model() -> FakeLLM:
    """A stand-in LLM: classifies greetings by their words, answers a person in one line."""

    def reply(history: Sequence[ChatMessage]) -> str | FakeReply:
        if history[0].content == DEFAULT_AMD_PROMPT:
            greeting = history[-1].content.lower()
            category = next(
                (kind for words, kind in _CLUES if any(w in greeting for w in words)),
                AMDCategory.HUMAN if len(greeting.split()) <= 6 else AMDCategory.UNCERTAIN,
            )
            arguments = json.dumps({"category": category.value})
            return FakeReply(tool_calls=(ToolCallChunk("amd", "record_category", arguments),))
        if history[-1].role == "system" and "voicemail" in history[-1].content:
            return VOICEMAIL_MESSAGE
        return "Hi, this is the clinic calling about your appointment tomorrow at 10."

    return FakeLLM(reply, ttft=0.2, token_gap=0.02, name="scripted-outbound-llm")


class CallOutcome(fk.Node):
    """Ends the call when there is no one to talk to: after the voicemail, or a dead mailbox."""

    verdicts: fk.In[AMDVerdict] = fk.In(default=True, doc="the detector's verdict")
    playout: fk.In[Playout] = fk.In(required=False, doc="the speaker's reports")

    async def run(
        self, verdicts: AsyncIterator[AMDVerdict], playout: AsyncIterator[Playout]
    ) -> None:
        """End the job as the verdict says: at once, after the message has played, or never."""
        job = self.ctx.job
        verdict = await anext(aiter(verdicts), None)
        if verdict is None or verdict.category is AMDCategory.MACHINE_UNAVAILABLE:
            job.shutdown(f"no one to talk to: {verdict.category if verdict else 'no verdict'}")
            return
        if verdict.category is not AMDCategory.MACHINE_VM:
            return  # a person or a menu: the conversation goes on
        async for report in playout:  # the message is the only reply after a voicemail
            if report.event in (PlayoutEvent.FINISHED, PlayoutEvent.INTERRUPTED):
                job.shutdown("voicemail left")
                return


def build(job: fk.JobContext) -> fk.Graph:
    recogniser, model, voice_provider = stand_ins(job, scripted_model())
    g = fk.Graph("outbound-call", description="who answered, then talk or leave a message")
    mic = g.add(room.RoomSource(sample_rate=48_000), name="mic")
    ears = g.add(vad.VAD(EnergyVAD()), name="vad")
    asr = g.add(stt.STT(recogniser), name="stt")
    turns = g.add(turn.TurnDetector(mode="vad"), name="turns")
    detector = g.add(
        amd.AnsweringMachineDetector(
            model, voicemail_instructions=f"You reached voicemail. Say: {VOICEMAIL_MESSAGE}"
        ),
        name="amd",
    )
    menus = g.add(ivr.IVRWatch(), name="ivr")
    brain = g.add(llm.LLM(model, instructions=INSTRUCTIONS, tools=[send_dtmf]), name="llm")
    router = g.add(tools.ToolRouter([send_dtmf]), name="tools")
    states = g.add(state.AgentStates(), name="states")
    voice = g.add(tts.TTS(voice_provider), name="tts")
    speaker = g.add(room.RoomSink(), name="speaker")
    barge = g.add(interrupt.Interruptions(), name="interruptions")
    outcome = g.add(CallOutcome(), name="outcome")
    # The callee: the detector listens once their call is answered (sip.callStatus active),
    # so the graph may start while the phone still rings.
    callee = g.add(participant.ParticipantWatch(), name="callee")

    mic >> audio.Resample(16_000, channels=1) >> ears >> asr >> turns
    ears.events >> [asr.speech, turns.vad, barge.vad, detector.vad]
    asr >> [detector.transcripts, menus.transcripts, barge.transcripts]
    # The detector holds the turns until it knows who answered.
    turns >> detector.turns
    callee >> detector.participant
    detector.released >> [brain.turns, states.turns]
    for asks in (detector.requests, menus.requests):
        asks >> [brain.requests, states.requests]
    turns.user_state >> menus.user_state
    states >> [menus.agent_state, turns.agent_state]
    brain >> voice >> speaker
    brain.tool_calls >> router >> brain.tool_results
    barge >> [speaker.interrupt, voice.interrupt, brain.interrupt]
    speaker >> [brain.playout, barge.playout, states.playout, outcome.playout]
    detector >> [outcome, menus.verdicts]  # IVRWatch only once a menu answered
    return g

