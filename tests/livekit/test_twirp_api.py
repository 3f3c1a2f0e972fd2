"""The test server's Twirp API, called the way production code calls LiveKit: `livekit-api`.

Dispatch, room and error tests run in-process on 127.0.0.1 (plain HTTP and the agent
WebSocket). The participant tests need real SDK clients in a room, so they run as scenarios in
a private network namespace (see flowkit.testing.netns), like tests/livekit/test_server_rooms.py.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from livekit import api, rtc
from livekit.api.twirp_client import TwirpClient
from livekit.protocol import agent as agent_pb
from livekit.protocol import models
from scenario_kit import until

from flowkit.testing.livekit_server import TestLiveKitServer
from flowkit.testing.livekit_server.agents import AgentDispatcher
from flowkit.worker import Worker, WorkerOptions

if TYPE_CHECKING:
    from support import RawWorker

KEY = "devkey"
SECRET = "twirp-test-secret-0123456789abcdef"
JOB_GRAPH = Path(__file__).parents[1] / "worker" / "job_graph.py"  # ticks; needs no room
TIMEOUT = 20.0


# Helpers -------------------------------------------------------------------------------------


@asynccontextmanager
async def serving(
    host: str = "127.0.0.1",
) -> AsyncIterator[tuple[TestLiveKitServer, AgentDispatcher, api.LiveKitAPI]]:
    """The test server with agent dispatch, and a livekit-api client signed with its keys."""
    dispatcher = AgentDispatcher()
    server = TestLiveKitServer(host, api_key=KEY, api_secret=SECRET, agents=dispatcher.mount)
    async with server, api.LiveKitAPI(server.url, KEY, SECRET) as lkapi:
        yield server, dispatcher, lkapi


@asynccontextmanager
async def raw_worker(server: TestLiveKitServer, agent_name: str) -> AsyncIterator[RawWorker]:
    """A protocol-level worker registered on the server's /agent as ``agent_name``."""
    # Imported here: the namespace scenarios load this file in a subprocess whose sys.path
    # has tests/livekit but not tests/, where support.py lives.
    from support import RawWorker

    token = api.AccessToken(KEY, SECRET).with_grants(api.VideoGrants(agent=True)).to_jwt()
    async with aiohttp.ClientSession() as session, session.ws_connect(
        server.url + "/agent", headers={"Authorization": f"Bearer {token}"}
    ) as ws:
        worker = RawWorker(ws)
        await worker.register(agent_name)
        yield worker


def _token(**grants: Any) -> str:
    return api.AccessToken(KEY, SECRET).with_grants(api.VideoGrants(**grants)).to_jwt()


def _dispatch_request(agent: str, room: str, metadata: str = "") -> api.CreateAgentDispatchRequest:
    return api.CreateAgentDispatchRequest(agent_name=agent, room=room, metadata=metadata)


# AgentDispatchService ------------------------------------------------------------------------


async def test_create_dispatch_offers_the_job_to_the_named_worker_with_its_metadata() -> None:
    async with serving() as (server, _, lkapi), raw_worker(
        server, "support"
    ) as support, raw_worker(server, "sales") as sales:
        metadata = json.dumps({"caller": "+15550100"})
        created = await lkapi.agent_dispatch.create_dispatch(
            _dispatch_request("support", "call-1", metadata)
        )
        assert created.id.startswith("AD_")
        assert (created.agent_name, created.room, created.metadata) == (
            "support", "call-1", metadata
        )
        job = await support.answer(identity="support-agent")
        assert job.dispatch_id == created.id and job.agent_name == "support"
        assert job.metadata == metadata and job.type == agent_pb.JT_ROOM
        room = server.rooms.get("call-1")  # created by the dispatch, as LiveKit does
        assert room is not None and job.room.name == "call-1" and job.room.sid == room.sid
        assignment = (await support.receive()).assignment
        assert assignment.job.id == job.id
        claims = api.TokenVerifier(KEY, SECRET).verify(assignment.token)
        assert claims.identity == "support-agent"
        assert claims.video is not None and claims.video.room == "call-1"
        with pytest.raises(TimeoutError):
            await sales.receive(timeout=0.3)  # another agent name gets nothing


async def test_list_shows_dispatches_with_their_jobs_and_delete_ends_them() -> None:
    async with serving() as (server, dispatcher, lkapi), raw_worker(server, "support") as worker:
        dispatches = lkapi.agent_dispatch
        first = await dispatches.create_dispatch(_dispatch_request("support", "r", "one"))
        job = await worker.answer()
        assert (await worker.receive()).assignment.job.id == job.id
        await worker.send(update_job=agent_pb.UpdateJobStatus(
            job_id=job.id, status=agent_pb.JS_RUNNING))
        await dispatcher.wait_for_job(job.id, agent_pb.JS_RUNNING)
        second = await dispatches.create_dispatch(_dispatch_request("late", "r", "two"))

        listed = await dispatches.list_dispatch("r")
        # As in LiveKit, the room created by the first call has its default dispatch, first.
        default = listed[0]
        assert (default.agent_name, default.room, default.metadata) == ("", "r", "")
        assert [(d.id, d.agent_name, d.room, d.metadata) for d in listed[1:]] == [
            (first.id, "support", "r", "one"), (second.id, "late", "r", "two")
        ]
        shown = await dispatches.get_dispatch(first.id, "r")
        assert shown is not None
        assert [(j.id, j.state.status, j.state.worker_id) for j in shown.state.jobs] == [
            (job.id, agent_pb.JS_RUNNING, worker.id)
        ]

        deleted = await dispatches.delete_dispatch(first.id, "r")
        assert deleted.id == first.id
        assert (await worker.receive()).termination.job_id == job.id
        assert [d.id for d in await dispatches.list_dispatch("r")] == [default.id, second.id]

        await dispatches.delete_dispatch(second.id, "r")  # no worker had taken it yet
        assert [d.id for d in await dispatches.list_dispatch("r")] == [default.id]
        async with raw_worker(server, "late") as late:
            with pytest.raises(TimeoutError):
                await late.receive(timeout=0.3)  # the withdrawn offer is not made

        with pytest.raises(api.TwirpError) as missing:
            await dispatches.delete_dispatch(first.id, "r")
        assert (missing.value.code, missing.value.status) == ("not_found", 404)
        assert f"dispatch ID not found: {first.id!r}" in missing.value.message


async def test_deleting_a_dispatch_while_its_offer_is_out_withdraws_the_offer() -> None:
    async with serving() as (server, dispatcher, lkapi), raw_worker(server, "slow") as worker:
        created = await lkapi.agent_dispatch.create_dispatch(_dispatch_request("slow", "r"))
        job = (await worker.receive()).availability.job  # offered; the worker thinks it over
        await asyncio.wait_for(lkapi.agent_dispatch.delete_dispatch(created.id, "r"), 2.0)
        await worker.send(availability=agent_pb.AvailabilityResponse(
            job_id=job.id, available=True))
        with pytest.raises(TimeoutError):
            await worker.receive(timeout=0.3)  # too late: no assignment follows
        assert dispatcher.jobs[job.id].worker_id == ""



async def test_create_room_with_agents_gives_the_room_those_dispatches_only() -> None:
    async with serving() as (server, _, lkapi), raw_worker(server, "support") as support:
        async with raw_worker(server, "") as unnamed:
            await lkapi.room.create_room(api.CreateRoomRequest(name="desk", agents=[
                api.RoomAgentDispatch(agent_name="support", metadata="tier-2")]))
            job = await support.answer()
            # An unnamed worker would have had the default dispatch's job by now.
            with pytest.raises(TimeoutError):
                await unnamed.receive(timeout=0.3)
        [listed] = await lkapi.agent_dispatch.list_dispatch("desk")
        assert (listed.agent_name, listed.metadata) == ("support", "tier-2")
        assert (job.dispatch_id, job.agent_name, job.metadata) == (listed.id, "support", "tier-2")
        assert job.type == agent_pb.JT_ROOM and job.room.name == "desk"

async def test_a_flowkit_worker_runs_the_job_dispatched_through_livekit_api() -> None:
    async with serving() as (server, dispatcher, lkapi):
        worker = Worker(JOB_GRAPH, WorkerOptions(
            url=server.url, api_key=KEY, api_secret=SECRET, agent_name="twirp-e2e",
            http_port=None, status_interval=0.1, load_threshold=math.inf,
            load_fnc=lambda: 0.0, drain_timeout=5.0,
        ))
        await worker.start(timeout=10)
        try:
            metadata = json.dumps({"mode": "forever"})
            created = await lkapi.agent_dispatch.create_dispatch(
                _dispatch_request("twirp-e2e", "e2e-room", metadata)
            )

            def running_job() -> str:
                return next((r.id for r in dispatcher.jobs.values()
                             if r.job.dispatch_id == created.id
                             and r.status == agent_pb.JS_RUNNING), "")

            await dispatcher.wait_until(lambda: bool(running_job()))
            job_id = running_job()
            job = worker.jobs[job_id]
            assert job.context.metadata == metadata and job.context.agent_name == "twirp-e2e"
            assert job.room_name == "e2e-room"
            runner = job.runner
            assert runner is not None
            before = runner.metrics().node("ticker").messages_out
            await asyncio.sleep(0.1)  # the graph ticks every 20 ms: it is really running
            assert runner.metrics().node("ticker").messages_out > before

            shown = await lkapi.agent_dispatch.get_dispatch(created.id, "e2e-room")
            assert shown is not None
            assert [(j.id, j.state.worker_id) for j in shown.state.jobs] == [(job_id, worker.id)]

            await lkapi.agent_dispatch.delete_dispatch(created.id, "e2e-room")
            await dispatcher.wait_for_job(job_id, agent_pb.JS_SUCCESS)
            assert job_id not in worker.jobs and worker.outcomes["terminated"] == 1
        finally:
            await worker.aclose()


# RoomService ---------------------------------------------------------------------------------


async def test_rooms_are_created_listed_and_deleted() -> None:
    async with serving() as (server, _, lkapi), raw_worker(server, "") as unnamed:
        rooms = lkapi.room
        lobby = await rooms.create_room(api.CreateRoomRequest(name="lobby", metadata="m"))
        kept = server.rooms.get("lobby")
        assert kept is not None and (lobby.name, lobby.metadata, lobby.sid) == (
            "lobby", "m", kept.sid
        )
        job = await unnamed.answer(available=False)  # a new room's automatic dispatch
        assert job.room.name == "lobby" and job.agent_name == ""
        again = await rooms.create_room(api.CreateRoomRequest(name="lobby"))
        assert again.sid == lobby.sid  # an existing room is returned, not replaced

        await rooms.create_room(api.CreateRoomRequest(name="other"))
        listed = await rooms.list_rooms(api.ListRoomsRequest())
        assert [r.name for r in listed.rooms] == ["lobby", "other"]
        named = await rooms.list_rooms(api.ListRoomsRequest(names=["other", "ghost"]))
        assert [r.name for r in named.rooms] == ["other"]
        empty = await rooms.list_participants(api.ListParticipantsRequest(room="other"))
        assert list(empty.participants) == []

        await rooms.delete_room(api.DeleteRoomRequest(room="lobby"))
        assert "lobby" not in server.rooms
        listed = await rooms.list_rooms(api.ListRoomsRequest())
        assert [r.name for r in listed.rooms] == ["other"]


# Errors --------------------------------------------------------------------------------------

Call = Callable[[TestLiveKitServer, api.LiveKitAPI], Awaitable[object]]


async def _with_token(server: TestLiveKitServer, token: str, call: Callable[
    [api.LiveKitAPI], Awaitable[object]
]) -> object:
    async with api.LiveKitAPI.with_token(token, server.url) as client:
        return await call(client)


async def _wrong_secret(server: TestLiveKitServer, _: api.LiveKitAPI) -> object:
    async with api.LiveKitAPI(server.url, KEY, "another-secret-0123456789abcdef-0123") as client:
        return await client.room.list_rooms(api.ListRoomsRequest())


async def _dispatch_without_admin(server: TestLiveKitServer, _: api.LiveKitAPI) -> object:
    return await _with_token(server, _token(room_create=True), lambda c: (
        c.agent_dispatch.create_dispatch(_dispatch_request("a", "r"))))


async def _admin_of_another_room(server: TestLiveKitServer, _: api.LiveKitAPI) -> object:
    return await _with_token(server, _token(room_admin=True, room="a"), lambda c: (
        c.room.list_participants(api.ListParticipantsRequest(room="b"))))


async def _list_without_room_list(server: TestLiveKitServer, _: api.LiveKitAPI) -> object:
    return await _with_token(server, _token(room_create=True), lambda c: (
        c.room.list_rooms(api.ListRoomsRequest())))


async def _create_without_room_create(server: TestLiveKitServer, _: api.LiveKitAPI) -> object:
    return await _with_token(server, _token(room_list=True), lambda c: (
        c.room.create_room(api.CreateRoomRequest(name="x"))))


async def _no_token(server: TestLiveKitServer, _: api.LiveKitAPI) -> object:
    async with aiohttp.ClientSession() as session:
        client = TwirpClient(session, server.url, "livekit")
        return await client.request("RoomService", "ListRooms", api.ListRoomsRequest(), {},
                                    api.ListRoomsResponse)


async def _call_route(server: TestLiveKitServer, service: str, method: str) -> object:
    """Call ``service/method`` with livekit-api's own Twirp client and a valid token."""
    async with aiohttp.ClientSession() as session:
        client = TwirpClient(session, server.url, "livekit")
        headers = {"Authorization": f"Bearer {_token(room_list=True)}"}
        return await client.request(service, method, api.ListRoomsRequest(), headers,
                                    api.ListRoomsResponse)


async def _unknown_method(server: TestLiveKitServer, _: api.LiveKitAPI) -> object:
    return await _call_route(server, "RoomService", "MakeCoffee")


async def _unknown_service(server: TestLiveKitServer, _: api.LiveKitAPI) -> object:
    return await _call_route(server, "CoffeeService", "Brew")


async def _unimplemented(server: TestLiveKitServer, lkapi: api.LiveKitAPI) -> object:
    return await lkapi.room.mute_published_track(
        api.MuteRoomTrackRequest(room="r", identity="x", track_sid="TR_x", muted=True))


async def _delete_a_missing_room(server: TestLiveKitServer, lkapi: api.LiveKitAPI) -> object:
    return await lkapi.room.delete_room(api.DeleteRoomRequest(room="ghost"))


async def _remove_a_missing_participant(server: TestLiveKitServer, lkapi: api.LiveKitAPI) -> object:
    server.create_room("here")
    return await lkapi.room.remove_participant(
        api.RoomParticipantIdentity(room="here", identity="ghost"))


async def _list_dispatches_of_a_missing_room(
    server: TestLiveKitServer, lkapi: api.LiveKitAPI
) -> object:
    return await lkapi.agent_dispatch.list_dispatch("ghost")


async def _room_without_a_name(server: TestLiveKitServer, lkapi: api.LiveKitAPI) -> object:
    return await lkapi.room.create_room(api.CreateRoomRequest(name=""))


@pytest.mark.parametrize(
    ("call", "code", "status", "says"),
    [
        (_wrong_secret, "unauthenticated", 401, "invalid access token"),
        (_no_token, "unauthenticated", 401, "no access token: ListRooms needs"),
        (_dispatch_without_admin, "unauthenticated", 401,
         "permissions denied: CreateDispatch needs the roomAdmin grant; "
         "sign the token with VideoGrants(room_admin=True, room='r')"),
        (_admin_of_another_room, "unauthenticated", 401,
         "on room 'b' needs roomAdmin for that room, and the token's is for room 'a'"),
        (_list_without_room_list, "unauthenticated", 401, "ListRooms needs the roomList grant"),
        (_create_without_room_create, "unauthenticated", 401,
         "CreateRoom needs the roomCreate grant"),
        (_unknown_method, "bad_route", 404,
         "livekit.RoomService has no method 'MakeCoffee'; its methods are CreateRoom"),
        (_unknown_service, "bad_route", 404, "no Twirp service at /twirp/livekit.CoffeeService"),
        (_unimplemented, "unimplemented", 501,
         "livekit.RoomService/MutePublishedTrack is not implemented by the flowkit test server"),
        (_delete_a_missing_room, "not_found", 404, "requested room does not exist: 'ghost'"),
        (_remove_a_missing_participant, "not_found", 404,
         "participant not found: 'ghost' is not in room 'here'"),
        (_list_dispatches_of_a_missing_room, "not_found", 404, "requested room does not exist"),
        (_room_without_a_name, "invalid_argument", 400, "CreateRoom needs a room name"),
    ],
)
async def test_errors_reach_the_client_as_twirp_errors(
    call: Call, code: str, status: int, says: str
) -> None:
    async with serving() as (server, _, lkapi):
        with pytest.raises(api.TwirpError) as raised:
            await call(server, lkapi)
        assert (raised.value.code, raised.value.status) == (code, status)
        assert says in raised.value.message
        rooms = await lkapi.room.list_rooms(api.ListRoomsRequest())  # and it still serves
        assert isinstance(rooms, api.ListRoomsResponse)


@pytest.mark.parametrize(
    ("method", "content_type", "body", "status", "code", "says"),
    [
        ("POST", "application/protobuf", b"\x0a\xff", 400, "malformed",
         "the application/protobuf body is not a livekit.CreateRoomRequest"),
        ("POST", "application/json", b"{not json", 400, "malformed",
         "the application/json body is not a livekit.CreateRoomRequest"),
        ("POST", "application/json", b"\xff\xfe", 400, "malformed", "is not a livekit"),
        ("POST", "text/plain", b"name: x", 404, "bad_route",
         "unexpected Content-Type 'text/plain'"),
        ("GET", "application/json", b"", 404, "bad_route", "Twirp calls are POST requests"),
    ],
)
async def test_bad_requests_get_clear_twirp_errors_and_the_server_carries_on(
    method: str, content_type: str, body: bytes, status: int, code: str, says: str
) -> None:
    async with serving() as (server, _, lkapi), aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bearer {_token(room_create=True)}",
                   "Content-Type": content_type}
        url = server.http_url + "/twirp/livekit.RoomService/CreateRoom"
        async with session.request(method, url, data=body, headers=headers) as response:
            assert response.status == status
            assert response.content_type == "application/json"  # Twirp errors are JSON
            error = await response.json()
        assert error["code"] == code and says in error["msg"]
        created = await lkapi.room.create_room(api.CreateRoomRequest(name="after"))
        assert created.name == "after"


async def test_json_requests_get_json_replies() -> None:
    async with serving() as (server, _, _lkapi), aiohttp.ClientSession() as session:
        async def post(path: str, grants: dict[str, Any], body: object) -> Any:
            headers = {"Authorization": f"Bearer {_token(**grants)}"}
            async with session.post(f"{server.http_url}/twirp/livekit.{path}", json=body,
                                    headers=headers) as response:
                assert response.status == 200, await response.text()
                assert response.content_type == "application/json"
                return await response.json()

        room = await post("RoomService/CreateRoom", {"room_create": True},
                          {"name": "json-room", "metadata": "m", "unknownField": 1})
        assert room["name"] == "json-room" and room["metadata"] == "m"
        assert room["sid"].startswith("RM_") and room["num_participants"] == 0  # proto names
        listed = await post("RoomService/ListRooms", {"room_list": True}, {"names": ["json-room"]})
        assert [r["name"] for r in listed["rooms"]] == ["json-room"]
        dispatch = await post("AgentDispatchService/CreateDispatch",
                              {"room_admin": True, "room": "json-room"},
                              {"agentName": "a", "room": "json-room", "metadata": "x"})
        assert dispatch["agent_name"] == "a" and dispatch["id"].startswith("AD_")


# Participants: real SDK clients, so WebRTC, so a network namespace ----------------------------


def test_participants_are_listed_and_removing_one_disconnects_its_client(
    run_scenario: Any,
) -> None:
    result = run_scenario(__file__, "scenario_participants")
    assert result["listed"] == [["alice", result["alice_sid"]], ["bob", result["bob_sid"]]]
    assert result["got"] == ["alice", result["alice_sid"]]
    assert result["alice_reason"] == models.DisconnectReason.PARTICIPANT_REMOVED
    assert result["bob_saw_leave"] == ["alice"]
    assert result["after_remove"] == ["bob"]
    assert result["bob_reason"] == models.DisconnectReason.ROOM_DELETED
    assert result["rooms_after_delete"] == []



async def _join(server: TestLiveKitServer, identity: str) -> tuple[rtc.Room, asyncio.Future[int]]:
    """A client in ``lobby``, and a future of the reason it gets disconnected for."""
    client = rtc.Room()
    left: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    client.on("disconnected", lambda reason: left.done() or left.set_result(int(reason)))
    await asyncio.wait_for(client.connect(server.url, server.token(identity, "lobby")), TIMEOUT)
    return client, left


async def scenario_participants() -> dict[str, Any]:
    async with serving(host="10.99.0.1") as (server, _, lkapi):
        alice, alice_left = await _join(server, "alice")
        bob, bob_left = await _join(server, "bob")
        bob_saw_leave: list[str] = []
        bob.on("participant_disconnected", lambda p: bob_saw_leave.append(p.identity))
        in_lobby = api.ListParticipantsRequest(room="lobby")
        listed = await lkapi.room.list_participants(in_lobby)
        got = await lkapi.room.get_participant(
            api.RoomParticipantIdentity(room="lobby", identity="alice"))

        await lkapi.room.remove_participant(
            api.RoomParticipantIdentity(room="lobby", identity="alice"))
        alice_reason = await asyncio.wait_for(alice_left, TIMEOUT)
        await until(lambda: bob_saw_leave == ["alice"])
        after_remove = await lkapi.room.list_participants(in_lobby)

        await lkapi.room.delete_room(api.DeleteRoomRequest(room="lobby"))
        bob_reason = await asyncio.wait_for(bob_left, TIMEOUT)
        rooms = await lkapi.room.list_rooms(api.ListRoomsRequest())
        result = {
            "alice_sid": alice.local_participant.sid,
            "bob_sid": bob.local_participant.sid,
            "listed": sorted([p.identity, p.sid] for p in listed.participants),
            "got": [got.identity, got.sid],
            "alice_reason": alice_reason,
            "bob_saw_leave": bob_saw_leave,
            "after_remove": [p.identity for p in after_remove.participants],
            "bob_reason": bob_reason,
            "rooms_after_delete": [r.name for r in rooms.rooms],
        }
        await alice.disconnect()
        await bob.disconnect()
        return result
