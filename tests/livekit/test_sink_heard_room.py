"""A room sink in a real room reports what the listener heard, not what it queued.

LiveKit's ``rtc.AudioSource`` queues 200 ms ahead of what is played. The sink takes that
queue into account (``QueuedAudioOutput``): a reply finishes when its end has played, and an
interrupted reply's ``played_duration`` is what the listener got. Measured here against what
another participant in the room actually receives.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from livekit import rtc
from scenario_kit import agent_job, join, quiet_logs, until

import flowkit as fk
from flowkit.audio import frame_from_samples
from flowkit.messages import AgentAudio, Interrupt, InterruptAction, Playout, PlayoutEvent
from flowkit.nodes.room import RoomSink
from flowkit.runtime.runner import GraphRunner

TTS_RATE = 24_000
HEAR_RATE = 48_000
LOUD = 1000  # RMS of a 10 ms frame that is part of the tone (the tone's is about 7000)


class Feed(fk.Node):
    """Sends what the scenario puts in its queue, until ``None``."""

    out: fk.Out[Any]

    def __init__(self) -> None:
        super().__init__()
        self.queue: asyncio.Queue[Any] = asyncio.Queue()

    async def run(self) -> None:
        while (item := await self.queue.get()) is not None:
            self.out.send(item)


class Reports(fk.Node):
    """Keeps every playout report with the loop time it arrived at."""

    inp: fk.In[Playout]

    def __init__(self) -> None:
        super().__init__()
        self.items: list[tuple[float, Playout]] = []

    async def run(self, inp: Any) -> None:
        loop = asyncio.get_running_loop()
        async for report in inp:
            self.items.append((loop.time(), report))

    def find(self, turn: int, event: PlayoutEvent) -> tuple[float, Playout] | None:
        return next(((t, p) for t, p in self.items if p.turn_id == turn and p.event is event),
                    None)


def tone_reply(turn: int, seconds: float) -> list[AgentAudio]:
    """A reply of ``seconds`` of 300 Hz in 100 ms frames (as a TTS sends), then its end."""
    count = round(seconds * TTS_RATE)
    pcm = (0.3 * 32767 * np.sin(2 * np.pi * 300 * np.arange(count) / TTS_RATE)).astype(np.int16)
    step = TTS_RATE // 10
    items = [
        AgentAudio(turn_id=turn, frame=frame_from_samples(pcm[i : i + step].copy(), TTS_RATE),
                   text="la " * 10)
        for i in range(0, count, step)
    ]
    return [*items, AgentAudio(turn_id=turn, frame=None, segment=1, final=True)]


async def scenario_sink_reports_what_was_heard() -> dict[str, Any]:
    from flowkit.testing.livekit_server import TestLiveKitServer

    quiet_logs()
    loop = asyncio.get_running_loop()
    async with TestLiveKitServer() as server:
        job = await agent_job(server)
        bob = await join(server, "bob")
        g = fk.Graph("sink in a room")
        audio, interrupts = g.add(Feed()), g.add(Feed())
        sink, reports = g.add(RoomSink()), g.add(Reports())
        audio >> sink >> reports
        interrupts >> sink.interrupt
        running = asyncio.create_task(GraphRunner(g, job=job).run())

        # What bob hears: (arrival time, loud) per 10 ms frame of the agent's track.
        heard: list[tuple[float, bool]] = []

        async def listen() -> None:
            await until(lambda: any(p.track for r in bob.remote_participants.values()
                                    for p in r.track_publications.values()))
            (track,) = [p.track for r in bob.remote_participants.values()
                        for p in r.track_publications.values() if p.track]
            stream = rtc.AudioStream(track, sample_rate=HEAR_RATE, num_channels=1)
            async for event in stream:
                pcm = np.frombuffer(event.frame.data, np.int16).astype(np.float64)
                heard.append((loop.time(), float(np.sqrt(np.mean(pcm**2))) > LOUD))

        listening = asyncio.create_task(listen())
        for item in tone_reply(1, 1.0):
            audio.queue.put_nowait(item)
        await until(lambda: reports.find(1, PlayoutEvent.FINISHED) is not None)
        await asyncio.sleep(1.0)
        for item in tone_reply(2, 4.0):
            audio.queue.put_nowait(item)
        await until(lambda: reports.find(2, PlayoutEvent.STARTED) is not None)
        await asyncio.sleep(1.0)
        interrupts.queue.put_nowait(Interrupt(turn_id=2, action=InterruptAction.FLUSH))
        await until(lambda: reports.find(2, PlayoutEvent.INTERRUPTED) is not None)
        await asyncio.sleep(1.0)
        audio.queue.put_nowait(None)
        interrupts.queue.put_nowait(None)
        await asyncio.wait_for(running, 20.0)
        listening.cancel()

        # The two loud stretches bob heard, by their 10 ms frames.
        stretches: list[list[float]] = []
        last_loud = -1.0
        for at, loud in heard:
            if not loud:
                continue
            if not stretches or at - last_loud > 0.3:
                stretches.append([])
            stretches[-1].append(at)
            last_loud = at
        finished_at, finished = reports.find(1, PlayoutEvent.FINISHED) or (0.0, None)
        _, cut = reports.find(2, PlayoutEvent.INTERRUPTED) or (0.0, None)
        await job.aclose()
        await bob.disconnect()
        assert finished is not None and cut is not None
        return {
            "stretches": len(stretches),
            "first_heard_s": len(stretches[0]) * 0.01,
            "first_end_heard_after_finished_s": stretches[0][-1] - finished_at,
            "finished_played_s": finished.played_duration,
            "cut_heard_s": len(stretches[1]) * 0.01,
            "cut_played_s": cut.played_duration,
        }


def test_a_room_sink_reports_the_end_and_a_cut_as_the_listener_heard_them(
    run_scenario: Any,
) -> None:
    result = run_scenario(__file__, "scenario_sink_reports_what_was_heard")
    assert result["stretches"] == 2, result
    assert abs(result["first_heard_s"] - 1.0) < 0.05, result
    assert abs(result["finished_played_s"] - 1.0) < 1e-6, result
    # FINISHED came when the source had played the end, not up to its 200 ms queue before:
    # the end reaches bob after it by the network's and the receiver's delay only (about
    # 0.14 s here, 0.34 when FINISHED came as the last frame was queued).
    assert -0.05 < result["first_end_heard_after_finished_s"] < 0.24, result
    # The cut reply's reported duration is what bob got (within 0.02 s here), not what was
    # queued (0.17 s more when the queue was counted as played).
    assert abs(result["cut_played_s"] - result["cut_heard_s"]) < 0.08, result
