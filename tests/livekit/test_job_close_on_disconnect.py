"""A LiveKit job ends when the participant it serves leaves the room (``close_on_disconnect``).

Jobs joined to the test server as agents, with SDK clients as the people in the room: the
job serves the first person who joined, or whom its microphone input hears; that person
hanging up (the client's leave: ``CLIENT_INITIATED``) ends the job, with a reason that says
who left and why. Someone else leaving, a removal by the server API, or a job whose
``close_on_disconnect`` is off leaves it running. The scenario runs in a private network
namespace (WebRTC needs a real link); the tests assert on the JSON it returns.
"""

from __future__ import annotations

import asyncio
from typing import Any

from livekit import api, rtc
from scenario_kit import ToneCounter, agent_job, join, play_tone_track, quiet_logs, until

import flowkit as fk
from flowkit.nodes.room import RoomSource
from flowkit.runtime.runner import GraphRunner


async def _leave(client: rtc.Room, job: fk.JobContext, identity: str) -> None:
    await client.disconnect()
    await until(lambda: identity not in job.room.remote_participants)


async def scenario_jobs_end_when_their_participant_leaves() -> dict[str, Any]:
    from flowkit.testing.livekit_server import TestLiveKitServer

    quiet_logs()
    result: dict[str, Any] = {}
    async with TestLiveKitServer() as server:
        # The lobby: two jobs serve the first person in, alice; the second keeps going.
        ending = await agent_job(server, "job-ending", identity="agent-1")
        staying = await agent_job(server, "job-staying", identity="agent-2")
        staying.close_on_disconnect = False
        seen: dict[str, int | None] = {}
        ending.room.on("participant_disconnected",
                       lambda p: seen.__setitem__(p.identity, p.disconnect_reason))
        alice = await join(server, "alice")
        bob = await join(server, "bob")
        await until(lambda: {"alice", "bob"} <= set(ending.room.remote_participants))
        result["linked"] = [ending.livekit.linked_participant if ending.livekit else None]
        await _leave(bob, ending, "bob")
        result["after_bob"] = [ending.shutdown_requested, staying.shutdown_requested]
        await _leave(alice, ending, "alice")
        await until(lambda: "alice" not in staying.room.remote_participants)
        result["after_alice"] = [ending.shutdown_requested, staying.shutdown_requested]
        result["reasons"] = [ending.shutdown_reason, staying.shutdown_reason]
        result["seen"] = {k: rtc.DisconnectReason.Name(v) if v else None for k, v in seen.items()}
        # The job that goes on serves whoever comes next.
        dora = await join(server, "dora")
        await until(lambda: "dora" in staying.room.remote_participants)
        result["staying_linked_then"] = staying.livekit.linked_participant if staying.livekit \
            else None
        await dora.disconnect()

        # The hall: carol is first in, but the job's microphone input hears dave.
        job = await agent_job(server, "job-hall", identity="agent-3", room="hall")
        graph = fk.Graph("hall")
        ears = ToneCounter()
        graph.add(RoomSource(16_000)) >> graph.add(ears)
        running = asyncio.create_task(GraphRunner(graph, job=job).run())
        carol = await join(server, "carol", room="hall")
        dave = await join(server, "dave", room="hall")
        playing = await play_tone_track(dave, 440.0, 3.0)
        await until(lambda: ears.loud > 10)
        result["hall_linked"] = job.livekit.linked_participant if job.livekit else None
        await _leave(carol, job, "carol")
        result["after_carol"] = job.shutdown_requested
        # The server removes dave (RemoveParticipant): not his leaving; the job goes on.
        async with api.LiveKitAPI(server.url, server.api_key, server.api_secret) as lkapi:
            await lkapi.room.remove_participant(
                api.RoomParticipantIdentity(room="hall", identity="dave"))
        await until(lambda: "dave" not in job.room.remote_participants)
        playing.cancel()
        result["after_removal"] = job.shutdown_requested
        # Erin is heard next, then hangs up: the job ends.
        erin = await join(server, "erin", room="hall")
        playing = await play_tone_track(erin, 660.0, 3.0)
        heard = ears.loud
        await until(lambda: ears.loud > heard + 10)
        result["hall_linked_then"] = job.livekit.linked_participant if job.livekit else None
        playing.cancel()
        await _leave(erin, job, "erin")
        result["hall_reason"] = job.shutdown_reason

        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        for each in (ending, staying, job):
            await each.aclose()
        await dave.disconnect()
    return result


def test_a_job_ends_when_the_participant_it_serves_hangs_up(run_scenario: Any) -> None:
    result = run_scenario(__file__, "scenario_jobs_end_when_their_participant_leaves", 120.0)
    # The lobby. The first person in is served; bob leaving changes nothing.
    assert result["linked"] == ["alice"], result
    assert result["after_bob"] == [False, False], result
    # Alice hangs up: the first job ends, saying who left and why; the other goes on.
    assert result["after_alice"] == [True, False], result
    assert result["reasons"] == ["participant 'alice' left the room (CLIENT_INITIATED)", None]
    assert result["staying_linked_then"] == "dora", result
    # The test server tells the room why each left, as LiveKit does.
    assert result["seen"] == {"bob": "CLIENT_INITIATED", "alice": "CLIENT_INITIATED"}, result
    # The hall. Whom the microphone input hears is served, not the first person in.
    assert result["hall_linked"] == "dave", result
    assert result["after_carol"] is False, result
    # A removal by the server API is not the participant leaving.
    assert result["after_removal"] is False, result
    assert result["hall_linked_then"] == "erin", result
    assert result["hall_reason"] == "participant 'erin' left the room (CLIENT_INITIATED)"
