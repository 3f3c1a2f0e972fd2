"""Warm transfer: the caller on hold, a human agent briefed in a room of their own, then moved.

The transfers run against the test server with simulated phones: the caller calls in, the
human agent's phone is dialled by the transfer, and each hears and speaks through the room.
The agent joins two rooms with the real SDK, so these scenarios run in a private network
namespace (see flowkit.testing.netns). The set-up's errors need no room and run in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import AsyncIterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import pytest
from livekit import api, rtc
from scenario_kit import quiet_logs, sound_figures, until

import flowkit as fk
from flowkit.livekit import connect_job
from flowkit.livekit.hold import HOLD_TRACK
from flowkit.livekit.warm_transfer import (
    Consultation,
    WarmTransfer,
    WarmTransferError,
    WarmTransferFailure,
    warm_transfer_tool,
)
from flowkit.messages import ToolCall
from flowkit.nodes import audio, llm, room, stt, tools, tts, turn, vad
from flowkit.policy import ErrorPolicy
from flowkit.ports import Out
from flowkit.providers.chat import ChatMessage
from flowkit.providers.llm import ToolCallChunk
from flowkit.testing import FakeLLM, FakeReply, FakeSTT, FakeTTS
from flowkit.testing.livekit_server import TestLiveKitServer
from flowkit.testing.livekit_server.sip import SimulatedCall
from flowkit.testing.livekit_server.sip.hearing import HEARD_RATE
from flowkit.testing.livekit_server.sip.phones import SimulatedPhone
from flowkit.tools import RunContext, ToolError
from flowkit.tools.invoke import invoke_tool
from flowkit.vad import EnergyVAD

KEY = "devkey"
SECRET = "warm-transfer-secret-0123456789abcdef"
CALLER = "+15550100"
NUMBER = "+15551234"  # what the caller dials
HUMAN = "+15550142"  # the human agent's line
BUSY = "+15550143"
ROOM = "desk"
HUMAN_ID = "human-agent-sip"
SUMMARY = "Ada Lovelace wants to move her booking of Friday to Monday."
BRIEFING = "A caller wants to move a booking."
VOICE_HZ = 660.0


def _tone(seconds: float, hz: float = 440.0, rate: int = 16_000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * 32767 * np.sin(2 * math.pi * hz * t)).astype(np.int16)


# In-process: the set-up -----------------------------------------------------------------------


def _nothing(consultation: Consultation) -> fk.Graph:
    raise AssertionError("not built in these tests")


def test_a_transfer_needs_a_number_a_trunk_and_a_place_for_the_summary(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LIVEKIT_SIP_OUTBOUND_TRUNK", raising=False)
    with pytest.raises(ValueError, match="sip_call_to is empty"):
        WarmTransfer("", consultation=_nothing, sip_trunk_id="ST_out")
    with pytest.raises(ValueError, match="LIVEKIT_SIP_OUTBOUND_TRUNK"):
        WarmTransfer(HUMAN, consultation=_nothing)
    with pytest.raises(ValueError, match=r"no \{summary\}"):
        WarmTransfer(HUMAN, consultation=_nothing, sip_trunk_id="ST_out", instructions="hi")
    monkeypatch.setenv("LIVEKIT_SIP_OUTBOUND_TRUNK", "ST_env")
    assert WarmTransfer(HUMAN, consultation=_nothing).sip_trunk_id == "ST_env"
    silent = WarmTransfer(HUMAN, consultation=_nothing, hold_audio=False)
    assert silent.hold_audio is None
    with pytest.raises(ValueError, match=r"float64 of shape \(10,\); give mono int16"):
        WarmTransfer(HUMAN, consultation=_nothing, hold_audio=np.zeros(10))


async def test_the_tool_asks_for_a_summary_and_says_when_there_is_no_call_to_transfer() -> None:
    tool = warm_transfer_tool(WarmTransfer(HUMAN, consultation=_nothing, sip_trunk_id="ST_out"))
    schema = tool.signature.parameters
    assert list(schema["properties"]) == ["summary"] and schema["required"] == ["summary"]
    assert "what they want" in schema["properties"]["summary"]["description"]
    call = ToolCall(turn_id=1, call_id="c1", name="transfer_to_human",
                    arguments='{"summary": "a caller"}')
    outcome = await invoke_tool([tool], call, RunContext(call=call, userdata=None), timeout=5)
    assert outcome.result.is_error
    assert "no phone call to transfer here" in outcome.result.output


async def test_run_refuses_a_job_outside_livekit() -> None:
    transfer = WarmTransfer(HUMAN, consultation=_nothing, sip_trunk_id="ST_out")
    with pytest.raises(RuntimeError, match="needs a LiveKit job in its room"):
        await transfer.run(fk.JobContext(job_id="local"), SUMMARY)


# In a network namespace: the transfers ------------------------------------------------------


def consultation_graph(
    heard: Sequence[str], requests: list[Sequence[ChatMessage]],
) -> Any:
    """A consultation graph on fakes: the human agent's words are ``heard`` in order; the
    model briefs them on the first turn and, on each later one, takes their answer: it
    connects on "put them through" and declines otherwise; it apologises when the connection
    failed. Each request's history goes to ``requests``."""

    def reply(history: Sequence[ChatMessage]) -> str | FakeReply:
        requests.append(list(history))
        if history[-1].role == "tool":  # a tool failed (the others end the response)
            return "Sorry, I could not connect you."
        said = [m.content for m in history if m.role == "user"]
        if len(said) < 2:
            return BRIEFING
        if "put them through" in said[-1]:
            return FakeReply(tool_calls=(ToolCallChunk("t1", "connect_to_caller", "{}"),))
        return FakeReply(tool_calls=(
            ToolCallChunk("t1", "decline_transfer", '{"reason": "in a meeting"}'),))

    def build(consultation: Consultation) -> fk.Graph:
        g = fk.Graph("consultation")
        mic = g.add(room.RoomSource(sample_rate=48_000), name="mic")
        ears = g.add(vad.VAD(EnergyVAD()), name="vad")
        asr = g.add(stt.STT(FakeSTT(list(heard), delay=0.05)), name="stt")
        turns = g.add(turn.TurnDetector(mode="vad", min_endpointing_delay=0.2), name="turns")
        brain = g.add(llm.LLM(FakeLLM(reply, ttft=0.05, token_gap=0.01),
                              instructions=consultation.instructions,
                              tools=list(consultation.tools)), name="llm")
        router = g.add(tools.ToolRouter(list(consultation.tools)), name="tools")
        voice = g.add(tts.TTS(FakeTTS(sample_rate=24_000, frequency=VOICE_HZ)), name="tts")
        speaker = g.add(room.RoomSink(), name="speaker")
        mic >> audio.Resample(16_000, channels=1) >> ears >> asr >> turns >> brain
        ears.events >> [asr.speech, turns.vad]
        brain >> voice >> speaker
        brain.tool_calls >> router >> brain.tool_results
        speaker >> [brain.playout, router.playout]
        return g

    return build


class _Desk(NamedTuple):
    """A scenario's world: the server, its API, the phones, the caller's call, the job."""

    server: TestLiveKitServer
    lkapi: api.LiveKitAPI
    human_phone: SimulatedPhone
    caller_phone: SimulatedPhone
    caller: Any
    job: fk.JobContext


@contextlib.asynccontextmanager
async def _desk(answer_after: float = 0.2) -> AsyncIterator[_Desk]:
    """The test server with the outbound trunk, the human agent's phone (answering after
    ``answer_after`` s), the caller's call in room ``desk`` and the agent's job joined to it.
    On the way out the caller hangs up (if still on) and the job leaves the room."""
    quiet_logs()
    server = TestLiveKitServer("10.99.0.1", api_key=KEY, api_secret=SECRET)
    server.sip.provisioning.add_outbound_trunk(api.SIPOutboundTrunkInfo(
        sip_trunk_id="ST_out", address="sip.example.com", numbers=["+15550000000"]))
    async with server, api.LiveKitAPI(server.url, KEY, SECRET) as lkapi:
        human_phone = server.sip.add_phone(HUMAN, answer_after=answer_after)
        rule = api.SIPDispatchRule(dispatch_rule_direct=api.SIPDispatchRuleDirect(room_name=ROOM))
        await lkapi.sip.create_dispatch_rule(
            api.CreateSIPDispatchRuleRequest(dispatch_rule=api.SIPDispatchRuleInfo(rule=rule)))
        caller_phone = server.sip.add_phone(CALLER)
        caller = await server.sip.call_in(CALLER, NUMBER, hang_up_after=120)
        job = fk.JobContext(job_id="AJ_1", room_name=ROOM)
        await asyncio.wait_for(connect_job(
            job, url=server.url, token=server.token("agent", ROOM, kind="agent"),
            api_key=KEY, api_secret=SECRET), 20)
        try:
            yield _Desk(server, lkapi, human_phone, caller_phone, caller, job)
        finally:
            if caller.ended is None:
                caller.hang_up()
            await job.aclose()  # and leave the room


async def _answered(server: TestLiveKitServer, phone: SimulatedPhone) -> SimulatedCall:
    """The human agent's call in the consultation room, once ``phone`` has answered it."""
    consult_room = f"{ROOM}-human-agent"
    await until(lambda: server.sip.call(consult_room, HUMAN_ID) is not None
                and bool(phone.calls) and phone.calls[-1].answered_at is not None)
    call = server.sip.call(consult_room, HUMAN_ID)
    assert call is not None
    return call


async def _brief_then_answer(server: TestLiveKitServer, phone: SimulatedPhone) -> None:
    """The human agent answers, says hello, hears the briefing out, and answers it."""
    human = await _answered(server, phone)
    await asyncio.sleep(0.5)
    human.say(_tone(0.6), 16_000)
    await asyncio.sleep(3.0)  # the briefing
    human.say(_tone(0.6), 16_000)


def _loud_seconds(chunks: Sequence[np.ndarray]) -> float:
    if not chunks:
        return 0.0
    heard = np.concatenate(chunks)
    return float(np.count_nonzero(np.abs(heard) > 500)) / HEARD_RATE


async def _rooms(lkapi: api.LiveKitAPI) -> list[str]:
    return sorted(r.name for r in (await lkapi.room.list_rooms(api.ListRoomsRequest())).rooms)


async def _participants(lkapi: api.LiveKitAPI, room_name: str) -> dict[str, Any]:
    listed = await lkapi.room.list_participants(api.ListParticipantsRequest(room=room_name))
    return {p.identity: p for p in listed.participants}


def test_a_human_agent_is_briefed_then_takes_the_call(run_scenario: Any) -> None:
    result = run_scenario(__file__, "scenario_connects", timeout=150)
    assert result["result"] == [HUMAN_ID, f"{ROOM}-human-agent"]
    # On hold: the agent heard nobody, and the caller heard the music on its own track.
    assert result["held_during"] is True
    assert result["hold_music_seconds"] > 0.5
    assert result["hold_music_stopped"] is True
    # The consultation: the summary in the model's instructions, the briefing spoken to the
    # human agent (the fake voice's tone), their answer taken.
    assert SUMMARY in result["instructions"]
    assert result["briefing_heard"]["rms"] > 1000
    assert abs(result["briefing_heard"]["peak_hz"] - VOICE_HZ) < 15
    assert result["human_said"] == ["hello who is this", "sure put them through"]
    # Moved: in the caller's room as a phone participant still on the call; the consultation
    # room is gone.
    assert result["rooms_after"] == [ROOM]
    assert result["human_in_desk"] == {"kind": "SIP", "sip.callStatus": "active"}
    # The caller hears the human agent; the agent stays deaf (its input on hold).
    assert result["caller_hears_human"]["rms"] > 1000
    assert abs(result["caller_hears_human"]["peak_hz"] - 523.0) < 15
    assert result["held_after"] is True
    # One of them hangs up: the room is deleted, which ends the other's call and the job.
    assert result["rooms_at_end"] == []
    assert result["human_call_ended"] is True
    assert result["job_shutdown"] is True


async def scenario_connects() -> dict[str, Any]:
    requests: list[Sequence[ChatMessage]] = []
    async with _desk(answer_after=0.3) as (server, lkapi, human_phone, caller_phone, caller, job):
        transfer = WarmTransfer(
            HUMAN, sip_trunk_id="ST_out",
            consultation=consultation_graph(
                ["hello who is this", "sure put them through"], requests),
        )
        running = asyncio.ensure_future(transfer.run(job, SUMMARY))
        human = await _answered(server, human_phone)
        held_during = job.io.on_hold  # type: ignore[union-attr]
        await asyncio.sleep(0.5)
        human.say(_tone(0.6), 16_000)  # "hello who is this"
        record = human_phone.calls[-1]

        def briefing() -> list[np.ndarray]:
            return [c for t in record.tracks if t.publisher == "agent" for c in t.audio]

        await until(lambda: _loud_seconds(briefing()) > 0.5, timeout=30)
        await asyncio.sleep(1.5)  # the rest of the briefing
        human.say(_tone(0.6), 16_000)  # "sure put them through"
        result = await asyncio.wait_for(running, 30)

        def hold_music() -> list[np.ndarray]:
            return [c for t in caller_phone.calls[-1].tracks
                    if t.publisher == "agent" and t.name == HOLD_TRACK for c in t.audio]

        hold_seconds = _loud_seconds(hold_music())
        heard = np.concatenate(briefing())
        loud = np.flatnonzero(np.abs(heard) > 1000)
        desk = await _participants(lkapi, ROOM)
        human_info = desk.get(HUMAN_ID)
        rooms_after = await _rooms(lkapi)

        # The human agent speaks in the caller's room now: the caller hears them.
        before = len(caller_phone.calls[-1].tracks)
        moved = server.sip.call(ROOM, HUMAN_ID)
        assert moved is not None
        moved.say(_tone(1.0, hz=523.0), 16_000)

        def from_human() -> list[np.ndarray]:
            return [c for t in caller_phone.calls[-1].tracks[before - 1 :]
                    if t.publisher == HUMAN_ID for c in t.audio]

        await until(lambda: _loud_seconds(from_human()) > 0.5, timeout=20)
        voice = np.concatenate(from_human())
        start = int(np.flatnonzero(np.abs(voice) > 1000)[0])
        # Stopped: the music heard a second and more after the transfer is no louder than
        # what was on its way when it stopped (the network's and the decoder's delay).
        hold_music_stopped = _loud_seconds(hold_music()) - hold_seconds < 0.3

        caller.hang_up()  # the caller leaves: the agent ends the call for the human agent
        await until(lambda: record.end is not None, timeout=20)
        rooms_at_end = await _rooms(lkapi)
        await until(lambda: job.shutdown_requested, timeout=20)
        out = {
            "result": [result.human_agent_identity, result.consultation_room],
            "held_during": held_during,
            "hold_music_seconds": hold_seconds,
            "hold_music_stopped": hold_music_stopped,
            "instructions": requests[0][0].content,
            "briefing_heard": sound_figures(heard[int(loud[0]):int(loud[0]) + HEARD_RATE // 4],
                                            HEARD_RATE),
            "human_said": [m.content for m in requests[-1] if m.role == "user"],
            "rooms_after": rooms_after,
            "human_in_desk": None if human_info is None else {
                "kind": api.ParticipantInfo.Kind.Name(human_info.kind),
                "sip.callStatus": human_info.attributes.get("sip.callStatus")},
            "caller_hears_human": sound_figures(voice[start:start + HEARD_RATE // 2],
                                                HEARD_RATE),
            "held_after": job.io.on_hold,  # type: ignore[union-attr]
            "rooms_at_end": rooms_at_end,
            "human_call_ended": record.end is not None,
            "job_shutdown": job.shutdown_requested,
        }
        return out


async def _through_the_tool(transfer: WarmTransfer, job: fk.JobContext) -> None:
    """Run ``transfer`` as the caller's model would; raise the tool's error result."""
    call = ToolCall(turn_id=3, call_id="c1", name="transfer_to_human",
                    arguments=json.dumps({"summary": SUMMARY}))
    context = RunContext(call=call, userdata=None, job=job)
    outcome = await invoke_tool([warm_transfer_tool(transfer)], call, context, timeout=2.0)
    if outcome.result.is_error:
        raise ToolError(outcome.result.output)


def test_a_busy_line_or_a_declining_human_agent_gives_the_caller_back(
    run_scenario: Any,
) -> None:
    result = run_scenario(__file__, "scenario_fails", timeout=150)
    busy, declined = result["busy"], result["declined"]
    assert busy["code"] == WarmTransferFailure.DIAL_FAILED
    assert busy["sip_status_code"] == 486 and "486" in busy["message"]
    # Declined, as the caller's model reads it through the tool (which ran past its timeout).
    assert declined["tool_error"] == (
        "the transfer did not happen: the human agent declined the call: in a meeting. The "
        "caller is back with you: tell them, and offer to try again later or to help "
        "otherwise.")
    for outcome in (busy, declined):
        assert outcome["held_after"] is False  # the agent hears the caller again
        assert outcome["rooms"] == [ROOM]  # the consultation room is gone
    # The declining human agent's call ended with the consultation room.
    assert declined["human_call_ended"] is True
    assert result["caller_still_on"] is True


async def scenario_fails() -> dict[str, Any]:
    requests: list[Sequence[ChatMessage]] = []
    async with _desk() as (server, lkapi, human_phone, _, caller, job):
        server.sip.add_phone(BUSY, busy=True)
        out: dict[str, Any] = {}

        async def attempt(number: str, *, speak: bool) -> dict[str, Any]:
            transfer = WarmTransfer(number, sip_trunk_id="ST_out", consultation=consultation_graph(
                ["hello", "no I am in a meeting"], requests))
            if speak:  # through the tool, whose 2 s timeout must not cut the transfer short
                running = asyncio.ensure_future(_through_the_tool(transfer, job))
            else:
                running = asyncio.ensure_future(transfer.run(job, SUMMARY))
            if speak:
                await _brief_then_answer(server, human_phone)
            try:
                await asyncio.wait_for(running, 30)
            except WarmTransferError as exc:
                failed = {"code": exc.code, "message": str(exc), "reason": exc.reason,
                          "sip_status_code": exc.sip_status_code}
            except ToolError as exc:  # through the tool: what the caller's model reads
                failed = {"tool_error": str(exc)}
            else:
                failed = {"code": "connected"}
            failed["held_after"] = job.io.on_hold  # type: ignore[union-attr]
            failed["rooms"] = await _rooms(lkapi)
            return failed

        out["busy"] = await attempt(BUSY, speak=False)
        out["declined"] = await attempt(HUMAN, speak=True)
        record = human_phone.calls[-1]
        await until(lambda: record.end is not None, timeout=10)
        out["declined"]["human_call_ended"] = record.end is not None
        out["caller_still_on"] = caller.ended is None
        return out


class _QuotaGone(fk.Node):
    """Fails ``after`` seconds into the consultation, ending its graph (as a provider whose
    account ran dry would, with a node that ends the graph on failure)."""

    error_policy = ErrorPolicy.END_GRAPH
    out: Out[str] = Out(doc="nothing: it only fails")

    def __init__(self, after: float) -> None:
        super().__init__()
        self.after = after

    async def run(self) -> None:
        await asyncio.sleep(self.after)
        raise RuntimeError("the consultation model's quota ran out")


def test_a_consultation_graph_that_fails_gives_the_caller_back(run_scenario: Any) -> None:
    result = run_scenario(__file__, "scenario_consultation_fails", timeout=150)
    broken, ended = result["broken"], result["ended"]
    for outcome in (broken, ended):
        assert outcome["code"] == WarmTransferFailure.CONSULTATION_FAILED
        assert outcome["held_after"] is False  # the agent hears the caller again
        assert outcome["rooms"] == [ROOM]  # the consultation room is gone
    # A graph that cannot be built fails before anyone is called.
    assert broken["message"] == (
        "the consultation graph could not start: ValueError: no voice named 'nova'")
    assert broken["human_calls"] == 0
    # One that fails once the human agent answered ends their call with the room.
    assert ended["message"].startswith("the consultation graph ended: GraphFailed: ")
    assert "the consultation model's quota ran out" in ended["message"]
    assert ended["human_calls"] == 1 and ended["human_call_ended"] is True
    assert result["caller_still_on"] is True


async def scenario_consultation_fails() -> dict[str, Any]:
    requests: list[Sequence[ChatMessage]] = []
    async with _desk() as (_, lkapi, human_phone, _, caller, job):
        briefing = consultation_graph(["hello"], requests)

        def broken(consultation: Consultation) -> fk.Graph:
            raise ValueError("no voice named 'nova'")

        def ends(consultation: Consultation) -> fk.Graph:
            g = briefing(consultation)
            g.add(_QuotaGone(after=2.0), name="quota")
            return g

        async def attempt(build: Any) -> dict[str, Any]:
            transfer = WarmTransfer(HUMAN, sip_trunk_id="ST_out", consultation=build)
            try:
                await asyncio.wait_for(transfer.run(job, SUMMARY), 30)
            except WarmTransferError as exc:
                failed: dict[str, Any] = {"code": exc.code, "message": str(exc)}
            else:
                failed = {"code": "connected"}
            failed["held_after"] = job.io.on_hold  # type: ignore[union-attr]
            failed["rooms"] = await _rooms(lkapi)
            failed["human_calls"] = len(human_phone.calls)
            return failed

        out: dict[str, Any] = {"broken": await attempt(broken)}
        out["ended"] = await attempt(ends)
        out["ended"]["human_calls"] -= out["broken"]["human_calls"]
        if human_phone.calls:
            record = human_phone.calls[-1]
            await until(lambda: record.end is not None, timeout=10)
            out["ended"]["human_call_ended"] = record.end is not None
        out["caller_still_on"] = caller.ended is None
        return out


def test_a_move_the_server_refuses_leaves_the_consultation_going(run_scenario: Any) -> None:
    result = run_scenario(__file__, "scenario_move_refused", timeout=150)
    # The consultation model read why (the server's reason) and went on with the human
    # agent, who then declined.
    assert result["connect_error"].startswith(
        "could not connect the human agent to the caller: a participant with the same "
        f"identity is already in the destination room: {HUMAN_ID!r} is in room {ROOM!r}")
    assert result["said_after"] == "Sorry, I could not connect you."
    assert result["code"] == WarmTransferFailure.DECLINED
    assert result["held_after"] is False
    assert result["rooms"] == [ROOM]
    assert result["human_call_ended"] is True
    # Nobody was moved: the caller's room holds the agent, the caller's phone and the one
    # who held the identity, not the human agent's phone.
    assert sorted(result["desk"].values()) == ["AGENT", "SIP", "STANDARD"]
    assert result["desk"][HUMAN_ID] == "STANDARD"
    assert result["caller_still_on"] is True


async def scenario_move_refused() -> dict[str, Any]:
    requests: list[Sequence[ChatMessage]] = []
    async with _desk() as (server, lkapi, human_phone, _, caller, job):
        # Someone in the caller's room already has the human agent's identity: LiveKit
        # refuses to move a participant onto it.
        squatter = rtc.Room()
        await squatter.connect(server.url, server.token(HUMAN_ID, ROOM))
        transfer = WarmTransfer(HUMAN, sip_trunk_id="ST_out", consultation=consultation_graph(
            ["hello", "put them through", "then no I have to go"], requests))
        running = asyncio.ensure_future(transfer.run(job, SUMMARY))
        await _brief_then_answer(server, human_phone)
        await until(lambda: any(m.role == "tool" for m in requests[-1]), timeout=30)
        await asyncio.sleep(2.0)  # the apology
        human = await _answered(server, human_phone)
        human.say(_tone(0.6), 16_000)
        out: dict[str, Any] = {}
        try:
            await asyncio.wait_for(running, 30)
        except WarmTransferError as exc:
            out["code"] = exc.code
        else:
            out["code"] = "connected"
        [error] = [m.content for m in requests[-1] if m.role == "tool"][:1]
        out["connect_error"] = error
        out["said_after"] = next(
            m.content for m in requests[-1] if m.role == "assistant" and m.content
            and m.content.startswith("Sorry"))
        out["held_after"] = job.io.on_hold  # type: ignore[union-attr]
        out["rooms"] = await _rooms(lkapi)
        record = human_phone.calls[-1]
        await until(lambda: record.end is not None, timeout=10)
        out["human_call_ended"] = record.end is not None
        out["desk"] = {identity: api.ParticipantInfo.Kind.Name(info.kind)
                       for identity, info in (await _participants(lkapi, ROOM)).items()}
        out["caller_still_on"] = caller.ended is None
        await squatter.disconnect()
        return out


def test_a_human_agent_who_hangs_up_during_the_move_ends_the_transfer(
    run_scenario: Any,
) -> None:
    result = run_scenario(__file__, "scenario_hang_up_during_move", timeout=150)
    # The move failed because they were gone: the transfer ends at once, as when they hang
    # up at any other moment, instead of waiting on a consultation with nobody in it.
    assert result["move_error"] == "not_found"
    assert result["code"] == WarmTransferFailure.DESTINATION_LEFT
    assert result["message"] == "the human agent hung up before taking the call"
    assert result["seconds_after_move"] < 5
    assert result["held_after"] is False
    assert result["rooms"] == [ROOM]
    assert result["caller_still_on"] is True


async def scenario_hang_up_during_move() -> dict[str, Any]:
    import flowkit.livekit.warm_transfer as warm_transfer

    requests: list[Sequence[ChatMessage]] = []
    loop = asyncio.get_running_loop()
    out: dict[str, Any] = {}
    async with _desk() as (server, lkapi, human_phone, _, caller, job):
        real_move = warm_transfer.move_participant

        async def hang_up_first(lk: Any, identity: str, *, from_room: str) -> None:
            # The human agent hangs up just as the move is asked for, and the agent sees
            # them leave while it waits for the server's answer.
            moving = server.sip.call(from_room, identity)
            assert moving is not None
            moving.hang_up()
            await asyncio.sleep(1.0)
            out["moved_at"] = loop.time()
            try:
                await real_move(lk, identity, from_room=from_room)
            except api.TwirpError as exc:
                out["move_error"] = exc.code
                raise

        warm_transfer.move_participant = hang_up_first  # type: ignore[assignment]
        try:
            transfer = WarmTransfer(HUMAN, sip_trunk_id="ST_out", consultation=consultation_graph(
                ["hello", "put them through"], requests))
            running = asyncio.ensure_future(transfer.run(job, SUMMARY))
            await _brief_then_answer(server, human_phone)
            try:
                await asyncio.wait_for(running, 30)
            except WarmTransferError as exc:
                out.update(code=exc.code, message=str(exc))
            else:
                out["code"] = "connected"
            out["seconds_after_move"] = loop.time() - out.pop("moved_at")
        finally:
            warm_transfer.move_participant = real_move
        out["held_after"] = job.io.on_hold  # type: ignore[union-attr]
        out["rooms"] = await _rooms(lkapi)
        out["caller_still_on"] = caller.ended is None
        return out
