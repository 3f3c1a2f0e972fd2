"""CreateSIPParticipant through the outbound trunks stored on the test server, as in LiveKit.

Everything goes through the real ``livekit-api`` client (``lkapi.sip``, ``lkapi.room``). A call
whose ``sip_trunk_id`` names a stored outbound trunk goes out through it: its address is the
participant's ``sip.hostname``, its numbers the From number (``sip.trunkPhoneNumber``) unless
the request sets ``sip_number``, its headers go in the INVITE (the simulated phone records
them) and its ``headers_to_attributes``/``include_headers`` turn the phone's answer headers
into attributes. An unknown trunk id is refused, ``not_found``, as LiveKit refuses it; an
inline ``trunk`` still works, with a ``sip_number``. The participants in the room are
recording links, so everything runs in-process on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from livekit import api
from livekit.protocol import sip as sip_pb
from scenario_kit import RecordingLink, server_with_api

from flowkit.testing.livekit_server import TestLiveKitServer
from flowkit.testing.livekit_server.rooms import Participant, new_sid
from flowkit.testing.livekit_server.sip import ProvisioningError

KEY = "devkey"
SECRET = "sip-outbound-secret-0123456789abcdef"
ROOM = "call-room"
ALICE = "+15550100"
CALLER = f"sip_{ALICE}"
PROVIDER = "sip.provider.example"
FIRST = "+15550001"
SECOND = "+15550002"
Options = sip_pb.SIPHeaderOptions


@asynccontextmanager
async def serving() -> AsyncIterator[tuple[TestLiveKitServer, api.LiveKitAPI]]:
    """The test server, with Alice's phone (answering at once), and a livekit-api client."""
    async with server_with_api(KEY, SECRET) as (server, lkapi):
        server.sip.add_phone(ALICE)
        yield server, lkapi


async def new_trunk(lkapi: api.LiveKitAPI, **fields: Any) -> str:
    """The id of a new outbound trunk (at PROVIDER, from FIRST unless ``fields`` say)."""
    fields = {"address": PROVIDER, "numbers": [FIRST], **fields}
    created = await lkapi.sip.create_outbound_trunk(api.CreateSIPOutboundTrunkRequest(
        trunk=api.SIPOutboundTrunkInfo(**fields)))
    return created.sip_trunk_id


def dial(**fields: Any) -> api.CreateSIPParticipantRequest:
    fields.setdefault("room_name", ROOM)
    fields.setdefault("wait_until_answered", True)
    return api.CreateSIPParticipantRequest(sip_call_to=ALICE, **fields)


async def attributes(lkapi: api.LiveKitAPI, identity: str = CALLER) -> dict[str, str]:
    got = await lkapi.room.get_participant(api.RoomParticipantIdentity(room=ROOM,
                                                                       identity=identity))
    return dict(got.attributes)


async def refused(lkapi: api.LiveKitAPI, request: api.CreateSIPParticipantRequest) -> Any:
    """The Twirp error CreateSIPParticipant answers ``request`` with."""
    with pytest.raises(api.TwirpError) as raised:
        await lkapi.sip.create_sip_participant(request)
    assert not isinstance(raised.value, api.SipCallError)  # refused before dialling
    return raised.value


# A stored trunk ------------------------------------------------------------------------------


async def test_a_call_through_a_stored_trunk_comes_from_its_number_and_address() -> None:
    async with serving() as (server, lkapi):
        trunk = await new_trunk(lkapi)
        info = await lkapi.sip.create_sip_participant(dial(sip_trunk_id=trunk))

        assert await attributes(lkapi) == {
            "sip.callID": info.sip_call_id,
            "sip.callStatus": "active",
            "sip.hostname": PROVIDER,
            "sip.phoneNumber": ALICE,
            "sip.trunkID": trunk,
            "sip.trunkPhoneNumber": FIRST,
        }
        call = server.sip.phones[ALICE].last_call
        assert (call.caller, call.host) == (FIRST, PROVIDER)


async def test_without_sip_number_the_call_comes_from_any_of_the_trunks_numbers() -> None:
    async with serving() as (server, lkapi):
        trunk = await new_trunk(lkapi, numbers=[FIRST, SECOND])
        for i in range(24):  # LiveKit picks one at random: both show (all but surely)
            await lkapi.sip.create_sip_participant(dial(
                sip_trunk_id=trunk, participant_identity=f"callee-{i}"))
        calls = server.sip.phones[ALICE].calls
        assert {call.caller for call in calls} == {FIRST, SECOND}
        for i, call in enumerate(calls):
            assert (await attributes(lkapi, f"callee-{i}"))["sip.trunkPhoneNumber"] == (
                call.caller)


async def test_sip_number_chooses_the_from_number_and_is_used_as_given() -> None:
    async with serving() as (server, lkapi):
        trunk = await new_trunk(lkapi, numbers=[FIRST, SECOND])
        for i in range(8):
            await lkapi.sip.create_sip_participant(dial(
                sip_trunk_id=trunk, sip_number=SECOND, participant_identity=f"callee-{i}"))
        assert [call.caller for call in server.sip.phones[ALICE].calls] == [SECOND] * 8
        assert (await attributes(lkapi, "callee-7"))["sip.trunkPhoneNumber"] == SECOND

        # LiveKit does not check sip_number against the trunk's numbers (the provider may).
        await lkapi.sip.create_sip_participant(dial(
            sip_trunk_id=trunk, sip_number="+15559999", participant_identity="other"))
        assert (await attributes(lkapi, "other"))["sip.trunkPhoneNumber"] == "+15559999"
        assert server.sip.phones[ALICE].last_call.caller == "+15559999"


async def test_a_hidden_phone_number_leaves_out_the_trunks_number_and_address() -> None:
    async with serving() as (_, lkapi):
        trunk = await new_trunk(lkapi)
        await lkapi.sip.create_sip_participant(dial(sip_trunk_id=trunk, hide_phone_number=True))
        assert set(await attributes(lkapi)) == {"sip.callID", "sip.callStatus", "sip.trunkID"}


async def test_a_stored_trunk_wins_over_an_inline_one() -> None:
    async with serving() as (server, lkapi):
        trunk = await new_trunk(lkapi)
        await lkapi.sip.create_sip_participant(dial(
            sip_trunk_id=trunk, trunk=sip_pb.SIPOutboundConfig(hostname="inline.example.com")))
        got = await attributes(lkapi)
        assert (got["sip.hostname"], got["sip.trunkPhoneNumber"]) == (PROVIDER, FIRST)
        assert server.sip.phones[ALICE].last_call.host == PROVIDER


async def test_the_next_call_goes_through_the_trunk_as_updated() -> None:
    async with serving() as (_, lkapi):
        trunk = await new_trunk(lkapi)
        await lkapi.sip.update_outbound_trunk_fields(
            trunk, address="sip.other.example", numbers=[SECOND])
        await lkapi.sip.create_sip_participant(dial(sip_trunk_id=trunk))
        got = await attributes(lkapi)
        assert (got["sip.hostname"], got["sip.trunkPhoneNumber"]) == (
            "sip.other.example", SECOND)


async def test_a_twilio_number_without_a_plus_gets_one_as_livekit_adds_it() -> None:
    async with serving() as (server, lkapi):
        trunk = await new_trunk(lkapi, address="acme.pstn.twilio.com", numbers=["15550001"])
        await lkapi.sip.create_sip_participant(dial(sip_trunk_id=trunk))
        assert (await attributes(lkapi))["sip.trunkPhoneNumber"] == "+15550001"
        assert server.sip.phones[ALICE].last_call.caller == "+15550001"


async def test_a_trunk_stored_under_a_chosen_id_is_dialled_through_by_that_id() -> None:
    async with serving() as (server, lkapi):
        kept = server.sip.provisioning.add_outbound_trunk(api.SIPOutboundTrunkInfo(
            sip_trunk_id="ST_configured", address=PROVIDER, numbers=[SECOND]))
        assert kept.sip_trunk_id == "ST_configured"
        listed = await lkapi.sip.list_outbound_trunk(api.ListSIPOutboundTrunkRequest())
        assert [t.sip_trunk_id for t in listed.items] == ["ST_configured"]
        await lkapi.sip.create_sip_participant(dial(sip_trunk_id="ST_configured"))
        assert (await attributes(lkapi))["sip.trunkID"] == "ST_configured"

        with pytest.raises(ProvisioningError, match="'ST_configured' exists already") as taken:
            server.sip.provisioning.add_outbound_trunk(api.SIPOutboundTrunkInfo(
                sip_trunk_id="ST_configured", address=PROVIDER, numbers=[FIRST]))
        assert taken.value.code == "already_exists"
        with pytest.raises(ProvisioningError, match="no outbound address specified"):
            server.sip.provisioning.add_outbound_trunk(api.SIPOutboundTrunkInfo(
                sip_trunk_id="ST_other", numbers=[FIRST]))


# Headers -------------------------------------------------------------------------------------


async def test_the_trunks_headers_go_in_the_invite_and_the_requests_win() -> None:
    async with serving() as (server, lkapi):
        trunk = await new_trunk(lkapi, headers={"X-Org": "acme", "X-Tier": "basic"})
        await lkapi.sip.create_sip_participant(dial(
            sip_trunk_id=trunk, headers={"X-Tier": "gold", "X-Campaign": "spring"}))
        assert server.sip.phones[ALICE].last_call.headers == {
            "X-Org": "acme", "X-Tier": "gold", "X-Campaign": "spring"}


async def test_the_answers_headers_become_attributes_as_the_trunk_maps_them() -> None:
    async with serving() as (server, lkapi):
        server.sip.add_phone(ALICE, answer_headers={
            "X-Account": "42", "X-Region": "eu", "P-Asserted-Identity": "<sip:alice@carrier>"})
        observer = RecordingLink()
        server.create_room(ROOM).join(Participant(sid=new_sid("PA"), identity="agent",
                                                  link=observer))
        trunk = await new_trunk(lkapi, headers_to_attributes={"x-account": "account"},
                                include_headers=Options.SIP_X_HEADERS)
        await lkapi.sip.create_sip_participant(dial(sip_trunk_id=trunk))
        got = await attributes(lkapi)
        assert got["account"] == "42"  # header names ignore case
        assert {key: value for key, value in got.items() if key.startswith("sip.h.")} == {
            "sip.h.x-account": "42", "sip.h.x-region": "eu"}
        # As in LiveKit, they are there by the time the call turns active.
        active = next(info for response in observer.sent
                      if response.WhichOneof("message") == "update"
                      for info in response.update.participants
                      if info.identity == CALLER and info.attributes["sip.callStatus"] == "active")
        assert active.attributes["account"] == "42"

        # The request's include_headers wins over the trunk's.
        await lkapi.sip.create_sip_participant(dial(
            sip_trunk_id=trunk, include_headers=Options.SIP_ALL_HEADERS,
            participant_identity="all"))
        assert (await attributes(lkapi, "all"))["sip.h.p-asserted-identity"] == (
            "<sip:alice@carrier>")


async def test_an_inline_trunks_headers_to_attributes_apply_too() -> None:
    async with serving() as (server, lkapi):
        server.sip.add_phone(ALICE, answer_headers={"X-Account": "7"})
        await lkapi.sip.create_sip_participant(dial(
            sip_number=FIRST, trunk=sip_pb.SIPOutboundConfig(
                hostname="inline.example.com", headers_to_attributes={"X-Account": "account"})))
        got = await attributes(lkapi)
        assert got["account"] == "7"
        assert not any(key.startswith("sip.h.") for key in got)  # SIP_NO_HEADERS: none


# Inline trunks, and refusals -----------------------------------------------------------------


async def test_an_inline_trunk_still_works_with_a_sip_number() -> None:
    async with serving() as (server, lkapi):
        await lkapi.sip.create_sip_participant(dial(
            sip_number=FIRST, trunk=sip_pb.SIPOutboundConfig(hostname="inline.example.com")))
        got = await attributes(lkapi)
        assert (got["sip.hostname"], got["sip.trunkPhoneNumber"]) == (
            "inline.example.com", FIRST)
        assert "sip.trunkID" not in got
        assert server.sip.phones[ALICE].last_call.host == "inline.example.com"


async def test_an_inline_trunk_without_sip_number_has_no_number_to_call_from() -> None:
    async with serving() as (server, lkapi):
        error = await refused(lkapi, dial(
            trunk=sip_pb.SIPOutboundConfig(hostname="inline.example.com")))
        assert (error.code, error.status) == ("failed_precondition", 412)
        assert error.message.startswith("no numbers on outbound trunk: ")
        assert "set sip_number" in error.message
        assert server.sip.phones[ALICE].calls == [] and server.rooms.list() == []


async def test_an_unknown_trunk_id_is_not_found_naming_the_trunks_and_the_remedy() -> None:
    async with serving() as (server, lkapi):
        trunk = await new_trunk(lkapi)
        error = await refused(lkapi, dial(sip_trunk_id="ST_madeup"))
        assert (error.code, error.status) == ("not_found", 404)
        assert error.message.startswith(
            "requested sip trunk does not exist: no outbound trunk has the id 'ST_madeup'")
        assert f"(the outbound trunks are: {trunk})" in error.message
        assert "CreateSIPOutboundTrunk" in error.message
        assert "inline SIPOutboundConfig(hostname=...)" in error.message
        # Refused before anything is made: no room, no call.
        assert server.sip.phones[ALICE].calls == [] and server.rooms.list() == []

        # An inline trunk does not stand in for a stored one that is missing.
        error = await refused(lkapi, dial(
            sip_trunk_id="ST_madeup", sip_number=FIRST,
            trunk=sip_pb.SIPOutboundConfig(hostname="inline.example.com")))
        assert error.code == "not_found"


async def test_an_inbound_or_deleted_trunk_cannot_place_a_call() -> None:
    async with serving() as (_, lkapi):
        inbound = await lkapi.sip.create_inbound_trunk(api.CreateSIPInboundTrunkRequest(
            trunk=api.SIPInboundTrunkInfo(numbers=[FIRST])))
        error = await refused(lkapi, dial(sip_trunk_id=inbound.sip_trunk_id))
        assert error.code == "not_found"
        assert "an inbound trunk's, which only takes calls in" in error.message
        assert "(the outbound trunks are: none)" in error.message

        trunk = await new_trunk(lkapi)
        await lkapi.sip.delete_trunk(api.DeleteSIPTrunkRequest(sip_trunk_id=trunk))
        error = await refused(lkapi, dial(sip_trunk_id=trunk))
        assert error.code == "not_found"


async def test_the_request_is_checked_before_its_trunk_is_looked_up() -> None:
    async with serving() as (_, lkapi):
        error = await refused(lkapi, dial(sip_trunk_id="ST_madeup", room_name=""))
        assert (error.code, error.message) == (
            "invalid_argument", "missing room name: set room_name to the room to call into")


@pytest.mark.parametrize(
    ("inline", "says"),
    [
        ({"hostname": "sip:inline.example.com"}, "trunk hostname should be a hostname or IP"),
        ({"hostname": "inline.example.com;transport=tcp"},
         "trunk hostname should not contain transport parameter"),
        ({"hostname": "inline.example.com", "from_host": "me@example.com"},
         "from_host should be a hostname or IP"),
    ],
    ids=["SIP URI", "transport", "from_host URI"],
)
async def test_an_inline_trunks_host_must_be_a_host(inline: dict[str, str], says: str) -> None:
    async with serving() as (server, lkapi):
        error = await refused(lkapi, dial(
            sip_number=FIRST, trunk=sip_pb.SIPOutboundConfig(**inline)))
        assert error.code == "invalid_argument"
        assert error.message.startswith(says)
        assert server.rooms.list() == []


async def test_the_api_clients_own_trunk_arguments_reach_the_stored_trunk() -> None:
    # livekit-api's create_sip_participant(trunk_id=...) fills sip_trunk_id.
    async with serving() as (_, lkapi):
        trunk = await new_trunk(lkapi)
        await lkapi.sip.create_sip_participant(dial(), trunk_id=trunk)
        assert (await attributes(lkapi))["sip.trunkID"] == trunk

