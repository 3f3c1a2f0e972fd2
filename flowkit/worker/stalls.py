"""The worker's report of a blocked event loop: how long, which job and node, what to do.

Every job of a worker shares one event loop, so code that blocks it stalls every call of the
worker (see :mod:`flowkit.runtime.loop_watch`). The worker's :class:`~flowkit.runtime.
loop_watch.LoopWatch` hands each stall to :class:`StallReporter`, which names the culprit
from the task that was running: a node of a job's graph (:meth:`GraphRunner.node_of
<flowkit.runtime.runner.GraphRunner.node_of>`), a job's own task (building its graph or
joining its room, where a model loaded in ``build(job)`` blocks), or code outside any job.

A place that blocks again and again (a tool called on every turn) would fill the logs: the
first stall at a place is logged, later ones at the same place are counted and told with the
next line logged for it, at most one line per place per ``repeat_after`` seconds.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

from flowkit.runtime.loop_watch import LoopStall
from flowkit.worker.jobs import RunningJob

__all__ = ["StallCulprit", "StallReporter", "culprit_of"]

log = logging.getLogger("flowkit.worker")


@dataclass(frozen=True, slots=True)
class StallCulprit:
    """Whose code was running while the loop was blocked.

    Attributes:
        description: Who, in words (``"node 'lookup' of job AJ_x in room 'r'"``).
        job_id: The job's id, when a job's code was running (else ``""``).
        room: That job's room (else ``""``).
        node: The node's name, when a node's task was running (else ``""``).
    """

    description: str
    job_id: str = ""
    room: str = ""
    node: str = ""


def culprit_of(stall: LoopStall, jobs: Mapping[str, RunningJob]) -> StallCulprit:
    """Find whose code ``stall`` caught running, among ``jobs``' graphs and tasks.

    Call it on the loop's thread (as ``on_stall`` is): it reads the graphs' task sets.
    """
    task = stall.task
    if task is None:
        seen = "a callback, not a task" if stall.stack else "nothing (see the place)"
        return StallCulprit(seen)
    for job in jobs.values():
        where = f"job {job.id} in room {job.room_name!r}"
        if job.runner is not None:
            node = job.runner.node_of(task)
            if node is not None:
                return StallCulprit(f"node {node!r} of {where}", job.id, job.room_name, node)
        if task is job.task:
            return StallCulprit(
                f"{where}, building its graph or joining its room", job.id, job.room_name
            )
    return StallCulprit(f"task {task.get_name()!r}, outside any job")


class StallReporter:
    """Logs each stall of the worker's loop with its culprit and the remedy (see the module).

    Args:
        jobs: The worker's running jobs (read at each stall).
        repeat_after: Seconds before another stall at the same place is logged.
    """

    def __init__(self, jobs: Mapping[str, RunningJob], *, repeat_after: float = 60.0) -> None:
        self.jobs = jobs
        self.repeat_after = repeat_after
        # Per place: when it was last logged, and the stalls there since, not logged.
        self._told: dict[str, tuple[float, int]] = {}

    def __call__(self, stall: LoopStall) -> None:
        """Report ``stall`` (the loop watch's ``on_stall``)."""
        place = stall.where()
        now = time.monotonic()
        last, unsaid = self._told.get(place, (-math.inf, 0))
        if now - last < self.repeat_after:
            self._told[place] = (last, unsaid + 1)
            return
        self._told[place] = (now, 0)
        culprit = culprit_of(stall, self.jobs)
        again = (
            f" ({unsaid} more stall(s) at this place since it was last logged)" if unsaid else ""
        )
        stack = stall.stack_text()
        if stall.garbage_collection:
            remedy = (
                "A collection this long means a big heap of long-lived objects: call "
                "gc.freeze() once the worker's models and caches are loaded (at the end of the "
                "graph file's module code, which the worker runs once), so that collections "
                "skip them"
            )
        else:
            remedy = (
                "Move blocking work off the loop: a node with threaded=True, "
                "ctx.run_in_thread(...) or asyncio.to_thread(...) in a node or tool, an async "
                "client for network calls, and models loaded once per worker, not in build(job)"
            )
        log.warning(
            "the event loop was blocked for %d ms: every job of this worker waited (their "
            "audio, replies and the server's pings). It was running %s, at %s%s%s. %s",
            round(stall.duration_s * 1000), culprit.description, place,
            f" (stack: {stack})" if stack else "", again, remedy,
            extra={"job_id": culprit.job_id, "room": culprit.room, "node": culprit.node,
                   "stall_ms": round(stall.duration_s * 1000)},
        )
