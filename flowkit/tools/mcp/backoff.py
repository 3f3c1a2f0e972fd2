"""When a lost MCP connection may be opened again: at once, then further and further apart.

A server that went away once (a restart, a crash in one call) is reconnected by the next
call that needs it, at once. A server that keeps failing to come back (a process that
exits as it starts, a host that refuses) is tried 1, 2, 4, ... and at most 30 seconds
apart; calls in between fail at once, without an attempt, so a crash-looping server is
not started again for every call, and the user is not kept waiting for an attempt that
would fail.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["ReconnectBackoff"]

FIRST_DELAY = 1.0
"""Seconds between the first failed reconnect and the next attempt."""

MAX_DELAY = 30.0
"""The longest wait between two attempts: a server back after a long outage is found soon."""


class ReconnectBackoff:
    """Spaces the attempts to reconnect to one server.

    Args:
        clock: Seconds on a monotonic clock (tests give a virtual one).

    Attributes:
        failures: Attempts in a row that failed since the server last answered.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.failures = 0
        self._last_attempt = 0.0

    def remaining(self) -> float:
        """Seconds before the next attempt may be made (0: now)."""
        if self.failures == 0:
            return 0.0
        delay = min(FIRST_DELAY * 2.0 ** (self.failures - 1), MAX_DELAY)
        return max(0.0, self._last_attempt + delay - self.clock())

    def attempt(self) -> None:
        """An attempt starts now."""
        self._last_attempt = self.clock()

    def failed(self) -> None:
        """The attempt failed: the next waits twice as long as the last (up to the maximum)."""
        self.failures += 1

    def succeeded(self) -> None:
        """The server answered: a later loss is retried at once again."""
        self.failures = 0
