"""UpdateSIPInboundTrunk, UpdateSIPOutboundTrunk and UpdateSIPDispatchRule on the test server.

Everything goes through the real ``livekit-api`` client (``lkapi.sip.update_..._trunk``,
``update_..._fields``, ``update_dispatch_rule...``), and the updates are checked against
LiveKit's semantics: a replace keeps the id, list fields take a ListUpdate (set, add, remove,
clear), scalar fields are set when given, attributes are a map diff, and an update that would
make a trunk or rule refused at create time is refused and changes nothing. Inbound calls
(``server.sip.call_in``) show that what is stored after an update is what routes the next call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

import pytest
from google.protobuf.message import Message
from livekit import api
from livekit.api.sip_service import SipService
from livekit.protocol import sip as sip_pb
from scenario_kit import server_with_api

from flowkit.testing.livekit_server import InboundCallError, TestLiveKitServer

KEY = "devkey"
SECRET = "sip-updates-secret-0123456789abcdef"
CALLER = "+15550100"
NUMBER = "+15551234"
SECOND = "+15552222"
THIRD = "+15553333"
Rule = api.SIPDispatchRule
ListUpdate = api.ListUpdate
_Reply = TypeVar("_Reply", bound=Message)


def serving() -> AbstractAsyncContextManager[tuple[TestLiveKitServer, api.LiveKitAPI]]:
    """The test server and a livekit-api client for it."""
    return server_with_api(KEY, SECRET, "127.0.0.1")


async def new_inbound(lkapi: api.LiveKitAPI, *numbers: str, **fields: Any) -> str:
    trunk = api.SIPInboundTrunkInfo(numbers=list(numbers), **fields)
    created = await lkapi.sip.create_inbound_trunk(api.CreateSIPInboundTrunkRequest(trunk=trunk))
    return created.sip_trunk_id


async def new_outbound(lkapi: api.LiveKitAPI, **fields: Any) -> str:
    fields = {"address": "sip.example.com", "numbers": [NUMBER], **fields}
    created = await lkapi.sip.create_outbound_trunk(api.CreateSIPOutboundTrunkRequest(
        trunk=api.SIPOutboundTrunkInfo(**fields)))
    return created.sip_trunk_id


async def new_rule(lkapi: api.LiveKitAPI, rule: api.SIPDispatchRule, **fields: Any) -> str:
    created = await lkapi.sip.create_dispatch_rule(api.CreateSIPDispatchRuleRequest(
        dispatch_rule=api.SIPDispatchRuleInfo(rule=rule, **fields)))
    return created.sip_dispatch_rule_id


def direct(room: str, pin: str = "") -> api.SIPDispatchRule:
    return Rule(dispatch_rule_direct=api.SIPDispatchRuleDirect(room_name=room, pin=pin))


def callee(prefix: str) -> api.SIPDispatchRule:
    return Rule(dispatch_rule_callee=api.SIPDispatchRuleCallee(room_prefix=prefix))


async def send(
    lkapi: api.LiveKitAPI, method: str, request: Message, reply: type[_Reply]
) -> _Reply:
    """An Update request sent as built, through livekit-api's own Twirp transport.

    livekit-api's ``update_..._fields`` copy a ListUpdate's set/add/remove but not its
    ``clear``, so a clearing update can only be sent this way (a real client's bytes still).
    """
    sip = lkapi.sip
    return await sip._client.request("SIP", method, request, sip._admin_headers(), reply)


def stored_copy(server: TestLiveKitServer) -> list[list[bytes]]:
    """Everything provisioned, serialised: to show that a refused update changed nothing."""
    kept = server.sip.provisioning
    return [[item.SerializeToString() for item in items.values()] for items in (
        kept.inbound_trunks, kept.outbound_trunks, kept.dispatch_rules)]


async def refused(call: Awaitable[object], code: str = "invalid_argument") -> str:
    """The message of the Twirp error ``call`` raises, after checking its code."""
    with pytest.raises(api.TwirpError) as raised:
        await call
    assert raised.value.code == code, raised.value.message
    return raised.value.message


# Replace -------------------------------------------------------------------------------------


async def test_replacing_an_inbound_trunk_keeps_its_id_and_routes_the_next_call() -> None:
    async with serving() as (server, lkapi):
        trunk = await new_inbound(lkapi, NUMBER, name="old", metadata="m")
        await new_rule(lkapi, direct("desk"), trunk_ids=[trunk])
        assert (await server.sip.call_in(CALLER, NUMBER)).room.name == "desk"

        # A replace is whole: what the new info leaves out (metadata) is gone.
        got = await lkapi.sip.update_inbound_trunk(
            trunk, api.SIPInboundTrunkInfo(numbers=[SECOND], name="new"))
        assert (got.sip_trunk_id, list(got.numbers), got.name, got.metadata) == (
            trunk, [SECOND], "new", "")
        listed = await lkapi.sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest())
        assert [(t.sip_trunk_id, t.name) for t in listed.items] == [(trunk, "new")]

        call = await server.sip.call_in(CALLER, SECOND)
        assert (call.room.name, call.participant.attributes["sip.trunkID"]) == ("desk", trunk)
        with pytest.raises(InboundCallError, match="No SIP Trunk or Dispatch Rules matched"):
            await server.sip.call_in(CALLER, NUMBER)

        # The replacement may repeat the trunk's own id, not name another one.
        same = await lkapi.sip.update_inbound_trunk(
            trunk, api.SIPInboundTrunkInfo(sip_trunk_id=trunk, numbers=[THIRD]))
        assert list(same.numbers) == [THIRD]
        before = stored_copy(server)
        message = await refused(lkapi.sip.update_inbound_trunk(
            trunk, api.SIPInboundTrunkInfo(sip_trunk_id="ST_other", numbers=[NUMBER])))
        assert f"must be empty or match the one updated: it is 'ST_other', the request's is " \
               f"{trunk!r}" in message
        assert stored_copy(server) == before


async def test_replacing_an_outbound_trunk_and_a_rule_keeps_their_ids() -> None:
    async with serving() as (server, lkapi):
        out = await new_outbound(lkapi, name="out", auth_username="u")
        got = await lkapi.sip.update_outbound_trunk(out, api.SIPOutboundTrunkInfo(
            address="pbx.example.org", numbers=[SECOND]))
        assert (got.sip_trunk_id, got.address, list(got.numbers), got.auth_username) == (
            out, "pbx.example.org", [SECOND], "")
        assert server.sip.provisioning.outbound_trunks[out].address == "pbx.example.org"

        rule = await new_rule(lkapi, direct("desk"), name="r", attributes={"a": "1"})
        replaced = await lkapi.sip.update_dispatch_rule(
            rule, api.SIPDispatchRuleInfo(rule=callee("line")))
        assert replaced.sip_dispatch_rule_id == rule
        assert (replaced.name, dict(replaced.attributes)) == ("", {})
        await new_inbound(lkapi, NUMBER)
        assert (await server.sip.call_in(CALLER, NUMBER)).room.name == f"line_{NUMBER}"


@pytest.mark.parametrize(
    ("what", "replacement", "says"),
    [
        ("inbound", api.SIPInboundTrunkInfo(name="open"),
         "an inbound trunk must say which calls it takes"),
        ("outbound", api.SIPOutboundTrunkInfo(numbers=[NUMBER]), "no outbound address specified"),
        ("rule", api.SIPDispatchRuleInfo(name="no rule"), "missing rule"),
        ("rule", api.SIPDispatchRuleInfo(rule=direct("")),
         "a direct dispatch rule needs the room to send callers to"),
    ],
    ids=["inbound open", "outbound no address", "rule missing", "direct without room"],
)
async def test_a_replacement_create_would_refuse_is_refused(
    what: str, replacement: Any, says: str
) -> None:
    async with serving() as (server, lkapi):
        ids = {"inbound": await new_inbound(lkapi, NUMBER), "outbound": await new_outbound(lkapi),
               "rule": await new_rule(lkapi, direct("desk"))}
        replace: dict[str, Callable[[str, Any], Awaitable[object]]] = {
            "inbound": lkapi.sip.update_inbound_trunk,
            "outbound": lkapi.sip.update_outbound_trunk,
            "rule": lkapi.sip.update_dispatch_rule,
        }
        before = stored_copy(server)
        assert says in await refused(replace[what](ids[what], replacement))
        assert stored_copy(server) == before


# Field updates: lists, scalars, attributes ---------------------------------------------------


async def test_inbound_trunk_lists_are_set_added_to_removed_from_and_cleared() -> None:
    async with serving() as (server, lkapi):
        sip = lkapi.sip
        trunk = await new_inbound(lkapi, NUMBER, auth_username="u", auth_password="p")

        # add appends what is not there yet (NUMBER is), in the order given.
        got = await sip.update_inbound_trunk_fields(
            trunk, numbers=ListUpdate(add=[SECOND, NUMBER, THIRD]))
        assert list(got.numbers) == [NUMBER, SECOND, THIRD]
        # remove goes first, then add: the same call can swap a number for another.
        got = await sip.update_inbound_trunk_fields(
            trunk, numbers=ListUpdate(remove=[NUMBER, "+15559999"], add=["+15554444"]))
        assert list(got.numbers) == [SECOND, THIRD, "+15554444"]
        # A plain list is a set: it replaces the list.
        got = await sip.update_inbound_trunk_fields(
            trunk, numbers=[NUMBER], allowed_numbers=ListUpdate(add=[CALLER]),
            allowed_addresses=["10.0.0.0/24"])
        assert (list(got.numbers), list(got.allowed_numbers), list(got.allowed_addresses)) == (
            [NUMBER], [CALLER], ["10.0.0.0/24"])

        cleared = await send(lkapi, "UpdateSIPInboundTrunk", sip_pb.UpdateSIPInboundTrunkRequest(
            sip_trunk_id=trunk, update=sip_pb.SIPInboundTrunkUpdate(
                numbers=ListUpdate(clear=True), allowed_numbers=ListUpdate(clear=True))),
            sip_pb.SIPInboundTrunkInfo)
        # Still a trunk create would take: auth and allowed_addresses limit it.
        assert (list(cleared.numbers), list(cleared.allowed_numbers)) == ([], [])
        assert list(cleared.allowed_addresses) == ["10.0.0.0/24"]
        stored = server.sip.provisioning.inbound_trunks[trunk]
        assert (list(stored.numbers), stored.auth_username) == ([], "u")


async def test_update_fields_set_only_the_scalars_given_even_to_empty() -> None:
    async with serving() as (server, lkapi):
        trunk = await new_inbound(lkapi, NUMBER, name="main", metadata="m",
                                  auth_username="u", auth_password="p")
        got = await lkapi.sip.update_inbound_trunk_fields(trunk, metadata="new", auth_password="q")
        assert (got.name, got.metadata, got.auth_username, got.auth_password) == (
            "main", "new", "u", "q")
        # The update's fields are optional: "" is a value, and clears the name.
        got = await lkapi.sip.update_inbound_trunk_fields(trunk, name="")
        assert (got.name, got.metadata, list(got.numbers)) == ("", "new", [NUMBER])

        out = await new_outbound(lkapi, name="out", auth_username="u")
        got_out = await lkapi.sip.update_outbound_trunk_fields(
            out, address="pbx.example.org", transport=api.SIPTransport.SIP_TRANSPORT_TCP,
            numbers=ListUpdate(add=[SECOND]), metadata="x")
        assert (got_out.sip_trunk_id, got_out.address, got_out.transport) == (
            out, "pbx.example.org", api.SIPTransport.SIP_TRANSPORT_TCP)
        assert (list(got_out.numbers), got_out.name, got_out.metadata, got_out.auth_username) == (
            [NUMBER, SECOND], "out", "x", "u")
        assert server.sip.provisioning.outbound_trunks[out].metadata == "x"


async def test_media_updates_keep_the_legacy_encryption_field_in_step() -> None:
    async with serving() as (_, lkapi):
        trunk = await new_inbound(lkapi, NUMBER)
        require = api.SIPMediaEncryption.SIP_MEDIA_ENCRYPT_REQUIRE
        got = await lkapi.sip.update_inbound_trunk_fields(
            trunk, media=api.SIPMediaConfig(encryption=require))
        assert (got.media.encryption, got.media_encryption) == (require, require)
        # Media replaces whole, but a new one without encryption takes the legacy field's, as
        # LiveKit's upgrade does: switching encryption off takes an explicit DISABLE.
        got = await lkapi.sip.update_inbound_trunk_fields(
            trunk, media=api.SIPMediaConfig(only_listed_codecs=True))
        assert (got.media.only_listed_codecs, got.media.encryption, got.media_encryption) == (
            True, require, require)
        disable = api.SIPMediaEncryption.SIP_MEDIA_ENCRYPT_DISABLE
        got = await lkapi.sip.update_inbound_trunk_fields(
            trunk, media=api.SIPMediaConfig(encryption=disable))
        assert (got.media.encryption, got.media_encryption) == (disable, disable)
        assert not got.media.only_listed_codecs


async def test_dispatch_rule_fields_change_the_rule_and_diff_its_attributes() -> None:
    async with serving() as (server, lkapi):
        first = await new_inbound(lkapi, NUMBER)
        second = await new_inbound(lkapi, SECOND)
        rule = await new_rule(lkapi, direct("desk"), trunk_ids=[first], name="r", metadata="m",
                              attributes={"team": "a", "old": "x", "kept": "k"})
        got = await lkapi.sip.update_dispatch_rule_fields(
            rule, trunk_ids=ListUpdate(add=[second]), rule=callee("line"),
            attributes={"team": "b", "old": "", "new": "n"})
        assert (got.sip_dispatch_rule_id, list(got.trunk_ids)) == (rule, [first, second])
        assert got.rule.WhichOneof("rule") == "dispatch_rule_callee"
        assert (got.name, got.metadata) == ("r", "m")
        assert dict(got.attributes) == {"team": "b", "kept": "k", "new": "n"}

        call = await server.sip.call_in(CALLER, SECOND)
        assert call.room.name == f"line_{SECOND}"
        assert call.participant.attributes["team"] == "b"
        assert "old" not in call.participant.attributes

        got = await lkapi.sip.update_dispatch_rule_fields(
            rule, trunk_ids=ListUpdate(remove=[second]), name="renamed")
        assert (list(got.trunk_ids), got.name, dict(got.attributes)) == (
            [first], "renamed", {"team": "b", "kept": "k", "new": "n"})
        with pytest.raises(InboundCallError, match="No SIP Dispatch Rules matched"):
            await server.sip.call_in(CALLER, SECOND)


async def test_a_number_added_to_a_trunk_routes_calls_to_it() -> None:
    async with serving() as (server, lkapi):
        trunk = await new_inbound(lkapi, NUMBER, allowed_numbers=["+15550111"])
        await new_rule(lkapi, callee("line"), trunk_ids=[trunk])
        with pytest.raises(InboundCallError, match=f"No SIP Trunk or Dispatch Rules matched for "
                                                   f"'\\{SECOND}'"):
            await server.sip.call_in("+15550111", SECOND)

        await lkapi.sip.update_inbound_trunk_fields(trunk, numbers=ListUpdate(add=[SECOND]))
        call = await server.sip.call_in("+15550111", SECOND)
        assert (call.room.name, call.participant.attributes["sip.trunkID"]) == (
            f"line_{SECOND}", trunk)
        # The caller list too: CALLER is not taken until added.
        with pytest.raises(InboundCallError):
            await server.sip.call_in(CALLER, SECOND)
        await lkapi.sip.update_inbound_trunk_fields(
            trunk, allowed_numbers=ListUpdate(add=[CALLER]))
        assert (await server.sip.call_in(CALLER, SECOND)).room.name == f"line_{SECOND}"


# Refused updates -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("update", "says"),
    [
        ({"numbers": []}, "unsupported list update operation for numbers"),
        # livekit-api drops clear: this reaches the server as an empty ListUpdate.
        ({"numbers": ListUpdate(clear=True)}, "unsupported list update operation for numbers"),
        ({"numbers": ListUpdate(set=[SECOND], add=[THIRD])},
         "cannot set and change the numbers list at the same time"),
        ({"allowed_numbers": ListUpdate(remove=[""])},
         "empty element in the allowed_numbers list update: remove has an empty string"),
        ({"allowed_addresses": [""]}, "empty element in the allowed_addresses list update"),
        ({"numbers": ListUpdate(remove=[NUMBER])},
         "an inbound trunk must say which calls it takes"),  # valid, but leaves it open
    ],
    ids=["empty list", "clear via fields", "set and add", "empty remove", "empty set",
         "left open"],
)
async def test_invalid_inbound_trunk_updates_are_invalid_argument_and_change_nothing(
    update: dict[str, Any], says: str
) -> None:
    async with serving() as (server, lkapi):
        trunk = await new_inbound(lkapi, NUMBER, name="main")
        before = stored_copy(server)
        message = await refused(lkapi.sip.update_inbound_trunk_fields(trunk, name="x", **update))
        assert says in message
        assert stored_copy(server) == before


async def test_clearing_and_changing_a_list_at_once_is_refused() -> None:
    async with serving() as (server, lkapi):
        rule = await new_rule(lkapi, direct("desk"), trunk_ids=["ST_a"])
        before = stored_copy(server)
        message = await refused(send(
            lkapi, "UpdateSIPDispatchRule", sip_pb.UpdateSIPDispatchRuleRequest(
                sip_dispatch_rule_id=rule, update=sip_pb.SIPDispatchRuleUpdate(
                    trunk_ids=ListUpdate(clear=True, add=["ST_b"]))),
            sip_pb.SIPDispatchRuleInfo))
        assert "cannot clear and change the trunk_ids list at the same time" in message
        assert stored_copy(server) == before


async def test_an_outbound_update_leaving_no_number_or_a_uri_is_refused() -> None:
    async with serving() as (server, lkapi):
        out = await new_outbound(lkapi)
        before = stored_copy(server)
        assert "no trunk numbers specified" in await refused(
            lkapi.sip.update_outbound_trunk_fields(out, numbers=ListUpdate(remove=[NUMBER])))
        assert "not a SIP URI: 'sip:pbx@sip.example.com'" in await refused(
            lkapi.sip.update_outbound_trunk_fields(out, address="sip:pbx@sip.example.com"))
        assert stored_copy(server) == before


async def test_an_update_making_two_inbound_trunks_take_the_same_calls_is_refused() -> None:
    async with serving() as (server, lkapi):
        first = await new_inbound(lkapi, NUMBER, name="first")
        second = await new_inbound(lkapi, SECOND, name="second")
        await new_rule(lkapi, direct("desk"))
        # A trunk never conflicts with its own old form.
        assert (await lkapi.sip.update_inbound_trunk_fields(first, metadata="m")).metadata == "m"

        before = stored_copy(server)
        updates: tuple[Callable[[], Awaitable[object]], ...] = (
            lambda: lkapi.sip.update_inbound_trunk_fields(
                second, numbers=ListUpdate(add=[NUMBER])),
            lambda: lkapi.sip.update_inbound_trunk(second, api.SIPInboundTrunkInfo(
                numbers=["+1 (555) 123-4"], name="second")),  # the same number, normalised
        )
        for update in updates:
            message = await refused(update())
            assert message.startswith(
                f"conflicting inbound SIP trunks: trunk {second} ('second'), as updated, and "
                f"trunk {first} ('first') would both take calls to the number {NUMBER} from "
                "any caller (neither sets allowed_numbers); ")
            assert f"delete {first} first" in message
        assert stored_copy(server) == before
        assert (await server.sip.call_in(CALLER, NUMBER)).participant.attributes[
            "sip.trunkID"] == first


async def test_an_update_making_two_dispatch_rules_take_the_same_calls_is_refused() -> None:
    async with serving() as (server, lkapi):
        trunk = await new_inbound(lkapi, NUMBER)
        first = await new_rule(lkapi, direct("one"), trunk_ids=[trunk], name="first")
        second = await new_rule(lkapi, direct("two", pin="12"), trunk_ids=[trunk], name="second")
        assert (await lkapi.sip.update_dispatch_rule_fields(first, name="1st")).name == "1st"

        before = stored_copy(server)
        # Without its PIN, the second rule would take the first one's calls.
        updates: tuple[Callable[[], Awaitable[object]], ...] = (
            lambda: lkapi.sip.update_dispatch_rule_fields(second, rule=direct("two")),
            lambda: lkapi.sip.update_dispatch_rule(second, api.SIPDispatchRuleInfo(
                rule=direct("two"), trunk_ids=[trunk], name="second")),
        )
        for update in updates:
            message = await refused(update())
            assert message.startswith(
                f"rule {second} ('second'), as updated, would take the same calls as another: "
                "a dispatch rule for the same trunk, calling number, called number and PIN "
                f"already exists: rule {first} ('1st') takes calls on trunk {trunk} ")
        assert stored_copy(server) == before
        # The second rule still asks for its PIN, and sends callers who give it to its room.
        assert (await server.sip.call_in(CALLER, NUMBER, pin="12")).room.name == "two"


UPDATES: dict[str, Callable[[SipService, str], Awaitable[object]]] = {
    "UpdateSIPInboundTrunk": lambda sip, ident: sip.update_inbound_trunk_fields(ident, name="x"),
    "UpdateSIPOutboundTrunk": lambda sip, ident: sip.update_outbound_trunk(
        ident, api.SIPOutboundTrunkInfo(address="sip.example.com", numbers=[NUMBER])),
    "UpdateSIPDispatchRule": lambda sip, ident: sip.update_dispatch_rule_fields(ident, name="x"),
}


@pytest.mark.parametrize(
    ("method", "says"),
    [
        ("UpdateSIPInboundTrunk", "requested SIP inbound trunk does not exist: 'ST_nope' (the "
                                  "inbound trunks are: {inbound}; ListSIPInboundTrunk"),
        ("UpdateSIPOutboundTrunk", "requested SIP outbound trunk does not exist: 'ST_nope' (the "
                                   "outbound trunks are: {outbound}; ListSIPOutboundTrunk"),
        ("UpdateSIPDispatchRule", "requested SIP dispatch rule does not exist: 'ST_nope' (the "
                                  "dispatch rules are: {rule}; ListSIPDispatchRule"),
    ],
)
async def test_updating_an_unknown_id_is_not_found(method: str, says: str) -> None:
    async with serving() as (server, lkapi):
        ids = {"inbound": await new_inbound(lkapi, NUMBER), "outbound": await new_outbound(lkapi),
               "rule": await new_rule(lkapi, direct("desk"))}
        before = stored_copy(server)
        message = await refused(UPDATES[method](lkapi.sip, "ST_nope"), "not_found")
        assert says.format(**ids) in message
        assert stored_copy(server) == before


async def test_an_update_of_the_other_kind_of_trunk_names_the_method_to_use() -> None:
    async with serving() as (_, lkapi):
        inbound = await new_inbound(lkapi, NUMBER)
        outbound = await new_outbound(lkapi)
        assert f"{outbound} is another kind of trunk: use UpdateSIPOutboundTrunk" in await refused(
            lkapi.sip.update_inbound_trunk_fields(outbound, name="x"), "not_found")
        assert f"{inbound} is another kind of trunk: use UpdateSIPInboundTrunk" in await refused(
            lkapi.sip.update_outbound_trunk_fields(inbound, name="x"), "not_found")


@pytest.mark.parametrize(
    ("method", "says"),
    [
        ("UpdateSIPInboundTrunk", "trunk id must be set: set sip_trunk_id"),
        ("UpdateSIPDispatchRule", "rule id must be set: set sip_dispatch_rule_id"),
    ],
)
async def test_an_update_without_an_id_is_invalid_argument(method: str, says: str) -> None:
    async with serving() as (_, lkapi):
        assert says in await refused(UPDATES[method](lkapi.sip, ""))


async def test_an_update_without_an_action_is_invalid_argument() -> None:
    async with serving() as (_, lkapi):
        trunk = await new_inbound(lkapi, NUMBER)
        message = await refused(send(
            lkapi, "UpdateSIPInboundTrunk", sip_pb.UpdateSIPInboundTrunkRequest(
                sip_trunk_id=trunk), sip_pb.SIPInboundTrunkInfo))
        assert "missing or unsupported update action: set replace (a whole " \
               "SIPInboundTrunkInfo) or update (a SIPInboundTrunkUpdate" in message


@pytest.mark.parametrize("method", list(UPDATES))
async def test_updates_need_the_sip_admin_grant(method: str) -> None:
    async with serving() as (server, lkapi):
        ids = {"UpdateSIPInboundTrunk": await new_inbound(lkapi, NUMBER),
               "UpdateSIPOutboundTrunk": await new_outbound(lkapi, address="old.example.com"),
               "UpdateSIPDispatchRule": await new_rule(lkapi, direct("desk"))}
        before = stored_copy(server)
        token = api.AccessToken(KEY, SECRET).with_sip_grants(api.SIPGrants(call=True)).to_jwt()
        # livekit-api signs its own SIPGrants(admin=True): a client with a given token does not.
        async with api.LiveKitAPI.with_token(token, server.url) as client:
            with pytest.raises(api.TwirpError) as raised:
                await UPDATES[method](client.sip, ids[method])
        assert (raised.value.code, raised.value.status) == ("unauthenticated", 401)
        assert "needs the SIP admin grant" in raised.value.message
        assert stored_copy(server) == before
