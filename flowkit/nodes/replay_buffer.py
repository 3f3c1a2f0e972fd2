"""A stream read ahead of its reader and replayed to it from the start.

Preemptive generation and preemptive TTS both start a request before anyone is there to read
it (the turn is not committed yet) and keep what it yields; the reply that takes it over then
reads everything from the first item, at once for what is buffered and as it comes for the
rest. :class:`ReplayBuffer` is that buffer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Generic, TypeVar

__all__ = ["ReplayBuffer"]

T = TypeVar("T")


class ReplayBuffer(Generic[T]):
    """Items kept as a producer yields them, for a reader that may come later."""

    def __init__(self) -> None:
        """Create an empty buffer, not ended."""
        self._items: list[T] = []
        self._ended = False
        self._error: Exception | None = None
        self._more = asyncio.Event()

    def append(self, item: T) -> None:
        """Keep the producer's next item."""
        self._items.append(item)
        self._more.set()

    def end(self, error: Exception | None = None) -> None:
        """The producer is done; ``error`` is what it failed with, if it failed."""
        self._ended = True
        self._error = error
        self._more.set()

    async def replay(self) -> AsyncIterator[T]:
        """Every item from the first: what is buffered at once, then the rest as it comes.

        Raises the producer's error after the items it yielded before failing, where a
        reader of the producer itself would have met it.
        """
        sent = 0
        while True:
            while sent < len(self._items):
                yield self._items[sent]
                sent += 1
            if self._ended:
                if self._error is not None:
                    raise self._error
                return
            self._more.clear()
            await self._more.wait()
