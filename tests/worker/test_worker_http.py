"""The worker's HTTP server: health, /worker, /metrics."""

from __future__ import annotations

import asyncio

import aiohttp
from livekit.protocol import agent as agent_pb
from worker_support import GRAPH, Server, options, running_server

from flowkit.worker import Worker
from flowkit.worker.http import WorkerHTTPServer


async def test_health_worker_and_metrics() -> None:
    async with running_server() as server:
        worker = Worker(GRAPH, options(server.url, agent_name="http", load_fnc=lambda: 0.25,
                                       max_jobs=4))
        http = WorkerHTTPServer(worker, "127.0.0.1", 0)
        await http.start()
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(http.url + "/") as response:
                    assert response.status == 503  # not registered yet
                    assert "not connected" in await response.text()
                await worker.start(timeout=10)
                async with session.get(http.url + "/") as response:
                    assert response.status == 200

                job = await server.dispatcher.dispatch("metrics-room", "http")
                await server.dispatcher.wait_for_job(job.id, agent_pb.JS_RUNNING)
                async with session.get(http.url + "/worker") as response:
                    described = await response.json()
                assert described["id"] == worker.id
                assert described["agent_name"] == "http"
                assert described["load"] == 0.25
                assert described["status"] == "available"
                assert described["max_jobs"] == 4
                [active] = described["active_jobs"]
                assert active["id"] == job.id and active["room"] == "metrics-room"
                assert active["graph"] == "worker-test"

                async with session.get(http.url + "/metrics") as response:
                    assert response.headers["Content-Type"].startswith("text/plain")
                    text = await response.text()
                assert "flowkit_worker_load 0.25" in text
                assert "flowkit_worker_active_jobs 1.0" in text
                assert "flowkit_worker_connected 1.0" in text
                labels = f'graph="worker-test",job_id="{job.id}",node="ticker",room="metrics-room"'
                assert f"flowkit_node_messages_out_total{{{labels}}}" in text
                assert "flowkit_node_busy_seconds_total{" in text
                assert 'flowkit_worker_jobs_ended_total{outcome="success"} 0.0' in text
        finally:
            await worker.aclose()
            await http.aclose()


async def test_health_turns_503_while_the_server_is_away() -> None:
    server = Server()
    await server.start()
    worker = Worker(GRAPH, options(server.url))
    http = WorkerHTTPServer(worker, "127.0.0.1", 0)
    await http.start()
    try:
        await worker.start(timeout=10)
        async with aiohttp.ClientSession() as session:
            async with session.get(http.url + "/") as response:
                assert response.status == 200
            await server.stop()
            for _ in range(100):
                if not worker.connected:
                    break
                await asyncio.sleep(0.02)
            async with session.get(http.url + "/") as response:
                assert response.status == 503
    finally:
        await worker.aclose()
        await http.aclose()
        await server.stop()
