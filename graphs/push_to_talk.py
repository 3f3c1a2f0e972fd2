"""Push to talk: the user's turn ends when the button is released, not when they pause.

The pipeline of graphs/voice_agent.py with ``TurnDetector(mode="manual")``: what the user
says is transcribed as they speak, but it becomes a turn (and the agent answers) only when a
message reaches ``turns.commit``. Here that message comes from a ``TalkButton`` node, which
reads the button's releases from an :class:`asyncio.Queue` the job carries in
``job.extra["push_to_talk"]`` (a LiveKit worker's RPC handler, or a test, puts on it; ``None``
ends the button). While the button is live, a test may also deliver a release straight
into the running graph with ``runner.inject("turns.commit", "release")``.

Without a queue (``flowkit run``, ``viz``) there is no button: the turn detector commits what
was said when the audio ends, so an offline run still gets one answer.

Providers: ``job.extra["stt"]`` / ``["llm"]`` / ``["tts"]`` replace the stand-ins.
"""

from __future__ import annotations

import asyncio
from typing import Any

import flowkit as fk
from flowkit.nodes import audio, interrupt, llm, room, stt, tts, turn, vad
from flowkit.testing import FakeTTS
from flowkit.testing.demo import DescribingSTT, echo_llm
from flowkit.vad import EnergyVAD

QUEUE_KEY = "push_to_talk"


def providers(job: fk.JobContext) -> tuple[Any, Any, Any]:
    """STT, LLM and TTS: the job's, or the stand-ins."""
    extra = job.extra
    return (
        extra.get("stt") or DescribingSTT(),
        extra.get("llm") or echo_llm(),
        extra.get("tts") or FakeTTS(sample_rate=24_000),
    )


class TalkButton(fk.Node):
    """The push-to-talk button: one message per release, read from the job's queue."""

    releases: fk.Out[str] = fk.Out(default=True, doc="one message per button release")

    async def run(self) -> None:
        extra = getattr(self.ctx.job, "extra", {})
        queue: asyncio.Queue[str | None] | None = extra.get(QUEUE_KEY)
        if queue is None:
            return  # no button: the end of the audio commits the turn
        while (release := await queue.get()) is not None:
            self.releases.send(release)


def build(job: fk.JobContext) -> fk.Graph:
    recogniser, model, voice_provider = providers(job)
    g = fk.Graph("push-to-talk", description="turns end when the talk button is released")
    mic = g.add(room.RoomSource(sample_rate=48_000), name="mic")
    ears = g.add(vad.VAD(EnergyVAD()), name="vad")
    asr = g.add(stt.STT(recogniser), name="stt")
    turns = g.add(turn.TurnDetector(mode="manual"), name="turns")
    brain = g.add(llm.LLM(model, instructions="You are a helpful assistant."), name="llm")
    voice = g.add(tts.TTS(voice_provider), name="tts")
    speaker = g.add(room.RoomSink(), name="speaker")
    barge = g.add(interrupt.Interruptions(), name="interruptions")

    mic >> audio.Resample(16_000, channels=1) >> ears >> asr >> turns >> brain >> voice >> speaker
    g.add(TalkButton(), name="button") >> turns.commit
    ears.events >> [asr.speech, turns.vad, barge.vad]
    asr >> barge.transcripts
    barge >> [speaker.interrupt, voice.interrupt, brain.interrupt]  # speaking over the agent
    speaker >> [brain.playout, barge.playout]
    return g
