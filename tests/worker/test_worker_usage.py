"""What the jobs' providers consumed, through the real worker: /metrics, /worker, the log
line when a job ends, and ``job.usage`` in a shutdown callback.

The graph's ``provider`` node (``job_graph.py``, metadata ``usage=n``) reports n LLM requests
of ``fake-llm`` (40 prompt and 12 completion tokens each, and a ``ttft``) and one TTS
request of ``fake-tts`` (120 characters, 2.5 s of audio, and a ``ttfa``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from livekit.protocol import agent as agent_pb
from prometheus_client.parser import text_string_to_metric_families
from worker_support import meta, running_server, running_worker, served_worker

from flowkit.testing.livekit_server.agents import ServerJob
from flowkit.worker import Worker

USAGE_FAMILIES = ("flowkit_provider_requests", "flowkit_provider_usage")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def usage_samples(text: str) -> tuple[set[str], Samples]:
    """The provider usage families in a /metrics text, and their samples by name and labels."""
    families: set[str] = set()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        if family.name not in USAGE_FAMILIES:
            continue
        families.add(family.name)
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return families, samples


def requests(kind: str, provider: str) -> tuple[str, frozenset[tuple[str, str]]]:
    labels = {"kind": kind, "provider": provider}
    return ("flowkit_provider_requests_total", frozenset(labels.items()))


def used(kind: str, provider: str, value: str) -> tuple[str, frozenset[tuple[str, str]]]:
    labels = {"kind": kind, "provider": provider, "value": value}
    return ("flowkit_provider_usage_total", frozenset(labels.items()))


def usage_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if " usage: " in r.getMessage()]


async def counted(worker: Worker, job: ServerJob, requests: int) -> None:
    """Wait until ``job``'s ledger on ``worker`` has counted ``requests`` requests in all."""
    deadline = asyncio.get_running_loop().time() + 10.0
    while True:
        running = worker.jobs.get(job.id)
        summary = running.context.usage.summary() if running is not None else None
        if summary is not None and sum(p.requests for p in summary.providers) >= requests:
            return
        assert asyncio.get_running_loop().time() < deadline, "the job's usage was not counted"
        await asyncio.sleep(0.02)


async def get(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as response:
        assert response.status == 200
        if url.endswith("/metrics"):
            return await response.text()
        return await response.json()


async def test_metrics_add_up_the_usage_of_ended_jobs_by_kind_and_provider() -> None:
    async with running_server() as server, served_worker(server.url) as (worker, http):
        first = await server.dispatcher.dispatch(
            "usage-a", metadata=meta(mode="finish", seconds=0.2, usage=2)
        )
        second = await server.dispatcher.dispatch(
            "usage-b", metadata=meta(mode="finish", seconds=0.2, usage=3)
        )
        for job in (first, second):
            await server.dispatcher.wait_for_job(job.id, agent_pb.JS_SUCCESS)
        assert not worker.jobs  # both ended: their usage stays in the worker's

        async with aiohttp.ClientSession() as session:
            text = await get(session, http.url + "/metrics")
        families, samples = usage_samples(text)
        assert families == set(USAGE_FAMILIES)
        assert samples == {
            requests("llm", "fake-llm"): 5.0,
            used("llm", "fake-llm", "prompt_tokens"): 5 * 40.0,
            used("llm", "fake-llm", "completion_tokens"): 5 * 12.0,
            requests("tts", "fake-tts"): 2.0,
            used("tts", "fake-tts", "characters"): 2 * 120.0,
            used("tts", "fake-tts", "audio_duration"): 2 * 2.5,
        }  # the latencies (ttft, ttfa) are not usage: no sample has them
        assert "ttft" not in text and "ttfa" not in text


async def test_worker_json_shows_a_running_jobs_usage_and_the_workers_total() -> None:
    async with running_server() as server, served_worker(server.url) as (worker, http):
        ended = await server.dispatcher.dispatch(
            "usage-ended", metadata=meta(mode="finish", seconds=0.1, usage=1)
        )
        await server.dispatcher.wait_for_job(ended.id, agent_pb.JS_SUCCESS)
        job = await server.dispatcher.dispatch(
            "usage-live", metadata=meta(mode="forever", usage=2)
        )
        await server.dispatcher.wait_for_job(job.id, agent_pb.JS_RUNNING)
        await counted(worker, job, 3)  # 2 LLM requests and 1 TTS

        async with aiohttp.ClientSession() as session:
            described = await get(session, http.url + "/worker")
        [active] = described["active_jobs"]
        assert active["id"] == job.id
        assert active["usage"] == [
            {"kind": "llm", "node": "provider", "provider": "fake-llm", "requests": 2,
             "values": {"prompt_tokens": 80.0, "completion_tokens": 24.0}},
            {"kind": "tts", "node": "provider", "provider": "fake-tts", "requests": 1,
             "values": {"characters": 120.0, "audio_duration": 2.5}},
        ]
        # The worker's total: the ended job's and the running one's so far.
        assert described["usage"] == [
            {"kind": "llm", "node": "provider", "provider": "fake-llm", "requests": 3,
             "values": {"prompt_tokens": 120.0, "completion_tokens": 36.0}},
            {"kind": "tts", "node": "provider", "provider": "fake-tts", "requests": 2,
             "values": {"characters": 240.0, "audio_duration": 5.0}},
        ]
        assert job.id in worker.jobs  # the job goes on


async def test_an_ended_job_logs_its_usage_once_with_the_figures_as_extra(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="flowkit.worker")
    async with running_server() as server, running_worker(server.url):
        job = await server.dispatcher.dispatch(
            "usage-log", metadata=meta(mode="finish", seconds=0.1, usage=2)
        )
        await server.dispatcher.wait_for_job(job.id, agent_pb.JS_SUCCESS)
        [record] = usage_records(caplog)
        assert record.levelno == logging.INFO and record.name.startswith("flowkit")
        assert record.getMessage() == (
            f"job {job.id} usage: llm 'provider' (fake-llm): 2 requests, 80 prompt_tokens, "
            "24 completion_tokens; tts 'provider' (fake-tts): 1 request, 120 characters, "
            "2.5 audio_duration"
        )
        assert record.usage == {  # type: ignore[attr-defined]
            "providers": [
                {"kind": "llm", "node": "provider", "provider": "fake-llm", "requests": 2,
                 "values": {"prompt_tokens": 80.0, "completion_tokens": 24.0}},
                {"kind": "tts", "node": "provider", "provider": "fake-tts", "requests": 1,
                 "values": {"characters": 120.0, "audio_duration": 2.5}},
            ]
        }
        json.dumps(record.usage)  # type: ignore[attr-defined]  # a JSON log handler can write it


async def test_a_job_without_provider_requests_logs_and_exports_no_usage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="flowkit.worker")
    async with running_server() as server, served_worker(server.url) as (_, http):
        job = await server.dispatcher.dispatch("quiet", metadata=meta(mode="finish", seconds=0.1))
        await server.dispatcher.wait_for_job(job.id, agent_pb.JS_SUCCESS)
        assert any(r.getMessage().startswith("job ended: success") for r in caplog.records)
        assert usage_records(caplog) == []

        async with aiohttp.ClientSession() as session:
            text = await get(session, http.url + "/metrics")
            described = await get(session, http.url + "/worker")
        families, samples = usage_samples(text)
        assert families == set(USAGE_FAMILIES)  # the families are there, with no sample
        assert samples == {}
        assert described["usage"] == []


async def test_a_shutdown_callback_reads_the_jobs_usage_after_its_graph_closed(
    tmp_path: Path,
) -> None:
    seen = tmp_path / "usage.json"
    async with running_server() as server, running_worker(server.url) as worker:
        job = await server.dispatcher.dispatch(
            "usage-callback", metadata=meta(mode="forever", usage=3, usage_file=str(seen))
        )
        await server.dispatcher.wait_for_job(job.id, agent_pb.JS_RUNNING)
        await counted(worker, job, 4)
        assert not seen.exists()  # written when the job ends, not before
        await server.dispatcher.terminate(job.id)
        await server.dispatcher.wait_for_job(job.id, agent_pb.JS_SUCCESS)
        assert json.loads(seen.read_text()) == {
            "providers": [
                {"kind": "llm", "node": "provider", "provider": "fake-llm", "requests": 3,
                 "values": {"prompt_tokens": 120.0, "completion_tokens": 36.0}},
                {"kind": "tts", "node": "provider", "provider": "fake-tts", "requests": 1,
                 "values": {"characters": 120.0, "audio_duration": 2.5}},
            ]
        }
