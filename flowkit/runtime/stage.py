"""A stateful synchronous transform as an observable, without Rx's per-subscription wrappers.

Audio nodes such as ``Resample`` and ``VAD`` are a push function called on every frame and a
flush called when their input completes. Built from reactivex operators (``create``,
``do_action``, ``finally_action``), every frame crosses an ``AutoDetachObserver`` per
operator and per subscription, which is most of a hop's cost at 50 frames a second times
hundreds of sessions. :class:`Stage` is the same contract written once: it attaches to a
runtime :class:`~flowkit.runtime.streams.InputStream` directly and delivers to its
subscriber directly, so a frame costs the push call and nothing else.

It is an ordinary :class:`reactivex.Observable`: returned from ``wire`` it is subscribed by
the runtime, and any Rx operator can still be applied to it (or to its source).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from reactivex import Observable, abc
from reactivex.disposable import Disposable

from flowkit.runtime.streams import InputStream

__all__ = ["Stage"]

T = TypeVar("T")
R = TypeVar("R")


class Stage(Observable[R], Generic[T, R]):
    """Emits what ``push`` returns for each item and what ``flush`` returns at completion.

    Args:
        source: The input (an input port's stream when wired by the runtime; any
            observable works).
        push: Called with each item; returns the items to emit (any iterable, possibly
            empty). If it raises, the subscriber gets the error and the stage stops.
        flush: Called once when the source completes; returns the last items to emit.
        on_stop: Called once when the subscription ends for any reason (completion, error
            or disposal), after ``flush`` and its items on completion: release what ``push``
            holds.

    Example:
        >>> def wire(self, audio):
        ...     resampler = Resampler()
        ...     return Stage(audio, resampler.push, resampler.flush)
    """

    def __init__(
        self,
        source: Observable[T],
        push: Callable[[T], Iterable[R]],
        flush: Callable[[], Iterable[R]] = tuple,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self.source = source
        self.push = push
        self.flush = flush
        self.on_stop = on_stop

    def subscribe(
        self,
        on_next: abc.ObserverBase[R] | Callable[[R], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
        on_completed: Callable[[], None] | None = None,
        *,
        scheduler: abc.SchedulerBase | None = None,
    ) -> abc.DisposableBase:
        """Subscribe; an observer object is delivered to directly (no auto-detach wrapper).

        The stage itself stops delivering after completion or an error, which is what the
        wrapper would guarantee. Callbacks go through reactivex's usual path.
        """
        if isinstance(on_next, abc.ObserverBase):
            return self._subscribe_core(on_next, scheduler)
        return super().subscribe(on_next, on_error, on_completed, scheduler=scheduler)

    def _subscribe_core(
        self, observer: abc.ObserverBase[R], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        link = _StageObserver(self, observer)
        source = self.source
        if isinstance(source, InputStream):
            remove = source.add_observer(link)
            link.detach = remove
        else:
            subscription = source.subscribe(link, scheduler=scheduler)
            link.detach = subscription.dispose
        return Disposable(link.stop)


class _StageObserver(abc.ObserverBase[T], Generic[T, R]):
    """The stage's link between its source and its one subscriber."""

    __slots__ = ("detach", "done", "observer", "stage")

    def __init__(self, stage: Stage[T, R], observer: abc.ObserverBase[R]) -> None:
        self.stage = stage
        self.observer = observer
        self.done = False
        self.detach: Callable[[], Any] | None = None

    def on_next(self, value: T) -> None:
        if self.done:
            return
        try:
            results = self.stage.push(value)
        except Exception as exc:
            self.on_error(exc)
            return
        observer = self.observer
        for result in results:
            observer.on_next(result)

    def on_error(self, error: Exception) -> None:
        if self.done:
            return
        self.stop()
        self.observer.on_error(error)

    def on_completed(self) -> None:
        if self.done:
            return
        try:
            results = tuple(self.stage.flush())
        except Exception as exc:
            self.on_error(exc)
            return
        for result in results:
            self.observer.on_next(result)
        self.stop()
        self.observer.on_completed()

    def stop(self) -> None:
        """End the subscription: detach from the source and run ``on_stop`` (once)."""
        if self.done:
            return
        self.done = True
        detach, self.detach = self.detach, None
        if detach is not None:
            detach()
        on_stop = self.stage.on_stop
        if on_stop is not None:
            on_stop()
