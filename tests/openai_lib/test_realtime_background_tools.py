"""A tool that goes on in the background, under the realtime model (``ctx.update``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

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
    await asyncio.sleep(1.0)
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
