"""An event loop whose clock skips the time it would spend waiting for its next timer.

Offline runs want two things at once: the graph's timing must be the real one (an endpointing
delay of 0.5 s must pass between the end of speech and the turn, audio must be paced), and the
run must not take as long as the audio. :class:`FastForwardLoop` gives both: when the loop has
nothing to do but wait for a timer, its clock jumps to that timer instead of sleeping. Work on
the loop and in worker threads still takes its real time, so figures measured on this clock
(time to first token of a real model, say) are true; only idle waiting is skipped.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from typing import Any, TypeVar, TypeVarTuple, Unpack

__all__ = ["FastForwardLoop"]

R = TypeVar("R")
Ts = TypeVarTuple("Ts")


class _SkippingSelector(selectors.BaseSelector):
    """A selector that, instead of blocking until a timer is due, reports the skip."""

    def __init__(self, loop: FastForwardLoop) -> None:
        self._inner = selectors.DefaultSelector()
        self._loop = loop
        self.skipped = 0.0

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._inner.select(0)
        if ready or timeout is None or timeout <= 0 or self._loop.threads_busy:
            # Something to do, nothing scheduled (wait for I/O), or a worker thread is
            # computing: its time is real time, so wait for real.
            return ready or self._inner.select(timeout)
        self.skipped += timeout
        return []

    def close(self) -> None:
        self._inner.close()

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._inner.get_map()


class FastForwardLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose :meth:`time` skips idle waits for timers (see the module).

    Use it with ``asyncio.Runner(loop_factory=FastForwardLoop)``.
    """

    def __init__(self) -> None:
        self._skipping = _SkippingSelector(self)
        self._threads_busy = 0
        super().__init__(self._skipping)

    @property
    def threads_busy(self) -> bool:
        """Whether work handed to a worker thread through this loop is still running."""
        return self._threads_busy > 0

    @property
    def skipped(self) -> float:
        """Seconds of idle waiting skipped so far."""
        return self._skipping.skipped

    def time(self) -> float:
        """The loop's clock: monotonic time plus the idle time skipped."""
        return super().time() + self._skipping.skipped

    def run_in_executor(
        self, executor: Executor | None, func: Callable[[Unpack[Ts]], R], *args: *Ts
    ) -> asyncio.Future[R]:
        """Run ``func`` on a worker thread; the clock runs in real time until it returns."""
        future = super().run_in_executor(executor, func, *args)
        self._threads_busy += 1

        def done(_: asyncio.Future[R]) -> None:
            self._threads_busy -= 1

        future.add_done_callback(done)
        return future
