import asyncio
from collections.abc import AsyncIterator

import pytest
import reactivex
from reactivex import Observable
from reactivex import operators as ops
from support import Collect, Forever, collected

import flowkit as fk


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
