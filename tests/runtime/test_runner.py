import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import reactivex
from reactivex import Observable
from reactivex import operators as ops
from support import AddOne, Collect, Numbers, Pusher, TwoOut, collected, double, to_text

import flowkit as fk


async def test_each_node_style_in_one_chain() -> None:
    g = fk.Graph("styles")
    sink = Collect()
    g.add(Numbers([1, 2, 3])) >> AddOne() >> double() >> to_text() >> sink
    await fk.GraphRunner(g).run()
    assert collected(sink) == ["4", "6", "8"]


@fk.node
def words(text: str) -> Iterator[str]:
    yield from text.split()


@fk.node
def odd_only(x: int) -> int | None:
    return x if x % 2 else None


@fk.node
async def slow_upper(text: str) -> str:
    await asyncio.sleep(0.5)
    return text.upper()


@fk.node
async def letters(text: str) -> AsyncIterator[str]:
    for ch in text:
        yield ch


class Sentences(fk.Node):
    out: fk.Out[str]

    def wire(self) -> Observable[str]:
        return reactivex.from_iterable(["hello big", "world"])


@pytest.mark.looptime
async def test_function_node_modes() -> None:
    g = fk.Graph("modes")
    sink = Collect()
    g.add(Sentences()) >> words() >> slow_upper() >> letters() >> sink
    odd = Collect()
    g.add(Numbers(range(6))) >> odd_only() >> odd
    loop = asyncio.get_running_loop()
    start = loop.time()
    await fk.GraphRunner(g).run()
    assert "".join(collected(sink)) == "HELLOBIGWORLD"
    assert collected(odd) == [1, 3, 5]
    assert loop.time() - start == pytest.approx(1.5)  # three words, one at a time, virtual time


@fk.node(threaded=True)
def on_thread(x: int) -> tuple[int, str]:
    return x, threading.current_thread().name


async def test_threaded_function_runs_off_the_loop_and_keeps_order() -> None:
    g = fk.Graph("threads")
    sink = Collect()
    g.add(Numbers(range(50)), name="src") >> g.add(on_thread(), name="worker") >> sink
    await fk.GraphRunner(g).run()
    assert [x for x, _ in collected(sink)] == list(range(50))
    assert {name for _, name in collected(sink)} == {"flowkit-worker_0"}


async def test_fan_out_delivers_everything_to_every_consumer() -> None:
    g = fk.Graph("fan")
    a, b = Collect(), Collect()
    g.add(Numbers([1, 2, 3])) >> [a, b]
    await fk.GraphRunner(g).run()
    assert collected(a) == collected(b) == [1, 2, 3]


@pytest.mark.looptime
async def test_merge_interleaves_and_completes_after_the_last_producer() -> None:
    g = fk.Graph("merge")
    sink = Collect()
    g.add(Pusher(values=(1, 3), gap=1.0), name="slow") >> sink
    g.add(Pusher(values=(2,), gap=1.5), name="fast") >> sink
    runner = fk.GraphRunner(g)
    await runner.run()
    assert collected(sink) == [1, 2, 3]
    assert runner.metrics().node("collect").messages_in == 3


class Counter(fk.Node):
    """Counts from a seed by feeding each value back until it reaches 5.

    It owns the loop, so it ends the loop output itself once the count is done.
    """

    seed: fk.In[int] = fk.In(default=True)
    back: fk.In[int] = fk.In(feedback=True)
    out: fk.Out[int] = fk.Out(default=True)
    done: fk.Out[int]

    def wire(self, seed: Observable[int], back: Observable[int]) -> dict[str, Observable[int]]:
        both = reactivex.merge(seed, back).pipe(ops.share())
        done = both.pipe(ops.filter(lambda x: x >= 5), ops.take(1), ops.share())
        return {
            "out": both.pipe(ops.filter(lambda x: x < 5), ops.take_until(done)),
            "done": done,
        }


async def test_declared_feedback_loop_runs_and_ends() -> None:
    g = fk.Graph("loop")
    counter = g.add(Counter())
    g.add(Numbers([0])) >> counter
    counter >> AddOne() >> counter.back
    sink = g.add(Collect())
    counter.done >> sink
    runner = fk.GraphRunner(g)
    await asyncio.wait_for(runner.run(), 5)
    assert collected(sink) == [5]
    assert runner.metrics().edge("add_one.out", "counter.back").messages == 5


async def test_subgraph_runs_inside_its_parent() -> None:
    sub = fk.Graph("inner")
    inc = sub.add(AddOne())
    inc >> double()
    sub.expose("inp", inc.inp)
    sub.expose("out", sub.nodes["double"].outputs["out"])
    g = fk.Graph("outer")
    sink = Collect()
    g.add(Numbers([1, 2])) >> g.add(sub, name="calc") >> sink
    await fk.GraphRunner(g).run()
    assert collected(sink) == [4, 6]


async def test_two_outputs_route_separately() -> None:
    g = fk.Graph("split")
    split = g.add(TwoOut())
    g.add(Numbers(range(5))) >> split
    evens, odds = Collect(), Collect()
    split.evens >> evens
    split.odds >> odds
    await fk.GraphRunner(g).run()
    assert (collected(evens), collected(odds)) == ([0, 2, 4], [1, 3])


async def test_metrics_count_every_edge_and_node() -> None:
    g = fk.Graph("measured")
    sink = Collect()
    g.add(Numbers(range(10))) >> AddOne() >> double() >> sink
    runner = fk.GraphRunner(g)
    await runner.run()
    metrics = runner.metrics()
    assert [e.messages for e in metrics.edges] == [10, 10, 10]
    assert metrics.node("add_one").messages_in == 10
    assert metrics.node("add_one").messages_out == 10
    assert metrics.node("double").busy_s > 0
    assert metrics.edge("double.out", "collect.inp").max_queue_depth >= 1


class Slow(fk.Node):
    inp: fk.In[int] = fk.In(queue=2, overflow=fk.Overflow.DROP_OLDEST)

    def __init__(self) -> None:
        super().__init__()
        self.items: list[int] = []

    async def run(self, inp: AsyncIterator[int]) -> None:
        async for item in inp:
            await asyncio.sleep(1.0)
            self.items.append(item)


@pytest.mark.looptime
async def test_bounded_queue_drops_oldest_and_counts_it() -> None:
    g = fk.Graph("backpressure")
    slow = Slow()
    g.add(Numbers(range(10))) >> slow
    runner = fk.GraphRunner(g)
    await runner.run()
    edge = runner.metrics().edge("numbers.out", "slow.inp")
    assert edge.messages == 10
    assert edge.dropped == len(range(10)) - len(slow.items)
    assert edge.dropped > 0 and slow.items[-1] == 9
    assert edge.max_queue_depth == 2


class Ticker(fk.Node):
    """Rx timers on the job's scheduler: virtual time makes them instant in tests."""

    out: fk.Out[int]

    def wire(self) -> Observable[int]:
        return reactivex.interval(1.0).pipe(ops.take(3))


class Debounced(fk.Node):
    inp: fk.In[int]
    out: fk.Out[int]

    def wire(self, inp: Observable[int]) -> Observable[int]:
        return inp.pipe(ops.debounce(2.5))


@pytest.mark.looptime
async def test_rx_time_operators_use_the_loop_clock() -> None:
    g = fk.Graph("timers")
    sink = Collect()
    g.add(Ticker()) >> g.add(Debounced()) >> sink
    loop = asyncio.get_running_loop()
    start = loop.time()
    await fk.GraphRunner(g).run()
    assert collected(sink) == [2]  # ticks 1 s apart are debounced away but the last
    assert loop.time() - start == pytest.approx(3.0, abs=0.01)


async def test_observe_gives_an_output_stream() -> None:
    g = fk.Graph("observed")
    g.add(Numbers([7, 8])) >> Collect()
    runner = fk.GraphRunner(g)
    seen: list[Any] = []
    await runner.start()
    runner.observe("numbers.out").subscribe(seen.append)
    with pytest.raises(KeyError, match="no node 'nope'"):
        runner.observe("nope.out")
    await runner.wait()
    await runner.close()
    assert seen == [7, 8]


async def test_outputs_carrying_a_type_are_found_linked_or_not() -> None:
    g = fk.Graph("typed")
    split = g.add(TwoOut(), name="split")
    g.add(Numbers([1, 2]), name="numbers") >> split
    split.evens >> g.add(to_text(), name="text") >> Collect()  # odds: linked to nothing
    runner = fk.GraphRunner(g)
    await runner.start()
    assert sorted(runner.outputs_carrying(int)) == ["numbers.out", "split.evens", "split.odds"]
    assert runner.outputs_carrying((str, bytes)) == ["text.out"]
    assert runner.outputs_carrying(float) == []
    await runner.wait()
    await runner.close()


def test_an_invalid_graph_does_not_start() -> None:
    g = fk.Graph("bad")
    g.add(Collect())
    with pytest.raises(fk.GraphError, match="has no edge"):
        fk.GraphRunner(g)


async def test_a_runner_starts_once() -> None:
    g = fk.Graph("once")
    g.add(Numbers()) >> Collect()
    runner = fk.GraphRunner(g)
    await runner.run()
    with pytest.raises(RuntimeError, match="starts once"):
        await runner.start()


class Echo(fk.Node):
    """Forwards its seeds, ends its output with them, then reads what comes back."""

    seed: fk.In[int] = fk.In(default=True)
    back: fk.In[int] = fk.In(feedback=True)
    out: fk.Out[int]

    def __init__(self) -> None:
        super().__init__()
        self.returned: list[int] = []

    async def run(self, seed: AsyncIterator[int], back: AsyncIterator[int]) -> None:
        async for value in seed:
            self.out.send(value)
        self.out.close()  # the loop owner ends the loop; ``back`` then drains and ends
        async for value in back:
            self.returned.append(value)


class SendThenEnd(fk.Node):
    inp: fk.In[int]
    out: fk.Out[int]

    async def run(self, inp: AsyncIterator[int]) -> None:
        async for value in inp:
            self.out.send(value * 10)
        # returning completes ``out`` right after the last send


async def test_feedback_edge_delivers_what_was_sent_before_completion() -> None:
    g = fk.Graph("drain")
    echo = g.add(Echo())
    g.add(Numbers([1, 2, 3])) >> echo
    echo >> SendThenEnd() >> echo.back
    await asyncio.wait_for(fk.GraphRunner(g).run(), 5)
    assert echo.returned == [10, 20, 30]


async def test_inject_delivers_into_an_input_as_an_edge_would() -> None:
    g = fk.Graph("inject")
    sink = Collect()
    g.add(Pusher(values=(1,), gap=0.01)) >> sink
    runner = fk.GraphRunner(g)
    await runner.start()
    runner.inject("collect.inp", 42)
    with pytest.raises(KeyError, match=r"inputs: \['collect.inp'\]"):
        runner.inject("collect.nope", 1)
    await runner.wait()
    await runner.close()
    assert collected(sink) == [42, 1]
