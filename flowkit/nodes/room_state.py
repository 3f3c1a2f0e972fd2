"""Room nodes for what a LiveKit room shows besides audio: the agent's state, typed input.

- :class:`AgentStatePublisher` shows each :class:`~flowkit.messages.AgentState` (from
  :class:`~flowkit.nodes.state.AgentStates`) as the agent's participant attribute
  ``lk.agent.state``, which LiveKit's clients read (``useVoiceAssistant`` and the playground).
- :class:`ChatInput` turns what participants type on topic ``lk.chat`` into user turns: each
  message is one committed :class:`~flowkit.messages.UserTurn` (with a fresh turn id, so the
  reply being spoken is stale and the LLM answers the message), plus the same words as a
  final :class:`~flowkit.messages.Transcript` for the history or a display, plus an
  :class:`~flowkit.messages.Interrupt` that flushes the reply being spoken (typing to an
  agent interrupts it, as in LiveKit Agents). Link ``turns`` into the LLM beside the turn
  detector's: several edges into one input merge.

Both read the job's room I/O (``ctx.job.io``). An I/O without these features (an offline run,
:class:`~flowkit.testing.memory_io.MemoryIO`) is not an error, so the same graph runs
everywhere: the publisher then only consumes the states, and the chat input ends at once.
An I/O has them when it has ``set_agent_state(state)`` and ``text_input()`` like
:class:`flowkit.livekit.LiveKitRoomIO`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol, runtime_checkable

from flowkit.messages import (
    AgentState,
    Interrupt,
    InterruptAction,
    Transcript,
    UserTurn,
    new_turn_id,
)
from flowkit.node import Node
from flowkit.nodes.room import room_io
from flowkit.policy import ErrorPolicy
from flowkit.ports import In, Out

__all__ = ["AgentStatePublisher", "AgentStateSink", "ChatInput", "TextInputSource"]


@runtime_checkable
class AgentStateSink(Protocol):
    """A room I/O that can show the agent's state (LiveKit: ``lk.agent.state``)."""

    def set_agent_state(self, state: str) -> None:
        """Show ``state`` (``initializing``, ``listening``, ``thinking``, ``speaking``)."""
        ...


@runtime_checkable
class TextInputSource(Protocol):
    """A room I/O that hears typed messages (LiveKit: topic ``lk.chat``)."""

    def text_input(self) -> AsyncIterator[Any]:
        """``(identity, text)`` pairs, as they arrive, until the room closes."""
        ...


class AgentStatePublisher(Node):
    """Shows the agent's state in the room (LiveKit: the attribute ``lk.agent.state``)."""

    states: In[AgentState] = In(default=True, doc="the agent's state, on each change")
    error_policy = ErrorPolicy.RESTART

    async def run(self, states: AsyncIterator[AgentState]) -> None:
        """Publish every state as it arrives (only consume them when the I/O cannot show)."""
        io = room_io(self)
        sink = io if isinstance(io, AgentStateSink) else None
        if sink is None:
            self.ctx.logger.debug(
                "the room I/O (%s) cannot show the agent's state; states are dropped",
                type(io).__name__,
            )
        async for state in states:
            if sink is not None:
                sink.set_agent_state(str(state.state))


class ChatInput(Node):
    """Typed messages from the room as user turns (LiveKit: text streams on ``lk.chat``).

    Each message also flushes the reply being spoken (``interrupts``), unless that reply may
    not be interrupted: the flush is not forced, so such a reply plays to its end and the
    message is answered after it.
    """

    turns: Out[UserTurn] = Out(default=True, doc="one committed turn per message")
    transcripts: Out[Transcript] = Out(doc="the message as a final transcript")
    interrupts: Out[Interrupt] = Out(doc="flush the reply being spoken")
    error_policy = ErrorPolicy.RESTART

    async def run(self) -> None:
        """Send a turn per message until the room closes (at once without text input)."""
        io = room_io(self)
        if not isinstance(io, TextInputSource):
            self.ctx.logger.debug(
                "the room I/O (%s) has no text input; no typed turns", type(io).__name__
            )
            return
        async for identity, text in io.text_input():
            words = str(text).strip()
            if not words:
                continue
            turn_id = new_turn_id()
            # Not forced: a reply that may not be interrupted plays on; the turn after it.
            self.interrupts.send(
                Interrupt(
                    turn_id=0, action=InterruptAction.FLUSH, reason="text_input", force=False
                )
            )
            self.transcripts.send(
                Transcript(turn_id=turn_id, text=words, final=True, speaker=identity)
            )
            await self.turns.put(UserTurn(turn_id=turn_id, text=words, speaker=identity))
