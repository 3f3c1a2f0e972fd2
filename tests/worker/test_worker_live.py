"""The live side of a worker: /jobs/<id>/graph, /jobs/<id>/metrics.json, --live, traces."""

from __future__ import annotations

import asyncio
import io
import re
import shutil
from pathlib import Path

import aiohttp
from livekit.protocol import agent as agent_pb
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from rich.console import Console
from worker_support import GRAPH, meta, options, running_server

from flowkit.live import JobsView
from flowkit.trace import Trace
from flowkit.worker import Worker
from flowkit.worker.http import WorkerHTTPServer


async def test_live_page_and_figures_of_a_running_job() -> None:
    async with running_server() as server:
        worker = Worker(GRAPH, options(server.url, agent_name="live"))
        http = WorkerHTTPServer(worker, "127.0.0.1", 0)
        await http.start()
        try:
            await worker.start(timeout=10)
            job = await server.dispatcher.dispatch("live-room", "live")
            await server.dispatcher.wait_for_job(job.id, agent_pb.JS_RUNNING)
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{http.url}/jobs/{job.id}/graph") as response:
                    assert response.status == 200
                    assert response.content_type == "text/html"
                    page = await response.text()
                for name in ("ticker", "count"):
                    assert f'data-node="{name}"' in page
                assert "fetch('metrics.json'" in page and 'id="live"' in page

                async def ticks() -> int:
                    url = f"{http.url}/jobs/{job.id}/metrics.json"
                    async with session.get(url) as response:
                        assert response.status == 200
                        figures = await response.json()
                    assert figures["job_id"] == job.id and figures["room"] == "live-room"
                    assert figures["edge_figures"][0].endswith("msgs")
                    ticker = next(n for n in figures["metrics"]["nodes"] if n["name"] == "ticker")
                    assert figures["node_figures"]["ticker"][0].startswith("in 0 · out ")
                    return int(ticker["messages_out"])

                first = await ticks()
                await asyncio.sleep(0.1)  # the ticker ticks every 20 ms
                assert await ticks() > first

                console = Console(record=True, file=io.StringIO(), width=120)
                console.print(JobsView(worker).render())
                shown = console.export_text()
                assert f"job {job.id} · room live-room" in shown and "ticker" in shown

                async with session.get(f"{http.url}/jobs/no-such-job/graph") as response:
                    assert response.status == 404
                    text = await response.text()
                assert "no active job 'no-such-job'" in text and job.id in text
                async with session.get(f"{http.url}/jobs/no-such-job/metrics.json") as response:
                    assert response.status == 404
        finally:
            await worker.aclose()
            await http.aclose()


async def test_a_trace_per_job_in_the_trace_dir(tmp_path: Path) -> None:
    async with running_server() as server:
        worker = Worker(GRAPH, options(server.url, agent_name="traced"), trace_dir=tmp_path / "t")
        try:
            await worker.start(timeout=10)
            job = await server.dispatcher.dispatch(
                "traced-room", "traced", metadata=meta(mode="finish", seconds=0.2)
            )
            await server.dispatcher.wait_for_job(job.id, agent_pb.JS_SUCCESS)
            # Written as the job ends, before its status is sent: there when SUCCESS is seen.
            trace = Trace.read(tmp_path / "t" / f"{job.id}.json")
        finally:
            await worker.aclose()
    assert trace.graph.name == "worker-test"
    ticker = trace.node_metrics("ticker")
    assert ticker is not None and ticker.messages_out >= 5  # 0.2 s of 20 ms ticks
    assert 0.15 <= trace.duration_s < 5


def memory_tracer() -> tuple[TracerProvider, InMemorySpanExporter]:
    """A tracer provider whose spans are kept in memory, each as it ends."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


async def test_each_jobs_trace_goes_to_the_tracer_as_spans() -> None:
    provider, exporter = memory_tracer()
    async with running_server() as server:
        worker = Worker(GRAPH, options(server.url, agent_name="otel"), tracer_provider=provider)
        try:
            await worker.start(timeout=10)
            job = await server.dispatcher.dispatch(
                "otel-room", "otel", metadata=meta(mode="finish", seconds=0.2)
            )
            await server.dispatcher.wait_for_job(job.id, agent_pb.JS_SUCCESS)
        finally:
            await worker.aclose()
    [span] = [s for s in exporter.get_finished_spans() if s.name == "flowkit.job"]
    assert span.attributes is not None
    assert span.attributes["flowkit.job.id"] == job.id
    assert span.attributes["livekit.room"] == "otel-room"
    assert span.attributes["livekit.agent_name"] == "otel"
    assert span.attributes["flowkit.graph"] == "worker-test"
    ticks = span.attributes["flowkit.node.ticker.messages_out"]
    assert isinstance(ticks, int) and ticks >= 5  # 0.2 s of 20 ms ticks
    assert span.end_time is not None and span.start_time is not None
    assert 0.15e9 <= span.end_time - span.start_time < 5e9


async def test_a_running_jobs_turns_reach_the_tracer_before_the_job_ends() -> None:
    provider, exporter = memory_tracer()

    def named(name: str) -> list[ReadableSpan]:
        return [s for s in exporter.get_finished_spans() if s.name == name]

    async with running_server() as server:
        worker = Worker(GRAPH, options(server.url, agent_name="otel"), tracer_provider=provider)
        try:
            await worker.start(timeout=10)
            job = await server.dispatcher.dispatch(
                "otel-room", "otel", metadata=meta(mode="forever", turns=3)
            )
            await server.dispatcher.wait_for_job(job.id, agent_pb.JS_RUNNING)
            for _ in range(200):  # the third turn is committed 0.12 s in
                if len(named("flowkit.turn")) == 2:
                    break
                await asyncio.sleep(0.02)
            # Turns 1 and 2 are over (a later turn was committed); the job goes on.
            live = named("flowkit.turn")
            assert [s.attributes["flowkit.user_text"] for s in live] == [  # type: ignore[index]
                "question 1", "question 2"
            ]
            assert named("flowkit.job") == [] and job.id in worker.jobs
            timeline = worker.jobs[job.id].timeline
            assert timeline is not None
            for _ in range(200):  # until the third reply is heard
                if [t.played_text for t in timeline.turns][-1:] == ["answer 3"]:
                    break
                await asyncio.sleep(0.02)
            await server.dispatcher.terminate(job.id)
            await server.dispatcher.wait_for_job(job.id, agent_pb.JS_SUCCESS)
        finally:
            await worker.aclose()
    [span] = named("flowkit.job")
    turns = named("flowkit.turn")
    # The last turn at the job's end, each turn once, all inside the job's span.
    assert [s.attributes["flowkit.agent_text"] for s in turns] == [  # type: ignore[index]
        "answer 1", "answer 2", "answer 3"
    ]
    assert span.attributes is not None and span.attributes["flowkit.turns"] == 3
    assert all(s.parent is not None and s.parent.span_id == span.context.span_id
               for s in turns)
    assert span.start_time is not None and span.end_time is not None
    assert all(span.start_time <= s.start_time <= s.end_time <= span.end_time  # type: ignore[operator]
               for s in turns)


async def test_chromium_sees_the_live_page_update(tmp_path: Path) -> None:
    """The page's script polls metrics.json and rewrites the figures on the drawing."""
    chromium = shutil.which("chromium")
    assert chromium is not None, "install Debian's chromium package (scripts/test.sh does)"
    async with running_server() as server:
        worker = Worker(GRAPH, options(server.url, agent_name="page"))
        http = WorkerHTTPServer(worker, "127.0.0.1", 0)
        await http.start()
        try:
            await worker.start(timeout=10)
            job = await server.dispatcher.dispatch("page-room", "page")
            await server.dispatcher.wait_for_job(job.id, agent_pb.JS_RUNNING)
            proc = await asyncio.create_subprocess_exec(
                chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", f"--user-data-dir={tmp_path / 'profile'}",
                "--virtual-time-budget=2500", "--dump-dom", f"{http.url}/jobs/{job.id}/graph",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            )
            out, _ = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            await worker.aclose()
            await http.aclose()
    dom = out.decode()
    updates = re.search(r'<div id="live"[^>]* data-updates="(\d+)"[^>]*>([^<]*)', dom)
    assert updates is not None, dom[:2000]
    assert int(updates.group(1)) >= 2
    assert f"job {job.id} · room page-room" in updates.group(2)
    ticks = re.search(r'class="figure"[^>]*>in 0 · out (\d+)<', dom)
    assert ticks is not None and int(ticks.group(1)) > 0
