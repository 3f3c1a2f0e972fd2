"""The avatar scenario: an agent's voice spoken by an avatar participant, as a listener gets it.

The agent's room sink sends its replies to the avatar (``RoomSink(avatar="avatar")``, LiveKit
Agents' avatar protocol); flowkit's ``AvatarRunner`` joins as the avatar and publishes the
voice with a waveform video; bob listens to the avatar's tracks. One reply plays to its end,
another is cut after about a second.

Not a test module: tests/livekit/test_avatar_room.py asserts on its result.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from livekit import rtc
from scenario_kit import agent_job, join, quiet_logs, record_audio, sound_figures, until
from sink_heard_scenario import LOUD, Feed, Reports, play_then_cut, tone_reply

import flowkit as fk
from flowkit.livekit.avatar import (
    ATTR_PUBLISH_ON_BEHALF,
    AvatarAudioOutput,
    AvatarNotJoinedError,
)
from flowkit.livekit.avatar_runner import AvatarRunner
from flowkit.messages import PlayoutEvent
from flowkit.nodes.avatar import LocalAvatar
from flowkit.nodes.room import RoomSink
from flowkit.runtime.runner import GraphRunner

HEAR_RATE = 48_000


def _stretches(times: list[float]) -> list[list[float]]:
    """Times grouped into stretches: a gap of more than 0.3 s starts another."""
    stretches: list[list[float]] = []
    for at in times:
        if not stretches or at - stretches[-1][-1] > 0.3:
            stretches.append([])
        stretches[-1].append(at)
    return stretches


async def scenario_avatar_speaks_for_the_agent() -> dict[str, Any]:
    """Run the scenario (see the module); its figures as JSON."""
    from flowkit.testing.livekit_server import TestLiveKitServer

    quiet_logs()
    loop = asyncio.get_running_loop()
    async with TestLiveKitServer() as server:
        job = await agent_job(server)
        avatar_room = await join(server, "avatar")
        avatar = AvatarRunner(avatar_room)  # finds the agent: the participant of kind agent
        await asyncio.wait_for(avatar.start(), 20.0)
        bob = await join(server, "bob")
        g = fk.Graph("avatar in a room")
        audio, interrupts = g.add(Feed()), g.add(Feed())
        sink, reports = g.add(RoomSink(avatar="avatar")), g.add(Reports())
        audio >> sink >> reports
        interrupts >> sink.interrupt
        runner = GraphRunner(g, job=job)
        running = asyncio.create_task(runner.run())

        heard: list[tuple[float, bool]] = []  # bob's 10 ms frames of the avatar's audio
        seen: list[tuple[float, float]] = []  # bob's video frames: (time, mean brightness)

        def avatar_track(kind: rtc.TrackKind.ValueType) -> rtc.Track | None:
            participant = bob.remote_participants.get("avatar")
            if participant is None:
                return None
            return next((p.track for p in participant.track_publications.values()
                         if p.track is not None and p.kind == kind), None)

        async def listen() -> None:
            await until(lambda: avatar_track(rtc.TrackKind.KIND_AUDIO) is not None)
            track = avatar_track(rtc.TrackKind.KIND_AUDIO)
            assert track is not None
            stream = rtc.AudioStream(track, sample_rate=HEAR_RATE, num_channels=1)
            async for event in stream:
                pcm = np.frombuffer(event.frame.data, np.int16).astype(np.float64)
                heard.append((loop.time(), float(np.sqrt(np.mean(pcm**2))) > LOUD))

        async def watch() -> None:
            await until(lambda: avatar_track(rtc.TrackKind.KIND_VIDEO) is not None)
            track = avatar_track(rtc.TrackKind.KIND_VIDEO)
            assert track is not None
            async for event in rtc.VideoStream(track, format=rtc.VideoBufferType.RGBA):
                pixels = np.frombuffer(event.frame.data, np.uint8)
                seen.append((loop.time(), float(pixels.mean())))

        listening = asyncio.create_task(listen())
        watching = asyncio.create_task(watch())
        await until(lambda: len(seen) > 10)  # the idle picture is showing
        await play_then_cut(audio, interrupts, reports)
        await until(lambda: len(avatar.reports) == 2)
        await asyncio.sleep(1.0)
        output = job.io.avatar_output("avatar", 24_000, 1)  # the sink's, already open
        assert isinstance(output, AvatarAudioOutput)
        await until(lambda: len(output.finished) == 2)
        audio.queue.put_nowait(None)
        interrupts.queue.put_nowait(None)
        await asyncio.wait_for(running, 20.0)
        listening.cancel()
        watching.cancel()

        loud = _stretches([at for at, is_loud in heard if is_loud])
        _, finished = reports.find(1, PlayoutEvent.FINISHED) or (0.0, None)
        _, cut = reports.find(2, PlayoutEvent.INTERRUPTED) or (0.0, None)
        assert finished is not None and cut is not None
        # The video while the first reply was heard, and before it (idle).
        first_start, first_end = loud[0][0], loud[0][-1]
        speaking = [b for at, b in seen if first_start + 0.1 <= at <= first_end - 0.1]
        idle = [b for at, b in seen if at < first_start - 0.3]
        agent_tracks = len(bob.remote_participants["agent"].track_publications)
        on_behalf = bob.remote_participants["avatar"].attributes.get(ATTR_PUBLISH_ON_BEHALF)
        # An avatar that never comes: the first write says whom it waited for, and the remedy.
        lonely = await agent_job(server, job_id="job-2", identity="agent-2")
        ghost = lonely.io.avatar_output("ghost", 24_000, 1)
        ghost.join_timeout = 0.5
        try:
            await ghost.write(tone_reply(3, 0.1)[0].frame)
            not_joined = ""
        except AvatarNotJoinedError as error:
            not_joined = str(error)
        await lonely.aclose()
        result = {
            "not_joined": not_joined,
            "stretches": len(loud),
            "first_heard_s": len(loud[0]) * 0.01,
            "cut_heard_s": len(loud[1]) * 0.01 if len(loud) > 1 else 0.0,
            "finished_played_s": finished.played_duration,
            "cut_played_s": cut.played_duration,
            "avatar_reports": [r.model_dump() for r in avatar.reports],
            "agent_got_reports": [r.model_dump() for r in output.finished],
            "agent_got_started": output.started,
            "streams_sent": output.streams,
            "agent_tracks": agent_tracks,
            "publish_on_behalf": on_behalf,
            "video_frames": len(seen),
            "video_speaking_brightness": float(np.median(speaking)) if speaking else 0.0,
            "video_idle_brightness": float(np.median(idle)) if idle else 0.0,
            "node_errors": [str(error) for error in runner.node_errors],
        }
        await avatar.aclose()
        await job.aclose()
        await avatar_room.disconnect()
        await bob.disconnect()
        return result


async def scenario_local_avatar_node() -> dict[str, Any]:
    """``LocalAvatar`` in the agent's graph: it joins, and bob hears the reply from it."""
    from flowkit.testing.livekit_server import TestLiveKitServer

    quiet_logs()
    async with TestLiveKitServer() as server:
        job = await agent_job(server, api_key=server.api_key, api_secret=server.api_secret)
        bob = await join(server, "bob")
        g = fk.Graph("a local avatar")
        audio = g.add(Feed())
        sink, reports = g.add(RoomSink(avatar="face")), g.add(Reports())
        audio >> sink >> reports
        g.add(LocalAvatar("face", width=160, height=120, fps=20))
        runner = GraphRunner(g, job=job)
        running = asyncio.create_task(runner.run())
        await until(lambda: "face" in bob.remote_participants)
        face = bob.remote_participants["face"]
        await until(lambda: any(p.track is not None and p.kind == rtc.TrackKind.KIND_AUDIO
                                for p in face.track_publications.values()))
        track = next(p.track for p in face.track_publications.values()
                     if p.track is not None and p.kind == rtc.TrackKind.KIND_AUDIO)
        hearing = asyncio.create_task(record_audio(track, 0.8, HEAR_RATE))
        for item in tone_reply(1, 1.0):
            audio.queue.put_nowait(item)
        heard = await asyncio.wait_for(hearing, 20.0)
        await until(lambda: reports.find(1, PlayoutEvent.FINISHED) is not None)
        video = [p for p in face.track_publications.values() if p.kind == rtc.TrackKind.KIND_VIDEO]
        result = {
            "kind": rtc.ParticipantKind.Name(face.kind),
            "publish_on_behalf": face.attributes.get(ATTR_PUBLISH_ON_BEHALF),
            "video_size": [video[0].width, video[0].height] if video else [],
            "heard": sound_figures(heard, HEAR_RATE),
            "agent_tracks": len(bob.remote_participants["agent"].track_publications),
            "node_errors": [str(error) for error in runner.node_errors],
        }
        audio.queue.put_nowait(None)
        await runner.close()
        running.cancel()
        await asyncio.sleep(0.5)  # the avatar leaves with the graph
        result["left"] = "face" not in bob.remote_participants
        await job.aclose()
        await bob.disconnect()
        return result
