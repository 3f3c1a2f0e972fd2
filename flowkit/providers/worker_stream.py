"""An async iterator fed by a worker task, shared by the batch-to-streaming adapters.

The adapters turn pushed input (audio, text) into output (results, frames) with a task that
calls a batch provider. This base holds what they share: the output queue, ending with the
worker's error or its end, and ``aclose`` cancelling the worker (and so the provider's
request).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Generic, Self, TypeVar, cast

__all__ = ["WorkerStream"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Failed:
    error: BaseException


_END = object()


class WorkerStream(Generic[T]):
    """Iterates what :meth:`_work` emits; ends with its end, raises its error.

    Subclasses set their own state, then call ``super().__init__()`` (which starts the
    worker on the running loop) and implement :meth:`_work` with :meth:`_emit`.
    """

    def __init__(self) -> None:
        self._output: asyncio.Queue[T | _Failed | object] = asyncio.Queue()
        self._input_ended = False
        self._done = False
        self._task = asyncio.get_running_loop().create_task(self._run_worker())

    async def _work(self) -> None:
        raise NotImplementedError

    def _emit(self, item: T) -> None:
        self._output.put_nowait(item)

    async def _run_worker(self) -> None:
        try:
            await self._work()
        except Exception as error:
            self._output.put_nowait(_Failed(error))
            return
        self._output.put_nowait(_END)

    async def aclose(self) -> None:
        """Stop: cancel the worker (and the provider request it is waiting on)."""
        self._input_ended = True
        self._done = True
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            # Only swallow the worker's cancellation, never our own caller's.
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        if self._done:
            raise StopAsyncIteration
        item = await self._output.get()
        if item is _END:
            self._done = True
            raise StopAsyncIteration
        if isinstance(item, _Failed):
            self._done = True
            raise item.error
        return cast(T, item)
