"""ParticipantWatch on MemoryIO: one participant's updates, repeats skipped; the AMD gated on
the answer in a whole graph; an I/O without participants."""

from __future__ import annotations

import asyncio

import pytest
from support import Script, TimedCollect

import flowkit as fk
from flowkit.catalog import discover
from flowkit.messages import (
    SIP_CALL_STATUS,
    AMDCategory,
    ParticipantUpdate,
    VADEvent,
    VADEventKind,
)
from flowkit.nodes.amd import AnsweringMachineDetector
from flowkit.nodes.participant import ParticipantWatch
from flowkit.room_io import ParticipantUpdates
from flowkit.testing import FakeLLM
from flowkit.testing.memory_io import MemoryIO


def update(identity: str, status: str | None, present: bool = True) -> ParticipantUpdate:
    attributes = {} if status is None else {SIP_CALL_STATUS: status}
    return ParticipantUpdate(identity=identity, attributes=attributes, present=present)


async def watch(io: object, node: ParticipantWatch) -> list[tuple[float, ParticipantUpdate]]:
    g = fk.Graph("watch")
    out = TimedCollect()
    g.add(node, name="watch") >> g.add(out, name="out")
    await asyncio.wait_for(fk.GraphRunner(g, job=fk.JobContext(io=io)).run(), 60)
    return out.items


def test_the_update_says_whether_the_call_is_answered() -> None:
    assert update("c", "active").answered
    assert update("c", None).answered  # not a phone call: nothing to wait for
    assert update("c", "active").call_status == "active"
    assert update("c", None).call_status is None
    for status in ("dialing", "ringing", "automation", "hangup"):
        assert not update("c", status).answered, status
    assert not update("c", "active", present=False).answered


async def test_one_participants_updates_in_order_without_repeats() -> None:
    io = MemoryIO(
        participants=[
            update("callee", "dialing"),
            update("someone-else", "active"),
            update("callee", "dialing"),  # the same again (another attribute of theirs)
            update("callee", "ringing"),
            update("callee", "active"),
            update("callee", "active", present=False),
        ]
    )
    items = await watch(io, ParticipantWatch(participant="callee"))
    assert [(u.identity, u.call_status, u.present) for _, u in items] == [
        ("callee", "dialing", True),
        ("callee", "ringing", True),
        ("callee", "active", True),
        ("callee", "active", False),
    ]


async def test_the_default_participant_is_the_one_with_audio() -> None:
    io = MemoryIO({"caller": []}, participants=[update("other", None), update("caller", "active")])
    items = await watch(io, ParticipantWatch())
    # Present from the start (a participant with audio), then their call is answered.
    assert [(u.identity, u.call_status) for _, u in items] == [
        ("caller", None),
        ("caller", "active"),
    ]


@pytest.mark.looptime
async def test_updates_pushed_while_the_graph_runs_arrive_as_pushed() -> None:
    io = MemoryIO(live=True)
    io.push_participant("callee", {SIP_CALL_STATUS: "ringing"})

    async def call() -> None:
        await asyncio.sleep(2.0)
        io.push_participant("callee", {SIP_CALL_STATUS: "active", "sip.phoneNumber": "+15550100"})
        await asyncio.sleep(1.0)
        io.push_participant("callee", present=False)
        io.end_participants()

    pushing = asyncio.create_task(call())
    items = await watch(io, ParticipantWatch(participant="callee"))
    await pushing
    assert [(round(t, 3), u.call_status, u.present) for t, u in items] == [
        (0.0, "ringing", True),
        (2.0, "active", True),
        (3.0, None, False),
    ]
    assert items[1][1].attributes["sip.phoneNumber"] == "+15550100"
    with pytest.raises(RuntimeError, match="push_participant"):
        io.push_participant("callee")


async def test_an_io_without_participants_sends_nothing() -> None:
    class NoParticipants:
        """A room I/O with audio only (no participant updates)."""

    assert not isinstance(NoParticipants(), ParticipantUpdates)
    assert isinstance(MemoryIO(), ParticipantUpdates)
    assert await watch(NoParticipants(), ParticipantWatch()) == []


@pytest.mark.looptime
async def test_in_a_graph_the_detector_listens_once_the_call_is_answered() -> None:
    io = MemoryIO(
        live=True, participants=[update("callee", "dialing"), update("callee", "ringing")]
    )
    g = fk.Graph("outbound")
    callee = g.add(ParticipantWatch(participant="callee"), name="callee")
    detector = g.add(AnsweringMachineDetector(FakeLLM([])), name="amd")
    callee >> detector.participant
    speech = [
        (1.0, VADEvent(kind=VADEventKind.START_OF_SPEECH)),  # ringback
        (3.0, VADEvent(kind=VADEventKind.END_OF_SPEECH, silence_duration=0.3)),
        (5.0, VADEvent(kind=VADEventKind.START_OF_SPEECH)),  # "Hello?"
        (5.9, VADEvent(kind=VADEventKind.END_OF_SPEECH, silence_duration=0.3)),
    ]
    g.add(Script(*speech, end_at=20.0), name="vad") >> detector.vad
    g.add(Script(end_at=20.0), name="stt") >> detector.transcripts
    verdicts = TimedCollect()
    detector.verdicts >> g.add(verdicts, name="verdicts")

    async def answer() -> None:
        await asyncio.sleep(4.0)
        io.push_participant("callee", {SIP_CALL_STATUS: "active"})
        await asyncio.sleep(16.0)
        io.end_participants()

    answering = asyncio.create_task(answer())
    await asyncio.wait_for(fk.GraphRunner(g, job=fk.JobContext(io=io)).run(), 60)
    await answering
    [(when, verdict)] = verdicts.items
    assert when == pytest.approx(6.1, abs=1e-3)
    assert verdict.category is AMDCategory.HUMAN
    assert verdict.speech_duration == pytest.approx(0.6)  # the hello, not the ringback


def test_the_catalog_lists_the_node() -> None:
    names = {entry.cls.__name__ for entry in discover().nodes}
    assert "ParticipantWatch" in names
