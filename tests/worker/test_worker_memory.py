"""Memory limits of a worker: the warning, full over the limit, the figures, the options.

The RSS comes from an injected ``memory_fnc`` (a box the test sets), so the worker's
behaviour is exercised at exact figures; one test reads the real ``/proc/self/statm``.
"""

from __future__ import annotations

import asyncio
import io
import logging
import math
import mmap
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner
from livekit.protocol import agent as agent_pb
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from worker_support import GRAPH, KEY, SECRET, options, running_server, running_worker

import flowkit.cli_worker
from flowkit.cli import main
from flowkit.live import JobsView
from flowkit.testing.livekit_server.agents import DispatchError, WorkerRecord
from flowkit.worker import (
    MemoryState,
    MemoryWatch,
    Worker,
    WorkerOptions,
    WorkerOptionsError,
    process_rss_mb,
)
from flowkit.worker.http import WorkerHTTPServer


class Rss:
    """A memory function whose figure the test sets; counts its readings."""

    def __init__(self, mb: float | None = 100.0) -> None:
        self.mb = mb
        self.reads = 0

    def __call__(self) -> float | None:
        self.reads += 1
        return self.mb


def _now(watch: MemoryWatch) -> tuple[MemoryState, bool, float | None]:
    """State, over the limit, RSS: read through a call, which mypy does not narrow."""
    return watch.state, watch.over_limit, watch.rss_mb


def _status(record: WorkerRecord) -> agent_pb.WorkerStatus:
    return record.status


def _full(worker: Worker) -> bool:
    return worker.full


def _gauges(text: str) -> dict[str, float]:
    return {s.name: s.value for family in text_string_to_metric_families(text)
            for s in family.samples if not s.labels}


def _messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "flowkit.worker" and r.levelno == level]


# -- the watch on its own ---------------------------------------------------------------------


def test_the_warning_is_logged_once_per_crossing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="flowkit.worker")
    rss = Rss(100)
    watch = MemoryWatch(warn_mb=500, read=rss)
    watch.update(jobs=0)
    assert watch.state == MemoryState.OK and not _messages(caplog, logging.WARNING)

    for mb in (600, 650, 700):  # above it for three readings: one warning
        rss.mb = mb
        watch.update(jobs=3)
    [warning] = _messages(caplog, logging.WARNING)
    assert "600 MB" in warning and "memory_warn_mb (500 MB)" in warning
    assert "3 job(s) running" in warning
    assert "--max-jobs" in warning and "--memory-warn-mb" in warning
    assert _now(watch)[:2] == (MemoryState.WARNING, False)

    rss.mb = 480  # below the warning but not below 90 % of it: still warned
    watch.update(jobs=3)
    rss.mb = 520
    watch.update(jobs=3)
    assert len(_messages(caplog, logging.WARNING)) == 1

    rss.mb = 440  # below 450 (90 %): the warning ends, and the next crossing warns again
    watch.update(jobs=1)
    assert watch.state == MemoryState.OK
    assert any("down to 440 MB" in m for m in _messages(caplog, logging.INFO))
    rss.mb = 510
    watch.update(jobs=2)
    assert len(_messages(caplog, logging.WARNING)) == 2
    assert "510 MB" in _messages(caplog, logging.WARNING)[1]


def test_the_limit_holds_until_ninety_percent(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="flowkit.worker")
    rss = Rss(900)
    watch = MemoryWatch(warn_mb=0, limit_mb=1000, read=rss)
    assert watch.update(jobs=0) is False
    assert _now(watch) == (MemoryState.OK, False, 900)

    rss.mb = 1000  # at the limit is not above it
    assert watch.update(jobs=0) is False
    assert _now(watch) == (MemoryState.OK, False, 1000)
    rss.mb = 1001
    assert watch.update(jobs=5) is True
    assert _now(watch) == (MemoryState.OVER_LIMIT, True, 1001)
    assert watch.update(jobs=5) is False  # no change, no second error
    [error] = _messages(caplog, logging.ERROR)
    assert "1001 MB" in error and "memory_limit_mb (1000 MB)" in error
    assert "5 job(s) running" in error and "below 900 MB" in error
    assert "running jobs go on" in error and "--memory-limit-mb" in error
    assert not _messages(caplog, logging.WARNING)  # the warning is off (0)

    rss.mb = 950  # below the limit, above 90 % of it
    assert watch.update(jobs=5) is False
    assert _now(watch) == (MemoryState.OVER_LIMIT, True, 950)
    rss.mb = 899
    assert watch.update(jobs=2) is True
    assert _now(watch) == (MemoryState.OK, False, 899)
    assert any("taking jobs again" in m for m in _messages(caplog, logging.INFO))
    rss.mb = 1100
    assert watch.update(jobs=2) is True
    assert len(_messages(caplog, logging.ERROR)) == 2


def test_a_failed_reading_keeps_the_last(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="flowkit.worker")
    rss = Rss(None)
    watch = MemoryWatch(warn_mb=500, limit_mb=1000, read=rss)
    watch.update(jobs=0)
    watch.update(jobs=0)
    assert watch.state == MemoryState.UNKNOWN and watch.rss_mb is None
    [unreadable] = _messages(caplog, logging.WARNING)  # told once, as a limit is not applied
    assert "cannot read this process's memory" in unreadable

    rss.mb = 1200
    watch.update(jobs=0)
    rss.mb = None
    watch.update(jobs=0)
    assert _now(watch) == (MemoryState.OVER_LIMIT, True, 1200)

    def broken() -> float:
        raise OSError("gone")

    watch._read = broken
    assert watch.update(jobs=0) is False
    assert _now(watch) == (MemoryState.OVER_LIMIT, True, 1200)
    assert any("memory function raised" in m for m in _messages(caplog, logging.ERROR))


def test_process_rss_reads_this_process() -> None:
    if not Path("/proc/self/statm").exists():
        assert process_rss_mb() is None
        return
    before = process_rss_mb()
    assert before is not None and 10 < before < 100_000
    status = Path("/proc/self/status").read_text()
    vm_rss_kb = next(int(line.split()[1]) for line in status.splitlines()
                     if line.startswith("VmRSS:"))
    assert abs(before - vm_rss_kb / 1024) < 8  # the kernel's own figure, not the virtual size
    # Fresh anonymous pages, touched: resident from now on. (A bytearray may reuse heap the
    # process already holds resident after a long test session, and RSS would not move.)
    with mmap.mmap(-1, 64 * 1024 * 1024) as block:
        for i in range(0, len(block), 4096):
            block[i] = 1
        after = process_rss_mb()
    assert after is not None and after - before > 50


# -- options and flags --------------------------------------------------------------------------


def _opts(**memory: Any) -> WorkerOptions:
    return WorkerOptions(url="ws://x", api_key="k", api_secret="s", **memory)


@pytest.mark.parametrize("name", ["memory_warn_mb", "memory_limit_mb"])
@pytest.mark.parametrize("value", [-1, math.nan, math.inf, "512", True])
def test_bad_memory_options_are_clear_errors(name: str, value: object) -> None:
    with pytest.raises(WorkerOptionsError, match=rf"^{name} is .*give a size in MB.*0 to turn"):
        _opts(**{name: value}).check()


def test_memory_defaults_and_zero() -> None:
    default = _opts()
    assert (default.memory_warn_mb, default.memory_limit_mb) == (2048.0, 0.0)
    _opts(memory_warn_mb=0, memory_limit_mb=0).check()
    _opts(memory_warn_mb=300, memory_limit_mb=1500.5).check()


def _invoke(*args: str) -> tuple[int, str]:
    env = {"LIVEKIT_URL": "ws://127.0.0.1:9", "LIVEKIT_API_KEY": KEY, "LIVEKIT_API_SECRET": SECRET}
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.output


def test_memory_flags_reach_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Worker] = []

    async def run(worker: Worker, **_: object) -> None:
        seen.append(worker)

    monkeypatch.setattr(flowkit.cli_worker, "_run", run)
    code, output = _invoke("start", str(GRAPH), "--memory-warn-mb", "300",
                           "--memory-limit-mb", "1500")
    assert code == 0, output
    o = seen[0].options
    assert (o.memory_warn_mb, o.memory_limit_mb) == (300.0, 1500.0)
    assert (seen[0].memory.warn_mb, seen[0].memory.limit_mb) == (300.0, 1500.0)

    code, output = _invoke("dev", str(GRAPH))  # not given: the options' defaults
    assert code == 0, output
    assert (seen[1].options.memory_warn_mb, seen[1].options.memory_limit_mb) == (2048.0, 0.0)


def test_bad_memory_flags_exit_with_code_2() -> None:
    code, output = _invoke("start", str(GRAPH), "--memory-limit-mb", "-5")
    assert code == 2 and "--memory-limit-mb" in output
    code, output = _invoke("start", str(GRAPH), "--memory-warn-mb", "nan")
    assert code == 2 and "memory_warn_mb is nan" in output and "0 to turn it off" in output


# -- against the test server ------------------------------------------------------------------


async def test_over_the_limit_the_worker_is_full_and_back() -> None:
    rss = Rss(100)
    async with running_server() as server, running_worker(
        server.url, memory_fnc=rss, memory_limit_mb=1000
    ) as worker:
        record = server.dispatcher.workers[worker.id]
        await server.dispatcher.wait_until(lambda: record.status_updates >= 1)
        assert record.status == agent_pb.WS_AVAILABLE
        steady = await server.dispatcher.dispatch("steady")
        await server.dispatcher.wait_for_job(steady.id, agent_pb.JS_RUNNING)

        rss.mb = 1200
        await server.dispatcher.wait_until(lambda: record.status == agent_pb.WS_FULL)
        assert worker.full and worker.memory.state == MemoryState.OVER_LIMIT
        with pytest.raises(DispatchError, match="asked nobody"):  # the server sends none
            await server.dispatcher.dispatch("refused", timeout=0.3)

        runner = worker.jobs[steady.id].runner  # the running job goes on
        assert runner is not None
        before = runner.metrics().node("ticker").messages_out
        await asyncio.sleep(0.15)
        assert runner.metrics().node("ticker").messages_out > before

        rss.mb = 950  # under the limit, above 900 (90 %): still full
        seen = record.status_updates
        await server.dispatcher.wait_until(lambda: record.status_updates >= seen + 2)
        assert record.status == agent_pb.WS_FULL

        waiting = asyncio.ensure_future(server.dispatcher.dispatch("waits", timeout=10))
        await asyncio.sleep(0.15)
        assert not waiting.done()
        rss.mb = 850
        job = await waiting  # available again: the waiting dispatch is taken
        assert job.worker_id == worker.id and _status(record) == agent_pb.WS_AVAILABLE
        assert not _full(worker) and _now(worker.memory)[0] == MemoryState.OK
        await server.dispatcher.wait_until(lambda: job.id in worker.jobs)
        assert list(worker.jobs) == [steady.id, job.id]


async def test_a_job_offered_over_the_limit_is_refused_at_once() -> None:
    # Reports far apart: the limit is crossed between two; the offer reads the memory itself.
    rss = Rss(100)
    async with running_server() as server, running_worker(
        server.url, memory_fnc=rss, memory_limit_mb=1000, status_interval=60
    ) as worker:
        record = server.dispatcher.workers[worker.id]
        await server.dispatcher.wait_until(lambda: record.status_updates >= 1)
        assert record.status == agent_pb.WS_AVAILABLE
        rss.mb = 1500
        with pytest.raises(DispatchError, match=f"asked \\['{worker.id}'\\]"):
            await server.dispatcher.dispatch("over", timeout=0.5)
        assert not worker.jobs
        assert record.status == agent_pb.WS_FULL  # told at the offer, not 60 s later
        assert record.status_updates == 2


async def test_the_warning_does_not_make_the_worker_full(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="flowkit.worker")
    rss = Rss(100)
    async with running_server() as server, running_worker(
        server.url, memory_fnc=rss, memory_warn_mb=500
    ) as worker:
        record = server.dispatcher.workers[worker.id]
        rss.mb = 600
        seen = rss.reads
        await server.dispatcher.wait_until(lambda: rss.reads >= seen + 4)  # several reports
        assert record.status == agent_pb.WS_AVAILABLE and not worker.full
        [warning] = _messages(caplog, logging.WARNING)
        assert "600 MB" in warning and "memory_warn_mb (500 MB)" in warning
        job = await server.dispatcher.dispatch("still-taken")
        assert job.worker_id == worker.id


async def test_the_http_endpoint_shows_the_memory() -> None:
    rss = Rss(321.25)
    async with running_server() as server:
        worker = Worker(GRAPH, options(server.url, memory_fnc=rss, memory_warn_mb=500,
                                       memory_limit_mb=1000))
        http = WorkerHTTPServer(worker, "127.0.0.1", 0)
        await http.start()
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(http.url + "/worker") as response:
                    described = await response.json()
                assert described["memory_mb"] is None  # not read before registering
                assert described["memory_state"] == "unknown"
                async with session.get(http.url + "/metrics") as response:
                    gauges = _gauges(await response.text())
                assert "flowkit_worker_memory_bytes" not in gauges  # no figure yet: no sample
                assert gauges["flowkit_worker_memory_over_limit"] == 0

                await worker.start(timeout=10)
                async with session.get(http.url + "/worker") as response:
                    described = await response.json()
                assert described["memory_mb"] == 321.2
                assert described["memory_state"] == "ok"
                assert described["memory_warn_mb"] == 500
                assert described["memory_limit_mb"] == 1000
                async with session.get(http.url + "/metrics") as response:
                    text = await response.text()
                gauges = _gauges(text)
                assert gauges["flowkit_worker_memory_bytes"] == 321.25 * 2**20
                assert gauges["flowkit_worker_memory_warn_bytes"] == 500 * 2**20
                assert gauges["flowkit_worker_memory_limit_bytes"] == 1000 * 2**20
                assert gauges["flowkit_worker_memory_over_limit"] == 0

                rss.mb = 1024
                await server.dispatcher.wait_until(lambda: worker.memory.over_limit)
                async with session.get(http.url + "/worker") as response:
                    described = await response.json()
                assert described["memory_mb"] == 1024
                assert described["memory_state"] == "over_limit"
                assert described["status"] == "full"
                async with session.get(http.url + "/metrics") as response:
                    text = await response.text()
                gauges = _gauges(text)
                assert gauges["flowkit_worker_memory_bytes"] == 1024 * 2**20
                assert gauges["flowkit_worker_memory_over_limit"] == 1

            console = Console(record=True, file=io.StringIO(), width=120)
            console.print(JobsView(worker).render())
            assert "mem 1024 MB (over limit)" in console.export_text()
        finally:
            await worker.aclose()
            await http.aclose()

