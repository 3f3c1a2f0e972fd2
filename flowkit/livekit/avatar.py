"""The agent's voice through an avatar: LiveKit Agents' avatar protocol, the agent's side.

An avatar is another participant of the room (a provider's worker, or
:class:`flowkit.livekit.avatar_runner.AvatarRunner`) that plays the agent's voice with a face:
it publishes an audio and a video track on the agent's behalf, and the agent publishes no
voice track of its own. What travels between the two is LiveKit Agents' protocol, so either
side can be LiveKit's:

- the agent's audio goes to the avatar as byte streams on topic ``lk.audio_stream``, sent to
  the avatar only, one stream per stretch of speech (a reply), raw 16-bit PCM with the
  ``sample_rate`` and ``num_channels`` attributes; closing the stream ends the stretch;
- on a barge-in, the agent calls the avatar's ``lk.clear_buffer`` RPC: the avatar drops what
  it holds of the stretch and answers with ``lk.playback_finished``;
- the avatar calls the agent's ``lk.playback_started`` when a stretch starts playing, and
  ``lk.playback_finished`` (JSON ``{"playback_position": seconds, "interrupted": bool}``)
  when it has played one out or dropped it;
- the avatar sets its ``lk.publish_on_behalf`` attribute to the agent's identity, so clients
  show its tracks as the agent's.

:class:`AvatarAudioOutput` is the agent's side, an :class:`~flowkit.room_io.AudioOutput` that
:class:`~flowkit.nodes.room.RoomSink` opens with ``RoomSink(avatar="identity")``. It keeps
the avatar at most ``lead_s`` ahead of real time, as LiveKit's own audio source keeps its
200 ms queue, and says how much it holds unheard, so the sink's reports (``FINISHED`` when
the end was played, what was heard of a cut reply) hold as they do for a voice track.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Awaitable
from typing import TYPE_CHECKING

import pydantic
from livekit import rtc

from flowkit.ports import AudioFormat

if TYPE_CHECKING:
    from flowkit.livekit.room_io import LiveKitRoomIO

__all__ = [
    "ATTR_PUBLISH_ON_BEHALF",
    "AUDIO_STREAM_TOPIC",
    "RPC_CLEAR_BUFFER",
    "RPC_PLAYBACK_FINISHED",
    "RPC_PLAYBACK_STARTED",
    "AvatarAudioOutput",
    "AvatarNotJoinedError",
    "PlaybackFinished",
]

logger = logging.getLogger(__name__)

AUDIO_STREAM_TOPIC = "lk.audio_stream"
"""The byte-stream topic of the agent's audio to its avatar."""
RPC_CLEAR_BUFFER = "lk.clear_buffer"
"""The avatar's RPC method: drop the audio held of the current stretch (a barge-in)."""
RPC_PLAYBACK_FINISHED = "lk.playback_finished"
"""The agent's RPC method: a stretch was played out or dropped (:class:`PlaybackFinished`)."""
RPC_PLAYBACK_STARTED = "lk.playback_started"
"""The agent's RPC method: a stretch started playing (no payload)."""
ATTR_PUBLISH_ON_BEHALF = "lk.publish_on_behalf"
"""The avatar's attribute naming the agent it speaks for."""


class AvatarNotJoinedError(RuntimeError):
    """The avatar did not join the room (or publish a track) in time to speak a reply."""


class PlaybackFinished(pydantic.BaseModel):
    """The avatar's report that it played a stretch out, or dropped it on a barge-in.

    Attributes:
        playback_position: Seconds of the stretch it played.
        interrupted: Whether a ``lk.clear_buffer`` cut it.
    """

    model_config = pydantic.ConfigDict(frozen=True)
    playback_position: float = pydantic.Field(ge=0.0)
    interrupted: bool = False

    def payload(self) -> str:
        """The RPC payload: JSON, as LiveKit Agents sends it."""
        return json.dumps({"playback_position": self.playback_position,
                           "interrupted": self.interrupted})


class AvatarAudioOutput:
    """The agent's voice streamed to the avatar participant ``identity`` (see the module).

    Made by :meth:`flowkit.livekit.LiveKitRoomIO.avatar_output`. The first write waits for
    the avatar to join and publish a track (its video: then it listens for audio), at most
    ``join_timeout`` seconds. A write returns once the frame is sent and the avatar holds
    at most ``lead_s`` seconds that have not played yet; :attr:`queued_seconds` says how
    much that is now, counted from the frames sent and the clock. It counts on the avatar
    playing in real time from the first frame of a stretch, as LiveKit Agents does when its
    avatar sends no ``lk.playback_started``; the avatar's own reports are kept in
    :attr:`finished` and logged.

    Args:
        io: The room's I/O (its room, its readiness and its RPC methods).
        identity: The avatar participant's identity.
        fmt: The audio's format.
        lead_s: How far the sent audio may run ahead of what has played.
        join_timeout: How long the first write waits for the avatar.
    """

    def __init__(
        self,
        io: LiveKitRoomIO,
        identity: str,
        fmt: AudioFormat,
        *,
        lead_s: float = 0.3,
        join_timeout: float = 10.0,
    ) -> None:
        self.identity = identity
        self.format = fmt
        self.lead_s = lead_s
        self.join_timeout = join_timeout
        self.finished: list[PlaybackFinished] = []
        """The avatar's ``lk.playback_finished`` reports, oldest first."""
        self.started = 0
        """How many ``lk.playback_started`` calls the avatar made."""
        self.streams = 0
        """How many stretches (byte streams) were sent."""
        self.released = False
        self._io = io
        self._ready: asyncio.Task[None] | None = None
        self._writer: rtc.ByteStreamWriter | None = None
        self._heard_at = 0.0  # loop time at which what was sent has all played
        self._tasks: set[asyncio.Task[None]] = set()
        self._clearing: asyncio.Task[None] | None = None  # the lk.clear_buffer call
        io.register_rpc(RPC_PLAYBACK_FINISHED, self._on_playback_finished)
        io.register_rpc(RPC_PLAYBACK_STARTED, self._on_playback_started)

    @property
    def paced(self) -> bool:
        """Always ``True``: ``write`` returns once the frame is due within ``lead_s``."""
        return True

    @property
    def queued_seconds(self) -> float:
        """Seconds sent to the avatar and not played yet, now."""
        return max(self._heard_at - asyncio.get_running_loop().time(), 0.0)

    async def write(self, frame: rtc.AudioFrame) -> None:
        """Send ``frame`` to the avatar, after the ones before it.

        Raises:
            ValueError: The frame's format is not the output's.
            RuntimeError: The output was released.
            AvatarNotJoinedError: The avatar did not join within ``join_timeout``.
        """
        if self.released:
            raise RuntimeError(
                f"AvatarAudioOutput {self.identity!r}: write() after release(); open another "
                "with LiveKitRoomIO.avatar_output()"
            )
        have = AudioFormat(frame.sample_rate, frame.num_channels)
        if have != self.format:
            raise ValueError(
                f"the audio to avatar {self.identity!r} was opened at {self.format} but got a "
                f"{have} frame; make every TTS feeding the room sink speak one format"
            )
        await self._avatar_ready()
        if self._clearing is not None:
            # The avatar drops all it holds when the call lands: the next stretch goes after.
            await asyncio.shield(self._clearing)
            self._clearing = None
        ahead = self.queued_seconds - self.lead_s
        if ahead > 0:
            await asyncio.sleep(ahead)
        writer = self._writer
        if writer is None:
            writer = self._writer = await self._io.room.local_participant.stream_bytes(
                name=f"AUDIO_{secrets.token_hex(6)}",
                topic=AUDIO_STREAM_TOPIC,
                destination_identities=[self.identity],
                attributes={"sample_rate": str(frame.sample_rate),
                            "num_channels": str(frame.num_channels)},
            )
            self.streams += 1
        await writer.write(bytes(frame.data))
        now = asyncio.get_running_loop().time()
        self._heard_at = max(self._heard_at, now) + frame.duration

    def end_segment(self) -> None:
        """End the stretch being sent (a reply's end): the avatar plays it out, then reports."""
        self._close_stream()

    def clear(self) -> None:
        """Drop what the avatar holds unplayed (barge-in): ``lk.clear_buffer``, now."""
        if self._writer is None and self.queued_seconds == 0.0:
            return  # nothing sent is still playing
        self._close_stream()
        self._heard_at = 0.0
        self._clearing = self._spawn(self._clear_buffer(), "clear the avatar's buffer")

    async def aclose(self) -> None:
        """End the stretch and wait until what was sent has played."""
        self._close_stream()
        if not self.released and (left := self.queued_seconds) > 0:
            await asyncio.sleep(left)

    async def release(self) -> None:
        """Stop sending and forget the RPC methods (when the job ends)."""
        if self.released:
            return
        self.released = True
        self._close_stream()
        self._io.unregister_rpc(RPC_PLAYBACK_FINISHED)
        self._io.unregister_rpc(RPC_PLAYBACK_STARTED)
        if self._ready is not None:
            self._ready.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 1.0)

    # --- the avatar

    async def _avatar_ready(self) -> None:
        if self._ready is None or (self._ready.done() and self._ready.exception() is not None):
            self._ready = asyncio.ensure_future(self._wait_for_avatar())
        await asyncio.shield(self._ready)

    async def _wait_for_avatar(self) -> None:
        await self._io.wait_ready()
        room = self._io.room
        joined = asyncio.Event()

        def check(*_: object) -> None:
            participant = room.remote_participants.get(self.identity)
            if participant is not None and participant.track_publications:
                joined.set()

        room.on("participant_connected", check)
        room.on("track_published", check)
        try:
            check()
            async with asyncio.timeout(self.join_timeout):
                await joined.wait()
        except TimeoutError:
            raise AvatarNotJoinedError(
                f"the avatar {self.identity!r} did not join room {room.name!r} and publish a "
                f"track within {self.join_timeout:g} s; start it before the agent speaks (a "
                "provider's avatar session, or flowkit.livekit.avatar_runner.AvatarRunner), "
                "or give RoomSink the identity it joins as"
            ) from None
        finally:
            room.off("participant_connected", check)
            room.off("track_published", check)
        logger.debug("avatar %r is in the room", self.identity)

    def _close_stream(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            self._spawn(writer.aclose(), "end a stretch of audio to the avatar")

    async def _clear_buffer(self) -> None:
        try:
            await self._io.room.local_participant.perform_rpc(
                destination_identity=self.identity, method=RPC_CLEAR_BUFFER, payload="",
                response_timeout=2.0,
            )
        except Exception as exc:
            logger.warning("the avatar %r did not clear its buffer: %s", self.identity, exc)

    def _spawn(self, work: Awaitable[None], name: str) -> asyncio.Task[None]:
        async def run() -> None:
            try:
                await work
            except Exception as exc:  # the room going away under us; the job goes on
                logger.debug("%s failed: %s", name, exc)

        task = asyncio.ensure_future(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- the avatar's reports

    def _on_playback_finished(self, data: rtc.RpcInvocationData) -> str:
        if data.caller_identity != self.identity:
            return self._refuse(data, RPC_PLAYBACK_FINISHED)
        try:
            report = PlaybackFinished.model_validate_json(data.payload)
        except pydantic.ValidationError as exc:
            logger.warning(
                "the avatar %r sent a %s the agent cannot read (%r): %s", self.identity,
                RPC_PLAYBACK_FINISHED, data.payload[:200], exc.errors()[0]["msg"],
            )
            raise rtc.RpcError(
                rtc.RpcError.ErrorCode.APPLICATION_ERROR,
                'expected JSON {"playback_position": seconds, "interrupted": bool}',
            ) from None
        self.finished.append(report)
        logger.debug("avatar %r played %.2f s%s", self.identity, report.playback_position,
                     " (interrupted)" if report.interrupted else "")
        return "ok"

    def _on_playback_started(self, data: rtc.RpcInvocationData) -> str:
        if data.caller_identity != self.identity:
            return self._refuse(data, RPC_PLAYBACK_STARTED)
        self.started += 1
        return "ok"

    def _refuse(self, data: rtc.RpcInvocationData, method: str) -> str:
        logger.warning("%s from %r, not the avatar %r: ignored", method,
                       data.caller_identity, self.identity)
        return "reject"

