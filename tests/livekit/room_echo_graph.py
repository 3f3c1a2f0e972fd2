"""A graph for `flowkit connect` tests: echoes the room's audio, shows states, hears chat.

RoomSource (24 kHz) → Echo (each frame as agent audio of turn 0) → RoomSink; ChatInput's turns
→ AgentStates (with the sink's playout) → AgentStatePublisher; ChatInput's transcripts →
TranscriptPublisher, so a typed message comes back on ``lk.transcription``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from livekit import rtc

import flowkit as fk
from flowkit.nodes.room import RoomSink, RoomSource, TranscriptPublisher
from flowkit.nodes.room_state import AgentStatePublisher, ChatInput
from flowkit.nodes.state import AgentStates


class Echo(fk.Node):
    """The user's audio, as the agent's speech."""

    audio: fk.In[rtc.AudioFrame] = fk.In(default=True)
    speech: fk.Out[fk.AgentAudio] = fk.Out(default=True)

    async def run(self, audio: AsyncIterator[rtc.AudioFrame]) -> None:
        async for frame in audio:
            await self.speech.put(fk.AgentAudio(frame=frame, text="echo"))


def build(job: fk.JobContext) -> fk.Graph:
    g = fk.Graph("room-echo")
    mic, echo = g.add(RoomSource(24_000)), g.add(Echo())
    sink = g.add(RoomSink(publish_transcripts=False))
    chat, states = g.add(ChatInput()), g.add(AgentStates())
    mic >> echo >> sink
    chat.turns >> states.turns
    sink.playout >> states.playout
    states.states >> g.add(AgentStatePublisher())
    chat.transcripts >> g.add(TranscriptPublisher())
    return g
