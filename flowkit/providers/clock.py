"""The clock provider meters read: the running event loop's, so virtual time counts."""

from __future__ import annotations

import asyncio
import time

__all__ = ["loop_time"]


def loop_time() -> float:
    """Seconds on the running loop's clock, or a monotonic clock outside a loop.

    Meters read the loop's clock so that tests under virtual time (looptime) and offline runs
    on :class:`~flowkit.runtime.fastforward.FastForwardLoop` measure the loop's seconds.
    """
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()
