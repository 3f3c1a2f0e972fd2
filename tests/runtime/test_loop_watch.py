"""LoopWatch: code that blocks the event loop is measured and caught in the act."""

from __future__ import annotations

import asyncio
import gc
import logging
import time

import pytest

from flowkit.runtime.loop_watch import LoopStall, LoopWatch


def block(seconds: float) -> None:
    """A synchronous call on the loop's thread."""
    time.sleep(seconds)


async def test_a_task_blocking_the_loop_is_caught_with_its_task_and_line() -> None:
    stalls: list[LoopStall] = []
    watch = LoopWatch(0.15, stalls.append)
    watch.start()
    try:
        await asyncio.sleep(0.1)

        async def slow_tool() -> None:
            block(0.35)

        task = asyncio.get_running_loop().create_task(slow_tool(), name="slow-tool")
        await task
        await asyncio.sleep(0.1)  # the heartbeat after the stall reports it
    finally:
        watch.stop()
    [stall] = stalls
    assert 0.3 <= stall.duration_s < 1.5
    assert stall.task is task
    assert stall.culprit is not None and stall.culprit.name == "block"
    sleep_line = block.__code__.co_firstlineno + 2
    assert stall.where().endswith(f"test_loop_watch.py:{sleep_line} in block")
    assert "in slow_tool > " in stall.stack_text() and stall.stack_text().endswith("in block")
    assert "base_events.py" not in stall.stack_text()  # the loop's own frames are left out
    assert watch.stalls == 1 and watch.longest_s == stall.duration_s
    assert watch.last is stall


async def test_a_plain_callback_blocking_the_loop_has_no_task() -> None:
    stalls: list[LoopStall] = []
    watch = LoopWatch(0.15, stalls.append)
    watch.start()
    try:
        asyncio.get_running_loop().call_soon(block, 0.35)
        await asyncio.sleep(0.5)
    finally:
        watch.stop()
    [stall] = stalls
    assert stall.task is None
    assert stall.culprit is not None and stall.culprit.name == "block"


async def test_blocks_shorter_than_the_threshold_are_not_stalls() -> None:
    stalls: list[LoopStall] = []
    watch = LoopWatch(0.3, stalls.append)
    watch.start()
    try:
        for _ in range(4):
            block(0.1)
            await asyncio.sleep(0.05)
    finally:
        watch.stop()
    assert stalls == [] and watch.stalls == 0 and watch.stalled_s == 0.0


async def test_a_stall_that_lasts_is_logged_while_it_lasts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="flowkit.runtime")
    watch = LoopWatch(0.1, still_blocked_after=0.3)
    watch.start()
    try:
        await asyncio.sleep(0.05)
        block(0.6)
        # Logged by the watch's thread during the block, before the loop ran again.
        [record] = [r for r in caplog.records if "still is" in r.getMessage()]
        assert "in block" in record.getMessage()
        await asyncio.sleep(0.05)
    finally:
        watch.stop()
    assert watch.stalls == 1


async def test_a_failing_report_is_logged_and_the_watch_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="flowkit.runtime")

    def broken(stall: LoopStall) -> None:
        raise RuntimeError("report failed")

    watch = LoopWatch(0.1, broken)
    watch.start()
    try:
        for _ in range(2):
            await asyncio.sleep(0.05)
            block(0.25)
        await asyncio.sleep(0.05)
    finally:
        watch.stop()
    assert watch.stalls == 2
    assert sum("on_stall callback failed" in r.getMessage() for r in caplog.records) == 2


async def test_start_stop_and_a_wrong_threshold() -> None:
    watch = LoopWatch(0.2)
    watch.start()
    assert watch.running
    with pytest.raises(RuntimeError, match="already running"):
        watch.start()
    watch.stop()
    watch.stop()  # idempotent
    assert not watch.running
    watch.start()  # and again after a stop
    watch.stop()
    for wrong in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="threshold"):
            LoopWatch(wrong)


def test_a_stall_not_seen_says_why() -> None:
    stall = LoopStall(0.5, None, None)
    assert stall.culprit is None
    assert "held the GIL" in stall.where()
    assert stall.stack_text() == ""


async def test_a_garbage_collection_stall_is_told_as_one() -> None:
    stalls: list[LoopStall] = []
    # Three million tracked objects: a full collection of them holds the GIL for well over
    # the threshold (0.20-0.23 s in the runs here), so the watch's thread cannot see a stack.
    heap = [[i] for i in range(3_000_000)]
    watch = LoopWatch(0.05, stalls.append)
    watch.start()
    try:
        await asyncio.sleep(0.05)
        asyncio.get_running_loop().call_soon(gc.collect)
        await asyncio.sleep(0.1)
    finally:
        watch.stop()
        del heap
    stall = max(stalls, key=lambda s: s.gc_s)
    assert stall.gc_s >= stall.duration_s / 2 and stall.garbage_collection
    assert stall.where().startswith("Python's garbage collection (")
    assert watch._on_gc not in gc.callbacks  # stop() removed its collection timer
