"""Warm transfer: the agent puts the caller on hold, briefs a human agent, hands the call over.

A port of LiveKit's examples/warm-transfer. The caller's agent has a ``transfer_to_human``
tool (:func:`flowkit.livekit.warm_transfer.warm_transfer_tool`). When the caller asks for a
person, the model tells them they will be on hold and calls the tool with a summary of the
call. Then (see :mod:`flowkit.livekit.warm_transfer`):

- the caller hears hold music and the agent hears nobody;
- the agent dials the human agent into a consultation room and runs :func:`consultation`
  there, a second voice graph on the same providers, which tells the human agent what the
  call is about and answers their questions;
- when the human agent agrees, its model calls ``connect_to_caller``: the human agent is
  moved into the caller's room, and the agent stays silent until one of them hangs up.
  When they decline (or voicemail answers) the caller is back with the agent, which tells
  them why.

Set the human agent's number and the outbound trunk that reaches it::

    HUMAN_AGENT_NUMBER=+15105550100 LIVEKIT_SIP_OUTBOUND_TRUNK=ST_xxx \\
        flowkit start examples/warm_transfer.py

Moving a participant between rooms is a LiveKit Cloud (and Private Cloud) feature; flowkit's
test server has it for phone participants (tests/livekit/test_warm_transfer.py runs a whole
transfer there). The stand-in model transfers as soon as the caller speaks; give real
providers in ``job.extra["stt"]``, ``["llm"]`` and ``["tts"]``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import flowkit as fk
from flowkit.livekit.warm_transfer import Consultation, WarmTransfer, warm_transfer_tool
from flowkit.nodes import audio, interrupt, llm, room, state, stt, tools, tts, turn, vad
from flowkit.providers.chat import ChatMessage
from flowkit.providers.llm import ToolCallChunk
from flowkit.testing import FakeLLM, FakeReply
from flowkit.testing.demo import stand_ins
from flowkit.vad import EnergyVAD

INSTRUCTIONS = (
    "You answer calls for a booking service. When the caller asks for a person, or you "
    "cannot help, tell them you are transferring them and that they will be on hold for a "
    "moment, then call transfer_to_human with a summary of the call."
)


def stand_in_reply(history: Sequence[ChatMessage]) -> str | FakeReply:
    """A stand-in model: it transfers on the caller's first turn, and briefs on the other side."""
    system = history[0].content if history else ""
    if "human agent" in system and "caller" in system and "transfer_to_human" not in system:
        return "A caller would like to change a booking. Can you take the call?"
    if history[-1].role == "tool":  # the transfer failed: say why
        return "I could not reach anyone right now. Can I help you myself?"
    summary = json.dumps({"summary": "A caller wants to change a booking."})
    return FakeReply(
        text="I will transfer you to a colleague; please hold for a moment.",
        tool_calls=(ToolCallChunk("transfer", "transfer_to_human", summary),),
    )


def voice_graph(
    name: str, job: fk.JobContext, instructions: str, agent_tools: Sequence[Any]
) -> fk.Graph:
    """A voice agent: listen, think (with ``agent_tools``), speak, barge-in."""
    recogniser, model, voice_provider = stand_ins(job, FakeLLM(stand_in_reply, name="stand-in-llm"))
    g = fk.Graph(name, description="a voice agent with tools")
    mic = g.add(room.RoomSource(sample_rate=48_000), name="mic")
    ears = g.add(vad.VAD(EnergyVAD()), name="vad")
    asr = g.add(stt.STT(recogniser), name="stt")
    turns = g.add(turn.TurnDetector(mode="vad"), name="turns")
    brain = g.add(llm.LLM(model, instructions=instructions, tools=list(agent_tools)), name="llm")
    router = g.add(tools.ToolRouter(list(agent_tools)), name="tools")
    voice = g.add(tts.TTS(voice_provider), name="tts")
    speaker = g.add(room.RoomSink(), name="speaker")
    barge = g.add(interrupt.Interruptions(), name="interruptions")
    states = g.add(state.AgentStates(), name="states")
    mic >> audio.Resample(16_000, channels=1) >> ears >> asr >> turns >> brain >> voice >> speaker
    ears.events >> [asr.speech, turns.vad, barge.vad]
    asr >> barge.transcripts
    turns >> states
    brain.tool_calls >> router >> brain.tool_results
    barge >> [speaker.interrupt, voice.interrupt, brain.interrupt]
    speaker >> [brain.playout, barge.playout, states.playout, router.playout]
    return g


def consultation(call: Consultation) -> fk.Graph:
    """The graph that briefs the human agent, in the consultation room."""
    return voice_graph("consultation", call.job, call.instructions, call.tools)


def build(job: fk.JobContext) -> fk.Graph:
    """The caller's agent, with the transfer tool."""
    transfer = WarmTransfer(
        job.extra.get("human_agent") or os.environ.get("HUMAN_AGENT_NUMBER", "+15550100"),
        sip_trunk_id=job.extra.get("sip_trunk_id")
        or os.environ.get("LIVEKIT_SIP_OUTBOUND_TRUNK", "ST_set_LIVEKIT_SIP_OUTBOUND_TRUNK"),
        consultation=consultation,
    )
    return voice_graph("warm-transfer", job, INSTRUCTIONS, [warm_transfer_tool(transfer)])
