"""A participant followed in a LiveKit room: LiveKitRoomIO.participant_updates and
ParticipantWatch, with the call state set from the server's side as LiveKit's SIP service does.

The scenario has a real SDK client join the test LiveKit server (in a private network
namespace, flowkit.testing.netns) while the server's API (``livekit-api``'s
``update_participant``) moves its ``sip.callStatus`` from dialing to active; the test at
the end asserts on the JSON it returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from livekit import api, rtc
from scenario_kit import agent_job, join, quiet_logs, until

import flowkit as fk
from flowkit.livekit import LiveKitRoomIO
from flowkit.messages import SIP_CALL_STATUS, ParticipantUpdate
from flowkit.nodes.participant import ParticipantWatch
from flowkit.room_io import ParticipantUpdates

TIMEOUT = 20.0


async def test_a_room_io_made_before_the_room_connects_follows_nobody_until_it_closes() -> None:
    io = LiveKitRoomIO(rtc.Room())
    assert isinstance(io, ParticipantUpdates)
    updates = io.participant_updates("callee")
    reading = asyncio.ensure_future(_read_all(updates))
    await asyncio.sleep(0)
    await io.aclose()
    assert await asyncio.wait_for(reading, 5) == []  # nobody was there: nothing to say


async def _read_all(updates: AsyncIterator[ParticipantUpdate]) -> list[Any]:
    return [_seen(u) async for u in updates]


def _seen(update: ParticipantUpdate) -> list[Any]:
    return [update.identity, update.call_status, update.present]


class _Record(fk.Node):
    updates: fk.In[ParticipantUpdate] = fk.In(default=True)

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[list[Any]] = []

    async def run(self, updates: AsyncIterator[ParticipantUpdate]) -> None:
        async for update in updates:
            self.seen.append(_seen(update))


async def scenario_the_callees_call_status_reaches_the_graph() -> dict[str, Any]:
    from flowkit.testing.livekit_server import TestLiveKitServer

    quiet_logs()
    async with TestLiveKitServer() as server:
        job = await agent_job(server)
        io = job.io
        assert isinstance(io, LiveKitRoomIO)
        graph = fk.Graph("callee")
        record = graph.add(_Record())
        graph.add(ParticipantWatch(participant="callee")) >> record
        running = asyncio.create_task(fk.GraphRunner(graph, job=job).run())
        # Whoever the I/O follows by default: the first participant who is not an agent.
        first = asyncio.create_task(_read_all(io.participant_updates()))

        async with api.LiveKitAPI(server.http_url, server.api_key, server.api_secret) as lkapi:

            async def set_status(status: str) -> None:
                await lkapi.room.update_participant(
                    api.UpdateParticipantRequest(
                        room="lobby", identity="callee", attributes={SIP_CALL_STATUS: status}
                    )
                )

            callee = await join(server, "callee")
            await until(lambda: len(record.seen) == 1, timeout=TIMEOUT)
            await set_status("dialing")
            await until(lambda: len(record.seen) == 2, timeout=TIMEOUT)
            await set_status("ringing")
            await until(lambda: len(record.seen) == 3, timeout=TIMEOUT)
            await set_status("active")
            await until(lambda: len(record.seen) == 4, timeout=TIMEOUT)
            # An attribute of the agent's own does not concern the callee.
            io.set_attributes({"lk.agent.note": "x"})
            await io.flush()
            await callee.disconnect()
            await until(lambda: len(record.seen) == 5, timeout=TIMEOUT)

        await job.aclose()  # the room I/O closes: the watch, then the graph, end
        await asyncio.wait_for(running, TIMEOUT)
        return {"graph": record.seen, "first": await asyncio.wait_for(first, TIMEOUT)}


def test_the_callees_call_status_reaches_the_graph(run_scenario: Any) -> None:
    result = run_scenario(__file__, "scenario_the_callees_call_status_reaches_the_graph")
    expected = [
        ["callee", None, True],  # joined: no call state yet
        ["callee", "dialing", True],
        ["callee", "ringing", True],
        ["callee", "active", True],
        ["callee", "active", False],  # left: as last seen, gone
    ]
    assert result["graph"] == expected
    assert result["first"] == expected
