"""Traces: what one run of a graph did, in one JSON file.

A :class:`Trace` holds the graph as it ran (its :class:`~flowkit.spec.GraphSpec`, inserted
converters included), the runtime's figures for every node and edge at the end of the run
(:class:`~flowkit.runtime.metrics.GraphMetrics`) and every turn's stage times
(:class:`~flowkit.timeline.TurnTimeline`). ``flowkit run ... --trace trace.json`` writes one;
``flowkit viz graph.py --trace trace.json --format html`` draws its figures on the graph.

Stage times in a trace are seconds since the graph started, so two traces compare directly
(the timeline's own times are the event loop's clock, which starts anywhere).
"""

from __future__ import annotations

import asyncio
import datetime
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pydantic

from flowkit.runtime.metrics import EdgeMetrics, GraphMetrics, NodeMetrics
from flowkit.spec import EdgeSpec, GraphSpec, graph_spec
from flowkit.timeline import TurnRecord, TurnTimeline

if TYPE_CHECKING:
    from flowkit.runtime.runner import GraphRunner

__all__ = ["TRACE_VERSION", "Trace", "TraceError", "TurnTrace", "trace_of_run"]

TRACE_VERSION = 1
"""The trace format's version; a reader refuses a newer one instead of misreading it."""

_FROZEN = pydantic.ConfigDict(frozen=True, extra="forbid")


class TraceError(ValueError):
    """A trace file cannot be read: missing, not JSON, not a trace, or too new."""


class TurnTrace(pydantic.BaseModel):
    """One turn of a trace.

    Attributes:
        turn_id: The turn's id.
        user_text: What the user said.
        agent_text: The agent's reply as the LLM streamed it.
        played_text: What the listener heard.
        interrupted: Whether the reply was interrupted.
        stages: When each stage happened, seconds since the graph started (``None``: not
            seen): ``end_of_speech``, ``transcript``, ``committed``, ``first_token``,
            ``first_audio``, ``played``.
        latencies: Stage to stage, seconds (``stt``, ``endpointing``, ``llm``, ``tts``,
            ``playout``, ``voice_to_voice``).
    """

    model_config = _FROZEN
    turn_id: int
    user_text: str = ""
    agent_text: str = ""
    played_text: str = ""
    interrupted: bool = False
    stages: dict[str, float | None]
    latencies: dict[str, float | None]

    @classmethod
    def of(cls, record: TurnRecord, origin: float = 0.0) -> TurnTrace:
        """The trace of ``record``, its stage times made relative to ``origin``."""
        data = record.to_dict()
        stages = {k: None if v is None else v - origin for k, v in data["stages"].items()}
        return cls(
            turn_id=record.turn_id, user_text=record.user_text, agent_text=record.agent_text,
            played_text=record.played_text, interrupted=record.interrupted,
            stages=stages, latencies=data["latencies"],
        )


class Trace(pydantic.BaseModel):
    """A run's graph, figures and turns (see the module docs).

    Attributes:
        version: The format's version (:data:`TRACE_VERSION`).
        created: When the trace was taken (ISO 8601, UTC).
        duration_s: How long the graph ran, seconds on the run's clock.
        graph: The graph as it ran.
        metrics: Every node's and edge's figures at the end of the run.
        turns: Every turn, in the order each began.
    """

    model_config = _FROZEN
    version: int = TRACE_VERSION
    created: str = ""
    duration_s: float = 0.0
    graph: GraphSpec
    metrics: GraphMetrics
    turns: tuple[TurnTrace, ...] = ()

    def node_metrics(self, name: str) -> NodeMetrics | None:
        """The figures of the node named ``name``, or ``None`` if the trace has none."""
        return next((n for n in self.metrics.nodes if n.name == name), None)

    def edge_metrics(self, edge: EdgeSpec) -> EdgeMetrics | None:
        """The figures of ``edge`` (matched by its ports), or ``None`` if the trace has none."""
        source = f"{edge.source}.{edge.source_port}"
        target = f"{edge.target}.{edge.target_port}"
        return next(
            (e for e in self.metrics.edges if e.source == source and e.target == target), None
        )

    def mismatches(self, spec: GraphSpec) -> list[str]:
        """Nodes of ``spec`` the trace has no figures for (a trace of another graph)."""
        traced = {n.name for n in self.metrics.nodes}
        return [n.name for n in spec.nodes if n.name not in traced]

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the trace as indented JSON to ``path``."""
        Path(path).write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> Trace:
        """Read a trace written by :meth:`write`.

        Raises:
            TraceError: The file is missing, not a trace, or from a newer flowkit; the
                message names the file and what is wrong.
        """
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise TraceError(f"{path}: cannot read the trace ({exc.strerror})") from exc
        try:
            trace = cls.model_validate_json(text)
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "the file"
            raise TraceError(
                f"{path}: not a flowkit trace ({where}: {first['msg']}); write one with "
                "`flowkit run GRAPH --input IN.wav --output OUT.wav --trace FILE`"
            ) from exc
        if trace.version > TRACE_VERSION:
            raise TraceError(
                f"{path}: trace format {trace.version} is newer than this flowkit reads "
                f"({TRACE_VERSION}); upgrade flowkit"
            )
        return trace


def trace_of_run(runner: GraphRunner, timeline: TurnTimeline, origin: float) -> Trace:
    """The trace of ``runner``'s run so far; call it on the run's loop.

    Args:
        runner: The graph's runner (started; it may have closed since).
        timeline: The timeline attached to it.
        origin: The loop time at which the graph started (stage times count from it).
    """
    now = asyncio.get_running_loop().time()
    return Trace(
        created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        duration_s=max(0.0, now - origin),
        graph=graph_spec(runner.plan),
        metrics=runner.metrics(),
        turns=tuple(TurnTrace.of(record, origin) for record in timeline.turns),
    )
