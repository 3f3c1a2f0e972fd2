"""The runner: one graph, instantiated on the job's event loop, measured, and closed cleanly.

``start`` builds one :class:`~flowkit.runtime.streams.PortStream` per output and one
:class:`~flowkit.runtime.streams.InputStream` per input, then activates every node in its
style (see :mod:`flowkit.runtime.activation`). ``wait`` returns when every node has finished
(all sources completed and completion flowed through) or raises
:class:`~flowkit.runtime.errors.GraphFailed`. ``close`` disposes every subscription, cancels
and awaits every task the graph owns, and unbinds the ports: after it, nothing is left.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
from collections import defaultdict
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from reactivex import Observable
from reactivex.scheduler.eventloop import AsyncIOScheduler
from reactivex.subject import Subject

from flowkit.graph import Graph
from flowkit.node import Node, NodeStyle
from flowkit.policy import ErrorPolicy
from flowkit.problems import GraphError
from flowkit.runtime import activation
from flowkit.runtime.bridges import settle_bridges
from flowkit.runtime.context import NodeContext
from flowkit.runtime.errors import GraphFailed, NodeError
from flowkit.runtime.metrics import EdgeMetrics, EdgeStats, GraphMetrics, NodeMetrics, NodeStats
from flowkit.runtime.queues import InputQueue
from flowkit.runtime.streams import Clock, EdgeTap, InputStream, PortStream
from flowkit.usage import UsageLedger

__all__ = ["GraphRunner", "RunnerState"]

log = logging.getLogger("flowkit.runtime")
R = TypeVar("R")


class RunnerState(enum.StrEnum):
    """Where a runner is in its life."""

    CREATED = "created"
    RUNNING = "running"
    CLOSING = "closing"
    CLOSED = "closed"


class NodeRun:
    """The runtime side of one node: its streams, what to dispose, its tasks."""

    def __init__(self, node: Node, stats: NodeStats) -> None:
        self.node = node
        self.stats = stats
        self.inputs: dict[str, InputStream[Any]] = {}
        # The queues an async node reads its inputs from (none for other styles).
        self.queues: dict[str, InputQueue[Any]] = {}
        self.outputs: dict[str, PortStream[Any]] = {}
        self.cleanup: list[Any] = []
        self.tasks: set[asyncio.Task[Any]] = set()
        self.open = 0
        self.restarts = 0
        self.finished = False

    @property
    def name(self) -> str:
        """The node's name."""
        return self.node.name


class GraphRunner:
    """Runs one graph on the current asyncio loop.

    Args:
        graph: The graph; it is validated here and a :class:`~flowkit.problems.GraphError`
            lists every problem if it is not valid.
        job: What ``ctx.job`` gives the nodes (the LiveKit job, or ``None``).
        close_timeout: How long :meth:`close` waits for the nodes' tasks to end once
            cancelled. A task still running then (a node that swallowed its cancellation)
            is logged by node name and left behind, so a job still leaves its room.

    Raises:
        GraphError: The graph is not valid.
        ValueError: ``close_timeout`` is not positive.

    Use ``async with GraphRunner(graph) as runner: await runner.wait()``, or ``await
    runner.run()`` for start, wait and close in one call.

    Attributes:
        usage: What the graph's providers consumed since it started (a
            :class:`~flowkit.usage.UsageLedger`), counted into the job's
            (``job.usage``) too when ``job`` is a :class:`~flowkit.job.JobContext`.
    """

    def __init__(self, graph: Graph, *, job: Any = None, close_timeout: float = 10.0) -> None:
        if not close_timeout > 0:
            raise ValueError(
                f"GraphRunner(close_timeout={close_timeout!r}): the wait for the nodes' tasks "
                "to end must be positive (cancelled tasks need a loop iteration to finish); "
                "10 s is the default"
            )
        plan = graph.resolve()
        if not plan.ok:
            raise GraphError(graph.name, list(plan.problems))
        self.graph = graph
        self.plan = plan
        self.job = job
        self.close_timeout = close_timeout
        self.state = RunnerState.CREATED
        self.node_errors: list[NodeError] = []
        self._errors: Subject[NodeError] = Subject()
        self._clock = Clock()
        self._runs: dict[str, NodeRun] = {}
        self._edge_stats: list[EdgeStats] = []
        self._executors: dict[str, ThreadPoolExecutor] = {}
        self._failure: GraphFailed | None = None
        self._done: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.scheduler: AsyncIOScheduler | None = None
        job_usage = getattr(job, "usage", None)
        self.usage = UsageLedger(into=job_usage if isinstance(job_usage, UsageLedger) else None)

    @property
    def errors(self) -> Observable[NodeError]:
        """Every error caught at a node boundary, as it happens."""
        return self._errors

    async def start(self) -> None:
        """Wire every node and start the graph's tasks."""
        if self.state is not RunnerState.CREATED:
            raise RuntimeError(
                f"graph {self.graph.name!r}: a runner starts once (it is {self.state}); "
                "build a fresh graph and runner for each run"
            )
        loop = self._loop = asyncio.get_running_loop()
        self.scheduler = AsyncIOScheduler(loop)
        self._done = asyncio.Event()
        self._build_streams(loop)
        self.usage.listen(self)  # before any node runs: no request goes uncounted
        self.state = RunnerState.RUNNING
        # Consumers first: a source that emits as soon as it is subscribed must find every
        # edge downstream of it already in place.
        runs = list(self._runs.values())
        for run in [r for r in runs if r.inputs] + [r for r in runs if not r.inputs]:
            self._activate(run)
        self._check_done()

    def _build_streams(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self.scheduler is not None
        for node in self.plan.nodes:
            run = NodeRun(node, NodeStats(node.name))
            for name, port in node.outputs.items():
                stream: PortStream[Any] = PortStream(port.qualname, run.stats)
                run.outputs[name] = stream
                port._stream = stream
            node._ctx = NodeContext(self, node.name, loop, self.scheduler, self.job)
            self._runs[node.name] = run
        taps: dict[tuple[str, str], list[EdgeTap]] = defaultdict(list)
        for edge in self.plan.edges:
            assert edge.src.node is not None and edge.dst.node is not None
            src_run, dst_run = self._runs[edge.src.node.name], self._runs[edge.dst.node.name]
            stats = EdgeStats(edge.src.qualname, edge.dst.qualname)
            self._edge_stats.append(stats)
            consumer = dst_run.name
            tap = EdgeTap(
                src_run.outputs[edge.src.name], stats, dst_run.stats, self._clock,
                functools.partial(self._node_failed, consumer),
                feedback=edge.is_feedback, loop=loop,
            )
            taps[(consumer, edge.dst.name)].append(tap)
        for run in self._runs.values():
            for name, in_port in run.node.inputs.items():
                run.inputs[name] = InputStream(in_port.qualname, taps[(run.name, name)])

    def _activate(self, run: NodeRun) -> None:
        try:
            activation.activate(self, run)
        except Exception as exc:
            # A node that cannot even start would fail the same way on every re-wire, so
            # no policy can keep it: the graph ends, naming the node.
            self._node_failed(run.name, exc, starting=True)

    def _deactivate(self, run: NodeRun) -> None:
        cleanup, run.cleanup = run.cleanup, []
        run.queues = {}
        for dispose in reversed(cleanup):
            dispose()
        for task in run.tasks:
            task.cancel()
        run.open = 0

    def _restart(self, run: NodeRun) -> None:
        if self.state is not RunnerState.RUNNING or run.finished:
            return
        self._deactivate(run)
        run.stats.restarts += 1
        self._activate(run)

    def finish_node(self, run: NodeRun) -> None:
        """Mark ``run``'s node finished: complete its outputs; the graph may be done."""
        if run.finished:
            return
        run.finished = True
        for stream in run.outputs.values():
            stream.on_completed()
        self._check_done()

    def _check_done(self) -> None:
        if self._done is not None and all(r.finished for r in self._runs.values()):
            self._done.set()

    def _node_failed(self, node_name: str, error: Exception, *, starting: bool = False) -> None:
        run = self._runs[node_name]
        if self.state is not RunnerState.RUNNING:
            log.debug("node %s raised while the graph was %s: %r", node_name, self.state, error)
            return
        node = run.node
        policy = node.error_policy
        style = type(node).style
        rewire = style is not NodeStyle.FUNCTION
        if starting:
            action = "ended graph: the node failed to start"
        elif policy is ErrorPolicy.END_GRAPH:
            action = "ended graph"
        elif policy is ErrorPolicy.RESTART and run.restarts >= type(node).max_restarts:
            action = f"ended graph after {run.restarts} restarts"
        elif policy is ErrorPolicy.RESTART:
            run.restarts += 1
            action = "restarted" if rewire else "skipped (a function node keeps no state)"
        else:
            action = "skipped" if not rewire else "rewired (an Rx chain ends on error)"
        report = NodeError(self.graph.name, node_name, error, policy, action)
        run.stats.errors += 1
        self.node_errors.append(report)
        log.error(
            "%s", report, exc_info=error,
            extra={"graph": self.graph.name, "node": node_name, "action": action},
        )
        self._errors.on_next(report)
        if action.startswith("ended graph"):
            self._fail(report)
        elif rewire and self._loop is not None:
            # Not from inside the failing call: the chain that raised is still unwinding.
            self._loop.call_soon(self._restart, run)

    def _fail(self, report: NodeError) -> None:
        if self._failure is None:
            self._failure = GraphFailed(report)
        if self._done is not None:
            self._done.set()

    def _create_node_task(
        self, node_name: str, coro: Coroutine[Any, Any, R], name: str, *, main: bool = False
    ) -> asyncio.Task[R]:
        run = self._runs[node_name]
        assert self._loop is not None
        task = self._loop.create_task(coro, name=f"flowkit:{self.graph.name}:{node_name}:{name}")
        run.tasks.add(task)

        def done(t: asyncio.Task[R]) -> None:
            run.tasks.discard(t)
            if t.cancelled():
                return
            error = t.exception()
            if error is not None:
                if isinstance(error, Exception):
                    self._node_failed(node_name, error)
                return
            if main:
                self.finish_node(run)
            if run.finished and not run.tasks:
                # Nothing of the node is left to read its inputs: what still arrives would
                # queue for the rest of the job.
                for queue in run.queues.values():
                    queue.retire()

        task.add_done_callback(done)
        return task

    def _executor(self, node_name: str) -> ThreadPoolExecutor:
        executor = self._executors.get(node_name)
        if executor is None:
            # One worker per node: results come back in the order messages arrived.
            executor = ThreadPoolExecutor(1, thread_name_prefix=f"flowkit-{node_name}")
            self._executors[node_name] = executor
        return executor

    async def wait(self) -> None:
        """Wait until every node has finished; raise ``GraphFailed`` if the graph failed."""
        if self._done is None:
            raise RuntimeError("wait() before start(): call await runner.start() first")
        await self._done.wait()
        if self._failure is not None:
            raise self._failure

    async def close(self) -> None:
        """Stop everything: dispose subscriptions, cancel and await tasks, unbind ports."""
        if self.state in (RunnerState.CLOSING, RunnerState.CLOSED):
            return
        self.state = RunnerState.CLOSING
        for run in self._runs.values():
            self._deactivate(run)
        owners = {task: run.name for run in self._runs.values() for task in run.tasks}
        if owners:
            _, stuck = await asyncio.wait(owners, timeout=self.close_timeout)
            if stuck:
                # Waiting on would keep a job in its room forever over one node's bug.
                log.error(
                    "graph %r: the task of node %s did not end within %g s of being "
                    "cancelled, so the graph closes without it; a node's run() must let "
                    "asyncio.CancelledError through (re-raise it if you catch it)",
                    self.graph.name, ", ".join(sorted({repr(owners[t]) for t in stuck})),
                    self.close_timeout,
                )
                for task in stuck:
                    task.cancel()
        await settle_bridges()
        for run in self._runs.values():
            for stream in run.outputs.values():
                stream.detach_all()
            for port in run.node.outputs.values():
                port._stream = None
            run.node._ctx = None
        for executor in self._executors.values():
            executor.shutdown(wait=False, cancel_futures=True)
        self._errors.on_completed()
        self.state = RunnerState.CLOSED
        if self._done is not None:
            self._done.set()

    async def run(self) -> None:
        """Start, wait until the graph finishes, and close (also on error or cancellation)."""
        await self.start()
        try:
            await self.wait()
        finally:
            await self.close()

    async def __aenter__(self) -> GraphRunner:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def observe(self, ref: str) -> Observable[Any]:
        """The stream of output ``"node.port"`` (or a node's only output), for taps and tests."""
        node_name, _, port = ref.partition(".")
        run = self._runs.get(node_name)
        if run is None:
            raise KeyError(f"graph {self.graph.name!r} has no node {node_name!r}")
        if not port:
            if len(run.outputs) != 1:
                raise KeyError(f"node {node_name!r} has outputs {list(run.outputs)}; name one")
            port = next(iter(run.outputs))
        if port not in run.outputs:
            raise KeyError(f"node {node_name!r} has no output {port!r}: {list(run.outputs)}")
        return run.outputs[port]

    def outputs_carrying(self, kind: type | tuple[type, ...]) -> list[str]:
        """Every output declared to carry ``kind`` (or a subclass), as ``"node.port"``.

        What a listener follows (:class:`~flowkit.following.Following`) when it
        wants a message type wherever it is produced (the usage ledger, the turn timeline,
        the live view, the console), linked or not.
        """
        return [
            f"{node.name}.{port.name}"
            for node in self.plan.nodes
            for port in node.outputs.values()
            if isinstance(port.type, type) and issubclass(port.type, kind)
        ]

    def inject(self, ref: str, value: Any) -> None:
        """Deliver ``value`` to input ``"node.port"`` as if an edge had sent it (tests, tools).

        Raises:
            KeyError: There is no such node or input; the message lists the inputs.
        """
        node_name, _, port = ref.partition(".")
        run = self._runs.get(node_name)
        if run is None or port not in run.inputs:
            inputs = sorted(f"{r.name}.{p}" for r in self._runs.values() for p in r.inputs)
            raise KeyError(f"graph {self.graph.name!r} has no input {ref!r}; inputs: {inputs}")
        run.stats.messages_in += 1
        run.inputs[port].on_next(value)

    def metrics(self) -> GraphMetrics:
        """A snapshot of every node's and edge's figures."""
        return GraphMetrics(
            graph=self.graph.name,
            nodes=tuple(NodeMetrics.of(r.stats) for r in self._runs.values()),
            edges=tuple(EdgeMetrics.of(s) for s in self._edge_stats),
        )

    def live_subscriptions(self) -> int:
        """Taps, subscribers and input observers still attached (zero once closed)."""
        return sum(
            stream.listeners for r in self._runs.values() for stream in r.outputs.values()
        ) + sum(inp.observers for r in self._runs.values() for inp in r.inputs.values())

    def pending_tasks(self) -> list[asyncio.Task[Any]]:
        """Tasks of this graph that have not finished (none once closed)."""
        return [t for r in self._runs.values() for t in r.tasks if not t.done()]

    def run_of(self, node_name: str) -> NodeRun:
        """The runtime side of the node named ``node_name``."""
        return self._runs[node_name]

    def node_of(self, task: asyncio.Task[Any]) -> str | None:
        """The name of the node that ``task`` belongs to in this graph, if it is one of them.

        A node's tasks are its ``run()`` and those it made with ``ctx.create_task`` (for
        example, to name the node a :class:`~flowkit.runtime.loop_watch.LoopStall` caught).
        """
        for name, run in self._runs.items():
            if task in run.tasks:
                return name
        return None
