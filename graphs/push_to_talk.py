"""Push to talk: the user is heard while they hold the button, and letting go ends the turn.

The pipeline of graphs/voice_agent.py with ``TurnDetector(mode="manual")`` and a
``PushToTalk`` node between the microphone and the rest: LiveKit Agents' push-to-talk recipe.
The client calls the agent's RPC methods ``start_turn`` (the button goes down: the agent
stops talking, and the user is heard), ``end_turn`` (it comes up: the turn is committed once
the last words are transcribed) and ``cancel_turn`` (what was said is thrown away). With the
button up the rest of the graph hears silence.

Offline (``flowkit run``, ``viz``) there is nobody to press it: the button stays down, and
the turn detector commits what was said when the audio ends, so an offline run still gets
one answer.

Providers: ``job.extra["stt"]`` / ``["llm"]`` / ``["tts"]`` replace the stand-ins.
"""

from __future__ import annotations

import flowkit as fk
from flowkit.nodes import audio, interrupt, llm, push_to_talk, room, stt, tts, turn, vad
from flowkit.testing.demo import echo_llm, stand_ins
from flowkit.vad import EnergyVAD


def build(job: fk.JobContext) -> fk.Graph:
    recogniser, model, voice_provider = stand_ins(job, echo_llm())
    g = fk.Graph("push-to-talk", description="turns end when the talk button is released")
    mic = g.add(room.RoomSource(sample_rate=48_000), name="mic")
    ears = g.add(vad.VAD(EnergyVAD()), name="vad")
    asr = g.add(stt.STT(recogniser), name="stt")
    turns = g.add(turn.TurnDetector(mode="manual"), name="turns")
    brain = g.add(llm.LLM(model, instructions="You are a helpful assistant."), name="llm")
    voice = g.add(tts.TTS(voice_provider), name="tts")
    speaker = g.add(room.RoomSink(), name="speaker")
    barge = g.add(interrupt.Interruptions(), name="interruptions")

    button = g.add(push_to_talk.PushToTalk(), name="button")
    mic >> button >> audio.Resample(16_000, channels=1) >> ears >> asr >> turns >> brain
    brain >> voice >> speaker
    button.commit >> turns.commit  # let go: the turn, once its last words are in
    button.clear >> turns.clear  # pressed, or cancelled: what was pending is dropped
    button.interrupts >> [speaker.interrupt, voice.interrupt, brain.interrupt]
    ears.events >> [asr.speech, turns.vad, barge.vad]
    asr >> barge.transcripts
    barge >> [speaker.interrupt, voice.interrupt, brain.interrupt]  # speaking over the agent
    speaker >> [brain.playout, barge.playout]
    return g
