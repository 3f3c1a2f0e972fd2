"""AnsweringMachineDetector: a verdict from the greeting's timing and an LLM; turns held."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import pytest
from support import Script, TimedCollect

import flowkit as fk
from flowkit.messages import (
    AMDCategory,
    AMDVerdict,
    ParticipantUpdate,
    ReplyRequest,
    Transcript,
    UserTurn,
    VADEvent,
    VADEventKind,
)
from flowkit.nodes.amd import DEFAULT_VOICEMAIL_INSTRUCTIONS, AnsweringMachineDetector
from flowkit.nodes.amd_classifier import DEFAULT_AMD_PROMPT
from flowkit.problems import NodeParamsError
from flowkit.providers.errors import ProviderError
from flowkit.providers.llm import ToolCallChunk
from flowkit.testing import FakeLLM, FakeReply

VOICEMAIL = "Hi, you've reached Dana. I can't come to the phone, leave a message after the tone."


def started(at: float) -> tuple[float, VADEvent]:
    return at, VADEvent(kind=VADEventKind.START_OF_SPEECH)


def ended(at: float, silence: float = 0.3) -> tuple[float, VADEvent]:
    """An end of speech decided at ``at``, after ``silence`` s: the speech ended before."""
    return at, VADEvent(kind=VADEventKind.END_OF_SPEECH, silence_duration=silence)


def said(at: float, text: str, final: bool = True) -> tuple[float, Transcript]:
    return at, Transcript(text=text, final=final)


def turn(at: float, text: str) -> tuple[float, UserTurn]:
    return at, UserTurn(text=text)


def records(category: str, ttft: float = 0.2) -> FakeReply:
    arguments = json.dumps({"category": category})
    return FakeReply(tool_calls=(ToolCallChunk("c1", "record_category", arguments),), ttft=ttft)


def waits(seconds: float) -> FakeReply:
    arguments = json.dumps({"seconds": seconds})
    return FakeReply(tool_calls=(ToolCallChunk("w1", "wait_for_more", arguments),), ttft=0.2)


@dataclass
class Call:
    verdicts: list[tuple[float, AMDVerdict]] = field(default_factory=list)
    released: list[tuple[float, UserTurn]] = field(default_factory=list)
    requests: list[tuple[float, ReplyRequest]] = field(default_factory=list)


async def run_call(
    detector: AnsweringMachineDetector,
    vad: list[tuple[float, Any]],
    transcripts: list[tuple[float, Any]],
    turns: list[tuple[float, Any]],
    end_at: float = 40.0,
    participant: list[tuple[float, Any]] | None = None,
    participant_end_at: float | None = None,
) -> Call:
    g = fk.Graph("amd")
    node = g.add(detector, name="amd")
    g.add(Script(*vad, end_at=end_at), name="vad") >> node.vad
    g.add(Script(*transcripts, end_at=end_at), name="stt") >> node.transcripts
    g.add(Script(*turns, end_at=end_at), name="turns") >> node.turns
    if participant is not None:
        callee = Script(*participant, end_at=participant_end_at or end_at)
        g.add(callee, name="callee") >> node.participant
    outputs = [TimedCollect() for _ in range(3)]
    node.verdicts >> g.add(outputs[0], name="verdicts")
    node.released >> g.add(outputs[1], name="released")
    node.requests >> g.add(outputs[2], name="requests")
    await fk.GraphRunner(g).run()
    return Call(outputs[0].items, outputs[1].items, outputs[2].items)


def at(t: float) -> Any:
    return pytest.approx(t, abs=1e-3)


@pytest.mark.looptime
async def test_a_short_hello_then_silence_is_a_person_without_asking_the_llm() -> None:
    llm = FakeLLM([])
    call = await run_call(
        AnsweringMachineDetector(llm),
        [started(1.0), ended(1.9)],  # 0.6 s of speech, ended at 1.6
        [],
        [turn(2.0, "Hello?")],
    )
    [(when, verdict)] = call.verdicts
    assert when == at(2.1)  # 0.5 s of silence after the speech ended
    assert (verdict.category, verdict.reason) == (AMDCategory.HUMAN, "short_greeting")
    assert verdict.speech_duration == pytest.approx(0.6)
    assert verdict.is_human and not verdict.is_machine
    # The turn held meanwhile goes to the agent with the verdict; the LLM was never asked.
    assert [(t, r.text) for t, r in call.released] == [(at(2.1), "Hello?")]
    assert llm.requests == [] and call.requests == []


@pytest.mark.looptime
async def test_a_voicemail_is_heard_out_its_turns_dropped_and_a_message_asked_for() -> None:
    llm = FakeLLM([records("machine-vm")])
    call = await run_call(
        AnsweringMachineDetector(llm),
        [started(1.0), ended(5.3)],  # 4 s of speech, ended at 5.0
        [said(5.2, VOICEMAIL)],
        [turn(5.8, VOICEMAIL), turn(12.0, "beep")],
    )
    [(when, verdict)] = call.verdicts
    # The model answers at 5.4; the verdict waits for 1.5 s of silence after 5.0.
    assert when == at(6.5)
    assert (verdict.category, verdict.reason) == (AMDCategory.MACHINE_VM, "llm")
    assert verdict.transcript == VOICEMAIL and verdict.is_machine
    assert verdict.delay == pytest.approx(1.5) and verdict.speech_duration == pytest.approx(4.0)
    assert call.released == []  # neither the greeting's turn nor a later one is answered
    [(asked_at, request)] = call.requests
    assert asked_at == at(6.5)
    assert request.instructions == DEFAULT_VOICEMAIL_INSTRUCTIONS
    assert request.allow_interruptions is False
    # One request: the prompt, the greeting, and a tool call required of two tools.
    [asked] = llm.requests
    assert [(m.role, m.content) for m in asked.history] == [
        ("system", DEFAULT_AMD_PROMPT), ("user", VOICEMAIL)
    ]
    assert asked.tool_choice == "required"
    assert [tool.name for tool in asked.tools] == ["record_category", "wait_for_more"]


@pytest.mark.looptime
async def test_a_machine_verdict_waits_for_the_end_of_the_turn_too() -> None:
    # No committed turn: the turn ends max_endpointing_delay after the speech did
    # (5.0 + 3.0), later than the silence (6.5).
    call = await run_call(
        AnsweringMachineDetector(FakeLLM([records("machine-unavailable")])),
        [started(1.0), ended(5.3)],
        [said(5.2, "The mailbox is full. Goodbye.")],
        [],
    )
    assert [(t, v.category) for t, v in call.verdicts] == [
        (at(8.0), AMDCategory.MACHINE_UNAVAILABLE)
    ]
    assert call.requests == []  # a mailbox that takes no message: nothing to say


@pytest.mark.looptime
async def test_a_cut_off_menu_is_waited_for_then_classified_whole() -> None:
    llm = FakeLLM([waits(30), records("machine-ivr")])
    call = await run_call(
        AnsweringMachineDetector(llm, max_wait=4.0),
        [started(1.0), ended(4.3), started(7.0), ended(9.3)],
        [said(4.2, "Thank you for calling the bank. Our hours are"),
         said(9.2, "nine to five. For balances press 1.")],
        [turn(9.8, "For balances press 1.")],
    )
    first, second = llm.requests
    assert first.history[-1].content == "Thank you for calling the bank. Our hours are"
    # The whole greeting the second time, and no more waits offered once used up.
    assert second.history[-1].content == (
        "Thank you for calling the bank. Our hours are nine to five. For balances press 1."
    )
    [(when, verdict)] = call.verdicts
    assert verdict.category is AMDCategory.MACHINE_IVR
    assert when == at(10.5)  # 1.5 s after the second utterance ended at 9.0
    # A menu is answered: the held turn goes on.
    assert [(t, r.text) for t, r in call.released] == [(at(10.5), "For balances press 1.")]


@pytest.mark.looptime
async def test_the_wait_asked_for_is_capped_and_decides_when_it_runs_out() -> None:
    llm = FakeLLM([waits(30), records("machine-vm")])
    call = await run_call(
        AnsweringMachineDetector(llm, max_wait=4.0, max_waits=1),
        [started(1.0), ended(4.3)],
        [said(4.2, "Hi, this is Dana's phone")],
        [turn(4.8, "Hi, this is Dana's phone")],
    )
    # Asked at 4.2, it waits 4 s (not 30) from its answer at 4.4, then asks again with no
    # wait offered (max_waits=1) and records voicemail at 8.6.
    assert [tool.name for tool in llm.requests[1].tools] == ["record_category"]
    assert [(t, v.category) for t, v in call.verdicts] == [(at(8.6), AMDCategory.MACHINE_VM)]


@pytest.mark.looptime
async def test_a_newer_transcript_replaces_the_question_in_flight() -> None:
    # The first answer (voicemail, due at 4.2) is cancelled by the words at 4.1; the
    # verdict is the second one's, on the whole transcript.
    llm = FakeLLM([records("machine-vm"), records("machine-ivr")])
    call = await run_call(
        AnsweringMachineDetector(llm),
        [started(1.0), ended(5.3)],
        [said(4.0, "Thank you for calling."), said(4.1, "For sales press 1.")],
        [turn(5.8, "For sales press 1.")],
    )
    assert [r.history[-1].content for r in llm.requests] == [
        "Thank you for calling.", "Thank you for calling. For sales press 1."
    ]
    [(_, verdict)] = call.verdicts
    assert (verdict.category, verdict.transcript) == (
        AMDCategory.MACHINE_IVR, "Thank you for calling. For sales press 1."
    )


@pytest.mark.looptime
async def test_words_after_a_short_hello_go_to_the_llm_and_a_person_needs_only_silence() -> None:
    llm = FakeLLM([records("human", ttft=0.1)])
    call = await run_call(
        AnsweringMachineDetector(llm),
        [started(1.0), ended(2.3)],  # 1 s of speech, ended at 2.0
        [said(2.35, "Yes, Sam speaking.")],  # before the 0.5 s silence made it a hello
        [],
    )
    [(when, verdict)] = call.verdicts
    # Decided by the model at 2.45, released at the machine silence (2.0 + 1.5): a person
    # does not wait for the end of the turn (5.35).
    assert (verdict.category, verdict.reason) == (AMDCategory.HUMAN, "llm")
    assert when == at(3.5)


@pytest.mark.looptime
async def test_no_speech_is_uncertain_after_the_no_speech_threshold() -> None:
    call = await run_call(AnsweringMachineDetector(FakeLLM([])), [], [], [], end_at=30)
    assert [(t, v.category, v.reason) for t, v in call.verdicts] == [
        (at(10.0), AMDCategory.UNCERTAIN, "no_speech_timeout")
    ]


@pytest.mark.looptime
async def test_a_failing_llm_leaves_it_to_the_timeout_and_the_call_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    llm = FakeLLM([FakeReply(error=ProviderError("503 from upstream", provider="fake-llm"))])
    with caplog.at_level(logging.WARNING, logger="flowkit.nodes.amd"):
        call = await run_call(
            AnsweringMachineDetector(llm),
            [started(1.0), ended(5.3)],
            [said(5.2, VOICEMAIL)],
            [turn(5.8, VOICEMAIL)],
        )
    assert "classifying" in caplog.text and "503 from upstream" in caplog.text
    assert [(t, v.category, v.reason) for t, v in call.verdicts] == [
        (at(20.0), AMDCategory.UNCERTAIN, "detection_timeout")
    ]
    # Uncertain: the agent answers the turn it held.
    assert [r.text for _, r in call.released] == [VOICEMAIL]


@pytest.mark.looptime
async def test_with_wait_until_finished_the_timeout_hears_a_long_greeting_out() -> None:
    # Speech from 5 s to 24 s: the 20 s timeout decides "uncertain" but releases it only
    # when the turn ends (3 s after the speech), unless wait_until_finished is off.
    vad = [started(5.0), ended(24.3)]
    patient = await run_call(AnsweringMachineDetector(FakeLLM([])), vad, [], [])
    assert [t for t, _ in patient.verdicts] == [at(27.0)]
    hasty = await run_call(
        AnsweringMachineDetector(FakeLLM([]), wait_until_finished=False), vad, [], []
    )
    assert [t for t, _ in hasty.verdicts] == [at(20.0)]


@pytest.mark.looptime
async def test_a_call_that_ends_before_a_verdict_gets_an_uncertain_one() -> None:
    call = await run_call(
        AnsweringMachineDetector(FakeLLM([])), [started(1.0)], [], [], end_at=3.0
    )
    assert [(t, v.category, v.reason) for t, v in call.verdicts] == [
        (at(3.0), AMDCategory.UNCERTAIN, "input_ended")
    ]


def test_bad_parameters_are_refused_by_name() -> None:
    with pytest.raises(TypeError, match="an LLM provider has name and chat"):
        AnsweringMachineDetector("gpt-4.1-mini")  # type: ignore[arg-type]
    with pytest.raises(NodeParamsError, match="timeout: Input should be greater"):
        AnsweringMachineDetector(FakeLLM([]), timeout=0.0)
    with pytest.raises(NodeParamsError, match="max_waits"):
        AnsweringMachineDetector(FakeLLM([]), max_waits=-1)


# --- waiting for the call to be answered (a ParticipantWatch on ``participant``) -------------


def call_status(at: float, status: str | None, present: bool = True) -> tuple[float, Any]:
    attributes = {} if status is None else {"sip.callStatus": status}
    return at, ParticipantUpdate(identity="callee", attributes=attributes, present=present)


RINGING = [call_status(0.0, "dialing"), call_status(1.0, "ringing")]


@pytest.mark.looptime
async def test_what_is_heard_before_the_answer_is_dropped_and_the_timers_start_at_it() -> None:
    llm = FakeLLM([])
    call = await run_call(
        AnsweringMachineDetector(llm),
        # A ringback tone taken for speech, then after the answer at 6.0 a short hello.
        [started(1.5), ended(4.3), started(7.0), ended(7.9)],
        [said(4.2, "beep beep beep")],
        [turn(4.5, "beep beep beep"), turn(8.0, "Hello?")],
        participant=[*RINGING, call_status(6.0, "active")],
    )
    [(when, verdict)] = call.verdicts
    assert when == at(8.1)
    assert (verdict.category, verdict.reason) == (AMDCategory.HUMAN, "short_greeting")
    assert verdict.speech_duration == pytest.approx(0.6)  # the hello only, not the ringback
    assert [(t, r.text) for t, r in call.released] == [(at(8.1), "Hello?")]
    assert llm.requests == []  # the ringback's "transcript" was never classified


@pytest.mark.looptime
async def test_speech_going_on_at_the_answer_counts_from_the_answer() -> None:
    # The VAD's segment starts in the ringback (5.0) and runs into the hello after the
    # answer (6.0); it ends at 6.7.
    call = await run_call(
        AnsweringMachineDetector(FakeLLM([])),
        [started(5.0), ended(7.0)],
        [],
        [],
        participant=[*RINGING, call_status(6.0, "active")],
    )
    [(when, verdict)] = call.verdicts
    assert when == at(7.2)
    assert (verdict.category, verdict.reason) == (AMDCategory.HUMAN, "short_greeting")
    assert verdict.speech_duration == pytest.approx(0.7)  # from the answer, not from 5.0


@pytest.mark.looptime
async def test_the_no_speech_timeout_counts_from_the_answer() -> None:
    call = await run_call(
        AnsweringMachineDetector(FakeLLM([])),
        [],
        [],
        [],
        participant=[*RINGING, call_status(6.0, "active")],
    )
    assert [(t, v.category, v.reason) for t, v in call.verdicts] == [
        (at(16.0), AMDCategory.UNCERTAIN, "no_speech_timeout")
    ]


@pytest.mark.looptime
async def test_automation_is_not_an_answer() -> None:
    call = await run_call(
        AnsweringMachineDetector(FakeLLM([])),
        [started(2.5), ended(3.3)],  # the keys sent in automation, heard as a short sound
        [],
        [],
        participant=[*RINGING, call_status(2.0, "automation"), call_status(4.0, "active")],
    )
    assert [(t, v.category, v.reason) for t, v in call.verdicts] == [
        (at(14.0), AMDCategory.UNCERTAIN, "no_speech_timeout")
    ]


@pytest.mark.looptime
async def test_a_call_that_ends_before_the_answer_is_uncertain_at_once() -> None:
    call = await run_call(
        AnsweringMachineDetector(FakeLLM([])),
        [started(1.5), ended(4.3)],
        [],
        [],
        participant=[*RINGING, call_status(7.0, "hangup")],
    )
    assert [(t, v.category, v.reason) for t, v in call.verdicts] == [
        (at(7.0), AMDCategory.UNCERTAIN, "participant_missing")
    ]


@pytest.mark.looptime
async def test_a_callee_who_leaves_before_the_verdict_ends_detection() -> None:
    call = await run_call(
        AnsweringMachineDetector(FakeLLM([])),
        [started(3.0)],  # still speaking when they go
        [],
        [],
        participant=[*RINGING, call_status(2.0, "active"), call_status(5.0, "active", False)],
    )
    assert [(t, v.category, v.reason) for t, v in call.verdicts] == [
        (at(5.0), AMDCategory.UNCERTAIN, "participant_missing")
    ]


@pytest.mark.looptime
async def test_a_hang_up_releases_a_verdict_the_llm_had_already_decided() -> None:
    llm = FakeLLM([records("machine-vm")])
    call = await run_call(
        AnsweringMachineDetector(llm, voicemail_instructions=None),
        [started(1.0), ended(5.3)],  # 4 s of speech, ended at 5.0
        [said(5.2, VOICEMAIL)],
        [],
        participant=[call_status(0.0, "active"), call_status(5.8, "hangup")],
    )
    # The model answered at 5.4; the verdict would wait for 1.5 s of silence (6.5), but
    # the call is over at 5.8: nothing more can be heard, so it goes out then.
    [(when, verdict)] = call.verdicts
    assert when == at(5.8)
    assert (verdict.category, verdict.reason) == (AMDCategory.MACHINE_VM, "llm")


@pytest.mark.looptime
async def test_a_participant_not_on_a_phone_line_is_heard_from_the_first_update() -> None:
    call = await run_call(
        AnsweringMachineDetector(FakeLLM([])),
        [started(1.0), ended(1.9)],
        [],
        [],
        participant=[call_status(0.5, None)],
    )
    assert [(t, v.category) for t, v in call.verdicts] == [(at(2.1), AMDCategory.HUMAN)]


@pytest.mark.looptime
async def test_a_room_closed_while_the_call_rings_is_uncertain() -> None:
    # The participant updates end (the room closed) at 3.0, before any answer.
    call = await run_call(
        AnsweringMachineDetector(FakeLLM([])),
        [started(1.5), ended(2.4)],
        [],
        [],
        participant=RINGING,
        participant_end_at=3.0,
    )
    assert [(t, v.category, v.reason) for t, v in call.verdicts] == [
        (at(3.0), AMDCategory.UNCERTAIN, "participant_missing")
    ]
