"""What the realtime tests share: the user's voice, and a voice agent around the node.

The graph is the one a user writes (room source -> resample -> RealtimeModel -> room sink,
barge-in and playout links; or, for a text model with a voice of the graph's, RealtimeModel
-> TTS -> room sink), in a :class:`MemoryIO` room that keeps real time, since the test
server is a real socket (no virtual time here).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from flowkit_openai.realtime import RealtimeModel, ServerVAD
from livekit import rtc
from openai.resources.realtime.realtime import AsyncRealtimeConnection
from support import Collect

import flowkit as fk
from flowkit.nodes.audio import Resample
from flowkit.nodes.push_to_talk import PushToTalk
from flowkit.nodes.room import RoomSink, RoomSource
from flowkit.nodes.tools import ToolRouter
from flowkit.nodes.tts import TTS
from flowkit.testing.memory_io import MemoryIO

RATE = 48_000
API_KEY = "sk-test"


@dataclass
class Agent:
    """A built voice agent and what its outputs carried."""

    graph: fk.Graph
    model: RealtimeModel
    io: MemoryIO
    users: Collect
    agents: Collect
    speech: Collect
    calls: Collect
    interrupts: Collect
    metrics: Collect
    playout: Collect
    agent_states: Collect
    user_states: Collect
    texts: Collect | None = None  # the model's text output, when a TTS node speaks it
    runner: fk.GraphRunner | None = None
    started: float = 0.0  # loop time the graph (and the user's audio) started

    async def run(self, timeout: float = 30.0) -> fk.GraphRunner:
        """Run the graph until its input has ended and everything has played."""
        self.runner = fk.GraphRunner(self.graph, job=fk.JobContext(io=self.io))
        self.started = asyncio.get_running_loop().time()
        async with asyncio.timeout(timeout):
            await self.runner.run()
        return self.runner

    def frames(self) -> list[fk.AgentAudio]:
        """The audio messages the node sent (end markers left out)."""
        return [a for a in self.speech.items if a.frame is not None]

    def agent_state_changes(self) -> list[tuple[str, int]]:
        """``(state, turn_id)`` of each agent state the node sent."""
        return [(str(s.state), s.turn_id) for s in self.agent_states.items]

    def user_state_changes(self) -> list[tuple[str, int]]:
        """``(state, turn_id)`` of each user state the node sent."""
        return [(str(s.state), s.turn_id) for s in self.user_states.items]


def agent(
    base_url: str,
    user_audio: Sequence[rtc.AudioFrame],
    *,
    tools: Sequence[Any] = (),
    mcp_servers: Sequence[Any] = (),
    playout: bool = True,
    tts: TTS | None = None,
    button: PushToTalk | None = None,
    **options: Any,
) -> Agent:
    """The voice agent graph around a RealtimeModel pointed at ``base_url``.

    With ``tools`` or ``mcp_servers``, a ToolRouter with the same runs the model's calls.
    With ``tts`` (and ``output_modality="text"``), the TTS node speaks the model's text
    and the barge-ins flush it too, as in the cascaded pipeline. With ``button``, the
    user's audio goes through that talk button, which commits and clears the model's turns.
    """
    options.setdefault("turn_detection", ServerVAD(silence_duration_ms=300))
    options.setdefault("api_key", API_KEY)
    g = fk.Graph("realtime-agent")
    mic = g.add(RoomSource(sample_rate=RATE), name="mic")
    model = g.add(
        RealtimeModel(base_url=base_url, tools=tools, mcp_servers=mcp_servers, **options),
        name="model",
    )
    speaker = g.add(RoomSink(publish_transcripts=False), name="speaker")
    heard: fk.Node = mic
    if button is not None:
        heard = mic >> g.add(button, name="button")
        button.commit >> model.commit
        button.clear >> model.clear
        button.interrupts >> model.interrupt
    if tts is None:
        heard >> Resample(24_000, channels=1) >> model >> speaker
        model.interrupts >> speaker.interrupt
    else:
        heard >> Resample(24_000, channels=1) >> model
        model.text >> g.add(tts, name="tts") >> speaker
        model.interrupts >> [tts.interrupt, speaker.interrupt]
    if playout:
        speaker >> model.playout
    if tools or mcp_servers:
        router = g.add(ToolRouter(tools, mcp_servers=mcp_servers), name="tools")
        model.tool_calls >> router >> model.tool_results
    collected = {}
    for name, port in (("users", model.transcripts), ("agents", model.agent_transcripts),
                       ("speech", model.speech), ("calls", model.tool_calls),
                       ("interrupts", model.interrupts), ("metrics", model.metrics),
                       ("playout", speaker.playout), ("agent_states", model.agent_state),
                       ("user_states", model.user_state)):
        collected[name] = g.add(Collect(), name=name)
        port >> collected[name]
    if tts is not None:
        # Only then: a linked text output is taken to be spoken (the sink's reports awaited).
        collected["texts"] = g.add(Collect(), name="texts")
        model.text >> collected["texts"]
    return Agent(g, model, MemoryIO(user_audio, paced=True), **collected)  # type: ignore[arg-type]


@fk.function_tool
async def get_weather(city: str) -> str:
    """Look up today's weather for a city.

    Args:
        city: The city's name.
    """
    return f"sunny in {city}"


class EffectsRecorder:
    """A realtime ``Dialogue``'s effects, recorded in one list: events, audio, chunks, messages.

    For tests of the dialogue's state machine alone, without a connection or a graph.
    """

    def __init__(self) -> None:
        self.log: list[Any] = []

    def send(self, event: dict[str, Any]) -> None:
        self.log.append(event)

    def send_audio(self, pcm: bytes) -> None:
        self.log.append(("audio", len(pcm)))

    def speak(self, message: Any) -> None:
        self.log.append(message)

    speak_text = user_transcript = agent_transcript = tool_call = interrupt = speak
    metrics = agent_state = user_state = handoff = speak

    def events(self) -> list[str]:
        """The client events sent, by type, and the audio sent, as ``"audio"``."""
        return [m["type"] if isinstance(m, dict) else m[0] for m in self.log
                if isinstance(m, dict | tuple)]

    def sent(self) -> list[Any]:
        """What left for the server or the TTS node: events by type, and text chunks."""
        return [m["type"] if isinstance(m, dict) else m for m in self.log
                if isinstance(m, dict | fk.TextChunk)]

    def call(self) -> fk.ToolCall:
        """The one tool call the dialogue made."""
        [call] = [m for m in self.log if isinstance(m, fk.ToolCall)]
        return call


def server_event(kind: str, **fields: Any) -> Any:
    """A server event, parsed by the SDK as the node receives it."""
    return AsyncRealtimeConnection.parse_event(
        cast(Any, None), json.dumps({"type": kind, "event_id": "e", **fields})
    )
