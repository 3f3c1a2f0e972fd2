"""A graph's RoomSource follows a participant who leaves the room and comes back.

End to end: a graph (RoomSource at 16 kHz into a recording node) runs for an agent job joined
to the test LiveKit server; the participant, an SDK client, speaks a tone on a track, leaves,
joins again as a new participant and speaks another tone on a new track. The agent must hear
both tones through the same running RoomSource. The scenario runs in a private network
namespace (flowkit.testing.netns); the test asserts on the JSON it returns.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
from livekit import rtc
from scenario_kit import agent_job, join, play_tone_track, quiet_logs

import flowkit as fk
from flowkit.nodes.room import RoomSource
from flowkit.runtime.runner import GraphRunner

RATE = 16_000
"""The rate the graph asks the room source for (the SDK resamples the 48 kHz track)."""
FIRST_HZ, SECOND_HZ = 440.0, 660.0
AMPLITUDE = 0.3
LOUD = 2000  # a frame louder than this is part of a tone, not the silence around it
TIMEOUT = 20.0
AGENT = "agent"


class Ears(fk.Node):
    """Records the PCM of every frame it gets, in order (module level: annotations resolve)."""

    audio: fk.In[rtc.AudioFrame] = fk.In(default=True)

    def __init__(self) -> None:
        super().__init__()
        self.pcm: list[np.ndarray] = []
        self.formats: set[tuple[int, int]] = set()

    async def run(self, audio: AsyncIterator[rtc.AudioFrame]) -> None:
        """Keep every frame's samples until the input ends."""
        async for frame in audio:
            self.formats.add((frame.sample_rate, frame.num_channels))
            self.pcm.append(np.frombuffer(frame.data, dtype=np.int16).copy())

    def loud(self, start: int = 0, stop: int | None = None) -> list[np.ndarray]:
        """The frames with index in ``[start, stop)`` that carry a tone."""
        return [pcm for pcm in self.pcm[start:stop] if np.abs(pcm).max() > LOUD]

    def loud_seconds(self, start: int = 0) -> float:
        """How much tone was heard from frame ``start`` on, in seconds."""
        return sum(len(pcm) for pcm in self.loud(start)) / RATE


# Scenario helpers (they run inside the namespace) --------------------------------------


async def _until(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> bool:
    """Wait until ``predicate()`` holds; False when it did not within ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def _speak(client: rtc.Room, hz: float, seconds: float) -> asyncio.Task[None]:
    """Publish a new microphone track on ``client`` and play a tone on it (in a task)."""
    return await play_tone_track(client, hz, seconds, amplitude=AMPLITUDE)


async def _leave(client: rtc.Room, playing: asyncio.Task[None]) -> None:
    playing.cancel()
    await asyncio.gather(playing, return_exceptions=True)
    await client.disconnect()


def _figures(frames: list[np.ndarray]) -> dict[str, float]:
    if not frames:
        return {"rms": 0.0, "peak_hz": 0.0}
    body = np.concatenate(frames).astype(np.float64)
    rms = float(np.sqrt(np.mean(body**2)))
    spectrum = np.abs(np.fft.rfft(body * np.hanning(len(body))))
    return {"rms": rms, "peak_hz": float(np.argmax(spectrum) * RATE / len(body))}


# The scenario -------------------------------------------------------------------------------


async def scenario_participant_leaves_and_rejoins() -> dict[str, Any]:
    from flowkit.testing.livekit_server import TestLiveKitServer

    quiet_logs()
    async with TestLiveKitServer() as server:
        job = await agent_job(server, job_id="job-rejoin")
        job.close_on_disconnect = False  # alice leaving does not end the job: she comes back
        graph = fk.Graph("room-source-rejoin")
        ears = Ears()
        graph.add(RoomSource(RATE)) >> graph.add(ears)
        running = asyncio.create_task(GraphRunner(graph, job=job).run())

        alice = await join(server, "alice")
        playing = await _speak(alice, FIRST_HZ, 4.0)
        heard_first = await _until(lambda: ears.loud_seconds() >= 1.0)
        await _leave(alice, playing)
        saw_leave = await _until(lambda: "alice" not in job.room.remote_participants)
        # Whatever the agent gets from here on came after alice left: it is the second track.
        left_at = len(ears.pcm)

        alice = await join(server, "alice")
        playing = await _speak(alice, SECOND_HZ, 4.0)
        heard_second = await _until(lambda: ears.loud_seconds(left_at) >= 1.0)
        graph_ran_throughout = not running.done() and not job.shutdown_requested
        await _leave(alice, playing)

        await job.aclose()
        await asyncio.wait_for(running, TIMEOUT)
        return {
            "heard_first": heard_first,
            "saw_leave": saw_leave,
            "heard_second": heard_second,
            "first": _figures(ears.loud(0, left_at)),
            "second": _figures(ears.loud(left_at)),
            "formats": sorted(ears.formats),
            "graph_ran_throughout": graph_ran_throughout,
            "ended_with_the_room": running.done(),
        }


# The test -----------------------------------------------------------------------------------

EXPECTED_RMS = AMPLITUDE * 32767 / math.sqrt(2)


def test_room_source_hears_a_participant_again_after_they_leave_and_rejoin(
    run_scenario: Any,
) -> None:
    result = run_scenario(__file__, "scenario_participant_leaves_and_rejoins")
    assert result["heard_first"] is True, result
    assert result["saw_leave"] is True, result
    assert result["heard_second"] is True, f"the agent never heard the rejoined track: {result}"
    assert abs(result["first"]["peak_hz"] - FIRST_HZ) < 5, result
    assert abs(result["second"]["peak_hz"] - SECOND_HZ) < 5, result
    for part in ("first", "second"):
        assert 0.7 * EXPECTED_RMS < result[part]["rms"] < 1.3 * EXPECTED_RMS, result
    assert result["formats"] == [[RATE, 1]]
    # one RoomSource heard both tracks: the graph did not end when the participant left
    assert result["graph_ran_throughout"] is True
    assert result["ended_with_the_room"] is True
