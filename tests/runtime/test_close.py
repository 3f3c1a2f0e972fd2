import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
import reactivex
from reactivex import Observable
from reactivex import operators as ops
from support import Collect, Forever, collected

import flowkit as fk
from flowkit.runtime.runner import RunnerState


class Requests(fk.Node):
    """Each input starts a streamed 'request' that a new input cancels (switch_map)."""

    inp: fk.In[int]
    out: fk.Out[str]

    def __init__(self) -> None:
        super().__init__()
        self.started = 0
        self.cancelled = 0

    def wire(self, inp: Observable[int]) -> Observable[str]:
        async def stream(n: int) -> AsyncIterator[str]:
            self.started += 1
            try:
                for i in range(100):
                    await asyncio.sleep(0.3)
                    yield f"{n}:{i}"
            except asyncio.CancelledError:
                self.cancelled += 1
                raise

        return inp.pipe(
            ops.map(lambda n: fk.from_async_iterable(lambda: stream(n))), ops.switch_latest()
        )


@fk.node(threaded=True)
def crunch(x: str) -> str:
    return x.upper()


class Interval(fk.Node):
    out: fk.Out[int]

    def wire(self) -> Observable[int]:
        return reactivex.interval(0.5)


@pytest.mark.looptime
async def test_close_leaves_no_task_and_no_subscription() -> None:
    g = fk.Graph("live")
    req = g.add(Requests())
    g.add(Forever()) >> req >> crunch() >> g.add(Collect(), name="sink")
    g.add(Interval()) >> g.add(Collect(), name="ticks")
    runner = fk.GraphRunner(g)
    await runner.start()
    await asyncio.sleep(5)
    assert runner.live_subscriptions() > 0 and runner.pending_tasks()
    await runner.close()

    assert runner.live_subscriptions() == 0
    assert runner.pending_tasks() == []
    others = asyncio.all_tasks() - {asyncio.current_task()}
    assert others == set(), others
    assert req.started >= 4 and req.cancelled == req.started  # every request was cancelled
    assert collected(g.nodes["sink"])  # it did work before closing
    with pytest.raises(RuntimeError, match="not running"):
        req.out.send("late")
    with pytest.raises(RuntimeError, match="only available while"):
        _ = req.ctx
    await runner.close()  # idempotent
    assert runner.state is fk.runtime.RunnerState.CLOSED


@pytest.mark.looptime
async def test_switch_map_cancels_the_old_request_on_new_input() -> None:
    g = fk.Graph("turns")
    req = g.add(Requests())
    sink = Collect()
    g.add(Forever()) >> req >> sink
    async with fk.GraphRunner(g):
        await asyncio.sleep(3.5)
    # inputs at 1, 2, 3 s; each request yields every 0.3 s until the next input replaces it
    assert req.started == 3 and req.cancelled == 3
    assert [item.split(":")[0] for item in collected(sink)] == ["0"] * 3 + ["1"] * 3 + ["2"]


class Stubborn(fk.Node):
    """Swallows its first cancellation (a bug a node can have), ends on the second."""

    out: fk.Out[int]

    def __init__(self) -> None:
        super().__init__()
        self.cancellations = 0

    async def run(self) -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                self.cancellations += 1
                if self.cancellations > 1:
                    raise


async def test_close_leaves_a_task_that_swallows_its_cancellation_behind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="flowkit.runtime")
    g = fk.Graph("stubborn")
    stubborn = Stubborn()
    g.add(stubborn, name="stuck") >> Collect()
    runner = fk.GraphRunner(g, close_timeout=0.2)
    await runner.start()
    await asyncio.sleep(0)
    await asyncio.wait_for(runner.close(), 5)  # without the bound: forever
    assert runner.state is RunnerState.CLOSED
    assert "'stuck'" in caplog.text and "did not end within 0.2 s" in caplog.text
    await asyncio.sleep(0)  # the second cancellation, sent by close, ends it
    assert stubborn.cancellations == 2


@pytest.mark.parametrize("timeout", [0.0, -1.0, float("nan")])
def test_close_timeout_must_be_positive(timeout: float) -> None:
    g = fk.Graph("g")
    g.add(Stubborn()) >> Collect()
    with pytest.raises(ValueError, match="must be positive"):
        fk.GraphRunner(g, close_timeout=timeout)
