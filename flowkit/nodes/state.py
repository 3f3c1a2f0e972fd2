"""The agent's conversational state, as LiveKit's ``lk.agent.state`` shows it.

- ``listening`` when the node starts (the graph is wired and hears the user; the runtime,
  not this node, owns ``initializing``);
- ``thinking`` on a user turn or a reply request: a reply is being prepared;
- ``speaking`` when the sink reports the reply ``STARTED`` or ``RESUMED``;
- ``listening`` when it reports ``PAUSED`` (a possible interruption: the agent is quiet and
  hears the user out, as LiveKit shows it), ``FINISHED`` or ``INTERRUPTED``, unless a newer
  turn or request still waits for its reply, which is ``thinking``; a reply that ends
  without having started (flushed before any of it played) is no longer awaited either.

A state is sent only when it changes, with the turn id of the message that changed it. The
node ends when ``turns`` and ``requests`` end; ``playout`` is a feedback input and is not
waited for.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from flowkit.messages import (
    AgentState,
    AgentStateKind,
    Playout,
    PlayoutEvent,
    ReplyRequest,
    UserTurn,
)
from flowkit.node import Node
from flowkit.ports import In, Out

__all__ = ["AgentStates"]

_SPEAKING_EVENTS = (PlayoutEvent.STARTED, PlayoutEvent.RESUMED)
_ENDS = (PlayoutEvent.FINISHED, PlayoutEvent.INTERRUPTED)


class AgentStates(Node):
    """Tracks the agent's state (listening, thinking, speaking) from turns and playout."""

    turns: In[UserTurn] = In(default=True, doc="committed user turns: a reply is coming")
    playout: In[Playout] = In(feedback=True, doc="the sink's reports on the reply's audio")
    requests: In[ReplyRequest] = In(required=False, doc="replies asked for from code")
    states: Out[AgentState] = Out(doc="the agent's state, on each change")

    async def run(
        self,
        turns: AsyncIterator[UserTurn],
        playout: AsyncIterator[Playout],
        requests: AsyncIterator[ReplyRequest],
    ) -> None:
        """Follow the inputs; end when ``turns`` and ``requests`` have ended."""
        tracker = _Tracker(self)
        watcher = self.ctx.create_task(tracker.read_playout(playout), name="playout")
        asked = self.ctx.create_task(tracker.read_requests(requests), name="requests")
        try:
            async for turn in turns:
                tracker.reply_awaited(turn.turn_id, turn.turn_id)
            await asyncio.wait([asked])
        finally:
            watcher.cancel()
            asked.cancel()


class _Tracker:
    """The state of one run (a restart begins afresh, listening)."""

    def __init__(self, node: AgentStates) -> None:
        self.node = node
        self.state: AgentStateKind | None = None
        self.newest_turn = 0
        # The reply awaited is the first one played with a turn id at least this; None
        # when no reply is awaited.
        self.awaited_from: int | None = None
        # The lowest turn id the newest awaited reply can have: once the sink ends a reply
        # at least that new, nothing awaited is still coming (replies come in turn order).
        self.awaited_to = 0
        # A reply that may not be interrupted, playing: a turn meanwhile waits for it (the
        # LLM answers after it), so the agent is still speaking, not thinking.
        self.protected: int | None = None
        self._set(AgentStateKind.LISTENING, 0)

    async def read_playout(self, reports: AsyncIterator[Playout]) -> None:
        async for report in reports:
            self.on_playout(report)

    async def read_requests(self, requests: AsyncIterator[ReplyRequest]) -> None:
        async for request in requests:
            # A request from code usually has no turn id yet: the LLM gives its reply a new
            # one, newer than every id seen so far.
            first = request.turn_id or self.newest_turn + 1
            self.reply_awaited(first, request.turn_id)

    def reply_awaited(self, first_turn: int, turn_id: int) -> None:
        self.newest_turn = max(self.newest_turn, turn_id)
        if self.awaited_from is None or first_turn < self.awaited_from:
            self.awaited_from = first_turn
        self.awaited_to = max(self.awaited_to, first_turn)
        if self.protected is None:
            self._set(AgentStateKind.THINKING, turn_id)

    def on_playout(self, report: Playout) -> None:
        turn = report.turn_id
        self.newest_turn = max(self.newest_turn, turn)
        if report.event is PlayoutEvent.PROTECTED:
            self.protected = turn  # still speaking; a turn meanwhile waits for it
            return
        if report.event is PlayoutEvent.REACHED:
            return  # a tool's marker within the reply: the reply plays on
        if report.event in _SPEAKING_EVENTS:
            self.protected = None if report.allow_interruptions else turn
            if self.awaited_from is not None and turn >= self.awaited_from:
                self.awaited_from = None
            self._set(AgentStateKind.SPEAKING, turn)
            return
        if turn == self.protected:
            self.protected = None
        elif self.protected is not None:
            return  # the late report of an older reply: the protected one plays on
        if report.event in _ENDS and turn >= self.awaited_to:
            # Ended without starting (flushed before any of it played, or it had no audio):
            # it was the reply awaited, and no other is coming.
            self.awaited_from = None
        if self.awaited_from is not None:
            self._set(AgentStateKind.THINKING, turn)
        else:
            self._set(AgentStateKind.LISTENING, turn)

    def _set(self, state: AgentStateKind, turn_id: int) -> None:
        if state is not self.state:
            self.state = state
            self.node.states.send(AgentState(turn_id=turn_id, state=state))
