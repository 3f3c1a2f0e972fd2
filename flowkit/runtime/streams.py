"""The wiring fabric: one hot stream per output port, one merged stream per input port.

These are reactivex observables, so node code composes any Rx operator on them, but they are
written for the hot path: single-threaded (the job's event loop owns them, so no locks), taps
attached without Rx's per-subscription wrappers, and copy-on-write tuples of listeners so a
message is delivered with a plain loop.

A message goes ``PortStream.on_next`` → each :class:`EdgeTap` (counts it, times the
consumer, catches the consumer's exception) → the consumer. Errors never travel along edges:
the tap hands them to the runtime, which applies the consumer's error policy; a producer and
its other consumers are untouched.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from time import perf_counter_ns
from typing import Any, Generic, Protocol, TypeVar

from reactivex import Observable, abc
from reactivex.disposable import Disposable

from flowkit.ports import Overflow
from flowkit.runtime.metrics import RING_MASK, EdgeStats, NodeStats
from flowkit.runtime.queues import InputQueue

__all__ = ["Clock", "EdgeTap", "InputStream", "MessageObserver", "PortStream"]

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)


class MessageObserver(Protocol[T_contra]):
    """What an edge delivers to: anything with Rx's three observer methods."""

    def on_next(self, value: T_contra, /) -> None:
        """Receive one message."""

    def on_error(self, error: Exception, /) -> None:
        """Receive an error (the runtime never sends one along an edge)."""

    def on_completed(self) -> None:
        """Receive the end of the stream."""


class Clock:
    """Time spent in nested deliveries, so each node is charged only for its own work.

    Deliveries are synchronous and nest (a node's output is delivered while its input is
    still being handled); ``child`` accumulates the time of deliveries nested in the current
    one, which the enclosing tap subtracts. ``timing`` counts the enclosing deliveries that
    are being timed: while it is above zero every nested delivery is timed too, because its
    time must be subtracted from theirs.

    Not every delivery is timed (see :class:`EdgeTap`): the clock also deals the random gaps
    between a node's timed messages.
    """

    __slots__ = ("child", "draws", "timing")

    def __init__(self) -> None:
        self.child = 0
        self.timing = 0
        self.draws = 0

    def next_gap(self) -> int:
        """How many messages on from this one a node's next timed message is."""
        draws = self.draws
        self.draws = draws + 1
        return _SAMPLE_GAPS[draws % len(_SAMPLE_GAPS)]


# Gaps between a node's timed messages: 1 to 15, 8 on average. Random, not every 8th message:
# audio has periods of its own (20 ms frames against 32 ms VAD windows repeat every 8
# frames), and a fixed stride would time the same phase of them every time. Seeded, so runs
# are reproducible; a prime count, so the sequence does not line up with such periods either.
def _sample_gaps() -> tuple[int, ...]:
    draw = random.Random(20261121)
    return tuple(draw.randint(1, 15) for _ in range(251))


_SAMPLE_GAPS = _sample_gaps()


class EdgeTap:
    """One edge's delivery point: counts, times and isolates the consumer.

    Attributes:
        stats: The edge's counters.
        consumer: The consuming node's counters.
        source: The producing port's stream.
        feedback: The edge closes a declared feedback loop: delivered on the next loop
            iteration, so a loop never recurses on the stack.
        observer: Where messages go (the consumer's observer), set when attached.
    """

    __slots__ = ("attached", "clock", "consumer", "feedback", "input", "loop", "observer",
                 "on_failure", "queue", "source", "stats")

    def __init__(
        self,
        source: PortStream[Any],
        stats: EdgeStats,
        consumer: NodeStats,
        clock: Clock,
        on_failure: Callable[[Exception], None],
        *,
        feedback: bool = False,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.source = source
        self.stats = stats
        self.consumer = consumer
        self.clock = clock
        self.on_failure = on_failure
        self.feedback = feedback
        self.loop = loop
        self.observer: MessageObserver[Any] | None = None
        self.queue: InputQueue[Any] | None = None
        self.input: InputStream[Any] | None = None
        self.attached = False

    def on_next(self, value: Any) -> None:
        """Deliver ``value`` to the consumer (on the next iteration for a feedback edge)."""
        if self.feedback and self.loop is not None:
            self.stats.queued += 1
            self.loop.call_soon(self._deliver_later, value)
            return
        self.deliver(value)

    @property
    def send(self) -> Callable[[Any], None]:
        """What the port stream calls per message: :meth:`deliver` itself unless deferred.

        Calling the bound ``deliver`` saves the producer one Python frame per message on
        every ordinary edge (see docs/performance.md, "The runtime's cost per hop").
        """
        return self.on_next if self.feedback and self.loop is not None else self.deliver

    def deliver(self, value: Any) -> None:
        """Deliver ``value`` now; time the consumer if this message is one of its samples."""
        self.stats.messages += 1
        consumer = self.consumer
        n = consumer.messages_in + 1
        consumer.messages_in = n
        queue = self.queue
        if queue is not None:
            queue.push(value, self.stats)
            return
        clock = self.clock
        if n < consumer.sample_at and not clock.timing:
            # Neither a sample nor nested in a timed delivery: no clock reads at all. This
            # is most messages, and the reads and the bookkeeping were a third of a hop.
            try:
                self.observer.on_next(value)  # type: ignore[union-attr]
            except Exception as exc:  # the consumer failed: its policy decides
                self.on_failure(exc)
            return
        outer = clock.child
        clock.child = 0
        clock.timing += 1
        start = perf_counter_ns()
        try:
            self.observer.on_next(value)  # type: ignore[union-attr]
        except Exception as exc:  # the consumer failed: its policy decides, not the producer
            self.on_failure(exc)
        finally:  # even for a BaseException, or every later delivery would be timed
            clock.timing -= 1
        elapsed = perf_counter_ns() - start
        own = elapsed - clock.child
        clock.child = outer + elapsed
        if n >= consumer.sample_at:
            # A sample stands for every message since the last one: an unbiased estimate
            # of the total, and a counter that only grows.
            consumer.busy_ns += own * (n - consumer.sampled_to)
            consumer.sampled_to = n
            consumer.sample_at = n + clock.next_gap()
            # Reservoir.add, inlined.
            latency = consumer.latency
            latency.samples[latency.count & RING_MASK] = own
            latency.count += 1

    def _deliver_later(self, value: Any) -> None:
        self.stats.queued -= 1
        if self.attached:
            self.deliver(value)

    def source_completed(self) -> None:
        """The producer completed; tell the input this edge is done.

        On a feedback edge the completion waits its turn behind the messages already
        scheduled, as a message would; otherwise it would run around the loop while a
        message is still being delivered.
        """
        if self.feedback and self.loop is not None:
            self.loop.call_soon(self._complete_input)
        else:
            self._complete_input()

    def _complete_input(self) -> None:
        if self.input is not None:
            self.input.edge_completed(self)


class PortStream(Observable[T], Generic[T]):
    """The hot stream of one output port: every message goes to every edge, in order.

    The runtime attaches edge taps directly; any other subscriber (a test, a trace) goes
    through the usual ``subscribe`` and sees the same messages.
    """

    def __init__(self, name: str, stats: NodeStats) -> None:
        super().__init__()
        self.name = name
        self.stats = stats
        self.completed = False
        self._taps: tuple[EdgeTap, ...] = ()
        self._sends: tuple[Callable[[Any], None], ...] = ()  # each tap's send, in order
        self._plain: tuple[abc.ObserverBase[T], ...] = ()

    @property
    def listeners(self) -> int:
        """How many taps and subscribers are attached (zero after the graph closes)."""
        return len(self._taps) + len(self._plain)

    def attach(self, tap: EdgeTap) -> None:
        """Attach an edge tap; a completed stream completes it at once."""
        if self.completed:
            tap.source_completed()
            return
        tap.attached = True
        self._set_taps((*self._taps, tap))

    def detach(self, tap: EdgeTap) -> None:
        """Detach an edge tap (no-op if it is not attached)."""
        tap.attached = False
        self._set_taps(tuple(t for t in self._taps if t is not tap))

    def _set_taps(self, taps: tuple[EdgeTap, ...]) -> None:
        self._taps = taps
        self._sends = tuple(tap.send for tap in taps)

    def on_next(self, value: T) -> None:
        """Emit ``value`` on every edge out of this port."""
        self.stats.messages_out += 1
        for send in self._sends:
            send(value)
        for observer in self._plain:
            observer.on_next(value)

    def on_completed(self) -> None:
        """The port will emit nothing more: complete every edge and subscriber."""
        if self.completed:
            return
        self.completed = True
        taps, plain = self._taps, self._plain
        self._set_taps(())
        self._plain = ()
        for tap in taps:
            # Still attached: a feedback edge delivers what it scheduled before completing.
            tap.source_completed()
        for observer in plain:
            observer.on_completed()

    def detach_all(self) -> None:
        """Drop every listener without completing them (the graph is closing)."""
        for tap in self._taps:
            tap.attached = False
        self._set_taps(())
        self._plain = ()

    async def wait_for_room(self) -> None:
        """Wait while any ``BLOCK`` queue this port feeds is full."""
        for tap in self._taps:
            queue = tap.queue
            if queue is not None and queue.overflow is Overflow.BLOCK:
                await queue.wait_for_room()

    def _subscribe_core(
        self, observer: abc.ObserverBase[T], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        if self.completed:
            observer.on_completed()
            return Disposable()
        self._plain = (*self._plain, observer)

        def remove() -> None:
            self._plain = tuple(o for o in self._plain if o is not observer)

        return Disposable(remove)


class InputStream(Observable[T], Generic[T]):
    """The merge of every edge into one input port.

    It completes when every edge into it has completed, feedback edges included, so nothing
    in flight around a loop is lost; the node that owns a loop ends its loop outputs when its
    other inputs end (it alone knows what it still waits for). Edges are attached while
    someone subscribes and detached when the last subscriber leaves, so a closed graph holds
    no subscription.
    """

    def __init__(self, name: str, taps: list[EdgeTap]) -> None:
        super().__init__()
        self.name = name
        self.taps = taps
        for tap in taps:
            tap.input = self
        self.completed = False
        self._observers: tuple[MessageObserver[T], ...] = ()
        self._open: set[int] = set()

    @property
    def observers(self) -> int:
        """How many subscribers are attached."""
        return len(self._observers)

    def add_observer(self, observer: MessageObserver[T]) -> Callable[[], None]:
        """Attach ``observer`` without Rx's wrappers; returns the function that detaches it."""
        if self.completed:
            observer.on_completed()
            return lambda: None
        first = not self._observers
        self._observers = (*self._observers, observer)
        self._retarget()
        if first:
            self._attach_edges()

        def remove() -> None:
            self._observers = tuple(o for o in self._observers if o is not observer)
            self._retarget()
            if not self._observers:
                self._detach_edges()

        return remove

    def feed_queue(self, queue: InputQueue[T]) -> Callable[[], None]:
        """Deliver this input into ``queue`` (an async consumer), per edge for its counters."""
        remove = self.add_observer(queue)
        taps = self.taps

        def route(inline: bool) -> None:
            # Inline (queue.consume): the tap calls the queue as its observer, timing the
            # handler like any consumer; otherwise it pushes into the queue untimed.
            for tap in taps:
                if tap.observer is queue:
                    tap.queue = None if inline else queue

        queue.route_inline = route
        for tap in taps:
            tap.queue = queue
        return remove

    def _retarget(self) -> None:
        target: MessageObserver[Any] | None
        if len(self._observers) == 1:
            target = self._observers[0]
        elif self._observers:
            target = _FanOut(self)
        else:
            target = None
        for tap in self.taps:
            tap.observer = target
            if target is None:
                tap.queue = None

    def _attach_edges(self) -> None:
        self._open = {id(t) for t in self.taps}
        if not self.taps:
            self._complete()
            return
        for tap in self.taps:
            tap.source.attach(tap)

    def _detach_edges(self) -> None:
        for tap in self.taps:
            tap.source.detach(tap)

    def edge_completed(self, tap: EdgeTap) -> None:
        """One edge's producer completed; complete the input when no edge is left open."""
        self._open.discard(id(tap))
        if not self._open and not self.completed:
            self._complete()

    def _complete(self) -> None:
        self.completed = True
        self._detach_edges()
        observers, self._observers = self._observers, ()
        self._retarget()
        for observer in observers:
            observer.on_completed()

    def on_next(self, value: T) -> None:
        """Fan ``value`` out to every subscriber (used when there are several)."""
        for observer in self._observers:
            observer.on_next(value)

    def _subscribe_core(
        self, observer: abc.ObserverBase[T], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        return Disposable(self.add_observer(observer))


class _FanOut:
    """Observer that forwards to every subscriber of an input stream."""

    __slots__ = ("stream",)

    def __init__(self, stream: InputStream[Any]) -> None:
        self.stream = stream

    def on_next(self, value: Any) -> None:
        self.stream.on_next(value)

    def on_error(self, error: Exception) -> None:  # pragma: no cover - errors never travel edges
        raise error

    def on_completed(self) -> None:  # pragma: no cover - completion is sent by the stream
        pass
