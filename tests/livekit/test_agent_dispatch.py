"""The test server's /agent endpoint, driven by a raw protocol client (no flowkit worker)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web
from livekit import api
from livekit.protocol import agent as agent_pb
from support import RawWorker

from flowkit.testing.livekit_server import TestLiveKitServer
from flowkit.testing.livekit_server.agents import AgentDispatcher, DispatchError, agent_app

KEY = "devkey"
SECRET = "dispatch-test-secret-0123456789abcdef"


def _token(secret: str = SECRET, *, agent: bool = True) -> str:
    return api.AccessToken(KEY, secret).with_grants(api.VideoGrants(agent=agent)).to_jwt()


@asynccontextmanager
async def serving(**options: float) -> AsyncIterator[tuple[TestLiveKitServer, AgentDispatcher]]:
    dispatcher = AgentDispatcher(**options)  # type: ignore[arg-type]
    server = TestLiveKitServer("127.0.0.1", api_key=KEY, api_secret=SECRET,
                               agents=dispatcher.mount)
    async with server:
        yield server, dispatcher


@asynccontextmanager
async def connected(
    server: TestLiveKitServer, token: str | None = None
) -> AsyncIterator[RawWorker]:
    headers = {"Authorization": f"Bearer {token or _token()}"}
    async with aiohttp.ClientSession() as session, session.ws_connect(
        server.url + "/agent", headers=headers
    ) as ws:
        yield RawWorker(ws)


@pytest.mark.parametrize(
    ("token", "says"),
    [
        (_token("another-secret-0123456789abcdef-0123"), "invalid worker token"),
        (_token(agent=False), "no agent grant"),
        ("", "no access token"),
    ],
)
async def test_bad_tokens_get_401_saying_why(token: str, says: str) -> None:
    async with serving() as (server, _), aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with session.get(server.http_url + "/agent", headers=headers) as response:
            assert response.status == 401
            assert says in await response.text()


async def test_register_response_comes_first_then_pong() -> None:
    async with serving() as (server, dispatcher), connected(server) as worker:
        await worker.register("raw-agent", load=0.3)
        assert dispatcher.workers[worker.id].agent_name == "raw-agent"
        await worker.send(ping=agent_pb.WorkerPing(timestamp=123))
        pong = await worker.receive()
        assert pong.pong.last_timestamp == 123
        record = dispatcher.workers[worker.id]
        await dispatcher.wait_until(lambda: record.load == pytest.approx(0.3))


async def test_a_first_message_that_is_not_a_registration_is_refused() -> None:
    async with serving() as (server, dispatcher), connected(server) as worker:
        await worker.send(ping=agent_pb.WorkerPing(timestamp=1))
        frame = await worker.ws.receive(timeout=5)
        assert frame.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert not dispatcher.workers


async def test_room_creation_dispatches_and_assigns_with_a_join_token() -> None:
    async with serving() as (server, dispatcher), connected(server) as worker:
        await worker.register()
        server.create_room("auto")
        job = await worker.answer(identity="agent-x")
        assert job.room.name == "auto" and job.agent_name == ""
        assignment = (await worker.receive()).assignment
        assert assignment.job.id == job.id
        claims = api.TokenVerifier(KEY, SECRET).verify(assignment.token)
        assert claims.identity == "agent-x" and claims.kind == "agent"
        assert claims.video is not None and claims.video.room == "auto" and claims.video.agent
        await worker.send(update_job=agent_pb.UpdateJobStatus(
            job_id=job.id, status=agent_pb.JS_RUNNING))
        record = await dispatcher.wait_for_job(job.id, agent_pb.JS_RUNNING)
        assert record.worker_id == worker.id


async def test_explicit_dispatch_before_the_room_exists_replaces_the_automatic_one() -> None:
    async with serving() as (server, dispatcher), connected(server) as worker:
        await worker.register()
        pending = asyncio.ensure_future(dispatcher.dispatch("later", metadata="m"))
        job = await worker.answer()
        assert job.metadata == "m"
        await pending
        await worker.receive()  # the assignment
        server.create_room("later")
        with pytest.raises(TimeoutError):
            await worker.receive(timeout=0.3)


async def test_least_loaded_first_and_silence_passes_the_job_on() -> None:
    async with serving(availability_timeout=0.3) as (server, dispatcher), connected(
        server
    ) as idle, connected(server) as busy:
        await idle.register("pool", load=0.1)
        await busy.register("pool", load=0.7)
        await dispatcher.wait_until(lambda: dispatcher.workers[busy.id].load > 0.5)
        pending = asyncio.ensure_future(dispatcher.dispatch("r", "pool"))
        offer = await idle.receive()  # the idle one is asked first, and stays silent
        assert offer.WhichOneof("message") == "availability"
        job = await busy.answer()
        record = await pending
        assert record.worker_id == busy.id and record.id == job.id
        assert dispatcher.workers[idle.id].offered == [job.id]


async def test_a_full_worker_is_not_asked() -> None:
    async with serving() as (server, dispatcher), connected(server) as worker:
        await worker.register("full")
        await worker.send(update_worker=agent_pb.UpdateWorkerStatus(status=agent_pb.WS_FULL))
        record = dispatcher.workers[worker.id]
        await dispatcher.wait_until(lambda: record.status == agent_pb.WS_FULL)
        with pytest.raises(DispatchError, match="asked nobody"):
            await dispatcher.dispatch("r", "full", timeout=0.2)


async def test_terminate_sends_job_termination() -> None:
    async with serving() as (server, dispatcher), connected(server) as worker:
        await worker.register("t")
        pending = asyncio.ensure_future(dispatcher.dispatch("r", "t"))
        job = await worker.answer()
        await pending
        await worker.receive()
        await dispatcher.terminate(job.id)
        message = await worker.receive()
        assert message.termination.job_id == job.id
        with pytest.raises(KeyError):
            await dispatcher.terminate("AJ_unknown")


async def test_standalone_agent_app() -> None:
    app, dispatcher = agent_app(KEY, SECRET)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session, session.ws_connect(
            f"ws://127.0.0.1:{port}/agent", headers={"Authorization": f"Bearer {_token()}"}
        ) as ws:
            worker = RawWorker(ws)
            await worker.register("solo")
            assert list(dispatcher.workers) == [worker.id]
    finally:
        await runner.cleanup()
