"""An agent with a face: its voice spoken by an avatar that joins the room beside it.

A port of LiveKit's examples/avatar_agents/audio_wave. The room sink sends the agent's voice
to the avatar participant ``avatar`` (``RoomSink(avatar="avatar")``, LiveKit Agents' avatar
protocol) instead of publishing it; ``LocalAvatar`` joins the job's room as that
participant and publishes the voice with a picture of its waveform, on the agent's behalf.
A barge-in cuts the avatar short, and the transcript follows what it played. For a
provider's avatar, drop ``LocalAvatar`` and start the provider's session for the same
identity instead.

    flowkit viz examples/avatar_agent.py
    flowkit start examples/avatar_agent.py     # LIVEKIT_URL, LIVEKIT_API_KEY, _API_SECRET

Offline (``flowkit run``) there is no room to join: the avatar stays away and the voice
plays as it would without one. Providers: ``job.extra["stt"]`` / ``["llm"]`` / ``["tts"]``
replace the stand-ins.
"""

from __future__ import annotations

from collections.abc import Sequence

import flowkit as fk
from flowkit.nodes import audio, avatar, interrupt, llm, room, state, stt, tts, turn, vad
from flowkit.providers.chat import ChatMessage
from flowkit.testing import FakeLLM, FakeTTS
from flowkit.testing.demo import DescribingSTT
from flowkit.vad import EnergyVAD

AVATAR = "avatar"
"""The avatar's identity in the room: the sink sends it the voice."""


class Greeter(fk.Node):
    """Asks the agent for a greeting once, when the session starts."""

    requests: fk.Out[fk.ReplyRequest] = fk.Out(default=True, doc="one greeting request")

    async def run(self) -> None:
        self.requests.send(fk.ReplyRequest(instructions="Greet the user."))


def stand_in_reply(history: Sequence[ChatMessage]) -> str:
    heard = [m.content for m in history if m.role == "user"]
    if not heard:
        return "Hello! You can see my voice as I speak."
    return f"You said {heard[-1]}."


def build(job: fk.JobContext) -> fk.Graph:
    extra = job.extra
    g = fk.Graph("avatar-agent", description="a voice agent whose avatar speaks for it")
    mic = g.add(room.RoomSource(sample_rate=48_000), name="mic")
    ears = g.add(vad.VAD(EnergyVAD()), name="vad")
    asr = g.add(stt.STT(extra.get("stt") or DescribingSTT()), name="stt")
    turns = g.add(turn.TurnDetector(mode="vad"), name="turns")
    model = extra.get("llm") or FakeLLM(stand_in_reply)
    brain = g.add(llm.LLM(model, instructions="You are a helpful assistant."), name="llm")
    voice = g.add(tts.TTS(extra.get("tts") or FakeTTS(sample_rate=24_000)), name="tts")
    speaker = g.add(room.RoomSink(avatar=AVATAR), name="speaker")
    g.add(avatar.LocalAvatar(AVATAR), name="avatar")
    barge = g.add(interrupt.Interruptions(), name="interruptions")
    states = g.add(state.AgentStates(), name="states")
    greeter = g.add(Greeter(), name="greeter")

    mic >> audio.Resample(16_000, channels=1) >> ears >> asr >> turns >> brain >> voice >> speaker
    greeter >> [brain.requests, states.requests]
    turns >> states.turns
    speaker >> [brain.playout, barge.playout, states.playout]
    states >> turns.agent_state
    ears.events >> [asr.speech, turns.vad, barge.vad]
    asr >> barge.transcripts
    barge >> [speaker.interrupt, voice.interrupt, brain.interrupt]
    return g
