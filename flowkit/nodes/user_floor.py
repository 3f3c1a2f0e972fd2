"""Whether the user may still be in the middle of a turn, for replies nobody asked for.

A reply the agent starts on its own (to what a tool in the background reported) must not
start over the user, and not in the pause before their turn commits either: the turn
would cut it as soon as it started. The pause is where a turn detector waits out its
endpointing delay, up to seconds when its model says the sentence is not finished, and
where the transcript is still on its way. :class:`UserFloor` follows what the LLM node
hears of that (the turn detector's ``user_state`` and ``tentative`` outputs, and the turns
themselves) and says how long such a reply should wait.

The rule: the user holds the floor while they speak; once they stop, until a turn is
committed, as long as the detector has announced a turn (a tentative one: it commits
unless they go on), and otherwise for :data:`SETTLE_SECONDS` (a sound that brings no words,
a cough, commits no turn, and the agent may then speak).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

__all__ = ["SETTLE_SECONDS", "UserFloor"]

SETTLE_SECONDS = 2.0
"""How long after the user stops speaking a turn is waited for when none was announced.

The transcript that lets a detector announce a turn comes within a second of the end of
speech with the local and cloud recognisers flowkit ships; LiveKit Agents waits the same
2 s before it takes an interruption that brought no words for a false one.
"""


class UserFloor:
    """Whether a reply of the agent's own would start in the user's turn.

    Fed with what the user does (:meth:`speaking`, :meth:`quiet`, :meth:`announced`,
    :meth:`turn_taken`); :meth:`hold` says how long to wait, :meth:`wait` waits it.
    """

    def __init__(
        self, clock: Callable[[], float] | None = None, settle: float = SETTLE_SECONDS
    ) -> None:
        """Follow the user.

        Args:
            clock: Seconds now; the running event loop's clock by default.
            settle: How long after the user stops a turn is waited for when none was
                announced.
        """
        self._clock = clock or _loop_time
        self._settle = settle
        self._speaking = False
        self._open = False  # they spoke, or a turn was announced, and no turn was taken since
        self._announced = False  # a tentative turn came since they last started speaking
        self._quiet_since = 0.0
        self._changed = asyncio.Event()

    def speaking(self) -> None:
        """The user started speaking."""
        self._speaking = self._open = True
        self._announced = False  # what they add changes the turn; a new one is announced
        self._changed.set()

    def quiet(self) -> None:
        """The user is not speaking (listening, or away)."""
        if self._speaking:
            self._quiet_since = self._clock()
        self._speaking = False
        self._changed.set()

    def announced(self) -> None:
        """The turn detector announced the turn it will commit unless the user goes on."""
        self._open = self._announced = True
        self._changed.set()

    def turn_taken(self) -> None:
        """A user turn was committed: what the user said is answered as that turn."""
        self._open = self._announced = False
        self._changed.set()

    def release(self) -> None:
        """Nothing more will be heard of the user: nothing waits for them."""
        self._speaking = self._open = self._announced = False
        self._changed.set()

    def hold(self) -> float | None:
        """Seconds a reply of the agent's own should wait: 0 for none, None until a change."""
        if self._speaking or self._announced:
            return None
        if not self._open:
            return 0.0
        left = self._quiet_since + self._settle - self._clock()
        if left <= 0:
            self._open = False  # no turn came of it
            return 0.0
        return left

    async def wait(self) -> None:
        """Return once :meth:`hold` says 0."""
        while (left := self.hold()) != 0.0:
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)


def _loop_time() -> float:
    # Read when used: nodes are made before their graph's loop runs.
    return asyncio.get_running_loop().time()
