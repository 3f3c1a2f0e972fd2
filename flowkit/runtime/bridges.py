"""Bridges between Rx observables and async iterators, both ways, that cancel on dispose.

- :func:`to_async_iterator`: read an observable with ``async for`` through a bounded queue;
  leaving the loop (``break``, cancellation, ``aclose``) unsubscribes.
- :func:`from_async_iterable`: an observable that, per subscription, starts a task iterating
  an async iterable (a provider's stream); disposing the subscription cancels the task, so an
  in-flight request is cancelled, not left running (e.g. under ``switch_map`` on a new turn).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any, Generic, TypeVar

import reactivex
from reactivex import Observable, abc
from reactivex.disposable import Disposable
from reactivex.scheduler.eventloop import AsyncIOScheduler

from flowkit.ports import Overflow
from flowkit.runtime.queues import InputQueue

__all__ = ["ObservableIterator", "from_async_iterable", "settle_bridges", "to_async_iterator"]

T = TypeVar("T")

_pumps: set[asyncio.Task[Any]] = set()


class ObservableIterator(AsyncIterator[T], Generic[T]):
    """An async iterator over an observable (see :func:`to_async_iterator`)."""

    def __init__(self, source: Observable[T], maxsize: int, overflow: Overflow) -> None:
        self._queue: InputQueue[T] = InputQueue(maxsize, overflow)
        self._error: Exception | None = None
        loop = asyncio.get_running_loop()
        self._subscription = source.subscribe(
            on_next=self._queue.push,
            on_error=self._on_error,
            on_completed=self._queue.close,
            scheduler=AsyncIOScheduler(loop),
        )

    def _on_error(self, error: Exception) -> None:
        self._error = error
        self._queue.close()

    async def __anext__(self) -> T:
        try:
            return await self._queue.get()
        except StopAsyncIteration:
            self.dispose()
            if self._error is not None:
                raise self._error from None
            raise
        except asyncio.CancelledError:
            self.dispose()
            raise

    def dispose(self) -> None:
        """Unsubscribe from the source and end the iteration."""
        self._subscription.dispose()
        self._queue.close()

    async def aclose(self) -> None:
        """Unsubscribe from the source and end the iteration."""
        self.dispose()


def to_async_iterator(
    source: Observable[T], *, maxsize: int = 256, overflow: Overflow = Overflow.DROP_OLDEST
) -> ObservableIterator[T]:
    """Subscribe to ``source`` now and read it with ``async for``.

    Args:
        source: The observable.
        maxsize: The bound of the queue between the observable and the reader.
        overflow: What happens when the reader falls ``maxsize`` messages behind.
    """
    return ObservableIterator(source, maxsize, overflow)


def from_async_iterable(
    source: AsyncIterable[T] | Callable[[], AsyncIterable[T]],
) -> Observable[T]:
    """An observable of what ``source`` yields; each subscription iterates in its own task.

    Args:
        source: An async iterable, or a function making one per subscription (use a function
            when the observable may be subscribed more than once).
    """

    def subscribe(
        observer: abc.ObserverBase[T], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        iterable = source() if callable(source) else source

        async def pump() -> None:
            iterator = aiter(iterable)
            try:
                async for value in iterator:
                    observer.on_next(value)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                observer.on_error(exc)
                return
            finally:
                closer = getattr(iterator, "aclose", None)
                if closer is not None:
                    await closer()
            observer.on_completed()

        task = asyncio.get_running_loop().create_task(pump(), name="flowkit:bridge")
        _pumps.add(task)
        task.add_done_callback(_pumps.discard)
        def cancel() -> None:
            task.cancel()

        return Disposable(cancel)

    return reactivex.create(subscribe)


async def settle_bridges() -> None:
    """Wait for bridge tasks that were cancelled (disposed) to finish unwinding."""
    loop = asyncio.get_running_loop()
    cancelled = [t for t in _pumps if t.get_loop() is loop and t.cancelling() and not t.done()]
    if cancelled:
        await asyncio.gather(*cancelled, return_exceptions=True)
