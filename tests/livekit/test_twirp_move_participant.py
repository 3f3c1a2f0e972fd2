"""RoomService.MoveParticipant on the test server: a SIP call moved from one room to another.

The agent-assisted warm transfer's last step: the human's phone, dialled with
CreateSIPParticipant into a private consultation room, is moved into the caller's room. Every
call goes through the real ``livekit-api`` client (``lkapi.room.move_participant``). The
in-process tests (127.0.0.1) watch the rooms through recording links; the scenario with real
SDK clients (what they see, what they hear, what the phone hears) needs WebRTC, so it runs in
a private network namespace (see flowkit.testing.netns).
"""

from __future__ import annotations

import asyncio
import math
from contextlib import AbstractAsyncContextManager
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from livekit import api, rtc
from livekit.protocol import models
from scenario_kit import (
    TRUNK,
    RecordingLink,
    play_tone_track,
    quiet_logs,
    record_audio,
    server_with_trunk,
    sound_figures,
    until,
)

from flowkit.testing.livekit_server import CallEnd, SimulatedCall, TestLiveKitServer
from flowkit.testing.livekit_server.rooms import Participant, PublishedTrack, Room, new_sid
from flowkit.testing.livekit_server.server_audio import ServerAudioTrack
from flowkit.testing.livekit_server.sip.hearing import HEARD_RATE

KEY = "devkey"
SECRET = "twirp-move-secret-0123456789abcdef"
CONSULT = "consult-room"  # where the agent briefs the human
CALLER_ROOM = "caller-room"  # where the caller waits
SUPERVISOR = "+15550177"
HUMAN = f"sip_{SUPERVISOR}"  # LiveKit's default identity for a dialled number
RATE = 48_000
Kind = models.ParticipantInfo.Kind
Reason = models.DisconnectReason


# Helpers -------------------------------------------------------------------------------------


def serving(host: str = "127.0.0.1") -> AbstractAsyncContextManager[
    tuple[TestLiveKitServer, api.LiveKitAPI]
]:
    """The test server with the outbound trunk TRUNK stored, and a livekit-api client."""
    return server_with_trunk(KEY, SECRET, host)


class TrackLink(RecordingLink):
    """A recording link that also records the tracks the room sends it and stops sending."""

    def __init__(self) -> None:
        super().__init__()
        self.subscribed: list[tuple[str, str]] = []
        self.unsubscribed: list[tuple[str, str]] = []

    def subscribe_track(self, publisher: Participant, track: PublishedTrack) -> None:
        self.subscribed.append((publisher.identity, track.info.sid))

    def unsubscribe_track(self, publisher: Participant, track: PublishedTrack) -> None:
        self.unsubscribed.append((publisher.identity, track.info.sid))

    def infos_about(self, identity: str) -> list[models.ParticipantInfo]:
        """Each participant update about ``identity``, in order."""
        return [
            info
            for response in self.sent
            if response.WhichOneof("message") == "update"
            for info in response.update.participants
            if info.identity == identity
        ]


def join(room: Room, identity: str) -> TrackLink:
    """Put a participant with a recording link in ``room``; its link."""
    link = TrackLink()
    room.join(Participant(sid=new_sid("PA"), identity=identity, link=link))
    return link


def move(
    identity: str = HUMAN, room: str = CONSULT, destination: str = CALLER_ROOM
) -> api.MoveParticipantRequest:
    return api.MoveParticipantRequest(room=room, identity=identity, destination_room=destination)


async def dial_human(lkapi: api.LiveKitAPI, **fields: Any) -> api.SIPParticipantInfo:
    """The human's phone, dialled into the consultation room and answered."""
    return await lkapi.sip.create_sip_participant(api.CreateSIPParticipantRequest(
        sip_trunk_id=TRUNK, sip_call_to=SUPERVISOR, room_name=CONSULT, wait_until_answered=True,
        **fields))


def the_call(server: TestLiveKitServer, room: str = CALLER_ROOM) -> SimulatedCall:
    call = server.sip.call(room, HUMAN)
    assert call is not None
    return call


async def identities(lkapi: api.LiveKitAPI, room: str) -> list[str]:
    listed = await lkapi.room.list_participants(api.ListParticipantsRequest(room=room))
    return [p.identity for p in listed.participants]


def tone(seconds: float, hz: float, rate: int = RATE) -> npt.NDArray[np.int16]:
    """``seconds`` of a sine at ``hz``, mono int16 at ``rate``."""
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * 32767 * np.sin(2 * math.pi * hz * t)).astype(np.int16)


def publish(room: Room, publisher: Participant, sid: str) -> ServerAudioTrack:
    """Publish an audio track ``sid`` for ``publisher`` in ``room``; its media."""
    media = ServerAudioTrack()
    track = PublishedTrack(
        info=models.TrackInfo(sid=sid, name=sid.lower(), type=models.TrackType.AUDIO),
        cid=sid, media=media)
    publisher.tracks[sid] = track
    room.track_arrived(publisher, track)
    return media


# The move --------------------------------------------------------------------------------------


async def test_a_dialled_call_leaves_its_room_and_joins_the_destination_as_it_was() -> None:
    async with serving() as (server, lkapi):
        server.sip.add_phone(SUPERVISOR)
        agent = join(server.create_room(CONSULT), "agent")
        caller = join(server.create_room(CALLER_ROOM), "caller")
        info = await dial_human(
            lkapi, participant_name="Supervisor", participant_metadata='{"desk": 4}',
            participant_attributes={"team": "billing"})
        before = await lkapi.room.get_participant(
            api.RoomParticipantIdentity(room=CONSULT, identity=HUMAN))

        await lkapi.room.move_participant(move())  # an empty reply: livekit-api returns None

        assert await identities(lkapi, CONSULT) == ["agent"]
        assert await identities(lkapi, CALLER_ROOM) == ["caller", HUMAN]
        after = await lkapi.room.get_participant(
            api.RoomParticipantIdentity(room=CALLER_ROOM, identity=HUMAN))
        assert (after.kind, after.name, after.metadata) == (Kind.SIP, "Supervisor", '{"desk": 4}')
        assert dict(after.attributes) == dict(before.attributes)
        assert after.attributes["sip.callStatus"] == "active"
        assert after.attributes["team"] == "billing"
        assert after.sid != before.sid == info.participant_id  # a join: a new session id
        # The consultation room saw it leave; the caller's room saw it join, as it was.
        left = agent.infos_about(HUMAN)[-1]
        assert (left.state, left.sid) == (models.ParticipantInfo.State.DISCONNECTED, before.sid)
        assert left.disconnect_reason == Reason.UNKNOWN_REASON
        joined = caller.infos_about(HUMAN)
        assert len(joined) == 1
        assert (joined[0].state, joined[0].sid, joined[0].kind) == (
            models.ParticipantInfo.State.JOINED, after.sid, Kind.SIP)
        assert dict(joined[0].attributes) == dict(before.attributes)
        assert agent.closed == [] and caller.closed == []
        # The call is in the caller's room now.
        call = the_call(server)
        assert call.room is server.rooms.get(CALLER_ROOM) and call.ended is None
        assert server.sip.call(CONSULT, HUMAN) is None


async def test_the_moved_call_hangs_up_in_the_destination() -> None:
    async with serving() as (server, lkapi):
        phone = server.sip.add_phone(SUPERVISOR, hang_up_after=0.5)
        agent = join(server.create_room(CONSULT), "agent")
        caller = join(server.create_room(CALLER_ROOM), "caller")
        await dial_human(lkapi)
        await lkapi.room.move_participant(move())
        seen_in_consult = len(agent.sent)

        assert await phone.last_call.wait_ended(2.0) is CallEnd.PHONE_HUNG_UP
        assert caller.updates_about(HUMAN) == [
            ("active", "JOINED"), ("hangup", "JOINED"), ("hangup", "DISCONNECTED")]
        assert len(agent.sent) == seen_in_consult  # the consultation room hears nothing more
        assert await identities(lkapi, CALLER_ROOM) == ["caller"]
        assert phone.last_call.room == CONSULT  # the record keeps the room the call came from


@pytest.mark.parametrize(
    ("deleted", "ends"), [(CALLER_ROOM, True), (CONSULT, False)],
    ids=["the destination", "the room it left"])
async def test_deleting_a_room_ends_the_moved_call_only_if_it_is_the_destination(
    deleted: str, ends: bool
) -> None:
    async with serving() as (server, lkapi):
        phone = server.sip.add_phone(SUPERVISOR)
        server.create_room(CONSULT)
        join(server.create_room(CALLER_ROOM), "caller")
        await dial_human(lkapi)
        await lkapi.room.move_participant(move())

        await lkapi.room.delete_room(api.DeleteRoomRequest(room=deleted))
        call = the_call(server)
        if ends:
            assert phone.last_call.end is CallEnd.ROOM_HUNG_UP
            assert phone.last_call.disconnect_reason == Reason.ROOM_DELETED
            assert call.task is not None
            await asyncio.wait_for(call.task, 1)
        else:
            assert phone.last_call.end is None and call.ended is None
            assert await identities(lkapi, CALLER_ROOM) == ["caller", HUMAN]


async def test_the_destination_room_is_created_when_there_is_none() -> None:
    async with serving() as (server, lkapi):
        server.sip.add_phone(SUPERVISOR)
        await dial_human(lkapi)
        await lkapi.room.move_participant(move(destination="new-room"))
        rooms = await lkapi.room.list_rooms(api.ListRoomsRequest())
        assert sorted(room.name for room in rooms.rooms) == [CONSULT, "new-room"]
        assert await identities(lkapi, "new-room") == [HUMAN]
        assert await identities(lkapi, CONSULT) == []


async def test_the_phone_hears_the_destination_and_stops_hearing_the_room_it_left() -> None:
    async with serving() as (server, lkapi):
        phone = server.sip.add_phone(SUPERVISOR)
        consult = server.create_room(CONSULT)
        destination = server.create_room(CALLER_ROOM)
        agent_link, caller_link = TrackLink(), TrackLink()
        agent = Participant(sid=new_sid("PA"), identity="agent", link=agent_link)
        caller = Participant(sid=new_sid("PA"), identity="caller", link=caller_link)
        consult.join(agent)
        destination.join(caller)
        briefing = publish(consult, agent, "TR_briefing")
        voice = publish(destination, caller, "TR_caller")
        await dial_human(lkapi)
        record = phone.last_call
        assert [(t.publisher, t.sid, t.stopped) for t in record.tracks] == [
            ("agent", "TR_briefing", False)]

        await lkapi.room.move_participant(move())
        assert [(t.publisher, t.sid, t.kind, t.stopped) for t in record.tracks] == [
            ("agent", "TR_briefing", "audio", True), ("caller", "TR_caller", "audio", False)]
        # It hears the caller's track: the room's relay decodes it for the phone's ear.
        voice.play(tone(0.3, 440.0), RATE)
        await until(lambda: len(record.tracks[1].heard()) >= HEARD_RATE // 5, timeout=5)

        consult.relay_data(agent, "_reliable", models.DataPacket(
            sip_dtmf=models.SipDTMF(code=1, digit="1")))
        destination.relay_data(caller, "_reliable", models.DataPacket(
            sip_dtmf=models.SipDTMF(code=2, digit="2")))
        assert [packet.sip_dtmf.digit for packet in record.data] == ["2"]
        assert record.data[0].participant_identity == "caller"
        briefing.stop()
        voice.stop()


async def test_the_phones_microphone_is_published_in_the_destination_and_speaks_there() -> None:
    async with serving() as (server, lkapi):
        server.sip.add_phone(SUPERVISOR)
        agent = join(server.create_room(CONSULT), "agent")
        caller = join(server.create_room(CALLER_ROOM), "caller")
        await dial_human(lkapi)
        call = the_call(server, CONSULT)
        call.say(tone(0.1, 440.0), RATE)
        microphone = call.microphone
        assert microphone is not None
        sid = microphone.info.sid
        assert agent.subscribed == [(HUMAN, sid)]

        await lkapi.room.move_participant(move())
        assert agent.unsubscribed == [(HUMAN, sid)]  # relayed no more in the room it left
        assert caller.subscribed == [(HUMAN, sid)]  # relayed to the destination's client
        joined = caller.infos_about(HUMAN)[0]
        assert [(t.sid, t.name, t.source) for t in joined.tracks] == [
            (sid, "phone", models.TrackSource.MICROPHONE)]
        got = await lkapi.room.get_participant(
            api.RoomParticipantIdentity(room=CALLER_ROOM, identity=HUMAN))
        assert [t.sid for t in got.tracks] == [sid] and got.is_publisher

        call.say(tone(0.5, 440.0), RATE)  # the same track, now in the destination
        assert call.microphone is microphone
        assert isinstance(microphone.media, ServerAudioTrack)
        assert microphone.media.pending_seconds >= 0.5
        await lkapi.room.delete_room(api.DeleteRoomRequest(room=CALLER_ROOM))
        assert microphone.media.readyState == "ended"  # the call ended there: unpublished


async def test_an_inbound_call_moves_too() -> None:
    async with serving() as (server, lkapi):
        await lkapi.sip.create_dispatch_rule(api.CreateSIPDispatchRuleRequest(
            dispatch_rule=api.SIPDispatchRuleInfo(rule=api.SIPDispatchRule(
                dispatch_rule_direct=api.SIPDispatchRuleDirect(room_name=CONSULT)))))
        inbound = await server.sip.call_in("+15550100", "+15551234")
        caller = join(server.create_room(CALLER_ROOM), "caller")
        identity = inbound.participant.identity
        await lkapi.room.move_participant(move(identity))
        assert caller.updates_about(identity) == [("active", "JOINED")]
        inbound.hang_up()
        assert caller.updates_about(identity)[-1] == ("hangup", "DISCONNECTED")


# Refusals --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_fields", "code", "says"),
    [
        ({"room": "nowhere"}, "not_found", "requested room does not exist: 'nowhere'"),
        ({"identity": "ghost"}, "not_found",
         f"participant not found: 'ghost' is not in room {CONSULT!r} (present: agent, {HUMAN})"),
        ({"destination": CONSULT}, "invalid_argument",
         f"destination room cannot be the same as source room ({CONSULT!r})"),
        ({"destination": ""}, "invalid_argument",
         f"no room name: set destination_room to the room to move {HUMAN!r} to"),
        ({"identity": "caller", "room": CALLER_ROOM, "destination": CONSULT}, "unimplemented",
         "the flowkit test server for SIP participants only"),
    ],
    ids=["unknown room", "unknown identity", "same room", "no destination", "not SIP"],
)
async def test_a_move_that_cannot_be_made_is_refused_and_changes_nothing(
    request_fields: dict[str, str], code: str, says: str
) -> None:
    async with serving() as (server, lkapi):
        server.sip.add_phone(SUPERVISOR)
        agent = join(server.create_room(CONSULT), "agent")
        join(server.create_room(CALLER_ROOM), "caller")
        await dial_human(lkapi)
        seen = len(agent.sent)

        with pytest.raises(api.TwirpError) as raised:
            await lkapi.room.move_participant(move(**request_fields))
        assert raised.value.code == code
        assert says in raised.value.message
        assert await identities(lkapi, CONSULT) == ["agent", HUMAN]
        assert await identities(lkapi, CALLER_ROOM) == ["caller"]
        assert len(agent.sent) == seen
        assert [room.name for room in server.rooms.list()] == [CONSULT, CALLER_ROOM]


async def test_an_identity_already_in_the_destination_is_already_exists() -> None:
    async with serving() as (server, lkapi):
        server.sip.add_phone(SUPERVISOR)
        server.create_room(CONSULT)
        namesake = join(server.create_room(CALLER_ROOM), HUMAN)
        await dial_human(lkapi)
        with pytest.raises(api.TwirpError) as raised:
            await lkapi.room.move_participant(move())
        assert (raised.value.code, raised.value.status) == ("already_exists", 409)
        assert f"{HUMAN!r} is in room {CALLER_ROOM!r}; remove it there first" in (
            raised.value.message)
        assert namesake.closed == []  # not replaced, as a join would replace it
        assert await identities(lkapi, CONSULT) == [HUMAN]


def _token(video: api.VideoGrants) -> str:
    return api.AccessToken(KEY, SECRET).with_grants(video).to_jwt()


@pytest.mark.parametrize(
    ("video", "says"),
    [
        (api.VideoGrants(room_admin=True, room=CONSULT),
         f"MoveParticipant to room {CALLER_ROOM!r} needs the destinationRoom grant naming that "
         f"room, and the token has none; sign it with VideoGrants(room_admin=True, "
         f"room={CONSULT!r}, destination_room={CALLER_ROOM!r})"),
        (api.VideoGrants(room_admin=True, room=CONSULT, destination_room="elsewhere"),
         "and the token's names room 'elsewhere'"),
        (api.VideoGrants(room_admin=True, room=CALLER_ROOM, destination_room=CALLER_ROOM),
         f"MoveParticipant on room {CONSULT!r} needs roomAdmin for that room"),
        (api.VideoGrants(room=CONSULT, destination_room=CALLER_ROOM),
         "MoveParticipant needs the roomAdmin grant"),
    ],
    ids=["no destinationRoom", "another destination", "another room's admin", "no roomAdmin"],
)
async def test_a_move_needs_room_admin_and_the_destination_room_grant(
    video: api.VideoGrants, says: str
) -> None:
    async with serving() as (server, lkapi):
        server.sip.add_phone(SUPERVISOR)
        server.create_room(CONSULT)
        await dial_human(lkapi)
        async with api.LiveKitAPI.with_token(_token(video), server.url) as client:
            with pytest.raises(api.TwirpError) as raised:
                await client.room.move_participant(move())
        assert (raised.value.code, raised.value.status) == ("unauthenticated", 401)
        assert says in raised.value.message
        assert await identities(lkapi, CONSULT) == [HUMAN]
        assert CALLER_ROOM not in server.rooms


# With real SDK clients: WebRTC, so a network namespace ---------------------------------------


def test_sdk_clients_see_the_move_hear_the_phone_and_the_phone_hears_the_caller(
    run_scenario: Any,
) -> None:
    result = run_scenario(__file__, "scenario_warm_transfer")
    # The consultation room's client saw the human leave, with no disconnect reason.
    assert result["consult_left"] == [HUMAN]
    assert result["consult_reason"] is None
    # The caller's client saw the human join as it was: kind SIP, name, attributes.
    assert result["caller_joined"] == [HUMAN]
    assert result["joined"]["kind"] == rtc.ParticipantKind.PARTICIPANT_KIND_SIP
    assert result["joined"]["name"] == "Supervisor"
    assert result["joined"]["attributes"] == result["attributes_before"]
    assert result["joined"]["attributes"]["sip.callStatus"] == "active"
    # It subscribed to the phone's microphone and hears what the phone says after the move.
    assert result["track"] == {"publisher": HUMAN, "name": "phone",
                               "source": rtc.TrackSource.SOURCE_MICROPHONE}
    assert result["same_track"]  # the track it published before the move
    assert result["phone_tone"]["rms"] > 2000, result
    assert abs(result["phone_tone"]["peak_hz"] - 440.0) < 10, result
    # The phone heard nothing of the caller before the move, and the caller's mic after it.
    assert result["phone_before"] == []
    assert result["phone_sent"] == ["caller", "mic", "audio", False]
    assert result["caller_tone"]["rms"] > 2000, result
    assert abs(result["caller_tone"]["peak_hz"] - 660.0) < 10, result
    # An SDK client is not moved: the refusal says what to do instead.
    assert result["client_refused"][0] == "unimplemented"
    assert "is an SDK client (kind STANDARD, connected over WebRTC)" in (
        result["client_refused"][1])
    assert f"Connect the client to {CALLER_ROOM!r} with a token for that room" in (
        result["client_refused"][1])


async def scenario_warm_transfer() -> dict[str, Any]:
    quiet_logs()
    timeout = 20.0
    async with serving(host="10.99.0.1") as (server, lkapi):
        phone = server.sip.add_phone(SUPERVISOR)
        consult, caller = rtc.Room(), rtc.Room()
        consult_left: list[rtc.RemoteParticipant] = []
        caller_joined: list[rtc.RemoteParticipant] = []
        subscribed: list[tuple[rtc.Track, rtc.RemoteTrackPublication, str]] = []
        consult.on("participant_disconnected", consult_left.append)
        caller.on("participant_connected", caller_joined.append)
        caller.on("track_subscribed", lambda track, pub, participant: subscribed.append(
            (track, pub, participant.identity)))
        await asyncio.wait_for(consult.connect(server.url, server.token("agent", CONSULT)),
                               timeout)
        await asyncio.wait_for(caller.connect(server.url, server.token("caller", CALLER_ROOM)),
                               timeout)
        playing = await play_tone_track(caller, 660.0, 6.0)
        caller_room = server.rooms.get(CALLER_ROOM)
        assert caller_room is not None
        # Its media on the server before the move, so that the phone is sent it by the move,
        # not by the track arriving afterwards.
        await until(lambda: any(
            t.media is not None for t in caller_room.participants["caller"].tracks.values()))

        await dial_human(lkapi, participant_name="Supervisor",
                         participant_attributes={"team": "billing"})
        await until(lambda: HUMAN in consult.remote_participants and consult.remote_participants[
            HUMAN].attributes.get("sip.callStatus") == "active")
        attributes_before = dict(consult.remote_participants[HUMAN].attributes)
        call = the_call(server, CONSULT)
        call.say(tone(0.2, 440.0), RATE)  # published while in the consultation room
        assert call.microphone is not None
        microphone = call.microphone.info.sid
        record = phone.last_call
        phone_before = [t.publisher for t in record.tracks]

        await lkapi.room.move_participant(move())
        # At once, so it follows what is left of the first tone without a gap: nobody reads
        # the track until the caller's client is sent it.
        call.say(tone(1.5, 440.0), RATE)
        await until(lambda: consult_left and caller_joined and subscribed)
        track, publication, publisher = subscribed[0]
        heard = await record_audio(track, 0.8, RATE)

        def loud_seconds() -> float:
            mine = [t for t in record.tracks if t.publisher == "caller"]
            if not mine:
                return 0.0
            got = mine[0].heard()
            loud = np.flatnonzero(np.abs(got) > 2000)
            return (len(got) - int(loud[0])) / HEARD_RATE if len(loud) else 0.0

        await until(lambda: loud_seconds() >= 0.8)
        sent = next(t for t in record.tracks if t.publisher == "caller")
        got = sent.heard()
        start = int(np.flatnonzero(np.abs(got) > 2000)[0]) + HEARD_RATE // 10

        try:
            await lkapi.room.move_participant(move("agent", CONSULT, CALLER_ROOM))
            client_refused = ["", "moved"]
        except api.TwirpError as refused:
            client_refused = [refused.code, refused.message]

        joined = caller_joined[0]
        result = {
            "consult_left": [p.identity for p in consult_left],
            "consult_reason": consult_left[0].disconnect_reason,
            "caller_joined": [p.identity for p in caller_joined],
            "attributes_before": attributes_before,
            "joined": {"kind": int(joined.kind), "name": joined.name,
                       "attributes": dict(joined.attributes)},
            "track": {"publisher": publisher, "name": publication.name,
                      "source": int(publication.source)},
            "same_track": publication.sid == microphone,
            "phone_tone": sound_figures(heard[RATE // 20: RATE // 20 + RATE // 2], RATE),
            "phone_before": phone_before,
            "phone_sent": [sent.publisher, sent.name, sent.kind, sent.stopped],
            "caller_tone": sound_figures(got[start: start + HEARD_RATE // 2], HEARD_RATE),
            "client_refused": client_refused,
        }
        playing.cancel()
        await consult.disconnect()
        await caller.disconnect()
        return result

