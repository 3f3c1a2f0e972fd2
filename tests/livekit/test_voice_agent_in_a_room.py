"""graphs/voice_agent.py served by a worker, talked to by a real SDK user in a room.

Everything is real except the providers (the demo stand-ins, for deterministic timing): the
test LiveKit server dispatches a job to a `flowkit dev` worker process when the room is
created, the worker builds the graph and joins the room, and the user, an `rtc.Room` of the
official SDK, speaks a recorded question, hears the agent's answer, reads both transcripts on
`lk.transcription`, sees `lk.agent.state` change, and barges in. A caller on a simulated
phone asks the same question through an inbound SIP call and hears the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
from livekit import rtc

from flowkit.audio.wav import read_frames

ROOT = Path(__file__).parents[2]
GRAPH = ROOT / "graphs" / "voice_agent.py"
QUESTION = ROOT / "examples" / "audio" / "weather_question.wav"
TIMEOUT = 60.0


async def _until(predicate: Any, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.05)


async def _speak(source: rtc.AudioSource, path: Path) -> None:
    for frame in read_frames(path):  # capture_frame waits for the SDK's queue: real time
        await source.capture_frame(frame)


async def _silence(source: rtc.AudioSource, seconds: float) -> None:
    rate = source.sample_rate
    frame = rtc.AudioFrame(bytes(rate // 50 * 2), rate, 1, rate // 50)
    for _ in range(int(seconds * 50)):
        await source.capture_frame(frame)


@contextlib.asynccontextmanager
async def _server_and_worker() -> AsyncIterator[tuple[Any, Any]]:
    """The test server with agent dispatch, and a `flowkit dev` worker serving the graph."""
    from flowkit.testing.livekit_server import TestLiveKitServer
    from flowkit.testing.livekit_server.agents import AgentDispatcher

    dispatcher = AgentDispatcher()
    async with TestLiveKitServer(agents=dispatcher.mount) as server:
        env = {
            **os.environ,
            "LIVEKIT_URL": server.url,
            "LIVEKIT_API_KEY": server.api_key,
            "LIVEKIT_API_SECRET": server.api_secret,
            "FLOWKIT_PROVIDERS": "demo",
        }
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from flowkit.cli import main; main()",
            "dev", str(GRAPH), "--http-port", "-1", "--log-level", "warning",
            env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        try:
            await dispatcher.wait_for_workers(1)
            yield server, dispatcher
        finally:
            worker.terminate()
            _, err = await asyncio.wait_for(worker.communicate(), TIMEOUT)
            if worker.returncode not in (0, -15):
                raise RuntimeError(f"worker exited {worker.returncode}: {err.decode()[-2000:]}")


async def scenario_voice_agent_answers_and_is_interrupted() -> dict[str, Any]:
    async with _server_and_worker() as (server, _):
        server.create_room("lobby")  # automatic dispatch to the unnamed worker
        user = rtc.Room()
        await asyncio.wait_for(
            user.connect(server.url, server.token("alice", "lobby")), TIMEOUT
        )
        transcripts: list[dict[str, str]] = []
        states: list[str] = []

        async def read(reader: rtc.TextStreamReader, identity: str) -> None:
            attributes = dict(reader.info.attributes)
            transcripts.append({
                "text": await reader.read_all(),
                "final": attributes.get("lk.transcription_final", ""),
                "track": attributes.get("lk.transcribed_track_id", ""),
                "segment": attributes.get("lk.segment_id", ""),
            })

        user.register_text_stream_handler(
            "lk.transcription",
            lambda reader, who: asyncio.get_running_loop().create_task(read(reader, who)),
        )
        user.on(
            "participant_attributes_changed",
            lambda changed, p: states.append(changed.get("lk.agent.state", "")),
        )
        await _until(lambda: len(user.remote_participants) > 0)
        agent = next(iter(user.remote_participants.values()))

        source = rtc.AudioSource(16_000, 1)
        track = rtc.LocalAudioTrack.create_audio_track("mic", source)
        mic = await user.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        )

        def agent_track() -> rtc.Track | None:
            for publication in agent.track_publications.values():
                if publication.track is not None:
                    return publication.track
            return None

        heard: list[tuple[float, float]] = []  # (time, RMS) of each agent frame

        async def listen() -> None:
            await _until(lambda: agent_track() is not None)
            found = agent_track()
            assert found is not None
            stream = rtc.AudioStream(found, sample_rate=48_000, num_channels=1)
            async for event in stream:
                pcm = np.frombuffer(event.frame.data, dtype=np.int16).astype(np.float64)
                heard.append((time.monotonic(), float(np.sqrt(np.mean(pcm**2)))))

        listener = asyncio.get_running_loop().create_task(listen())
        start = time.monotonic()
        await _speak(source, QUESTION)
        # The demo reply is a tone of several seconds: wait until it plays, then barge in.
        await _until(lambda: any(rms > 500 for _, rms in heard))
        speaking_from = next(t for t, rms in heard if rms > 500)
        await asyncio.sleep(1.5)
        barge_in = time.monotonic()
        await _speak(source, QUESTION)
        await _silence(source, 4.0)
        listener.cancel()
        await user.disconnect()
        return {
            "first_audio_after_s": speaking_from - start,
            "barge_in_s": barge_in - start,
            "heard": [(t - start, rms) for t, rms in heard],
            "transcripts": transcripts,
            "states": states,
            "mic_track": mic.sid,
        }
    raise AssertionError("unreachable")


def test_a_worker_serves_the_voice_agent_in_a_room(run_scenario: Any) -> None:
    result = run_scenario(__file__, "scenario_voice_agent_answers_and_is_interrupted", 180.0)
    # The agent answered after the question (4 s of audio) and its endpointing.
    assert 4.0 < result["first_audio_after_s"] < 12.0
    agent_lines = [t for t in result["transcripts"] if t["text"].startswith("I heard")]
    user_lines = [t for t in result["transcripts"] if t["text"].startswith("[")]
    assert agent_lines, result["transcripts"]
    # The agent's transcript follows its playout: a segment per reply, interims that grow
    # as it plays, then one final (the barge-in cuts the first reply; a second answers it).
    first = [t for t in agent_lines if t["segment"] == agent_lines[0]["segment"]]
    assert [t["final"] for t in first].count("true") == 1, first
    assert any(t["final"] == "false" for t in first), first
    assert user_lines and any(t["final"] == "true" for t in user_lines)
    assert any(t["track"] == result["mic_track"] for t in user_lines)
    for state in ("listening", "thinking", "speaking"):
        assert state in result["states"], result["states"]
    # The barge-in: 0.5 s of speech, then the agent's audio stops within a short while.
    barge = result["barge_in_s"]
    after = [(t, rms) for t, rms in result["heard"] if barge + 0.5 < t < barge + 3.0]
    quiet = [t for t, rms in after if rms < 100]
    assert quiet, "the agent kept talking through the barge-in"
    assert min(quiet) < barge + 2.0


async def _ask(server: Any, room: str, identity: str) -> dict[str, Any]:
    """One user in ``room`` asks the question and reports what the agent said and played."""
    user = rtc.Room()
    await asyncio.wait_for(user.connect(server.url, server.token(identity, room)), TIMEOUT)
    said: list[str] = []

    async def read(reader: rtc.TextStreamReader, who: str) -> None:
        said.append(await reader.read_all())

    user.register_text_stream_handler(
        "lk.transcription",
        lambda reader, who: asyncio.get_running_loop().create_task(read(reader, who)),
    )
    await _until(lambda: len(user.remote_participants) > 0)
    agent = next(iter(user.remote_participants.values()))
    source = rtc.AudioSource(16_000, 1)
    await user.local_participant.publish_track(
        rtc.LocalAudioTrack.create_audio_track("mic", source),
        rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE),
    )
    await _speak(source, QUESTION)
    await _until(lambda: any(p.track for p in agent.track_publications.values()))
    track = next(p.track for p in agent.track_publications.values() if p.track)
    loudest = 0.0
    stream = rtc.AudioStream(track, sample_rate=48_000, num_channels=1)
    deadline = time.monotonic() + 15
    async for event in stream:
        pcm = np.frombuffer(event.frame.data, dtype=np.int16).astype(np.float64)
        loudest = max(loudest, float(np.sqrt(np.mean(pcm**2))))
        if loudest > 500 or time.monotonic() > deadline:
            break
    await stream.aclose()
    # The transcript grows a word at a time as the reply plays: wait for the words heard.
    await _until(lambda: any(s.startswith("I heard [") for s in said), timeout=15)
    await user.disconnect()
    return {"agent": agent.identity, "loudest": loudest, "said": said}


async def scenario_two_rooms_at_once() -> dict[str, Any]:
    async with _server_and_worker() as (server, dispatcher):
        server.create_room("red")
        server.create_room("blue")
        red, blue = await asyncio.gather(_ask(server, "red", "rita"), _ask(server, "blue", "bob"))
        # Each caller hung up after the answer: the worker ends their jobs and says so.
        from livekit.protocol import agent as agent_pb

        ended = await asyncio.gather(*(
            dispatcher.wait_for_job(job_id, agent_pb.JS_SUCCESS, timeout=TIMEOUT)
            for job_id in list(dispatcher.jobs)
        ))
        return {"red": red, "blue": blue, "jobs": len(dispatcher.jobs),
                "ended": [agent_pb.JobStatus.Name(job.status) for job in ended]}
    raise AssertionError("unreachable")


def test_one_worker_talks_in_two_rooms_at_once(run_scenario: Any) -> None:
    result = run_scenario(__file__, "scenario_two_rooms_at_once", 180.0)
    assert result["jobs"] == 2
    assert result["ended"] == ["JS_SUCCESS", "JS_SUCCESS"], result
    for room in ("red", "blue"):
        assert result[room]["loudest"] > 500, result[room]
        assert any(s.startswith("I heard [") for s in result[room]["said"]), result[room]


async def scenario_a_caller_asks_the_voice_agent_by_phone() -> dict[str, Any]:
    from livekit import api
    from livekit.protocol import models

    agent_kind = models.ParticipantInfo.Kind.AGENT

    def agents_in(room: Any) -> list[str]:
        return [p.identity for p in room.participants.values() if p.kind == agent_kind]

    async with _server_and_worker() as (server, dispatcher), \
            api.LiveKitAPI(server.url, server.api_key, server.api_secret) as lkapi:
        # A phone number whose calls go to the room "hotline", where the agent is dispatched.
        rule = api.SIPDispatchRule(
            dispatch_rule_direct=api.SIPDispatchRuleDirect(room_name="hotline"))
        await lkapi.sip.create_dispatch_rule(api.CreateSIPDispatchRuleRequest(
            dispatch_rule=api.SIPDispatchRuleInfo(rule=rule)))
        phone = server.sip.add_phone("+15550100")
        call = await server.sip.call_in("+15550100", "+15551234", hang_up_after=90)
        room = call.room
        await _until(lambda: agents_in(room))
        record = phone.calls[0]
        frames = list(read_frames(QUESTION))
        question = np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in frames])
        # The agent publishes its voice when it first speaks: the phone is sent it then.
        call.say(question, frames[0].sample_rate)
        said_at = time.monotonic()

        def loud_reply() -> bool:
            heard = [t.heard() for t in record.tracks if t.kind == "audio"]
            return any(h.size > 0 and float(np.abs(h).max()) > 3000 for h in heard)

        await _until(loud_reply)
        answered_after = time.monotonic() - said_at
        sent = next(t for t in record.tracks if t.kind == "audio")
        agents = agents_in(room)
        call.hang_up()
        return {
            "jobs": len(dispatcher.jobs),
            "sent": [sent.publisher, sent.kind],
            "agents": agents,
            "answered_after_s": answered_after,
        }
    raise AssertionError("unreachable")


def test_a_caller_asks_the_voice_agent_by_phone_and_hears_its_answer(
    run_scenario: Any,
) -> None:
    # Inbound SIP: the dispatch rule puts the call in "hotline", the worker's agent joins,
    # hears the phone's question on its microphone track, and the phone hears the answer.
    result = run_scenario(__file__, "scenario_a_caller_asks_the_voice_agent_by_phone", 180.0)
    assert result["jobs"] == 1
    assert result["sent"][1] == "audio" and [result["sent"][0]] == result["agents"]
    # The question is 4 s long, then the endpointing and the demo reply's tone.
    assert 4.0 < result["answered_after_s"] < 15.0, result
