"""The conversation an LLM sees: chat messages, a history of them, and tool descriptions.

:class:`ChatMessage` and :class:`ToolSpec` are frozen, so a provider may keep or share
what it was given. :class:`ChatHistory` is the one mutable piece: the LLM node owns one per
session, appends to it as the conversation goes, and hands providers an immutable
snapshot (:attr:`ChatHistory.messages`) per request.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from flowkit.messages import Image, ToolCall, ToolResult

__all__ = ["ChatHistory", "ChatMessage", "ChatRole", "ToolSpec"]

ChatRole = Literal["system", "user", "assistant", "tool"]
"""Who wrote a :class:`ChatMessage`."""

_ROLES: frozenset[str] = frozenset(("system", "user", "assistant", "tool"))


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of a conversation.

    Attributes:
        role: ``"system"`` (instructions), ``"user"``, ``"assistant"`` or ``"tool"`` (the
            result of a tool call).
        content: The text. An assistant message that only calls tools may have none.
        tool_calls: For an assistant message: the tools it called.
        tool_call_id: For a tool message: the id of the call it answers.
        name: For a tool message: the tool's name; otherwise an optional speaker name.
        interrupted: ``True`` when the reply was cut off, by the user or by the model
            failing mid-answer: ``content`` is then only the part that was actually played
            (or, after a failure, streamed).
        images: For a user message: what the agent saw as the user spoke (a camera frame,
            a shared screen), for a vision model. A provider whose model cannot see leaves
            them out.
        turn_id: For an assistant message: the turn of the reply it is part of (a reply
            that calls tools spans several messages), so that a barge-in's report can cut
            the right ones; ``0`` when it is not known. Providers do not send it.
    """

    role: ChatRole
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    interrupted: bool = False
    images: tuple[Image, ...] = ()
    turn_id: int = 0

    def __post_init__(self) -> None:
        if self.role not in _ROLES:
            raise ValueError(f"ChatMessage role must be one of {sorted(_ROLES)}, got {self.role!r}")
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError(
                "a tool ChatMessage needs the tool_call_id of the call it answers; "
                "build it with ChatMessage.tool_result(result)"
            )
        if self.images and self.role != "user":
            raise ValueError(
                f"only a user ChatMessage carries images (what the agent saw as the user "
                f"spoke), not a {self.role} one; put them on the user message"
            )

    @classmethod
    def tool_result(cls, result: ToolResult) -> ChatMessage:
        """The tool message that carries a :class:`~flowkit.messages.ToolResult` to the LLM."""
        return cls("tool", result.output, tool_call_id=result.call_id, name=result.name)


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool the LLM may call, as providers describe it to the model.

    Attributes:
        name: The tool's name, unique among the tools of one request.
        description: What the tool does and when to use it; the model reads this.
        parameters: The arguments as a JSON schema object (``{"type": "object", ...}``).
    """

    name: str
    description: str
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )

    def to_openai(self) -> dict[str, Any]:
        """The spec in OpenAI's Chat Completions ``tools`` format.

        Returns:
            ``{"type": "function", "function": {"name", "description", "parameters"}}``.
        """
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": dict(self.parameters),
            },
        }


class ChatHistory:
    """The ordered messages of one conversation, with the instructions as its system message.

    The instructions, when set, are always the first message. Methods that change the
    history keep tool calls and their results together, because providers reject a tool
    result whose call is missing.
    """

    def __init__(
        self, instructions: str | None = None, messages: Iterable[ChatMessage] = ()
    ) -> None:
        """Start a history.

        Args:
            instructions: The system message; ``None`` for none.
            messages: Messages that follow it, oldest first. A leading system message here
                is used as the instructions when ``instructions`` is ``None``.
        """
        self._messages: list[ChatMessage] = list(messages)
        if instructions is not None:
            self.instructions = instructions

    @property
    def messages(self) -> tuple[ChatMessage, ...]:
        """A snapshot of the messages, oldest first: safe to hand to a provider."""
        return tuple(self._messages)

    def __len__(self) -> int:
        return len(self._messages)

    @property
    def instructions(self) -> str | None:
        """The system message's text, or ``None``. Setting it replaces the system message."""
        if self._messages and self._messages[0].role == "system":
            return self._messages[0].content
        return None

    @instructions.setter
    def instructions(self, text: str | None) -> None:
        has_system = bool(self._messages) and self._messages[0].role == "system"
        if text is None:
            if has_system:
                del self._messages[0]
        elif has_system:
            self._messages[0] = replace(self._messages[0], content=text)
        else:
            self._messages.insert(0, ChatMessage("system", text))

    def append(self, message: ChatMessage) -> None:
        """Add a message at the end.

        Raises:
            ValueError: ``message`` is a system message: set :attr:`instructions` instead,
                so that there is only ever one, at the top.
        """
        if message.role == "system":
            raise ValueError(
                "ChatHistory keeps one system message, first: set history.instructions "
                "instead of appending a system message"
            )
        self._messages.append(message)

    def add_user(self, text: str, images: Iterable[Image] = ()) -> ChatMessage:
        """Append a user message (with what the agent saw as it was said) and return it."""
        message = ChatMessage("user", text, images=tuple(images))
        self.append(message)
        return message

    def add_assistant(
        self, text: str, tool_calls: Iterable[ToolCall] = (), *, turn_id: int = 0
    ) -> ChatMessage:
        """Append an assistant message (a reply, tool calls, or both) and return it.

        Args:
            text: What the assistant said.
            tool_calls: The tools it called.
            turn_id: The turn of the reply the message is part of (see
                :meth:`truncate_reply`), ``0`` for none.
        """
        message = ChatMessage("assistant", text, tool_calls=tuple(tool_calls), turn_id=turn_id)
        self.append(message)
        return message

    def add_tool_result(self, result: ToolResult) -> ChatMessage:
        """Append the result of a tool call and return its message."""
        message = ChatMessage.tool_result(result)
        self.append(message)
        return message

    def replace_tool_result(self, result: ToolResult) -> ChatMessage | None:
        """Put ``result`` in place of the result the history holds for its call.

        For a result that came late, after the call was answered without it (a cut reply's
        round answers every call at once): it stays where the call's answer must be, right
        after the calls.

        Args:
            result: The result, for a call the history answered already.

        Returns:
            The new message, or ``None`` when the history holds no result for that call
            (trimmed away, say); nothing changes then.
        """
        for index in range(len(self._messages) - 1, -1, -1):
            message = self._messages[index]
            if message.role == "tool" and message.tool_call_id == result.call_id:
                replaced = self._messages[index] = ChatMessage.tool_result(result)
                return replaced
        return None

    def extend_last_assistant(self, text: str) -> ChatMessage | None:
        """Append ``text`` to the last assistant message, as words said after its own.

        What a tool says while it runs (``ctx.say``) goes here, on the message that called
        the tool: a message of its own between the call and its result would break the
        order providers require (each call's result right after the message that made it).

        Args:
            text: What was said, joined to the message's text with a space.

        Returns:
            The replacement message, or ``None`` when the history has no assistant message.
        """
        for index in range(len(self._messages) - 1, -1, -1):
            message = self._messages[index]
            if message.role != "assistant":
                continue
            joined = f"{message.content} {text}" if message.content else text
            extended = replace(message, content=joined.strip())
            self._messages[index] = extended
            return extended
        return None

    def truncate_last_assistant(self, played_text: str) -> ChatMessage | None:
        """Keep only what was played of the last assistant reply, marked interrupted.

        Called after a barge-in, so that the LLM knows what the user actually heard. A
        reply of which nothing was played and that called no tools is removed.

        Args:
            played_text: The part of the reply's text that reached the user.

        Returns:
            The replacement message, or ``None`` when the reply was removed or there is no
            assistant message.
        """
        for index in range(len(self._messages) - 1, -1, -1):
            message = self._messages[index]
            if message.role != "assistant":
                continue
            if not played_text and not message.tool_calls:
                del self._messages[index]
                return None
            cut = replace(message, content=played_text, interrupted=True)
            self._messages[index] = cut
            return cut
        return None

    def truncate_reply(self, turn_id: int, played_text: str) -> bool:
        """Keep only what was played of the reply of ``turn_id``, after a barge-in.

        A reply that called tools spans several assistant messages: the text before each
        round's calls (with what the tools said while they ran), then the text after. The
        speaker's ``played_text`` covers the whole reply, so it is shared out among them in
        order, word by word: the messages played whole before the cut stay as they are,
        the one the cut fell in keeps the words played of it and is marked interrupted,
        and those after it, of which nothing was heard, are removed, or emptied and
        marked interrupted if they called tools (their results follow them).

        Args:
            turn_id: The reply's turn, as its messages were added with
                (:meth:`add_assistant`).
            played_text: What the listener heard of the reply.

        Returns:
            Whether the history holds a message of that reply (nothing changes otherwise).
        """
        indices = [
            index for index, message in enumerate(self._messages)
            if message.role == "assistant" and message.turn_id == turn_id
        ]
        if not turn_id or not indices:
            return False
        rest, removed = played_text.strip(), []
        for position, index in enumerate(indices):
            message = self._messages[index]
            words = len(message.content.split())
            if position < len(indices) - 1 and len(rest.split()) >= words:
                rest = _after_words(rest, words)  # heard whole; the cut came later
                continue
            if not rest and not message.tool_calls:
                removed.append(index)
            else:
                self._messages[index] = replace(message, content=rest, interrupted=True)
            rest = ""
        for index in reversed(removed):
            del self._messages[index]
        return True

    def since_call(self, call_id: str) -> tuple[ChatMessage, ...]:
        """The system message and the messages from the one that made call ``call_id`` on.

        What a task with its own history shows the LLM: the call that started it, its
        result, and what was said since.

        Args:
            call_id: The id of a tool call.

        Returns:
            That view; every message when no message made the call (trimmed away, say).
        """
        for index in range(len(self._messages) - 1, -1, -1):
            message = self._messages[index]
            if message.role == "assistant" and any(
                call.call_id == call_id for call in message.tool_calls
            ):
                head = 1 if self.instructions is not None else 0
                return (*self._messages[:head], *self._messages[max(index, head):])
        return self.messages

    def copy(self) -> ChatHistory:
        """An independent history with the same messages (which are immutable)."""
        return ChatHistory(messages=self._messages)

    def trim(self, max_messages: int) -> int:
        """Drop the oldest messages so that at most ``max_messages`` follow the system message.

        The system message always stays. Tool results are never kept without the assistant
        message that called them, so the history may end up shorter than asked.

        Args:
            max_messages: How many non-system messages to keep at most (>= 0).

        Returns:
            How many messages were dropped.

        Raises:
            ValueError: ``max_messages`` is negative.
        """
        if max_messages < 0:
            raise ValueError(f"trim: max_messages must be >= 0, got {max_messages}")
        head = 1 if self.instructions is not None else 0
        body = self._messages[head:]
        cut = max(0, len(body) - max_messages)
        # A tool result at the cut would lose its call: drop it (and its siblings) too.
        while cut < len(body) and body[cut].role == "tool":
            cut += 1
        del self._messages[head : head + cut]
        return cut

    def keep_images(self, max_images: int) -> int:
        """Keep the images of the newest ``max_images`` user messages that have any.

        Older user messages keep their text and lose their images: every image in the
        history is sent with every request (hundreds of tokens and an upload each), and the
        agent's own replies already say what it saw in them.

        Args:
            max_images: How many messages keep their images (>= 0).

        Returns:
            How many messages lost their images.

        Raises:
            ValueError: ``max_images`` is negative.
        """
        if max_images < 0:
            raise ValueError(f"keep_images: max_images must be >= 0, got {max_images}")
        seeing = [i for i, m in enumerate(self._messages) if m.images]
        stripped = seeing[: max(0, len(seeing) - max_images)]
        for index in stripped:
            self._messages[index] = replace(self._messages[index], images=())
        return len(stripped)

    def __repr__(self) -> str:
        return f"ChatHistory({len(self._messages)} messages)"


def _after_words(text: str, count: int) -> str:
    """``text`` without its first ``count`` words (and the space after them)."""
    parts = text.split(maxsplit=count)
    return parts[count] if len(parts) > count else ""
