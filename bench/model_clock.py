"""The CPU time of a Silero provider's model calls, for the benchmarks that split CPU by part."""

from __future__ import annotations

import time
from typing import Any


class ModelClock:
    """Wraps ``provider._run`` to add up its calls' CPU time, on whichever thread runs them.

    ``time.thread_time_ns`` around each call: the loop's thread for a batch run on the loop,
    the batcher's worker thread for one run there. ``calls`` keeps each call's start and end
    on ``time.monotonic`` (the clock of asyncio's loops, ``loop.time()``), so a benchmark can
    place the calls in its ticks.
    """

    def __init__(self, provider: Any) -> None:
        self.ns = 0
        self.calls: list[tuple[float, float]] = []
        run = provider._run
        calls = self.calls

        def timed(rows: Any, states: Any) -> Any:
            began = time.monotonic()
            start = time.thread_time_ns()
            try:
                return run(rows, states)
            finally:
                self.ns += time.thread_time_ns() - start
                calls.append((began, time.monotonic()))

        provider._run = timed
