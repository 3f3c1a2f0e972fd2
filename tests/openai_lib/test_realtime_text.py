"""RealtimeModel with ``output_modality="text"``: the model answers in text, and nothing speaks.

Against the test Realtime server, which streams ``response.output_text.delta`` events for a
session whose ``output_modalities`` is ``["text"]``, through the real openai SDK.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from fake_server import close_clients  # noqa: F401 (a fixture)
from flowkit_openai.testing.realtime_script import ScriptedReply
from flowkit_openai.testing.realtime_server import RealtimeTestServer
from realtime_helpers import agent, get_weather
from support import speech

import flowkit as fk

pytestmark = pytest.mark.usefixtures("close_clients")

ANSWER = "It is sunny in Paris today."


@pytest.fixture
async def server() -> AsyncIterator[RealtimeTestServer]:
    async with RealtimeTestServer(user_transcripts=["What is the weather?"]) as fake:
        yield fake


def _question() -> list[object]:
    return speech(("silence", 0.3), ("voice", 0.6), ("silence", 1.4))


async def test_a_text_reply_streams_as_agent_transcripts_and_nothing_is_spoken(
    server: RealtimeTestServer,
) -> None:
    server.replies.append(ScriptedReply(ANSWER))
    a = agent(server.base_url, _question(), output_modality="text")
    runner = await a.run()
    assert runner.node_errors == []

    assert server.sessions[0]["output_modalities"] == ["text"]
    # No audio at all: no frames, no end marker, nothing played or reported by the sink.
    assert a.speech.items == [] and server.deltas == []
    assert a.io.played == [] and a.playout.items == []
    # The text streams as interim agent transcripts, then the whole reply as the final one.
    *interims, final = a.agents.items
    words = ANSWER.split()
    assert [(t.text, t.final) for t in interims] == [
        (" ".join(words[:n]), False) for n in range(1, len(words) + 1)
    ]
    [reply] = {t.turn_id for t in a.agents.items}
    assert final == fk.Transcript(turn_id=reply, text=ANSWER, final=True, speaker="agent")
    # Thinking while it is written; never speaking.
    assert a.agent_state_changes() == [("listening", 0), ("thinking", reply), ("listening", reply)]
    [metrics] = a.metrics.items
    assert 0 <= metrics.values["ttft"] < metrics.values["duration"]
    assert "ttfa" not in metrics.values


async def test_a_text_reply_with_a_tool_round_is_one_reply(server: RealtimeTestServer) -> None:
    server.replies.extend([
        ScriptedReply("Let me check.", tool_call=("get_weather", json.dumps({"city": "Paris"}))),
        ScriptedReply("It is {output}."),
    ])
    a = agent(server.base_url, _question(), tools=[get_weather], output_modality="text")
    runner = await a.run()
    assert runner.node_errors == []

    [call] = a.calls.items
    assert a.speech.items == []
    assert {t.turn_id for t in a.agents.items} == {call.turn_id}
    assert [t.text for t in a.agents.items if t.final] == ["Let me check. It is sunny in Paris."]
    assert a.agents.items[-2].text == "Let me check. It is sunny in Paris."  # the last interim
    assert a.agent_state_changes() == [
        ("listening", 0), ("thinking", call.turn_id), ("listening", call.turn_id)
    ]
