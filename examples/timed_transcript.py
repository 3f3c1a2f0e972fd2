"""The agent's transcript in step with its voice, printed with timestamps.

A port of LiveKit's examples/voice_agents/timed_agent_transcript.py. The RoomSink sends the
agent's transcript on its ``transcripts`` output as each sentence *starts playing*, not when
the LLM wrote it (which is seconds earlier): a caption shown from it matches what the user
hears, and stops where an interruption cut the reply. This graph prints those sentences,
and the user's final transcripts, with the session time they happened at:

    [  0.51 s] agent: Hello! I am a demo agent that prints its own words.
    [  3.44 s] agent: Each sentence appears as it starts playing.

The agent greets first: a ``Greeter`` node sends one ``ReplyRequest`` into the LLM when the
session starts (``generate_reply`` in LiveKit).

    flowkit run examples/timed_transcript.py --input in.wav --output out.wav

Providers: ``job.extra["stt"]`` / ``["llm"]`` / ``["tts"]`` replace the stand-ins.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import flowkit as fk
from flowkit.nodes import audio, interrupt, llm, room, stt, tts, turn, vad
from flowkit.providers.chat import ChatMessage
from flowkit.testing import FakeLLM
from flowkit.testing.demo import stand_ins
from flowkit.vad import EnergyVAD


class Greeter(fk.Node):
    """Asks the agent for a greeting once, when the session starts."""

    requests: fk.Out[fk.ReplyRequest] = fk.Out(default=True, doc="one greeting request")

    async def run(self) -> None:
        self.requests.send(fk.ReplyRequest(instructions="Say hello to the user."))


class TimedPrinter(fk.Node):
    """Prints transcripts with the session time they arrive at (and keeps the lines)."""

    transcripts: fk.In[fk.Transcript] = fk.In(default=True, doc="agent or user transcripts")

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[tuple[float, str, str]] = []

    async def run(self, transcripts: AsyncIterator[fk.Transcript]) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        async for transcript in transcripts:
            if not transcript.final:
                continue
            at = loop.time() - start
            self.lines.append((at, transcript.speaker, transcript.text))
            print(f"[{at:7.2f} s] {transcript.speaker}: {transcript.text}", flush=True)


def stand_in_reply(history: Sequence[ChatMessage]) -> str:
    heard = [m.content for m in history if m.role == "user"]
    if not heard:
        return (
            "Hello! I am a demo agent that prints its own words. "
            "Each sentence appears as it starts playing, in step with the audio."
        )
    return f"You said {heard[-1]}. I print this sentence as it starts playing."


def build(job: fk.JobContext) -> fk.Graph:
    recogniser, model, voice_provider = stand_ins(job, FakeLLM(stand_in_reply, name="stand-in-llm"))
    g = fk.Graph("timed-transcript", description="the agent's words, timed by its playout")
    mic = g.add(room.RoomSource(sample_rate=48_000), name="mic")
    ears = g.add(vad.VAD(EnergyVAD()), name="vad")
    asr = g.add(stt.STT(recogniser), name="stt")
    turns = g.add(turn.TurnDetector(mode="vad"), name="turns")
    brain = g.add(llm.LLM(model, instructions="You are a helpful assistant."), name="llm")
    voice = g.add(tts.TTS(voice_provider), name="tts")
    speaker = g.add(room.RoomSink(), name="speaker")
    barge = g.add(interrupt.Interruptions(), name="interruptions")
    printer = g.add(TimedPrinter(), name="printer")

    mic >> audio.Resample(16_000, channels=1) >> ears >> asr >> turns >> brain >> voice >> speaker
    g.add(Greeter(), name="greeter") >> brain.requests
    speaker.transcripts >> printer  # the agent's words, as they start playing
    asr >> printer  # the user's words, as recognised
    ears.events >> [asr.speech, turns.vad, barge.vad]
    asr >> barge.transcripts
    barge >> [speaker.interrupt, voice.interrupt, brain.interrupt]
    speaker >> [brain.playout, barge.playout]
    return g
