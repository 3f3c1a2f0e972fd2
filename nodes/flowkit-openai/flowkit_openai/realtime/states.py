"""The agent's and the user's states, as the cascaded pipeline reports them.

The same messages, with the same meanings, as :class:`~flowkit.nodes.state.AgentStates` and
the :class:`~flowkit.nodes.turn.TurnDetector` send, so a realtime graph wires them to the same
consumers (:class:`~flowkit.nodes.room_state.AgentStatePublisher`, a video sampler's
``user_state``):

* the agent is ``listening`` when the node starts; ``thinking`` while a reply is on its way
  (asked for, being made, tool rounds included, or made and queued at the sink) and none is
  heard; ``speaking`` while a reply is heard: from the sink's ``STARTED`` or ``RESUMED``
  report to its ``PAUSED``, ``FINISHED`` or ``INTERRUPTED`` (with no playout linked, from the
  reply's first frame for as long as real-time playback from then would take). A barge-in
  makes it ``listening`` at once: a reply that was cut is neither heard nor on its way.
  A text reply that a TTS node speaks is followed the same way, by the sink's reports on
  the TTS node's audio (it is on its way until the sink starts it); with no playout linked
  it is never ``speaking``, since nothing tells when its audio plays.
* the user is ``speaking`` from the server's ``input_audio_buffer.speech_started`` to its
  ``speech_stopped`` (or to a lost connection, after which the new session hears nothing
  yet), else ``listening``. Without server turn detection there are no such events, so no
  user state is sent.
* the user is ``away`` once both sides have been ``listening`` for ``away_after`` seconds,
  as LiveKit Agents' ``user_away_timeout`` rules: the clock starts afresh each time both
  come to listen (at the start, when the user stops speaking while the agent listens, when
  the agent stops thinking or speaking while the user listens) and stops when either does
  anything else, so a long reply or a slow tool never counts as the user's silence. The user
  stays ``away`` until the server hears them speak (``speaking``, then ``listening`` as
  usual); the agent speaking to them meanwhile does not bring them back.

The agent's state is derived afresh from the replies after every input
(:meth:`ConversationStates.refresh`), not tracked event by event, so no sequence of events
can leave it stale. A state is sent only when it changes, with the turn id of the reply (for
the agent) or of the user's turn (for the user) that changed it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flowkit.messages import AgentState, AgentStateKind, UserState, UserStateKind
from flowkit_openai.realtime.effects import Effects
from flowkit_openai.realtime.listening import Listening

__all__ = ["ConversationStates"]


class ConversationStates:
    """The agent's and the user's states, sent on each change (see the module).

    Args:
        effects: Where the states go.
        listening: The replies, and whether each is heard now.
        awaited: The turn ids of the replies asked for whose response has not started.
        call_later: Schedules a callback (with no playout reports, the end of a reply's
            estimated playback; the user's ``away``).
        away_after: Seconds of both sides listening before the user is ``away``; ``None``
            never says so.

    Attributes:
        agent: The agent's state last sent.
        user: The user's state last sent.
    """

    def __init__(
        self,
        effects: Effects,
        *,
        listening: Listening,
        awaited: Callable[[], Iterable[int]],
        call_later: Callable[[float, Callable[[], None]], Any],
        away_after: float | None = None,
    ) -> None:
        self.effects, self.listening = effects, listening
        self._awaited, self._call_later = awaited, call_later
        self.away_after = away_after
        self.agent: AgentStateKind | None = None
        self.user = UserStateKind.LISTENING
        self._agent_turn = 0
        self._user_turn = 0
        self._timer: Any = None  # re-derives the state when the clock says a reply ended
        self._away: Any = None  # makes the user away when both sides listened long enough
        self._set_agent(AgentStateKind.LISTENING, 0)

    def user_speaking(self, turn_id: int) -> None:
        """The server heard the user start speaking (their turn ``turn_id``)."""
        self._set_user(UserStateKind.SPEAKING, turn_id)

    def user_listening(self, turn_id: int | None = None) -> None:
        """The server heard the user stop speaking, or can no longer hear them.

        A user who is away stays away: only their speech brings them back.

        Args:
            turn_id: The user's turn that ended; ``None``: the one that started last.
        """
        if self.user is UserStateKind.AWAY:
            return
        self._set_user(UserStateKind.LISTENING, self._user_turn if turn_id is None else turn_id)

    def refresh(self) -> None:
        """Derive the agent's state from the replies now, and send it if it changed."""
        replies = list(self.listening.replies.values())
        heard = [reply.turn_id for reply in replies if self.listening.audible(reply)]
        coming = [reply.turn_id for reply in replies if self.listening.coming(reply)]
        coming += self._awaited()
        if heard:
            self._set_agent(AgentStateKind.SPEAKING, max(heard))
        elif coming:
            self._set_agent(AgentStateKind.THINKING, max(coming))
        else:
            self._set_agent(AgentStateKind.LISTENING, self._agent_turn)
        self._watch_clock(heard)

    def stop(self) -> None:
        """The node is ending: no state is derived or sent any more."""
        self._stop_clock()
        self._stop_away()

    def _stop_clock(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _watch_clock(self, heard: list[int]) -> None:
        # Without playout reports nothing says when a reply stops being heard: look again
        # when the clock says the soonest one ends (more audio moves that later).
        self._stop_clock()
        if self.listening.playout_linked or not heard:
            return
        left = min(self.listening.clock_left(self.listening.replies[turn]) for turn in heard)
        self._timer = self._call_later(left, self.refresh)

    def _set_agent(self, state: AgentStateKind, turn_id: int) -> None:
        self._agent_turn = turn_id
        if state is not self.agent:
            self.agent = state
            self.effects.agent_state(AgentState(turn_id=turn_id, state=state))
            self._watch_away()

    def _set_user(self, state: UserStateKind, turn_id: int) -> None:
        self._user_turn = turn_id
        if state is not self.user:
            self.user = state
            self.effects.user_state(UserState(turn_id=turn_id, state=state))
            self._watch_away()

    def _watch_away(self) -> None:
        # Called on each change of either state: a change into both listening starts a fresh
        # clock, any other change stops it.
        self._stop_away()
        both = self.user is UserStateKind.LISTENING and self.agent is AgentStateKind.LISTENING
        if both and self.away_after is not None:
            self._away = self._call_later(self.away_after, self._user_away)

    def _user_away(self) -> None:
        self._away = None
        self._set_user(UserStateKind.AWAY, self._user_turn)

    def _stop_away(self) -> None:
        if self._away is not None:
            self._away.cancel()
            self._away = None
