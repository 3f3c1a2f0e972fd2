import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from reactivex import Observable
from reactivex import operators as ops
from support import Collect, Forever, Numbers, Pusher, collected

import flowkit as fk


@fk.node
def fragile(x: int) -> int:
    if x == 2:
        raise ValueError("two is not allowed")
    return x


async def test_skip_drops_the_failing_message_and_reports_it() -> None:
    g = fk.Graph("skip")
    sink = Collect()
    g.add(Numbers([1, 2, 3])) >> g.add(fragile(), name="fragile") >> sink
    runner = fk.GraphRunner(g)
    seen: list[fk.NodeError] = []
    runner.errors.subscribe(seen.append)
    await runner.run()
    assert collected(sink) == [1, 3]
    [error] = seen
    assert error.node == "fragile" and error.action == "skipped"
    assert isinstance(error.error, ValueError)
    assert "node 'fragile' of graph 'skip' raised ValueError: two is not allowed" in str(error)
    assert runner.metrics().node("fragile").errors == 1


class Stateful(fk.Node):
    """An Rx node that counts what it saw; an error ends its chain (Rx's contract)."""

    inp: fk.In[int]
    out: fk.Out[tuple[int, int]]

    def __init__(self) -> None:
        super().__init__()
        self.wirings = 0

    def wire(self, inp: Observable[int]) -> Observable[tuple[int, int]]:
        self.wirings += 1
        wiring = self.wirings

        def check(x: int) -> tuple[int, int]:
            if x < 0:
                raise RuntimeError(f"negative: {x}")
            return wiring, x

        return inp.pipe(ops.map(check))


@pytest.mark.looptime
async def test_restart_rewires_an_rx_node_and_it_keeps_going() -> None:
    g = fk.Graph("restart")
    node = g.add(Stateful(), error_policy=fk.ErrorPolicy.RESTART)
    sink = Collect()
    g.add(Pusher(values=(1, -1, 2, -2, 3), gap=1.0)) >> node >> sink
    runner = fk.GraphRunner(g)
    await runner.run()
    assert collected(sink) == [(1, 1), (2, 2), (3, 3)]
    assert runner.metrics().node("stateful").restarts == 2
    assert [e.action for e in runner.node_errors] == ["restarted", "restarted"]


@pytest.mark.looptime
async def test_restarts_are_limited_then_the_graph_ends() -> None:
    g = fk.Graph("limit")
    node = g.add(Stateful(), error_policy=fk.ErrorPolicy.RESTART)
    g.add(Pusher(values=(-1, -2, -3, -4, -5), gap=1.0)) >> node >> Collect()
    runner = fk.GraphRunner(g)
    with pytest.raises(fk.GraphFailed, match="ended graph after 3 restarts"):
        await runner.run()
    assert runner.live_subscriptions() == 0


class Boom(fk.Node):
    inp: fk.In[int]

    async def run(self, inp: AsyncIterator[int]) -> None:
        async for _ in inp:
            raise KeyError("boom")


async def test_end_graph_fails_this_graph_only() -> None:
    bad = fk.Graph("bad")
    bad.add(Numbers([1])) >> bad.add(Boom(), error_policy=fk.ErrorPolicy.END_GRAPH)
    good = fk.Graph("good")
    sink = Collect()
    good.add(Pusher(values=(1, 2, 3))) >> sink
    good_runner = fk.GraphRunner(good)
    await good_runner.start()
    with pytest.raises(fk.GraphFailed) as info:
        await fk.GraphRunner(bad).run()
    assert info.value.node_error.node == "boom"
    assert "error_policy='skip' or 'restart'" in str(info.value)
    await good_runner.wait()
    await good_runner.close()
    assert collected(sink) == [1, 2, 3]


@fk.node
def picky(x: int) -> int:
    raise ValueError("never")


async def test_a_failing_consumer_does_not_touch_its_siblings() -> None:
    g = fk.Graph("siblings")
    src = g.add(Numbers([1, 2, 3]))
    sink = Collect()
    src >> [picky(), sink]
    runner = fk.GraphRunner(g)
    await runner.run()
    assert collected(sink) == [1, 2, 3]
    assert runner.metrics().node("picky").errors == 3


class BadWire(fk.Node):
    inp: fk.In[int]
    out: fk.Out[int]

    def wire(self, inp: Any) -> Any:
        return None


@pytest.mark.parametrize("policy", list(fk.ErrorPolicy))
async def test_a_node_that_fails_to_start_ends_the_graph_whatever_its_policy(
    policy: fk.ErrorPolicy,
) -> None:
    g = fk.Graph("badwire")
    g.add(Numbers([1])) >> g.add(BadWire(), error_policy=policy) >> Collect()
    runner = fk.GraphRunner(g)
    with pytest.raises(fk.GraphFailed, match="return an observable") as info:
        await asyncio.wait_for(runner.run(), 5)
    assert "the node failed to start" in str(info.value)
    assert len(runner.node_errors) == 1


async def test_task_errors_go_through_the_policy() -> None:
    class Spawner(fk.Node):
        out: fk.Out[int]

        async def run(self) -> None:
            async def fail() -> None:
                raise OSError("lost the provider")

            self.ctx.create_task(fail())
            await asyncio.sleep(3600)

    g = fk.Graph("tasks")
    g.add(Spawner(), error_policy=fk.ErrorPolicy.END_GRAPH) >> Collect()
    with pytest.raises(fk.GraphFailed, match="lost the provider"):
        await asyncio.wait_for(fk.GraphRunner(g).run(), 5)


async def test_errors_after_close_are_ignored() -> None:
    g = fk.Graph("late")
    g.add(Forever()) >> Collect()
    runner = fk.GraphRunner(g)
    await runner.start()
    await runner.close()
    runner._node_failed("forever", RuntimeError("late"))
    assert runner.node_errors == []
