"""examples/realtime_agent.py: it validates and draws, and it runs against the test server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fake_server import close_clients  # noqa: F401 (a fixture)
from flowkit_openai.testing.realtime_script import ScriptedReply
from flowkit_openai.testing.realtime_server import RealtimeTestServer
from support import speech

import flowkit as fk
from flowkit.cli import main
from flowkit.loader import load_graph
from flowkit.testing.memory_io import MemoryIO

EXAMPLE = Path(__file__).parents[2] / "examples" / "realtime_agent.py"


def test_the_example_validates_and_draws() -> None:
    result = CliRunner().invoke(main, ["validate", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        "✓ graph 'realtime-agent' is valid: 7 nodes, 10 edges, 0 inserted converters"
    )
    drawn = CliRunner().invoke(main, ["viz", str(EXAMPLE)])
    assert drawn.exit_code == 0, drawn.output
    assert "results ─ ToolResult ─▶ model.tool_results  ↺ loop" in drawn.stdout
    assert "playout ─ Playout ─▶ model.playout  ↺ loop" in drawn.stdout
    assert "out ─ AudioFrame 24 kHz mono ─▶ model.audio" in drawn.stdout
    assert "agent_state ─ AgentState ─▶ agent_state.states" in drawn.stdout


class StateShowingIO(MemoryIO):
    """A room that shows the agent's state, as LiveKit's ``lk.agent.state`` does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.agent_states: list[str] = []

    def set_agent_state(self, state: str) -> None:
        self.agent_states.append(state)


@pytest.mark.usefixtures("close_clients")
async def test_the_example_answers_a_weather_question() -> None:
    replies = [
        ScriptedReply("Let me look.", audio_ms=300,
                      tool_call=("get_weather", json.dumps({"city": "Paris"}))),
        ScriptedReply("It is {output}.", audio_ms=500),
    ]
    async with RealtimeTestServer(replies, user_transcripts=["Weather in Paris?"]) as server:
        io = StateShowingIO(speech(("silence", 0.3), ("voice", 0.6), ("silence", 1.8)),
                            paced=True)
        job = fk.JobContext(io=io, extra={"base_url": server.base_url, "api_key": "k",
                                          "silence_ms": 300})
        runner = fk.GraphRunner(load_graph(EXAMPLE, job), job=job)
        async with asyncio.timeout(20):
            await runner.run()
    assert runner.node_errors == []
    assert [(t.speaker, t.text) for t in io.transcripts] == [
        ("user", "Weather in Paris?"),
        ("agent", "Let me look. It is sunny, 24 degrees in Paris."),
    ]
    assert io.played_duration == pytest.approx(0.8)
    # The room showed the agent's state through the turn, the tool round included.
    assert io.agent_states == ["listening", "thinking", "speaking", "listening"]
