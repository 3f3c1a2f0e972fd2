"""LiveKitAudioInput ends when its task is cancelled, whatever it was doing then.

No server: a fake room and a fake ``rtc.AudioStream`` stand in for the SDK, so the moment a
cancellation arrives can be chosen exactly. The case here is the one that hung the
publisher-job scenario (test_job_types.py) in 1 run of 20 (1 of 5 with logging on): the
participant leaves, the input closes the track's stream, and the job is cancelled in the
same loop step in which that close completes. On Python 3.11, ``asyncio.wait_for`` then
returns as if nothing happened, the input goes on waiting for the participant's next track,
and the node's task never ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any, cast

import pytest
from livekit import rtc

from flowkit.livekit.audio import LiveKitAudioInput
from flowkit.livekit.watch import RoomWatch
from flowkit.ports import AudioFormat


class FakeRoom:
    """What RoomWatch and LiveKitAudioInput read of an ``rtc.Room``."""

    def __init__(self) -> None:
        self.remote_participants: dict[str, Any] = {}
        self._handlers: dict[str, list[Callable[..., None]]] = {}

    def on(self, event: str, handler: Callable[..., None]) -> None:
        """Register ``handler`` for ``event``."""
        self._handlers.setdefault(event, []).append(handler)

    def off(self, event: str, handler: Callable[..., None]) -> None:
        """Unregister ``handler``."""
        self._handlers.get(event, []).remove(handler)

    def emit(self, event: str, *args: Any) -> None:
        """Call ``event``'s handlers, as the SDK does."""
        for handler in list(self._handlers.get(event, [])):
            handler(*args)


class FakeTrack(rtc.RemoteAudioTrack):
    """A remote audio track with no FFI handle behind it (only its type is read)."""

    def __init__(self) -> None:  # the SDK's constructor needs an FFI-owned track
        pass


class FakeStream:
    """An ``rtc.AudioStream`` that gives one frame, then nothing until it is closed.

    ``aclose`` waits until the test calls :meth:`finish_close`, so the test chooses the
    loop step in which the close completes.
    """

    made: list[FakeStream] = []

    def __init__(self, track: rtc.Track, **options: Any) -> None:
        self.closing = asyncio.Event()
        self._closed = asyncio.Event()
        FakeStream.made.append(self)

    def __aiter__(self) -> AsyncIterator[rtc.AudioFrameEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[rtc.AudioFrameEvent]:
        frame = rtc.AudioFrame(bytes(320), 16_000, 1, 160)
        yield rtc.AudioFrameEvent(frame)
        await self._closed.wait()

    async def aclose(self) -> None:
        """Close, once the test lets the close finish."""
        self.closing.set()
        await self._closed.wait()

    def finish_close(self) -> None:
        """Let ``aclose`` return (in the next loop step)."""
        self._closed.set()


async def test_a_cancellation_as_the_stream_finishes_closing_ends_the_input(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rtc, "AudioStream", FakeStream)
    FakeStream.made.clear()
    room = FakeRoom()
    publication = SimpleNamespace(
        sid="TR_mic", kind=rtc.TrackKind.KIND_AUDIO, source=rtc.TrackSource.SOURCE_MICROPHONE,
        track=FakeTrack(), subscribed=True,
    )
    alice = SimpleNamespace(
        identity="alice", kind=rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD,
        track_publications={"TR_mic": publication},
    )
    room.remote_participants["alice"] = alice
    watch = RoomWatch(cast(rtc.Room, room))
    source = LiveKitAudioInput(watch, AudioFormat(16_000, 1), "alice")
    heard: list[rtc.AudioFrame] = []

    async def room_source() -> None:  # what RoomSource.run does with the input
        async for frame in source.frames():
            heard.append(frame)

    task = asyncio.create_task(room_source())
    try:
        await asyncio.wait_for(_until(lambda: bool(heard)), 5)

        # alice leaves: the input ends her track and closes its stream
        del room.remote_participants["alice"]
        room.emit("participant_disconnected", alice)
        [stream] = FakeStream.made
        await asyncio.wait_for(stream.closing.wait(), 5)
        # the job ends in the same loop step in which the close completes
        stream.finish_close()
        task.cancel()

        done, _ = await asyncio.wait({task}, timeout=2)
        assert task in done, "the input swallowed its cancellation and waits for another track"
        assert task.cancelled()
    finally:
        watch.close("the test is over")  # ends an input that is still waiting
        await asyncio.gather(task, return_exceptions=True)
        watch.detach()


async def _until(predicate: Callable[[], bool]) -> None:
    while not predicate():
        await asyncio.sleep(0.01)
