"""Video in a LiveKit room: a participant's camera reaches the graph as images for the LLM.

A real SDK participant publishes a camera track (solid colours) through the test LiveKit
server, in a private network namespace (flowkit.testing.netns); the agent's graph reads it
with VideoInput and ImageEncoder through LiveKitRoomIO. The participant then replaces the
track with another of a new colour, and the input follows. The test at the end asserts on the
JSON the scenario returns.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from livekit import rtc
from scenario_kit import agent_job, join, quiet_logs, until

import flowkit as fk
from flowkit.livekit import LiveKitRoomIO
from flowkit.messages import Image
from flowkit.nodes.video import ImageEncoder, VideoInput
from flowkit.room_io import VideoInputSource

TIMEOUT = 30.0
WIDTH, HEIGHT = 320, 240


class _Record(fk.Node):
    images: fk.In[Image] = fk.In(default=True)

    def __init__(self) -> None:
        super().__init__()
        self.colours: list[list[int]] = []
        self.sizes: list[list[int]] = []

    async def run(self, images: AsyncIterator[Image]) -> None:
        from PIL import Image as PILImage

        async for image in images:
            picture = PILImage.open(io.BytesIO(image.data)).convert("RGB")
            mean = np.asarray(picture).reshape(-1, 3).mean(axis=0)
            self.colours.append([round(float(v)) for v in mean])
            self.sizes.append([image.width, image.height])


def _solid(rgb: tuple[int, int, int]) -> rtc.VideoFrame:
    pixels = np.empty((HEIGHT, WIDTH, 4), np.uint8)
    pixels[..., :3], pixels[..., 3] = rgb, 255
    return rtc.VideoFrame(WIDTH, HEIGHT, rtc.VideoBufferType.RGBA, pixels.tobytes())


async def _show(client: rtc.Room, rgb: tuple[int, int, int]) -> tuple[Any, asyncio.Task[None]]:
    """Publish a camera track on ``client`` showing ``rgb``, 10 frames a second, in a task."""
    source = rtc.VideoSource(WIDTH, HEIGHT)
    track = rtc.LocalVideoTrack.create_video_track("camera", source)
    options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA)
    publication = await client.local_participant.publish_track(track, options)
    frame = _solid(rgb)

    async def capture() -> None:
        while True:
            source.capture_frame(frame)
            await asyncio.sleep(0.1)

    return publication, asyncio.create_task(capture(), name=f"camera {rgb}")


def _close_to(colour: list[int], rgb: tuple[int, int, int], tolerance: int = 24) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour, rgb, strict=True))


async def test_the_room_io_refuses_an_unknown_video_source_with_the_choices() -> None:
    io = LiveKitRoomIO(rtc.Room())
    with pytest.raises(ValueError, match=r"video source 'webcam' is not one of \['camera', "):
        io.video_input(source="webcam")  # type: ignore[arg-type]
    await io.aclose()


async def scenario_a_camera_reaches_the_graph_and_is_followed_to_a_new_track() -> dict[str, Any]:
    from flowkit.testing.livekit_server import TestLiveKitServer

    quiet_logs()
    red, green = (200, 30, 30), (30, 200, 30)
    async with TestLiveKitServer() as server:
        job = await agent_job(server)
        room_io = job.io
        assert isinstance(room_io, LiveKitRoomIO) and isinstance(room_io, VideoInputSource)
        graph = fk.Graph("eyes")
        record = _Record()
        graph.add(VideoInput()) >> graph.add(ImageEncoder(max_size=160)) >> graph.add(record)
        running = asyncio.create_task(fk.GraphRunner(graph, job=job).run())

        alice = await join(server, "alice")
        publication, camera = await _show(alice, red)
        await until(lambda: any(_close_to(c, red) for c in record.colours), timeout=TIMEOUT)
        seen_red = len(record.colours)

        # a new camera track: the old one unpublished, the input waits for and reads the next
        camera.cancel()
        await alice.local_participant.unpublish_track(publication.sid)
        _, camera = await _show(alice, green)
        await until(lambda: any(_close_to(c, green) for c in record.colours), timeout=TIMEOUT)

        camera.cancel()
        await job.aclose()  # ends the video input: the nodes, then the graph, end
        await asyncio.wait_for(running, TIMEOUT)
        await alice.disconnect()
        return {"colours": record.colours, "sizes": record.sizes, "seen_red": seen_red}


def test_a_camera_reaches_the_graph_and_is_followed_to_a_new_track(run_scenario: Any) -> None:
    result = run_scenario(
        __file__, "scenario_a_camera_reaches_the_graph_and_is_followed_to_a_new_track"
    )
    colours = result["colours"]
    red, green = (200, 30, 30), (30, 200, 30)
    first_green = next(i for i, c in enumerate(colours) if _close_to(c, green))
    # red first, then green once the new track is read; nothing green before the switch
    assert result["seen_red"] >= 1 and _close_to(colours[0], red), colours
    assert first_green >= result["seen_red"], colours
    assert not any(_close_to(c, green) for c in colours[: result["seen_red"]]), colours
    # scaled down to at most 160 px on the longer side, keeping the camera's 4:3
    assert {tuple(size) for size in result["sizes"]} == {(160, 120)}
