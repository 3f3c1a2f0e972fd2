"""Inbound SIP calls and SIP provisioning (trunks, dispatch rules) on the test server.

Trunks and dispatch rules are made through the real ``livekit-api`` client (``lkapi.sip``);
calls come in with ``server.sip.call_in``, and what they did is read back through the server
API (rooms, participants, dispatches). The SIP participants are simulated calls, without
WebRTC, so these tests run in-process on 127.0.0.1; one scenario has an SDK client watch a
call come in, in a private network namespace (see flowkit.testing.netns).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from livekit import api, rtc
from livekit.protocol import models
from scenario_kit import RecordingLink, quiet_logs, server_with_api, until

from flowkit.testing.livekit_server import (
    CallEnd,
    InboundCall,
    InboundCallError,
    SimulatedSIP,
    TestLiveKitServer,
)
from flowkit.testing.livekit_server.agents import AgentDispatcher
from flowkit.testing.livekit_server.rooms import Participant, PublishedTrack, Rooms, new_sid
from flowkit.testing.livekit_server.server_audio import ServerAudioTrack
from flowkit.testing.livekit_server.sip.inbound import address_allowed

KEY = "devkey"
SECRET = "sip-inbound-secret-0123456789abcdef"
CALLER = "+15550100"
NUMBER = "+15551234"
Kind = models.ParticipantInfo.Kind
Reason = models.DisconnectReason
Rule = api.SIPDispatchRule


# Helpers -------------------------------------------------------------------------------------


def serving(
    host: str = "127.0.0.1", *, dispatcher: bool = False
) -> AbstractAsyncContextManager[tuple[TestLiveKitServer, api.LiveKitAPI]]:
    """The test server (agent dispatch mounted if asked) and a livekit-api client for it."""
    agents = AgentDispatcher().mount if dispatcher else None
    return server_with_api(KEY, SECRET, host, agents=agents)


async def inbound_trunk(
    lkapi: api.LiveKitAPI, *numbers: str, default: bool = False, **fields: Any
) -> str:
    """A new inbound trunk for ``numbers`` (none given: NUMBER; none at all if ``default``)."""
    listed = list(numbers) or ([] if default else [NUMBER])
    trunk = api.SIPInboundTrunkInfo(numbers=listed, **fields)
    created = await lkapi.sip.create_inbound_trunk(api.CreateSIPInboundTrunkRequest(trunk=trunk))
    return created.sip_trunk_id


async def dispatch_rule(lkapi: api.LiveKitAPI, rule: api.SIPDispatchRule, **fields: Any) -> str:
    """A new dispatch rule (sent in ``dispatch_rule``, as new clients do); its id."""
    info = api.SIPDispatchRuleInfo(rule=rule, **fields)
    created = await lkapi.sip.create_dispatch_rule(
        api.CreateSIPDispatchRuleRequest(dispatch_rule=info))
    return created.sip_dispatch_rule_id


def direct(room: str, pin: str = "") -> api.SIPDispatchRule:
    return Rule(dispatch_rule_direct=api.SIPDispatchRuleDirect(room_name=room, pin=pin))


def individual(prefix: str = "", **fields: Any) -> api.SIPDispatchRule:
    return Rule(dispatch_rule_individual=api.SIPDispatchRuleIndividual(room_prefix=prefix,
                                                                       **fields))


def callee(prefix: str = "", **fields: Any) -> api.SIPDispatchRule:
    return Rule(dispatch_rule_callee=api.SIPDispatchRuleCallee(room_prefix=prefix, **fields))


async def rooms(lkapi: api.LiveKitAPI) -> list[str]:
    listed = await lkapi.room.list_rooms(api.ListRoomsRequest())
    return [room.name for room in listed.rooms]


async def participants(lkapi: api.LiveKitAPI, room: str) -> dict[str, models.ParticipantInfo]:
    listed = await lkapi.room.list_participants(api.ListParticipantsRequest(room=room))
    return {p.identity: p for p in listed.participants}


def _token(sip: api.SIPGrants) -> str:
    return api.AccessToken(KEY, SECRET).with_sip_grants(sip).to_jwt()


def join(room: Any, identity: str) -> tuple[Participant, RecordingLink]:
    link = RecordingLink()
    participant = Participant(sid=new_sid("PA"), identity=identity, link=link)
    room.join(participant)
    return participant, link


# Provisioning: trunks --------------------------------------------------------------------------


async def test_trunks_are_created_listed_filtered_and_deleted() -> None:
    async with serving() as (server, lkapi):
        sip = lkapi.sip
        main = await sip.create_inbound_trunk(api.CreateSIPInboundTrunkRequest(
            trunk=api.SIPInboundTrunkInfo(name="main", numbers=[NUMBER], metadata="m")))
        vip = await inbound_trunk(lkapi, "+15559999", allowed_numbers=[CALLER])
        out = await sip.create_outbound_trunk(api.CreateSIPOutboundTrunkRequest(
            trunk=api.SIPOutboundTrunkInfo(name="out", address="sip.example.com",
                                           numbers=["+15550000"])))
        assert main.sip_trunk_id.startswith("ST_") and out.sip_trunk_id.startswith("ST_")
        assert len({main.sip_trunk_id, vip, out.sip_trunk_id}) == 3
        assert (main.name, list(main.numbers), main.metadata) == ("main", [NUMBER], "m")

        listed = await sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest())
        assert [t.sip_trunk_id for t in listed.items] == [main.sip_trunk_id, vip]
        assert list(listed.items[1].allowed_numbers) == [CALLER]
        # Numbers compare as LiveKit compares them: normalised.
        by_number = await sip.list_inbound_trunk(
            api.ListSIPInboundTrunkRequest(numbers=["+1 (555) 123-4"]))
        assert [t.sip_trunk_id for t in by_number.items] == [main.sip_trunk_id]
        by_id = await sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest(trunk_ids=[vip]))
        assert [t.sip_trunk_id for t in by_id.items] == [vip]
        outbound = await sip.list_outbound_trunk(api.ListSIPOutboundTrunkRequest())
        assert [(t.sip_trunk_id, t.address, list(t.numbers)) for t in outbound.items] == [
            (out.sip_trunk_id, "sip.example.com", ["+15550000"])]
        none = await sip.list_outbound_trunk(api.ListSIPOutboundTrunkRequest(numbers=[NUMBER]))
        assert list(none.items) == []

        deleted = await sip.delete_trunk(api.DeleteSIPTrunkRequest(sip_trunk_id=main.sip_trunk_id))
        assert deleted.sip_trunk_id == main.sip_trunk_id
        await sip.delete_trunk(api.DeleteSIPTrunkRequest(sip_trunk_id=out.sip_trunk_id))
        assert list(server.sip.provisioning.inbound_trunks) == [vip]
        assert server.sip.provisioning.outbound_trunks == {}

        with pytest.raises(api.TwirpError) as raised:
            await sip.delete_trunk(api.DeleteSIPTrunkRequest(sip_trunk_id=main.sip_trunk_id))
        assert (raised.value.code, raised.value.status) == ("not_found", 404)
        assert f"requested SIP trunk does not exist: {main.sip_trunk_id!r}" in (
            raised.value.message)


@pytest.mark.parametrize(
    ("first", "second", "refused"),
    [
        ({}, {}, f"would both take calls to the number {NUMBER} from any caller"),
        ({"allowed_numbers": [CALLER, "+15550111"]}, {"allowed_numbers": ["+1 555 0100"]},
         f"would both take calls to the number {NUMBER} from the caller {CALLER}"),
        ({"allowed_numbers": [CALLER]}, {"allowed_numbers": ["+15550111"]}, None),
        ({"allowed_numbers": [CALLER]}, {}, None),  # the one with callers is more specific
        ({"numbers": ["+15559999"]}, {}, None),
        ({"numbers": [], "auth_username": "a", "auth_password": "p"},
         {"numbers": [], "allowed_addresses": ["10.0.0.1"]},
         "would both take calls to any number (neither sets numbers) from any caller"),
    ],
    ids=["same number", "common caller", "other callers", "callers vs any", "other number",
         "two defaults"],
)
async def test_inbound_trunks_that_would_take_the_same_calls_are_refused(
    first: dict[str, Any], second: dict[str, Any], refused: str | None
) -> None:
    async with serving() as (server, lkapi):
        first = {"numbers": [NUMBER], **first}
        second = {"numbers": [NUMBER], **second}
        existing = await lkapi.sip.create_inbound_trunk(api.CreateSIPInboundTrunkRequest(
            trunk=api.SIPInboundTrunkInfo(**first)))
        request = api.CreateSIPInboundTrunkRequest(trunk=api.SIPInboundTrunkInfo(**second))
        if refused is None:
            await lkapi.sip.create_inbound_trunk(request)
            assert len(server.sip.provisioning.inbound_trunks) == 2
            return
        with pytest.raises(api.TwirpError) as raised:
            await lkapi.sip.create_inbound_trunk(request)
        # LiveKit answers InvalidArgument ("Conflicting inbound SIP Trunks") here.
        assert raised.value.code == "invalid_argument"
        message = raised.value.message
        assert message.startswith("conflicting inbound SIP trunks: the new trunk and trunk "
                                  f"{existing.sip_trunk_id} ")
        assert refused in message
        assert list(server.sip.provisioning.inbound_trunks) == [existing.sip_trunk_id]


async def _create(lkapi: api.LiveKitAPI, what: str, **fields: Any) -> object:
    if what == "inbound":
        return await lkapi.sip.create_inbound_trunk(
            api.CreateSIPInboundTrunkRequest(trunk=api.SIPInboundTrunkInfo(**fields)))
    if what == "outbound":
        return await lkapi.sip.create_outbound_trunk(
            api.CreateSIPOutboundTrunkRequest(trunk=api.SIPOutboundTrunkInfo(**fields)))
    return await lkapi.sip.create_dispatch_rule(api.CreateSIPDispatchRuleRequest(**fields))


@pytest.mark.parametrize(
    ("what", "fields", "says"),
    [
        ("inbound", {"name": "open"}, "an inbound trunk must say which calls it takes"),
        ("inbound", {"sip_trunk_id": "ST_mine", "numbers": [NUMBER]},
         "trunk id must not be set (sip_trunk_id='ST_mine')"),
        ("outbound", {"address": "sip.example.com"}, "no trunk numbers specified"),
        ("outbound", {"numbers": [NUMBER]}, "no outbound address specified"),
        ("outbound", {"numbers": [NUMBER], "address": "sip:pbx@sip.example.com"},
         "should be a host name or IP address, not a SIP URI"),
        ("rule", {"dispatch_rule": api.SIPDispatchRuleInfo(name="empty")}, "missing rule"),
        ("rule", {"trunk_ids": ["ST_x"]}, "missing rule"),  # the deprecated fields
        ("rule", {"rule": Rule(dispatch_rule_direct=api.SIPDispatchRuleDirect())},
         "a direct dispatch rule needs the room to send callers to"),
        ("rule", {"dispatch_rule": api.SIPDispatchRuleInfo(sip_dispatch_rule_id="SDR_x",
                                                           rule=direct("r"))},
         "dispatch rule id must not be set"),
    ],
    ids=["inbound open to all", "inbound with id", "outbound no numbers", "outbound no address",
         "outbound URI", "rule missing", "legacy rule missing", "direct no room", "rule with id"],
)
async def test_a_trunk_or_rule_lacking_what_livekit_needs_is_invalid_argument(
    what: str, fields: dict[str, Any], says: str
) -> None:
    async with serving() as (server, lkapi):
        with pytest.raises(api.TwirpError) as raised:
            await _create(lkapi, what, **fields)
        assert (raised.value.code, raised.value.status) == ("invalid_argument", 400)
        assert says in raised.value.message
        stored = server.sip.provisioning
        assert (stored.inbound_trunks, stored.outbound_trunks, stored.dispatch_rules) == (
            {}, {}, {})


# Provisioning: dispatch rules ------------------------------------------------------------------


async def test_dispatch_rules_are_created_in_either_form_listed_filtered_and_deleted() -> None:
    async with serving() as (server, lkapi):
        sip = lkapi.sip
        trunk = await inbound_trunk(lkapi)
        new = await sip.create_dispatch_rule(api.CreateSIPDispatchRuleRequest(
            dispatch_rule=api.SIPDispatchRuleInfo(
                rule=individual("call"), trunk_ids=[trunk], name="new", metadata="n",
                attributes={"team": "a"}, numbers=[NUMBER])))
        # The deprecated form: the rule's fields on the request itself.
        legacy = await sip.create_dispatch_rule(api.CreateSIPDispatchRuleRequest(
            rule=direct("desk"), name="legacy", metadata="l", attributes={"team": "b"},
            inbound_numbers=[CALLER], hide_phone_number=True,
            room_config=api.RoomConfiguration(
                agents=[api.RoomAgentDispatch(agent_name="desk-agent")])))
        other = await dispatch_rule(lkapi, callee("line"), trunk_ids=["ST_other"])
        assert new.sip_dispatch_rule_id.startswith("SDR_")
        assert (legacy.name, legacy.metadata, dict(legacy.attributes)) == ("legacy", "l",
                                                                           {"team": "b"})
        assert legacy.hide_phone_number and list(legacy.inbound_numbers) == [CALLER]
        assert legacy.rule.dispatch_rule_direct.room_name == "desk"
        assert [a.agent_name for a in legacy.room_config.agents] == ["desk-agent"]

        listed = await sip.list_dispatch_rule(api.ListSIPDispatchRuleRequest())
        ids = [r.sip_dispatch_rule_id for r in listed.items]
        assert ids == [new.sip_dispatch_rule_id, legacy.sip_dispatch_rule_id, other]
        assert listed.items[0].rule.dispatch_rule_individual.room_prefix == "call"
        assert list(listed.items[0].numbers) == [NUMBER]
        # A rule without trunk_ids is for every trunk: the trunk filter keeps it.
        for_trunk = await sip.list_dispatch_rule(api.ListSIPDispatchRuleRequest(trunk_ids=[trunk]))
        assert [r.sip_dispatch_rule_id for r in for_trunk.items] == ids[:2]
        by_id = await sip.list_dispatch_rule(api.ListSIPDispatchRuleRequest(
            dispatch_rule_ids=[other]))
        assert [r.sip_dispatch_rule_id for r in by_id.items] == [other]

        deleted = await sip.delete_dispatch_rule(api.DeleteSIPDispatchRuleRequest(
            sip_dispatch_rule_id=legacy.sip_dispatch_rule_id))
        assert deleted.name == "legacy"
        assert list(server.sip.provisioning.dispatch_rules) == [new.sip_dispatch_rule_id, other]
        with pytest.raises(api.TwirpError) as raised:
            await sip.delete_dispatch_rule(api.DeleteSIPDispatchRuleRequest(
                sip_dispatch_rule_id=legacy.sip_dispatch_rule_id))
        assert raised.value.code == "not_found"
        assert repr(legacy.sip_dispatch_rule_id) in raised.value.message


async def test_a_rule_taking_the_same_calls_as_another_is_refused() -> None:
    async with serving() as (server, lkapi):
        trunk = await inbound_trunk(lkapi)
        first = await dispatch_rule(lkapi, direct("one"), trunk_ids=[trunk], name="first")
        # Another PIN, or other callers, or another trunk: other calls, accepted.
        await dispatch_rule(lkapi, direct("two", pin="12"), trunk_ids=[trunk])
        await dispatch_rule(lkapi, direct("three"), trunk_ids=[trunk], inbound_numbers=[CALLER])
        await dispatch_rule(lkapi, direct("four"))
        with pytest.raises(api.TwirpError) as raised:
            await dispatch_rule(lkapi, individual(), trunk_ids=[trunk, "ST_other"])
        assert raised.value.code == "invalid_argument"
        assert (f"already exists: rule {first} ('first') takes calls on trunk {trunk} from any "
                "caller to any number") in raised.value.message
        assert len(server.sip.provisioning.dispatch_rules) == 4


@pytest.mark.parametrize(
    "call",
    [
        lambda sip: sip.create_inbound_trunk(api.CreateSIPInboundTrunkRequest(
            trunk=api.SIPInboundTrunkInfo(numbers=[NUMBER]))),
        lambda sip: sip.list_dispatch_rule(api.ListSIPDispatchRuleRequest()),
        lambda sip: sip.delete_trunk(api.DeleteSIPTrunkRequest(sip_trunk_id="ST_x")),
    ],
    ids=["CreateSIPInboundTrunk", "ListSIPDispatchRule", "DeleteSIPTrunk"],
)
async def test_provisioning_needs_the_sip_admin_grant(call: Any) -> None:
    async with serving() as (server, _):
        # livekit-api signs its own SIPGrants(admin=True): a client with a given token does not.
        async with api.LiveKitAPI.with_token(_token(api.SIPGrants(call=True)),
                                             server.url) as client:
            with pytest.raises(api.TwirpError) as raised:
                await call(client.sip)
        assert (raised.value.code, raised.value.status) == ("unauthenticated", 401)
        assert "needs the SIP admin grant; sign the token with SIPGrants(admin=True)" in (
            raised.value.message)
        assert server.sip.provisioning.inbound_trunks == {}


# Inbound calls ---------------------------------------------------------------------------------


async def test_an_inbound_call_joins_an_individual_room_that_dispatches_its_agent() -> None:
    async with serving(dispatcher=True) as (server, lkapi):
        trunk = await inbound_trunk(lkapi)
        rule = await dispatch_rule(
            lkapi, individual("call"), trunk_ids=[trunk], metadata='{"line": "sales"}',
            attributes={"team": "sales"},
            room_config=api.RoomConfiguration(
                agents=[api.RoomAgentDispatch(agent_name="inbound-agent", metadata="hi")]))

        call = await server.sip.call_in(CALLER, NUMBER)
        assert isinstance(call, InboundCall) and server.sip.calls == [call]
        room = call.room.name
        assert re.fullmatch(r"call_\+15550100_[A-Za-z0-9]{12}", room)
        assert await rooms(lkapi) == [room]

        got = (await participants(lkapi, room))[f"sip_{CALLER}"]
        assert got.kind == Kind.SIP
        assert (got.name, got.metadata) == (f"Phone {CALLER}", '{"line": "sales"}')
        assert dict(got.attributes) == {
            "team": "sales",
            "sip.callID": call.call_id,
            "sip.callStatus": "active",
            "sip.trunkID": trunk,
            "sip.ruleID": rule,
            "sip.phoneNumber": CALLER,
            "sip.hostname": "sip.example.com",
            "sip.trunkPhoneNumber": NUMBER,
        }
        assert call.call_id.startswith("SCL_")
        [dispatch] = await lkapi.agent_dispatch.list_dispatch(room)
        assert (dispatch.agent_name, dispatch.metadata) == ("inbound-agent", "hi")

        record = call.record
        assert record is not None and record.inbound and record.answered
        assert (record.caller, record.called, record.room) == (CALLER, NUMBER, room)

        # Each call from the same caller gets a room of its own.
        again = await server.sip.call_in(CALLER, NUMBER, host="pbx.example.org")
        assert again.room.name != room and again.call_id != call.call_id
        assert again.participant.attributes["sip.hostname"] == "pbx.example.org"


@pytest.mark.parametrize(
    ("rule", "room"),
    [
        (direct("front-desk"), r"front-desk"),
        (callee("line"), r"line_\+15551234"),
        (callee(randomize=True), r"\+15551234_[A-Za-z0-9]{12}"),
        (individual(no_randomness=True), r"\+15550100"),
        (individual("caller", no_randomness=True), r"caller_\+15550100"),
    ],
    ids=["direct", "callee", "callee randomized", "individual", "individual prefixed"],
)
async def test_the_rule_names_the_room(rule: api.SIPDispatchRule, room: str) -> None:
    async with serving() as (server, lkapi):
        await inbound_trunk(lkapi)
        await dispatch_rule(lkapi, rule)
        call = await server.sip.call_in(CALLER, NUMBER)
        assert re.fullmatch(room, call.room.name)
        assert list(await participants(lkapi, call.room.name)) == [f"sip_{CALLER}"]


async def test_a_call_into_an_existing_room_joins_it_as_it_is() -> None:
    async with serving(dispatcher=True) as (server, lkapi):
        await lkapi.room.create_room(api.CreateRoomRequest(name="desk", metadata="kept"))
        await dispatch_rule(lkapi, direct("desk"), room_config=api.RoomConfiguration(
            agents=[api.RoomAgentDispatch(agent_name="late-agent")]))
        call = await server.sip.call_in(CALLER, NUMBER)  # no trunk: a default rule takes it
        assert call.room is server.rooms.get("desk") and call.room.metadata == "kept"
        # The room existed: its configuration (its default dispatch) stays.
        assert [d.agent_name for d in await lkapi.agent_dispatch.list_dispatch("desk")] == [""]
        attributes = (await participants(lkapi, "desk"))[f"sip_{CALLER}"].attributes
        assert "sip.trunkID" not in attributes  # no trunk matched
        assert attributes["sip.trunkPhoneNumber"] == NUMBER


async def test_hide_phone_number_masks_the_caller() -> None:
    async with serving() as (server, lkapi):
        trunk = await inbound_trunk(lkapi)
        rule = await dispatch_rule(lkapi, direct("private"), hide_phone_number=True)
        call = await server.sip.call_in(CALLER, NUMBER)
        identity = "sip_" + hashlib.sha256(CALLER.encode()).hexdigest()[:16]
        got = (await participants(lkapi, "private"))[identity]
        assert got.name == "Phone 0100"
        assert dict(got.attributes) == {
            "sip.callID": call.call_id, "sip.callStatus": "active", "sip.trunkID": trunk,
            "sip.ruleID": rule,
        }


async def test_a_rule_for_the_trunk_beats_a_default_rule() -> None:
    async with serving() as (server, lkapi):
        trunk = await inbound_trunk(lkapi)
        # The default rule would win on priority alone (a direct rule, naming the number).
        await dispatch_rule(lkapi, direct("everyone"), numbers=[NUMBER])
        specific = await dispatch_rule(lkapi, callee("for-trunk"), trunk_ids=[trunk])
        call = await server.sip.call_in(CALLER, NUMBER)
        assert call.room.name == f"for-trunk_{NUMBER}"
        assert call.participant.attributes["sip.ruleID"] == specific

        await lkapi.sip.delete_dispatch_rule(
            api.DeleteSIPDispatchRuleRequest(sip_dispatch_rule_id=specific))
        assert (await server.sip.call_in(CALLER, NUMBER)).room.name == "everyone"


async def test_the_callers_number_chooses_between_rules() -> None:
    async with serving() as (server, lkapi):
        await inbound_trunk(lkapi)
        await dispatch_rule(lkapi, direct("vip"), inbound_numbers=["+15550199"])
        await dispatch_rule(lkapi, direct("general"))
        await dispatch_rule(lkapi, direct("other-line"), numbers=["+15557777"])
        assert (await server.sip.call_in("+15550199", NUMBER)).room.name == "vip"
        assert (await server.sip.call_in(CALLER, NUMBER)).room.name == "general"


async def test_a_pin_rule_needs_its_pin_and_a_pin_skips_the_open_rules() -> None:
    async with serving() as (server, lkapi):
        trunk = await inbound_trunk(lkapi)
        secret = await dispatch_rule(lkapi, direct("secret", pin="1234"), trunk_ids=[trunk])
        await dispatch_rule(lkapi, direct("open"), trunk_ids=[trunk])

        with pytest.raises(InboundCallError, match=f"dispatch rule {secret} asks callers for a "
                           r"PIN.*pass the rule's PIN to call_in\(\.\.\., pin=\.\.\.\)"):
            await server.sip.call_in(CALLER, NUMBER)
        assert server.rooms.list() == [] and server.sip.calls == []

        assert (await server.sip.call_in(CALLER, NUMBER, pin="1234")).room.name == "secret"
        with pytest.raises(InboundCallError, match=f"No SIP Dispatch Rules matched for "
                           f"'\\{NUMBER}' \\(trunk {trunk}\\).*with the PIN '9999'"):
            await server.sip.call_in(CALLER, NUMBER, pin="9999")


@pytest.mark.parametrize(
    ("trunk", "rule_for_trunk", "says"),
    [
        (None, False, f"No SIP Trunk or Dispatch Rules matched for '{NUMBER}': create an "
                      f"inbound trunk for {NUMBER} and a dispatch rule"),
        ({"numbers": [NUMBER]}, False, f"No SIP Dispatch Rules matched for '{NUMBER}' (trunk "),
        # The trunk does not take this caller: no trunk matches, so its rule cannot either.
        ({"numbers": [NUMBER], "allowed_numbers": ["+15550111"]}, True,
         f"No SIP Trunk or Dispatch Rules matched for '{NUMBER}'"),
        ({"numbers": ["+15557777"]}, True,
         f"No SIP Trunk or Dispatch Rules matched for '{NUMBER}'"),
    ],
    ids=["nothing", "trunk without rule", "caller not allowed", "other number"],
)
async def test_a_call_no_trunk_or_rule_takes_is_refused_and_creates_nothing(
    trunk: dict[str, Any] | None, rule_for_trunk: bool, says: str
) -> None:
    async with serving() as (server, lkapi):
        phone = server.sip.add_phone(CALLER)
        if trunk is not None:
            fields = dict(trunk)  # the parameter is shared: not changed here
            trunk_id = await inbound_trunk(lkapi, *fields.pop("numbers"), **fields)
            await dispatch_rule(lkapi, direct("elsewhere"), trunk_ids=[
                trunk_id if rule_for_trunk else "ST_another"])
        with pytest.raises(InboundCallError) as raised:
            await server.sip.call_in(CALLER, NUMBER)
        assert says in str(raised.value)
        assert await rooms(lkapi) == []
        assert server.sip.calls == [] and phone.calls == []


@pytest.mark.parametrize(
    ("numbers", "says"),
    [
        ([NUMBER], "Multiple SIP Trunks matched for"),
        ([], "Multiple default SIP Trunks matched for"),  # trunks listing no numbers
    ],
    ids=["specific", "default"],
)
async def test_two_trunks_taking_the_call_refuse_it(numbers: list[str], says: str) -> None:
    async with serving() as (server, lkapi):
        # Accepted together (the first only takes CALLER), but a call from CALLER fits both.
        auth = {"auth_username": "u", "auth_password": "p"}
        first = await inbound_trunk(lkapi, *numbers, default=not numbers,
                                    allowed_numbers=[CALLER], **auth)
        second = await inbound_trunk(lkapi, *numbers, default=not numbers, **auth)
        await dispatch_rule(lkapi, direct("desk"))
        with pytest.raises(InboundCallError, match=f"{says} '\\{NUMBER}': {first} and {second}"):
            await server.sip.call_in(CALLER, NUMBER)
        call = await server.sip.call_in("+15550111", NUMBER)
        assert call.participant.attributes["sip.trunkID"] == second


async def test_the_caller_hanging_up_sets_hangup_then_the_participant_leaves() -> None:
    async with serving() as (server, lkapi):
        await dispatch_rule(lkapi, direct("desk"))
        _, observer = join(server.create_room("desk"), "agent")
        call = await server.sip.call_in(CALLER, NUMBER, hang_up_after=0.2)
        assert list(await participants(lkapi, "desk")) == ["agent", f"sip_{CALLER}"]

        assert call.record is not None
        assert await call.record.wait_ended(2.0) is CallEnd.PHONE_HUNG_UP
        assert list(await participants(lkapi, "desk")) == ["agent"]
        assert observer.updates_about(f"sip_{CALLER}") == [
            ("active", "JOINED"), ("hangup", "JOINED"), ("hangup", "DISCONNECTED")]
        assert call.disconnect_reason == Reason.CLIENT_INITIATED


async def test_a_registered_phone_records_the_call_and_the_test_hangs_up() -> None:
    async with serving() as (server, lkapi):
        phone = server.sip.add_phone(CALLER, hang_up_after=0.2)
        await dispatch_rule(lkapi, direct("desk"))
        _, observer = join(server.create_room("desk"), "agent")

        # The phone's hang_up_after applies when call_in sets none.
        first = await server.sip.call_in(CALLER, NUMBER)
        assert phone.calls == [first.record]
        assert await phone.last_call.wait_ended(2.0) is CallEnd.PHONE_HUNG_UP

        second = await server.sip.call_in(CALLER, NUMBER, hang_up_after=30)
        await asyncio.sleep(0.3)  # longer than the phone's own hang_up_after
        assert list(await participants(lkapi, "desk")) == ["agent", f"sip_{CALLER}"]
        second.hang_up()
        assert list(await participants(lkapi, "desk")) == ["agent"]
        assert observer.updates_about(f"sip_{CALLER}")[-2:] == [
            ("hangup", "JOINED"), ("hangup", "DISCONNECTED")]
        assert phone.last_call is second.record and phone.last_call.end is CallEnd.PHONE_HUNG_UP
        assert second.task is not None
        await asyncio.wait([second.task], timeout=1)
        assert second.task.done()  # nothing left running: the hang-up ended its wait

        third = await server.sip.call_in(CALLER, NUMBER, hang_up_after=30)
        await lkapi.room.delete_room(api.DeleteRoomRequest(room="desk"))
        assert third.ended is CallEnd.ROOM_HUNG_UP
        assert third.disconnect_reason == Reason.ROOM_DELETED
        assert [call.end for call in phone.calls] == [
            CallEnd.PHONE_HUNG_UP, CallEnd.PHONE_HUNG_UP, CallEnd.ROOM_HUNG_UP]


async def test_the_call_is_sent_the_tracks_already_published_and_the_rooms_data() -> None:
    async with serving() as (server, lkapi):
        await dispatch_rule(lkapi, direct("desk"))
        agent, _ = join(server.create_room("desk"), "agent")
        track = PublishedTrack(
            info=models.TrackInfo(sid="TR_voice", name="voice", type=models.TrackType.AUDIO),
            cid="TR_voice", media=ServerAudioTrack())  # the phone hears it once it answers
        agent.tracks["TR_voice"] = track
        server.rooms.get("desk").track_arrived(agent, track)  # type: ignore[union-attr]

        call = await server.sip.call_in(CALLER, NUMBER)
        assert call.record is not None
        assert [(t.publisher, t.sid, t.kind) for t in call.record.tracks] == [
            ("agent", "TR_voice", "audio")]
        call.room.relay_data(agent, "_reliable", models.DataPacket(
            sip_dtmf=models.SipDTMF(code=1, digit="1")))
        assert [packet.sip_dtmf.digit for packet in call.record.data] == ["1"]
        call.hang_up()
        assert track.media is not None
        track.media.stop()


@pytest.mark.parametrize(("source_ip", "host", "allowed", "taken"), [
    ("10.1.2.3", "", ["10.0.0.0/8"], True),
    ("10.1.2.3", "", ["10.1.2.3"], True),
    ("10.1.2.3", "", ["10.9.9.9/8"], True),  # host bits set: the prefix still counts
    ("192.0.2.7", "", ["10.0.0.0/8", "10.1.2.3"], False),
    ("2001:db8::5", "", ["2001:db8::/32"], True),
    ("2001:db8::5", "", ["10.0.0.0/8"], False),
    ("192.0.2.7", "pbx.example.com", ["pbx.example.com"], True),  # the caller's host
    ("192.0.2.7", "", ["10.0.0.0/8, 192.0.2.7"], True),  # malformed: left out, none left
    ("192.0.2.7", "", ["http://192.0.2.7", "10.0.0.0/8"], False),
    ("", "", ["10.0.0.0/8"], True),  # no source address: every trunk takes it
    ("192.0.2.7", "", [], True),
])
def test_allowed_addresses_take_calls_as_livekit_matches_them(
    source_ip: str, host: str, allowed: list[str], taken: bool
) -> None:
    assert address_allowed(source_ip, host, allowed) is taken


async def test_a_trunks_allowed_addresses_decide_which_calls_it_takes() -> None:
    async with serving() as (server, lkapi):
        trunk = await inbound_trunk(lkapi, allowed_addresses=["10.0.0.0/8"])
        await dispatch_rule(lkapi, direct("trusted"), trunk_ids=[trunk])
        await dispatch_rule(lkapi, direct("public"))  # for calls no trunk takes
        inside = await server.sip.call_in(CALLER, NUMBER, source_ip="10.4.5.6")
        outside = await server.sip.call_in("+15550111", NUMBER, source_ip="192.0.2.7")
        assert (inside.route.trunk is not None
                and inside.route.trunk.sip_trunk_id == trunk and inside.room.name == "trusted")
        assert outside.route.trunk is None and outside.room.name == "public"
        inside.hang_up()
        outside.hang_up()


async def test_a_trunks_max_call_duration_ends_the_call() -> None:
    async with serving() as (server, lkapi):
        trunk = await inbound_trunk(lkapi, max_call_duration={"nanos": 200_000_000})
        await dispatch_rule(lkapi, direct("desk"), trunk_ids=[trunk])
        call = await server.sip.call_in(CALLER, NUMBER)
        assert call.record is not None
        assert await call.record.wait_ended(2.0) is CallEnd.MAX_DURATION
        assert list(await participants(lkapi, "desk")) == []


async def test_call_in_needs_a_servers_rooms_and_a_caller() -> None:
    sip = SimulatedSIP()
    with pytest.raises(RuntimeError, match=r"not attached to a server's rooms.*sip.attach"):
        await sip.call_in(CALLER, NUMBER)
    sip.attach(Rooms())
    with pytest.raises(ValueError, match="needs the number calling and the number called"):
        await sip.call_in("", NUMBER)
    with pytest.raises(InboundCallError, match="No SIP Trunk or Dispatch Rules matched"):
        await sip.call_in(CALLER, NUMBER)


# With a real SDK client: WebRTC, so a network namespace ----------------------------------------


def test_an_sdk_client_sees_the_caller_join_and_hang_up(run_scenario: Any) -> None:
    result = run_scenario(__file__, "scenario_sdk_client")
    assert result["kind"] == rtc.ParticipantKind.PARTICIPANT_KIND_SIP
    assert result["name"] == f"Phone {CALLER}"
    assert result["attributes"]["sip.callStatus"] == "active"
    assert result["attributes"]["sip.phoneNumber"] == CALLER
    assert result["attributes"]["sip.ruleID"].startswith("SDR_")
    assert result["dtmf"] == ["5"]  # the observer's key press reached the phone
    assert result["statuses"] == ["hangup"]
    assert result["left"] == [f"sip_{CALLER}"]


async def scenario_sdk_client() -> dict[str, Any]:
    quiet_logs()
    async with serving(host="10.99.0.1") as (server, lkapi):
        await dispatch_rule(lkapi, direct("desk"))
        observer = rtc.Room()
        joined: list[rtc.RemoteParticipant] = []
        statuses: list[str] = []
        left: list[str] = []
        observer.on("participant_connected", joined.append)
        observer.on("participant_attributes_changed", lambda changed, p: statuses.append(
            changed["sip.callStatus"]))
        observer.on("participant_disconnected", lambda p: left.append(p.identity))
        await asyncio.wait_for(observer.connect(server.url, server.token("observer", "desk")),
                               20)

        call = await server.sip.call_in(CALLER, NUMBER)
        await until(lambda: joined)
        seen = joined[0]
        attributes = dict(seen.attributes)  # as it joined: the SDK's object follows changes
        await observer.local_participant.publish_dtmf(code=5, digit="5")
        assert call.record is not None
        record = call.record
        await until(lambda: record.data)
        call.hang_up()
        await until(lambda: left)
        result = {
            "kind": int(seen.kind),
            "name": seen.name,
            "attributes": attributes,
            "dtmf": [packet.sip_dtmf.digit for packet in record.data],
            "statuses": statuses,
            "left": left,
        }
        await observer.disconnect()
        return result
