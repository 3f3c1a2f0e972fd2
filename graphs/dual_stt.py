"""Two recognisers side by side on the same audio; the better transcript of each utterance wins.

RoomSource → Resample → VAD ─┬─▶ STT "a" ─▶ TranscriptChooser.first  ─▶ TranscriptPublisher
                             └─▶ STT "b" ─▶ TranscriptChooser.second

A fixed STT → LLM → TTS pipeline has one recogniser; a graph can fan the audio out to two
(say a fast small model and a slower accurate one, or two vendors) and merge them again. The
chooser pairs the two finals of one utterance by their times and keeps the one with the
higher confidence; if one recogniser is slow or down, the other's transcript goes on alone
after ``wait`` seconds.

Providers: ``job.extra["stt"]`` and ``job.extra["stt2"]`` replace the stand-ins.
"""

from __future__ import annotations

from typing import Any

import flowkit as fk
from flowkit.nodes import audio, room, stt, text, vad
from flowkit.testing.demo import DescribingSTT
from flowkit.vad import EnergyVAD


def recognisers(job: fk.JobContext) -> tuple[Any, Any]:
    """The two recognisers: the job's, or two stand-ins (the second one slower)."""
    return (
        job.extra.get("stt") or DescribingSTT(delay=0.1),
        job.extra.get("stt2") or DescribingSTT(delay=0.3),
    )


def build(job: fk.JobContext) -> fk.Graph:
    first, second = recognisers(job)
    g = fk.Graph("dual-stt", description="two recognisers, the better transcript kept")
    mic = g.add(room.RoomSource(sample_rate=48_000), name="mic")
    ears = g.add(vad.VAD(EnergyVAD()), name="vad")
    stt_a = g.add(stt.STT(first), name="stt_a")
    stt_b = g.add(stt.STT(second), name="stt_b")
    choose = g.add(text.TranscriptChooser(wait=1.0), name="choose")

    mic >> audio.Resample(16_000, channels=1) >> ears >> [stt_a, stt_b]  # fan-out
    ears.events >> [stt_a.speech, stt_b.speech]
    stt_a >> choose.first
    stt_b >> choose.second
    choose >> g.add(room.TranscriptPublisher(), name="publish")
    return g
