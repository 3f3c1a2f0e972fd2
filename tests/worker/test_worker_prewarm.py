"""A graph file's prewarm(): run once before the worker registers, and its mistakes named."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from worker_support import KEY, SECRET, options, running_server

from flowkit.cli import main
from flowkit.loader import GraphFileError
from flowkit.worker import Worker
from flowkit.worker.jobs import GraphFactory

GRAPH = """\
import os
import threading
import time

import flowkit as fk

LOADED = []


{prewarm}


def build(job: fk.JobContext) -> fk.Graph:
    return fk.Graph("prewarmed")
"""

SLOW = """\
def prewarm() -> None:
    time.sleep(0.3)  # a model loading
    LOADED.append(threading.current_thread().name)
    with open(os.environ["PREWARM_MARK"], "a") as mark:
        mark.write("loaded\\n")
"""


def graph_file(tmp_path: Path, prewarm: str) -> Path:
    path = tmp_path / "agent.py"
    path.write_text(GRAPH.format(prewarm=prewarm))
    return path


async def test_the_worker_registers_only_once_prewarm_has_run_off_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mark = tmp_path / "mark"
    monkeypatch.setenv("PREWARM_MARK", str(mark))
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async with running_server() as server:
        worker = Worker(graph_file(tmp_path, SLOW), options(server.url))
        ticker = asyncio.ensure_future(tick())
        try:
            await worker.start(timeout=10)
            # Registered after prewarm: it had run, once, and not on the event loop's thread.
            assert mark.read_text() == "loaded\n"
            factory = worker.graph_factory
            assert factory is not None
            [loaded_on] = factory.module.LOADED
            assert loaded_on != threading.current_thread().name
            assert ticks >= 10  # the loop went on during its 0.3 s
            assert len(server.dispatcher.workers) == 1
        finally:
            ticker.cancel()
            await worker.aclose()


async def test_a_prewarm_that_raises_stops_the_worker_before_it_registers(
    tmp_path: Path,
) -> None:
    raising = "def prewarm() -> None:\n    raise FileNotFoundError('model.onnx')\n"
    async with running_server() as server:
        worker = Worker(graph_file(tmp_path, raising), options(server.url))
        with pytest.raises(GraphFileError, match=r"prewarm\(\) raised FileNotFoundError: "
                                                 r"model.onnx; the worker does not take jobs"):
            await worker.start(timeout=10)
        assert server.dispatcher.workers == {}
        await worker.aclose()


@pytest.mark.parametrize(
    ("prewarm", "error"),
    [
        ("prewarm = 3", r"prewarm is a int, not a function; define 'def prewarm\(\) -> None'"),
        ("def prewarm(proc):\n    pass",
         r"prewarm\(proc\) needs arguments; the worker calls it with none"),
    ],
)
def test_a_prewarm_the_worker_cannot_call_is_refused_at_load(
    tmp_path: Path, prewarm: str, error: str
) -> None:
    with pytest.raises(GraphFileError, match=error):
        GraphFactory(graph_file(tmp_path, prewarm))


def test_flowkit_start_exits_2_when_prewarm_raises(tmp_path: Path) -> None:
    raising = "def prewarm() -> None:\n    raise RuntimeError('no GPU')\n"
    result = CliRunner().invoke(main, [
        "start", str(graph_file(tmp_path, raising)), "--http-port", "-1",
    ], env={"LIVEKIT_URL": "ws://127.0.0.1:9", "LIVEKIT_API_KEY": KEY,
            "LIVEKIT_API_SECRET": SECRET})
    assert result.exit_code == 2, result.output
    assert "prewarm() raised RuntimeError: no GPU" in result.output


def test_after_a_reload_prewarm_is_the_new_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mark = tmp_path / "mark"
    monkeypatch.setenv("PREWARM_MARK", str(mark))
    path = graph_file(tmp_path, "")
    factory = GraphFactory(path)
    factory.prewarm()  # none defined: nothing happens
    assert not mark.exists()
    path.write_text(GRAPH.format(prewarm=SLOW))
    factory.reload()
    factory.prewarm()
    assert mark.read_text() == "loaded\n" and os.environ["PREWARM_MARK"] == str(mark)
