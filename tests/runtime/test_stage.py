"""Stage: a push/flush transform wired straight onto the runtime's streams."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
import reactivex
from reactivex import Observable
from support import Collect, Numbers, collected

import flowkit as fk


class Pairs:
    """Emits the items two by two; the flush emits a leftover single."""

    def __init__(self) -> None:
        self.held: list[int] = []
        self.stopped = 0

    def push(self, value: int) -> Iterable[tuple[int, ...]]:
        if value < 0:
            raise ValueError("negative")
        self.held.append(value)
        if len(self.held) < 2:
            return ()
        pair, self.held = tuple(self.held), []
        return (pair,)

    def flush(self) -> Iterable[tuple[int, ...]]:
        return (tuple(self.held),) if self.held else ()

    def stop(self) -> None:
        self.stopped += 1


def test_push_results_then_the_flush_then_completion_then_stop() -> None:
    pairs = Pairs()
    events: list[object] = []
    stage = fk.Stage(reactivex.from_iterable([1, 2, 3, 4, 5]), pairs.push, pairs.flush, pairs.stop)
    stage.subscribe(events.append, events.append, lambda: events.append("done"))
    assert events == [(1, 2), (3, 4), (5,), "done"]
    assert pairs.stopped == 1


def test_a_push_error_goes_to_the_subscriber_and_stops_the_stage() -> None:
    pairs = Pairs()
    events: list[object] = []
    stage = fk.Stage(reactivex.from_iterable([1, 2, -1, 3, 4]), pairs.push, pairs.flush, pairs.stop)
    stage.subscribe(events.append, lambda e: events.append(repr(e)), lambda: events.append("x"))
    assert events == [(1, 2), "ValueError('negative')"]
    assert pairs.stopped == 1


def test_disposing_stops_once() -> None:
    pairs = Pairs()
    subject: reactivex.subject.Subject[int] = reactivex.subject.Subject()
    seen: list[object] = []
    subscription = fk.Stage(subject, pairs.push, pairs.flush, pairs.stop).subscribe(seen.append)
    subject.on_next(1)
    subject.on_next(2)
    subscription.dispose()
    subscription.dispose()
    subject.on_next(3)
    subject.on_next(4)
    assert seen == [(1, 2)] and pairs.stopped == 1


class Pairer(fk.Node):
    inp: fk.In[int]
    out: fk.Out[tuple[int, ...]]

    def __init__(self) -> None:
        super().__init__()
        self.pairs = Pairs()

    def wire(self, inp: Observable[int]) -> Observable[tuple[int, ...]]:
        return fk.Stage(inp, self.pairs.push, self.pairs.flush, self.pairs.stop)


async def test_in_a_graph_the_stage_sits_directly_on_the_input_stream() -> None:
    g = fk.Graph("stage")
    node = Pairer()
    sink = Collect()
    g.add(Numbers(range(5))) >> node >> sink
    runner = fk.GraphRunner(g)
    await runner.start()
    # The edge delivers to the stage's own observer: no Rx wrapper in between.
    (tap,) = runner._runs["pairer"].inputs["inp"].taps
    assert type(tap.observer).__name__ == "_StageObserver"
    await runner.wait()
    await runner.close()
    assert collected(sink) == [(0, 1), (2, 3), (4,)]
    assert node.pairs.stopped == 1


async def test_a_failing_push_is_the_nodes_failure() -> None:
    g = fk.Graph("stage-fail")
    pairer = g.add(Pairer(), error_policy=fk.ErrorPolicy.END_GRAPH)
    g.add(Numbers([1, -2, 3])) >> pairer >> Collect()
    with pytest.raises(fk.GraphFailed, match="negative") as info:
        await fk.GraphRunner(g).run()
    assert info.value.node_error.node == "pairer"
