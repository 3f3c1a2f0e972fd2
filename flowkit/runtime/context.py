"""What a running node can reach: its loop, scheduler, logger, job, and helpers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from reactivex.scheduler.eventloop import AsyncIOScheduler

if TYPE_CHECKING:
    from flowkit.runtime.runner import GraphRunner

__all__ = ["NodeContext", "TaskStarter"]

R = TypeVar("R")

#: What a node's helper objects take to start a task the node owns (so a restart of the
#: node cancels it): :meth:`NodeContext.create_task`, or a wrapper of it.
TaskStarter = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]


class NodeContext:
    """A running node's handle on the runtime (``self.ctx`` inside ``wire`` and ``run``).

    Attributes:
        node_name: The node's name in its graph.
        graph_name: The graph's name.
        loop: The job's event loop.
        scheduler: A reactivex scheduler on that loop (timers, debounce, ...).
        logger: A logger that names the graph and node in every record.
        job: The job this graph runs for (``None`` outside a LiveKit job).
    """

    def __init__(
        self,
        runner: GraphRunner,
        node_name: str,
        loop: asyncio.AbstractEventLoop,
        scheduler: AsyncIOScheduler,
        job: Any,
    ) -> None:
        self._runner = runner
        self.node_name = node_name
        self.graph_name = runner.graph.name
        self.loop = loop
        self.scheduler = scheduler
        self.job = job
        self.logger = logging.LoggerAdapter(
            logging.getLogger(f"flowkit.node.{node_name}"),
            {"graph": self.graph_name, "node": node_name},
        )

    def create_task(self, coro: Coroutine[Any, Any, R], *, name: str = "") -> asyncio.Task[R]:
        """Start a task owned by this node.

        The task is cancelled when the node restarts or the graph closes; an exception it
        raises is this node's error (its policy applies).
        """
        return self._runner._create_node_task(self.node_name, coro, name)

    def output_linked(self, port: str) -> bool:
        """Whether the graph links this node's output ``port`` to anything.

        For a node that offers a feature only through an optional output (a tool's speech
        needs the router's ``speech`` linked): it can refuse the feature clearly, rather
        than send into a port that nobody reads.
        """
        return any(
            edge.src.node is not None
            and edge.src.node.name == self.node_name
            and edge.src.name == port
            for edge in self._runner.plan.edges
        )

    def input_linked(self, port: str) -> bool:
        """Whether the graph links anything into this node's input ``port``.

        An unlinked input ends at once; a node that can follow either of two inputs (a
        speaker's reports, or the text when there is no speaker) asks which one it has.
        """
        return any(
            edge.dst.node is not None
            and edge.dst.node.name == self.node_name
            and edge.dst.name == port
            for edge in self._runner.plan.edges
        )

    async def run_in_thread(self, fn: Callable[..., R], *args: Any) -> R:
        """Run CPU-heavy ``fn(*args)`` on a worker thread and await its result on the loop."""
        return await self.loop.run_in_executor(self._runner._executor(self.node_name), fn, *args)

    def report_error(self, error: Exception) -> None:
        """Report an error caught inside the node; the node's error policy applies."""
        self._runner._node_failed(self.node_name, error)
