import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from support import Collect, Pusher, collected

import flowkit as fk
from flowkit.runtime.metrics import EdgeStats
from flowkit.runtime.queues import InputQueue


def test_drop_newest_keeps_the_queue_and_counts() -> None:
    stats = EdgeStats("a.out", "b.inp")
    queue: InputQueue[int] = InputQueue(2, fk.Overflow.DROP_NEWEST)
    for i in range(5):
        queue.push(i, stats)
    assert len(queue) == 2 and stats.dropped == 3 and stats.queued == 2


async def test_drop_oldest_keeps_the_newest() -> None:
    stats = EdgeStats("a.out", "b.inp")
    queue: InputQueue[int] = InputQueue(2, fk.Overflow.DROP_OLDEST)
    for i in range(5):
        queue.push(i, stats)
    queue.close()
    assert [v async for v in queue] == [3, 4]
    assert stats.dropped == 3 and stats.queued == 0 and stats.max_queued == 2


async def test_block_keeps_sync_pushes_as_overflow_and_makes_put_wait() -> None:
    stats = EdgeStats("a.out", "b.inp")
    queue: InputQueue[int] = InputQueue(1, fk.Overflow.BLOCK)
    queue.push(1, stats)
    queue.push(2, stats)  # a synchronous producer cannot wait: kept, counted
    assert len(queue) == 2 and stats.overflowed == 1
    waiter = asyncio.create_task(queue.wait_for_room())
    await asyncio.sleep(0)
    assert not waiter.done()
    await queue.get()
    await asyncio.sleep(0)
    assert not waiter.done()  # still one queued: at the bound
    await queue.get()
    await asyncio.wait_for(waiter, 1)


async def test_clear_flushes_and_counts_drops() -> None:
    stats = EdgeStats("a.out", "b.inp")
    queue: InputQueue[int] = InputQueue(10, fk.Overflow.BLOCK)
    for i in range(4):
        queue.push(i, stats)
    assert queue.clear() == 4
    assert len(queue) == 0 and stats.dropped == 4 and stats.queued == 0


class Source(fk.Node):
    out: fk.Out[int]

    async def run(self) -> None:
        for i in range(5):
            await self.out.put(i)  # waits while the consumer's queue is full


class Slow(fk.Node):
    inp: fk.In[int] = fk.In(queue=1, overflow=fk.Overflow.BLOCK)

    def __init__(self) -> None:
        super().__init__()
        self.items: list[int] = []

    async def run(self, inp: "asyncio.Queue[int]") -> None:  # type: ignore[override]
        async for item in inp:  # type: ignore[attr-defined]
            await asyncio.sleep(1)
            self.items.append(item)


@pytest.mark.looptime
async def test_put_applies_backpressure_across_an_edge() -> None:
    g = fk.Graph("block")
    slow = Slow()
    g.add(Source()) >> slow
    runner = fk.GraphRunner(g)
    await runner.run()
    edge = runner.metrics().edge("source.out", "slow.inp")
    assert slow.items == [0, 1, 2, 3, 4]
    assert edge.overflowed == 0 and edge.dropped == 0 and edge.max_queue_depth == 1


async def test_consume_handles_queued_items_first_then_inline_until_closed() -> None:
    queue: InputQueue[int] = InputQueue(8, fk.Overflow.BLOCK)
    queue.push(1)
    queue.push(2)
    seen: list[int] = []
    task = asyncio.create_task(queue.consume(seen.append))
    await asyncio.sleep(0)
    assert seen == [1, 2] and len(queue) == 0
    queue.on_next(3)  # as an edge delivers: handled right here, not queued
    assert seen == [1, 2, 3] and len(queue) == 0
    assert not task.done()
    queue.close()
    await asyncio.wait_for(task, 1.0)
    assert seen == [1, 2, 3]


async def test_a_cancelled_consume_puts_the_queue_back_in_queueing_mode() -> None:
    queue: InputQueue[int] = InputQueue(8, fk.Overflow.BLOCK)
    routed: list[bool] = []
    queue.route_inline = routed.append
    task = asyncio.create_task(queue.consume(lambda _: None))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert routed == [True, False]
    queue.on_next(7)
    assert len(queue) == 1 and await queue.get() == 7


async def test_a_second_consume_is_refused() -> None:
    queue: InputQueue[int] = InputQueue(8, fk.Overflow.BLOCK)
    first = asyncio.create_task(queue.consume(lambda _: None))
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="already has a handler"):
        await queue.consume(lambda _: None)
    queue.close()
    await first


class InlineSum(fk.Node):
    """An async node that consumes its input inline with for_each."""

    inp: fk.In[int]
    out: fk.Out[int]

    def __init__(self) -> None:
        super().__init__()
        self.tasks_seen: set[asyncio.Task[Any] | None] = set()
        self.own_task: asyncio.Task[Any] | None = None

    async def run(self, inp: AsyncIterator[int]) -> None:
        self.own_task = asyncio.current_task()
        total = 0

        def add(value: int) -> None:
            nonlocal total
            total += value
            self.tasks_seen.add(asyncio.current_task())
            if value < 0:
                raise ValueError("negative input")

        await fk.for_each(inp, add)
        self.out.send(total)


async def test_for_each_runs_the_handler_inside_the_producers_delivery() -> None:
    g = fk.Graph("inline")
    node = InlineSum()
    sink = Collect()
    source = g.add(Pusher(values=(1, 2, 3, 4)), name="source")
    source >> node >> sink
    runner = fk.GraphRunner(g)
    await runner.run()
    assert collected(sink) == [10]
    # Called from the source's task, not the node's own: no wake-up per item.
    assert len(node.tasks_seen) == 1 and None not in node.tasks_seen
    assert node.own_task is not None and node.own_task not in node.tasks_seen
    metrics = runner.metrics()
    assert metrics.node("inline_sum").messages_in == 4
    # The edge timed the handler as the node's own work (no queue wait was recorded).
    assert metrics.edge("source.out", "inline_sum.inp").max_queue_depth == 0


async def test_a_failing_inline_handler_follows_the_nodes_error_policy() -> None:
    g = fk.Graph("inline-fail")
    source = g.add(Pusher(values=(1, -1, 2)), name="source")
    source >> g.add(InlineSum(), error_policy=fk.ErrorPolicy.END_GRAPH)
    with pytest.raises(fk.GraphFailed, match="negative input") as info:
        await fk.GraphRunner(g).run()
    assert info.value.node_error.node == "inline_sum"

    g = fk.Graph("inline-restart")
    sink = Collect()
    source = g.add(Pusher(values=(1, -1, 2)), name="source")
    source >> g.add(InlineSum(), error_policy=fk.ErrorPolicy.RESTART) >> sink
    runner = fk.GraphRunner(g)
    await runner.run()  # the graph goes on: the node was restarted
    assert [e.action for e in runner.node_errors] == ["restarted"]
    assert runner.node_errors[0].node == "inline_sum"


async def test_for_each_reads_a_plain_async_iterator() -> None:
    async def items() -> AsyncIterator[int]:
        for i in range(3):
            yield i

    seen: list[int] = []
    await fk.for_each(items(), seen.append)
    assert seen == [0, 1, 2]


def test_a_block_queue_warns_past_its_bound_and_at_each_doubling(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="flowkit.runtime")
    stats = EdgeStats("a.out", "b.inp")
    queue: InputQueue[int] = InputQueue(4, fk.Overflow.BLOCK, label="node 'b' input 'inp'")
    for i in range(4):
        queue.push(i, stats)
    assert not caplog.records  # at the bound: nothing to say
    for i in range(4, 40):
        queue.push(i, stats)
    assert len(queue) == 40 and stats.overflowed == 36  # nothing lost
    lengths = [record.args[1] for record in caplog.records]  # type: ignore[index]
    assert lengths == [5, 10, 20, 40]
    message = caplog.records[0].getMessage()
    assert "node 'b' input 'inp'" in message and "bound of 4" in message
    assert "DROP_OLDEST" in message  # the remedy


def test_dropping_queues_do_not_warn(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="flowkit.runtime")
    for overflow in (fk.Overflow.DROP_OLDEST, fk.Overflow.DROP_NEWEST):
        queue: InputQueue[int] = InputQueue(2, overflow)
        for i in range(20):
            queue.push(i)
    assert not caplog.records  # dropping is what the port asked for


def test_a_retired_queue_drops_and_counts_what_it_held_and_what_comes_after(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="flowkit.runtime")
    stats = EdgeStats("a.out", "b.inp")
    queue: InputQueue[int] = InputQueue(8, fk.Overflow.BLOCK, label="node 'b' input 'inp'")
    queue.push(1, stats)
    queue.push(2, stats)
    assert queue.retire() == 2
    assert len(queue) == 0 and queue.exhausted
    assert stats.queued == 0 and stats.dropped == 2
    for i in range(5):
        queue.push(i, stats)
    assert len(queue) == 0 and stats.dropped == 7
    assert len(caplog.records) == 1  # once per input; the counter keeps the tally
    assert "node 'b' input 'inp'" in caplog.records[0].getMessage()
    assert "2 dropped" in caplog.records[0].getMessage()


def test_a_closed_queue_that_was_not_retired_ignores_pushes_silently() -> None:
    stats = EdgeStats("a.out", "b.inp")
    queue: InputQueue[int] = InputQueue(8, fk.Overflow.BLOCK)
    queue.close()
    queue.push(1, stats)
    assert stats.dropped == 0 and len(queue) == 0


class FirstOnly(fk.Node):
    """Reads one message, then returns while its input goes on."""

    inp: fk.In[int]
    out: fk.Out[int]

    async def run(self, inp: AsyncIterator[int]) -> None:
        async for item in inp:
            self.out.send(item)
            return


class Steady(fk.Node):
    """A source that keeps sending after its consumer returned: one message a second."""

    out: fk.Out[int]

    async def run(self) -> None:
        for i in range(10):
            self.out.send(i)
            await asyncio.sleep(1)


@pytest.mark.looptime
async def test_messages_to_a_node_that_returned_are_dropped_not_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="flowkit.runtime")
    g = fk.Graph("returned")
    sink = Collect()
    g.add(Steady()) >> g.add(FirstOnly()) >> sink
    runner = fk.GraphRunner(g)
    await runner.run()
    assert collected(sink) == [0]
    edge = runner.metrics().edge("steady.out", "first_only.inp")
    # Nine messages came after the node's run() returned: none is held for the job's life.
    assert edge.messages == 10 and edge.dropped == 9 and edge.queue_depth == 0
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "node 'first_only' input 'inp'" in warnings[0]


class IgnoresInput(fk.Node):
    """Never reads its input: a node that forgot a linked port."""

    inp: fk.In[int] = fk.In(queue=2)
    done: fk.In[int]

    async def run(self, inp: AsyncIterator[int], done: AsyncIterator[int]) -> None:
        async for _ in done:
            pass


@pytest.mark.looptime
async def test_an_input_its_node_never_reads_is_named_in_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="flowkit.runtime")
    g = fk.Graph("unread")
    node = g.add(IgnoresInput())
    g.add(Steady()) >> node.inp
    g.add(Steady(), name="other") >> node.done
    runner = fk.GraphRunner(g)
    await runner.run()
    warnings = [r.getMessage() for r in caplog.records]
    assert any("node 'ignores_input' input 'inp'" in w and "bound of 2" in w for w in warnings)
