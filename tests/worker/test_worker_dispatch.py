"""A worker against the test server's /agent: registration, load, dispatch, jobs."""

from __future__ import annotations

import asyncio

import pytest
from livekit.protocol import agent as agent_pb
from worker_support import meta, running_server, running_worker

from flowkit.testing.livekit_server.agents import DispatchError
from flowkit.worker import JobRequest


async def test_registers_and_reports_load() -> None:
    async with running_server() as server, running_worker(
        server.url, agent_name="reporter", load_fnc=lambda: 0.42, version="1.2.3"
    ) as worker:
        assert worker.connected and worker.id.startswith("AW_")
        record = server.dispatcher.workers[worker.id]
        assert record.agent_name == "reporter" and record.version == "1.2.3"
        assert record.job_type == agent_pb.JT_ROOM
        await server.dispatcher.wait_until(lambda: record.status_updates >= 3)
        assert record.load == pytest.approx(0.42)
        assert record.status == agent_pb.WS_AVAILABLE


async def test_room_creation_dispatches_to_an_unnamed_worker() -> None:
    async with running_server() as server, running_worker(server.url) as worker:
        server.server.create_room("lobby")
        await server.dispatcher.wait_until(lambda: len(worker.jobs) == 1)
        job = next(iter(worker.jobs.values()))
        assert job.room_name == "lobby"
        record = await server.dispatcher.wait_for_job(job.id, agent_pb.JS_RUNNING)
        assert record.worker_id == worker.id
        assert job.context.extra["token"] == record.token
        assert job.context.extra["url"] == server.url  # empty assignment url: the worker's


async def test_named_workers_get_no_automatic_jobs() -> None:
    async with running_server() as server, running_worker(server.url, agent_name="named") as w:
        server.server.create_room("lobby")
        await asyncio.sleep(0.3)
        assert not w.jobs


async def test_explicit_dispatch_by_name_with_metadata() -> None:
    async with running_server() as server, running_worker(
        server.url, agent_name="support"
    ) as support, running_worker(server.url, agent_name="sales") as sales:
        job = await server.dispatcher.dispatch("room-1", "support", meta(mode="forever"))
        assert job.worker_id == support.id
        await server.dispatcher.wait_for_job(job.id, agent_pb.JS_RUNNING)
        running = support.jobs[job.id]
        assert running.context.metadata == meta(mode="forever")
        assert running.context.agent_name == "support"
        assert not sales.jobs


async def test_the_less_loaded_worker_gets_the_job() -> None:
    async with running_server() as server, running_worker(
        server.url, load_fnc=lambda: 0.6
    ) as busy, running_worker(server.url, load_fnc=lambda: 0.1) as idle:
        records = server.dispatcher.workers
        await server.dispatcher.wait_until(
            lambda: records[busy.id].load > 0.5 and records[idle.id].load > 0.05
        )
        for room in ("a", "b"):
            job = await server.dispatcher.dispatch(room)
            assert job.worker_id == idle.id
        assert not busy.jobs


async def test_a_worker_that_rejects_lets_another_take_the_job() -> None:
    asked: list[str] = []

    def reject(request: JobRequest) -> None:
        asked.append(request.id)
        return request.reject()

    async with running_server() as server, running_worker(
        server.url, accept=reject, load_fnc=lambda: 0.0
    ) as picky, running_worker(server.url, load_fnc=lambda: 0.3) as other:
        records = server.dispatcher.workers
        await server.dispatcher.wait_until(lambda: records[other.id].load > 0.2)
        job = await server.dispatcher.dispatch("room")
        assert asked == [job.id]  # the less loaded one was asked first, and said no
        assert job.worker_id == other.id
        assert not picky.jobs


async def test_accept_hook_sets_the_agent_participant() -> None:
    def accept(request: JobRequest) -> object:
        return request.accept(identity="bot-1", name="Bot", metadata="m",
                              attributes={"lk.kind": "x"})

    async with running_server() as server, running_worker(server.url, accept=accept) as w:
        job = await server.dispatcher.dispatch("room")
        assert job.participant_identity == "bot-1"
        from livekit import api

        claims = api.TokenVerifier(server.server.api_key, server.server.api_secret).verify(
            job.token
        )
        assert claims.identity == "bot-1" and claims.name == "Bot"
        assert claims.metadata == "m" and claims.attributes == {"lk.kind": "x"}
        assert claims.video is not None and claims.video.room == "room"
        await server.dispatcher.wait_until(lambda: job.id in w.jobs)
        assert w.jobs[job.id].context.extra["agent_identity"] == "bot-1"


async def test_availability_timeout_passes_the_job_on() -> None:
    async def slow(request: JobRequest) -> object:
        await asyncio.sleep(5)
        return request.accept()

    async with running_server(availability_timeout=0.3) as server, running_worker(
        server.url, accept=slow, load_fnc=lambda: 0.0, availability_timeout=10
    ), running_worker(server.url, load_fnc=lambda: 0.3) as other:
        records = server.dispatcher.workers
        await server.dispatcher.wait_until(lambda: records[other.id].load > 0.2)
        job = await server.dispatcher.dispatch("room")
        assert job.worker_id == other.id


async def test_no_worker_is_a_clear_dispatch_error() -> None:
    async with running_server() as server, running_worker(server.url, agent_name="x"):
        with pytest.raises(DispatchError, match=r"agent 'nobody'.*start a worker"):
            await server.dispatcher.dispatch("room", "nobody", timeout=0.3)


async def test_termination_ends_the_job() -> None:
    async with running_server() as server, running_worker(server.url) as worker:
        job = await server.dispatcher.dispatch("room")
        await server.dispatcher.wait_for_job(job.id, agent_pb.JS_RUNNING)
        await server.dispatcher.terminate(job.id)
        record = await server.dispatcher.wait_for_job(job.id, agent_pb.JS_SUCCESS)
        assert not record.error
        assert job.id not in worker.jobs
        assert worker.outcomes["terminated"] == 1


async def test_a_job_that_finishes_reports_success() -> None:
    async with running_server() as server, running_worker(server.url) as worker:
        job = await server.dispatcher.dispatch("room", metadata=meta(mode="finish", seconds=0.1))
        await server.dispatcher.wait_for_job(job.id, agent_pb.JS_SUCCESS)
        assert worker.outcomes["success"] == 1


async def test_a_failing_job_ends_alone() -> None:
    async with running_server() as server, running_worker(server.url) as worker:
        steady = await server.dispatcher.dispatch("steady")
        failing = await server.dispatcher.dispatch("failing", metadata=meta(mode="raise",
                                                                            seconds=0.2))
        record = await server.dispatcher.wait_for_job(failing.id, agent_pb.JS_FAILED)
        assert "raised on purpose" in record.error
        assert list(worker.jobs) == [steady.id]
        runner = worker.jobs[steady.id].runner
        assert runner is not None
        before = runner.metrics().node("ticker").messages_out
        await asyncio.sleep(0.2)
        assert runner.metrics().node("ticker").messages_out > before  # still running
        assert worker.connected and worker.id in server.dispatcher.workers
        again = await server.dispatcher.dispatch("next")  # and still takes jobs
        assert again.worker_id == worker.id


async def test_max_jobs_makes_the_worker_full() -> None:
    async with running_server() as server, running_worker(server.url, max_jobs=1) as worker:
        await server.dispatcher.dispatch("one")
        record = server.dispatcher.workers[worker.id]
        await server.dispatcher.wait_until(lambda: record.status == agent_pb.WS_FULL)
        with pytest.raises(DispatchError):
            await server.dispatcher.dispatch("two", timeout=0.3)


async def test_load_threshold_makes_the_worker_full() -> None:
    async with running_server() as server, running_worker(
        server.url, load_fnc=lambda: 0.9, load_threshold=0.8
    ) as worker:
        record = server.dispatcher.workers[worker.id]
        await server.dispatcher.wait_until(lambda: record.status == agent_pb.WS_FULL)
        assert worker.full
