"""Counters the runtime keeps for every node and edge, and their frozen snapshots.

The counters are plain slotted objects updated on the hot path (a few attribute writes per
message); percentiles are computed only when a snapshot is taken, from a ring of the most
recent samples.
"""

from __future__ import annotations

from array import array

import pydantic

__all__ = [
    "RING_MASK",
    "EdgeMetrics",
    "EdgeStats",
    "GraphMetrics",
    "NodeMetrics",
    "NodeStats",
    "Reservoir",
]

_RING = 1024  # a power of two: the index wraps with a mask
RING_MASK = _RING - 1
"""Masks a sample count into a :class:`Reservoir` slot (for writers that inline ``add``)."""


class Reservoir:
    """The most recent ``_RING`` samples (nanoseconds), for percentiles."""

    __slots__ = ("count", "samples")

    def __init__(self) -> None:
        # Unboxed 64-bit slots: a list would keep an int object alive per sample (1024 per
        # node), which showed up as memory growth in the voice-session benchmark.
        self.samples = array("q", bytes(8 * _RING))
        self.count = 0

    def add(self, value: int) -> None:
        """Record one sample."""
        self.samples[self.count & RING_MASK] = value
        self.count += 1

    def percentiles_ms(self, *qs: float) -> tuple[float, ...]:
        """The given percentiles (0-100) in milliseconds; zeros before any sample."""
        n = min(self.count, _RING)
        if n == 0:
            return tuple(0.0 for _ in qs)
        ordered = sorted(self.samples[:n])
        return tuple(ordered[min(n - 1, int(q / 100 * n))] / 1e6 for q in qs)


class NodeStats:
    """Live counters of one node, measured by the runtime (never self-reported).

    The runtime times a random sample of the messages it hands a node synchronously (one
    in eight on average; see :class:`~flowkit.runtime.streams.EdgeTap`): ``busy_ns`` adds
    each sample's own time weighted by the messages since the sample before, so it
    estimates the node's total time without reading the clock for every message, and
    ``latency`` holds the samples. Counts are exact.

    Attributes:
        sample_at: The number (in ``messages_in``) of the next message to time.
        sampled_to: The number of the last message timed.
    """

    __slots__ = ("busy_ns", "dropped", "errors", "latency", "messages_in", "messages_out",
                 "name", "restarts", "sample_at", "sampled_to")

    def __init__(self, name: str) -> None:
        self.name = name
        self.messages_in = 0
        self.messages_out = 0
        self.errors = 0
        self.restarts = 0
        self.dropped = 0
        self.busy_ns = 0
        self.latency = Reservoir()
        self.sample_at = 1  # the first message is always timed
        self.sampled_to = 0


class EdgeStats:
    """Live counters of one edge; queue figures apply to edges into queued (async) inputs."""

    __slots__ = ("dropped", "max_queued", "messages", "overflowed", "queued", "source",
                 "target", "wait")

    def __init__(self, source: str, target: str) -> None:
        self.source = source
        self.target = target
        self.messages = 0
        self.queued = 0
        self.max_queued = 0
        self.dropped = 0
        self.overflowed = 0
        self.wait = Reservoir()


_FROZEN = pydantic.ConfigDict(frozen=True)


class NodeMetrics(pydantic.BaseModel):
    """A node's figures at one moment.

    ``latency_*`` is the time the node itself spent per message (downstream work excluded),
    for nodes the runtime calls synchronously (function and Rx nodes), from a random sample
    of about one message in eight; ``busy_s`` is the total estimated from the same samples.
    The counts are exact.
    """

    model_config = _FROZEN
    name: str
    messages_in: int
    messages_out: int
    errors: int
    restarts: int
    dropped: int
    busy_s: float
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float

    @classmethod
    def of(cls, stats: NodeStats) -> NodeMetrics:
        """Snapshot ``stats``."""
        p50, p95, p99 = stats.latency.percentiles_ms(50, 95, 99)
        return cls(
            name=stats.name, messages_in=stats.messages_in, messages_out=stats.messages_out,
            errors=stats.errors, restarts=stats.restarts, dropped=stats.dropped,
            busy_s=stats.busy_ns / 1e9,
            latency_p50_ms=p50, latency_p95_ms=p95, latency_p99_ms=p99,
        )


class EdgeMetrics(pydantic.BaseModel):
    """An edge's figures at one moment; ``wait_*`` is time spent queued before the consumer."""

    model_config = _FROZEN
    source: str
    target: str
    messages: int
    queue_depth: int
    max_queue_depth: int
    dropped: int
    overflowed: int
    wait_p50_ms: float
    wait_p95_ms: float
    wait_p99_ms: float

    @classmethod
    def of(cls, stats: EdgeStats) -> EdgeMetrics:
        """Snapshot ``stats``."""
        p50, p95, p99 = stats.wait.percentiles_ms(50, 95, 99)
        return cls(
            source=stats.source, target=stats.target, messages=stats.messages,
            queue_depth=stats.queued, max_queue_depth=stats.max_queued,
            dropped=stats.dropped, overflowed=stats.overflowed,
            wait_p50_ms=p50, wait_p95_ms=p95, wait_p99_ms=p99,
        )


class GraphMetrics(pydantic.BaseModel):
    """Every node's and edge's figures at one moment."""

    model_config = _FROZEN
    graph: str
    nodes: tuple[NodeMetrics, ...]
    edges: tuple[EdgeMetrics, ...]

    def node(self, name: str) -> NodeMetrics:
        """The figures of the node named ``name``."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f"no node {name!r} in the metrics of graph {self.graph!r}")

    def edge(self, source: str, target: str) -> EdgeMetrics:
        """The figures of the edge ``source`` → ``target`` (``"node.port"`` each)."""
        for edge in self.edges:
            if edge.source == source and edge.target == target:
                return edge
        raise KeyError(f"no edge {source} -> {target} in the metrics of graph {self.graph!r}")
