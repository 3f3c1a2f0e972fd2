"""A run's trace as OpenTelemetry spans: the job, its turns, and each turn's stages.

A :class:`~flowkit.trace.Trace` holds what a run did: each turn's stage times (the user's end
of speech, the transcript, the commit, the first token, the first audio, the reply heard)
and every node's figures. This module sends them to any OpenTelemetry ``TracerProvider``
(an OTLP exporter to Jaeger, Tempo, Honeycomb, Langfuse, ...), as LiveKit Agents' traces
show a session and its turns:

- ``flowkit.job``: the run, from the graph's start to the trace; the graph's name, the
  attributes given (the worker gives the job id, the room and the agent's name) and every
  node's figures as ``flowkit.node.<name>.<figure>`` (messages in and out, errors,
  restarts, dropped, busy seconds);

  - ``flowkit.turn``: one per turn, from its first stage seen to its last; the turn id,
    what the user said, what the agent wrote and what was heard, whether it was
    interrupted, and its latencies (``flowkit.latency.<name>``, seconds);

    - ``stt``, ``endpointing``, ``llm``, ``tts``, ``playout``: a span per stage gap seen,
      e.g. ``llm`` from the commit to the first token.

The worker sends them while each job runs (``Worker(tracer_provider=...)``, or ``flowkit
start --otlp-endpoint URL``, which makes one with :func:`otlp_tracer_provider`): the job's
span opens at its start, a turn's spans leave as soon as the turn is over (the next user
turn is committed; :class:`JobSpans`), and the job's span, with the node figures, ends with
the job. A job that runs for an hour shows its turns as they happen, and a process that dies
loses at most the turn under way. For a graph run by hand, :func:`export_spans` sends a
finished run's trace (:func:`~flowkit.trace.trace_of_run`) at once.

It needs the ``opentelemetry-api`` package; :func:`otlp_tracer_provider` also the SDK and
the OTLP/HTTP exporter (all three are the ``telemetry`` extra).
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

from flowkit.trace import Trace, TurnTrace

__all__ = ["STAGE_SPANS", "JobSpans", "export_spans", "otlp_tracer_provider"]

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


class JobSpans:
    """A job's spans, sent as it runs: its turns as each is over, the job's own at its end.

    The ``flowkit.job`` span opens when this is made. :meth:`send_turn` sends a turn's span
    and its stage spans at once (the worker sends each turn when the timeline says it is
    over, :class:`~flowkit.timeline.TurnTimeline`'s ``on_turn_over``); :meth:`end` sends the
    turns not sent yet, puts every node's figures on the job's span and ends it. A turn is
    sent once, whichever of the two sees it first.

    Args:
        tracer: An OpenTelemetry ``Tracer`` (``provider.get_tracer("flowkit")``).
        graph: The graph's name.
        attributes: More attributes for the job's span (strings, numbers, booleans).
        start_ns: When the run started, in nanoseconds since the epoch; now by default.
            Every stage time a turn gives counts from it.

    Raises:
        ImportError: The ``opentelemetry-api`` package is not installed; the message says
            which extra brings it.
    """

    def __init__(
        self,
        tracer: Any,
        *,
        graph: str,
        attributes: Mapping[str, AttributeValue] | None = None,
        start_ns: int | None = None,
    ) -> None:
        otel = _otel_trace()
        self._tracer = tracer
        self._start_ns = time.time_ns() if start_ns is None else start_ns
        self._job = tracer.start_span(
            "flowkit.job", start_time=self._start_ns,
            attributes={"flowkit.graph": graph, **(attributes or {})},
        )
        self._inside_job = otel.set_span_in_context(self._job)
        self._sent: set[int] = set()
        self._ended = False

    @property
    def sent_turns(self) -> frozenset[int]:
        """The ids of the turns sent so far."""
        return frozenset(self._sent)

    def _at(self, seconds: float) -> int:
        return self._start_ns + round(seconds * 1e9)

    def send_turn(self, turn: TurnTrace) -> None:
        """Send ``turn`` (stage times in seconds since the run started), unless already sent.

        A turn with no stage seen sends nothing. Ignored once :meth:`end` was called.
        """
        if self._ended or turn.turn_id in self._sent:
            return
        seen = [t for t in turn.stages.values() if t is not None]
        if not seen:
            return
        self._sent.add(turn.turn_id)
        otel = _otel_trace()
        span = self._tracer.start_span(
            "flowkit.turn", context=self._inside_job, start_time=self._at(min(seen)),
            attributes=_turn_attributes(turn),
        )
        inside_turn = otel.set_span_in_context(span)
        for name, begin, finish in STAGE_SPANS:
            first, last = turn.stages.get(begin), turn.stages.get(finish)
            if first is None or last is None:
                continue
            stage = self._tracer.start_span(name, context=inside_turn, start_time=self._at(first))
            stage.end(end_time=self._at(max(first, last)))
        span.end(end_time=self._at(max(seen)))

    def end(self, trace: Trace) -> None:
        """Send ``trace``'s turns not sent yet and end the job's span with the node figures.

        The job's span ends ``trace.duration_s`` after its start. Only the first call counts.
        """
        if self._ended:
            return
        for turn in trace.turns:
            self.send_turn(turn)
        self._ended = True
        figures: dict[str, AttributeValue] = {"flowkit.turns": len(trace.turns)}
        for node in trace.metrics.nodes:
            for figure in _NODE_FIGURES:
                figures[f"flowkit.node.{node.name}.{figure}"] = getattr(node, figure)
        self._job.set_attributes(figures)
        self._job.end(end_time=self._at(trace.duration_s))


def export_spans(
    trace: Trace,
    tracer: Any,
    *,
    attributes: Mapping[str, AttributeValue] | None = None,
    end_ns: int | None = None,
) -> None:
    """Send a finished run's ``trace`` as spans through ``tracer``, all at once (see the module).

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
    end = time.time_ns() if end_ns is None else end_ns
    spans = JobSpans(
        tracer, graph=trace.graph.name, attributes=attributes,
        start_ns=end - round(trace.duration_s * 1e9),
    )
    spans.end(trace)


def otlp_tracer_provider(endpoint: str, *, service_name: str = "flowkit-agent") -> Any:
    """An OpenTelemetry ``TracerProvider`` sending spans in batches to an OTLP/HTTP collector.

    What ``flowkit start --otlp-endpoint`` uses. Spans go from a background thread (the SDK's
    ``BatchSpanProcessor``), so a slow collector does not hold up the event loop; call the
    provider's ``shutdown()`` before the process ends to send the last ones. Headers (an API
    key) come from ``OTEL_EXPORTER_OTLP_HEADERS``, as for any OTLP exporter.

    Args:
        endpoint: The collector's base URL (``http://localhost:4318``); spans go to its
            ``/v1/traces`` (a URL already ending so is taken as is).
        service_name: The ``service.name`` of the spans' resource.

    Raises:
        ValueError: ``endpoint`` is not an http(s) URL.
        ImportError: The OpenTelemetry SDK or its OTLP/HTTP exporter is not installed; the
            message says which extra brings them.
    """
    parsed = urllib.parse.urlsplit(endpoint)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(
            f"the OTLP endpoint {endpoint!r} is not an http(s) URL; give the collector's "
            "base URL, e.g. http://localhost:4318"
        )
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise ImportError(
            "sending spans to an OTLP endpoint needs the OpenTelemetry SDK and its OTLP/HTTP "
            "exporter: pip install 'flowkit-agents[telemetry]'"
        ) from exc
    url = endpoint if parsed.path.endswith("/v1/traces") else endpoint.rstrip("/") + "/v1/traces"
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    return provider


def _otel_trace() -> Any:
    """The ``opentelemetry.trace`` module, or an ImportError that says how to get it."""
    try:
        from opentelemetry import trace as otel
    except ImportError as exc:
        raise ImportError(
            "flowkit.telemetry needs the OpenTelemetry API: pip install "
            "'flowkit-agents[telemetry]' (and an exporter of your choice)"
        ) from exc
    return otel


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
