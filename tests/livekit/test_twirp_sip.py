"""LiveKit's SIP service on the test server: dialling simulated phones, transferring calls.

Every call goes through the real ``livekit-api`` client (``lkapi.sip``, ``lkapi.room``). The
SIP participants the server makes are simulated calls, without WebRTC, so most tests run
in-process on 127.0.0.1; the other participants in the room are recording links, which show
what the room told them (participant updates) and what it asked of them (``close``). One
scenario uses real SDK clients (an observer, and a SIP-kind client to transfer), so it runs in
a private network namespace (see flowkit.testing.netns), like tests/livekit/test_twirp_api.py.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from google.protobuf.duration_pb2 import Duration
from livekit import api, rtc
from livekit.protocol import models
from livekit.protocol import sip as sip_pb
from scenario_kit import (
    TRUNK,
    TRUNK_HOST,
    TRUNK_NUMBER,
    RecordingLink,
    quiet_logs,
    server_with_trunk,
    until,
)

from flowkit.testing.livekit_server import (
    CallEnd,
    SimulatedCall,
    SIPResponse,
    TestLiveKitServer,
)
from flowkit.testing.livekit_server.rooms import Participant, PublishedTrack, Room, new_sid
from flowkit.testing.livekit_server.server_audio import ServerAudioTrack

KEY = "devkey"
SECRET = "twirp-sip-secret-0123456789abcdef"
ROOM = "call-room"
ALICE = "+15550100"
CALLER = f"sip_{ALICE}"  # LiveKit's default identity for a dialled number
Kind = models.ParticipantInfo.Kind
Reason = models.DisconnectReason


# Helpers -------------------------------------------------------------------------------------


def serving(host: str = "127.0.0.1") -> AbstractAsyncContextManager[
    tuple[TestLiveKitServer, api.LiveKitAPI]
]:
    """The test server (its phones empty, the outbound trunk TRUNK stored) and a client."""
    return server_with_trunk(KEY, SECRET, host)


def join(room: Room, identity: str, kind: int = Kind.STANDARD, **fields: Any) -> RecordingLink:
    """Put a participant with a recording link in ``room``; its link."""
    link = RecordingLink()
    room.join(Participant(sid=new_sid("PA"), identity=identity, link=link, kind=kind, **fields))
    return link


def dial(number: str = ALICE, **fields: Any) -> api.CreateSIPParticipantRequest:
    fields.setdefault("sip_trunk_id", TRUNK)
    fields.setdefault("room_name", ROOM)
    return api.CreateSIPParticipantRequest(sip_call_to=number, **fields)


def seconds(value: float) -> Duration:
    whole = int(value)
    return Duration(seconds=whole, nanos=round((value - whole) * 1e9))


def transfer(to: str, identity: str = CALLER, **fields: Any) -> api.TransferSIPParticipantRequest:
    return api.TransferSIPParticipantRequest(
        room_name=ROOM, participant_identity=identity, transfer_to=to, **fields
    )


async def identities(lkapi: api.LiveKitAPI, room: str = ROOM) -> list[str]:
    listed = await lkapi.room.list_participants(api.ListParticipantsRequest(room=room))
    return [p.identity for p in listed.participants]


async def answered_call(server: TestLiveKitServer, lkapi: api.LiveKitAPI) -> RecordingLink:
    """Alice on the phone in the room (answered), and an observer there; the observer's link."""
    server.sip.add_phone(ALICE)
    observer = join(server.create_room(ROOM), "agent")
    await lkapi.sip.create_sip_participant(dial(wait_until_answered=True))
    return observer


# CreateSIPParticipant --------------------------------------------------------------------------


async def test_a_dialled_phone_joins_as_a_sip_participant_and_waiting_returns_when_answered(
) -> None:
    async with serving() as (server, lkapi):
        phone = server.sip.add_phone(ALICE, answer_after=0.3)
        observer = join(server.create_room(ROOM), "agent")

        started = time.monotonic()
        info = await lkapi.sip.create_sip_participant(dial(
            sip_number=TRUNK_NUMBER, participant_name="Alice", participant_metadata='{"id": 7}',
            participant_attributes={"customer": "gold"}, wait_until_answered=True))
        assert time.monotonic() - started >= 0.3  # the reply waited for the answer

        got = await lkapi.room.get_participant(
            api.RoomParticipantIdentity(room=ROOM, identity=CALLER))
        assert (info.participant_id, info.participant_identity, info.room_name) == (
            got.sid, CALLER, ROOM)
        assert info.sip_call_id.startswith("SCL_")
        assert got.kind == Kind.SIP
        assert (got.name, got.metadata) == ("Alice", '{"id": 7}')
        assert dict(got.attributes) == {
            "customer": "gold",
            "sip.callID": info.sip_call_id,
            "sip.callStatus": "active",
            "sip.hostname": TRUNK_HOST,
            "sip.phoneNumber": ALICE,
            "sip.trunkID": "ST_test",
            "sip.trunkPhoneNumber": TRUNK_NUMBER,
        }
        assert await identities(lkapi) == ["agent", CALLER]
        # The room heard each step of the call, as the SDK's participant_attributes_changed.
        assert observer.updates_about(CALLER) == [
            ("dialing", "JOINED"), ("ringing", "JOINED"), ("active", "JOINED")]
        call = phone.last_call
        assert call.answered and call.end is None
        assert (call.call_id, call.identity, call.caller) == (
            info.sip_call_id, CALLER, TRUNK_NUMBER)


async def test_the_room_is_created_if_missing_and_the_reply_without_waiting_comes_at_once(
) -> None:
    async with serving() as (server, lkapi):
        server.sip.add_phone(ALICE, answer_after=0.8)
        started = time.monotonic()
        info = await lkapi.sip.create_sip_participant(dial(room_name="new-room"))
        assert time.monotonic() - started < 0.6  # long before the answer
        assert info.participant_identity == CALLER

        rooms = await lkapi.room.list_rooms(api.ListRoomsRequest())
        assert [room.name for room in rooms.rooms] == ["new-room"]

        async def status() -> str:
            got = await lkapi.room.get_participant(
                api.RoomParticipantIdentity(room="new-room", identity=CALLER))
            return got.attributes["sip.callStatus"]

        assert await status() in ("dialing", "ringing")  # the call goes on in the background
        seen = [await status()]
        while seen[-1] != "active":
            await asyncio.sleep(0.05)
            seen.append(await status())
        assert "ringing" in seen


@pytest.mark.parametrize(
    ("script", "code", "sip_code", "sip_status", "says", "reason"),
    [
        ({"busy": True}, "resource_exhausted", 486, "Busy Here",
         f"the simulated phone {ALICE!r} is busy", Reason.USER_REJECTED),
        ({"rejects": True, "answer_after": 0.1}, "permission_denied", 603, "Decline",
         f"the simulated phone {ALICE!r} declined the call", Reason.USER_REJECTED),
        ({"fails_with": SIPResponse(480, "Temporarily Unavailable")}, "resource_exhausted", 480,
         "Temporarily Unavailable", "answered 480 Temporarily Unavailable",
         Reason.USER_UNAVAILABLE),
    ],
    ids=["busy", "declines", "480"],
)
async def test_a_rejected_call_raises_sip_call_error_and_the_participant_leaves(
    script: dict[str, Any], code: str, sip_code: int, sip_status: str, says: str, reason: int
) -> None:
    async with serving() as (server, lkapi):
        phone = server.sip.add_phone(ALICE, **script)
        observer = join(server.create_room(ROOM), "agent")

        with pytest.raises(api.SipCallError) as raised:
            await lkapi.sip.create_sip_participant(dial(wait_until_answered=True))
        error = raised.value
        assert (error.code, error.sip_status_code, error.sip_status) == (
            code, sip_code, sip_status)
        assert error.sip_transfer_reason is None
        assert says in error.message

        assert await identities(lkapi) == ["agent"]
        # As in LiveKit, a call that never connected leaves without a "hangup" status.
        updates = observer.updates_about(CALLER)
        assert updates[-1][1] == "DISCONNECTED"
        assert "hangup" not in [status for status, _ in updates]
        assert phone.last_call.end is CallEnd.REJECTED and not phone.last_call.answered
        assert phone.last_call.response == SIPResponse(sip_code, sip_status)
        call = server.sip.call(ROOM, CALLER)
        assert call is not None and call.disconnect_reason == reason


@pytest.mark.parametrize("script", [{"never_answers": True}, {"answer_after": 2.0}],
                         ids=["never answers", "answers too late"])
async def test_no_answer_within_the_ringing_timeout_is_canceled_without_a_sip_status(
    script: dict[str, Any]
) -> None:
    async with serving() as (server, lkapi):
        phone = server.sip.add_phone(ALICE, **script)
        observer = join(server.create_room(ROOM), "agent")

        started = time.monotonic()
        with pytest.raises(api.TwirpError) as raised:
            await lkapi.sip.create_sip_participant(
                dial(wait_until_answered=True, ringing_timeout=seconds(0.3)))
        assert 0.3 <= time.monotonic() - started < 1.5
        # LiveKit's "sip request timed out" is psrpc Canceled, with no SIP status: livekit-api
        # raises a plain TwirpError, not a SipCallError.
        assert not isinstance(raised.value, api.SipCallError)
        assert (raised.value.code, raised.value.status) == ("canceled", 408)
        assert f"sip request timed out: {ALICE!r} did not answer within 0.3 s" in (
            raised.value.message)

        assert await identities(lkapi) == ["agent"]
        assert [status for status, _ in observer.updates_about(CALLER)] == [
            "dialing", "ringing", "ringing"]  # the last one: leaving
        assert phone.last_call.end is CallEnd.NOT_ANSWERED


async def test_dialling_a_number_no_phone_has_is_404_naming_the_api_to_register_one() -> None:
    async with serving() as (server, lkapi):
        alice = server.sip.add_phone(ALICE)
        with pytest.raises(api.SipCallError) as raised:
            await lkapi.sip.create_sip_participant(dial("+15559999", wait_until_answered=True))
        assert (raised.value.code, raised.value.status) == ("not_found", 404)
        assert (raised.value.sip_status_code, raised.value.sip_status) == (404, "Not Found")
        assert "register one with server.sip.add_phone('+15559999', ...)" in raised.value.message
        assert await identities(lkapi) == []
        assert alice.calls == []


async def test_without_waiting_a_failed_call_leaves_the_room_in_the_background() -> None:
    async with serving() as (server, lkapi):
        phone = server.sip.add_phone(ALICE, rejects=True, answer_after=0.2)
        room = server.create_room(ROOM)
        observer = join(room, "agent")
        await lkapi.sip.create_sip_participant(dial())
        assert await identities(lkapi) == ["agent", CALLER]
        await until(lambda: CALLER not in room.participants, timeout=2)
        assert observer.updates_about(CALLER)[-1] == ("ringing", "DISCONNECTED")
        assert phone.last_call.response == SIPResponse(603, "Decline")


async def test_the_phone_hanging_up_sets_hangup_then_the_participant_leaves() -> None:
    async with serving() as (server, lkapi):
        phone = server.sip.add_phone(ALICE, hang_up_after=0.2)
        observer = join(server.create_room(ROOM), "agent")
        await lkapi.sip.create_sip_participant(dial(wait_until_answered=True))
        assert await identities(lkapi) == ["agent", CALLER]

        assert await phone.last_call.wait_ended(2.0) is CallEnd.PHONE_HUNG_UP
        assert await identities(lkapi) == ["agent"]
        assert observer.updates_about(CALLER)[-2:] == [
            ("hangup", "JOINED"), ("hangup", "DISCONNECTED")]
        call = server.sip.call(ROOM, CALLER)
        assert call is not None and call.disconnect_reason == Reason.CLIENT_INITIATED


async def test_request_options_inline_trunk_hidden_number_dtmf_and_max_duration() -> None:
    async with serving() as (server, lkapi):
        phone = server.sip.add_phone(ALICE)
        observer = join(server.create_room(ROOM), "agent")
        info = await lkapi.sip.create_sip_participant(dial(
            sip_trunk_id="", trunk=sip_pb.SIPOutboundConfig(hostname="sip.example.com"),
            sip_number=TRUNK_NUMBER,
            participant_identity="alice", hide_phone_number=True, dtmf="12w3",
            max_call_duration=seconds(0.3), wait_until_answered=True))
        assert info.participant_identity == "alice"
        got = await lkapi.room.get_participant(api.RoomParticipantIdentity(room=ROOM,
                                                                           identity="alice"))
        assert set(got.attributes) == {"sip.callID", "sip.callStatus"}  # no numbers, no trunk id
        assert [status for status, _ in observer.updates_about("alice")] == [
            "dialing", "ringing", "automation", "active"]
        assert phone.last_call.dtmf == "12w3"

        assert await phone.last_call.wait_ended(2.0) is CallEnd.MAX_DURATION
        assert observer.updates_about("alice")[-2:] == [
            ("hangup", "JOINED"), ("hangup", "DISCONNECTED")]


async def test_an_inline_trunk_shows_its_hostname() -> None:
    async with serving() as (server, lkapi):
        server.sip.add_phone(ALICE)
        await lkapi.sip.create_sip_participant(dial(
            sip_trunk_id="", trunk=sip_pb.SIPOutboundConfig(hostname="sip.example.com"),
            sip_number=TRUNK_NUMBER, wait_until_answered=True))
        got = await lkapi.room.get_participant(api.RoomParticipantIdentity(room=ROOM,
                                                                           identity=CALLER))
        assert got.attributes["sip.hostname"] == "sip.example.com"
        assert got.attributes["sip.trunkPhoneNumber"] == TRUNK_NUMBER
        assert "sip.trunkID" not in got.attributes


@pytest.mark.parametrize(
    ("delete", "reason"),
    [
        (lambda lkapi: lkapi.room.delete_room(api.DeleteRoomRequest(room=ROOM)),
         Reason.ROOM_DELETED),
        (lambda lkapi: lkapi.room.remove_participant(
            api.RoomParticipantIdentity(room=ROOM, identity=CALLER)),
         Reason.PARTICIPANT_REMOVED),
    ],
    ids=["DeleteRoom", "RemoveParticipant"],
)
async def test_the_room_ending_the_call_hangs_up_the_phone(delete: Any, reason: int) -> None:
    async with serving() as (server, lkapi):
        phone = server.sip.add_phone(ALICE)
        observer = join(server.create_room(ROOM), "agent")
        await lkapi.sip.create_sip_participant(dial(wait_until_answered=True))

        await delete(lkapi)
        call = phone.last_call
        assert call.end is CallEnd.ROOM_HUNG_UP and call.disconnect_reason == reason
        assert observer.updates_about(CALLER)[-1] == ("active", "DISCONNECTED")
        simulated = server.sip.call(ROOM, CALLER)
        assert simulated is not None and simulated.task is not None
        await asyncio.wait_for(simulated.task, 1)  # nothing left running


async def test_deleting_the_room_while_it_rings_fails_the_waiting_request() -> None:
    async with serving() as (server, lkapi):
        phone = server.sip.add_phone(ALICE, never_answers=True)
        waiting = asyncio.create_task(lkapi.sip.create_sip_participant(
            dial(wait_until_answered=True, ringing_timeout=seconds(5))))
        await until(lambda: phone.calls, timeout=2)
        await lkapi.room.delete_room(api.DeleteRoomRequest(room=ROOM))
        with pytest.raises(api.TwirpError) as raised:
            await asyncio.wait_for(waiting, 2)
        assert raised.value.code == "canceled"
        assert "ended before it was answered: room_hung_up (ROOM_DELETED)" in raised.value.message
        assert phone.last_call.end is CallEnd.ROOM_HUNG_UP


async def test_the_phone_is_sent_the_rooms_tracks_and_data_once_it_answers() -> None:
    async with serving() as (server, lkapi):
        phone = server.sip.add_phone(ALICE, answer_after=0.3)
        room = server.create_room(ROOM)
        agent = Participant(sid=new_sid("PA"), identity="agent", link=RecordingLink())
        room.join(agent)

        voice = ServerAudioTrack()  # a real track: the phone hears an audio one

        def publish(sid: str, kind: int) -> None:
            # The video's media is a stand-in: the room only relays it.
            media = voice if kind == models.TrackType.AUDIO else object()
            track = PublishedTrack(
                info=models.TrackInfo(sid=sid, name=sid.lower(), type=kind),  # type: ignore[arg-type]
                cid=sid, media=media)  # type: ignore[arg-type]
            agent.tracks[sid] = track
            room.track_arrived(agent, track)

        await lkapi.sip.create_sip_participant(dial())
        await until(lambda: phone.calls, timeout=2)
        publish("TR_voice", models.TrackType.AUDIO)  # while it rings: LiveKit's SIP service
        assert phone.last_call.tracks == []  # subscribes once the call is answered

        await until(lambda: phone.last_call.answered, timeout=2)
        publish("TR_video", models.TrackType.VIDEO)
        assert [(t.publisher, t.sid, t.kind, t.stopped) for t in phone.last_call.tracks] == [
            ("agent", "TR_voice", "audio", False), ("agent", "TR_video", "video", False)]

        room.relay_data(agent, "_reliable", models.DataPacket(
            sip_dtmf=models.SipDTMF(code=1, digit="1")))
        assert [packet.sip_dtmf.digit for packet in phone.last_call.data] == ["1"]
        assert phone.last_call.data[0].participant_identity == "agent"

        room.unpublish(agent, "TR_voice")
        assert [t.stopped for t in phone.last_call.tracks] == [True, False]
        voice.stop()


# Errors of CreateSIPParticipant ----------------------------------------------------------------


def _token(video: api.VideoGrants | None = None, sip: api.SIPGrants | None = None) -> str:
    token = api.AccessToken(KEY, SECRET)
    if video is not None:
        token = token.with_grants(video)
    if sip is not None:
        token = token.with_sip_grants(sip)
    return token.to_jwt()


@pytest.mark.parametrize(
    ("request_fields", "says"),
    [
        ({"sip_trunk_id": ""}, "missing sip trunk id and sip number: set sip_trunk_id"),
        ({"sip_trunk_id": "", "trunk": sip_pb.SIPOutboundConfig()},
         "no outbound hostname specified: set trunk.hostname"),
        ({"sip_call_to": ""}, "missing sip callee number: set sip_call_to"),
        ({"sip_call_to": f"{ALICE}@sip.example.com"},
         "sip_call_to should be a phone number or SIP user, not a full SIP URI"),
        ({"room_name": ""}, "missing room name: set room_name"),
    ],
    ids=["no trunk", "trunk without hostname", "no number", "full URI", "no room"],
)
async def test_an_incomplete_dial_request_is_invalid_argument_and_dials_nothing(
    request_fields: dict[str, Any], says: str
) -> None:
    async with serving() as (server, lkapi):
        phone = server.sip.add_phone(ALICE)
        fields = {"sip_call_to": ALICE, "wait_until_answered": True, **request_fields}
        number = fields.pop("sip_call_to")
        with pytest.raises(api.TwirpError) as raised:
            await lkapi.sip.create_sip_participant(dial(number, **fields))
        assert not isinstance(raised.value, api.SipCallError)
        assert (raised.value.code, raised.value.status) == ("invalid_argument", 400)
        assert says in raised.value.message
        assert phone.calls == [] and server.rooms.list() == []


async def test_dialling_a_number_alone_is_enough_as_in_livekit() -> None:
    async with serving() as (server, lkapi):
        server.sip.add_phone(ALICE)
        await lkapi.sip.create_sip_participant(
            dial(sip_trunk_id="", sip_number=TRUNK_NUMBER, wait_until_answered=True))
        assert await identities(lkapi) == [CALLER]


async def test_dialling_needs_the_sip_call_grant() -> None:
    async with serving() as (server, _):
        phone = server.sip.add_phone(ALICE)
        admin = _token(api.VideoGrants(room_admin=True, room=ROOM, room_create=True),
                       api.SIPGrants(admin=True))
        async with api.LiveKitAPI.with_token(admin, server.url) as client:
            with pytest.raises(api.TwirpError) as raised:
                await client.sip.create_sip_participant(dial(wait_until_answered=True))
        assert (raised.value.code, raised.value.status) == ("unauthenticated", 401)
        assert raised.value.message == (
            "permissions denied: CreateSIPParticipant needs the SIP call grant; "
            "sign the token with SIPGrants(call=True)")
        assert phone.calls == [] and server.rooms.list() == []


# TransferSIPParticipant ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "to", ["tel:+15550122", "sip:+15550122@pbx.example.com", "<sip:+15550122@pbx.example.com>"])
async def test_a_transfer_hands_the_call_over_and_the_participant_leaves(to: str) -> None:
    async with serving() as (server, lkapi):
        observer = await answered_call(server, lkapi)
        first = server.sip.phone(ALICE)
        assert first is not None
        target = server.sip.add_phone("+15550122", answer_after=0.2)

        started = time.monotonic()
        reply = await lkapi.sip.transfer_sip_participant(transfer(to, play_dialtone=True))
        assert time.monotonic() - started >= 0.2  # it rang first
        assert reply.transfer_id.startswith("STR_")
        assert (reply.status, reply.reason) == (
            sip_pb.SIPTransferStatus.STS_TRANSFER_SUCCESSFUL,
            sip_pb.SIPTransferReason.STR_COMPLETED)
        assert (reply.sip_status.code, reply.sip_status.status) == (200, "OK")

        assert await identities(lkapi) == ["agent"]
        assert observer.updates_about(CALLER)[-2:] == [
            ("hangup", "JOINED"), ("hangup", "DISCONNECTED")]
        assert first.last_call.end is CallEnd.TRANSFERRED
        assert first.last_call.transferred_to == to.strip("<>")
        got = target.last_call
        assert got.transferred and got.answered and got.play_dialtone
        assert (got.identity, got.caller, got.call_id) == (CALLER, ALICE, reply.transfer_id)


@pytest.mark.parametrize(
    ("script", "code", "reason", "sip_code", "sip_status"),
    [
        ({"busy": True}, "resource_exhausted", "STR_REJECTED", 486, "Busy Here"),
        ({"rejects": True}, "permission_denied", "STR_REJECTED", 603, "Decline"),
        ({"never_answers": True}, "deadline_exceeded", "STR_RINGING_TIMEOUT", None, None),
    ],
    ids=["busy", "declines", "no answer"],
)
async def test_a_failed_transfer_raises_sip_call_error_and_the_participant_stays(
    script: dict[str, Any], code: str, reason: str, sip_code: int | None, sip_status: str | None
) -> None:
    async with serving() as (server, lkapi):
        observer = await answered_call(server, lkapi)
        target = server.sip.add_phone("+15550122", **script)
        before = len(observer.sent)

        with pytest.raises(api.SipCallError) as raised:
            await lkapi.sip.transfer_sip_participant(
                transfer("tel:+15550122", ringing_timeout=seconds(0.3)))
        error = raised.value
        assert (error.code, error.sip_transfer_reason) == (code, reason)
        assert (error.sip_status_code, error.sip_status) == (sip_code, sip_status)
        assert error.sip_transfer_id is not None and error.sip_transfer_id.startswith("STR_")
        assert f"{CALLER!r} stays in the room" in error.message

        assert await identities(lkapi) == ["agent", CALLER]
        assert len(observer.sent) == before  # no status change: the call goes on
        call = server.sip.call(ROOM, CALLER)
        assert call is not None and call.ended is None
        assert target.last_call.transferred and not target.last_call.answered
        assert target.last_call.call_id == error.sip_transfer_id


async def test_a_transfer_to_an_address_no_phone_has_is_rejected_with_404() -> None:
    async with serving() as (server, lkapi):
        await answered_call(server, lkapi)
        with pytest.raises(api.SipCallError) as raised:
            await lkapi.sip.transfer_sip_participant(transfer("sip:bob@pbx.example.com"))
        assert (raised.value.code, raised.value.sip_status_code) == ("not_found", 404)
        assert raised.value.sip_transfer_reason == "STR_REJECTED"
        assert "register one with server.sip.add_phone" in raised.value.message
        assert await identities(lkapi) == ["agent", CALLER]


async def test_a_sip_kind_client_is_transferred_by_closing_its_connection() -> None:
    async with serving() as (server, lkapi):
        target = server.sip.add_phone("+15550122")
        room = server.create_room(ROOM)
        client = join(room, CALLER, kind=Kind.SIP, attributes={"sip.phoneNumber": ALICE})
        observer = join(room, "agent")

        reply = await lkapi.sip.transfer_sip_participant(transfer("tel:+15550122"))
        assert reply.status == sip_pb.SIPTransferStatus.STS_TRANSFER_SUCCESSFUL
        assert client.closed == [Reason.CLIENT_INITIATED]
        assert await identities(lkapi) == ["agent"]
        assert observer.updates_about(CALLER)[-1][1] == "DISCONNECTED"
        assert (target.last_call.identity, target.last_call.caller) == (CALLER, ALICE)


@pytest.mark.parametrize(
    ("to", "identity", "code", "says"),
    [
        ("tel:+15550122", "agent", "invalid_argument",
         "no SIP session associated with participant 'agent' (kind STANDARD): only SIP "
         "participants can be transferred"),
        ("tel:+15550122", "ghost", "not_found",
         f"participant not found: 'ghost' is not in room {ROOM!r}"),
        ("+15550122", CALLER, "invalid_argument",
         "transfer_to must be a SIP or TEL URI (sip:, sips: or tel:), not '+15550122': "
         "e.g. 'tel:+15550122' or 'sip:+15550122@sip.example.com'"),
        ("", CALLER, "invalid_argument", "missing transfer to: set transfer_to"),
    ],
    ids=["not SIP", "unknown identity", "bare number", "no target"],
)
async def test_a_transfer_that_cannot_be_made_is_refused_and_changes_nothing(
    to: str, identity: str, code: str, says: str
) -> None:
    async with serving() as (server, lkapi):
        observer = await answered_call(server, lkapi)
        target = server.sip.add_phone("+15550122")
        before = len(observer.sent)
        with pytest.raises(api.TwirpError) as raised:
            await lkapi.sip.transfer_sip_participant(transfer(to, identity))
        assert not isinstance(raised.value, api.SipCallError)
        assert raised.value.code == code and says in raised.value.message
        assert await identities(lkapi) == ["agent", CALLER]
        assert target.calls == [] and len(observer.sent) == before


async def test_a_call_still_ringing_cannot_be_transferred() -> None:
    async with serving() as (server, lkapi):
        server.sip.add_phone(ALICE, never_answers=True)
        server.sip.add_phone("+15550122")
        await lkapi.sip.create_sip_participant(dial())
        with pytest.raises(api.TwirpError) as raised:
            await lkapi.sip.transfer_sip_participant(transfer("tel:+15550122"))
        assert raised.value.code == "failed_precondition"
        assert "can't transfer non established call" in raised.value.message
        call = server.sip.call(ROOM, CALLER)
        assert isinstance(call, SimulatedCall) and call.ended is None


@pytest.mark.parametrize(
    ("video", "sip", "says"),
    [
        (api.VideoGrants(room_admin=True, room=ROOM), None,
         "TransferSIPParticipant needs the SIP call grant; sign the token with "
         "SIPGrants(call=True)"),
        (None, api.SIPGrants(call=True),
         "TransferSIPParticipant needs the roomAdmin grant; sign the token with "
         f"VideoGrants(room_admin=True, room={ROOM!r})"),
        (api.VideoGrants(room_admin=True, room="elsewhere"), api.SIPGrants(call=True),
         f"TransferSIPParticipant on room {ROOM!r} needs roomAdmin for that room"),
    ],
    ids=["no SIP call", "no roomAdmin", "another room's admin"],
)
async def test_a_transfer_needs_the_sip_call_grant_and_room_admin(
    video: api.VideoGrants | None, sip: api.SIPGrants | None, says: str
) -> None:
    async with serving() as (server, lkapi):
        await answered_call(server, lkapi)
        target = server.sip.add_phone("+15550122")
        async with api.LiveKitAPI.with_token(_token(video, sip), server.url) as client:
            with pytest.raises(api.TwirpError) as raised:
                await client.sip.transfer_sip_participant(transfer("tel:+15550122"))
        assert (raised.value.code, raised.value.status) == ("unauthenticated", 401)
        assert says in raised.value.message
        assert target.calls == [] and await identities(lkapi) == ["agent", CALLER]


# The phone registry ----------------------------------------------------------------------------


async def test_phones_are_reached_by_number_or_uri_and_scripts_are_checked() -> None:
    async with serving() as (server, _):
        phones = server.sip
        alice = phones.add_phone(ALICE)
        bob = phones.add_phone("sip:bob@pbx.example.com")
        assert phones.phone(f"tel:{ALICE}") is alice
        assert phones.phone(f"<sip:{ALICE}@trunk.example.com;transport=tcp>") is alice
        assert phones.phone("bob@pbx.example.com") is bob
        assert phones.phone("sips:bob@pbx.example.com") is bob
        assert phones.phone("bob@elsewhere.example.com") is None
        with pytest.raises(ValueError, match="one of busy, rejects, never_answers, fails_with"):
            phones.add_phone("+15550133", busy=True, never_answers=True)
        with pytest.raises(ValueError, match="failure response"):
            phones.add_phone("+15550133", fails_with=SIPResponse(200, "OK"))
        with pytest.raises(LookupError, match="got no call"):
            _ = alice.last_call


# With real SDK clients: WebRTC, so a network namespace ---------------------------------------


def test_sdk_clients_see_the_call_and_a_sip_kind_client_is_transferred(run_scenario: Any) -> None:
    result = run_scenario(__file__, "scenario_sdk_clients")
    # The observer's SDK saw the simulated call join as a SIP participant, and each status.
    assert result["kind"] == rtc.ParticipantKind.PARTICIPANT_KIND_SIP
    assert result["statuses"] == ["ringing", "active", "hangup"]
    assert result["attributes"]["sip.phoneNumber"] == ALICE
    # The SIP-kind SDK client was transferred: told to leave, the room saw it go.
    assert result["transferred"] == sip_pb.SIPTransferStatus.STS_TRANSFER_SUCCESSFUL
    assert result["bob_reason"] == Reason.CLIENT_INITIATED
    assert result["left"] == ["sip_bob", CALLER]
    assert result["target_got"] == [["sip_bob", "+15550177"], [CALLER, ALICE]]
    assert result["remaining"] == ["observer"]


async def scenario_sdk_clients() -> dict[str, Any]:
    quiet_logs()
    timeout = 20.0
    async with serving(host="10.99.0.1") as (server, lkapi):
        server.sip.add_phone(ALICE)
        target = server.sip.add_phone("+15550122")
        observer = rtc.Room()
        statuses: list[str] = []
        left: list[str] = []
        observer.on("participant_attributes_changed", lambda changed, p: statuses.append(
            changed["sip.callStatus"]) if p.identity == CALLER else None)
        observer.on("participant_disconnected", lambda p: left.append(p.identity))
        await asyncio.wait_for(observer.connect(server.url, server.token("observer", ROOM)),
                               timeout)

        await lkapi.sip.create_sip_participant(dial(wait_until_answered=True))
        await until(lambda: "active" in statuses)
        seen = observer.remote_participants[CALLER]

        bob = rtc.Room()
        bob_left: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def on_disconnected(reason: int) -> None:
            if not bob_left.done():
                bob_left.set_result(int(reason))

        bob.on("disconnected", on_disconnected)
        token = server.token("sip_bob", ROOM, kind="sip",
                             attributes={"sip.phoneNumber": "+15550177"})
        await asyncio.wait_for(bob.connect(server.url, token), timeout)
        await until(lambda: "sip_bob" in observer.remote_participants)
        reply = await lkapi.sip.transfer_sip_participant(transfer("tel:+15550122", "sip_bob"))
        bob_reason = await asyncio.wait_for(bob_left, timeout)
        await until(lambda: left == ["sip_bob"])

        await lkapi.sip.transfer_sip_participant(transfer("tel:+15550122"))
        await until(lambda: len(left) == 2)
        result = {
            "kind": int(seen.kind),
            "statuses": statuses,
            "attributes": dict(seen.attributes),
            "transferred": int(reply.status),
            "bob_reason": bob_reason,
            "left": left,
            "target_got": [[call.identity, call.caller] for call in target.calls],
            "remaining": await identities(lkapi),
        }
        await observer.disconnect()
        return result
