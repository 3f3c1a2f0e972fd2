"""The avatar protocol's two sides without a room: the sink's wiring, reports, bad input."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from livekit import rtc

import flowkit as fk
from flowkit.audio import frame_from_samples
from flowkit.livekit.avatar import (
    RPC_PLAYBACK_FINISHED,
    RPC_PLAYBACK_STARTED,
    AvatarAudioOutput,
    PlaybackFinished,
)
from flowkit.livekit.avatar_runner import AvatarRunner, WaveformVideo
from flowkit.messages import AgentAudio, PlayoutEvent
from flowkit.nodes.room import RoomSink
from flowkit.ports import AudioFormat
from flowkit.problems import NodeParamsError
from flowkit.testing.memory_io import MemoryAudioOutput, MemoryIO

RATE = 24_000


def reply(turn: int, seconds: float) -> list[AgentAudio]:
    """``seconds`` of 300 Hz in 100 ms frames, then the reply's end."""
    t = np.arange(round(seconds * RATE)) / RATE
    pcm = (np.sin(2 * np.pi * 300 * t) * 8000).astype(np.int16).reshape(-1, 1)
    step = RATE // 10
    frames = [frame_from_samples(pcm[i:i + step], RATE) for i in range(0, len(pcm), step)]
    return [*(AgentAudio(turn_id=turn, frame=f, text="la la") for f in frames),
            AgentAudio(turn_id=turn, frame=None, final=True)]


class Replies(fk.Node):
    """Sends two replies, one after the other."""

    out: fk.Out[AgentAudio]

    async def run(self) -> None:
        for item in reply(1, 0.3):
            await self.out.put(item)
        await asyncio.sleep(1.0)  # after the first has played
        for item in reply(2, 0.2):
            await self.out.put(item)


class Reports(fk.Node):
    """Keeps the playout reports."""

    inp: fk.In[fk.Playout]

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[int, PlayoutEvent]] = []

    async def run(self, inp: Any) -> None:
        async for report in inp:
            self.events.append((report.turn_id, report.event))


class SegmentedOutput(MemoryAudioOutput):
    """A memory output that counts the ends of its segments."""

    def __init__(self, io: MemoryIO, fmt: AudioFormat) -> None:
        self.sent: list[tuple[float, rtc.AudioFrame]] = []
        super().__init__(io, fmt, record=self.sent)
        self.segment_ends: list[float] = []

    def end_segment(self) -> None:
        self.segment_ends.append(self.played_duration())

    def played_duration(self) -> float:
        return sum(f.samples_per_channel / f.sample_rate for _, f in self.sent)


class AvatarMemoryIO(MemoryIO):
    """A memory I/O with avatars: records whom the voice went to."""

    def __init__(self) -> None:
        super().__init__(paced=True)
        self.avatars: list[tuple[str, int, int]] = []
        self.avatar: SegmentedOutput | None = None

    def avatar_output(self, identity: str, sample_rate: int, num_channels: int) -> Any:
        self.avatars.append((identity, sample_rate, num_channels))
        self.avatar = SegmentedOutput(self, AudioFormat(sample_rate, num_channels))
        return self.avatar


async def run_sink(io: MemoryIO, sink: RoomSink) -> Reports:
    g = fk.Graph("avatar sink")
    reports = Reports()
    g.add(Replies()) >> g.add(sink) >> g.add(reports)
    await fk.GraphRunner(g, job=fk.JobContext(io=io)).run()
    return reports


@pytest.mark.looptime
async def test_the_sink_sends_the_voice_to_the_avatar_and_ends_each_reply() -> None:
    io = AvatarMemoryIO()
    reports = await run_sink(io, RoomSink(avatar="avatar-1"))
    assert io.avatars == [("avatar-1", RATE, 1)]
    assert io.played == []  # nothing on the agent's own voice output
    assert io.avatar is not None
    # One segment per reply, ended after its last frame.
    assert io.avatar.segment_ends == pytest.approx([0.3, 0.5])
    assert reports.events == [(1, PlayoutEvent.STARTED), (1, PlayoutEvent.FINISHED),
                              (2, PlayoutEvent.STARTED), (2, PlayoutEvent.FINISHED)]


@pytest.mark.looptime
async def test_without_avatars_the_voice_plays_as_is(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="flowkit")
    io = MemoryIO(paced=True)
    reports = await run_sink(io, RoomSink(avatar="avatar-1"))
    assert sum(f.samples_per_channel for _, f in io.played) == round(0.5 * RATE)
    assert reports.events[-1] == (2, PlayoutEvent.FINISHED)
    assert "no avatar here (MemoryIO): avatar 'avatar-1' is not sent the voice" in caplog.text


def test_an_empty_avatar_identity_is_refused() -> None:
    with pytest.raises(NodeParamsError, match="avatar: String should have at least 1"):
        RoomSink(avatar="")


class FakeIO:
    """What AvatarAudioOutput asks of the room's I/O: its RPC methods."""

    def __init__(self) -> None:
        self.rpc: dict[str, Any] = {}

    def register_rpc(self, name: str, handler: Any) -> None:
        self.rpc[name] = handler

    def unregister_rpc(self, name: str) -> None:
        self.rpc.pop(name, None)


def call(handler: Any, caller: str, payload: str) -> Any:
    return handler(rtc.RpcInvocationData("req-1", caller, payload, 5.0))


async def test_the_agent_takes_the_avatars_reports_and_refuses_bad_ones(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="flowkit.livekit")
    io = FakeIO()
    output = AvatarAudioOutput(io, "avatar-1", AudioFormat(RATE, 1))  # type: ignore[arg-type]
    finished, started = io.rpc[RPC_PLAYBACK_FINISHED], io.rpc[RPC_PLAYBACK_STARTED]
    assert call(started, "avatar-1", "") == "ok" and output.started == 1
    report = PlaybackFinished(playback_position=1.25, interrupted=True)
    assert call(finished, "avatar-1", report.payload()) == "ok"
    assert output.finished == [report]
    # Another participant's report is not the avatar's.
    assert call(finished, "mallory", report.payload()) == "reject"
    assert call(started, "mallory", "") == "reject" and output.started == 1
    assert "lk.playback_finished from 'mallory', not the avatar 'avatar-1'" in caplog.text
    # A payload that is not the protocol's: the avatar is told what was expected.
    for payload in ("not json", '{"playback_position": -1}', '{"interrupted": true}'):
        with pytest.raises(rtc.RpcError, match="playback_position"):
            call(finished, "avatar-1", payload)
    assert output.finished == [report]
    assert "sent a lk.playback_finished the agent cannot read" in caplog.text
    await output.release()
    assert io.rpc == {}


async def test_a_write_in_another_format_names_both() -> None:
    output = AvatarAudioOutput(FakeIO(), "avatar-1", AudioFormat(RATE, 1))  # type: ignore[arg-type]
    frame = rtc.AudioFrame(bytes(640), 16_000, 1, 320)
    with pytest.raises(ValueError, match="opened at 24 kHz mono but got a 16 kHz mono frame"):
        await output.write(frame)
    await output.release()
    with pytest.raises(RuntimeError, match=r"write\(\) after release\(\)"):
        await output.write(frame)


def stream(attributes: dict[str, str]) -> Any:
    return SimpleNamespace(info=SimpleNamespace(attributes=attributes, stream_id="S_1"))


async def test_the_avatar_plays_only_the_agents_streams_that_say_their_format(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="flowkit.livekit")
    room = SimpleNamespace(name="lobby", isconnected=lambda: False)
    runner = AvatarRunner(room, agent_identity="agent")  # type: ignore[arg-type]
    runner._on_stream(stream({"sample_rate": "24000", "num_channels": "1"}), "mallory")
    runner._on_stream(stream({"sample_rate": "fast"}), "agent")
    runner._on_stream(stream({"sample_rate": "0", "num_channels": "1"}), "agent")
    assert not runner._stretches  # none of them is played
    assert "audio stream from 'mallory', not the agent 'agent': ignored" in caplog.text
    assert "has no usable sample_rate and num_channels attributes" in caplog.text
    clear = rtc.RpcInvocationData("req-2", "mallory", "", 5.0)
    assert runner._on_clear(clear) == "reject"
    await runner.aclose()


def brightness(frame: rtc.VideoFrame) -> float:
    return float(np.frombuffer(frame.data, np.uint8).reshape(-1, 4)[:, :3].mean())


def test_the_waveform_fills_the_picture_while_the_voice_plays() -> None:
    video = WaveformVideo(64, 48)
    speech = reply(1, 0.04)[0].frame
    assert speech is not None
    picture, idle = video.speaking(speech), video.idle()
    assert (picture.width, picture.height, picture.type) == (64, 48, rtc.VideoBufferType.RGBA)
    assert len(picture.data) == 64 * 48 * 4 and len(idle.data) == 64 * 48 * 4
    assert brightness(picture) > 2 * brightness(idle)
    silent = rtc.AudioFrame(bytes(960 * 2), RATE, 1, 960)
    assert brightness(video.speaking(silent)) == brightness(idle)
    with pytest.raises(ValueError, match="at least 2x2 pixels, not 1x48"):
        WaveformVideo(1, 48)
