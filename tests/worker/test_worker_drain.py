"""Draining: no new jobs, running jobs finish (up to the drain timeout), then the worker stops."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import urllib.request

from livekit.protocol import agent as agent_pb
from worker_support import GRAPH, KEY, SECRET, meta, running_server, running_worker

from flowkit.testing.livekit_server.agents import DispatchError


async def test_drain_lets_the_running_job_finish_and_takes_no_new_ones() -> None:
    async with running_server() as server, running_worker(server.url) as worker:
        job = await server.dispatcher.dispatch("room", metadata=meta(mode="finish", seconds=0.5))
        await server.dispatcher.wait_for_job(job.id, agent_pb.JS_RUNNING)
        drain = asyncio.ensure_future(worker.drain())
        record = server.dispatcher.workers[worker.id]
        await server.dispatcher.wait_until(lambda: record.draining)
        try:
            await server.dispatcher.dispatch("late", timeout=0.2)
        except DispatchError:
            pass
        else:  # pragma: no cover
            raise AssertionError("a draining worker took a job")
        await asyncio.wait_for(drain, 5)
        assert server.dispatcher.jobs[job.id].status == agent_pb.JS_SUCCESS
        assert worker.outcomes == {"success": 1}


async def test_drain_timeout_ends_jobs_still_running() -> None:
    async with running_server() as server, running_worker(server.url) as worker:
        job = await server.dispatcher.dispatch("room")  # runs forever
        await server.dispatcher.wait_for_job(job.id, agent_pb.JS_RUNNING)
        await asyncio.wait_for(worker.drain(timeout=0.2), 5)
        assert not worker.jobs
        assert worker.outcomes["failed"] == 1


async def _get_json(url: str) -> dict[str, object]:
    def get() -> dict[str, object]:
        with urllib.request.urlopen(url, timeout=2) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]

    return await asyncio.to_thread(get)


async def test_sigterm_drains_a_flowkit_start_process() -> None:
    async with running_server() as server:
        env = {**os.environ, "LIVEKIT_URL": server.url, "LIVEKIT_API_KEY": KEY,
               "LIVEKIT_API_SECRET": SECRET}
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from flowkit.cli import main; main()", "start", str(GRAPH),
            "--http-host", "127.0.0.1", "--http-port", str(port), "--drain-timeout", "10",
            "--no-room",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        try:
            workers = await server.dispatcher.wait_for_workers(1, timeout=30)
            job = await server.dispatcher.dispatch(
                "room", metadata=meta(mode="finish", seconds=1.0)
            )
            assert job.worker_id == workers[0].id
            await server.dispatcher.wait_for_job(job.id, agent_pb.JS_RUNNING)
            described = await _get_json(f"http://127.0.0.1:{port}/worker")
            assert [j["id"] for j in described["active_jobs"]] == [job.id]  # type: ignore[index, union-attr]

            proc.send_signal(signal.SIGTERM)
            record = workers[0]
            await server.dispatcher.wait_until(lambda: record.draining, timeout=5)
            assert proc.returncode is None  # still finishing its job
            code = await asyncio.wait_for(proc.wait(), 15)
            assert code == 0
            assert server.dispatcher.jobs[job.id].status == agent_pb.JS_SUCCESS
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        _, err = await proc.communicate()
        lines = [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
        assert any(line.get("job_id") == job.id and line.get("room") == "room" for line in lines)
        assert any("draining" in line["message"] for line in lines)
