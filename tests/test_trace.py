"""Traces: `flowkit run --trace` on the demo providers, and reading traces back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowkit.cli import main
from flowkit.runtime.metrics import GraphMetrics
from flowkit.spec import GraphSpec
from flowkit.timeline import TurnRecord
from flowkit.trace import TRACE_VERSION, Trace, TraceError, TurnTrace

ROOT = Path(__file__).parents[1]
VOICE_AGENT = ROOT / "graphs" / "voice_agent.py"
QUESTION = ROOT / "examples" / "audio" / "weather_question.wav"
ENDPOINTING = 0.5  # graphs/voice_agent.py: TurnDetector(min_endpointing_delay=0.5)


@pytest.fixture(scope="module")
def trace_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("run")
    path = work / "t.json"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWKIT_PROVIDERS", "demo")
        result = CliRunner().invoke(main, [
            "run", str(VOICE_AGENT), "--input", str(QUESTION), "--output",
            str(work / "out.wav"), "--trace", str(path),
        ])
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture(scope="module")
def trace(trace_file: Path) -> Trace:
    return Trace.read(trace_file)


def test_the_trace_holds_the_graph_as_it_ran(trace: Trace) -> None:
    assert trace.version == TRACE_VERSION
    assert trace.graph.name == trace.metrics.graph == "voice-agent"
    names = [n.name for n in trace.graph.nodes]
    assert [n.name for n in trace.metrics.nodes] == names
    assert trace.mismatches(trace.graph) == []
    for edge in trace.graph.edges:
        assert trace.edge_metrics(edge) is not None, edge


def test_node_and_edge_figures_are_plausible(trace: Trace) -> None:
    mic, resample, vad = (trace.node_metrics(n) for n in ("mic", "resample", "vad"))
    assert mic is not None and resample is not None and vad is not None
    # 4 s of input in 20 ms frames; 48 kHz frames in, 16 kHz frames out of the resampler.
    assert mic.messages_out == 200
    assert resample.messages_in == 200 and resample.messages_out > 0
    assert vad.messages_in == resample.messages_out
    assert 0 < resample.latency_p50_ms <= resample.latency_p95_ms <= resample.latency_p99_ms
    assert vad.busy_s > 0
    for node in trace.metrics.nodes:
        assert node.errors == 0 and node.dropped == 0, node
    stt = trace.graph.edges[[e.target for e in trace.graph.edges].index("stt")]
    audio = trace.edge_metrics(stt)
    assert audio is not None and audio.messages == vad.messages_out - 2  # 2 VAD events
    assert trace.duration_s >= 4.0  # the whole input was heard, then the reply played


def test_the_turn_and_its_timings(trace: Trace) -> None:
    assert len(trace.turns) == 1
    turn = trace.turns[0]
    assert turn.user_text == "[2.9 s of speech]"
    assert turn.agent_text.startswith("I heard [2.9 s of speech].")
    assert not turn.interrupted
    stages = [turn.stages[s] for s in ("end_of_speech", "transcript", "committed",
                                       "first_token", "first_audio", "played")]
    assert all(s is not None for s in stages)
    times = [s for s in stages if s is not None]
    assert times == sorted(times)
    # Stage times count from the graph's start: speech ends near 3 s into the 4 s input.
    assert 2.5 < times[0] < 4.0 and times[-1] < trace.duration_s
    lat = turn.latencies
    for name in ("stt", "endpointing", "llm", "tts", "voice_to_voice"):
        value = lat[name]
        assert value is not None and value > 0, name
    stt, endpointing = lat["stt"], lat["endpointing"]
    assert stt is not None and endpointing is not None
    # The detector waits 0.5 s after the end of speech; the STT's time is part of that wait.
    assert endpointing == pytest.approx(ENDPOINTING - stt, abs=0.03)
    parts = sum(lat[n] or 0.0 for n in ("stt", "endpointing", "llm", "tts", "playout"))
    assert lat["voice_to_voice"] == pytest.approx(parts, abs=1e-6)


def test_write_and_read_round_trip(trace: Trace, tmp_path: Path) -> None:
    path = tmp_path / "again.json"
    trace.write(path)
    assert Trace.read(path) == trace
    data = json.loads(path.read_text())
    assert set(data) == {"version", "created", "duration_s", "graph", "metrics", "turns"}
    GraphSpec.model_validate(data["graph"])
    GraphMetrics.model_validate(data["metrics"])


def test_turn_trace_counts_from_the_origin() -> None:
    record = TurnRecord(3, "hi", end_of_speech=10.0, transcript=10.1, committed=10.5)
    turn = TurnTrace.of(record, origin=9.0)
    assert turn.stages["end_of_speech"] == pytest.approx(1.0)
    assert turn.stages["played"] is None
    assert turn.latencies["stt"] == pytest.approx(0.1)


def test_bad_trace_files_say_what_is_wrong(trace: Trace, tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="cannot read the trace"):
        Trace.read(tmp_path / "missing.json")
    notes = tmp_path / "notes.json"
    notes.write_text("these are notes")
    with pytest.raises(TraceError, match=r"not a flowkit trace.*flowkit run"):
        Trace.read(notes)
    newer = tmp_path / "newer.json"
    newer.write_text(trace.model_copy(update={"version": TRACE_VERSION + 1}).model_dump_json())
    with pytest.raises(TraceError, match="newer than this flowkit reads"):
        Trace.read(newer)
