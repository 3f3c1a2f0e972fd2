"""The video nodes on MemoryIO: VideoInput reads the camera (or nothing, without video),
VideoSampler keeps frames at the speaking or silent rate, ImageEncoder encodes the newest."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from livekit import rtc
from PIL import Image as PILImage
from support import Collect, Script, TimedCollect, VoiceOnlyIO, collected

import flowkit as fk
from flowkit.messages import Image, UserState, UserStateKind
from flowkit.nodes.video import ImageEncoder, VideoInput, VideoSampler
from flowkit.room_io import VideoInputSource
from flowkit.testing.memory_io import MemoryIO


def frame(red: int, width: int = 64, height: int = 48) -> rtc.VideoFrame:
    """A frame of one colour (red, 0, 0), as packed RGBA."""
    pixels = np.zeros((height, width, 4), np.uint8)
    pixels[..., 0], pixels[..., 3] = red, 255
    return rtc.VideoFrame(width, height, rtc.VideoBufferType.RGBA, pixels.tobytes())


def red_of(image: Image) -> int:
    picture = PILImage.open(io.BytesIO(image.data)).convert("RGB")
    return int(np.asarray(picture)[..., 0].mean().round())


async def run(graph: fk.Graph, room: Any = None) -> None:
    job = None if room is None else fk.JobContext(io=room)
    await asyncio.wait_for(fk.GraphRunner(graph, job=job).run(), 30)


async def test_video_input_sends_the_cameras_frames() -> None:
    frames = [frame(10), frame(20), frame(30)]
    room = MemoryIO(video=frames)
    assert isinstance(room, VideoInputSource)
    g = fk.Graph("camera")
    sink = g.add(VideoInput()) >> g.add(Collect())
    await run(g, room)
    assert collected(sink) == frames


async def test_video_input_ends_at_once_where_the_io_has_no_video() -> None:
    g = fk.Graph("blind")
    sink = g.add(VideoInput(source="screen_share")) >> g.add(Collect())
    await run(g, VoiceOnlyIO())
    assert collected(sink) == []


def test_video_input_refuses_an_unknown_source() -> None:
    with pytest.raises(fk.NodeParamsError, match="source"):
        VideoInput(source="webcam")  # type: ignore[arg-type]


@pytest.mark.looptime
async def test_the_sampler_keeps_a_frame_per_second_while_the_user_speaks_else_fewer() -> None:
    fps = 30
    frames = tuple((k / fps, frame(k % 256)) for k in range(10 * fps))
    states = (
        (2.5, UserState(state=UserStateKind.SPEAKING)),
        (5.5, UserState(state=UserStateKind.LISTENING)),
    )
    g = fk.Graph("sampler")
    sampler = g.add(VideoSampler(speaking_fps=1.0, silent_fps=0.3))
    g.add(Script(*frames)) >> sampler.frames
    g.add(Script(*states)) >> sampler.user_state
    kept = sampler >> g.add(TimedCollect())
    await run(g)
    # silent: every 3.33 s; from 2.5 s, speaking: every second; from 5.5 s, silent again
    assert [round(at, 2) for at, _ in kept.items] == [0.0, 2.5, 3.5, 4.5, 7.83]


@pytest.mark.looptime
async def test_the_sampler_without_user_state_keeps_frames_at_the_silent_rate() -> None:
    g = fk.Graph("sampler")
    kept = (
        g.add(Script(*((k / 10, frame(k)) for k in range(100))))
        >> g.add(VideoSampler(silent_fps=0.5))
        >> g.add(TimedCollect())
    )
    await run(g)
    assert [round(at, 2) for at, _ in kept.items] == [0.0, 2.0, 4.0, 6.0, 8.0]


class Burst(fk.Node):
    """Sends each group of frames in one go (no yield to the loop within), 0.3 s apart."""

    out: fk.Out[rtc.VideoFrame]

    def __init__(self, *groups: list[rtc.VideoFrame]) -> None:
        super().__init__()
        self.groups = groups

    async def run(self) -> None:
        for index, group in enumerate(self.groups):
            if index:
                await asyncio.sleep(0.3)
            for each in group:
                self.out.send(each)


async def test_the_encoder_encodes_the_newest_frame_when_frames_come_faster_than_it() -> None:
    g = fk.Graph("encoder")
    burst = Burst([frame(0)], [frame(20 * k) for k in range(1, 10)], [frame(40), frame(90)])
    images = g.add(burst) >> g.add(ImageEncoder()) >> g.add(Collect())
    await run(g)
    encoded = collected(images)
    # each burst waits in a queue of one, where each frame replaces the one before: the
    # newest of each is the one encoded (whether or not the encoder was still busy)
    assert [red_of(image) for image in encoded] == pytest.approx([0, 180, 90], abs=3)  # JPEG
    assert all(isinstance(image, Image) and image.mime_type == "image/jpeg" for image in encoded)


async def test_the_encoder_scales_down_and_labels_its_images() -> None:
    g = fk.Graph("encoder")
    images = (
        g.add(Burst([frame(100, 640, 480)]))
        >> g.add(ImageEncoder(max_size=320, image_format="PNG", source="screen_share"))
        >> g.add(Collect())
    )
    await run(g)
    [image] = collected(images)
    assert (image.width, image.height, image.mime_type, image.source) == (
        320, 240, "image/png", "screen_share",
    )
    assert red_of(image) == 100  # PNG: exact


async def test_a_frame_that_cannot_be_encoded_is_skipped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Slow(fk.Node):  # one frame at a time, so each is encoded
        out: fk.Out[rtc.VideoFrame]

        async def run(self) -> None:
            for each in (rtc.VideoFrame(0, 0, rtc.VideoBufferType.RGBA, b""), frame(60)):
                self.out.send(each)
                await asyncio.sleep(0.2)

    g = fk.Graph("encoder")
    images = g.add(Slow()) >> g.add(ImageEncoder()) >> g.add(Collect())
    with caplog.at_level(logging.WARNING):
        await run(g)
    assert [red_of(image) for image in collected(images)] == pytest.approx([60], abs=3)
    assert "could not encode a 0x0 video frame" in caplog.text
    assert "nothing to encode" in caplog.text


def test_encoder_parameters_are_checked() -> None:
    with pytest.raises(fk.NodeParamsError, match="quality"):
        ImageEncoder(quality=100)
    with pytest.raises(fk.NodeParamsError, match="image_format"):
        ImageEncoder(image_format="BMP")  # type: ignore[arg-type]
    with pytest.raises(fk.NodeParamsError, match="speaking_fps"):
        VideoSampler(speaking_fps=0)


async def _frames_of(stream: AsyncIterator[rtc.VideoFrame]) -> list[rtc.VideoFrame]:
    return [each async for each in stream]


async def test_memory_io_pushes_frames_to_a_live_reader_until_the_video_ends() -> None:
    room = MemoryIO(live=True)
    reading = asyncio.ensure_future(_frames_of(room.video_input()))
    first, second = frame(1), frame(2)
    room.push_video(first)
    await asyncio.sleep(0)
    room.push_video(second)
    room.end_video()
    assert await asyncio.wait_for(reading, 5) == [first, second]
    with pytest.raises(RuntimeError, match="push_video\\(\\) after the video input ended"):
        room.push_video(first)
