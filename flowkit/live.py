"""The live view: a terminal dashboard of a running graph, refreshed a few times a second.

:class:`LiveView` listens to a started :class:`~flowkit.runtime.runner.GraphRunner` and
renders, on demand, what it saw:

- every node with its message counts, its rates over the last seconds (from the differences
  between :meth:`GraphRunner.metrics` snapshots), its latency and its errors;
- the agent's and the user's state (the last ``AgentState`` / ``UserState`` on any output
  port of those types);
- the last final transcripts, the user's and the agent's;
- the last turns' latency breakdown (a :class:`~flowkit.timeline.TurnTimeline`).

:func:`live_dashboard` shows it with ``rich.live.Live`` while the graph runs
(``flowkit run --live``); :class:`JobsView` is the worker's version (``flowkit start --live``):
one table of its jobs and their graphs' nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Protocol

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from flowkit.following import Following
from flowkit.messages import AgentState, Transcript, UserState
from flowkit.runtime.metrics import GraphMetrics
from flowkit.timeline import LATENCY_NAMES, TurnTimeline

if TYPE_CHECKING:
    from flowkit.runtime.runner import GraphRunner
    from flowkit.worker.worker import Worker

__all__ = ["REFRESH_PER_SECOND", "JobsView", "LiveView", "View", "live_dashboard", "nodes_table"]

REFRESH_PER_SECOND = 4.0
"""How often the dashboard is redrawn."""

_RATE_WINDOW_S = 2.0  # rates over the last two seconds: steady enough to read, still live
_TRANSCRIPTS = 6
_TURNS = 3


class _Rates:
    """Messages per second per node, from the last seconds of metrics snapshots."""

    def __init__(self, window: float = _RATE_WINDOW_S) -> None:
        self.window = window
        self._history: deque[tuple[float, dict[str, tuple[int, int]]]] = deque()

    def update(self, now: float, metrics: GraphMetrics) -> dict[str, tuple[float, float]]:
        """Note ``metrics`` at ``now``; every node's (in, out) messages per second."""
        counts = {n.name: (n.messages_in, n.messages_out) for n in metrics.nodes}
        self._history.append((now, counts))
        # Keep one snapshot at least a window old, so the rate spans the whole window.
        while len(self._history) > 2 and now - self._history[1][0] >= self.window:
            self._history.popleft()
        then, old = self._history[0]
        span = now - then
        if span <= 0:
            return {name: (0.0, 0.0) for name in counts}
        return {
            name: ((i - old.get(name, (0, 0))[0]) / span, (o - old.get(name, (0, 0))[1]) / span)
            for name, (i, o) in counts.items()
        }


class LiveView:
    """What the dashboard shows of one running graph (see the module docs).

    Attach it right after ``await runner.start()``, like a timeline, so no state change or
    transcript is missed: ``view = LiveView.attach(runner)``; :meth:`render` at any time.

    Args:
        runner: The running graph.
        timeline: The turn timeline to show (a new one is attached if not given).
        clock: The time source for rates; the running loop's clock by default.
    """

    def __init__(
        self, runner: GraphRunner, timeline: TurnTimeline | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.runner = runner
        self.timeline = timeline
        self.agent_state = "-"
        self.user_state = "-"
        self.transcripts: deque[tuple[str, str]] = deque(maxlen=_TRANSCRIPTS)
        self._seen: deque[Transcript] = deque(maxlen=_TRANSCRIPTS * 4)
        self._clock = clock
        self._origin = 0.0
        self._rates = _Rates()
        self.rates: dict[str, tuple[float, float]] = {}
        self._following = Following()

    @classmethod
    def attach(
        cls, runner: GraphRunner, timeline: TurnTimeline | None = None,
        clock: Callable[[], float] | None = None,
    ) -> LiveView:
        """A view listening to ``runner``, which must have started (see the class docs)."""
        view = cls(runner, timeline, clock)
        view.listen()
        return view

    def listen(self) -> None:
        """Subscribe to the runner's state and transcript ports (found by type in its plan)."""
        if self._clock is None:
            self._clock = asyncio.get_running_loop().time
        self._origin = self._clock()
        if self.timeline is None:
            self.timeline = TurnTimeline.attach(self.runner, self._clock)
        handlers: tuple[tuple[type, Callable[[object], None]], ...] = (
            (AgentState, self._on_agent_state),
            (UserState, self._on_user_state),
            (Transcript, self._on_transcript),
        )
        for kind, handler in handlers:
            self._following.follow(self.runner, kind, handler)

    def detach(self) -> None:
        """Stop listening (what was seen stays)."""
        self._following.dispose()
        if self.timeline is not None:
            self.timeline.detach()

    def _on_agent_state(self, message: object) -> None:
        if isinstance(message, AgentState):
            self.agent_state = str(message.state)

    def _on_user_state(self, message: object) -> None:
        if isinstance(message, UserState):
            self.user_state = str(message.state)

    def _on_transcript(self, message: object) -> None:
        if not isinstance(message, Transcript) or not message.final or not message.text:
            return
        # A node that passes a transcript on (the same object) must not show it twice.
        if any(seen is message for seen in self._seen):
            return
        self._seen.append(message)
        self.transcripts.append((message.speaker, message.text.strip()))

    def render(self) -> RenderableType:
        """The dashboard as it is now; each call also moves the rates on."""
        assert self._clock is not None, "listen() sets the clock"
        now = self._clock()
        metrics = self.runner.metrics()
        rates = self.rates = self._rates.update(now, metrics)
        header = Text()
        header.append(f"{metrics.graph}", style="bold")
        header.append(f"  {self.runner.state}  {now - self._origin:.1f} s   ")
        header.append("agent: ", style="bold green").append(self.agent_state + "   ")
        header.append("user: ", style="bold cyan").append(self.user_state)
        parts: list[RenderableType] = [header, nodes_table(metrics, rates)]
        parts.append(self._transcripts())
        if self.timeline is not None and self.timeline.turns:
            parts.append(self._turns())
        return Group(*parts)

    def _transcripts(self) -> RenderableType:
        text = Text()
        if not self.transcripts:
            return Text("(no transcripts yet)", style="dim")
        for speaker, said in self.transcripts:
            style = "bold green" if speaker == "agent" else "bold cyan"
            text.append(f"{speaker}: ", style=style).append(said + "\n")
        text.rstrip()
        return text

    def _turns(self) -> RenderableType:
        assert self.timeline is not None
        records = self.timeline.turns
        table = Table(title="last turns (ms)", title_justify="left")
        table.add_column("turn", justify="right")
        for name in LATENCY_NAMES:
            table.add_column(name.replace("_", "-"), justify="right")
        first = max(0, len(records) - _TURNS)
        for number, record in enumerate(records[first:], start=first + 1):
            table.add_row(str(number), *(
                "-" if value is None else f"{value * 1000:.0f}"
                for value in record.latencies().values()
            ))
        return table


def nodes_table(
    metrics: GraphMetrics, rates: dict[str, tuple[float, float]], title: str = "nodes",
) -> Table:
    """Every node of ``metrics`` with its counts, rates, latency and troubles."""
    table = Table(title=title, title_justify="left")
    for column in ("node", "in", "out", "in/s", "out/s", "p50 ms", "p95 ms", "busy s"):
        table.add_column(column, justify="left" if column == "node" else "right")
    table.add_column("errors / drops", justify="right")
    for node in metrics.nodes:
        rate_in, rate_out = rates.get(node.name, (0.0, 0.0))
        trouble = f"{node.errors} / {node.dropped}" if node.errors or node.dropped else ""
        table.add_row(
            node.name, str(node.messages_in), str(node.messages_out),
            f"{rate_in:.1f}", f"{rate_out:.1f}",
            f"{node.latency_p50_ms:.2f}", f"{node.latency_p95_ms:.2f}", f"{node.busy_s:.3f}",
            Text(trouble, style="bold red"),
        )
    return table


class JobsView:
    """The worker's dashboard: its jobs and each job's nodes (``flowkit start --live``).

    Args:
        worker: The worker shown.
    """

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self._rates: dict[str, _Rates] = {}

    def render(self) -> RenderableType:
        """The dashboard as it is now; each call also moves the rates on."""
        w = self.worker
        now = time.monotonic()
        status = "connected" if w.connected else "not connected"
        memory = ""
        if w.memory.rss_mb is not None:
            over = " (over limit)" if w.memory.over_limit else ""
            memory = f"mem {w.memory.rss_mb:.0f} MB{over}  "
        header = Text(
            f"worker {w.id or '-'}  {status}{'  draining' if w.draining else ''}  "
            f"load {w.load:.2f}  {memory}{len(w.jobs)} job(s)  ended: "
            + ", ".join(f"{k} {v}" for k, v in sorted(w.outcomes.items())),
        )
        parts: list[RenderableType] = [header]
        jobs = list(w.jobs.values())
        for job in jobs:
            title = f"job {job.id} · room {job.room_name} · {time.time() - job.started:.0f} s"
            if job.runner is None:
                parts.append(Text(title + " · starting", style="dim"))
                continue
            metrics = job.runner.metrics()
            rates = self._rates.setdefault(job.id, _Rates()).update(now, metrics)
            parts.append(nodes_table(metrics, rates, f"{title} · graph {metrics.graph}"))
        for gone in set(self._rates) - {j.id for j in jobs}:
            del self._rates[gone]
        if not jobs:
            parts.append(Text("(no jobs)", style="dim"))
        return Group(*parts)


class View(Protocol):
    """Anything :func:`live_dashboard` can show: :class:`LiveView`, :class:`JobsView`."""

    def render(self) -> RenderableType:
        """The picture as it is now."""
        ...


class _Renders:
    """A rich renderable that asks its view afresh every time Live redraws."""

    def __init__(self, view: View) -> None:
        self.view = view

    def __rich__(self) -> RenderableType:
        return self.view.render()


@contextlib.asynccontextmanager
async def live_dashboard(
    view: View, console: Console,
    refresh_per_second: float = REFRESH_PER_SECOND,
) -> AsyncIterator[Live]:
    """Show ``view`` on ``console`` while the body runs, redrawn from a task on this loop.

    The redraws are driven from the event loop, not rich's own thread: the view reads the
    runner's counters, which only the loop's thread may touch safely. The last picture stays
    on the console when the body ends (on a file, it is the only one written).
    """
    live = Live(
        _Renders(view), console=console, auto_refresh=False, transient=False,
        redirect_stdout=False, redirect_stderr=False,
    )

    async def redraw() -> None:
        while True:
            live.refresh()
            await asyncio.sleep(1 / refresh_per_second)

    with live:
        task = asyncio.get_running_loop().create_task(redraw())
        try:
            yield live
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if not console.is_terminal:
        console.line()  # on a file, the last picture ends without a line break
