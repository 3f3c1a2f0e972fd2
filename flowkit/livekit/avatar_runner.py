"""An avatar participant of flowkit's own: plays an agent's voice with a face drawn from it.

The avatar's side of LiveKit Agents' avatar protocol (:mod:`flowkit.livekit.avatar` says
what travels). :class:`AvatarRunner` joins a room beside the agent (its own
``rtc.Room``, with a token of its own), and:

- publishes a video track (``SOURCE_CAMERA``) and an audio track (``SOURCE_MICROPHONE``) on
  the agent's behalf (its ``lk.publish_on_behalf`` attribute names the agent), through one
  ``rtc.AVSynchronizer`` so picture and sound stay together;
- takes each stretch of the agent's voice from a byte stream on ``lk.audio_stream``, and
  plays it a video frame's worth at a time: the frame :class:`AvatarVideo` draws for that
  slice of sound, then the sound; between stretches it shows the idle picture;
- drops what it holds when the agent calls ``lk.clear_buffer`` (a barge-in), and tells the
  agent ``lk.playback_started`` and ``lk.playback_finished`` (seconds played, whether cut).

:class:`WaveformVideo`, the default picture, draws the voice's waveform; give an
:class:`AvatarVideo` of your own for a face (a model that renders one from the audio).
A provider's avatar (Tavus, Hedra, bitHuman, ...) plays the same part from its own servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from livekit import rtc

from flowkit.livekit.avatar import (
    ATTR_PUBLISH_ON_BEHALF,
    AUDIO_STREAM_TOPIC,
    RPC_CLEAR_BUFFER,
    RPC_PLAYBACK_FINISHED,
    RPC_PLAYBACK_STARTED,
    PlaybackFinished,
)
from flowkit.nodes.audio import _Resampler

__all__ = ["AvatarRunner", "AvatarVideo", "WaveformVideo"]

logger = logging.getLogger(__name__)


@runtime_checkable
class AvatarVideo(Protocol):
    """Draws the avatar: a picture for each slice of the voice, and one while it is silent.

    Called on the event loop once per video frame (``fps`` times a second): keep it quick,
    or hand the drawing to a thread of your own and return the last frame ready.
    """

    @property
    def width(self) -> int:
        """The pictures' width, in pixels."""
        ...

    @property
    def height(self) -> int:
        """The pictures' height, in pixels."""
        ...

    def speaking(self, audio: rtc.AudioFrame) -> rtc.VideoFrame:
        """The picture shown while ``audio`` (one video frame's worth) plays."""
        ...

    def idle(self) -> rtc.VideoFrame:
        """The picture shown while the agent is silent."""
        ...


class WaveformVideo:
    """The voice's waveform, bright on a dark ground; a dim flat line while silent.

    Args:
        width: The pictures' width, in pixels.
        height: The pictures' height, in pixels.
        color: The waveform's colour, as (red, green, blue).
    """

    def __init__(
        self, width: int = 320, height: int = 240, color: tuple[int, int, int] = (80, 220, 140)
    ) -> None:
        if width < 2 or height < 2:
            raise ValueError(f"WaveformVideo needs at least 2x2 pixels, not {width}x{height}")
        self._width, self._height = width, height
        self._color = np.array([*color, 255], np.uint8)
        self._ground = np.array([16, 18, 28, 255], np.uint8)
        self._columns = np.arange(width)
        self._idle = self._draw(np.zeros(width))

    @property
    def width(self) -> int:
        """The pictures' width, in pixels."""
        return self._width

    @property
    def height(self) -> int:
        """The pictures' height, in pixels."""
        return self._height

    def speaking(self, audio: rtc.AudioFrame) -> rtc.VideoFrame:
        """The slice's waveform across the picture (its channels mixed)."""
        pcm = np.frombuffer(audio.data, np.int16).reshape(-1, audio.num_channels)
        mono = pcm.mean(axis=1) / 32768.0
        if mono.size == 0:
            return self._idle
        at = np.linspace(0, mono.size - 1, self._width)
        return self._draw(np.interp(at, np.arange(mono.size), mono))

    def idle(self) -> rtc.VideoFrame:
        """A flat line: the voice at rest."""
        return self._idle

    def _draw(self, levels: np.ndarray) -> rtc.VideoFrame:
        middle = self._height // 2
        canvas = np.empty((self._height, self._width, 4), np.uint8)
        canvas[:] = self._ground
        # Each column filled from the middle line to its level: a solid shape the video codec
        # keeps, where a one-pixel trace would blur away.
        reach = np.clip(np.abs(levels) * 3.0, 0.0, 1.0) * (middle - 1)
        rows = np.arange(self._height)[:, None]
        filled = np.abs(rows - middle) <= np.maximum(reach, 1.0)[None, :]
        canvas[filled] = self._color if levels.any() else self._color // 3
        return rtc.VideoFrame(self._width, self._height, rtc.VideoBufferType.RGBA,
                              canvas.tobytes())


@dataclass(eq=False)
class _Stretch:
    """One stretch of the agent's voice, as its byte stream brings it."""

    sample_rate: int
    num_channels: int
    data: bytearray = field(default_factory=bytearray)
    ended: bool = False
    cleared: bool = False


class AvatarRunner:
    """Joins the agent's room as its avatar (see the module).

    Args:
        room: The avatar's own connected room (a token of the avatar's, in the agent's room).
        agent_identity: The agent whose voice to play; ``None``: the first agent participant
            (kind ``agent``) to join.
        video: What the avatar looks like; a :class:`WaveformVideo` by default.
        fps: Video frames a second.
        sample_rate: The rate of the avatar's audio track (a stretch at another rate is
            converted, soxr HQ).
        num_channels: Its channel count (likewise).
    """

    def __init__(
        self,
        room: rtc.Room,
        *,
        agent_identity: str | None = None,
        video: AvatarVideo | None = None,
        fps: float = 25.0,
        sample_rate: int = 24_000,
        num_channels: int = 1,
    ) -> None:
        if fps <= 0:
            raise ValueError(f"AvatarRunner needs a positive fps, not {fps}")
        self.room = room
        self.agent_identity = agent_identity
        self.video = video if video is not None else WaveformVideo()
        self.fps = fps
        self.sample_rate, self.num_channels = sample_rate, num_channels
        self.reports: list[PlaybackFinished] = []
        """What this avatar told the agent it played, oldest first."""
        self._stretches: deque[_Stretch] = deque()
        self._playing = False
        self._position = 0.0  # seconds of the current stretch played
        self._resampler: _Resampler | None = None
        # (method, payload) of the calls to make on the agent, in order; None ends them.
        self._notices: asyncio.Queue[tuple[str, str] | None] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._audio_source = rtc.AudioSource(sample_rate, num_channels, queue_size_ms=100)
        self._video_source = rtc.VideoSource(self.video.width, self.video.height)
        self._av_sync: rtc.AVSynchronizer | None = None
        self._publications: list[rtc.LocalTrackPublication] = []

    async def start(self) -> None:
        """Wait for the agent, listen for its voice and publish the avatar's tracks.

        It waits for the agent as long as it takes; bound it with ``asyncio.timeout``.
        """
        self.agent_identity = await self._agent()
        self.room.register_byte_stream_handler(AUDIO_STREAM_TOPIC, self._on_stream)
        self.room.local_participant.register_rpc_method(RPC_CLEAR_BUFFER, self._on_clear)
        local = self.room.local_participant
        if local.attributes.get(ATTR_PUBLISH_ON_BEHALF) != self.agent_identity:
            try:
                await local.set_attributes({ATTR_PUBLISH_ON_BEHALF: self.agent_identity})
            except Exception as exc:  # a token without the grant: give it in the token
                logger.warning("the avatar cannot set %s (%s); put it in its token",
                               ATTR_PUBLISH_ON_BEHALF, exc)
        self._av_sync = rtc.AVSynchronizer(
            audio_source=self._audio_source, video_source=self._video_source,
            video_fps=self.fps,
        )
        for track, source in (
            (rtc.LocalVideoTrack.create_video_track("avatar-video", self._video_source),
             rtc.TrackSource.SOURCE_CAMERA),
            (rtc.LocalAudioTrack.create_audio_track("avatar-audio", self._audio_source),
             rtc.TrackSource.SOURCE_MICROPHONE),
        ):
            options = rtc.TrackPublishOptions(source=source)
            self._publications.append(await local.publish_track(track, options))
        self._spawn(self._play(), "play")
        self._spawn(self._notify(), "notify")
        logger.info("avatar of %r is in room %r", self.agent_identity, self.room.name)

    async def aclose(self) -> None:
        """Stop playing, unpublish the tracks and stop listening (the room stays connected)."""
        self._notices.put_nowait(None)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            self.room.unregister_byte_stream_handler(AUDIO_STREAM_TOPIC)
            self.room.local_participant.unregister_rpc_method(RPC_CLEAR_BUFFER)
        if self._av_sync is not None:
            await self._av_sync.aclose()
        if self.room.isconnected():
            for publication in self._publications:
                with contextlib.suppress(Exception):
                    await self.room.local_participant.unpublish_track(publication.sid)
        await self._audio_source.aclose()
        await self._video_source.aclose()

    # --- the agent's voice in

    async def _agent(self) -> str:
        found: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def check(*_: object) -> None:
            for participant in self.room.remote_participants.values():
                wanted = (participant.identity == self.agent_identity
                          if self.agent_identity is not None
                          else participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT)
                if wanted and not found.done():
                    found.set_result(participant.identity)

        self.room.on("participant_connected", check)
        try:
            check()
            return await found
        finally:
            self.room.off("participant_connected", check)

    def _on_stream(self, reader: rtc.ByteStreamReader, sender: str) -> None:
        if sender != self.agent_identity:
            logger.warning("audio stream from %r, not the agent %r: ignored", sender,
                           self.agent_identity)
            return
        attributes = reader.info.attributes or {}
        try:
            stretch = _Stretch(int(attributes["sample_rate"]), int(attributes["num_channels"]))
            if stretch.sample_rate <= 0 or stretch.num_channels <= 0:
                raise ValueError("not positive")
        except (KeyError, ValueError) as exc:
            logger.warning(
                "the agent's audio stream %s has no usable sample_rate and num_channels "
                "attributes (%s: %s); it is not played", reader.info.stream_id, attributes, exc,
            )
            return
        self._stretches.append(stretch)
        self._spawn(self._read(reader, stretch), f"read {reader.info.stream_id}")

    async def _read(self, reader: rtc.ByteStreamReader, stretch: _Stretch) -> None:
        try:
            async for chunk in reader:
                if not stretch.cleared:
                    stretch.data += chunk
        finally:
            stretch.ended = True

    def _on_clear(self, data: rtc.RpcInvocationData) -> str:
        if data.caller_identity != self.agent_identity:
            logger.warning("%s from %r, not the agent %r: ignored", RPC_CLEAR_BUFFER,
                           data.caller_identity, self.agent_identity)
            return "reject"
        # The agent opens its next stretch only once this call is answered, so everything
        # held now is the cut reply's.
        for stretch in self._stretches:
            stretch.cleared = True
            stretch.data.clear()
        self._stretches.clear()
        self._resampler = None
        self._audio_source.clear_queue()
        if self._playing:
            self._finished(interrupted=True)
        return "ok"

    # --- playing

    async def _play(self) -> None:
        assert self._av_sync is not None
        sync = self._av_sync
        tick = 1.0 / self.fps
        while True:
            stretch = self._stretches[0] if self._stretches else None
            if stretch is None:
                await sync.push(self.video.idle())
                continue
            size = round(stretch.sample_rate * tick) * stretch.num_channels * 2
            if len(stretch.data) >= size or (stretch.ended and stretch.data):
                piece = bytes(stretch.data[:size])
                del stretch.data[:size]
                samples = len(piece) // (2 * stretch.num_channels)
                heard = rtc.AudioFrame(piece[: samples * 2 * stretch.num_channels],
                                       stretch.sample_rate, stretch.num_channels, samples)
                await self._speak(sync, stretch, heard)
            elif stretch.ended:
                self._stretches.popleft()
                await self._flush(sync)
                if self._playing:
                    self._finished(interrupted=False)
            else:
                # Waiting for more of the voice: the idle picture, and a gap in the sound.
                await sync.push(self.video.idle())

    async def _speak(self, sync: rtc.AVSynchronizer, stretch: _Stretch,
                     heard: rtc.AudioFrame) -> None:
        frames = self._convert(stretch, heard)
        if not self._playing:
            self._playing = True
            self._notices.put_nowait((RPC_PLAYBACK_STARTED, ""))
        await sync.push(self.video.speaking(heard))
        for frame in frames:
            await sync.push(frame)
        if not stretch.cleared:  # a barge-in while it was pushed reported the stretch ended
            self._position += heard.duration

    def _convert(self, stretch: _Stretch, frame: rtc.AudioFrame) -> tuple[rtc.AudioFrame, ...]:
        if (stretch.sample_rate, stretch.num_channels) == (self.sample_rate, self.num_channels):
            return (frame,)
        if self._resampler is None:
            self._resampler = _Resampler(self.sample_rate, self.num_channels, "HQ")
        return self._resampler.push(frame)

    async def _flush(self, sync: rtc.AVSynchronizer) -> None:
        resampler, self._resampler = self._resampler, None
        if resampler is not None:
            for frame in resampler.flush():
                await sync.push(frame)

    def _finished(self, *, interrupted: bool) -> None:
        report = PlaybackFinished(playback_position=self._position, interrupted=interrupted)
        self._playing, self._position = False, 0.0
        self.reports.append(report)
        self._notices.put_nowait((RPC_PLAYBACK_FINISHED, report.payload()))

    async def _notify(self) -> None:
        # One at a time, in order: a stretch's end is never told before its start.
        while (notice := await self._notices.get()) is not None:
            await self._call(*notice)

    async def _call(self, method: str, payload: str) -> None:
        assert self.agent_identity is not None
        for attempt in range(3):
            try:
                await self.room.local_participant.perform_rpc(
                    destination_identity=self.agent_identity, method=method, payload=payload,
                    response_timeout=5.0,
                )
                return
            except rtc.RpcError as exc:
                if attempt == 2 or exc.code == rtc.RpcError.ErrorCode.UNSUPPORTED_METHOD:
                    logger.warning("the agent did not take %s: %s", method, exc.message)
                    return
                await asyncio.sleep(0.1)

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(work, name=f"avatar: {name}")
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            logger.error("avatar task %s failed: %s", task.get_name(), error, exc_info=error)
