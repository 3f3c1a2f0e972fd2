"""A graph for worker tests that needs no room: its behaviour comes from the job's metadata.

Metadata is JSON: ``{"mode": "forever"}`` (default) ticks until the job is ended;
``{"mode": "finish", "seconds": 0.3}`` ends after that long; ``{"mode": "raise",
"seconds": 0.2}`` raises after that long (the job fails).
"""

from __future__ import annotations

import asyncio
import json

import flowkit as fk


class Ticker(fk.Node):
    """Emits a tick every 20 ms; finishes or raises as the job's metadata says."""

    error_policy = fk.ErrorPolicy.END_GRAPH

    ticks: fk.Out[int]

    def __init__(self, mode: str = "forever", seconds: float = 0.0) -> None:
        super().__init__()
        self.mode = mode
        self.seconds = seconds

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        n = 0
        while True:
            await self.ticks.put(n)
            n += 1
            await asyncio.sleep(0.02)
            if self.mode != "forever" and loop.time() - start >= self.seconds:
                break
        if self.mode == "raise":
            raise RuntimeError("the job graph raised on purpose")


@fk.node
def count(n: int) -> None:
    """Swallow a tick."""


def build(job: fk.JobContext) -> fk.Graph:
    config = json.loads(job.metadata or "{}")
    g = fk.Graph("worker-test")
    ticker = g.add(Ticker(config.get("mode", "forever"), config.get("seconds", 0.0)))
    ticker >> count()
    return g
