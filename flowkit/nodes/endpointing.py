"""Endpointing delays learned from the user's own pauses (``TurnDetector(endpointing="dynamic")``).

A fixed endpointing delay suits an average caller: someone who pauses a second mid-sentence
to think is cut off by a 0.5 s delay, and someone who answers briskly waits for a long one
the turn model asked for. :class:`DynamicDelays` moves both delays toward what this caller
does, as LiveKit Agents' dynamic endpointing does, from three kinds of moment (times are
when the VAD's start and end of speech reached the turn detector, which is where the delay
is counted from):

1. **The user went on before the agent spoke.** They stopped, then spoke again before any
   reply was heard: the pause was part of their turn, so the short delay moves toward it
   (it should have covered it).
2. **The user went on just after the agent started.** The agent began to answer and the
   user spoke again within the short delay of that start, having paused no longer than
   the long delay: the turn was committed too early (a false end of turn), so the short
   delay moves toward the user's pause.
3. **The user answered the agent.** They stopped, the agent replied, and the user spoke
   again later: the time from the user's end to the agent's start is a turn gap this
   caller accepts, so the long delay moves toward it.

Each move is an exponential moving average, ``alpha`` of the old value and ``1 - alpha`` of
the new pause, and both delays stay within the ``[min, max]`` the detector was given.
"""

from __future__ import annotations

__all__ = ["DynamicDelays"]


class DynamicDelays:
    """The short and long endpointing delays, learned as the call goes (see the module).

    Args:
        lowest: The given minimum delay: where the short delay starts, and its floor.
        highest: The given maximum delay: where the long delay starts, and its ceiling.
        alpha: The weight of the past in each update, in ``[0, 1)``.

    Attributes:
        min_delay: The short delay now (the turn is probably over).
        max_delay: The long delay now (a turn model says it probably is not).

    Raises:
        ValueError: ``alpha`` is outside ``[0, 1)``.
    """

    def __init__(self, lowest: float, highest: float, alpha: float = 0.9) -> None:
        if not 0.0 <= alpha < 1.0:
            raise ValueError(
                f"DynamicDelays(alpha={alpha}): the weight of the past must be in [0, 1) "
                "(0.9 moves each delay a tenth of the way toward each new pause)"
            )
        self.lowest, self.highest, self.alpha = lowest, highest, alpha
        self.min_delay, self.max_delay = lowest, highest
        self._user_ended_at: float | None = None
        self._agent_started_at: float | None = None

    def user_ended(self, at: float) -> None:
        """The user stopped speaking at ``at`` (the VAD's end of speech)."""
        self._user_ended_at, self._agent_started_at = at, None

    def agent_started(self, at: float) -> None:
        """The agent started speaking at ``at`` (its first reply since the user stopped)."""
        if self._user_ended_at is not None and self._agent_started_at is None:
            self._agent_started_at = at

    def user_started(self, at: float) -> None:
        """The user started speaking again at ``at``: learn from the pause it ends."""
        ended, agent = self._user_ended_at, self._agent_started_at
        # Consumed: the agent speaking over this utterance is not a reply to it.
        self._user_ended_at = self._agent_started_at = None
        if ended is None or at <= ended:
            return
        pause = at - ended
        if agent is None:
            self.min_delay = self._moved(self.min_delay, pause)  # 1: part of their turn
        elif at - agent <= self.min_delay and agent - ended <= self.max_delay:
            self.min_delay = self._moved(self.min_delay, pause)  # 2: committed too early
        else:
            self.max_delay = self._moved(self.max_delay, agent - ended)  # 3: a turn gap

    def _moved(self, value: float, pause: float) -> float:
        moved = self.alpha * value + (1.0 - self.alpha) * pause
        return min(self.highest, max(self.lowest, moved))
