"""A run's trace as OpenTelemetry spans, read back from the SDK's in-memory exporter."""

from __future__ import annotations

import sys

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flowkit.runtime.metrics import GraphMetrics, NodeMetrics
from flowkit.spec import GraphSpec
from flowkit.telemetry import JobSpans, export_spans
from flowkit.trace import Trace, TurnTrace

END = 1_800_000_000_000_000_000  # ns since the epoch


def _tracer() -> tuple[object, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test"), exporter


def _node(name: str, messages_out: int) -> NodeMetrics:
    return NodeMetrics(
        name=name, messages_in=3, messages_out=messages_out, errors=1, restarts=0, dropped=2,
        busy_s=0.25, latency_p50_ms=1.0, latency_p95_ms=2.0, latency_p99_ms=3.0,
    )


def _trace() -> Trace:
    heard = TurnTrace(
        turn_id=7, user_text="weather in Paris?", agent_text="Sunny.", played_text="Sunny.",
        stages={"end_of_speech": 1.0, "transcript": 1.25, "committed": 1.5,
                "first_token": 2.0, "first_audio": 2.25, "played": 2.5},
        latencies={"stt": 0.25, "endpointing": 0.25, "llm": 0.5, "tts": 0.25,
                   "playout": 0.25, "voice_to_voice": 1.5},
    )
    greeting = TurnTrace(  # a reply from code: no user stages
        turn_id=3, agent_text="Hello!",
        stages={"end_of_speech": None, "transcript": None, "committed": None,
                "first_token": 0.1, "first_audio": 0.2, "played": None},
        latencies={"stt": None, "endpointing": None, "llm": None, "tts": 0.1,
                   "playout": None, "voice_to_voice": None},
    )
    return Trace(
        duration_s=10.0,
        graph=GraphSpec(name="voice-agent", nodes=(), edges=()),
        metrics=GraphMetrics(graph="voice-agent", nodes=(_node("llm", 5),), edges=()),
        turns=(greeting, heard),
    )


def test_a_trace_becomes_a_job_span_with_a_span_per_turn_and_per_stage() -> None:
    tracer, exporter = _tracer()
    export_spans(_trace(), tracer, attributes={"flowkit.job.id": "AJ_1"}, end_ns=END)
    spans = {(s.name, s.attributes.get("flowkit.turn_id")): s  # type: ignore[union-attr]
             for s in exporter.get_finished_spans()}
    start = END - 10_000_000_000
    job = spans[("flowkit.job", None)]
    assert (job.start_time, job.end_time, job.parent) == (start, END, None)
    assert job.attributes is not None
    assert job.attributes["flowkit.graph"] == "voice-agent"
    assert job.attributes["flowkit.job.id"] == "AJ_1"
    assert job.attributes["flowkit.turns"] == 2
    assert job.attributes["flowkit.node.llm.messages_out"] == 5
    assert job.attributes["flowkit.node.llm.busy_s"] == 0.25

    turn = spans[("flowkit.turn", 7)]
    assert turn.parent is not None and turn.parent.span_id == job.context.span_id
    assert (turn.start_time, turn.end_time) == (start + 1_000_000_000, start + 2_500_000_000)
    assert turn.attributes is not None
    assert turn.attributes["flowkit.user_text"] == "weather in Paris?"
    assert turn.attributes["flowkit.played_text"] == "Sunny."
    assert turn.attributes["flowkit.interrupted"] is False
    assert turn.attributes["flowkit.latency.voice_to_voice"] == 1.5
    stages = [s for s in exporter.get_finished_spans()
              if s.parent is not None and s.parent.span_id == turn.context.span_id]
    assert [(s.name, s.start_time - start, s.end_time - start) for s in stages] == [
        ("stt", 1_000_000_000, 1_250_000_000),
        ("endpointing", 1_250_000_000, 1_500_000_000),
        ("llm", 1_500_000_000, 2_000_000_000),
        ("tts", 2_000_000_000, 2_250_000_000),
        ("playout", 2_250_000_000, 2_500_000_000),
    ]
    # A reply from code: its own span, with only the stages it has.
    greeting = spans[("flowkit.turn", 3)]
    assert greeting.attributes is not None
    assert "flowkit.latency.llm" not in greeting.attributes
    assert [s.name for s in exporter.get_finished_spans()
            if s.parent is not None and s.parent.span_id == greeting.context.span_id] == ["tts"]
    assert len(exporter.get_finished_spans()) == 1 + 2 + 5 + 1


def test_job_spans_send_a_turn_at_once_and_the_rest_at_the_end() -> None:
    tracer, exporter = _tracer()
    trace = _trace()
    greeting, heard = trace.turns
    spans = JobSpans(tracer, graph="voice-agent", attributes={"flowkit.job.id": "AJ_2"},
                     start_ns=END)
    spans.send_turn(heard)
    spans.send_turn(heard)  # a second time: nothing more
    # The turn and its five stages are out while the job's span is still open.
    assert [s.name for s in exporter.get_finished_spans()] == [
        "stt", "endpointing", "llm", "tts", "playout", "flowkit.turn"
    ]
    assert spans.sent_turns == {7}
    spans.end(trace)
    spans.end(trace)  # ended once
    spans.send_turn(heard.model_copy(update={"turn_id": 8}))  # after the end: dropped
    names = [(s.name, (s.attributes or {}).get("flowkit.turn_id"))
             for s in exporter.get_finished_spans()]
    assert names.count(("flowkit.turn", 7)) == 1
    assert names[-3:] == [("tts", None), ("flowkit.turn", 3), ("flowkit.job", None)]
    job = exporter.get_finished_spans()[-1]
    assert (job.start_time, job.end_time) == (END, END + 10_000_000_000)
    assert job.attributes is not None and job.attributes["flowkit.job.id"] == "AJ_2"
    assert job.attributes["flowkit.node.llm.errors"] == 1
    turn = next(s for s in exporter.get_finished_spans() if s.name == "flowkit.turn")
    assert turn.start_time == END + 1_000_000_000
    assert turn.parent is not None and turn.parent.span_id == job.context.span_id
    assert greeting.turn_id == 3 and spans.sent_turns == {3, 7}


def test_without_the_opentelemetry_api_the_error_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(ImportError, match=r"pip install 'flowkit-agents\[telemetry\]'"):
        export_spans(_trace(), object())
