"""A transcriber: the room's speech as text, published to the room. No LLM, no TTS.

RoomSource → Resample → VAD → STT → TranscriptPublisher. The VAD's events also reach the
STT, which measures its latency from each end of speech.

Providers: ``job.extra["stt"]`` (any streaming or batch recogniser) replaces the stand-in,
which describes each utterance instead of transcribing it.
"""

from __future__ import annotations

import flowkit as fk
from flowkit.nodes import audio, room, stt, vad
from flowkit.providers.stt import BatchSTT, StreamingSTT
from flowkit.testing.demo import DescribingSTT
from flowkit.vad import EnergyVAD


def recogniser(job: fk.JobContext) -> StreamingSTT | BatchSTT:
    """The recogniser: the job's, or the stand-in until a real model is installed."""
    chosen: StreamingSTT | BatchSTT = job.extra.get("stt") or DescribingSTT()
    return chosen


def build(job: fk.JobContext) -> fk.Graph:
    g = fk.Graph("transcriber", description="the room's speech as published transcripts")
    mic = g.add(room.RoomSource(sample_rate=48_000), name="mic")
    ears = g.add(vad.VAD(EnergyVAD()), name="vad")
    asr = g.add(stt.STT(recogniser(job)), name="stt")
    mic >> audio.Resample(16_000, channels=1) >> ears >> asr
    ears.events >> asr.speech
    asr >> g.add(room.TranscriptPublisher(), name="publish")
    return g
