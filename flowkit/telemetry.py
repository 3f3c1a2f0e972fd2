"""A run's trace as OpenTelemetry spans: the job, its turns, and each turn's stages.

A :class:`~flowkit.trace.Trace` holds what a run did: each turn's stage times (the user's end
of speech, the transcript, the commit, the first token, the first audio, the reply heard)
and every node's figures. :func:`export_spans` sends one to any OpenTelemetry
``TracerProvider`` the application set up (an OTLP exporter to Jaeger, Tempo, Honeycomb,
Langfuse, ...), as LiveKit Agents' traces show a session and its turns:

- ``flowkit.job``: the run, from the graph's start to the trace; the graph's name, the
  attributes given (the worker gives the job id, the room and the agent's name) and every
  node's figures as ``flowkit.node.<name>.<figure>`` (messages in and out, errors,
  restarts, dropped, busy seconds);

  - ``flowkit.turn``: one per turn, from its first stage seen to its last; the turn id,
    what the user said, what the agent wrote and what was heard, whether it was
    interrupted, and its latencies (``flowkit.latency.<name>``, seconds);

    - ``stt``, ``endpointing``, ``llm``, ``tts``, ``playout``: a span per stage gap seen,
      e.g. ``llm`` from the commit to the first token.

The worker exports each job's spans when the job ends (``Worker(tracer_provider=...)``); for a
graph run by hand, build the trace with :func:`~flowkit.trace.trace_of_run` and pass it here.
The spans are made when the trace is, with the times it recorded, so a turn appears once its
job ends. It needs the ``opentelemetry-api`` package (the ``telemetry`` extra); an exporter
is the application's choice.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from flowkit.trace import Trace, TurnTrace

__all__ = ["STAGE_SPANS", "export_spans"]

STAGE_SPANS: tuple[tuple[str, str, str], ...] = (
    ("stt", "end_of_speech", "transcript"),
    ("endpointing", "transcript", "committed"),
    ("llm", "committed", "first_token"),
    ("tts", "first_token", "first_audio"),
    ("playout", "first_audio", "played"),
)
"""The spans of a turn: ``(name, from stage, to stage)``."""

_NODE_FIGURES = ("messages_in", "messages_out", "errors", "restarts", "dropped", "busy_s")

AttributeValue = str | bool | int | float


def export_spans(
    trace: Trace,
    tracer: Any,
    *,
    attributes: Mapping[str, AttributeValue] | None = None,
    end_ns: int | None = None,
) -> None:
    """Send ``trace`` as spans through ``tracer`` (see the module).

    Args:
        trace: The run's trace.
        tracer: An OpenTelemetry ``Tracer`` (``provider.get_tracer("flowkit")``).
        attributes: More attributes for the job's span (strings, numbers, booleans).
        end_ns: When the trace was taken, in nanoseconds since the epoch; now by default.
            The job's span starts ``trace.duration_s`` before, and every stage time counts
            from that start.

    Raises:
        ImportError: The ``opentelemetry-api`` package is not installed; the message says
            which extra brings it.
    """
    try:
        from opentelemetry import trace as otel
    except ImportError as exc:
        raise ImportError(
            "flowkit.telemetry needs the OpenTelemetry API: pip install "
            "'flowkit-agents[telemetry]' (and an exporter of your choice)"
        ) from exc
    end = time.time_ns() if end_ns is None else end_ns
    start = end - round(trace.duration_s * 1e9)

    def at(seconds: float) -> int:
        return start + round(seconds * 1e9)

    job_attributes: dict[str, AttributeValue] = {
        "flowkit.graph": trace.graph.name, "flowkit.turns": len(trace.turns),
    }
    for node in trace.metrics.nodes:
        for figure in _NODE_FIGURES:
            job_attributes[f"flowkit.node.{node.name}.{figure}"] = getattr(node, figure)
    job_attributes.update(attributes or {})
    job = tracer.start_span("flowkit.job", start_time=start, attributes=job_attributes)
    inside_job = otel.set_span_in_context(job)
    for turn in trace.turns:
        seen = [t for t in turn.stages.values() if t is not None]
        if not seen:
            continue
        span = tracer.start_span(
            "flowkit.turn", context=inside_job, start_time=at(min(seen)),
            attributes=_turn_attributes(turn),
        )
        inside_turn = otel.set_span_in_context(span)
        for name, begin, finish in STAGE_SPANS:
            first, last = turn.stages.get(begin), turn.stages.get(finish)
            if first is None or last is None:
                continue
            stage = tracer.start_span(name, context=inside_turn, start_time=at(first))
            stage.end(end_time=at(max(first, last)))
        span.end(end_time=at(max(seen)))
    job.end(end_time=end)


def _turn_attributes(turn: TurnTrace) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {
        "flowkit.turn_id": turn.turn_id,
        "flowkit.user_text": turn.user_text,
        "flowkit.agent_text": turn.agent_text,
        "flowkit.played_text": turn.played_text,
        "flowkit.interrupted": turn.interrupted,
    }
    for name, seconds in turn.latencies.items():
        if seconds is not None:
            attributes[f"flowkit.latency.{name}"] = seconds
    return attributes
