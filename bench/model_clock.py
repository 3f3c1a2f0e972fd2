"""The CPU time of a Silero provider's model calls, for the benchmarks that split CPU by part."""

from __future__ import annotations

import time
from typing import Any


class ModelClock:
    """Wraps ``provider._run`` to add up its calls' CPU time, on whichever thread runs them.

    ``time.thread_time_ns`` around each call: the loop's thread for a batch run on the loop,
    the batcher's worker thread for one run there.
    """

    def __init__(self, provider: Any) -> None:
        self.ns = 0
        run = provider._run

        def timed(rows: Any, states: Any) -> Any:
            start = time.thread_time_ns()
            try:
                return run(rows, states)
            finally:
                self.ns += time.thread_time_ns() - start

        provider._run = timed
