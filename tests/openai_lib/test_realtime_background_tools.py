"""A tool that goes on in the background, under the realtime model (``ctx.update``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fake_server import close_clients  # noqa: F401 (a fixture)
from flowkit_openai.testing.realtime_script import ScriptedReply
from flowkit_openai.testing.realtime_server import RealtimeTestServer
from realtime_helpers import agent
from support import speech

import flowkit as fk

pytestmark = pytest.mark.usefixtures("close_clients")


@fk.function_tool
async def check_order(ctx: fk.RunContext, order: str) -> str:
    """Check an order's status."""
    await ctx.update(f"Looking up order {order}.")
    await asyncio.sleep(0.3)
    return f"order {order} ships tomorrow"


@pytest.fixture
async def server() -> AsyncIterator[RealtimeTestServer]:
    async with RealtimeTestServer(user_transcripts=["Where is order 42?"]) as fake:
        yield fake


async def test_the_first_update_answers_the_call_and_the_result_comes_in_a_call_of_its_own(
    server: RealtimeTestServer,
) -> None:
    server.replies.extend([
        ScriptedReply("", tool_call=(check_order.name, json.dumps({"order": "42"}))),
        ScriptedReply("Let me check.", audio_ms=300),
        ScriptedReply("Good news: {output}.", audio_ms=300),
    ])
    user = speech(("silence", 0.3), ("voice", 0.6), ("silence", 3.0))
    a = agent(server.base_url, user, tools=[check_order], instructions="You are a shop.")
    runner = await a.run()
    assert runner.node_errors == []
    items = [e["item"] for e in server.events if e["type"] == "conversation.item.create"]
    answer, again, result = items[-3:]
    # The model's call was answered by the update, with the note that the tool goes on...
    assert answer["type"] == "function_call_output"
    assert answer["output"].startswith("Looking up order 42.")
    assert "goes on in the background" in answer["output"]
    # ...and the outcome came as the same tool called again, answered, then spoken.
    assert (again["type"], again["name"], again["arguments"]) == (
        "function_call", "check_order", json.dumps({"order": "42"})
    )
    assert again["call_id"] != answer["call_id"]
    assert result == {
        "type": "function_call_output", "call_id": again["call_id"],
        "output": "'check_order', which ran in the background, has finished: order 42 ships "
        "tomorrow",
    }
    spoken = [t.text for t in a.agents.items]
    assert spoken[-2:] == [
        "Let me check.",
        "Good news: 'check_order', which ran in the background, has finished: order 42 ships "
        "tomorrow.",
    ]


class _TimedEvents(list[dict[str, Any]]):
    """The server's record of client events, with the loop time each came."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def append(self, event: dict[str, Any]) -> None:
        self.times.append(asyncio.get_running_loop().time())
        super().append(event)


async def test_a_report_waits_until_the_reply_being_heard_has_played(
    server: RealtimeTestServer,
) -> None:
    events = server.events = _TimedEvents()
    server.replies.extend([
        ScriptedReply("", tool_call=(check_order.name, json.dumps({"order": "42"}))),
        ScriptedReply("Let me check that for you, it takes a moment.", audio_ms=2000),
        ScriptedReply("Good news: {output}.", audio_ms=300),
    ])
    user = speech(("silence", 0.3), ("voice", 0.6), ("silence", 4.5))
    a = agent(server.base_url, user, tools=[check_order], instructions="You are a shop.")
    runner = await a.run()
    assert runner.node_errors == []
    # The first reply's frames are the first to play; its end is when its last one ends.
    first_turn = a.frames()[0].turn_id
    first_frames = sum(1 for audio in a.frames() if audio.turn_id == first_turn)
    # Heard whole: a report's reply started over it would have cut it off.
    assert [p.event for p in a.playout.items if p.turn_id == first_turn][-1] is (
        fk.PlayoutEvent.FINISHED
    )
    first_ended = a.io.played[first_frames - 1][0] + 0.02
    again = next(
        at for at, event in zip(events.times, events, strict=True)
        if event["type"] == "conversation.item.create"
        and event["item"].get("type") == "function_call"
    )
    # The tool finished 0.3 s after its update, while 2 s of reply played; its result went
    # to the server once that reply had been heard, not over it.
    assert again >= first_ended - 0.05
    assert [t.text for t in a.agents.items][-1].startswith("Good news: 'check_order'")


async def test_the_user_speaking_takes_the_waiting_report_into_the_conversation() -> None:
    async with RealtimeTestServer(
        user_transcripts=["Where is order 42?", "Is it shipped yet?"]
    ) as server:
        server.replies.extend([
            ScriptedReply("", tool_call=(check_order.name, json.dumps({"order": "42"}))),
            ScriptedReply("Let me check that for you, it takes a moment.", audio_ms=2000),
            ScriptedReply("Yes: {output}.", audio_ms=300),
        ])
        # The user asks again while the second reply plays, after the tool has finished.
        user = speech(("silence", 0.3), ("voice", 0.6), ("silence", 1.1), ("voice", 0.6),
                      ("silence", 3.0))
        a = agent(server.base_url, user, tools=[check_order], instructions="You are a shop.")
        runner = await a.run()
    assert runner.node_errors == []
    # One response asked for by the client (after the tool round); the answer to the user's
    # second turn was made by the server with the report in the conversation.
    assert len(server.of_type("response.create")) == 1
    assert [t.text for t in a.agents.items][-1] == (
        "Yes: 'check_order', which ran in the background, has finished: order 42 ships "
        "tomorrow."
    )
