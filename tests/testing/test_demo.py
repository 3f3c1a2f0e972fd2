"""The demo stand-ins: a graph file's providers, unless the job brings its own."""

from __future__ import annotations

import flowkit as fk
from flowkit.testing import FakeLLM, FakeTTS
from flowkit.testing.demo import DescribingSTT, echo_llm, stand_ins


def test_the_stand_ins_serve_where_the_job_brings_no_provider() -> None:
    llm = echo_llm()
    stt, model, tts = stand_ins(fk.JobContext.local(), llm)
    assert isinstance(stt, DescribingSTT) and model is llm
    assert isinstance(tts, FakeTTS) and tts.sample_rate == 24_000


def test_the_jobs_providers_take_their_place() -> None:
    mine = {"stt": DescribingSTT(delay=0.5), "llm": FakeLLM(["hi"]), "tts": FakeTTS()}
    job = fk.JobContext.local(**mine)
    assert stand_ins(job, echo_llm(), tts=FakeTTS(frequency=220.0)) == (
        mine["stt"], mine["llm"], mine["tts"])


def test_a_voice_given_for_the_file_replaces_the_default_one() -> None:
    voice = FakeTTS(sample_rate=24_000, frequency=220.0)
    assert stand_ins(fk.JobContext.local(), echo_llm(), tts=voice)[2] is voice
