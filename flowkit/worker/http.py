"""The worker's HTTP server: health, a JSON description, and Prometheus metrics.

- ``GET /``: ``200 OK`` while the worker is registered with the server, ``503`` otherwise
  (a load balancer or Kubernetes probe takes the worker out while it reconnects).
- ``GET /worker``: JSON with the worker's id, agent name, load, status and active jobs.
- ``GET /metrics``: Prometheus text: the worker's load and job counts, and every running
  job's per-node counters from its graph runner (labelled with job, room, graph and node).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from flowkit.worker.worker import Worker

__all__ = ["WorkerCollector", "WorkerHTTPServer", "make_app"]

_NODE_COUNTERS = (
    ("messages_in", "flowkit_node_messages_in", "Messages delivered to the node."),
    ("messages_out", "flowkit_node_messages_out", "Messages the node emitted."),
    ("errors", "flowkit_node_errors", "Errors caught at the node's boundary."),
    ("restarts", "flowkit_node_restarts", "Times the node was restarted."),
    ("dropped", "flowkit_node_dropped", "Messages the node dropped."),
    ("busy_s", "flowkit_node_busy_seconds", "Time the node spent working."),
)
_NODE_LABELS = ["job_id", "room", "graph", "node"]


class WorkerCollector(Collector):
    """Collects a worker's figures when Prometheus scrapes (nothing is kept in between)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def collect(self) -> Iterator[Metric]:
        """The worker's load, jobs and every running graph's per-node counters."""
        w = self.worker
        yield GaugeMetricFamily("flowkit_worker_load", "The load last reported (0-1).", w.load)
        yield GaugeMetricFamily("flowkit_worker_active_jobs", "Jobs running now.", len(w.jobs))
        yield GaugeMetricFamily(
            "flowkit_worker_connected", "1 while registered with the server.", int(w.connected)
        )
        ended = CounterMetricFamily(
            "flowkit_worker_jobs_ended", "Jobs ended, by outcome.", labels=["outcome"]
        )
        for outcome in ("success", "failed", "terminated"):
            ended.add_metric([outcome], w.outcomes.get(outcome, 0))
        yield ended
        families = {
            attr: CounterMetricFamily(name, doc, labels=_NODE_LABELS)
            for attr, name, doc in _NODE_COUNTERS
        }
        latency = GaugeMetricFamily(
            "flowkit_node_latency_p95_seconds", "The node's 95th percentile time per message.",
            labels=_NODE_LABELS,
        )
        for job in list(w.jobs.values()):
            if job.runner is None:
                continue
            metrics = job.runner.metrics()
            for node in metrics.nodes:
                labels = [job.id, job.room_name, metrics.graph, node.name]
                for attr, family in families.items():
                    family.add_metric(labels, float(getattr(node, attr)))
                latency.add_metric(labels, node.latency_p95_ms / 1000)
        yield from families.values()
        yield latency


def _describe(worker: Worker) -> dict[str, Any]:
    now = time.time()
    return {
        "id": worker.id,
        "agent_name": worker.options.agent_name,
        "job_type": worker.options.job_type.value,
        "connected": worker.connected,
        "draining": worker.draining,
        "status": "full" if worker.full else "available",
        "load": worker.load,
        "load_threshold": worker.options.load_threshold,
        "max_jobs": worker.options.max_jobs,
        "active_jobs": [
            {
                "id": job.id,
                "room": job.room_name,
                "graph": job.runner.graph.name if job.runner is not None else None,
                "running_s": round(now - job.started, 3),
            }
            for job in list(worker.jobs.values())
        ],
    }


def make_app(worker: Worker) -> web.Application:
    """The aiohttp application serving ``/``, ``/worker`` and ``/metrics`` for ``worker``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkerCollector(worker))

    async def health(_: web.Request) -> web.Response:
        if worker.connected:
            return web.Response(text="OK")
        return web.Response(status=503, text="not connected to the LiveKit server")

    async def describe(_: web.Request) -> web.Response:
        return web.json_response(_describe(worker))

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/", health)
    app.router.add_get("/worker", describe)
    app.router.add_get("/metrics", metrics)
    return app


class WorkerHTTPServer:
    """Serves :func:`make_app` on a host and port; ``port`` is the bound port once started.

    Args:
        worker: The worker described.
        host: The address to listen on.
        port: The port (0: any free port).
    """

    def __init__(self, worker: Worker, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._runner = web.AppRunner(make_app(worker), access_log=None)

    async def start(self) -> None:
        """Listen; afterwards ``self.port`` is the real port."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])

    async def aclose(self) -> None:
        """Stop listening."""
        await self._runner.cleanup()

    @property
    def url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"
