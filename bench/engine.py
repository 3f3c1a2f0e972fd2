"""Engine benchmark: per-hop cost of the flowkit runtime through chains of nodes.

A chain is ``source -> k x (x + 1) -> sink``. The source is an async node whose ``run`` pushes
N integers synchronously (``self.out.send(i)``; ``await put(i)`` for async hops, whose queues
are bounded), so its own cost is the same whatever follows it; the sink is a function node
returning ``None``. For each node style the benchmark times chains of 0 hops (source -> sink)
and of k hops, and reports::

    per-hop cost = (time of chain k - median time of chain 0) / (k * N)

The baseline is the same push-style chain written as k nested plain Python function calls
(``hop(x) = next(x + 1)``), timed the same way. The edge tap (``PortStream.on_next`` into one
``EdgeTap`` and on to the consumer) is also timed on its own.

Run ``python bench/engine.py`` (about 1-2 minutes), ``--quick`` (about 15 s); the JSON goes
to ``bench/results/engine.json`` unless ``--json PATH`` says otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import platform
import statistics
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any

import reactivex
from reactivex import operators as ops
from rich.console import Console
from rich.table import Table

import flowkit as fk
from flowkit.runtime.metrics import EdgeStats, NodeStats
from flowkit.runtime.streams import Clock, EdgeTap, PortStream

GOAL_US = 3.0  # the goal: runtime per-hop overhead, median, taps included
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "engine.json"


# --- the nodes --------------------------------------------------------------------------------


class _Probe:
    """Where the source and the sink leave their timestamps (one chain runs at a time)."""

    __slots__ = ("last", "n", "t_end", "t_start", "use_put")

    def __init__(self) -> None:
        self.n = 0
        self.last = -1
        self.use_put = False
        self.t_start = 0.0
        self.t_end = 0.0


PROBE = _Probe()


class Source(fk.Node):
    """Pushes 0..N-1 from its task, synchronously (or with ``put`` for queued consumers)."""

    out: fk.Out[int]

    async def run(self) -> None:
        probe = PROBE
        n = probe.n
        if probe.use_put:
            put = self.out.put
            probe.t_start = perf_counter()
            for i in range(n):
                await put(i)
        else:
            send = self.out.send
            probe.t_start = perf_counter()
            for i in range(n):
                send(i)


@fk.node
def sink(x: int) -> None:
    if x == PROBE.last:
        PROBE.t_end = perf_counter()


@fk.node
def inc(x: int) -> int:
    return x + 1


class RxInc(fk.Node):
    """``x + 1`` as an Rx node: ``ops.map`` over its input."""

    x: fk.In[int]
    out: fk.Out[int]

    def wire(self, x: reactivex.Observable[int]) -> reactivex.Observable[int]:
        return x.pipe(ops.map(_plus_one))


def _plus_one(x: int) -> int:
    return x + 1


class AsyncInc(fk.Node):
    """``x + 1`` as an async node: reads its input queue, sends each result."""

    x: fk.In[int]
    out: fk.Out[int]

    async def run(self, x: AsyncIterator[int]) -> None:
        send = self.out.send
        async for v in x:
            send(v + 1)


HOPS: dict[str, Callable[[], fk.Node]] = {
    "function": inc,
    "rx": RxInc,
    "async": AsyncInc,
}


# --- timing -----------------------------------------------------------------------------------


async def time_chain(style: str, k: int, n: int) -> float:
    """Seconds from the source's first send to the sink's last message, one fresh graph."""
    g = fk.Graph(f"bench-{style}-{k}")
    tail: Any = g.add(Source(), "source")
    for i in range(k):
        tail = tail >> g.add(HOPS[style](), f"hop{i}")
    tail >> g.add(sink(), "sink")
    PROBE.n, PROBE.last = n, n - 1 + k
    PROBE.use_put = style == "async"  # a queued consumer: respect its bound, as a producer should
    PROBE.t_start = PROBE.t_end = 0.0
    runner = fk.GraphRunner(g)
    gc.collect()
    await runner.run()
    if PROBE.t_end == 0.0:
        raise RuntimeError(f"{style} chain of {k}: the sink never saw the last message")
    return PROBE.t_end - PROBE.t_start


def time_plain(k: int, n: int) -> float:
    """Seconds for the same chain as nested plain calls: ``hop(x) = next(x + 1)``."""
    last = n - 1 + k
    end = [0.0]

    def plain_sink(x: int) -> None:
        if x == last:
            end[0] = perf_counter()

    head: Callable[[int], None] = plain_sink
    for _ in range(k):
        head = _plain_hop(head)
    gc.collect()
    start = perf_counter()
    for i in range(n):
        head(i)
    return end[0] - start


def _plain_hop(nxt: Callable[[int], None]) -> Callable[[int], None]:
    def hop(x: int) -> None:
        return nxt(x + 1)

    return hop


class _Null:
    """A consumer that does nothing (so only the delivery path is timed)."""

    __slots__ = ()

    def on_next(self, value: Any) -> None:
        pass


def time_tap(n: int) -> tuple[float, float]:
    """Seconds for n messages through ``PortStream -> EdgeTap -> consumer``, and direct."""
    stats = NodeStats("bench")
    stream: PortStream[int] = PortStream("src.out", stats)

    def fail(exc: Exception) -> None:
        raise exc

    tap = EdgeTap(stream, EdgeStats("src.out", "dst.x"), NodeStats("dst"), Clock(), fail)
    consumer = _Null()
    tap.observer = consumer
    stream.attach(tap)
    emit, direct = stream.on_next, consumer.on_next
    gc.collect()
    start = perf_counter()
    for i in range(n):
        emit(i)
    tapped = perf_counter() - start
    gc.collect()
    start = perf_counter()
    for i in range(n):
        direct(i)
    return tapped, perf_counter() - start


# --- figures ----------------------------------------------------------------------------------


def quantile(values: list[float], q: float) -> float:
    """The q-quantile (0-1) with linear interpolation between the closest ranks."""
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass
class Row:
    """One configuration's figures (times in microseconds)."""

    style: str
    hops: int
    messages: int
    repetitions: int
    msgs_per_s: float
    per_hop_us_median: float
    per_hop_us_p90: float
    baseline_per_hop_us: float
    ratio: float
    meets_goal: bool
    chain_s: list[float] = field(default_factory=list)
    empty_chain_s_median: float = 0.0


def per_hop(times: list[float], empty: list[float], k: int, n: int) -> list[float]:
    """Per-hop microseconds of each repetition, against the median empty chain."""
    base = statistics.median(empty)
    return [(t - base) / (k * n) * 1e6 for t in times]


@dataclass
class Plan:
    """How much to run."""

    n: int
    n_async: int
    reps: int
    hops: tuple[int, ...]
    async_hops: tuple[int, ...]
    tap_n: int


FULL = Plan(n=50_000, n_async=20_000, reps=7, hops=(1, 10, 50), async_hops=(1, 10),
            tap_n=500_000)
QUICK = Plan(n=10_000, n_async=5_000, reps=5, hops=(1, 10, 50), async_hops=(1, 10),
             tap_n=200_000)


async def run_style(style: str, hops: tuple[int, ...], n: int, reps: int) -> list[Row]:
    """Time the empty chain and every chain of ``hops`` for one style, interleaved."""
    await time_chain(style, max(hops), min(n, 1000))  # warm-up: imports, code paths, caches
    empty: list[float] = []
    times: dict[int, list[float]] = {k: [] for k in hops}
    plain_empty: list[float] = []
    plain: dict[int, list[float]] = {k: [] for k in hops}
    for _ in range(reps):
        empty.append(await time_chain(style, 0, n))
        plain_empty.append(time_plain(0, n))
        for k in hops:
            times[k].append(await time_chain(style, k, n))
            plain[k].append(time_plain(k, n))
    rows = []
    for k in hops:
        costs = per_hop(times[k], empty, k, n)
        baseline = statistics.median(per_hop(plain[k], plain_empty, k, n))
        median = statistics.median(costs)
        rows.append(Row(
            style=style, hops=k, messages=n, repetitions=reps,
            msgs_per_s=n / statistics.median(times[k]),
            per_hop_us_median=median, per_hop_us_p90=quantile(costs, 0.9),
            baseline_per_hop_us=baseline, ratio=median / baseline if baseline > 0 else math.inf,
            meets_goal=median <= GOAL_US, chain_s=times[k],
            empty_chain_s_median=statistics.median(empty),
        ))
    return rows


def measure_tap(n: int, reps: int) -> dict[str, float]:
    """Per-message cost of one edge (port stream + tap + the timing it does), in µs."""
    tapped, direct = [], []
    for _ in range(reps):
        t, d = time_tap(n)
        tapped.append(t)
        direct.append(d)
    costs = [(t - d) / n * 1e6 for t, d in zip(tapped, direct, strict=True)]
    return {
        "messages": n,
        "repetitions": reps,
        "edge_us_median": statistics.median(costs),
        "edge_us_p90": quantile(costs, 0.9),
    }


# --- output -----------------------------------------------------------------------------------


def table(rows: list[Row], tap: dict[str, float]) -> Table:
    """The rich table of every configuration."""
    t = Table(title=f"flowkit engine: per-hop cost (goal: median <= {GOAL_US:g} µs)")
    for col in ("style", "hops", "N", "msgs/s", "µs/hop p50", "µs/hop p90", "plain µs/hop",
                "ratio", "goal"):
        t.add_column(col, justify="left" if col in ("style", "goal") else "right", no_wrap=True)
    for r in rows:
        t.add_row(
            r.style, str(r.hops), f"{r.messages:,}", f"{r.msgs_per_s:,.0f}",
            f"{r.per_hop_us_median:.2f}", f"{r.per_hop_us_p90:.2f}",
            f"{r.baseline_per_hop_us:.3f}", f"{r.ratio:.0f}x",
            "[green]met[/]" if r.meets_goal else "[red]missed[/]",
        )
    t.caption = (
        f"edge tap alone (PortStream -> EdgeTap -> consumer, minus a direct call): "
        f"{tap['edge_us_median']:.2f} µs p50, {tap['edge_us_p90']:.2f} µs p90 per message"
    )
    return t


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a ~15 s run with fewer messages")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write JSON")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    console = Console(width=max(Console().width, 100))  # a pipe must not squeeze the table
    started = perf_counter()

    async def body() -> list[Row]:
        rows = []
        for style in ("function", "rx"):
            rows += await run_style(style, plan.hops, plan.n, plan.reps)
        rows += await run_style("async", plan.async_hops, plan.n_async, plan.reps)
        return rows

    rows = asyncio.run(body())
    tap = measure_tap(plan.tap_n, plan.reps)
    elapsed = perf_counter() - started
    console.print(table(rows, tap))
    console.print(f"ran in {elapsed:.1f} s ({'quick' if args.quick else 'full'} mode)")
    report = {
        "benchmark": "engine",
        "mode": "quick" if args.quick else "full",
        "goal_per_hop_us": GOAL_US,
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "elapsed_s": elapsed,
        "plan": asdict(plan),
        "edge_tap": tap,
        "results": [asdict(r) for r in rows],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
