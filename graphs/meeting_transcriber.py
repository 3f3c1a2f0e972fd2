"""A meeting transcriber: one recogniser per participant, one timeline of who said what.

For each participant: RoomSource(participant=...) → Resample → VAD → STT(speaker=...); all
the STTs feed one TranscriptTimeline, which orders the transcripts by when they were spoken
(recognisers finish at different times), then TranscriptPublisher. A single-stream pipeline
cannot hear several people apart; a graph has one branch per person.

The participants are ``job.extra["participants"]`` (identities), two by default. An offline
run (``flowkit run``) has one input file, which every branch hears.

Providers: ``job.extra["stt"]``, a mapping identity → recogniser, replaces the stand-ins.
"""

from __future__ import annotations

import re
from typing import Any

import flowkit as fk
from flowkit.nodes import audio, room, stt, text, vad
from flowkit.testing.demo import DescribingSTT
from flowkit.vad import EnergyVAD

DEFAULT_PARTICIPANTS = ("alice", "bob")


def recogniser(job: fk.JobContext, who: str) -> Any:
    """The recogniser for one participant: the job's, or the stand-in."""
    return job.extra.get("stt", {}).get(who) or DescribingSTT()


def build(job: fk.JobContext) -> fk.Graph:
    participants = list(job.extra.get("participants") or DEFAULT_PARTICIPANTS)
    g = fk.Graph("meeting-transcriber", description="one STT per participant, one timeline")
    timeline = g.add(text.TranscriptTimeline(hold=1.5), name="timeline")
    for who in participants:
        key = re.sub(r"\W", "_", who)  # node names: identities may hold any character
        mic = g.add(room.RoomSource(sample_rate=48_000, participant=who), name=f"mic_{key}")
        ears = g.add(vad.VAD(EnergyVAD(), speaker=who), name=f"vad_{key}")
        asr = g.add(stt.STT(recogniser(job, who), speaker=who), name=f"stt_{key}")
        mic >> g.add(audio.Resample(16_000, channels=1), name=f"resample_{key}") >> ears >> asr
        ears.events >> asr.speech
        asr >> timeline  # several edges into one input merge
    timeline >> g.add(room.TranscriptPublisher(), name="publish")
    return g
