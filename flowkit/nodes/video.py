"""Video nodes: what the agent sees of a participant, as still images for a vision LLM.

A voice agent that can see looks at a participant's camera (or shared screen) now and then,
not at every frame: a vision model takes a still image with the user's words, and a camera
sends 15-30 frames a second. Three nodes make that path, each with one job:

- :class:`VideoInput` reads the participant's video through the job's room I/O
  (:class:`~flowkit.room_io.VideoInputSource`); an I/O without video (an offline run with no
  ``--camera``) is not an error: the node ends at once and the graph runs blind;
- :class:`VideoSampler` keeps one frame every so often: ``speaking_fps`` while the user
  speaks (1 a second, as LiveKit Agents' voice-activity sampler), ``silent_fps`` otherwise
  (0.3), so the frame the LLM gets with a turn was taken while the user said it;
- :class:`ImageEncoder` scales each kept frame down and encodes it as JPEG
  (:func:`flowkit.images.encode_frame`) on a worker thread, so the event loop that carries
  every session's audio never waits on it. Its queue holds one frame and drops the older:
  when encoding falls behind, the newest frame is the one encoded next.

Link the encoder's images to :attr:`flowkit.nodes.llm.LLM.images`: the LLM shows the newest
image to the model with the next user turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pydantic
from livekit import rtc

from flowkit.images import ImageFormat, encode_frame
from flowkit.messages import Image, UserState, UserStateKind
from flowkit.node import Node, NodeParams
from flowkit.nodes.room import room_io
from flowkit.policy import ErrorPolicy
from flowkit.ports import In, Out, Overflow
from flowkit.room_io import VideoInputSource, VideoSource

__all__ = ["ImageEncoder", "VideoInput", "VideoSampler"]


class VideoInput(Node):
    """A participant's video from the room: their camera or their shared screen."""

    frames: Out[rtc.VideoFrame] = Out(default=True, doc="every frame, as the room decodes it")
    error_policy = ErrorPolicy.RESTART  # re-subscribe on a glitch

    class Params(NodeParams):
        """Parameters of :class:`VideoInput`."""

        participant: str | None = pydantic.Field(
            default=None, description="identity; None: whom the audio input hears"
        )
        source: VideoSource = pydantic.Field(default="camera", description="camera or screen")

    def __init__(self, participant: str | None = None, source: VideoSource = "camera") -> None:
        """Create a video input.

        Args:
            participant: Whose video; ``None``: the participant the job is bound to, or the
                one the room's audio input hears, or the first.
            source: ``"camera"`` or ``"screen_share"``.

        Raises:
            NodeParamsError: ``source`` is neither.
        """
        super().__init__(participant=participant, source=source)

    async def run(self) -> None:
        """Send frames until the room closes (at once when the I/O has no video)."""
        params = self.params
        assert isinstance(params, VideoInput.Params)
        io = room_io(self)
        if not isinstance(io, VideoInputSource):
            self.ctx.logger.debug(
                "the room I/O (%s) has no video input; the agent sees nothing",
                type(io).__name__,
            )
            return
        async for frame in io.video_input(params.participant, params.source):
            self.frames.send(frame)


class VideoSampler(Node):
    """Keeps a frame every so often: more often while the user speaks."""

    # A full queue drops the oldest frame: a frame only matters while it is the newest.
    frames: In[rtc.VideoFrame] = In(
        default=True, queue=4, overflow=Overflow.DROP_OLDEST, doc="the video"
    )
    user_state: In[UserState] = In(
        required=False, doc="the user's state (a TurnDetector's user_state): speaking or not"
    )
    sampled: Out[rtc.VideoFrame] = Out(default=True, doc="the frames kept")

    class Params(NodeParams):
        """Parameters of :class:`VideoSampler`."""

        speaking_fps: float = pydantic.Field(default=1.0, gt=0.0, description="while speaking")
        silent_fps: float = pydantic.Field(default=0.3, gt=0.0, description="otherwise")

    def __init__(self, speaking_fps: float = 1.0, silent_fps: float = 0.3) -> None:
        """Create a sampler.

        Args:
            speaking_fps: Frames kept per second while the user speaks.
            silent_fps: Frames kept per second otherwise (and without ``user_state``).

        Raises:
            NodeParamsError: A rate is not positive.
        """
        super().__init__(speaking_fps=speaking_fps, silent_fps=silent_fps)

    async def run(
        self, frames: AsyncIterator[rtc.VideoFrame], user_state: AsyncIterator[UserState]
    ) -> None:
        """Keep the first frame, then one per interval; end with ``frames``."""
        params = self.params
        assert isinstance(params, VideoSampler.Params)
        speaking = False

        async def follow_state() -> None:
            nonlocal speaking
            async for state in user_state:
                speaking = state.state is UserStateKind.SPEAKING

        follower = self.ctx.create_task(follow_state(), name="user_state")
        loop = asyncio.get_running_loop()
        last: float | None = None
        try:
            async for frame in frames:
                now = loop.time()
                interval = 1.0 / (params.speaking_fps if speaking else params.silent_fps)
                if last is None or now - last >= interval:
                    last = now
                    self.sampled.send(frame)
        finally:
            follower.cancel()


class ImageEncoder(Node):
    """Scales frames down and encodes them (JPEG) for the LLM, off the event loop."""

    # One frame waits while another is encoded; a newer one replaces it.
    frames: In[rtc.VideoFrame] = In(
        default=True, queue=1, overflow=Overflow.DROP_OLDEST, doc="frames to encode"
    )
    images: Out[Image] = Out(default=True, doc="the encoded images, newest last")

    class Params(NodeParams):
        """Parameters of :class:`ImageEncoder`."""

        max_size: int = pydantic.Field(default=1024, ge=16, description="longest side, px")
        image_format: ImageFormat = pydantic.Field(default="JPEG", description="encoding")
        quality: int = pydantic.Field(default=75, ge=1, le=95, description="JPEG/WebP quality")
        source: str = pydantic.Field(default="camera", description="the label on each image")

    def __init__(
        self,
        max_size: int = 1024,
        image_format: ImageFormat = "JPEG",
        quality: int = 75,
        source: str = "camera",
    ) -> None:
        """Create an image encoder.

        Args:
            max_size: The images' longest side in pixels (frames are scaled down, never up).
            image_format: ``"JPEG"`` (default), ``"PNG"`` or ``"WEBP"``.
            quality: JPEG or WebP quality, 1-95.
            source: What the images are labelled as having come from.

        Raises:
            NodeParamsError: A parameter is out of range.
        """
        super().__init__(
            max_size=max_size, image_format=image_format, quality=quality, source=source
        )

    async def run(self, frames: AsyncIterator[rtc.VideoFrame]) -> None:
        """Encode each frame on a worker thread; a frame that cannot be encoded is skipped."""
        params = self.params
        assert isinstance(params, ImageEncoder.Params)
        loop = asyncio.get_running_loop()
        async for frame in frames:
            taken = loop.time()
            try:
                image = await asyncio.to_thread(
                    encode_frame,
                    frame,
                    max_size=params.max_size,
                    image_format=params.image_format,
                    quality=params.quality,
                    source=params.source,
                    captured_at=taken,
                )
            except Exception as exc:  # one bad frame must not blind the agent
                self.ctx.logger.warning(
                    "could not encode a %dx%d video frame (buffer type %s): %s; skipped it",
                    frame.width, frame.height, frame.type, exc,
                )
                continue
            self.images.send(image)
