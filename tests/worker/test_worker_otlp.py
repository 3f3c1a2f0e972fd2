"""`flowkit start --otlp-endpoint`: a worker process's spans reach a collector over OTLP/HTTP."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from click.testing import CliRunner
from livekit.protocol import agent as agent_pb
from otlp_collector import OTLPCollector
from worker_support import GRAPH, KEY, SECRET, meta, running_server

from flowkit.cli import main


async def test_a_worker_process_sends_turns_as_they_end_and_the_job_at_its_end() -> None:
    collector = OTLPCollector()
    await collector.start()
    try:
        async with running_server() as server:
            env = {**os.environ, "LIVEKIT_URL": server.url, "LIVEKIT_API_KEY": KEY,
                   "LIVEKIT_API_SECRET": SECRET,
                   "OTEL_BSP_SCHEDULE_DELAY": "50"}  # batches every 50 ms, not every 5 s
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", "from flowkit.cli import main; main()", "start",
                str(GRAPH), "--agent-name", "traced-agent", "--http-port", "-1",
                "--drain-timeout", "0.5", "--no-room", "--otlp-endpoint", collector.url,
                env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )
            try:
                await server.dispatcher.wait_for_workers(1, timeout=30)
                job = await server.dispatcher.dispatch(
                    "otlp-room", "traced-agent", metadata=meta(mode="forever", turns=3)
                )
                await server.dispatcher.wait_for_job(job.id, agent_pb.JS_RUNNING)
                for _ in range(250):
                    if len(collector.named("flowkit.turn")) >= 2:
                        break
                    await asyncio.sleep(0.02)
                # Two turns are over and sent while the job runs on.
                assert [s.attributes["flowkit.user_text"]
                        for s in collector.named("flowkit.turn")] == ["question 1", "question 2"]
                assert collector.named("flowkit.job") == []
                assert server.dispatcher.jobs[job.id].status == agent_pb.JS_RUNNING
                proc.send_signal(signal.SIGTERM)  # drains: the job is ended after 0.5 s
                assert await asyncio.wait_for(proc.wait(), 20) == 0
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
    finally:
        await collector.aclose()
    [job_span] = collector.named("flowkit.job")
    assert job_span.attributes["flowkit.job.id"] == job.id
    assert job_span.attributes["livekit.room"] == "otlp-room"
    assert job_span.attributes["flowkit.turns"] == 3
    assert isinstance(job_span.attributes["flowkit.node.ticker.messages_out"], int)
    assert job_span.resource["service.name"] == "traced-agent"
    turns = collector.named("flowkit.turn")
    assert [s.attributes["flowkit.user_text"] for s in turns] == [  # each turn once
        "question 1", "question 2", "question 3"
    ]
    assert all(s.parent_span_id == job_span.span_id for s in turns)
    assert all(job_span.start_ns <= s.start_ns <= s.end_ns <= job_span.end_ns for s in turns)


def test_an_endpoint_that_is_not_a_url_is_refused_before_connecting() -> None:
    result = CliRunner().invoke(main, [
        "start", str(GRAPH), "--otlp-endpoint", "localhost:4318", "--http-port", "-1",
    ], env={"LIVEKIT_URL": "ws://127.0.0.1:9", "LIVEKIT_API_KEY": "k",
            "LIVEKIT_API_SECRET": "s" * 40})
    assert result.exit_code == 2
    assert "the OTLP endpoint 'localhost:4318' is not an http(s) URL" in result.output
    assert "http://localhost:4318" in result.output
