"""The bounded queue between Rx edges and an async consumer.

Rx pushes and has no backpressure, so where a consumer reads at its own pace (an async node's
``run``) the runtime puts this queue, with the input port's bound and overflow policy. Every
item remembers the edge it came by, so waits, drops and depth are counted per edge.

A consumer whose handling of an item is synchronous (pushing audio into a recognition stream)
need not be woken for each one: :func:`for_each` (:meth:`InputQueue.consume`) calls its handler
right where the item is delivered, as a function node is called, with no task step, future or
queue entry per item; the node's task only waits for the input to end.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from time import perf_counter_ns
from typing import Generic, TypeVar

from flowkit.ports import Overflow
from flowkit.runtime.metrics import EdgeStats

__all__ = ["InputQueue", "for_each"]

T = TypeVar("T")
log = logging.getLogger("flowkit.runtime")


class InputQueue(Generic[T]):
    """A bounded FIFO read as an async iterator; ends when its input completes.

    A ``BLOCK`` queue that a synchronous producer fills past its bound keeps every item
    (nothing is lost) and logs a warning when it first passes the bound and again each time
    its length doubles, so an input its node reads too slowly, or not at all, shows in the
    logs long before it shows in the process's memory.

    Args:
        maxsize: The bound.
        overflow: What a push into a full queue does (see :class:`~flowkit.ports.Overflow`).
        label: Who reads it, for warnings (``"node 'llm' input 'text'"``).
    """

    def __init__(self, maxsize: int, overflow: Overflow, *, label: str = "an input queue") -> None:
        self.maxsize = maxsize
        self.overflow = overflow
        self.label = label
        self._items: deque[tuple[int, EdgeStats | None, T]] = deque()
        self._closed = False
        # Set by retire(): the reader is gone, so what arrives is dropped, not kept.
        self._retired = False
        self._loss_reported = False
        # The length at which a BLOCK queue past its bound warns next (doubling).
        self._warn_at = maxsize + 1
        self._getter: asyncio.Future[None] | None = None
        self._room_waiters: list[asyncio.Future[None]] = []
        # Set by consume(): items go to it where they are delivered instead of queueing.
        self._handler: Callable[[T], None] | None = None
        # Set by the input stream feeding this queue: routes its edges past the queue (True)
        # so each edge times the inline handler as the consumer's own work, or back (False).
        self.route_inline: Callable[[bool], None] | None = None

    def push(self, value: T, stats: EdgeStats | None = None) -> None:
        """Add ``value`` (arriving on the edge ``stats`` counts), applying the overflow policy."""
        if self._closed:
            if self._retired:
                self._lose(stats)
            return
        if len(self._items) >= self.maxsize:
            if self.overflow is Overflow.DROP_NEWEST:
                if stats is not None:
                    stats.dropped += 1
                return
            if self.overflow is Overflow.DROP_OLDEST:
                _, old_stats, _ = self._items.popleft()
                if old_stats is not None:
                    old_stats.dropped += 1
                    old_stats.queued -= 1
            else:
                if stats is not None:
                    stats.overflowed += 1
                if len(self._items) + 1 >= self._warn_at:
                    self._warn_overflow()
        self._items.append((perf_counter_ns(), stats, value))
        if stats is not None:
            stats.queued += 1
            if stats.queued > stats.max_queued:
                stats.max_queued = stats.queued
        self._wake_getter()

    def close(self) -> None:
        """No more items will come: the iterator ends once the queue is drained."""
        self._closed = True
        self._wake_getter()
        self._release_room_waiters()

    def retire(self) -> int:
        """Its reader is gone for good (the node's ``run`` returned): drop what it left.

        Queued items are dropped and counted on their edges' ``dropped``, and so is
        everything that arrives afterwards, instead of being kept for a reader that will
        never come. The first loss logs one warning naming the input.

        Returns:
            How many queued items were dropped now.
        """
        dropped = self.clear()
        if dropped:
            self._warn_lost(dropped)
        self._retired = True
        self.close()
        return dropped

    def _lose(self, stats: EdgeStats | None) -> None:
        if stats is not None:
            stats.dropped += 1
        self._warn_lost(1)

    def _warn_lost(self, count: int) -> None:
        # One warning per input: the edges' `dropped` counters keep the tally.
        if self._loss_reported:
            return
        self._loss_reported = True
        log.warning(
            "%s: its node finished (run() returned) while this input still had messages: "
            "%d dropped, and later ones are dropped too (counted as the edge's `dropped`). "
            "Read the input until it ends before returning from run(), or do not link it",
            self.label, count,
        )

    def _warn_overflow(self) -> None:
        length = len(self._items) + 1
        self._warn_at = 2 * length
        log.warning(
            "%s: %d messages queued, past its bound of %d (overflow=block keeps them all): "
            "its node reads this input slower than messages arrive, or not at all. Read it "
            "(drain an input the node does not need), or give the port "
            "overflow=Overflow.DROP_OLDEST or a larger queue=",
            self.label, length, self.maxsize,
        )

    def clear(self) -> int:
        """Drop every queued item (e.g. a flush on barge-in); return how many were dropped."""
        dropped = len(self._items)
        for _, stats, _ in self._items:
            if stats is not None:
                stats.queued -= 1
                stats.dropped += 1
        self._items.clear()
        self._release_room_waiters()
        return dropped

    def __len__(self) -> int:
        return len(self._items)

    @property
    def exhausted(self) -> bool:
        """Whether the input has ended and every item was read.

        An input linked to nothing is exhausted before its node runs: its stream completes
        when the node subscribes. A node with an optional input can tell that way, at
        once, whether anything is linked to it.
        """
        return self._closed and not self._items

    def full(self) -> bool:
        """Whether a push now would exceed the bound."""
        return len(self._items) >= self.maxsize

    async def wait_for_room(self) -> None:
        """Wait until the queue is below its bound (or closed)."""
        while self.full() and not self._closed:
            waiter = asyncio.get_running_loop().create_future()
            self._room_waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._room_waiters:
                    self._room_waiters.remove(waiter)

    async def get(self) -> T:
        """The next item; raises ``StopAsyncIteration`` when closed and drained."""
        while not self._items:
            if self._closed:
                raise StopAsyncIteration
            self._getter = asyncio.get_running_loop().create_future()
            try:
                await self._getter
            finally:
                self._getter = None
        return self._pop()

    async def consume(self, handler: Callable[[T], None]) -> None:
        """Call ``handler`` on every item, where it is delivered, until the input ends.

        Items already queued are handled first, in order. From then on an item reaches
        ``handler`` inside the producer's delivery, as a function node is called: no task
        wake-up, future or queue entry per item. An exception from ``handler`` is the node's
        failure (its error policy applies), as for a function node. Returns once the input
        has completed; cancelling the wait puts the queue back in queueing mode.

        Args:
            handler: A synchronous callable taking one item.

        Raises:
            RuntimeError: Another ``consume`` is already running on this queue.
        """
        if self._handler is not None:
            raise RuntimeError(
                "InputQueue.consume: this input already has a handler; consume an input once, "
                "or read it with `async for`"
            )
        while self._items:
            handler(self._pop())
        if self._closed:
            return
        self._handler = handler
        if self.route_inline is not None:
            self.route_inline(True)
        try:
            while not self._closed:
                self._getter = asyncio.get_running_loop().create_future()
                try:
                    await self._getter
                finally:
                    self._getter = None
        finally:
            self._handler = None
            if self.route_inline is not None:
                self.route_inline(False)

    def _pop(self) -> T:
        enqueued, stats, value = self._items.popleft()
        if stats is not None:
            stats.queued -= 1
            stats.wait.add(perf_counter_ns() - enqueued)
        if self._room_waiters and not self.full():
            self._release_room_waiters()
        return value

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        return await self.get()

    def _wake_getter(self) -> None:
        getter = self._getter
        if getter is not None and not getter.done():
            getter.set_result(None)

    def _release_room_waiters(self) -> None:
        waiters, self._room_waiters = self._room_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<InputQueue {len(self)}/{self.maxsize} {self.overflow} {state}>"

    # Observer protocol, so a queue can be fed by any observable.
    def on_next(self, value: T) -> None:
        """Push ``value`` (no edge attribution), or hand it to the :meth:`consume` handler."""
        handler = self._handler
        if handler is not None:
            handler(value)
        else:
            self.push(value)

    def on_error(self, error: Exception) -> None:  # pragma: no cover - the runtime routes errors
        """Close the queue; errors are handled by the runtime, not queued."""
        self.close()

    def on_completed(self) -> None:
        """Close the queue."""
        self.close()



async def for_each(source: AsyncIterator[T], handler: Callable[[T], None]) -> None:
    """Call ``handler`` on every item of ``source`` until it ends.

    For an async node's input (an :class:`InputQueue`) the handler is called inline, where
    each item is delivered (see :meth:`InputQueue.consume`): the cheap way to feed a
    synchronous sink, such as a recognition stream, from a 20 ms audio stream. Any other
    async iterator (a test's list, a custom source) is read with ``async for``.

    Args:
        source: The input, as the node's ``run`` received it.
        handler: A synchronous callable taking one item.
    """
    if isinstance(source, InputQueue):
        await source.consume(handler)
        return
    async for item in source:
        handler(item)
