"""LiveKitRoomIO.track_output: tracks of the agent's own beside its voice (background sound).

The first tests need no server. The scenario runs the room I/O against the test LiveKit
server with a real SDK listener, in a private network namespace (flowkit.testing.netns), and
the test at the end asserts on the JSON it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import Any

import numpy as np
import pytest
from livekit import rtc
from scenario_kit import agent_job, join, quiet_logs, sound_figures, tone_frames, until

from flowkit.livekit import LiveKitAudioOutput, LiveKitRoomIO
from flowkit.room_io import RoomIO, TrackOutputs

BACKGROUND = "background_audio"

# The room I/O before it is connected ----------------------------------------------------


async def test_room_io_has_track_outputs() -> None:
    io = LiveKitRoomIO(rtc.Room())
    assert isinstance(io, TrackOutputs)
    assert isinstance(io, RoomIO)
    await io.aclose()


async def test_a_track_output_is_kept_per_name_apart_from_the_voice() -> None:
    io = LiveKitRoomIO(rtc.Room())
    voice = io.audio_output(24_000, 1)
    background = io.track_output(BACKGROUND, 48_000, 1)
    assert isinstance(background, LiveKitAudioOutput)
    # one output per name, opened once; the voice is another output
    assert io.track_output(BACKGROUND, 48_000, 1) is background
    assert background is not voice
    assert io.track_output("other", 48_000, 1) is not background
    # published under its name, as source unknown (not a second microphone)
    assert background.track_name == BACKGROUND
    assert background.track_source == rtc.TrackSource.SOURCE_UNKNOWN
    assert voice.track_source == rtc.TrackSource.SOURCE_MICROPHONE
    assert background.paced
    await io.aclose()


async def test_a_track_output_keeps_one_format() -> None:
    io = LiveKitRoomIO(rtc.Room())
    io.track_output(BACKGROUND, 48_000, 1)
    with pytest.raises(ValueError) as info:
        io.track_output(BACKGROUND, 24_000, 1)
    message = str(info.value)
    assert repr(BACKGROUND) in message  # names the track, both formats and the remedy
    assert "open at 48 kHz mono, not 24 kHz mono" in message
    assert "another track name" in message
    await io.aclose()


async def test_a_track_output_cannot_take_the_voice_tracks_name() -> None:
    io = LiveKitRoomIO(rtc.Room(), track_name="voice")
    with pytest.raises(ValueError, match="'voice' is the agent's voice track's"):
        io.track_output("voice", 48_000, 1)
    io.track_output("agent-audio", 48_000, 1)  # the default voice name is free here
    await io.aclose()


async def test_track_outputs_are_released_with_the_room_io() -> None:
    io = LiveKitRoomIO(rtc.Room())
    background = io.track_output(BACKGROUND, 48_000, 1)
    await io.aclose()
    assert background.released
    with pytest.raises(RuntimeError, match=r"track_output\(\) after aclose\(\)"):
        io.track_output(BACKGROUND, 48_000, 1)
    with pytest.raises(RuntimeError, match="after release"):
        await background.write(rtc.AudioFrame.create(48_000, 1, 480))


# Scenario against the test LiveKit server (runs inside a network namespace) -------------

TIMEOUT = 20.0
AGENT = "agent"
VOICE_HZ = 300.0
BACKGROUND_HZ = 880.0


async def _write_all(output: LiveKitAudioOutput, frames: list[rtc.AudioFrame]) -> None:
    for frame in frames:
        await output.write(frame)


def _agent_publications(client: rtc.Room) -> dict[str, rtc.RemoteTrackPublication]:
    """The agent's publications as ``client`` sees them, by track name."""
    agent = client.remote_participants.get(AGENT)
    return {} if agent is None else {p.name: p for p in agent.track_publications.values()}


async def _hear(track: rtc.Track, seconds: float) -> dict[str, float]:
    """Listen to ``track`` until ``seconds`` of sound (after any first silence) were heard."""
    stream = rtc.AudioStream(track, sample_rate=48_000, num_channels=1)
    heard: list[np.ndarray] = []
    async with asyncio.timeout(TIMEOUT):
        async for event in stream:
            pcm = np.frombuffer(event.frame.data, dtype=np.int16).copy()
            if not heard and np.abs(pcm).max() < 2000:
                continue  # silence before the tone arrives
            heard.append(pcm)
            if sum(len(h) for h in heard) >= 48_000 * seconds:
                break
    await stream.aclose()
    return sound_figures(np.concatenate(heard), 48_000)


async def scenario_background_track_beside_the_voice() -> dict[str, Any]:
    from flowkit.testing.livekit_server import TestLiveKitServer

    quiet_logs()
    async with TestLiveKitServer() as server:
        job = await agent_job(server)
        io = job.io
        assert isinstance(io, LiveKitRoomIO)
        loop = asyncio.get_running_loop()

        # nobody is in the room yet: the first write publishes, and does not wait for anyone
        background = io.track_output(BACKGROUND, 48_000, 1)
        tone = tone_frames(BACKGROUND_HZ, 48_000, 8.0)
        started = loop.time()
        await background.write(tone[0])
        first_write_s = loop.time() - started
        writers = [asyncio.create_task(_write_all(background, tone[1:]))]

        bob = await join(server, "bob")
        unpublished: list[str] = []
        bob.on("track_unpublished", lambda pub, participant: unpublished.append(pub.sid))
        voice = io.audio_output(24_000, 1)
        writers.append(asyncio.create_task(_write_all(voice, tone_frames(VOICE_HZ, 24_000, 8.0))))

        # bob sees (and auto-subscribes to) both tracks of the agent
        await until(
            lambda: (
                len(_agent_publications(bob)) == 2
                and all(p.track is not None for p in _agent_publications(bob).values())
            ),
            timeout=TIMEOUT,
        )
        seen = _agent_publications(bob)
        publications = {
            name: {"sid": p.sid, "source": int(p.source), "kind": int(p.kind)}
            for name, p in seen.items()
        }
        tracks = {name: p.track for name, p in seen.items()}
        background_track, voice_track = tracks[BACKGROUND], tracks["agent-audio"]
        assert background_track is not None and voice_track is not None
        heard = {
            BACKGROUND: await _hear(background_track, 1.0),
            "agent-audio": await _hear(voice_track, 1.0),
        }

        for writer in writers:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        local_before = sorted(io.room.local_participant.track_publications)
        await io.aclose()  # the room stays connected: bob sees unpublishing, not leaving
        sids = {p["sid"] for p in publications.values()}
        await until(lambda: sids <= set(unpublished), timeout=TIMEOUT)
        result = {
            "first_write_s": first_write_s,
            "publications": publications,
            "output_sids": {BACKGROUND: background.track_sid, "agent-audio": voice.track_sid},
            "heard": heard,
            "local_before": local_before,
            "local_after": sorted(io.room.local_participant.track_publications),
            "unpublished": sorted(unpublished),
            "bob_sees_after": sorted(_agent_publications(bob)),
            "agent_still_in_room": AGENT in bob.remote_participants,
        }
        await job.aclose()
        await bob.disconnect()
        return result


# Test of the scenario -----------------------------------------------------------------------

EXPECTED_RMS = 0.3 * 32767 / math.sqrt(2)


def test_a_track_output_is_published_beside_the_voice_heard_and_unpublished(
    run_scenario: Any,
) -> None:
    result = run_scenario(__file__, "scenario_background_track_beside_the_voice")
    # with nobody to listen, the first write did not wait the voice's 3 s for a subscriber
    assert result["first_write_s"] < 1.5, result
    # two publications of the agent: the voice as microphone, the background as unknown
    publications = result["publications"]
    assert sorted(publications) == ["agent-audio", BACKGROUND]
    assert publications[BACKGROUND]["source"] == rtc.TrackSource.SOURCE_UNKNOWN
    assert publications["agent-audio"]["source"] == rtc.TrackSource.SOURCE_MICROPHONE
    assert {p["kind"] for p in publications.values()} == {rtc.TrackKind.KIND_AUDIO}
    assert result["output_sids"] == {n: p["sid"] for n, p in publications.items()}
    # each track carries its own sound (listeners mix them)
    background, voice = result["heard"][BACKGROUND], result["heard"]["agent-audio"]
    assert abs(background["peak_hz"] - BACKGROUND_HZ) < 5, result
    assert 0.7 * EXPECTED_RMS < background["rms"] < 1.3 * EXPECTED_RMS, result
    assert abs(voice["peak_hz"] - VOICE_HZ) < 5, result
    # aclose unpublished both, while the agent stayed in the room
    assert result["local_before"] == sorted(p["sid"] for p in publications.values())
    assert result["local_after"] == []
    assert result["unpublished"] == result["local_before"]
    assert result["bob_sees_after"] == []
    assert result["agent_still_in_room"] is True
