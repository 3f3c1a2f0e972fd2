"""The conversation one session of the test Realtime server holds: its items, in order.

Kept apart from the connection (:mod:`.realtime_connection`) because tests read it: after a
run, :attr:`RealtimeTestServer.conversations <flowkit_openai.testing.realtime_server.
RealtimeTestServer.conversations>` says what the model would have had in its context (the
user's turns as transcribed, its own replies as truncated or rewritten, tool calls and
their outputs), which is what a test of "the model keeps what was heard" asserts on.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ConversationItem", "ServerConversation"]


@dataclass(slots=True)
class ConversationItem:
    """One item of a session's conversation.

    Attributes:
        id: The item's id.
        type: ``message``, ``function_call`` or ``function_call_output``.
        role: ``user`` or ``assistant`` for a message, else empty.
        text: A message's text (a user's transcript, the model's text or its speech's
            transcript), a call as ``name(arguments)``, or an output.
        audio_ms: Milliseconds of audio the item holds (what a truncation may cut).
    """

    id: str
    type: str
    role: str = ""
    text: str = ""
    audio_ms: float = 0.0


class ServerConversation:
    """The items of one session in conversation order, as the API keeps them.

    Items are appended, or inserted after the item a ``previous_item_id`` names (``root``:
    first), and deleted by id.
    """

    def __init__(self) -> None:
        self._items: dict[str, ConversationItem] = {}
        self._order: list[str] = []

    @property
    def items(self) -> list[ConversationItem]:
        """Every item, in conversation order."""
        return [self._items[item_id] for item_id in self._order]

    @property
    def last(self) -> str | None:
        """The id of the last item, if any."""
        return self._order[-1] if self._order else None

    def messages(self) -> list[tuple[str, str]]:
        """``(role, text)`` of every message item, in order."""
        return [(item.role, item.text) for item in self.items if item.type == "message"]

    def get(self, item_id: str) -> ConversationItem | None:
        """The item ``item_id``, if the conversation holds it."""
        return self._items.get(item_id)

    def add(self, item: ConversationItem, previous_item_id: str | None = None) -> str | None:
        """Put ``item`` after ``previous_item_id`` (``None``: last; ``root``: first).

        Returns:
            The id of the item now before it (``None``: it is first).

        Raises:
            KeyError: ``previous_item_id`` names no item.
            ValueError: An item with ``item.id`` is already there.
        """
        if item.id in self._items:
            raise ValueError(item.id)
        if previous_item_id is None:
            index = len(self._order)
        elif previous_item_id == "root":
            index = 0
        elif previous_item_id in self._items:
            index = self._order.index(previous_item_id) + 1
        else:
            raise KeyError(previous_item_id)
        self._order.insert(index, item.id)
        self._items[item.id] = item
        return self._order[index - 1] if index else None

    def delete(self, item_id: str) -> None:
        """Remove the item ``item_id``.

        Raises:
            KeyError: No such item.
        """
        del self._items[item_id]
        self._order.remove(item_id)
