"""The recording scenario: a call in a real room, recorded as its two sides heard it.

The agent's room I/O is wrapped in a ``RecordingIO``. Bob speaks a 300 Hz tone for a second;
the agent answers with a 1 s reply of 500 Hz to its end, then a 4 s one that is cut after
about a second, as bob listens. The recording should hold bob's tone on the left as the
agent's room source heard it (from when it subscribed) and, on the right, the first reply
whole and the second only as far as bob heard it, 200 ms queue and all.

Not a test module: tests/livekit/test_recording_room.py asserts on its result.
"""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path
from typing import Any

import numpy as np
from scenario_kit import agent_job, join, play_tone_track, quiet_logs
from sink_heard_scenario import Feed, Reports, play_then_cut

import flowkit as fk
from flowkit.messages import PlayoutEvent
from flowkit.nodes.room import RoomSink, RoomSource
from flowkit.recording import ConversationRecorder, RecordingIO
from flowkit.runtime.runner import GraphRunner


class Ears(fk.Node):
    """Reads the room source's audio (so that the recording hears it); counts the loud part."""

    inp: fk.In[Any]

    def __init__(self) -> None:
        super().__init__()
        self.loud_s = 0.0

    async def run(self, inp: Any) -> None:
        async for frame in inp:
            pcm = np.frombuffer(frame.data, np.int16).astype(np.float64)
            if np.sqrt(np.mean(pcm**2)) > 1000:
                self.loud_s += frame.duration


def _stretches(channel: np.ndarray, rate: int) -> list[tuple[float, float]]:
    """(start, length) of each loud stretch, in seconds, by 20 ms windows."""
    size = rate // 50
    windows = channel[: len(channel) // size * size].astype(np.float64).reshape(-1, size)
    loud = np.sqrt((windows**2).mean(axis=1)) > 1000
    stretches: list[tuple[float, float]] = []
    start = None
    for i, is_loud in enumerate([*loud, False]):
        if is_loud and start is None:
            start = i
        elif not is_loud and start is not None:
            stretches.append((start * 0.02, (i - start) * 0.02))
            start = None
    return stretches


async def scenario_recorded_call() -> dict[str, Any]:
    """Run the scenario (see the module); what the recording holds."""
    from flowkit.testing.livekit_server import TestLiveKitServer

    quiet_logs()
    path = Path("/tmp") / f"flowkit-recording-{id(object())}.wav"
    async with TestLiveKitServer() as server:
        job = await agent_job(server)
        recorder = ConversationRecorder(path)
        job.io = RecordingIO(job.io, recorder)
        bob = await join(server, "bob")
        g = fk.Graph("recorded call")
        audio, interrupts = g.add(Feed()), g.add(Feed())
        sink, reports = g.add(RoomSink()), g.add(Reports())
        audio >> sink >> reports
        interrupts >> sink.interrupt
        ears = Ears()
        g.add(RoomSource(sample_rate=48_000, participant="bob")) >> g.add(ears)
        runner = GraphRunner(g, job=job)
        running = asyncio.create_task(runner.run())
        speaking = await play_tone_track(bob, 300, 1.0)
        await speaking
        await asyncio.sleep(0.5)
        await play_then_cut(audio, interrupts, reports, gap=0.5)
        await asyncio.sleep(0.5)
        audio.queue.put_nowait(None)
        interrupts.queue.put_nowait(None)
        _, cut = reports.find(2, PlayoutEvent.INTERRUPTED) or (0.0, None)
        await runner.close()
        running.cancel()
        recorder.close()
        await job.aclose()
        await bob.disconnect()
    with wave.open(str(path), "rb") as file:
        rate = file.getframerate()
        stereo = np.frombuffer(file.readframes(file.getnframes()), np.int16).reshape(-1, 2)
    path.unlink()
    assert cut is not None
    return {
        "rate": rate,
        "user": _stretches(stereo[:, 0], rate),
        "agent": _stretches(stereo[:, 1], rate),
        "cut_played_s": cut.played_duration,
        "user_heard_s": ears.loud_s,
        "node_errors": [str(error) for error in runner.node_errors],
    }
