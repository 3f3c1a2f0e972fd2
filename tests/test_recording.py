"""Call recording: the user left, the agent right, each where the listener heard it."""

from __future__ import annotations

import asyncio
import logging
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from livekit import rtc

import flowkit as fk
from flowkit.audio import frame_from_samples
from flowkit.messages import AgentAudio, Interrupt, InterruptAction
from flowkit.nodes.room import RoomSink, RoomSource
from flowkit.recording import ConversationRecorder, RecordingIO
from flowkit.testing.memory_io import MemoryIO

RATE = 16_000


def tone(hz: float, seconds: float, rate: int = 48_000, size: int = 960) -> list[rtc.AudioFrame]:
    t = np.arange(round(seconds * rate)) / rate
    pcm = (np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16).reshape(-1, 1)
    return [frame_from_samples(pcm[i:i + size], rate) for i in range(0, len(pcm), size)]


def read(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as file:
        assert (file.getnchannels(), file.getframerate()) == (2, RATE)
        return np.frombuffer(file.readframes(file.getnframes()), np.int16).reshape(-1, 2)


def loud(channel: np.ndarray, step: float = 0.05) -> list[float]:
    """The starts of the ``step``-second stretches of ``channel`` that hold sound."""
    size = round(step * RATE)
    return [i / RATE for i in range(0, len(channel) - size + 1, size)
            if np.abs(channel[i:i + size].astype(np.int32)).mean() > 1000]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_each_side_lands_where_it_was_heard_and_a_cut_is_taken_out(tmp_path: Path) -> None:
    clock = Clock()
    recorder = ConversationRecorder(tmp_path / "call.wav", clock=clock, hold_s=1.0)
    clock.now = 0.5  # the user speaks from 0.5 s to 1.5 s
    for frame in tone(300, 1.0):
        recorder.user(frame)
        clock.now += 0.02
    # The agent's reply, written at 2.0 s into a queue: heard from 2.2 s, for 1.0 s ...
    clock.now = 2.0
    for i, frame in enumerate(tone(500, 1.0, rate=24_000, size=480)):
        recorder.agent(frame, heard_at=2.2 + 0.02 * i)
    # ... but a barge-in at 2.6 s clears what was not heard yet.
    clock.now = 2.6
    recorder.cut_agent(2.6)
    clock.now = 4.0
    recorder.close()
    audio = read(tmp_path / "call.wav")
    user, agent = loud(audio[:, 0]), loud(audio[:, 1])
    assert user[0] == pytest.approx(0.5, abs=0.05) and user[-1] == pytest.approx(1.45, abs=0.05)
    assert agent[0] == pytest.approx(2.2, abs=0.05) and agent[-1] == pytest.approx(2.55, abs=0.05)
    assert recorder.seconds == pytest.approx(2.6, abs=0.05)  # ends with the last sound


def test_the_file_plays_while_the_call_goes_on(tmp_path: Path) -> None:
    clock = Clock()
    recorder = ConversationRecorder(tmp_path / "call.wav", clock=clock, hold_s=1.0)
    for frame in tone(300, 3.0):
        recorder.user(frame)
        clock.now += 0.02
    # Not closed: what lies more than a second behind is in the file, header and all.
    assert read(tmp_path / "call.wav").shape[0] == pytest.approx(2.0 * RATE, abs=0.05 * RATE)
    recorder.close()


class Replies(fk.Node):
    """A 1 s reply at 0.5 s, then a 2 s one at 3.0 s, cut at 3.5 s."""

    out: fk.Out[AgentAudio]
    cuts: fk.Out[Interrupt]

    async def run(self) -> None:
        await asyncio.sleep(0.5)
        for turn, seconds, wait in ((1, 1.0, 2.5), (2, 2.0, 0.5)):
            for frame in tone(500, seconds, rate=24_000, size=2400):
                await self.out.put(AgentAudio(turn_id=turn, frame=frame, text="la"))
            await self.out.put(AgentAudio(turn_id=turn, frame=None, final=True))
            await asyncio.sleep(wait)
        await self.cuts.put(Interrupt(turn_id=2, action=InterruptAction.FLUSH))
        await asyncio.sleep(1.0)


class Drain(fk.Node):
    inp: fk.In[Any]

    async def run(self, inp: Any) -> None:
        async for _ in inp:
            pass


@pytest.mark.looptime
async def test_a_graph_through_a_recording_io_with_a_playout_queue(tmp_path: Path) -> None:
    io = MemoryIO(tone(300, 2.0), paced=True, output_queue=0.2)
    recorder = ConversationRecorder(tmp_path / "job.wav")
    job = fk.JobContext(io=RecordingIO(io, recorder))
    g = fk.Graph("recorded")
    replies = g.add(Replies())
    sink = g.add(RoomSink(publish_transcripts=False))
    replies.out >> sink
    replies.cuts >> sink.interrupt
    sink.playout >> g.add(Drain())
    g.add(RoomSource(sample_rate=48_000)) >> g.add(Drain())
    await fk.GraphRunner(g, job=job).run()
    recorder.close()
    audio = read(tmp_path / "job.wav")
    user, agent = loud(audio[:, 0]), loud(audio[:, 1])
    assert user[0] == pytest.approx(0.0, abs=0.05) and user[-1] == pytest.approx(1.95, abs=0.05)
    # The agent where it was heard (the 200 ms queue taken into account), and the cut
    # reply only up to the cut, as the listener got them.
    assert agent[0] == pytest.approx(0.5, abs=0.05)
    first = [t for t in agent if t < 2.0]
    second = [t for t in agent if t >= 2.0]
    assert first[-1] == pytest.approx(1.45, abs=0.05)
    assert second[0] == pytest.approx(3.0, abs=0.05) and second[-1] == pytest.approx(3.45, abs=0.06)
    # Everything else of the I/O is the memory I/O's own.
    assert io.played and not hasattr(RecordingIO(io, recorder), "avatar_output")


def test_a_file_that_cannot_be_written_stops_the_recording_not_the_call(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="flowkit.recording")
    blocker = tmp_path / "calls"
    blocker.write_text("a file where the folder should be")
    clock = Clock()
    recorder = ConversationRecorder(blocker / "job.wav", clock=clock, hold_s=0.5)
    for frame in tone(300, 2.0):  # no error reaches whoever hands the frames over
        recorder.user(frame)
        clock.now += 0.02
    recorder.close()
    assert isinstance(recorder.failed, OSError) and recorder.seconds == 0.0
    assert f"cannot write the recording {blocker / 'job.wav'}" in caplog.text
    assert "the call goes on unrecorded" in caplog.text
    assert caplog.text.count("cannot write the recording") == 1  # said once
