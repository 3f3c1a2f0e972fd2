"""Helpers for the LiveKit scenarios (not a test module): joining, waiting, tones and what is heard.

It lives beside the scenarios, not in tests/support.py: a scenario runs in a subprocess whose
``sys.path`` has tests/livekit but not tests/.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from livekit import api, rtc
from livekit.protocol import models
from livekit.protocol import rtc as rtc_pb

import flowkit as fk
from flowkit.job import JobContext
from flowkit.livekit import connect_job, room_token
from flowkit.testing.livekit_server import TestLiveKitServer
from flowkit.testing.livekit_server.app import Mount
from flowkit.testing.livekit_server.rooms import Participant, PublishedTrack

RATE = 48_000
"""The rate the tone is captured at (the SDK's native rate)."""
FRAME = RATE // 50  # 20 ms


def quiet_logs() -> None:
    """Log warnings only, without the server's access lines (a failing scenario reads clearly)."""
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


async def join(server: Any, identity: str, room: str = "lobby", timeout: float = 20.0) -> rtc.Room:
    """A client ``identity`` connected to ``room`` on the test server."""
    client = rtc.Room()
    await asyncio.wait_for(client.connect(server.url, server.token(identity, room)), timeout)
    return client


async def agent_job(
    server: Any, job_id: str = "job-1", identity: str = "agent", room: str = "lobby",
    **io_options: Any,
) -> JobContext:
    """A job connected to ``room`` as the agent ``identity`` (``io_options`` go to its I/O)."""
    job = JobContext(job_id=job_id, room_name=room)
    token = room_token(server.api_key, server.api_secret, room, identity, kind="agent")
    await asyncio.wait_for(connect_job(job, url=server.url, token=token, **io_options), 20.0)
    return job


class ToneCounter(fk.Node):
    """Counts the frames it hears, and those loud enough to carry a tone."""

    audio: fk.In[rtc.AudioFrame] = fk.In(default=True)

    def __init__(self) -> None:
        super().__init__()
        self.frames = 0
        self.loud = 0

    async def run(self, audio: AsyncIterator[rtc.AudioFrame]) -> None:
        """Count until the input ends."""
        async for frame in audio:
            self.frames += 1
            if np.abs(np.frombuffer(frame.data, dtype=np.int16)).max() > 2000:
                self.loud += 1


def tone_frames(
    hz: float, rate: int, seconds: float, amplitude: float = 0.3
) -> list[rtc.AudioFrame]:
    """``seconds`` of a sine at ``hz`` in 20 ms frames, continuous across frames."""
    per = rate // 50
    frames = []
    for i in range(int(seconds * 50)):
        t = (np.arange(per) + i * per) / rate
        pcm = (amplitude * 32767 * np.sin(2 * math.pi * hz * t)).astype(np.int16)
        frames.append(rtc.AudioFrame(pcm.tobytes(), rate, 1, per))
    return frames


def sound_figures(samples: np.ndarray, rate: int) -> dict[str, float]:
    """The RMS and the loudest frequency of ``samples`` (zeros when there are none)."""
    body = samples.astype(np.float64)
    if len(body) == 0:
        return {"rms": 0.0, "peak_hz": 0.0}
    rms = float(np.sqrt(np.mean(body**2)))
    spectrum = np.abs(np.fft.rfft(body * np.hanning(len(body))))
    return {"rms": rms, "peak_hz": float(np.argmax(spectrum) * rate / len(body))}


async def until(predicate: Callable[[], object], timeout: float = 20.0) -> None:
    """Wait until ``predicate()`` is true.

    Raises:
        TimeoutError: It was not within ``timeout`` seconds.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.02)


async def play_tone_track(
    client: rtc.Room, hz: float, seconds: float, *, amplitude: float = 0.3
) -> asyncio.Task[None]:
    """Publish a new microphone track on ``client`` and play ``hz`` on it, in a task.

    Returns:
        The task playing the tone; it ends after ``seconds`` (cancel it to stop earlier).
    """
    source = rtc.AudioSource(RATE, 1)
    track = rtc.LocalAudioTrack.create_audio_track("mic", source)
    options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    await client.local_participant.publish_track(track, options)

    async def play() -> None:
        for frame in tone_frames(hz, RATE, seconds, amplitude):
            await source.capture_frame(frame)

    return asyncio.create_task(play(), name=f"{hz:.0f} Hz tone")


async def record_audio(
    track: rtc.Track, seconds: float, sample_rate: int, timeout: float = 20.0
) -> np.ndarray:
    """``seconds`` of what ``track`` plays, mono at ``sample_rate``, from its first loud frame.

    The frames before the tone reaches the client (silence) are skipped.
    """
    stream = rtc.AudioStream(track, sample_rate=sample_rate, num_channels=1)
    chunks: list[np.ndarray] = []
    got = 0

    async def collect() -> None:
        nonlocal got
        async for event in stream:
            data = np.frombuffer(event.frame.data, dtype=np.int16)
            if got == 0 and np.abs(data).max() < 500:
                continue
            chunks.append(data.copy())
            got += len(data)
            if got >= seconds * sample_rate:
                return

    try:
        await asyncio.wait_for(collect(), timeout)
    finally:
        await stream.aclose()
    return np.concatenate(chunks)


@asynccontextmanager
async def server_with_api(
    key: str, secret: str, host: str = "127.0.0.1", *, agents: Mount | None = None
) -> AsyncIterator[tuple[TestLiveKitServer, api.LiveKitAPI]]:
    """A test server with the key pair ``key``/``secret``, and a livekit-api client for it."""
    server = TestLiveKitServer(host, api_key=key, api_secret=secret, agents=agents)
    async with server, api.LiveKitAPI(server.url, key, secret) as lkapi:
        yield server, lkapi


TRUNK = "ST_test"
"""The outbound trunk :func:`server_with_trunk` stores."""
TRUNK_HOST = "sip.example.com"
TRUNK_NUMBER = "+15550199"


@asynccontextmanager
async def server_with_trunk(
    key: str, secret: str, host: str = "127.0.0.1"
) -> AsyncIterator[tuple[TestLiveKitServer, api.LiveKitAPI]]:
    """:func:`server_with_api`, with the outbound trunk ``TRUNK`` (at ``TRUNK_HOST``,
    number ``TRUNK_NUMBER``) stored, and its phones empty."""
    async with server_with_api(key, secret, host) as (server, lkapi):
        server.sip.provisioning.add_outbound_trunk(api.SIPOutboundTrunkInfo(
            sip_trunk_id=TRUNK, address=TRUNK_HOST, numbers=[TRUNK_NUMBER]))
        yield server, lkapi


class RecordingLink:
    """A participant's link (the room's ``ParticipantLink``) that records what it is sent.

    For in-process tests of the test server: a participant joined with it needs no WebRTC.
    """

    def __init__(self) -> None:
        self.sent: list[rtc_pb.SignalResponse] = []
        self.closed: list[int] = []
        self.data: list[bytes] = []

    def send_signal(self, response: rtc_pb.SignalResponse) -> None:
        self.sent.append(response)

    def subscribe_track(self, publisher: Participant, track: PublishedTrack) -> None:
        pass

    def unsubscribe_track(self, publisher: Participant, track: PublishedTrack) -> None:
        pass

    def send_data(self, label: str, payload: bytes) -> None:
        self.data.append(payload)

    def close(self, reason: int) -> None:
        self.closed.append(reason)

    def updates_about(self, identity: str) -> list[tuple[str, str]]:
        """Each participant update about ``identity``: its ``sip.callStatus`` and state."""
        state = models.ParticipantInfo.State.Name
        return [
            (info.attributes.get("sip.callStatus", ""), state(info.state))
            for response in self.sent
            if response.WhichOneof("message") == "update"
            for info in response.update.participants
            if info.identity == identity
        ]
