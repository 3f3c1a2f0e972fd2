"""Watching a room's membership, tracks and attributes: one signal that wakes every waiter."""

from __future__ import annotations

import asyncio
from typing import Any

from livekit import rtc

__all__ = ["RoomWatch"]

# The room events after which who is in the room, which tracks are available, or what a
# participant's attributes say (a SIP call's state) may differ.
_CHANGES: tuple[rtc.room.EventTypes, ...] = (
    "participant_connected",
    "participant_disconnected",
    "participant_attributes_changed",
    "track_published",
    "track_unpublished",
    "track_subscribed",
    "track_unsubscribed",
    "connection_state_changed",
    "reconnected",
)


class RoomWatch:
    """Follows a room: wakes waiters on each membership, track or attribute change, and close.

    Args:
        room: The room to follow (connected or not yet).
    """

    def __init__(self, room: rtc.Room) -> None:
        self.room = room
        self.closed = False
        self.close_reason = ""
        self._changed: asyncio.Event | None = None
        for event in _CHANGES:
            room.on(event, self._on_change)
        room.on("disconnected", self._on_disconnected)

    def detach(self) -> None:
        """Stop following the room (the watch stays closed or open as it was)."""
        for event in _CHANGES:
            self.room.off(event, self._on_change)
        self.room.off("disconnected", self._on_disconnected)

    def close(self, reason: str) -> None:
        """Mark the room closed: every waiter wakes and sees :attr:`closed`."""
        if not self.closed:
            self.closed = True
            self.close_reason = reason
        self.notify()

    def notify(self) -> None:
        """Wake every waiter (a fresh event per change: none misses one)."""
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def changed(self) -> None:
        """Wait for the next change (or the close)."""
        if self.closed:
            return
        if self._changed is None:
            self._changed = asyncio.Event()
        await self._changed.wait()

    def _on_change(self, *_: Any) -> None:
        self.notify()

    def _on_disconnected(self, reason: Any = None) -> None:
        name = _reason_name(reason)
        self.close(f"the room disconnected ({name})" if name else "the room disconnected")


def _reason_name(reason: Any) -> str:
    if isinstance(reason, int):
        try:
            return str(rtc.DisconnectReason.Name(reason))  # type: ignore[arg-type]
        except ValueError:
            return str(reason)
    return "" if reason is None else str(reason)
