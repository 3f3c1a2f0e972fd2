"""AgentStates: the agent's state through replies, interruptions and requests."""

from __future__ import annotations

import pytest
from support import Script, TimedCollect

import flowkit as fk
from flowkit.messages import AgentStateKind, Playout, PlayoutEvent, ReplyRequest, UserTurn
from flowkit.nodes.state import AgentStates

LISTENING, THINKING, SPEAKING = (
    AgentStateKind.LISTENING, AgentStateKind.THINKING, AgentStateKind.SPEAKING
)


def turn(at: float, turn_id: int) -> tuple[float, UserTurn]:
    return at, UserTurn(turn_id=turn_id, text="hi")


def played(at: float, event: PlayoutEvent, turn_id: int) -> tuple[float, Playout]:
    return at, Playout(turn_id=turn_id, event=event)


async def run_states(
    turns: Script, playouts: Script, requests: Script | None = None
) -> tuple[list[tuple[float, AgentStateKind]], list[int], float | None]:
    """Run the node; return (time, state) of each change, their turn ids, the end time."""
    g = fk.Graph("states")
    node = g.add(AgentStates())
    out = TimedCollect()
    g.add(turns) >> node.turns
    g.add(playouts) >> node.playout
    if requests is not None:
        g.add(requests) >> node.requests
    node.states >> g.add(out)
    await fk.GraphRunner(g).run()
    return (
        [(t, s.state) for t, s in out.items],
        [s.turn_id for _, s in out.items],
        out.ended_at,
    )


@pytest.mark.looptime
async def test_a_turn_with_its_reply() -> None:
    t1 = fk.new_turn_id()
    states, ids, _ = await run_states(
        Script(turn(1.0, t1), end_at=10),
        Script(played(2.0, PlayoutEvent.STARTED, t1), played(4.0, PlayoutEvent.FINISHED, t1),
               end_at=10),
    )
    assert states == [(0.0, LISTENING), (1.0, THINKING), (2.0, SPEAKING), (4.0, LISTENING)]
    assert ids == [0, t1, t1, t1]


@pytest.mark.looptime
async def test_an_interrupted_reply_then_the_next_turn() -> None:
    t1, t2 = fk.new_turn_id(), fk.new_turn_id()
    states, _, _ = await run_states(
        Script(turn(1.0, t1), turn(7.0, t2), end_at=10),
        Script(
            played(2.0, PlayoutEvent.STARTED, t1),
            played(3.0, PlayoutEvent.PAUSED, t1),  # a possible interruption
            played(5.0, PlayoutEvent.RESUMED, t1),  # it was a false one
            played(6.0, PlayoutEvent.PAUSED, t1),
            played(6.5, PlayoutEvent.INTERRUPTED, t1),  # no change: already listening
            played(8.0, PlayoutEvent.STARTED, t2),
            played(9.0, PlayoutEvent.FINISHED, t2),
            end_at=10,
        ),
    )
    assert states == [
        (0.0, LISTENING), (1.0, THINKING), (2.0, SPEAKING), (3.0, LISTENING),
        (5.0, SPEAKING), (6.0, LISTENING), (7.0, THINKING), (8.0, SPEAKING), (9.0, LISTENING),
    ]


@pytest.mark.looptime
async def test_a_newer_turn_keeps_thinking_while_the_old_reply_is_cut() -> None:
    t1, t2 = fk.new_turn_id(), fk.new_turn_id()
    states, _, _ = await run_states(
        Script(turn(1.0, t1), turn(3.0, t2), end_at=10),
        Script(
            played(2.0, PlayoutEvent.STARTED, t1),
            played(3.1, PlayoutEvent.INTERRUPTED, t1),  # the sink drops the older reply
            played(4.0, PlayoutEvent.STARTED, t2),
            played(5.0, PlayoutEvent.FINISHED, t2),
            end_at=10,
        ),
    )
    assert states == [
        (0.0, LISTENING), (1.0, THINKING), (2.0, SPEAKING), (3.0, THINKING),
        (4.0, SPEAKING), (5.0, LISTENING),
    ]


@pytest.mark.looptime
async def test_a_reply_that_ends_before_it_started_is_no_longer_awaited() -> None:
    # Flushed by code before any of it played: the sink ends it with nothing played.
    t1, t2, t3 = fk.new_turn_id(), fk.new_turn_id(), fk.new_turn_id()
    states, ids, _ = await run_states(
        Script(turn(1.0, t1), turn(3.0, t2), turn(3.5, t3), end_at=10),
        Script(
            played(2.0, PlayoutEvent.INTERRUPTED, t1),
            played(4.0, PlayoutEvent.INTERRUPTED, t2),  # t3's reply is still coming
            played(5.0, PlayoutEvent.FINISHED, t3),  # a reply with no audio at all
            end_at=10,
        ),
    )
    assert states == [
        (0.0, LISTENING), (1.0, THINKING), (2.0, LISTENING), (3.0, THINKING), (5.0, LISTENING)
    ]
    assert ids == [0, t1, t1, t2, t3]


@pytest.mark.looptime
async def test_a_reply_requested_from_code() -> None:
    reply = fk.new_turn_id() + 1  # the id the LLM will draw for the reply
    states, _, _ = await run_states(
        Script(end_at=10),
        Script(played(2.0, PlayoutEvent.STARTED, reply),
               played(3.0, PlayoutEvent.FINISHED, reply), end_at=10),
        Script((0.5, ReplyRequest(say="Hello!")), end_at=10),
    )
    assert states == [(0.0, LISTENING), (0.5, THINKING), (2.0, SPEAKING), (3.0, LISTENING)]


@pytest.mark.looptime
async def test_a_turn_during_a_protected_reply_keeps_the_agent_speaking() -> None:
    greeting, t1 = fk.new_turn_id(), fk.new_turn_id()
    protected = Playout(turn_id=greeting, event=PlayoutEvent.STARTED, allow_interruptions=False)
    states, _, _ = await run_states(
        Script(turn(1.0, t1), end_at=10),
        Script((0.5, protected), played(3.0, PlayoutEvent.FINISHED, greeting),
               played(4.0, PlayoutEvent.STARTED, t1), played(5.0, PlayoutEvent.FINISHED, t1),
               end_at=10),
    )
    # The turn at 1.0 waits for the greeting (the LLM answers it after): speaking until 3.0.
    assert states == [
        (0.0, LISTENING), (0.5, SPEAKING), (3.0, THINKING), (4.0, SPEAKING), (5.0, LISTENING),
    ]


@pytest.mark.looptime
async def test_a_turn_after_a_tool_protected_the_reply_keeps_the_agent_speaking() -> None:
    reply, t2 = fk.new_turn_id(), fk.new_turn_id()
    protected = Playout(turn_id=reply, event=PlayoutEvent.PROTECTED, allow_interruptions=False)
    states, _, _ = await run_states(
        Script(turn(2.0, t2), end_at=10),
        Script(played(0.5, PlayoutEvent.STARTED, reply), (1.0, protected),
               played(3.0, PlayoutEvent.FINISHED, reply),
               played(4.0, PlayoutEvent.STARTED, t2), played(5.0, PlayoutEvent.FINISHED, t2),
               end_at=10),
    )
    # Protected at 1.0 (ctx.disallow_interruptions()): the turn at 2.0 waits for the reply.
    assert states == [
        (0.0, LISTENING), (0.5, SPEAKING), (3.0, THINKING), (4.0, SPEAKING), (5.0, LISTENING),
    ]


@pytest.mark.looptime
async def test_a_tools_playout_marker_reached_mid_reply_keeps_the_agent_speaking() -> None:
    reply = fk.new_turn_id()
    reached = Playout(turn_id=reply, event=PlayoutEvent.REACHED, mark=3)
    states, _, _ = await run_states(
        Script(end_at=10),
        Script(played(0.5, PlayoutEvent.STARTED, reply), (1.0, reached),
               played(3.0, PlayoutEvent.FINISHED, reply), end_at=10),
    )
    assert states == [(0.0, LISTENING), (0.5, SPEAKING), (3.0, LISTENING)]


@pytest.mark.looptime
async def test_ends_with_turns_and_requests_without_waiting_for_playout() -> None:
    t1 = fk.new_turn_id()
    states, _, ended = await run_states(
        Script(turn(1.0, t1), end_at=4.0),
        Script(played(2.0, PlayoutEvent.STARTED, t1), end_at=60.0),
        Script(end_at=3.0),
    )
    assert states == [(0.0, LISTENING), (1.0, THINKING), (2.0, SPEAKING)]
    assert ended == pytest.approx(4.0)
