import asyncio

import pytest

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
