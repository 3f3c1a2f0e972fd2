"""DTMF in a LiveKit room: keypad presses in through LiveKitRoomIO and DTMFInput, and out.

The first tests need no server: they emit the SDK's ``sip_dtmf_received`` on a room that is
not connected. The scenario has real SDK participants press keys (``publish_dtmf``) through
the test LiveKit server, in a private network namespace (flowkit.testing.netns); the test at
the end asserts on the JSON it returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from livekit import rtc
from livekit.protocol import models
from scenario_kit import agent_job, join, quiet_logs, until

import flowkit as fk
from flowkit.livekit import LiveKitRoomIO
from flowkit.messages import DTMFDigit, UserTurn
from flowkit.nodes.dtmf import DTMFInput
from flowkit.room_io import DTMFInputSource, DTMFOutput
from flowkit.testing.livekit_server.rooms import Participant, Room

TIMEOUT = 20.0

# The room I/O before it is connected ----------------------------------------------------


@dataclass
class _Someone:
    """Stands in for the SDK's RemoteParticipant (only its identity is read)."""

    identity: str


def _press(io: LiveKitRoomIO, code: int, digit: str, who: str | None) -> None:
    sender: Any = None if who is None else _Someone(who)
    io.room.emit("sip_dtmf_received", rtc.SipDTMF(code=code, digit=digit, participant=sender))


async def _read_all(stream: AsyncIterator[DTMFDigit]) -> list[tuple[str, int, str]]:
    return [(d.digit, d.code, d.participant) async for d in stream]


async def test_room_io_hears_presses_per_participant_and_keeps_a_backlog() -> None:
    io = LiveKitRoomIO(rtc.Room())
    assert isinstance(io, DTMFInputSource) and isinstance(io, DTMFOutput)
    _press(io, 1, "1", "alice")  # nobody reads yet: kept for the first reader
    everyone = io.dtmf_input()
    only_bob = io.dtmf_input("bob")
    _press(io, 9, "9", "bob")
    _press(io, 11, "", "alice")  # the code alone names the key
    _press(io, 99, "", "alice")  # neither digit nor a known code: dropped
    _press(io, 5, "5", None)  # sent by the server, on nobody's behalf
    reading = asyncio.gather(_read_all(everyone), _read_all(only_bob))
    await asyncio.sleep(0)
    await io.aclose()  # ends every reader
    all_presses, bobs = await asyncio.wait_for(reading, 5)
    assert all_presses == [
        ("1", 1, "alice"),
        ("9", 9, "bob"),
        ("#", 11, "alice"),
        ("5", 5, ""),
    ]
    assert bobs == [("9", 9, "bob")]
    _press(io, 2, "2", "alice")  # after the close: the handler is gone
    assert await _read_all(io.dtmf_input()) == []


async def test_presses_while_on_hold_are_dropped() -> None:
    io = LiveKitRoomIO(rtc.Room())
    presses = io.dtmf_input()
    _press(io, 1, "1", "caller")
    io.set_on_hold(True)  # a warm transfer: meant for nobody here
    _press(io, 2, "2", "caller")
    io.set_on_hold(False)
    _press(io, 3, "3", "caller")
    reading = asyncio.ensure_future(_read_all(presses))
    await asyncio.sleep(0)
    await io.aclose()
    assert await asyncio.wait_for(reading, 5) == [("1", 1, "caller"), ("3", 3, "caller")]


async def test_a_participant_room_io_hears_its_participant_by_default() -> None:
    io = LiveKitRoomIO(rtc.Room(), participant="caller")
    presses = io.dtmf_input()
    _press(io, 3, "3", "someone-else")
    _press(io, 4, "4", "caller")
    reading = asyncio.ensure_future(_read_all(presses))
    await asyncio.sleep(0)
    await io.aclose()
    assert await asyncio.wait_for(reading, 5) == [("4", 4, "caller")]


async def test_publish_dtmf_refuses_what_is_not_a_key_before_waiting_for_the_room() -> None:
    io = LiveKitRoomIO(rtc.Room())
    with pytest.raises(ValueError, match="'12' is not a telephone keypad key"):
        await asyncio.wait_for(io.publish_dtmf("12"), 1)
    await io.aclose()


# The test server's relay --------------------------------------------------------------


class _Link:
    """A participant's link that keeps the data packets it is sent."""

    def __init__(self) -> None:
        self.packets: list[models.DataPacket] = []

    def send_signal(self, response: Any) -> None:
        pass

    def send_data(self, label: str, payload: bytes) -> None:
        packet = models.DataPacket()
        packet.ParseFromString(payload)
        self.packets.append(packet)


def test_the_server_relays_dtmf_with_the_senders_identity_to_its_destinations() -> None:
    room = Room("lobby")
    links = {who: _Link() for who in ("caller", "agent", "other")}
    people = {
        who: Participant(sid=f"PA_{who}", identity=who, link=link)  # type: ignore[arg-type]
        for who, link in links.items()
    }
    for person in people.values():
        room.join(person)
    spoofed = models.DataPacket(
        participant_identity="mallory",  # a sender cannot speak for someone else
        sip_dtmf=models.SipDTMF(code=11, digit="#"),
    )
    room.relay_data(people["caller"], "_reliable", spoofed)
    to_agent = models.DataPacket(
        destination_identities=["agent"], sip_dtmf=models.SipDTMF(code=1, digit="1")
    )
    room.relay_data(people["caller"], "_reliable", to_agent)

    def seen(who: str) -> list[tuple[str, int, str, str]]:
        return [
            (p.sip_dtmf.digit, p.sip_dtmf.code, p.participant_identity, p.participant_sid)
            for p in links[who].packets
        ]

    assert seen("agent") == [("#", 11, "caller", "PA_caller"), ("1", 1, "caller", "PA_caller")]
    assert seen("other") == [("#", 11, "caller", "PA_caller")]
    assert seen("caller") == []  # not echoed to its sender


# The scenario against the test LiveKit server (run inside a network namespace) ---------


class _Record(fk.Node):
    turns: fk.In[UserTurn] = fk.In(default=True)
    digits: fk.In[DTMFDigit] = fk.In()

    def __init__(self) -> None:
        super().__init__()
        self.turns_seen: list[tuple[str, str]] = []
        self.digits_seen: list[tuple[str, int, str]] = []

    async def run(
        self, turns: AsyncIterator[UserTurn], digits: AsyncIterator[DTMFDigit]
    ) -> None:
        async def read_digits() -> None:
            async for d in digits:
                self.digits_seen.append((d.digit, d.code, d.participant))

        task = asyncio.create_task(read_digits())
        async for turn in turns:
            self.turns_seen.append((turn.text, turn.speaker))
        await task


async def scenario_keypad_presses_reach_the_graph_and_the_agent_presses_back() -> dict[str, Any]:
    from flowkit.testing.livekit_server import TestLiveKitServer

    quiet_logs()
    async with TestLiveKitServer() as server:
        job = await agent_job(server)
        io = job.io
        assert isinstance(io, LiveKitRoomIO)
        graph = fk.Graph("keypad")
        keypad, record = graph.add(DTMFInput(participant="alice")), graph.add(_Record())
        keypad.turns >> record.turns
        keypad.digits >> record.digits
        running = asyncio.create_task(fk.GraphRunner(graph, job=job).run())
        bobs = asyncio.create_task(_read_all(io.dtmf_input("bob")))

        alice, bob = await join(server, "alice"), await join(server, "bob")
        heard_by_alice: list[tuple[str, int, str | None]] = []
        alice.on(
            "sip_dtmf_received",
            lambda ev: heard_by_alice.append(
                (ev.digit, ev.code, None if ev.participant is None else ev.participant.identity)
            ),
        )
        # A press from someone the agent does not know yet is dropped by the SDK itself.
        await until(lambda: {"alice", "bob"} <= set(io.room.remote_participants))
        for digit, code in (("4", 4), ("2", 2)):
            await alice.local_participant.publish_dtmf(code=code, digit=digit)
        await bob.local_participant.publish_dtmf(code=9, digit="9")
        await alice.local_participant.publish_dtmf(code=11, digit="#")
        await until(lambda: bool(record.turns_seen), timeout=TIMEOUT)

        await io.publish_dtmf("5")
        await until(lambda: any(who == "agent" for *_, who in heard_by_alice), timeout=TIMEOUT)

        await job.aclose()  # ends the keypad input: the node, then the graph, end
        await asyncio.wait_for(running, TIMEOUT)
        bob_presses = await asyncio.wait_for(bobs, TIMEOUT)
        await alice.disconnect()
        await bob.disconnect()
        return {
            "turns": record.turns_seen,
            "digits": record.digits_seen,
            "bob": bob_presses,
            "heard_by_alice": heard_by_alice,
        }


def test_keypad_presses_reach_the_graph_and_the_agent_presses_back(run_scenario: Any) -> None:
    result = run_scenario(
        __file__, "scenario_keypad_presses_reach_the_graph_and_the_agent_presses_back"
    )
    # alice's presses, with her identity as the server stamped it; bob's are not hers
    assert result["digits"] == [["4", 4, "alice"], ["2", 2, "alice"], ["#", 11, "alice"]]
    assert result["turns"] == [["<dtmf>4 2</dtmf>", "alice"]]
    assert result["bob"] == [["9", 9, "bob"]]
    # every press reaches every other participant: bob's, and the agent's own
    assert result["heard_by_alice"] == [["9", 9, "bob"], ["5", 5, "agent"]]
