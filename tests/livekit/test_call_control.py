"""Call control through the server API, against the test server: hang up, dial out, transfer.

The job's calls go through the real ``livekit-api`` client to the test server's Twirp API
(RoomService, SIP). Nothing here needs WebRTC (the callee of a dialled call is the test
server's simulated phone), so the tests run in-process, without a network namespace.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from livekit import api
from support import Script

import flowkit as fk
from flowkit.livekit.job import LiveKitJob
from flowkit.messages import Playout, PlayoutEvent, ToolResult
from flowkit.nodes.end_call import END_CALL_REASON, EndCall
from flowkit.testing.livekit_server import TestLiveKitServer

KEY = "devkey"
SECRET = "call-control-secret-0123456789abcdef"
ROOM = "call-7"


@asynccontextmanager
async def _job_in(
    room: str = ROOM,
) -> AsyncIterator[tuple[TestLiveKitServer, api.LiveKitAPI, fk.JobContext]]:
    """The test server with ``room`` in it, an API client, and a LiveKit job for the room.

    The job is not joined to the room: the calls under test need only its API client.
    """
    server = TestLiveKitServer("127.0.0.1", api_key=KEY, api_secret=SECRET)
    async with server, api.LiveKitAPI(server.url, KEY, SECRET) as lkapi:
        await lkapi.room.create_room(api.CreateRoomRequest(name=room))
        job = fk.JobContext(job_id="AJ_1", room_name=room)
        job.livekit = LiveKitJob(
            job, url=server.url, token="not-joined", api_key=KEY, api_secret=SECRET
        )
        try:
            yield server, lkapi, job
        finally:
            await job.livekit.aclose()


async def _rooms(lkapi: api.LiveKitAPI) -> list[str]:
    listed = await lkapi.room.list_rooms(api.ListRoomsRequest())
    return [room.name for room in listed.rooms]


async def test_delete_room_deletes_the_jobs_room_and_says_when_it_was_already_gone() -> None:
    async with _job_in() as (_, lkapi, job):
        await lkapi.room.create_room(api.CreateRoomRequest(name="another"))
        assert await job.delete_room() is True
        assert await _rooms(lkapi) == ["another"]
        assert await job.delete_room() is False  # not an error: the call is over anyway


async def test_end_call_deletes_the_room_then_ends_the_job() -> None:
    async with _job_in() as (_, lkapi, job):
        g = fk.Graph("hang-up")
        node = g.add(EndCall(), name="end_call")
        result = ToolResult(turn_id=4, call_id="c", name="end_call", output="bye")
        g.add(Script((0.0, result))) >> node.results
        g.add(Script((0.05, Playout(turn_id=4, event=PlayoutEvent.FINISHED)))) >> node.playout
        await fk.GraphRunner(g, job=job).run()
        assert job.shutdown_reason == END_CALL_REASON
        assert await _rooms(lkapi) == []


async def test_end_call_can_leave_the_room_to_the_others() -> None:
    async with _job_in() as (_, lkapi, job):
        g = fk.Graph("leave")
        node = g.add(EndCall(delete_room=False), name="end_call")
        result = ToolResult(turn_id=4, call_id="c", name="end_call", output="bye")
        g.add(Script((0.0, result))) >> node.results
        g.add(Script((0.05, Playout(turn_id=4, event=PlayoutEvent.FINISHED)))) >> node.playout
        await fk.GraphRunner(g, job=job).run()
        assert job.shutdown_reason == END_CALL_REASON
        assert await _rooms(lkapi) == [ROOM]


async def test_outside_livekit_the_call_control_methods_say_what_they_need() -> None:
    job = fk.JobContext()
    with pytest.raises(RuntimeError, match=r"job.delete_room\(\) needs a LiveKit job"):
        await job.delete_room()
    with pytest.raises(RuntimeError, match=r"add_sip_participant\(\) needs a LiveKit job"):
        await job.add_sip_participant("+15550100", trunk_id="ST_1")
    with pytest.raises(RuntimeError, match=r"transfer_sip_participant\(\) needs"):
        await job.transfer_sip_participant("sip_+15550100", "tel:+15550111")
    await asyncio.sleep(0)
