"""The LLM presses keys in a LiveKit room: send_dtmf through the ToolRouter and LiveKitRoomIO.

The scenario runs a graph (a scripted LLM that calls ``send_dtmf``, and the router that runs
it) for a job connected to the test LiveKit server, in a private network namespace
(flowkit.testing.netns); a caller, a real SDK participant, records the ``sip_dtmf_received``
events it gets. The test at the end asserts on the JSON the scenario returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from livekit import rtc
from scenario_kit import agent_job, join, quiet_logs, until

import flowkit as fk
from flowkit.livekit import LiveKitRoomIO
from flowkit.messages import TextChunk, UserTurn
from flowkit.nodes.llm import LLM
from flowkit.nodes.tools import ToolRouter
from flowkit.providers.llm import ToolCallChunk
from flowkit.testing import FakeLLM, FakeReply
from flowkit.tools.dtmf import send_dtmf

TIMEOUT = 20.0


class _OneTurn(fk.Node):
    """Says what the phone menu said, as one user turn."""

    out: fk.Out[UserTurn]

    async def run(self) -> None:
        self.out.send(UserTurn(turn_id=fk.new_turn_id(), text="For sales, press 1, then #."))


class _Reply(fk.Node):
    """Keeps the LLM's reply text."""

    inp: fk.In[TextChunk]

    def __init__(self) -> None:
        super().__init__()
        self.text = ""

    async def run(self, inp: AsyncIterator[TextChunk]) -> None:
        async for chunk in inp:
            self.text += chunk.text


async def scenario_the_llm_presses_keys_that_the_caller_hears() -> dict[str, Any]:
    from flowkit.testing.livekit_server import TestLiveKitServer

    quiet_logs()
    async with TestLiveKitServer() as server:
        job = await agent_job(server)
        io = job.io
        assert isinstance(io, LiveKitRoomIO)
        caller = await join(server, "caller")
        heard: list[tuple[str, int, str | None]] = []

        def on_dtmf(event: rtc.SipDTMF) -> None:
            who = None if event.participant is None else event.participant.identity
            heard.append((event.digit, event.code, who))

        caller.on("sip_dtmf_received", on_dtmf)
        # The SDK drops a press from a participant it does not know yet.
        await until(lambda: "agent" in {p.identity for p in caller.remote_participants.values()})

        fake = FakeLLM(
            [FakeReply(tool_calls=(ToolCallChunk("c1", "send_dtmf", '{"keys": "1#"}'),)),
             "Pressed."],
            ttft=0.0, token_gap=0.0,
        )
        graph = fk.Graph("ivr")
        llm = graph.add(LLM(fake, tools=[send_dtmf]), name="llm")
        graph.add(_OneTurn(), name="menu") >> llm
        llm.tool_calls >> graph.add(ToolRouter([send_dtmf]), name="router") >> llm.tool_results
        reply = graph.add(_Reply(), name="reply")
        llm >> reply
        await asyncio.wait_for(fk.GraphRunner(graph, job=job).run(), TIMEOUT)
        await until(lambda: len(heard) >= 2, timeout=TIMEOUT)

        await job.aclose()
        await caller.disconnect()
        return {
            "heard": heard,
            "tool_results": [m.content for m in fake.requests[1].history if m.role == "tool"],
            "reply": reply.text,
        }


def test_the_llm_presses_keys_that_the_caller_hears(run_scenario: Any) -> None:
    result = run_scenario(__file__, "scenario_the_llm_presses_keys_that_the_caller_hears")
    # Each key as LiveKit's SIP bridge would play it: digit, RFC 4733 code, the agent as sender.
    assert result["heard"] == [["1", 1, "agent"], ["#", 11, "agent"]]
    assert result["tool_results"] == ["Pressed 1 # on the phone keypad."]
    assert result["reply"] == "Pressed."
