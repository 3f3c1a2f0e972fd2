"""The server goes away and comes back: the worker reconnects, registers, keeps its jobs."""

from __future__ import annotations

import asyncio

from livekit.protocol import agent as agent_pb
from worker_support import Server, running_worker


async def test_server_restart_reconnects_and_keeps_running_jobs() -> None:
    server = Server()
    await server.start()
    try:
        async with running_worker(server.url) as worker:
            first_id = worker.id
            job = await server.dispatcher.dispatch("before")
            await server.dispatcher.wait_for_job(job.id, agent_pb.JS_RUNNING)
            runner = worker.jobs[job.id].runner
            assert runner is not None

            await server.stop()
            await asyncio.sleep(0.3)  # a few failed attempts, with backoff
            assert not worker.connected
            assert job.id in worker.jobs  # the job does not care
            ticks = runner.metrics().node("ticker").messages_out

            await server.restart()
            await worker.wait_registered(timeout=10)
            assert worker.id != first_id
            assert worker.id in server.dispatcher.workers
            # The job kept running: its ticker (a tick every 20 ms) goes on. Waited for, not
            # read at once: the reconnection can take less than one tick.
            deadline = asyncio.get_running_loop().time() + 5
            while runner.metrics().node("ticker").messages_out <= ticks:
                assert asyncio.get_running_loop().time() < deadline, "the job stopped ticking"
                await asyncio.sleep(0.01)
            assert job.id in worker.jobs

            after = await server.dispatcher.dispatch("after")  # takes the next job
            assert after.worker_id == worker.id
            await server.dispatcher.wait_for_job(after.id, agent_pb.JS_RUNNING)
            assert set(worker.jobs) == {job.id, after.id}
    finally:
        await server.stop()


async def test_the_worker_retries_until_the_server_is_up() -> None:
    server = Server()
    await server.start()
    url = server.url
    await server.stop()
    waiting = running_worker(url)
    task = asyncio.ensure_future(waiting.__aenter__())
    await asyncio.sleep(0.3)
    assert not task.done()
    fresh = Server(server.port)
    await fresh.start()
    try:
        worker = await asyncio.wait_for(task, 10)
        assert worker.connected
        await waiting.__aexit__(None, None, None)
    finally:
        await fresh.stop()
