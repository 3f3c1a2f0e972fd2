"""What the realtime state machine does to the world: the node's side of it.

:class:`~.dialogue.Dialogue` and its helpers decide; an :class:`Effects` (the node, in
practice) carries the decisions out: client events onto the socket, messages onto the
node's outputs. Keeping this a protocol lets the state machine run in tests with a recorder
in place of a graph and a socket.
"""

from __future__ import annotations

from typing import Any, Protocol

from flowkit.messages import (
    AgentAudio,
    AgentState,
    Interrupt,
    Metrics,
    TextChunk,
    ToolCall,
    Transcript,
    UserState,
)

__all__ = ["Effects"]


class Effects(Protocol):
    """Where the dialogue's decisions go."""

    def send(self, event: dict[str, Any]) -> None:
        """Send a client event to the server (dropped when there is no connection)."""

    def send_audio(self, pcm: bytes) -> None:
        """Send the user's 24 kHz mono PCM16 audio to the server."""

    def speak(self, audio: AgentAudio) -> None:
        """Send the agent's audio toward the sink."""

    def speak_text(self, chunk: TextChunk) -> None:
        """Send the reply's text toward a TTS node (a text reply the graph speaks)."""

    def user_transcript(self, transcript: Transcript) -> None:
        """Send a transcript of the user."""

    def agent_transcript(self, transcript: Transcript) -> None:
        """Send a transcript of the agent (what was heard, or its text as it streams)."""

    def agent_state(self, state: AgentState) -> None:
        """Send the agent's new state."""

    def user_state(self, state: UserState) -> None:
        """Send the user's new state."""

    def tool_call(self, call: ToolCall) -> None:
        """Send a tool call to the tool router."""

    def interrupt(self, interrupt: Interrupt) -> None:
        """Tell the sink to flush a reply (barge-in)."""

    def metrics(self, metrics: Metrics) -> None:
        """Send the figures of one response."""

    def handoff(self, agent: Any) -> None:
        """A tool result handed the conversation on (an agent, or a task's start or end)."""
