"""A job's code blocks the event loop every job shares: the worker says who, where and for how
long, in its logs, /worker and /metrics."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import pytest
from livekit.protocol import agent as agent_pb
from worker_support import GRAPH, Server, meta, options, running_server, running_worker

from flowkit.testing.livekit_server.agents import ServerJob
from flowkit.worker import Worker, WorkerOptions
from flowkit.worker.http import WorkerHTTPServer
from flowkit.worker.options import WorkerOptionsError

STALL = "the event loop was blocked"


def stall_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith(STALL)]


async def job_that_stalls(
    server: Server, worker: Worker, room: str, count: int, **config: Any
) -> ServerJob:
    """Dispatch a job of ``job_graph.py`` (``config`` as its metadata) and wait until it runs
    and the worker's loop watch has seen ``count`` stalls in all."""
    job = await server.dispatcher.dispatch(room, metadata=meta(**config))
    await server.dispatcher.wait_for_job(job.id, agent_pb.JS_RUNNING)
    deadline = asyncio.get_running_loop().time() + 10.0
    assert worker.loop_watch is not None
    while worker.loop_watch.stalls < count:
        assert asyncio.get_running_loop().time() < deadline, "no stall was seen"
        await asyncio.sleep(0.02)
    return job


async def test_a_node_blocking_the_loop_is_named_with_its_job_and_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="flowkit.worker")
    async with running_server() as server:
        worker = Worker(GRAPH, options(server.url, loop_stall_ms=150))
        http = WorkerHTTPServer(worker, "127.0.0.1", 0)
        await http.start()
        await worker.start(timeout=10)
        try:
            job = await job_that_stalls(server, worker, "slow-room", 1, mode="block", seconds=0.4)

            [record] = stall_records(caplog)
            message = record.getMessage()
            assert f"node 'ticker' of job {job.id} in room 'slow-room'" in message
            assert "job_graph.py" in message and "in block_the_loop" in message
            assert "run_in_thread" in message  # the remedy
            assert record.job_id == job.id and record.room == "slow-room"  # type: ignore[attr-defined]
            assert record.node == "ticker"  # type: ignore[attr-defined]
            assert 350 <= record.stall_ms < 2000  # type: ignore[attr-defined]

            async with aiohttp.ClientSession() as session:
                async with session.get(http.url + "/worker") as response:
                    described = await response.json()
                async with session.get(http.url + "/metrics") as response:
                    text = await response.text()
            assert described["loop_stall_ms"] == 150
            assert described["loop_stalls"] == 1
            assert 350 <= described["loop_stall_longest_ms"] < 2000
            assert "flowkit_worker_loop_stalls_total 1.0" in text
            assert "flowkit_worker_loop_stall_longest_seconds 0." in text
            assert job.id in worker.jobs  # the job itself goes on
        finally:
            await worker.aclose()
            await http.aclose()


async def test_a_build_that_blocks_names_the_job_being_built(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="flowkit.worker")
    async with running_server() as server, running_worker(
        server.url, loop_stall_ms=150
    ) as worker:
        job = await job_that_stalls(server, worker, "model-room", 1, build_blocks=0.4)
        [record] = stall_records(caplog)
        message = record.getMessage()
        assert f"job {job.id} in room 'model-room', building its graph" in message
        assert "in build" in message
        assert "not in build(job)" in message  # the remedy for this case


async def test_stalls_at_one_place_are_logged_once_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="flowkit.worker")
    async with running_server() as server, running_worker(
        server.url, loop_stall_ms=150
    ) as worker:
        await job_that_stalls(server, worker, "busy-room", 3, mode="block", seconds=0.25, times=3)
        assert worker.loop_watch is not None
        assert 0.6 <= worker.loop_watch.stalled_s < 3.0
        assert len(stall_records(caplog)) == 1  # the next line for the place would say "2 more"


async def test_the_watch_can_be_turned_off_and_refuses_a_wrong_setting() -> None:
    server = Server()
    await server.start()
    try:
        async with running_worker(server.url, loop_stall_ms=0) as worker:
            assert worker.loop_watch is None
    finally:
        await server.stop()
    for wrong in (-1.0, float("nan"), True):
        with pytest.raises(WorkerOptionsError, match="loop_stall_ms"):
            WorkerOptions(url="ws://x", api_key="k", api_secret="s", loop_stall_ms=wrong).check()
