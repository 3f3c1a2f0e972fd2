"""The user's ``away`` state on a RealtimeModel: both sides listening for ``user_away_timeout``.

LiveKit Agents' rule: the clock runs while the user and the agent both listen, starts afresh
each time they come to, and the user's speech brings them back. The rule is tested on the
state machine in virtual time (looptime, the default 15 s); the graph tests run the node
against the test Realtime server through the real openai SDK, in real time (a real socket:
no looptime), with a short timeout.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import Any, cast

import pytest
from fake_server import close_clients  # noqa: F401 (a fixture)
from flowkit_openai.realtime import RealtimeModel
from flowkit_openai.realtime.dialogue import Dialogue
from flowkit_openai.testing.realtime_script import ScriptedReply, tone
from flowkit_openai.testing.realtime_server import RealtimeTestServer
from openai.resources.realtime.realtime import AsyncRealtimeConnection
from realtime_helpers import agent
from support import TimedCollect, speech

import flowkit as fk


class _States:
    """The dialogue's effects: the user's states, with the loop time each came."""

    def __init__(self) -> None:
        self.users: list[tuple[float, str]] = []

    def user_state(self, state: fk.UserState) -> None:
        self.users.append((asyncio.get_running_loop().time(), str(state.state)))

    def ignore(self, *_: Any) -> None:
        pass

    send = send_audio = speak = speak_text = user_transcript = agent_transcript = ignore
    tool_call = interrupt = metrics = handoff = agent_state = ignore

    def said(self) -> list[str]:
        return [state for _, state in self.users]


def _event(kind: str, **fields: Any) -> Any:
    """A server event, parsed by the SDK as the node receives it."""
    return AsyncRealtimeConnection.parse_event(
        cast(Any, None), json.dumps({"type": kind, "event_id": "e", **fields})
    )


def _dialogue(states: _States, away: float | None = 15.0) -> Dialogue:
    loop = asyncio.get_running_loop()
    return Dialogue(states, url="ws://example/v1/realtime?model=m", clock=loop.time,
                    call_later=loop.call_later, user_away_timeout=away,
                    logger=logging.getLogger("flowkit.node.test"))


def _speaks(d: Dialogue, item: str) -> None:
    d.on_event(_event("input_audio_buffer.speech_started", audio_start_ms=0, item_id=item))


def _stops(d: Dialogue, item: str) -> None:
    d.on_event(_event("input_audio_buffer.speech_stopped", audio_end_ms=0, item_id=item))


def _reply(d: Dialogue, response_id: str) -> int:
    """A response of 0.2 s of audio, made whole; its turn id."""
    d.on_event(_event("response.created", response={"id": response_id}))
    d.on_event(_event("response.output_audio.delta", response_id=response_id, item_id="i",
                      output_index=0, content_index=0,
                      delta=base64.b64encode(tone(200)).decode()))
    d.on_event(_event("response.done", response={"id": response_id, "status": "completed"}))
    return max(d.replies)


# -- the rule, in virtual time ----------------------------------------------------------------


@pytest.mark.looptime
async def test_the_user_is_away_after_both_sides_listened_for_the_timeout() -> None:
    states = _States()
    d = _dialogue(states)
    await asyncio.sleep(14.9)
    assert states.users == []
    await asyncio.sleep(0.2)
    assert states.users == [(15.0, "away")]
    d.close()


@pytest.mark.looptime
async def test_the_agent_thinking_or_speaking_stops_the_clock_and_listening_restarts_it() -> None:
    states = _States()
    d = _dialogue(states)
    await asyncio.sleep(10)
    d.on_request(fk.ReplyRequest(instructions="Greet."))  # thinking: the clock stops
    await asyncio.sleep(10)
    turn = _reply(d, "r1")
    d.on_playout(fk.Playout(turn_id=turn, event=fk.PlayoutEvent.STARTED))
    await asyncio.sleep(30)  # a long reply is not the user's silence
    assert states.users == []
    d.on_playout(fk.Playout(turn_id=turn, event=fk.PlayoutEvent.FINISHED, played_duration=30))
    await asyncio.sleep(14.9)  # a fresh clock from the end of the reply
    assert states.users == []
    await asyncio.sleep(0.2)
    assert states.users == [(65.0, "away")]
    d.close()


@pytest.mark.looptime
async def test_the_users_speech_brings_them_back_and_speaking_is_never_away() -> None:
    states = _States()
    d = _dialogue(states)
    await asyncio.sleep(20)
    _speaks(d, "u1")
    await asyncio.sleep(30)  # a long utterance
    _stops(d, "u1")
    await asyncio.sleep(15)
    assert states.users == [(15.0, "away"), (20.0, "speaking"), (50.0, "listening"),
                            (65.0, "away")]
    # The agent speaking to an away user does not bring them back, nor does a new session.
    turn = _reply(d, "r1")
    d.on_playout(fk.Playout(turn_id=turn, event=fk.PlayoutEvent.STARTED))
    d.on_playout(fk.Playout(turn_id=turn, event=fk.PlayoutEvent.FINISHED, played_duration=1))
    d.connection_lost()
    await asyncio.sleep(30)
    assert states.said() == ["away", "speaking", "listening", "away"]
    d.close()


@pytest.mark.looptime
async def test_none_never_says_away_and_closing_stops_the_clock() -> None:
    states = _States()
    _dialogue(states, away=None)
    await asyncio.sleep(100)
    assert states.users == []
    closed = _dialogue(states)
    await asyncio.sleep(10)
    closed.close()
    await asyncio.sleep(100)
    assert states.users == []


# -- the node, against the test server ----------------------------------------------------------


@pytest.mark.usefixtures("close_clients")
async def test_the_node_says_away_on_user_state_after_a_quiet_stretch() -> None:
    async with RealtimeTestServer([ScriptedReply("Hello.", audio_ms=400)]) as server:
        # Quiet for 0.8 s (away at 0.5 s), a question, its answer, then quiet again.
        audio = speech(("silence", 0.8), ("voice", 0.4), ("silence", 2.4))
        a = agent(server.base_url, audio, user_away_timeout=0.5)
        users = a.graph.add(TimedCollect(), name="user_times")
        agents = a.graph.add(TimedCollect(), name="agent_times")
        a.model.user_state >> users
        a.model.agent_state >> agents
        runner = await a.run()
    assert runner.node_errors == []

    [user] = a.users.items
    assert a.user_state_changes() == [
        ("away", 0), ("speaking", user.turn_id), ("listening", user.turn_id),
        ("away", user.turn_id),
    ]
    [first_away, last_away] = [t for t, s in users.items if s.state is fk.UserStateKind.AWAY]
    # The first clock starts with the node, which on a loaded machine can be a few hundred
    # ms before the collector starts its own (a CI run read 0.26): only "not late" holds,
    # and "before the user spoke" (0.8 s). The second clock, below, is timed exactly.
    assert first_away <= 0.6
    # The second clock ran from the end of the answer, not from the end of the question.
    answered = max(t for t, s in agents.items if s.state is fk.AgentStateKind.LISTENING)
    assert last_away - answered == pytest.approx(0.5, abs=0.05)


@pytest.mark.usefixtures("close_clients")
async def test_without_server_turn_detection_no_user_state_is_sent_not_even_away() -> None:
    async with RealtimeTestServer() as server:
        a = agent(server.base_url, speech(("silence", 0.8)), turn_detection=None,
                  user_away_timeout=0.3)
        runner = await a.run()
    assert runner.node_errors == []
    assert a.user_states.items == []


def test_the_timeout_is_a_parameter_of_the_node() -> None:
    assert RealtimeModel().settings.user_away_timeout == 15.0
    assert RealtimeModel(user_away_timeout=None).settings.user_away_timeout is None
    with pytest.raises(fk.NodeParamsError, match="user_away_timeout: Input should be greater"):
        RealtimeModel(user_away_timeout=0)
