"""The room-sink scenario: what a listener in a real room heard, against the sink's reports.

LiveKit's ``rtc.AudioSource`` queues 200 ms ahead of what is played. The sink takes that
queue into account (``QueuedAudioOutput``): a reply finishes when its end has played, and an
interrupted reply's ``played_duration`` is what the listener got. The scenario plays a 1 s
reply to its end and cuts a 4 s one after about 1 s, while a second participant listens.

Not a test module: tests/livekit/test_sink_heard_room.py asserts on its result, and
bench/sink_heard.py prints its figures, with the queue taken into account and without (the
sink as it was before, for the comparison).
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


async def play_then_cut(
    audio: Feed, interrupts: Feed, reports: Reports, *, gap: float = 1.0
) -> None:
    """Turn 1, a 1 s reply, played to its end; ``gap`` later turn 2, a 4 s reply, cut
    (flushed) a second after it started; returns once the sink reported the cut."""
    for item in tone_reply(1, 1.0):
        audio.queue.put_nowait(item)
    await until(lambda: reports.find(1, PlayoutEvent.FINISHED) is not None)
    await asyncio.sleep(gap)
    for item in tone_reply(2, 4.0):
        audio.queue.put_nowait(item)
    await until(lambda: reports.find(2, PlayoutEvent.STARTED) is not None)
    await asyncio.sleep(1.0)
    interrupts.queue.put_nowait(Interrupt(turn_id=2, action=InterruptAction.FLUSH))
    await until(lambda: reports.find(2, PlayoutEvent.INTERRUPTED) is not None)


class QueueBlindIO:
    """The job's room I/O with an audio output that does not say what it holds unheard.

    The sink then counts a frame as played once it is queued, as it did before it read
    ``QueuedAudioOutput``: what the benchmark compares against.
    """

    def __init__(self, io: Any) -> None:
        self._io = io

    def __getattr__(self, name: str) -> Any:
        return getattr(self._io, name)

    def audio_output(self, sample_rate: int, num_channels: int) -> Any:
        return _QueueBlindOutput(self._io.audio_output(sample_rate, num_channels))


class _QueueBlindOutput:
    """An audio output with what ``AudioOutput`` asks for only (no ``queued_seconds``)."""

    def __init__(self, output: Any) -> None:
        self._output = output

    @property
    def paced(self) -> bool:
        return bool(self._output.paced)

    async def write(self, frame: rtc.AudioFrame) -> None:
        await self._output.write(frame)

    def clear(self) -> None:
        self._output.clear()

    async def aclose(self) -> None:
        await self._output.aclose()


async def scenario_sink_reports_what_was_heard() -> dict[str, Any]:
    """The scenario with the sink as it is (see the module)."""
    return await sink_in_a_room(queue_aware=True)


async def scenario_sink_counts_what_was_queued() -> dict[str, Any]:
    """The scenario with an output that hides its queue (see :class:`QueueBlindIO`)."""
    return await sink_in_a_room(queue_aware=False)


async def sink_in_a_room(*, queue_aware: bool) -> dict[str, Any]:
    """Play a reply to its end and cut another; what bob heard of each, and what was reported.

    Returns:
        ``stretches``: loud stretches bob heard (2 expected); ``first_heard_s`` and
        ``cut_heard_s``: how long each was; ``first_end_heard_after_finished_s``: when the
        end of the first reached bob, after its ``FINISHED``; ``finished_played_s`` and
        ``cut_played_s``: the ``played_duration`` the sink reported for each;
        ``node_errors``: the graph's node errors (none expected).
    """
    from flowkit.testing.livekit_server import TestLiveKitServer

    quiet_logs()
    loop = asyncio.get_running_loop()
    async with TestLiveKitServer() as server:
        job = await agent_job(server)
        if not queue_aware:
            job.io = QueueBlindIO(job.io)
        bob = await join(server, "bob")
        g = fk.Graph("sink in a room")
        audio, interrupts = g.add(Feed()), g.add(Feed())
        sink, reports = g.add(RoomSink()), g.add(Reports())
        audio >> sink >> reports
        interrupts >> sink.interrupt
        runner = GraphRunner(g, job=job)
        running = asyncio.create_task(runner.run())

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
        await play_then_cut(audio, interrupts, reports)
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
            "node_errors": [str(error) for error in runner.node_errors],
        }

