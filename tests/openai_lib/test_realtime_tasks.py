"""RealtimeModel with a task: the session follows a tool's AgentTask and comes back.

The Realtime server is the test double, over real sockets, so this runs in real time.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import pytest
from fake_server import close_clients  # noqa: F401 (a fixture)
from flowkit_openai.testing.realtime_script import ScriptedReply
from flowkit_openai.testing.realtime_server import RealtimeTestServer
from realtime_helpers import agent
from support import speech

import flowkit as fk

pytestmark = pytest.mark.usefixtures("close_clients")


class GetEmail(fk.AgentTask[str]):
    instructions = "Ask for the user's email address."

    @fk.function_tool
    async def email_given(self, email: str) -> None:
        """The user gave their email address."""
        self.complete(email)


@fk.function_tool
async def book(ctx: fk.RunContext, day: str) -> str:
    """Book an appointment."""
    email = await ctx.run_task(GetEmail())
    return f"booked {day} for {email}"


@pytest.fixture
async def server() -> AsyncIterator[RealtimeTestServer]:
    transcripts = ["Book me for Friday.", "ana@example.com"]
    async with RealtimeTestServer(user_transcripts=transcripts) as fake:
        yield fake


@fk.function_tool
async def book_privately(ctx: fk.RunContext, day: str) -> str:
    """Book an appointment, the task seeing only its part of the conversation."""
    email = await ctx.run_task(GetEmail(own_history=True))
    return f"booked {day} for {email}"


@pytest.mark.parametrize("own_history", [False, True])
async def test_the_session_takes_the_tasks_instructions_and_tools_then_comes_back(
    server: RealtimeTestServer, own_history: bool, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="flowkit.node")
    tool = book_privately if own_history else book
    server.replies.extend([
        ScriptedReply("", tool_call=(tool.name, json.dumps({"day": "Friday"}))),
        ScriptedReply("What is your email address?", audio_ms=300),
        ScriptedReply("", tool_call=("email_given", json.dumps({"email": "ana@example.com"}))),
        ScriptedReply("Done: {output}.", audio_ms=300),
    ])
    user = speech(("silence", 0.3), ("voice", 0.6), ("silence", 2.5), ("voice", 0.6),
                  ("silence", 2.0))
    a = agent(server.base_url, user, tools=[tool], instructions="You are the front desk.")
    runner = await a.run()
    assert runner.node_errors == []
    updates = [(s["instructions"], [t["name"] for t in s["tools"]])  # type: ignore[index]
               for s in server.sessions]
    assert updates == [
        ("You are the front desk.", [tool.name]),
        ("Ask for the user's email address.", ["email_given"]),
        ("You are the front desk.", [tool.name]),
    ]
    assert [t.text for t in a.agents.items][-1] == "Done: booked Friday for ana@example.com."
    # The server keeps one conversation: a task's own history cannot be kept, and says so.
    warned = [r.getMessage() for r in caplog.records if "own_history=True" in r.getMessage()]
    assert len(warned) == (1 if own_history else 0)
    assert all("GetEmail has own_history=True" in message for message in warned)
