"""Background audio: a quiet room's hum all along, and typing while the agent thinks.

A port of LiveKit's examples/voice_agents/background_audio.py. A ``BackgroundAudio`` node
reads the agent's state from ``AgentStates`` and plays, on a track of its own
(``background_audio``):

- ``examples/audio/room_tone.wav`` in a loop, for the whole session;
- ``examples/audio/typing.wav`` each time the agent starts thinking (a turn committed, or a
  reply asked for from code), faded out when it starts speaking.

The stand-in model takes 1.5 s to its first word, so the typing is heard. In a LiveKit room
the sound is a second published track; offline (``flowkit run``) it is mixed into the
output file:

    cd examples && flowkit run background_audio.py --input audio/weather_question.wav \\
        --output out.wav

Providers: ``job.extra["stt"]`` / ``["llm"]`` / ``["tts"]`` replace the stand-ins. Both
sounds are synthesised by ``examples/audio/make_background.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import flowkit as fk
from flowkit.nodes import audio, background, interrupt, llm, room, state, stt, tts, turn, vad
from flowkit.providers.chat import ChatMessage
from flowkit.testing import FakeLLM
from flowkit.testing.demo import stand_ins
from flowkit.vad import EnergyVAD

SOUNDS = Path(__file__).parent / "audio"
AMBIENT = background.BackgroundSound(path=str(SOUNDS / "room_tone.wav"), volume=0.6)
THINKING = background.BackgroundSound(path=str(SOUNDS / "typing.wav"), volume=0.8)


class Greeter(fk.Node):
    """Asks the agent for a greeting once, when the session starts."""

    requests: fk.Out[fk.ReplyRequest] = fk.Out(default=True, doc="one greeting request")

    async def run(self) -> None:
        self.requests.send(fk.ReplyRequest(instructions="Greet the user."))


def stand_in_reply(history: Sequence[ChatMessage]) -> str:
    heard = [m.content for m in history if m.role == "user"]
    if not heard:
        return "Hello! Listen closely: you can hear me typing while I think."
    return f"You said {heard[-1]}. Did you hear me typing?"


def build(job: fk.JobContext) -> fk.Graph:
    recogniser, model, voice_provider = stand_ins(
        job, FakeLLM(stand_in_reply, ttft=1.5, name="slow-stand-in-llm")
    )
    g = fk.Graph("background-audio", description="ambient sound, and typing while thinking")
    mic = g.add(room.RoomSource(sample_rate=48_000), name="mic")
    ears = g.add(vad.VAD(EnergyVAD()), name="vad")
    asr = g.add(stt.STT(recogniser), name="stt")
    turns = g.add(turn.TurnDetector(mode="vad"), name="turns")
    brain = g.add(llm.LLM(model, instructions="You are a helpful assistant."), name="llm")
    voice = g.add(tts.TTS(voice_provider), name="tts")
    speaker = g.add(room.RoomSink(), name="speaker")
    barge = g.add(interrupt.Interruptions(), name="interruptions")
    states = g.add(state.AgentStates(), name="states")
    sounds = g.add(background.BackgroundAudio(ambient=AMBIENT, thinking=THINKING), name="sounds")
    greeter = g.add(Greeter(), name="greeter")

    mic >> audio.Resample(16_000, channels=1) >> ears >> asr >> turns >> brain >> voice >> speaker
    greeter >> [brain.requests, states.requests]
    turns >> states.turns
    speaker >> [brain.playout, barge.playout, states.playout]
    states >> sounds  # thinking starts the typing; speaking fades it out
    states >> turns.agent_state  # the user's away clock runs only while the agent listens
    speaker >> sounds.playout  # the room tone lasts until the last reply has played
    ears.events >> [asr.speech, turns.vad, barge.vad]
    asr >> barge.transcripts
    barge >> [speaker.interrupt, voice.interrupt, brain.interrupt]
    return g
