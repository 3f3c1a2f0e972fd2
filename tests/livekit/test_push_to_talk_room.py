"""Push to talk in a room: a client's RPC calls work the agent's talk button.

End to end against the test LiveKit server: an agent job runs RoomSource → PushToTalk →
a recorder; alice, an SDK client, plays a tone the whole time and calls ``start_turn`` and
``end_turn`` on the agent with ``perform_rpc``, as LiveKit's push-to-talk frontend does. The
agent hears her only between the two. The scenario runs in a private network namespace
(WebRTC needs a real link); the test asserts on the JSON it returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from scenario_kit import ToneCounter, agent_job, join, play_tone_track, quiet_logs, until

import flowkit as fk
from flowkit.nodes.push_to_talk import PushToTalk
from flowkit.nodes.room import RoomSource
from flowkit.runtime.runner import GraphRunner


class Record(fk.Node):
    """Keeps the messages it gets."""

    inp: fk.In[str] = fk.In(default=True)

    def __init__(self) -> None:
        super().__init__()
        self.items: list[str] = []

    async def run(self, inp: AsyncIterator[str]) -> None:
        """Keep each message until the input ends."""
        async for item in inp:
            self.items.append(item)


async def scenario_a_client_works_the_talk_button() -> dict[str, Any]:
    from flowkit.testing.livekit_server import TestLiveKitServer

    quiet_logs()
    out: dict[str, Any] = {}
    async with TestLiveKitServer() as server:
        job = await agent_job(server, "job-ptt", identity="agent")
        graph = fk.Graph("push-to-talk-room")
        button = graph.add(PushToTalk(), name="button")
        ears, commits, clears = ToneCounter(), Record(), Record()
        graph.add(RoomSource(48_000)) >> button >> graph.add(ears)
        button.commit >> graph.add(commits, name="commits")
        button.clear >> graph.add(clears, name="clears")
        running = asyncio.create_task(GraphRunner(graph, job=job).run())
        alice = await join(server, "alice")
        playing = await play_tone_track(alice, 440.0, 8.0)
        await until(lambda: ears.frames > 50)  # her track reaches the agent, as silence
        out["loud_while_up"] = ears.loud
        rpc = alice.local_participant.perform_rpc
        out["start"] = await rpc(destination_identity="agent", method="start_turn", payload="")
        await until(lambda: ears.loud > 25)
        out["end"] = await rpc(destination_identity="agent", method="end_turn", payload="")
        released = ears.loud
        await asyncio.sleep(1.0)
        out["loud_after_release"] = ears.loud - released
        out["commits"], out["clears"] = commits.items, clears.items
        playing.cancel()
        await asyncio.gather(playing, return_exceptions=True)
        await alice.disconnect()
        await job.aclose()
        await asyncio.wait_for(running, 20)
    return out


def test_a_clients_rpc_calls_work_the_talk_button(run_scenario: Any) -> None:
    result = run_scenario(__file__, "scenario_a_client_works_the_talk_button", 120.0)
    assert result["loud_while_up"] == 0, result  # a second of her tone, not heard
    assert result["start"] == "" and result["end"] == "", result
    assert result["commits"] == ["end"] and result["clears"] == ["start"], result
    # Frames already past the button when she let go, at most (a loaded machine may hold a
    # few in the recorder's queue); held, the second after it would bring about 50.
    assert result["loud_after_release"] <= 15, result
