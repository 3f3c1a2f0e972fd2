"""RealtimeModel with a task: the session follows a tool's AgentTask and comes back.

The Realtime server is the test double, over real sockets, so this runs in real time.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import pytest
from fake_server import close_clients  # noqa: F401 (a fixture)
from flowkit_openai.testing.realtime_script import ScriptedReply
from flowkit_openai.testing.realtime_server import RealtimeTestServer
from realtime_helpers import agent
from support import Script, speech

import flowkit as fk
from flowkit.nodes.tools import ToolRouter

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


@fk.function_tool
async def book_or_give_up(ctx: fk.RunContext, day: str) -> str:
    """Book an appointment; gives up on the email after 1.5 s."""
    task = GetEmail()
    asyncio.get_running_loop().call_later(
        1.5, lambda: task.done() or task.complete(fk.ToolError("no email address in time"))
    )
    try:
        return f"booked {day} for {await ctx.run_task(task)}"
    except fk.ToolError as error:
        return f"not booked: {error.message}"


async def test_a_task_completed_outside_its_tools_comes_back_in_a_call_the_router_made(
    server: RealtimeTestServer,
) -> None:
    server.replies.extend([
        ScriptedReply("", tool_call=(book_or_give_up.name, json.dumps({"day": "Friday"}))),
        ScriptedReply("What is your email address?", audio_ms=300),
        ScriptedReply("Sorry: {output}.", audio_ms=300),
    ])
    # The user asks, then says nothing more: the tool's timer ends the task.
    user = speech(("silence", 0.3), ("voice", 0.6), ("silence", 4.0))
    a = agent(server.base_url, user, tools=[book_or_give_up],
              instructions="You are the front desk.")
    runner = await a.run()
    assert runner.node_errors == []
    # The session went to the task and came back when the timer completed it...
    assert [s["instructions"] for s in server.sessions] == [
        "You are the front desk.", "Ask for the user's email address.", "You are the front desk.",
    ]
    # ...the server got the router's call as a function call item, then its output, then a
    # request for the response, in that order...
    created = [e for e in server.events if e["type"] in (
        "conversation.item.create", "response.create")]
    call, output, respond = created[-3:]
    assert (call["item"]["type"], call["item"]["name"]) == ("function_call", "book_or_give_up")
    assert call["item"]["arguments"] == json.dumps({"day": "Friday"})
    assert output["item"] == {"type": "function_call_output", "call_id": call["item"]["call_id"],
                              "output": "not booked: no email address in time"}
    assert respond["type"] == "response.create"
    # ...and the model's answer was spoken.
    assert [t.text for t in a.agents.items][-1] == "Sorry: not booked: no email address in time."


@fk.function_tool
async def refund(amount: float) -> str:
    """Refund an amount."""
    return f"refunded {amount:g}"


async def test_an_update_from_code_goes_to_the_server_in_a_session_update(
    server: RealtimeTestServer,
) -> None:
    user = speech(("silence", 1.5))
    a = agent(server.base_url, user, tools=[book], instructions="You are the front desk.")
    router = a.graph.nodes["tools"]
    update = fk.AgentUpdate(instructions="You handle billing.", tools=(refund,))
    a.graph.add(Script((0.5, update)), name="code") >> [a.model.updates, router.updates]
    runner = await a.run()
    assert runner.node_errors == []
    updates = [(s["instructions"], [t["name"] for t in s["tools"]])  # type: ignore[index]
               for s in server.sessions]
    assert updates == [("You are the front desk.", ["book"]),
                       ("You handle billing.", ["refund"])]
    assert isinstance(router, ToolRouter) and router.toolset.names == ["refund"]
