import asyncio
import time

from flowkit.runtime.fastforward import FastForwardLoop


def _run(coro_fn):  # type: ignore[no-untyped-def]
    with asyncio.Runner(loop_factory=FastForwardLoop) as runner:
        return runner.run(coro_fn())


def test_idle_waits_are_skipped_but_timers_keep_their_order() -> None:
    async def main() -> tuple[float, list[str]]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        order: list[str] = []

        async def after(delay: float, name: str) -> None:
            await asyncio.sleep(delay)
            order.append(name)

        await asyncio.gather(after(30, "c"), after(10, "a"), after(20, "b"))
        return loop.time() - start, order

    wall = time.monotonic()
    elapsed, order = _run(main)
    assert order == ["a", "b", "c"]
    assert 30 <= elapsed < 30.5
    assert time.monotonic() - wall < 5  # thirty clock seconds, no thirty real seconds


def test_work_in_a_thread_takes_its_real_time() -> None:
    async def main() -> tuple[float, float, bool]:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, FastForwardLoop)
        start = loop.time()
        timer = asyncio.ensure_future(asyncio.sleep(0.05))  # a timer due while the thread works
        wall = time.monotonic()
        await loop.run_in_executor(None, time.sleep, 0.3)
        await timer
        return loop.time() - start, time.monotonic() - wall, loop.threads_busy

    clock, wall, busy = _run(main)
    assert wall >= 0.3
    assert 0.29 <= clock < 1.0  # the clock did not jump while the thread computed
    assert busy is False


def test_cpu_work_on_the_loop_is_counted() -> None:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = time.monotonic() + 0.2
        while time.monotonic() < deadline:
            pass
        return loop.time() - start

    assert _run(main) >= 0.2
