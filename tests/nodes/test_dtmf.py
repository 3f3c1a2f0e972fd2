"""DTMFInput on MemoryIO: every press on ``digits``, entries committed as turns by the
terminator, the inter-digit timeout, max_digits and the end of input; parameters checked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from support import TimedCollect

import flowkit as fk
from flowkit.catalog import discover
from flowkit.messages import DTMFDigit, Interrupt, InterruptAction, UserTurn, dtmf_code
from flowkit.nodes.dtmf import DTMFInput
from flowkit.nodes.llm import LLM
from flowkit.room_io import DTMFInputSource, DTMFOutput
from flowkit.testing import FakeLLM
from flowkit.testing.memory_io import MemoryIO

Script = Callable[[MemoryIO], Awaitable[None]]


class Run:
    """A DTMFInput graph on a MemoryIO, with each output recorded with its time."""

    def __init__(self, node: DTMFInput, io: Any) -> None:
        self.io = io
        self.graph = g = fk.Graph("dtmf")
        keypad = g.add(node)
        self.turns, self.digits, self.interrupts = TimedCollect(), TimedCollect(), TimedCollect()
        keypad.turns >> g.add(self.turns)
        keypad.digits >> g.add(self.digits)
        keypad.interrupts >> g.add(self.interrupts)

    async def run(self, script: Script | None = None) -> Run:
        runner = fk.GraphRunner(self.graph, job=fk.JobContext(io=self.io))
        running = asyncio.create_task(runner.run())
        if script is not None:
            await script(self.io)
        await asyncio.wait_for(running, 60)
        return self

    @property
    def turn_texts(self) -> list[tuple[float, str, str]]:
        return [(t, turn.text, turn.speaker) for t, turn in self.turns.items]


def presses(*steps: tuple[float, str, str | None], end_at: float) -> Script:
    """A user who presses ``(at, digit, participant)`` keys, then the keypad ends at ``end_at``."""

    async def script(io: MemoryIO) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for at, digit, who in steps:
            await asyncio.sleep(max(0.0, start + at - loop.time()))
            io.push_dtmf(digit, who)
        await asyncio.sleep(max(0.0, start + end_at - loop.time()))
        io.end_dtmf()

    return script


def alice(at: float, digit: str) -> tuple[float, str, str | None]:
    return (at, digit, "alice")


def user(at: float, digit: str) -> tuple[float, str, str | None]:
    return (at, digit, None)


# ------------------------------------------------------------------------ digits and turns


@pytest.mark.looptime
async def test_every_press_goes_out_and_the_terminator_commits_the_entry_at_once() -> None:
    run = await Run(DTMFInput(), MemoryIO(live=True)).run(
        presses(user(0.0, "1"), user(0.5, "2"), user(1.0, "3"), user(1.5, "#"), end_at=30)
    )
    assert [(t, d.digit, d.code, d.participant) for t, d in run.digits.items] == [
        (0.0, "1", 1, "user"),
        (0.5, "2", 2, "user"),
        (1.0, "3", 3, "user"),
        (1.5, "#", 11, "user"),
    ]
    # committed by '#' (at 1.5 s), not by the timeout (6.5 s) nor the end (30 s)
    assert run.turn_texts == [(1.5, "<dtmf>1 2 3</dtmf>", "user")]
    (_, turn) = run.turns.items[0]
    assert isinstance(turn, UserTurn) and turn.turn_id > 0


@pytest.mark.looptime
async def test_an_entry_is_committed_after_the_inter_digit_timeout() -> None:
    run = await Run(DTMFInput(timeout=2.0), MemoryIO(live=True)).run(
        presses(user(0.0, "4"), user(1.5, "2"), user(10.0, "7"), end_at=30)
    )
    # each press restarts the timer: 1.5 + 2 s, not 0 + 2 s
    assert run.turn_texts == [(3.5, "<dtmf>4 2</dtmf>", "user"), (12.0, "<dtmf>7</dtmf>", "user")]
    first, second = (turn.turn_id for _, turn in run.turns.items)
    assert 0 < first < second


@pytest.mark.looptime
async def test_the_default_timeout_is_five_seconds() -> None:
    run = await Run(DTMFInput(), MemoryIO(live=True)).run(presses(user(1.0, "9"), end_at=30))
    assert run.turn_texts == [(6.0, "<dtmf>9</dtmf>", "user")]


@pytest.mark.looptime
async def test_max_digits_commits_at_the_last_key_without_waiting() -> None:
    run = await Run(DTMFInput(max_digits=2, timeout=None), MemoryIO(live=True)).run(
        presses(user(0.0, "1"), user(0.5, "2"), user(1.0, "3"), end_at=20)
    )
    # "3" starts a new entry, which only the end of the input commits (no timeout)
    assert run.turn_texts == [(0.5, "<dtmf>1 2</dtmf>", "user"), (20.0, "<dtmf>3</dtmf>", "user")]


@pytest.mark.looptime
async def test_a_menu_choice_is_one_key() -> None:
    run = await Run(DTMFInput(max_digits=1), MemoryIO(live=True)).run(
        presses(user(0.0, "2"), end_at=10)
    )
    assert run.turn_texts == [(0.0, "<dtmf>2</dtmf>", "user")]


@pytest.mark.looptime
async def test_a_terminator_alone_commits_nothing_and_none_makes_it_a_key() -> None:
    alone = await Run(DTMFInput(), MemoryIO(live=True)).run(presses(user(0.0, "#"), end_at=10))
    assert alone.turn_texts == []
    assert [d.digit for _, d in alone.digits.items] == ["#"]

    plain = await Run(DTMFInput(terminator=None, timeout=1.0), MemoryIO(live=True)).run(
        presses(user(0.0, "1"), user(0.2, "#"), end_at=10)
    )
    assert plain.turn_texts == [(1.2, "<dtmf>1 #</dtmf>", "user")]


@pytest.mark.looptime
async def test_another_terminator_key() -> None:
    run = await Run(DTMFInput(terminator="*"), MemoryIO(live=True)).run(
        presses(user(0.0, "5"), user(0.1, "#"), user(0.2, "*"), end_at=10)
    )
    assert run.turn_texts == [(0.2, "<dtmf>5 #</dtmf>", "user")]


async def test_the_end_of_the_input_commits_the_open_entry() -> None:
    run = await Run(DTMFInput(timeout=None), MemoryIO(dtmf=["1", "2"])).run()
    assert [text for _, text, _ in run.turn_texts] == ["<dtmf>1 2</dtmf>"]
    assert run.turns.ended_at is not None


async def test_the_template_shapes_the_turn_text() -> None:
    run = await Run(DTMFInput(template="Keys pressed: {digits}."), MemoryIO(dtmf="12#")).run()
    assert [text for _, text, _ in run.turn_texts] == ["Keys pressed: 1 2."]


async def test_every_press_flushes_the_reply_being_spoken() -> None:
    run = await Run(DTMFInput(), MemoryIO(dtmf="3#")).run()
    assert [i for _, i in run.interrupts.items] == [
        Interrupt(turn_id=0, action=InterruptAction.FLUSH, reason="dtmf", force=False)
    ] * 2


async def test_an_entry_reaches_the_llm_as_a_user_message() -> None:
    g = fk.Graph("keypad-llm")
    llm = LLM(FakeLLM(["You chose sales."], ttft=0, token_gap=0), instructions="Menu.")
    keys = g.add(DTMFInput(max_digits=1))
    keys >> g.add(llm)  # the default ports: turns into turns
    llm >> g.add(TimedCollect())
    await asyncio.wait_for(fk.GraphRunner(g, job=fk.JobContext(io=MemoryIO(dtmf="1"))).run(), 10)
    assert [(m.role, m.content) for m in llm.history.messages] == [
        ("system", "Menu."),
        ("user", "<dtmf>1</dtmf>"),
        ("assistant", "You chose sales."),
    ]


# -------------------------------------------------------------------------- participants


@pytest.mark.looptime
async def test_each_participant_has_an_entry_of_their_own() -> None:
    run = await Run(DTMFInput(timeout=3.0), MemoryIO(live=True)).run(
        presses(alice(0.0, "1"), (0.5, "8", "bob"), alice(1.0, "2"), alice(1.5, "#"), end_at=20)
    )
    assert run.turn_texts == [
        (1.5, "<dtmf>1 2</dtmf>", "alice"),  # bob's key is not part of alice's entry
        (3.5, "<dtmf>8</dtmf>", "bob"),
    ]


async def test_a_participant_filter_hears_only_them() -> None:
    io = MemoryIO(dtmf=[*_as("alice", "1"), *_as("bob", "9#"), *_as("alice", "#")])
    run = await Run(DTMFInput(participant="alice"), io).run()
    assert [d.participant for _, d in run.digits.items] == ["alice", "alice"]
    assert [(text, who) for _, text, who in run.turn_texts] == [("<dtmf>1</dtmf>", "alice")]


def _as(who: str, keys: str) -> list[DTMFDigit]:
    return [DTMFDigit(digit=k, code=dtmf_code(k), participant=who) for k in keys]


# --------------------------------------------------------------------- I/O without a keypad


class _NoKeypadIO:
    """A room I/O with neither DTMF input nor output (as an I/O written before them)."""

    def audio_input(
        self, sample_rate: int, num_channels: int, participant: str | None = None
    ) -> Any:
        raise NotImplementedError

    def audio_output(self, sample_rate: int, num_channels: int) -> Any:
        raise NotImplementedError

    def publish_transcript(self, transcript: fk.Transcript) -> None:
        raise NotImplementedError


async def test_an_io_without_a_keypad_ends_the_node_at_once() -> None:
    io = _NoKeypadIO()
    assert not isinstance(io, DTMFInputSource)
    run = await Run(DTMFInput(), io).run()
    assert run.turns.items == run.digits.items == run.interrupts.items == []
    assert run.turns.ended_at is not None


# ------------------------------------------------------------------------------- MemoryIO


async def test_memory_io_has_a_keypad_both_ways() -> None:
    io = MemoryIO(dtmf=["1"], live=True)
    assert isinstance(io, DTMFInputSource) and isinstance(io, DTMFOutput)
    io.push_dtmf("A", "bob")
    io.push_dtmf(DTMFDigit(digit="x", code=99, participant=""))  # an odd packet, as it is
    io.end_dtmf()
    assert [(d.digit, d.code, d.participant) async for d in io.dtmf_input()] == [
        ("1", 1, "user"),
        ("A", 12, "bob"),
        ("x", 99, ""),
    ]
    assert [d.digit async for d in io.dtmf_input("bob")] == ["A"]
    with pytest.raises(RuntimeError, match="live=True and call end_dtmf"):
        io.push_dtmf("2")
    await io.publish_dtmf("#")
    assert io.dtmf_sent == [DTMFDigit(digit="#", code=11, participant="agent")]


async def test_memory_io_refuses_what_is_not_a_key() -> None:
    io = MemoryIO(live=True)
    with pytest.raises(ValueError, match="'11' is not a telephone keypad key"):
        io.push_dtmf("11")
    with pytest.raises(ValueError, match="'a' is not a telephone keypad key"):
        await io.publish_dtmf("a")
    with pytest.raises(ValueError, match="give one of '0123456789\\*#ABCD'"):
        MemoryIO(dtmf=["e"])


async def test_a_memory_keypad_without_live_ends_after_the_given_presses() -> None:
    presses_read: list[str] = []

    async def read(stream: AsyncIterator[DTMFDigit]) -> None:
        async for press in stream:
            presses_read.append(press.digit)

    await asyncio.wait_for(read(MemoryIO(dtmf="42").dtmf_input()), 1)
    assert presses_read == ["4", "2"]


def test_dtmf_codes_follow_rfc_4733() -> None:
    assert [dtmf_code(k) for k in "0123456789*#ABCD"] == list(range(16))


# ---------------------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"terminator": "x"}, "'x' is not a keypad key; give one of"),
        ({"terminator": "##"}, "'##' is not a keypad key"),
        ({"timeout": 0}, "timeout: Input should be greater than 0"),
        ({"max_digits": 0}, "max_digits: Input should be greater than or equal to 1"),
        (
            {"terminator": None, "timeout": None},
            "an entry never ends, so no turn would ever be committed; set at least one",
        ),
        ({"template": "pressed"}, "has no {digits} placeholder"),
        ({"template": "{digits} for {what}"}, "use {digits} as its only placeholder"),
        ({"template": "{digits"}, "cannot be filled"),
    ],
)
def test_bad_parameters_say_what_is_wrong(params: dict[str, Any], message: str) -> None:
    with pytest.raises(fk.NodeParamsError, match="DTMFInput: invalid parameters") as info:
        DTMFInput(**params)
    assert message in str(info.value)


def test_the_node_is_in_the_catalog_and_its_turns_are_the_default_output() -> None:
    assert DTMFInput in {e.cls for e in discover().nodes if e.library == "flowkit"}
    node = DTMFInput()
    assert node.default_output() is node.turns
    assert node.params.model_dump() == {
        "terminator": "#",
        "timeout": 5.0,
        "max_digits": None,
        "participant": None,
        "template": "<dtmf>{digits}</dtmf>",
    }
