"""A simulated phone speaks and hears: ``call.say`` publishes the call's audio track into the
room, and each audio track the room sends the phone is kept as what it heard.

The room's side (the track announced, unpublished when the call ends, the errors) is checked
in-process with recording links; what a real SDK client hears needs WebRTC, so that scenario
runs in a private network namespace (see flowkit.testing.netns).
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import numpy as np
import pytest
from av import AudioFrame
from livekit import api, rtc
from livekit.protocol import models
from scenario_kit import (
    RecordingLink,
    play_tone_track,
    quiet_logs,
    record_audio,
    sound_figures,
    until,
)

from flowkit.testing.livekit_server import TestLiveKitServer
from flowkit.testing.livekit_server.rooms import Participant, new_sid
from flowkit.testing.livekit_server.server_audio import ServerAudioTrack
from flowkit.testing.livekit_server.sip import DialPlan, SimulatedCall
from flowkit.testing.livekit_server.sip.hearing import HEARD_RATE, mono_pcm
from flowkit.testing.livekit_server.sip.phones import SentTrack

KEY = "devkey"
SECRET = "sip-phone-audio-secret-0123456789abcdef"
CALLER = "+15550100"
LISTENER = "+15550199"
NUMBER = "+15551234"
TONE_HZ = 440.0
PHONE_RATE = 16_000
"""The rate the phone's tone is given at: not 48 kHz, so the track resamples it."""
RATE = 48_000


def tone(seconds: float, hz: float = TONE_HZ, rate: int = PHONE_RATE) -> np.ndarray:
    """``seconds`` of a sine at ``hz``, mono int16 at ``rate``."""
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * 32767 * np.sin(2 * math.pi * hz * t)).astype(np.int16)


async def _desk_rule(lkapi: api.LiveKitAPI) -> None:
    rule = api.SIPDispatchRule(dispatch_rule_direct=api.SIPDispatchRuleDirect(room_name="desk"))
    await lkapi.sip.create_dispatch_rule(
        api.CreateSIPDispatchRuleRequest(dispatch_rule=api.SIPDispatchRuleInfo(rule=rule)))


def _published_tracks(link: RecordingLink, identity: str) -> list[list[str]]:
    """The track sids each participant update about ``identity`` lists, in order."""
    return [
        [track.sid for track in info.tracks]
        for response in link.sent
        if response.WhichOneof("message") == "update"
        for info in response.update.participants
        if info.identity == identity
    ]


# In-process: the room's side ----------------------------------------------------------------


async def test_say_publishes_a_microphone_track_once_and_the_hang_up_unpublishes_it() -> None:
    async with TestLiveKitServer("127.0.0.1", api_key=KEY, api_secret=SECRET) as server, \
            api.LiveKitAPI(server.url, KEY, SECRET) as lkapi:
        await _desk_rule(lkapi)
        link = RecordingLink()
        server.create_room("desk").join(Participant(sid=new_sid("PA"), identity="agent",
                                                    link=link))
        call = await server.sip.call_in(CALLER, NUMBER, hang_up_after=30)
        assert call.microphone is None  # silent until it speaks

        call.say(tone(0.2), PHONE_RATE)
        call.say(tone(0.1, rate=RATE), RATE)
        microphone = call.microphone
        assert microphone is not None
        info = microphone.info
        assert info.sid.startswith("TR_")
        assert (info.type, info.source, info.name, info.mime_type) == (
            models.TrackType.AUDIO, models.TrackSource.MICROPHONE, "phone", "audio/opus")
        assert list(call.participant.tracks) == [info.sid]  # the second say reused the track
        assert isinstance(microphone.media, ServerAudioTrack)
        assert microphone.media.pending_seconds == pytest.approx(0.3, abs=0.01)

        call.hang_up()
        identity = f"sip_{CALLER}"
        # Joined without a track, then announced with it, then unpublished before leaving.
        assert _published_tracks(link, identity) == [[], [info.sid], [info.sid], [], []]
        assert call.microphone is None and microphone.media.readyState == "ended"
        with pytest.raises(RuntimeError, match=r"has ended .*start a new call"):
            call.say(tone(0.1), PHONE_RATE)


async def test_a_dialled_call_cannot_speak_before_it_is_answered() -> None:
    async with TestLiveKitServer("127.0.0.1", api_key=KEY, api_secret=SECRET) as server:
        plan = DialPlan(
            address=CALLER, call_id="SCL_test", identity="sip_phone", name="", metadata="",
            attributes={}, caller=NUMBER, ringing_timeout=5.0, max_call_duration=None,
            dtmf="", play_dialtone=False, headers={})
        call = SimulatedCall(server.create_room("desk"), plan, phone=None)
        with pytest.raises(RuntimeError, match=r"not answered yet.*wait_answered\(\)"):
            call.say(tone(0.1), PHONE_RATE)
        assert call.microphone is None


async def test_say_refuses_samples_that_are_not_mono_int16() -> None:
    track = ServerAudioTrack()
    with pytest.raises(ValueError, match="mono int16"):
        track.play(np.zeros((2, 160), dtype=np.int16), PHONE_RATE)
    with pytest.raises(ValueError, match="mono int16"):
        track.play(np.zeros(160, dtype=np.float32), PHONE_RATE)  # type: ignore[arg-type]
    track.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        track.play(np.zeros(160, dtype=np.int16), PHONE_RATE)


@pytest.mark.looptime
async def test_the_track_plays_in_real_time_then_silence() -> None:
    track = ServerAudioTrack()
    track.play(tone(0.1), PHONE_RATE)
    loop = asyncio.get_running_loop()
    started = loop.time()
    frames = [await track.recv() for _ in range(10)]
    elapsed = loop.time() - started
    track.stop()
    assert [frame.pts for frame in frames] == [i * 960 for i in range(10)]
    assert all(frame.samples == 960 and frame.sample_rate == RATE for frame in frames)
    assert elapsed == pytest.approx(0.18)  # ten 20 ms frames, the first at once (virtual time)
    loud = [int(np.abs(frame.to_ndarray()).max()) for frame in frames]
    assert min(loud[:4]) > 5000 and max(loud[6:]) == 0  # 0.1 s of tone, then silence


def test_a_heard_frame_becomes_48khz_mono_and_a_float_frame_is_refused() -> None:
    stereo = AudioFrame.from_ndarray(
        np.array([[1000, 3000] * 480], dtype=np.int16), format="s16", layout="stereo")
    stereo.sample_rate = HEARD_RATE
    assert mono_pcm(stereo).tolist() == [2000] * 480  # the channels averaged
    slow = AudioFrame.from_ndarray(tone(0.02).reshape(1, -1), format="s16", layout="mono")
    slow.sample_rate = PHONE_RATE
    assert mono_pcm(slow).size == 960  # 20 ms at 48 kHz
    floats = AudioFrame.from_ndarray(np.zeros((1, 960), dtype=np.float32), format="flt",
                                     layout="mono")
    with pytest.raises(ValueError, match=r"packed s16.*got flt"):
        mono_pcm(floats)


def _heard_seconds(sent: SentTrack) -> float:
    return sum(len(chunk) for chunk in sent.audio) / HEARD_RATE


async def test_a_phone_hears_another_phone_on_the_call_until_it_hangs_up() -> None:
    async with TestLiveKitServer("127.0.0.1", api_key=KEY, api_secret=SECRET) as server, \
            api.LiveKitAPI(server.url, KEY, SECRET) as lkapi:
        await _desk_rule(lkapi)
        listener_phone = server.sip.add_phone(LISTENER)
        listener = await server.sip.call_in(LISTENER, NUMBER, hang_up_after=30)
        speaker = await server.sip.call_in(CALLER, NUMBER, hang_up_after=30)
        speaker.say(tone(0.5), PHONE_RATE)
        record = listener_phone.calls[0]
        await until(lambda: record.tracks and _heard_seconds(record.tracks[0]) >= 0.8)
        sent = record.tracks[0]
        assert (sent.publisher, sent.name, sent.kind) == (f"sip_{CALLER}", "phone", "audio")
        heard = sent.heard()
        assert heard.dtype == np.int16 and heard.ndim == 1
        loud = np.flatnonzero(np.abs(heard) > 3000)
        start = int(loud[0])
        figures = sound_figures(heard[start : start + HEARD_RATE * 2 // 5], HEARD_RATE)
        assert figures["rms"] > 4000 and abs(figures["peak_hz"] - TONE_HZ) < 10, figures
        assert np.abs(heard[start + 3 * HEARD_RATE // 5 :]).max() < 300  # then the silence

        speaker.hang_up()  # the track goes: the phone stops hearing it
        await until(lambda: sent.stopped)
        kept = _heard_seconds(sent)
        await asyncio.sleep(0.3)
        assert _heard_seconds(sent) == kept
        listener.hang_up()


# With a real SDK client: WebRTC, so a network namespace ----------------------------------------


def test_an_sdk_client_hears_the_phone_and_the_track_goes_with_the_call(
    run_scenario: Any,
) -> None:
    result = run_scenario(__file__, "scenario_phone_speaks")
    assert result["track"] == {
        "publisher": f"sip_{CALLER}", "name": "phone", "kind": rtc.TrackKind.KIND_AUDIO,
        "source": rtc.TrackSource.SOURCE_MICROPHONE}
    assert result["tone"]["rms"] > 2000  # a 0.3 full-scale sine has an RMS near 7000
    assert abs(result["tone"]["peak_hz"] - TONE_HZ) < 10
    assert result["after"]["rms"] < 300  # silence once the tone is said; the track lives on
    # The SDK reports the track unpublished when its publisher leaves too, so this shows the
    # client was told the track is gone; that the call unpublishes it before leaving is
    # checked in-process above.
    assert result["unpublished"] == [result["sid"]]
    assert result["left"] == [f"sip_{CALLER}"]


async def scenario_phone_speaks() -> dict[str, Any]:
    quiet_logs()
    async with TestLiveKitServer("10.99.0.1", api_key=KEY, api_secret=SECRET) as server, \
            api.LiveKitAPI(server.url, KEY, SECRET) as lkapi:
        await _desk_rule(lkapi)
        client = rtc.Room()
        subscribed: list[tuple[rtc.Track, rtc.RemoteTrackPublication, str]] = []
        unpublished: list[str] = []
        left: list[str] = []
        client.on("track_subscribed", lambda track, pub, participant: subscribed.append(
            (track, pub, participant.identity)))
        client.on("track_unpublished", lambda pub, participant: unpublished.append(pub.sid))
        client.on("participant_disconnected", lambda p: left.append(p.identity))
        await asyncio.wait_for(client.connect(server.url, server.token("listener", "desk")), 20)

        call = await server.sip.call_in(CALLER, NUMBER, hang_up_after=30)
        call.say(tone(1.0), PHONE_RATE)
        await until(lambda: subscribed)
        track, publication, publisher = subscribed[0]
        heard = await record_audio(track, 1.6, RATE)
        call.hang_up()
        await until(lambda: unpublished and left)
        result = {
            "track": {"publisher": publisher, "name": publication.name,
                      "kind": int(publication.kind), "source": int(publication.source)},
            "sid": publication.sid,
            # 50 ms in, past the codec's ramp; 0.5 s, well within the 1 s tone.
            "tone": sound_figures(heard[RATE // 20: RATE // 20 + RATE // 2], RATE),
            # The last 0.3 s of 1.6 s: past the tone's end even if its start was heard late.
            "after": sound_figures(heard[-3 * RATE // 10:], RATE),
            "unpublished": unpublished,
            "left": left,
        }
        await client.disconnect()
        return result


def test_a_phone_hears_an_sdk_clients_microphone(run_scenario: Any) -> None:
    result = run_scenario(__file__, "scenario_phone_hears")
    assert result["sent"] == ["talker", "mic", "audio"]
    # Through WebRTC: the client's Opus, decoded by the server's relay, kept by the phone.
    assert result["tone"]["rms"] > 2000, result
    assert abs(result["tone"]["peak_hz"] - 660.0) < 10, result


async def scenario_phone_hears() -> dict[str, Any]:
    quiet_logs()
    async with TestLiveKitServer("10.99.0.1", api_key=KEY, api_secret=SECRET) as server, \
            api.LiveKitAPI(server.url, KEY, SECRET) as lkapi:
        await _desk_rule(lkapi)
        phone = server.sip.add_phone(LISTENER)
        call = await server.sip.call_in(LISTENER, NUMBER, hang_up_after=30)
        client = rtc.Room()
        await asyncio.wait_for(client.connect(server.url, server.token("talker", "desk")), 20)
        playing = await play_tone_track(client, 660.0, 3.0)
        record = phone.calls[0]

        def loud_seconds() -> float:
            if not record.tracks:
                return 0.0
            heard = record.tracks[0].heard()
            loud = np.flatnonzero(np.abs(heard) > 2000)
            return (len(heard) - int(loud[0])) / HEARD_RATE if len(loud) else 0.0

        await until(lambda: loud_seconds() >= 1.0)
        sent = record.tracks[0]
        heard = sent.heard()
        start = int(np.flatnonzero(np.abs(heard) > 2000)[0]) + HEARD_RATE // 10
        result = {
            "sent": [sent.publisher, sent.name, sent.kind],
            "tone": sound_figures(heard[start : start + HEARD_RATE // 2], HEARD_RATE),
        }
        playing.cancel()
        call.hang_up()
        await client.disconnect()
        return result
