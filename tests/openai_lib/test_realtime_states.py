"""RealtimeModel's agent and user states, against the test Realtime server.

The messages and meanings are the cascaded pipeline's (AgentStates, TurnDetector): the agent
listening, thinking while a reply is on its way, speaking while the sink plays it; the user
speaking between the server's speech_started and speech_stopped. Real sockets and the real
openai SDK, so real time (no looptime).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fake_server import close_clients  # noqa: F401 (a fixture)
from flowkit_openai.testing.realtime_script import ScriptedReply
from flowkit_openai.testing.realtime_server import RealtimeTestServer
from realtime_helpers import agent
from support import speech

import flowkit as fk

pytestmark = pytest.mark.usefixtures("close_clients")

LONG = "One two three four five six seven eight nine ten eleven twelve."


@pytest.fixture
async def server() -> AsyncIterator[RealtimeTestServer]:
    async with RealtimeTestServer(user_transcripts=["What is the weather?", "Wait."]) as fake:
        yield fake


async def test_one_turn_goes_listening_thinking_speaking_listening(
    server: RealtimeTestServer,
) -> None:
    server.replies.append(ScriptedReply("It is sunny.", audio_ms=800))
    a = agent(server.base_url, speech(("silence", 0.3), ("voice", 0.8), ("silence", 1.6)))
    runner = await a.run()
    assert runner.node_errors == []

    [user] = a.users.items
    [reply] = {f.turn_id for f in a.frames()}
    # The cascaded graph's own message types, so the same consumers take them.
    assert all(type(s) is fk.AgentState for s in a.agent_states.items)
    assert all(type(s) is fk.UserState and s.speaker == "user" for s in a.user_states.items)
    assert a.user_state_changes() == [("speaking", user.turn_id), ("listening", user.turn_id)]
    assert a.agent_state_changes() == [
        ("listening", 0), ("thinking", reply), ("speaking", reply), ("listening", reply)
    ]


async def test_a_barge_in_returns_the_agent_to_listening_while_the_user_speaks(
    server: RealtimeTestServer,
) -> None:
    server.replies.extend([ScriptedReply(LONG, audio_ms=3000), ScriptedReply("Yes?", 400)])
    voice = speech(("silence", 0.3), ("voice", 0.6), ("silence", 1.2), ("voice", 0.5),
                   ("silence", 1.2))
    a = agent(server.base_url, voice)
    runner = await a.run()
    assert runner.node_errors == []

    first, second = dict.fromkeys(f.turn_id for f in a.frames())
    [flush] = a.interrupts.items
    assert flush.turn_id == first  # the first reply was cut while it played
    question, wait = a.users.items
    assert a.user_state_changes() == [
        ("speaking", question.turn_id), ("listening", question.turn_id),
        ("speaking", wait.turn_id), ("listening", wait.turn_id),
    ]
    assert a.agent_state_changes() == [
        ("listening", 0),
        ("thinking", first), ("speaking", first), ("listening", first),  # cut by the user
        ("thinking", second), ("speaking", second), ("listening", second),
    ]


async def test_without_playout_reports_the_clock_ends_speaking(
    server: RealtimeTestServer,
) -> None:
    # Nothing reports when the reply stops playing: the node estimates it from the first
    # frame, and says listening then (well before the input ends, 1.6 s after the reply).
    server.replies.append(ScriptedReply("It is sunny.", audio_ms=600))
    voice = speech(("silence", 0.3), ("voice", 0.6), ("silence", 2.4))
    a = agent(server.base_url, voice, playout=False)
    runner = await a.run()
    assert runner.node_errors == []
    [reply] = {f.turn_id for f in a.frames()}
    assert a.agent_state_changes() == [
        ("listening", 0), ("thinking", reply), ("speaking", reply), ("listening", reply)
    ]
