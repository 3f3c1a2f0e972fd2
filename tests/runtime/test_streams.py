"""Edge taps: exact counts, and each node's time measured on a random sample of messages."""

from collections.abc import Callable
from typing import Any

import pytest

from flowkit.runtime import streams
from flowkit.runtime.metrics import EdgeStats, NodeMetrics, NodeStats
from flowkit.runtime.streams import Clock, EdgeTap, PortStream


class FakeTime:
    """A nanosecond clock that moves only when a consumer says it worked."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


class Worker:
    """A consumer whose n-th message costs ``cost(n)`` ns of fake time, then forwards it."""

    def __init__(
        self, time: FakeTime, cost: Callable[[int], int], forward: PortStream[Any] | None = None
    ) -> None:
        self.time = time
        self.cost = cost
        self.forward = forward
        self.seen = 0

    def on_next(self, value: Any) -> None:
        self.seen += 1
        self.time.now += self.cost(self.seen)
        if self.forward is not None:
            self.forward.on_next(value)

    def on_error(self, error: Exception) -> None:
        raise AssertionError(error)

    def on_completed(self) -> None:
        pass


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    time = FakeTime()
    monkeypatch.setattr(streams, "perf_counter_ns", time)
    return time


def link(
    source: PortStream[Any], consumer: NodeStats, worker: Worker, clock: Clock
) -> EdgeTap:
    def fail(exc: Exception) -> None:
        raise AssertionError(exc)

    tap = EdgeTap(source, EdgeStats(source.name, consumer.name), consumer, clock, fail)
    tap.observer = worker
    source.attach(tap)
    return tap


def test_counts_are_exact_and_about_one_message_in_eight_is_timed(fake_time: FakeTime) -> None:
    clock = Clock()
    source: PortStream[int] = PortStream("src.out", NodeStats("src"))
    stats = NodeStats("node")
    tap = link(source, stats, Worker(fake_time, lambda n: 1_000), clock)
    for i in range(8_000):
        source.on_next(i)
    assert stats.messages_in == tap.stats.messages == 8_000
    assert 800 <= stats.latency.count <= 1_200  # 1 000 on average
    # Each sample weighs the messages since the one before: a constant cost is exact.
    assert stats.busy_ns == 1_000 * stats.sampled_to
    assert stats.sampled_to > 8_000 - 16


def test_the_first_message_is_timed(fake_time: FakeTime) -> None:
    source: PortStream[int] = PortStream("src.out", NodeStats("src"))
    stats = NodeStats("node")
    link(source, stats, Worker(fake_time, lambda n: 2_500_000), Clock())
    source.on_next(1)
    metrics = NodeMetrics.of(stats)
    assert metrics.busy_s == pytest.approx(0.0025)
    assert metrics.latency_p50_ms == pytest.approx(2.5)


def test_a_periodic_cost_is_estimated_without_bias(fake_time: FakeTime) -> None:
    # Every 8th message costs 9x the others (a window completes every so many frames): a
    # fixed stride of 8 would see only the dear messages or only the cheap ones.
    source: PortStream[int] = PortStream("src.out", NodeStats("src"))
    stats = NodeStats("node")
    link(source, stats, Worker(fake_time, lambda n: 9_000 if n % 8 == 0 else 1_000), Clock())
    for i in range(16_000):
        source.on_next(i)
    true_total = 16_000 // 8 * 9_000 + (16_000 - 16_000 // 8) * 1_000
    assert stats.busy_ns == pytest.approx(true_total, rel=0.1)


def test_a_node_is_charged_only_its_own_time_when_its_consumer_is_not_sampled(
    fake_time: FakeTime,
) -> None:
    # a -> b: whenever a is timed, b's delivery nested in it is timed too (its time comes off
    # a's), whether or not b samples that message for itself.
    clock = Clock()
    source: PortStream[int] = PortStream("src.out", NodeStats("src"))
    a_out: PortStream[int] = PortStream("a.out", NodeStats("a"))
    a_stats, b_stats = NodeStats("a"), NodeStats("b")
    link(source, a_stats, Worker(fake_time, lambda n: 1_000, forward=a_out), clock)
    link(a_out, b_stats, Worker(fake_time, lambda n: 300), clock)
    for i in range(4_000):
        source.on_next(i)
    a_samples = set(a_stats.latency.samples[: min(a_stats.latency.count, 1024)])
    b_samples = set(b_stats.latency.samples[: min(b_stats.latency.count, 1024)])
    assert a_samples == {1_000}
    assert b_samples == {300}
    assert a_stats.busy_ns == 1_000 * a_stats.sampled_to
    assert b_stats.busy_ns == 300 * b_stats.sampled_to
    assert clock.timing == 0


def test_a_failing_consumer_still_leaves_the_clock_balanced(fake_time: FakeTime) -> None:
    clock = Clock()
    source: PortStream[int] = PortStream("src.out", NodeStats("src"))
    stats = NodeStats("node")
    failures: list[Exception] = []

    class Failing(Worker):
        def on_next(self, value: Any) -> None:
            super().on_next(value)
            raise ValueError(value)

    tap = EdgeTap(source, EdgeStats("src.out", "node"), stats, clock, failures.append)
    tap.observer = Failing(fake_time, lambda n: 100)
    source.attach(tap)
    for i in range(50):
        source.on_next(i)
    assert len(failures) == 50
    assert clock.timing == 0
    assert stats.busy_ns == 100 * stats.sampled_to


def test_a_base_exception_through_a_timed_delivery_leaves_the_clock_balanced(
    fake_time: FakeTime,
) -> None:
    clock = Clock()
    source: PortStream[int] = PortStream("src.out", NodeStats("src"))
    stats = NodeStats("node")

    class Interrupting(Worker):
        def on_next(self, value: Any) -> None:
            raise KeyboardInterrupt

    link(source, stats, Interrupting(fake_time, lambda n: 0), clock)
    with pytest.raises(KeyboardInterrupt):
        source.on_next(1)  # the first message is always timed
    assert clock.timing == 0
