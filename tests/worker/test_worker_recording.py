"""`Worker(record_dir=...)` / `flowkit start --record-dir`: each job's conversation in a WAV."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
from livekit.protocol import agent as agent_pb
from worker_support import options, running_server

import flowkit as fk
from flowkit.audio import frame_from_samples
from flowkit.recording import RecordingIO
from flowkit.testing.memory_io import MemoryIO
from flowkit.worker import Worker

GRAPH = """\
import asyncio

import numpy as np

import flowkit as fk
from flowkit.audio import frame_from_samples
from flowkit.messages import AgentAudio
from flowkit.nodes.room import RoomSink, RoomSource


class Reply(fk.Node):
    out: fk.Out[AgentAudio]

    async def run(self) -> None:
        t = np.arange(24_000) / 24_000
        pcm = (np.sin(2 * np.pi * 500 * t) * 8000).astype(np.int16).reshape(-1, 1)
        for i in range(0, 24_000, 2_400):
            await self.out.put(AgentAudio(turn_id=1, frame=frame_from_samples(pcm[i:i + 2_400],
                                                                          24_000)))
        await self.out.put(AgentAudio(turn_id=1, frame=None, final=True))


class Drain(fk.Node):
    inp: fk.In[object]

    async def run(self, inp) -> None:
        async for _ in inp:
            pass


def build(job: fk.JobContext) -> fk.Graph:
    g = fk.Graph("recorded")
    g.add(Reply()) >> g.add(RoomSink(publish_transcripts=False)) >> g.add(Drain())
    g.add(RoomSource(sample_rate=48_000)) >> g.add(Drain())
    return g
"""


def user_tone() -> list:
    t = np.arange(48_000) / 48_000
    pcm = (np.sin(2 * np.pi * 300 * t) * 8000).astype(np.int16).reshape(-1, 1)
    return [frame_from_samples(pcm[i:i + 960], 48_000) for i in range(0, 48_000, 960)]


async def test_each_job_is_recorded_to_its_own_file(tmp_path: Path) -> None:
    graph = tmp_path / "agent.py"
    graph.write_text(GRAPH)
    seen_io: list[object] = []

    async def memory_room(job: fk.JobContext) -> None:
        job.io = MemoryIO(user_tone(), paced=True)

    async with running_server() as server:
        worker = Worker(graph, options(server.url), connect_job=memory_room,
                        record_dir=tmp_path / "calls")
        try:
            await worker.start(timeout=10)
            job = await server.dispatcher.dispatch("recorded-room")
            await server.dispatcher.wait_for_job(job.id, agent_pb.JS_RUNNING)
            seen_io.extend(j.context.io for j in worker.jobs.values())
            await server.dispatcher.wait_for_job(job.id, agent_pb.JS_SUCCESS, timeout=20)
        finally:
            await worker.aclose()
    assert [type(io) for io in seen_io] == [RecordingIO]
    with wave.open(str(tmp_path / "calls" / f"{job.id}.wav"), "rb") as file:
        assert (file.getnchannels(), file.getframerate()) == (2, 16_000)
        audio = np.frombuffer(file.readframes(file.getnframes()), np.int16).reshape(-1, 2)
    # A second of each side: the user's tone on the left, the agent's reply on the right
    # (20 ms windows whose RMS shows the 8000-peak tone).
    for side in (0, 1):
        windows = audio[: len(audio) // 320 * 320, side].astype(np.float64).reshape(-1, 320)
        loud = np.sqrt((windows**2).mean(axis=1)) > 3000
        assert 0.9 <= loud.sum() * 0.02 <= 1.1, (side, loud.sum())
