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
from flowkit.livekit.calls import move_participant
from flowkit.livekit.job import LiveKitJob
from flowkit.messages import Playout, PlayoutEvent, ToolResult
from flowkit.nodes.end_call import END_CALL_REASON, EndCall
from flowkit.testing.livekit_server import TestLiveKitServer
from flowkit.testing.livekit_server.sip import CallEnd

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
    # The outbound trunk the job dials through (its id as a deployment configures it).
    server.sip.provisioning.add_outbound_trunk(api.SIPOutboundTrunkInfo(
        sip_trunk_id="ST_out", address="sip.example.com", numbers=["+15550000000"]))
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


async def _end_call(job: fk.JobContext, *, delete_room: bool = True) -> None:
    """Run EndCall on the job: the end_call tool's result, then its turn's reply finishing."""
    g = fk.Graph("hang-up")
    node = g.add(EndCall(delete_room=delete_room), name="end_call")
    result = ToolResult(turn_id=4, call_id="c", name="end_call", output="bye")
    g.add(Script((0.0, result))) >> node.results
    g.add(Script((0.05, Playout(turn_id=4, event=PlayoutEvent.FINISHED)))) >> node.playout
    await fk.GraphRunner(g, job=job).run()


async def test_end_call_deletes_the_room_then_ends_the_job() -> None:
    async with _job_in() as (_, lkapi, job):
        await _end_call(job)
        assert job.shutdown_reason == END_CALL_REASON
        assert await _rooms(lkapi) == []


async def test_end_call_can_leave_the_room_to_the_others() -> None:
    async with _job_in() as (_, lkapi, job):
        await _end_call(job, delete_room=False)
        assert job.shutdown_reason == END_CALL_REASON
        assert await _rooms(lkapi) == [ROOM]


async def _participants(lkapi: api.LiveKitAPI, room: str = ROOM) -> dict[str, dict[str, str]]:
    listed = await lkapi.room.list_participants(api.ListParticipantsRequest(room=room))
    return {p.identity: dict(p.attributes) for p in listed.participants}


async def test_the_job_dials_out_and_hears_back_when_the_call_is_answered() -> None:
    async with _job_in() as (server, lkapi, job):
        phone = server.sip.add_phone("+15550100", answer_after=0.2)
        info = await job.add_sip_participant(
            "+15550100", trunk_id="ST_out", participant_identity="callee",
            wait_until_answered=True,
        )
        assert (info.participant_identity, info.room_name) == ("callee", ROOM)
        assert phone.last_call.answered
        callee = (await _participants(lkapi))["callee"]
        assert callee["sip.callStatus"] == "active"
        assert callee["sip.phoneNumber"] == "+15550100"


async def test_a_busy_line_raises_the_sip_status_and_no_one_joins() -> None:
    async with _job_in() as (server, lkapi, job):
        server.sip.add_phone("+15550111", busy=True)
        with pytest.raises(api.SipCallError) as failed:
            await job.add_sip_participant(
                "+15550111", trunk_id="ST_out", participant_identity="callee",
                wait_until_answered=True,
            )
        assert failed.value.sip_status_code == 486
        assert await _participants(lkapi) == {}
        with pytest.raises(ValueError, match="outbound trunk's id"):
            await job.add_sip_participant("+15550111", trunk_id="")


async def test_the_job_transfers_a_caller_who_then_leaves_the_room() -> None:
    async with _job_in() as (server, lkapi, job):
        server.sip.add_phone("+15550100")
        desk = server.sip.add_phone("+15550199", answer_after=0.1)
        await job.add_sip_participant(
            "+15550100", trunk_id="ST_out", participant_identity="caller",
            wait_until_answered=True,
        )
        # A bare number is sent as tel:+15550199.
        response = await job.transfer_sip_participant("caller", "+15550199")
        assert response.status == api.SIPTransferStatus.STS_TRANSFER_SUCCESSFUL
        assert desk.last_call.transferred and desk.last_call.identity == "caller"
        assert await _participants(lkapi) == {}


async def test_a_refused_transfer_raises_and_keeps_the_caller() -> None:
    async with _job_in() as (server, lkapi, job):
        server.sip.add_phone("+15550100")
        server.sip.add_phone("+15550122", rejects=True)
        await job.add_sip_participant(
            "+15550100", trunk_id="ST_out", participant_identity="caller",
            wait_until_answered=True,
        )
        with pytest.raises(api.SipCallError) as failed:
            await job.transfer_sip_participant("caller", "tel:+15550122")
        assert failed.value.sip_transfer_reason == "STR_REJECTED"
        with pytest.raises(ValueError, match="transfer_to is empty; give tel:"):
            await job.transfer_sip_participant("caller", "")
        assert (await _participants(lkapi))["caller"]["sip.callStatus"] == "active"


async def test_ending_the_call_hangs_up_the_phone_too() -> None:
    async with _job_in() as (server, _, job):
        phone = server.sip.add_phone("+15550100")
        await job.add_sip_participant(
            "+15550100", trunk_id="ST_out", participant_identity="callee",
            wait_until_answered=True,
        )
        await _end_call(job)
        assert await phone.last_call.wait_ended() is CallEnd.ROOM_HUNG_UP


async def test_outside_livekit_the_call_control_methods_say_what_they_need() -> None:
    job = fk.JobContext()
    with pytest.raises(RuntimeError, match=r"job.delete_room\(\) needs a LiveKit job"):
        await job.delete_room()
    with pytest.raises(RuntimeError, match=r"add_sip_participant\(\) needs a LiveKit job"):
        await job.add_sip_participant("+15550100", trunk_id="ST_1")
    with pytest.raises(RuntimeError, match=r"transfer_sip_participant\(\) needs"):
        await job.transfer_sip_participant("sip_+15550100", "tel:+15550111")
    await asyncio.sleep(0)


async def test_move_participant_refuses_an_empty_name_and_the_jobs_own_room() -> None:
    async with _job_in() as (_, _, job):
        assert job.livekit is not None
        with pytest.raises(ValueError, match="whom to move and from which room"):
            await move_participant(job.livekit, "", from_room="consult")
        with pytest.raises(ValueError, match="the job's own room"):
            await move_participant(job.livekit, "callee", from_room=ROOM)


async def test_the_jobs_api_credentials_come_from_the_job_else_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # async: the SDK's Room wants a running loop
    job = fk.JobContext(job_id="AJ_2", room_name=ROOM)
    given = LiveKitJob(job, url="ws://x", token="t", api_key="k", api_secret="s")
    assert given.api_credentials == ("k", "s")
    monkeypatch.setenv("LIVEKIT_API_KEY", "env-key")
    monkeypatch.setenv("LIVEKIT_API_SECRET", "env-secret")
    from_env = LiveKitJob(fk.JobContext(job_id="AJ_3"), url="ws://x", token="t")
    assert from_env.api_credentials == ("env-key", "env-secret")
    monkeypatch.delenv("LIVEKIT_API_SECRET")
    with pytest.raises(RuntimeError, match="LIVEKIT_API_SECRET"):
        from_env.api_credentials  # noqa: B018 (the property raises)
    with pytest.raises(RuntimeError, match="before the job joined its room"):
        given.token_for("consult")
