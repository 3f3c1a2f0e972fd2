"""The test LiveKit server's rooms, driven by the official `livekit` SDK.

Each test runs one async scenario below in a private network namespace (see
flowkit.testing.netns) and asserts on the JSON it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable
from typing import Any, TypeVar

import numpy as np
from livekit import rtc
from scenario_kit import quiet_logs, record_audio, until

from flowkit.testing.livekit_server import TestLiveKitServer

SAMPLE_RATE = 48_000
TONE_HZ = 440.0
TONE_AMPLITUDE = 0.3
TIMEOUT = 20.0

T = TypeVar("T")


# Scenario helpers (they run inside the namespace) --------------------------------------


async def _join(
    server: TestLiveKitServer, identity: str, room: str = "lobby", **grants: bool
) -> rtc.Room:
    client = rtc.Room()
    token = server.token(identity, room, **grants)
    await asyncio.wait_for(client.connect(server.url, token), TIMEOUT)
    return client


async def _publish_tone(
    client: rtc.Room, seconds: float, hz: float = TONE_HZ
) -> rtc.LocalTrackPublication:
    source = rtc.AudioSource(SAMPLE_RATE, 1)
    track = rtc.LocalAudioTrack.create_audio_track("tone", source)
    options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    publication = await client.local_participant.publish_track(track, options)
    samples_per_frame = SAMPLE_RATE // 100
    t = np.arange(samples_per_frame) / SAMPLE_RATE
    for i in range(int(seconds * 100)):
        phase = 2 * math.pi * hz * (t + i * samples_per_frame / SAMPLE_RATE)
        pcm = (TONE_AMPLITUDE * 32767 * np.sin(phase)).astype(np.int16)
        frame = rtc.AudioFrame(pcm.tobytes(), SAMPLE_RATE, 1, samples_per_frame)
        await source.capture_frame(frame)
    return publication


def _tone_figures(samples: np.ndarray) -> dict[str, float]:
    body = samples[SAMPLE_RATE // 5 :].astype(np.float64)
    rms = float(np.sqrt(np.mean(body**2)))
    spectrum = np.abs(np.fft.rfft(body * np.hanning(len(body))))
    peak_hz = float(np.argmax(spectrum) * SAMPLE_RATE / len(body))
    return {"rms": rms, "peak_hz": peak_hz}


async def _first_audio_track(client: rtc.Room, identity: str, *, other_than: str = "") -> rtc.Track:
    """The first subscribed audio track of ``identity`` (but not the track ``other_than``)."""
    found: list[rtc.Track] = []

    def check() -> bool:
        participant = client.remote_participants.get(identity)
        if participant is None:
            return False
        for publication in participant.track_publications.values():
            track = publication.track
            if (
                track is not None
                and publication.kind == rtc.TrackKind.KIND_AUDIO
                and publication.sid != other_than
            ):
                found.append(track)
                return True
        return False

    await until(check)
    return found[0]


async def _within_timeout(awaitable: Awaitable[T]) -> T | None:
    """``awaitable``'s result, or None when it timed out (so a scenario can report it)."""
    try:
        return await awaitable
    except TimeoutError:
        return None


async def _relay_tone(
    speaker: rtc.Room, listener: rtc.Room, identity: str, hz: float, *, other_than: str = ""
) -> dict[str, Any]:
    """Publish a new ``hz`` tone track on ``speaker``; what ``listener`` hears of it.

    Returns the sid of the track the speaker published, the sid of the track of ``identity``
    the listener got (``""``: none in time) and the tone figures of what it heard on it
    (zero when no audio came).
    """
    publishing = asyncio.create_task(_publish_tone(speaker, 3.0, hz))
    track = await _within_timeout(_first_audio_track(listener, identity, other_than=other_than))
    recording = None if track is None else record_audio(track, 1.0, SAMPLE_RATE, TIMEOUT)
    samples = None if recording is None else await _within_timeout(recording)
    publication = await publishing
    figures = {"rms": 0.0, "peak_hz": 0.0} if samples is None else _tone_figures(samples)
    return {
        "published_sid": publication.sid,
        "heard_sid": "" if track is None else track.sid,
        **figures,
    }


# Scenarios -------------------------------------------------------------------------------


async def scenario_join() -> dict[str, Any]:
    quiet_logs()
    async with TestLiveKitServer() as server:
        alice = await _join(server, "alice")
        connected: list[str] = []
        alice.on("participant_connected", lambda p: connected.append(p.identity))
        bob = await _join(server, "bob")
        await until(lambda: connected == ["bob"])
        result = {
            "alice_sees": sorted(alice.remote_participants),
            "bob_sees": sorted(bob.remote_participants),
            "connected_events": list(connected),
            "room_name": bob.name,
            "server_participants": sorted(server.rooms.get("lobby").participants),  # type: ignore[union-attr]
        }
        await alice.disconnect()
        await bob.disconnect()
        return result


async def scenario_audio() -> dict[str, Any]:
    quiet_logs()
    async with TestLiveKitServer() as server:
        alice = await _join(server, "alice")
        bob = await _join(server, "bob")
        publishing = asyncio.create_task(_publish_tone(alice, 4.0))
        track = await _first_audio_track(bob, "alice")
        samples = await record_audio(track, 1.5, SAMPLE_RATE, TIMEOUT)
        await publishing
        result = _tone_figures(samples)
        await alice.disconnect()
        await bob.disconnect()
        return result


async def scenario_text_and_data() -> dict[str, Any]:
    quiet_logs()
    async with TestLiveKitServer() as server:
        alice = await _join(server, "alice")
        bob = await _join(server, "bob")
        texts: list[dict[str, str]] = []
        packets: list[dict[str, str]] = []

        async def read_text(reader: rtc.TextStreamReader, identity: str) -> None:
            texts.append({"from": identity, "text": await reader.read_all()})

        def on_text(reader: rtc.TextStreamReader, identity: str) -> None:
            asyncio.get_running_loop().create_task(read_text(reader, identity))

        bob.register_text_stream_handler("chat", on_text)
        bob.on(
            "data_received",
            lambda p: packets.append(
                {
                    "from": p.participant.identity if p.participant else "",
                    "topic": p.topic or "",
                    "data": p.data.decode(),
                }
            ),
        )
        await alice.local_participant.publish_data(b"raw bytes", reliable=True, topic="raw")
        await alice.local_participant.send_text("hello over a text stream", topic="chat")
        long_text = "word " * 5000  # several chunks
        await alice.local_participant.send_text(long_text, topic="chat")
        await until(lambda: len(texts) == 2 and len(packets) == 1)
        result = {"texts": list(texts), "packets": list(packets), "long_len": len(long_text)}
        await alice.disconnect()
        await bob.disconnect()
        return result


async def scenario_attributes() -> dict[str, Any]:
    quiet_logs()
    async with TestLiveKitServer() as server:
        alice = await _join(server, "alice")
        bob = await _join(server, "bob")
        changes: list[dict[str, str]] = []
        bob.on(
            "participant_attributes_changed",
            lambda changed, participant: changes.append(dict(changed)),
        )
        await alice.local_participant.set_attributes({"lk.agent.state": "listening"})
        await until(lambda: bool(changes))
        await alice.local_participant.set_attributes({"lk.agent.state": "speaking"})
        await until(lambda: len(changes) >= 2)
        await alice.local_participant.set_metadata("alice's metadata")
        await until(lambda: bob.remote_participants["alice"].metadata == "alice's metadata")
        # Without canUpdateOwnMetadata the server refuses: nothing reaches bob.
        carol = await _join(server, "carol", can_update_own_metadata=False)
        await until(lambda: "carol" in bob.remote_participants)
        with contextlib.suppress(Exception):  # the SDK may report the refusal or not
            await asyncio.wait_for(
                carol.local_participant.set_attributes({"lk.agent.state": "thinking"}), TIMEOUT
            )
        await asyncio.sleep(0.5)  # time enough for an update that should not come
        result = {
            "carol_seen_by_bob": dict(bob.remote_participants["carol"].attributes),
            "changes": list(changes),
            "bob_sees": dict(bob.remote_participants["alice"].attributes),
            "alice_has": dict(alice.local_participant.attributes),
            "metadata": bob.remote_participants["alice"].metadata,
        }
        await alice.disconnect()
        await bob.disconnect()
        await carol.disconnect()
        return result


async def scenario_rpc() -> dict[str, Any]:
    quiet_logs()
    async with TestLiveKitServer() as server:
        alice = await _join(server, "alice")
        bob = await _join(server, "bob")
        carol = await _join(server, "carol")
        calls: list[str] = []

        async def shout(data: rtc.RpcInvocationData) -> str:
            calls.append(f"{data.caller_identity}:{data.payload}")
            return data.payload.upper()

        bob.local_participant.register_rpc_method("shout", shout)
        carol.local_participant.register_rpc_method("shout", shout)
        await until(lambda: "bob" in alice.remote_participants)
        reply = await alice.local_participant.perform_rpc(
            destination_identity="bob", method="shout", payload="hello bob"
        )
        error = ""
        try:
            await alice.local_participant.perform_rpc(
                destination_identity="bob", method="missing", payload=""
            )
        except rtc.RpcError as rpc_error:
            error = str(rpc_error.code)
        result = {"reply": reply, "calls": list(calls), "missing_method_code": error}
        for client in (alice, bob, carol):
            await client.disconnect()
        return result


async def scenario_leave_and_rejoin() -> dict[str, Any]:
    quiet_logs()
    async with TestLiveKitServer() as server:
        bob = await _join(server, "bob")
        events: list[str] = []
        bob.on("participant_connected", lambda p: events.append(f"+{p.identity}"))
        bob.on("participant_disconnected", lambda p: events.append(f"-{p.identity}"))
        alice = await _join(server, "alice")
        await until(lambda: events == ["+alice"])
        first_sid = bob.remote_participants["alice"].sid
        await alice.disconnect()
        await until(lambda: events == ["+alice", "-alice"])
        gone = "alice" not in bob.remote_participants
        alice = await _join(server, "alice")
        await until(lambda: events == ["+alice", "-alice", "+alice"])
        second_sid = bob.remote_participants["alice"].sid
        publishing = asyncio.create_task(_publish_tone(alice, 3.0))
        track = await _first_audio_track(bob, "alice")
        figures = _tone_figures(await record_audio(track, 1.0, SAMPLE_RATE, TIMEOUT))
        await publishing
        result = {
            "events": list(events),
            "gone_after_leave": gone,
            "new_sid": first_sid != second_sid,
            "server_participants": sorted(server.rooms.get("lobby").participants),  # type: ignore[union-attr]
            **figures,
        }
        await alice.disconnect()
        await bob.disconnect()
        return result


SECOND_TONE_HZ = 660.0
"""The tone of a second track: hearing it proves the listener got the new track."""


def _log_subscriptions(client: rtc.Room) -> list[str]:
    """Track events ``client`` gets, in order: ``+sid`` subscribed, ``-sid`` unpublished."""
    events: list[str] = []
    client.on("track_subscribed", lambda track, pub, participant: events.append(f"+{pub.sid}"))
    client.on("track_unpublished", lambda pub, participant: events.append(f"-{pub.sid}"))
    return events


async def _second_track_after_the_first_publisher_left(second: str) -> dict[str, Any]:
    """Alice relays a tone to bob and leaves; then ``second`` joins and relays another."""
    async with TestLiveKitServer() as server:
        bob = await _join(server, "bob")
        events = _log_subscriptions(bob)
        alice = await _join(server, "alice")
        first = await _relay_tone(alice, bob, "alice", TONE_HZ)
        await alice.disconnect()
        await until(lambda: "alice" not in bob.remote_participants)
        publisher = await _join(server, second)
        later = await _relay_tone(publisher, bob, second, SECOND_TONE_HZ)
        result = {"first": first, "second": later, "events": list(events)}
        await publisher.disconnect()
        await bob.disconnect()
        return result


async def scenario_new_track_after_the_publisher_left_and_rejoined() -> dict[str, Any]:
    quiet_logs()
    return await _second_track_after_the_first_publisher_left("alice")


async def scenario_new_track_of_another_publisher_after_the_first_left() -> dict[str, Any]:
    quiet_logs()
    return await _second_track_after_the_first_publisher_left("carol")


async def scenario_unpublish_and_publish_again() -> dict[str, Any]:
    quiet_logs()
    async with TestLiveKitServer() as server:
        bob = await _join(server, "bob")
        events = _log_subscriptions(bob)
        alice = await _join(server, "alice")
        first = await _relay_tone(alice, bob, "alice", TONE_HZ)
        await alice.local_participant.unpublish_track(first["published_sid"])
        await _within_timeout(until(lambda: f"-{first['published_sid']}" in events))
        second = await _relay_tone(
            alice, bob, "alice", SECOND_TONE_HZ, other_than=first["published_sid"]
        )
        lobby = server.rooms.get("lobby")
        assert lobby is not None
        result = {
            "first": first,
            "second": second,
            "events": list(events),
            "bob_sees": sorted(bob.remote_participants["alice"].track_publications),
            "server_tracks": sorted(lobby.participants["alice"].tracks),
        }
        await alice.disconnect()
        await bob.disconnect()
        return result


async def scenario_join_after_a_track_was_published() -> dict[str, Any]:
    quiet_logs()
    async with TestLiveKitServer() as server:
        alice = await _join(server, "alice")
        publishing = asyncio.create_task(_publish_tone(alice, 8.0))
        lobby = server.rooms.get("lobby")
        assert lobby is not None
        # bob joins only once the server relays alice's track: it must be in bob's very
        # first subscriber offer, the order of a user who publishes before the agent joins
        await until(lambda: any(t.media for t in lobby.participants["alice"].tracks.values()))
        bob = await _join(server, "bob")
        track = await _first_audio_track(bob, "alice")
        figures = _tone_figures(await record_audio(track, 1.0, SAMPLE_RATE, TIMEOUT))
        await publishing
        await alice.disconnect()
        await bob.disconnect()
        return figures


# Tests -------------------------------------------------------------------------------------

EXPECTED_RMS = TONE_AMPLITUDE * 32767 / math.sqrt(2)


def test_two_clients_join_and_see_each_other(run_scenario: Any) -> None:
    result = run_scenario(__file__, "scenario_join")
    assert result["alice_sees"] == ["bob"]
    assert result["bob_sees"] == ["alice"]
    assert result["connected_events"] == ["bob"]
    assert result["room_name"] == "lobby"
    assert result["server_participants"] == ["alice", "bob"]


def test_audio_is_relayed_with_its_tone_and_energy(run_scenario: Any) -> None:
    result = run_scenario(__file__, "scenario_audio")
    assert abs(result["peak_hz"] - TONE_HZ) < 5, result
    assert 0.7 * EXPECTED_RMS < result["rms"] < 1.3 * EXPECTED_RMS, result


def test_a_late_joiner_hears_a_track_published_before_it_joined(run_scenario: Any) -> None:
    result = run_scenario(__file__, "scenario_join_after_a_track_was_published")
    assert abs(result["peak_hz"] - TONE_HZ) < 5, result
    assert 0.7 * EXPECTED_RMS < result["rms"] < 1.3 * EXPECTED_RMS, result


def test_data_packets_and_text_streams_are_relayed(run_scenario: Any) -> None:
    result = run_scenario(__file__, "scenario_text_and_data")
    assert result["packets"] == [{"from": "alice", "topic": "raw", "data": "raw bytes"}]
    texts = sorted(result["texts"], key=lambda t: len(t["text"]))
    assert texts[0] == {"from": "alice", "text": "hello over a text stream"}
    assert texts[1]["from"] == "alice"
    assert len(texts[1]["text"]) == result["long_len"]


def test_attributes_and_metadata_reach_the_other_side(run_scenario: Any) -> None:
    result = run_scenario(__file__, "scenario_attributes")
    assert result["changes"][0] == {"lk.agent.state": "listening"}
    assert result["changes"][-1] == {"lk.agent.state": "speaking"}
    assert result["bob_sees"] == {"lk.agent.state": "speaking"}
    assert result["alice_has"] == {"lk.agent.state": "speaking"}
    assert result["metadata"] == "alice's metadata"
    assert result["carol_seen_by_bob"] == {}
    assert len(result["changes"]) == 2  # alice's two changes, nothing of carol's


def test_rpc_reaches_only_its_destination(run_scenario: Any) -> None:
    result = run_scenario(__file__, "scenario_rpc")
    assert result["reply"] == "HELLO BOB"
    assert result["calls"] == ["alice:hello bob"]
    assert result["missing_method_code"] == str(rtc.RpcError.ErrorCode.UNSUPPORTED_METHOD)


def test_participant_leaves_and_rejoins(run_scenario: Any) -> None:
    result = run_scenario(__file__, "scenario_leave_and_rejoin")
    assert result["events"] == ["+alice", "-alice", "+alice"]
    assert result["gone_after_leave"] is True
    assert result["new_sid"] is True
    assert result["server_participants"] == ["alice", "bob"]
    assert abs(result["peak_hz"] - TONE_HZ) < 5, result
    assert 0.7 * EXPECTED_RMS < result["rms"] < 1.3 * EXPECTED_RMS, result


def _assert_heard(heard: dict[str, Any], hz: float) -> None:
    """The listener got the very track that was published, and heard its tone."""
    assert heard["heard_sid"] == heard["published_sid"], f"the track never arrived: {heard}"
    assert abs(heard["peak_hz"] - hz) < 5, heard
    assert 0.7 * EXPECTED_RMS < heard["rms"] < 1.3 * EXPECTED_RMS, heard


def _replaced(first: dict[str, Any], second: dict[str, Any]) -> list[str]:
    """The listener's track events when ``second`` replaces ``first`` (see _log_subscriptions)."""
    old, new = first["published_sid"], second["published_sid"]
    return [f"+{old}", f"-{old}", f"+{new}"]


def test_a_new_track_arrives_after_its_publisher_left_and_rejoined(run_scenario: Any) -> None:
    result = run_scenario(__file__, "scenario_new_track_after_the_publisher_left_and_rejoined")
    first, second = result["first"], result["second"]
    _assert_heard(first, TONE_HZ)
    _assert_heard(second, SECOND_TONE_HZ)
    assert second["published_sid"] != first["published_sid"]
    # the participant left, so the first track went unpublished before the second arrived
    assert result["events"] == _replaced(first, second)


def test_a_new_track_of_another_publisher_arrives_after_the_first_left(
    run_scenario: Any,
) -> None:
    result = run_scenario(__file__, "scenario_new_track_of_another_publisher_after_the_first_left")
    first, second = result["first"], result["second"]
    _assert_heard(first, TONE_HZ)
    _assert_heard(second, SECOND_TONE_HZ)
    assert result["events"] == _replaced(first, second)


def test_an_unpublished_track_goes_away_and_a_new_one_arrives(run_scenario: Any) -> None:
    result = run_scenario(__file__, "scenario_unpublish_and_publish_again")
    first, second = result["first"], result["second"]
    _assert_heard(first, TONE_HZ)
    _assert_heard(second, SECOND_TONE_HZ)
    assert result["events"] == _replaced(first, second)
    # nobody keeps the unpublished track: not the listener, not the server
    assert result["bob_sees"] == [second["published_sid"]]
    assert result["server_tracks"] == [second["published_sid"]]


async def scenario_bad_secret() -> dict[str, Any]:
    quiet_logs()
    async with TestLiveKitServer() as server:
        wrong = TestLiveKitServer(api_secret="not-the-server-secret-but-long-enough-0123")
        client = rtc.Room()
        try:
            await asyncio.wait_for(client.connect(server.url, wrong.token("mallory", "lobby")), 20)
        except rtc.ConnectError as error:
            return {"error": str(error), "rooms": [room.name for room in server.rooms.list()]}
        await client.disconnect()
        return {"error": "", "rooms": [room.name for room in server.rooms.list()]}


def test_a_token_signed_with_another_secret_is_refused_clearly(run_scenario: Any) -> None:
    result = run_scenario(__file__, "scenario_bad_secret")
    assert "401" in result["error"], result
    assert "invalid access token" in result["error"], result
    assert result["rooms"] == []
