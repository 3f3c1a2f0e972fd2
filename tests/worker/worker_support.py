"""Shared helpers of the worker tests: a test server with /agent on 127.0.0.1, worker options."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from flowkit.testing.livekit_server import TestLiveKitServer
from flowkit.testing.livekit_server.agents import AgentDispatcher
from flowkit.worker import Worker, WorkerOptions
from flowkit.worker.http import WorkerHTTPServer

KEY = "devkey"
SECRET = "worker-test-secret-0123456789abcdef"
GRAPH = Path(__file__).with_name("job_graph.py")


class Server:
    """The test LiveKit server with its agent dispatcher, restartable on the same port."""

    def __init__(self, port: int = 0, **dispatcher: Any) -> None:
        self.port = port
        self.dispatcher_options = dispatcher
        self.dispatcher = AgentDispatcher(**dispatcher)
        self.server = TestLiveKitServer(
            "127.0.0.1", port, api_key=KEY, api_secret=SECRET, agents=self.dispatcher.mount
        )

    @property
    def url(self) -> str:
        return self.server.url

    async def start(self) -> None:
        await self.server.start()
        self.port = self.server.port

    async def stop(self) -> None:
        await self.server.stop()

    async def restart(self) -> None:
        """A fresh server (no state) on the same port, as after a real restart."""
        await self.stop()
        fresh = Server(self.port, **self.dispatcher_options)
        await fresh.start()
        self.dispatcher, self.server = fresh.dispatcher, fresh.server


@asynccontextmanager
async def running_server(**dispatcher: Any) -> AsyncIterator[Server]:
    server = Server(**dispatcher)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def options(url: str, **overrides: Any) -> WorkerOptions:
    """Fast options for tests: quick status reports and reconnects, fixed load, no HTTP."""
    values: dict[str, Any] = {
        "url": url, "api_key": KEY, "api_secret": SECRET, "http_port": None,
        "status_interval": 0.1, "reconnect_min": 0.05, "reconnect_max": 0.3,
        "load_threshold": math.inf, "load_fnc": lambda: 0.0, "availability_timeout": 2.0,
        "drain_timeout": 5.0,
    }
    values.update(overrides)
    return WorkerOptions(**values)


@asynccontextmanager
async def running_worker(
    url: str, *, accept: Callable[..., Any] | None = None, **overrides: Any
) -> AsyncIterator[Worker]:
    kwargs: dict[str, Any] = {} if accept is None else {"accept": accept}
    worker = Worker(GRAPH, options(url, **overrides), **kwargs)
    await worker.start(timeout=10)
    try:
        yield worker
    finally:
        await worker.aclose()


@asynccontextmanager
async def served_worker(
    url: str, **overrides: Any
) -> AsyncIterator[tuple[Worker, WorkerHTTPServer]]:
    """A started worker and its HTTP server on a free port (``http.url``)."""
    worker = Worker(GRAPH, options(url, **overrides))
    http = WorkerHTTPServer(worker, "127.0.0.1", 0)
    await http.start()
    try:
        await worker.start(timeout=10)
        yield worker, http
    finally:
        await worker.aclose()
        await http.aclose()


def meta(**config: Any) -> str:
    return json.dumps(config)
