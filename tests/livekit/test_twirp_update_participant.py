"""RoomService.UpdateParticipant on the test server, called through `livekit-api`.

What LiveKit's SIP service does server-side: it sets the caller's ``sip.callStatus`` attribute
from "dialing" to "active" to "hangup", and the clients in the room see it change. The room
test needs real SDK clients, so it runs as a scenario in a private network namespace (see
flowkit.testing.netns), like tests/livekit/test_twirp_api.py; the error tests run in-process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from livekit import api, rtc
from livekit.protocol import models
from scenario_kit import RecordingLink, quiet_logs, server_with_api, until

from flowkit.testing.livekit_server import TestLiveKitServer
from flowkit.testing.livekit_server.rooms import Participant, new_sid

KEY = "devkey"
SECRET = "update-participant-secret-0123456789"
ROOM = "call-1"
CALLER = "sip_+15550100"
TIMEOUT = 20.0


def serving(
    host: str = "127.0.0.1",
) -> AbstractAsyncContextManager[tuple[TestLiveKitServer, api.LiveKitAPI]]:
    """The test server and a livekit-api client signed with its keys."""
    return server_with_api(KEY, SECRET, host)


def _update(**fields: Any) -> api.UpdateParticipantRequest:
    return api.UpdateParticipantRequest(room=ROOM, identity=CALLER, **fields)


# With real SDK clients: WebRTC, so a network namespace ---------------------------------------


def test_an_update_reaches_every_client_in_the_room_the_updated_one_too(
    run_scenario: Any,
) -> None:
    result = run_scenario(__file__, "scenario_sip_call_status")
    trunk = {"sip.trunkPhoneNumber": "+15550199"}  # from the caller's join token

    # Name and metadata: replaced, and both clients see them.
    named = result["named"]
    assert named["reply"] == {"name": "Caller", "metadata": '{"trunk": "t1"}', "attributes": trunk}
    assert sorted(result["observer_events"]) == [  # in the order the SDK chooses
        ["metadata", CALLER, "", '{"trunk": "t1"}'], ["name", CALLER, "", "Caller"]
    ]
    assert named["caller_has"] == named["reply"]

    # Attributes only: merged into the caller's, its name and metadata kept.
    dialing = result["dialing"]
    assert dialing["reply"] == {
        "name": "Caller", "metadata": '{"trunk": "t1"}',
        "attributes": {**trunk, "sip.callStatus": "dialing", "sip.phoneNumber": "+15550100"},
    }
    assert dialing["caller_has"] == dialing["reply"]
    assert result["active"]["reply"]["attributes"] == {
        **trunk, "sip.callStatus": "active", "sip.phoneNumber": "+15550100"
    }
    assert result["active"]["caller_has"] == result["active"]["reply"]

    # A permission is refused, and nothing of the request is applied.
    code, status, message = result["refused"]["error"]
    assert (code, status) == ("unimplemented", 501)
    assert "UpdateParticipant's permission is not implemented" in message
    assert result["refused"]["listed"] == result["active"]["reply"]

    # An empty value deletes its key.
    hangup = {**trunk, "sip.callStatus": "hangup"}
    assert result["hangup"]["reply"]["attributes"] == hangup
    assert result["hangup"]["caller_has"]["attributes"] == hangup

    # The observer got participant_attributes_changed with the changed keys only (the deleted
    # one with an empty value), and nothing for the refused request; the caller got the same
    # events about itself.
    changes = [
        [CALLER, {"sip.callStatus": "dialing", "sip.phoneNumber": "+15550100"}],
        [CALLER, {"sip.callStatus": "active"}],
        [CALLER, {"sip.callStatus": "hangup", "sip.phoneNumber": ""}],
    ]
    assert result["observer_changes"] == changes
    assert result["caller_changes"] == changes
    assert result["observer_sees"] == result["hangup"]["reply"]
    assert result["got"] == result["hangup"]["reply"]


def _state(participant: rtc.Participant | models.ParticipantInfo) -> dict[str, Any]:
    return {
        "name": participant.name,
        "metadata": participant.metadata,
        "attributes": dict(participant.attributes),
    }


async def scenario_sip_call_status() -> dict[str, Any]:
    quiet_logs()
    async with serving(host="10.99.0.1") as (server, lkapi):
        token = server.token(CALLER, ROOM, kind="sip",
                             attributes={"sip.trunkPhoneNumber": "+15550199"})
        caller = rtc.Room()
        await asyncio.wait_for(caller.connect(server.url, token), TIMEOUT)
        observer = rtc.Room()
        await asyncio.wait_for(observer.connect(server.url, server.token("agent", ROOM)), TIMEOUT)
        await until(lambda: CALLER in observer.remote_participants)

        observer_events: list[list[str]] = []
        observer_changes: list[list[Any]] = []
        caller_changes: list[list[Any]] = []
        observer.on("participant_metadata_changed", lambda p, old, new: observer_events.append(
            ["metadata", p.identity, old, new]))
        observer.on("participant_name_changed", lambda p, old, new: observer_events.append(
            ["name", p.identity, old, new]))
        observer.on("participant_attributes_changed", lambda changed, p: observer_changes.append(
            [p.identity, dict(changed)]))
        caller.on("participant_attributes_changed", lambda changed, p: caller_changes.append(
            [p.identity, dict(changed)]))
        seen = observer.remote_participants[CALLER]
        mine = caller.local_participant

        async def step(request: api.UpdateParticipantRequest,
                       done: Callable[[], bool]) -> dict[str, Any]:
            reply = await lkapi.room.update_participant(request)
            await until(done)
            return {"reply": _state(reply), "caller_has": _state(mine)}

        result: dict[str, Any] = {}
        result["named"] = await step(
            _update(name="Caller", metadata='{"trunk": "t1"}'),
            lambda: len(observer_events) == 2 and mine.metadata != "" and mine.name != "")
        result["dialing"] = await step(
            _update(attributes={"sip.callStatus": "dialing", "sip.phoneNumber": "+15550100"}),
            lambda: len(observer_changes) == 1 and len(caller_changes) == 1)
        result["active"] = await step(
            _update(attributes={"sip.callStatus": "active"}),
            lambda: len(observer_changes) == 2 and len(caller_changes) == 2)

        try:
            await lkapi.room.update_participant(_update(
                attributes={"sip.callStatus": "refused"},
                permission=models.ParticipantPermission(can_publish=False)))
            error: list[Any] = ["no error"]
        except api.TwirpError as refused:
            error = [refused.code, refused.status, refused.message]
        listed = await lkapi.room.list_participants(api.ListParticipantsRequest(room=ROOM))
        result["refused"] = {
            "error": error,
            "listed": next(_state(p) for p in listed.participants if p.identity == CALLER),
        }

        result["hangup"] = await step(
            _update(attributes={"sip.callStatus": "hangup", "sip.phoneNumber": ""}),
            lambda: len(observer_changes) == 3 and len(caller_changes) == 3)
        got = await lkapi.room.get_participant(
            api.RoomParticipantIdentity(room=ROOM, identity=CALLER))
        result.update(
            observer_events=observer_events,
            observer_changes=observer_changes,
            caller_changes=caller_changes,
            observer_sees=_state(seen),
            got=_state(got),
        )
        await caller.disconnect()
        await observer.disconnect()
        return result


# Errors: in-process, with a participant whose link records what it is sent -------------------


def _token(**grants: Any) -> str:
    return api.AccessToken(KEY, SECRET).with_grants(api.VideoGrants(**grants)).to_jwt()


Call = Callable[[api.LiveKitAPI, str], Awaitable[object]]


async def _with_token(server_url: str, token: str, request: api.UpdateParticipantRequest) -> object:
    async with api.LiveKitAPI.with_token(token, server_url) as client:
        return await client.room.update_participant(request)


_CHANGE: dict[str, Any] = {
    "attributes": {"sip.callStatus": "active"}, "metadata": "changed", "name": "changed"
}


@pytest.mark.parametrize(
    ("call", "code", "status", "says"),
    [
        (lambda lkapi, url: lkapi.room.update_participant(
            api.UpdateParticipantRequest(room="ghost", identity=CALLER, **_CHANGE)),
         "not_found", 404, "requested room does not exist: 'ghost'"),
        (lambda lkapi, url: lkapi.room.update_participant(
            api.UpdateParticipantRequest(room=ROOM, identity="ghost", **_CHANGE)),
         "not_found", 404,
         f"participant not found: 'ghost' is not in room {ROOM!r} (present: {CALLER})"),
        (lambda lkapi, url: lkapi.room.update_participant(_update(
            permission=models.ParticipantPermission(can_publish=True), **_CHANGE)),
         "unimplemented", 501,
         "UpdateParticipant's permission is not implemented by the flowkit test server"),
        (lambda lkapi, url: _with_token(url, _token(room_create=True, room_list=True),
                                        _update(**_CHANGE)),
         "unauthenticated", 401,
         "permissions denied: UpdateParticipant needs the roomAdmin grant; "
         f"sign the token with VideoGrants(room_admin=True, room={ROOM!r})"),
        (lambda lkapi, url: _with_token(url, _token(room_admin=True, room="another"),
                                        _update(**_CHANGE)),
         "unauthenticated", 401,
         f"UpdateParticipant on room {ROOM!r} needs roomAdmin for that room, and the token's "
         "is for room 'another'"),
    ],
    ids=["unknown room", "unknown identity", "permission", "no roomAdmin", "another room's admin"],
)
async def test_a_refused_update_is_a_twirp_error_and_changes_nothing(
    call: Call, code: str, status: int, says: str
) -> None:
    async with serving() as (server, lkapi):
        room = server.create_room(ROOM)
        link = RecordingLink()
        caller = Participant(sid=new_sid("PA"), identity=CALLER, link=link, name="n",
                             metadata="m", attributes={"sip.callStatus": "dialing"})
        room.join(caller)
        before = caller.info()
        link.sent.clear()

        with pytest.raises(api.TwirpError) as raised:
            await call(lkapi, server.url)
        assert (raised.value.code, raised.value.status) == (code, status)
        assert says in raised.value.message
        assert caller.info() == before and link.sent == []

        # The same change, asked properly, goes through: the refusal was the request's fault.
        reply = await lkapi.room.update_participant(_update(**_CHANGE))
        assert (reply.name, reply.metadata, dict(reply.attributes)) == (
            "changed", "changed", {"sip.callStatus": "active"}
        )
        [update] = link.sent
        assert update.update.participants[0] == reply


async def test_an_update_that_changes_nothing_is_sent_to_no_one() -> None:
    async with serving() as (server, lkapi):
        room = server.create_room(ROOM)
        link = RecordingLink()
        caller = Participant(sid=new_sid("PA"), identity=CALLER, link=link, name="n",
                             metadata="m", attributes={"sip.callStatus": "active"})
        room.join(caller)
        link.sent.clear()
        same = _update(name="n", metadata="m", attributes={"sip.callStatus": "active", "x": ""})
        reply = await lkapi.room.update_participant(same)
        assert (reply.name, reply.metadata, dict(reply.attributes)) == (
            "n", "m", {"sip.callStatus": "active"}
        )
        assert link.sent == []  # nothing changed: no participant update
        await lkapi.room.update_participant(_update(attributes={"sip.callStatus": "hangup"}))
        [update] = link.sent
        assert update.update.participants[0].attributes["sip.callStatus"] == "hangup"
