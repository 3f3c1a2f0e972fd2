"""flowkit dev's reload: new jobs build the edited graph file, a broken edit changes nothing."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from livekit.protocol import agent as agent_pb
from worker_support import GRAPH as JOB_GRAPH
from worker_support import meta, options, running_server

import flowkit as fk
from flowkit.cli import main
from flowkit.loader import GraphFileError
from flowkit.worker import Worker
from flowkit.worker.jobs import GraphFactory, _own_modules_under
from flowkit.worker.reload import reload_on_change

GRAPH = """\
import flowkit as fk
from reload_helper import NAME


def build(job: fk.JobContext) -> fk.Graph:
    return fk.Graph(NAME)
"""


def project(tmp_path: Path, name: str) -> Path:
    """A graph file that names its graph after a constant of a helper module beside it."""
    (tmp_path / "reload_helper.py").write_text(f"NAME = {name!r}\n")
    graph = tmp_path / "agent.py"
    graph.write_text(GRAPH)
    return graph


@pytest.fixture(autouse=True)
def forget_the_helper() -> None:
    # Each test writes its own reload_helper.py: none may find another test's in sys.modules.
    sys.modules.pop("reload_helper", None)


def test_reload_builds_the_edited_version_and_its_helper_afresh(tmp_path: Path) -> None:
    factory = GraphFactory(project(tmp_path, "first"))
    before = factory(fk.JobContext.local())
    (tmp_path / "reload_helper.py").write_text("NAME = 'second'\n")
    assert factory(fk.JobContext.local()).name == "first"  # nothing changes before reload
    factory.reload()
    assert factory.version == 2
    assert factory(fk.JobContext.local()).name == "second"
    assert before.name == "first"  # a running job's graph is its own


def test_a_broken_edit_keeps_the_version_that_last_loaded(tmp_path: Path) -> None:
    graph = project(tmp_path, "good")
    factory = GraphFactory(graph)
    graph.write_text(GRAPH + "\ndef broken(:\n")
    with pytest.raises(GraphFileError, match=r"agent\.py:8: syntax error"):
        factory.reload()
    assert factory.version == 1
    assert factory(fk.JobContext.local()).name == "good"
    assert "reload_helper" in sys.modules  # the helper the good version uses is still there
    graph.write_text(GRAPH)
    (tmp_path / "reload_helper.py").write_text("NAME = 'fixed'\n")
    factory.reload()
    assert factory(fk.JobContext.local()).name == "fixed"


NODE_GRAPH = """\
from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import flowkit as fk


@dataclass
class Note:
    text: str


class Shout(fk.Node):
    notes: fk.In[Note] = fk.In()
    out: fk.Out[Note] = fk.Out()

    async def run(self, notes: AsyncIterator[Note]) -> None:
        async for note in notes:
            await self.out.put(Note(note.text.upper()))


def build(job: fk.JobContext) -> fk.Graph:
    g = fk.Graph("shout")
    g.add(Shout(), name="shout")
    return g
"""


def test_after_a_broken_edit_the_last_version_still_resolves_its_annotations(
    tmp_path: Path,
) -> None:
    # Node ports and dataclasses with string annotations look their module up by name.
    graph = tmp_path / "shouter.py"
    graph.write_text(NODE_GRAPH)
    factory = GraphFactory(graph)
    graph.write_text(NODE_GRAPH + "\nraise RuntimeError('half-saved')\n")
    with pytest.raises(GraphFileError, match="half-saved"):
        factory.reload()
    built = factory(fk.JobContext.local())
    shout = built.nodes["shout"]
    assert shout.inputs["notes"].type.__name__ == "Note"
    assert sys.modules[factory.module.__name__] is factory.module


def test_installed_packages_beside_the_graph_are_not_reloaded() -> None:
    # The repository holds flowkit itself (installed, editable): a graph file at its root
    # must not reload flowkit, or a new job's messages would be other classes than a
    # running job's.
    root = Path(fk.__file__).resolve().parents[1]
    beside = _own_modules_under(root, keep="")
    assert not [name for name in beside if name.partition(".")[0] == "flowkit"]


async def test_the_watcher_reloads_on_save_and_reports_a_broken_one(tmp_path: Path) -> None:
    graph = project(tmp_path, "v1")
    factory = GraphFactory(graph)
    reports: asyncio.Queue[GraphFileError | None] = asyncio.Queue()
    stop = asyncio.Event()
    watcher = asyncio.create_task(
        reload_on_change(factory, stop=stop, on_reload=reports.put_nowait, debounce_ms=50)
    )

    async def save(path: Path, text: str) -> GraphFileError | None:
        # The watcher may not be watching yet when the first save lands: save again until
        # a reload is reported.
        for _ in range(50):
            path.write_text(text)
            try:
                return await asyncio.wait_for(reports.get(), 0.2)
            except TimeoutError:
                continue
        raise AssertionError(f"no reload reported after saving {path.name}")

    try:
        assert await save(tmp_path / "reload_helper.py", "NAME = 'v2'\n") is None
        assert factory(fk.JobContext.local()).name == "v2"
        error = await save(graph, "import no_such_module_anywhere\n")
        assert isinstance(error, GraphFileError)
        assert "no_such_module_anywhere" in str(error)
        assert factory(fk.JobContext.local()).name == "v2"
    finally:
        stop.set()
        await asyncio.wait_for(watcher, 5)


async def test_a_worker_serves_new_jobs_the_edited_graph_and_keeps_running_ones(
    tmp_path: Path,
) -> None:
    graph = tmp_path / "ticking_agent.py"
    source = JOB_GRAPH.read_text()
    graph.write_text(source)
    async with running_server() as server:
        worker = Worker(graph, options(server.url, agent_name="dev"))
        factory = worker.graph_factory
        assert factory is not None
        reloaded = asyncio.Event()
        stop = asyncio.Event()
        watcher = asyncio.create_task(reload_on_change(
            factory, stop=stop, on_reload=lambda e: e is None and reloaded.set(),
            debounce_ms=50,
        ))
        await worker.start(timeout=10)
        try:
            first = await server.dispatcher.dispatch("room-1", "dev", meta(mode="forever"))
            await server.dispatcher.wait_for_job(first.id, agent_pb.JS_RUNNING)
            edited = source.replace('fk.Graph("worker-test")', 'fk.Graph("worker-test-v2")')
            assert edited != source
            for _ in range(50):  # until the watcher, maybe not watching yet, sees a save
                graph.write_text(edited)
                try:
                    await asyncio.wait_for(reloaded.wait(), 0.2)
                    break
                except TimeoutError:
                    continue
            assert reloaded.is_set()
            second = await server.dispatcher.dispatch("room-2", "dev", meta(mode="forever"))
            await server.dispatcher.wait_for_job(second.id, agent_pb.JS_RUNNING)
            old, new = worker.jobs[first.id], worker.jobs[second.id]
            assert old.runner is not None and new.runner is not None
            assert new.runner.graph.name == "worker-test-v2"
            assert old.runner.graph.name == "worker-test"  # still running, not restarted
            assert old.task is not None and not old.task.done()
        finally:
            stop.set()
            await asyncio.wait_for(watcher, 5)
            await worker.aclose()


def test_dev_reloads_by_default_and_start_does_not_offer_it() -> None:
    runner = CliRunner()
    dev = runner.invoke(main, ["dev", "--help"])
    assert dev.exit_code == 0 and "--reload / --no-reload" in dev.output
    start = runner.invoke(main, ["start", "--help"])
    assert start.exit_code == 0 and "--reload" not in start.output
