"""The node's picture of the conversation: the agent's replies and a replayable history.

A :class:`Reply` is what the listener hears as one answer: the responses the model made for
one turn, tool rounds included (a call, its result, the response that uses it), so it keeps
one ``turn_id`` from the first audio to the end marker. Its :class:`SpokenItem` s are the
assistant message items whose audio the model streamed (or that the node said for it: a
``say``, a tool's words); they tell, for a played duration, which items to truncate at which
millisecond and which words were heard. In a text-only
session the items hold the model's text and no audio; when a TTS node speaks that text, the
sink's report of the words heard (:attr:`Reply.played_text`) says which items to rewrite
(:meth:`Reply.text_cuts`).

:class:`History` keeps the conversation's text in order, so a new connection (a new server
session, which starts empty) can be given the conversation so far.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from flowkit.messages import ToolCall, ToolResult
from flowkit_openai.realtime.options import SAMPLE_RATE
from flowkit_openai.tts import PCMFramer

__all__ = ["History", "HistoryEntry", "Reply", "SpokenItem", "ToolRound", "heard_words"]

FRAME_MS = 20.0
"""Duration of the frames the model's audio is cut into: a barge-in stops within one."""


def heard_words(text: str, share: float) -> str:
    """The first ``share`` (0 to 1) of ``text``'s words, cut at a word.

    Example:
        >>> heard_words("It is sunny in Paris today.", 0.5)
        'It is sunny'
    """
    if share >= 1.0:
        return text
    words = text.split()
    return " ".join(words[: math.floor(len(words) * max(share, 0.0) + 1e-9)])


@dataclass(slots=True)
class SpokenItem:
    """An assistant message item of a reply: its audio received so far and its transcript.

    Attributes:
        item_id: The server's id of the item (what ``conversation.item.truncate`` names).
        framer: Cuts the item's PCM into 20 ms frames; a sample split between two deltas
            waits for the next one.
        audio_s: Seconds of its audio received.
        transcript: The transcript's deltas, or the whole transcript once it is done (in a
            text-only session: the text's).
        transcript_done: The server sent the whole transcript.
        tts_text: The text of it sent to a TTS node so far.
        placed: The server said where the item sits (``conversation.item.added``).
        previous_item_id: The item before it in the server's conversation, once placed
            (``None``: it is the first).
        on_server: The server's conversation has it (not so a ``say`` kept out of the
            history): only then may a cut rewrite it there.
    """

    item_id: str
    framer: PCMFramer = field(default_factory=lambda: PCMFramer(SAMPLE_RATE, frame_ms=FRAME_MS))
    audio_s: float = 0.0
    transcript: list[str] = field(default_factory=list)
    transcript_done: bool = False
    tts_text: str = ""
    placed: bool = False
    previous_item_id: str | None = None
    on_server: bool = True

    @property
    def text(self) -> str:
        """The transcript so far."""
        return "".join(self.transcript).strip()


@dataclass(slots=True)
class ToolRound:
    """The function calls of one response, and their results as they come back.

    Attributes:
        calls: The calls, by call id, in the order the model made them.
        results: The results received, by call id.
        response_done: The response that made the calls has ended (no more calls come).
        timer: Fills in error results for the calls still unanswered at the timeout.
    """

    calls: dict[str, ToolCall] = field(default_factory=dict)
    results: dict[str, ToolResult] = field(default_factory=dict)
    response_done: bool = False
    timer: asyncio.TimerHandle | None = None

    @property
    def complete(self) -> bool:
        """Every call of the ended response has its result."""
        return self.response_done and all(c in self.results for c in self.calls)


@dataclass(slots=True)
class Reply:
    """One answer of the agent, as the listener hears it (see the module).

    Attributes:
        turn_id: The epoch every message of the reply carries.
        items: Its spoken items, in the order they play.
        tool_rounds: How many tool rounds it has taken.
        round: The tool round waiting for results, if any.
        generating: The model may still add to it (a response is under way or will be).
        cut: A barge-in or a flush ended it: later audio of it is dropped.
        played_out: The listener's side is over: played whole, or interrupted.
        started: The sink reported its first audio played.
        audible: The sink reported it playing (started or resumed, and not paused or ended
            since).
        played_s: Seconds of it that were played, once known.
        first_audio_at: Loop time its first frame went out (for the clock's estimate).
        truncated: Its items were truncated (voiced: rewritten) on the server.
        published: Its agent transcript was sent.
        voiced: Its text went to a TTS node (a text reply, spoken by the graph): the sink
            reports on it, as on the model's own audio.
        played_text: Of a voiced reply, the words the listener heard, once known (the
            sink's report, or ``""`` when it was cut before any of it played).
        allow_interruptions: The user may cut it by speaking. ``False`` for a reply said
            from code with ``ReplyRequest(allow_interruptions=False)`` (:mod:`.say`), and
            from the moment a tool protects the reply that called it
            (:mod:`.tool_speech`); it rides on its text chunks and its audio.
    """

    turn_id: int
    items: list[SpokenItem] = field(default_factory=list)
    tool_rounds: int = 0
    round: ToolRound | None = None
    generating: bool = True
    cut: bool = False
    played_out: bool = False
    started: bool = False
    audible: bool = False
    played_s: float | None = None
    first_audio_at: float | None = None
    truncated: bool = False
    published: bool = False
    voiced: bool = False
    played_text: str | None = None
    allow_interruptions: bool = True

    @property
    def audio_s(self) -> float:
        """Seconds of audio received for the whole reply."""
        return sum(item.audio_s for item in self.items)

    @property
    def text(self) -> str:
        """The text of all its items so far, whatever was heard of it."""
        return " ".join(item.text for item in self.items if item.text)

    def item(self, item_id: str) -> SpokenItem:
        """The spoken item ``item_id``, added at the end if it is new."""
        for item in self.items:
            if item.item_id == item_id:
                return item
        item = SpokenItem(item_id)
        self.items.append(item)
        return item

    def cut_points(self, played_s: float) -> list[tuple[str, int]]:
        """Where to truncate the items after ``played_s`` seconds of the reply were played.

        Returns:
            ``(item_id, audio_end_ms)`` for the item that was playing (cut at its played
            milliseconds, rounded down so it never exceeds what the server holds) and for
            every later item that has audio (cut at 0); none for items played whole.
        """
        points: list[tuple[str, int]] = []
        start = 0.0
        for item in self.items:
            end = start + item.audio_s
            if item.audio_s > 0 and played_s < end - 1e-6:
                local = min(max(played_s - start, 0.0), item.audio_s)
                points.append((item.item_id, math.floor(local * 1000 + 1e-6)))
            start = end
        return points

    def heard(self) -> str:
        """The words the listener heard: every item's transcript, cut at ``played_s``.

        A voiced reply that was cut was heard as far as the sink reported; without a
        report, its text so far stands.
        """
        if self.voiced:
            return self.played_text if self.cut and self.played_text is not None else self.text
        parts: list[str] = []
        start = 0.0
        for item in self.items:
            text = item.text
            if self.played_s is None or not self.cut or item.audio_s <= 0:
                share = 1.0
            else:
                share = (self.played_s - start) / item.audio_s
            start += item.audio_s
            if share <= 0:
                break
            if spoken := heard_words(text, share):
                parts.append(spoken)
        return " ".join(parts)

    def text_cuts(self, heard: str) -> list[tuple[SpokenItem, str]]:
        """Which message items to rewrite so that they say only ``heard`` (a voiced reply).

        The words heard are the reply's first words (the TTS node spoke its items in order,
        a space between two), so they are counted off the items in order.

        Returns:
            ``(item, kept)`` for the item the listener stopped in (``kept``: its words
            heard) and for every item after it (``kept`` empty: delete it); none for items
            heard whole.

        Example:
            >>> reply = Reply(1, [SpokenItem("a", transcript=["Let me check."]),
            ...                   SpokenItem("b", transcript=["It is sunny in Paris."])])
            >>> [(item.item_id, kept) for item, kept in reply.text_cuts("Let me check. It is")]
            [('b', 'It is')]
        """
        left = len(heard.split())
        cuts: list[tuple[SpokenItem, str]] = []
        for item in self.items:
            words = item.text.split()
            if left >= len(words) and (words or left):
                left -= len(words)  # heard whole (an empty item before the cut: kept)
                continue
            cuts.append((item, " ".join(words[:left])))
            left = 0
        return cuts


@dataclass(slots=True)
class HistoryEntry:
    """One message of the conversation's text, filled in when its text is known."""

    role: Literal["user", "assistant"]
    text: str = ""


class History:
    """The conversation's messages in the order they happened, the most recent ``limit``.

    An entry is added when its message starts (the user starts speaking, a reply starts),
    so the order is the conversation's even though a user's transcript often arrives after
    the reply to it has started.
    """

    def __init__(self, limit: int = 50) -> None:
        """Start empty; keep at most ``limit`` entries."""
        self._entries: deque[HistoryEntry] = deque(maxlen=limit)

    def add(self, role: Literal["user", "assistant"], text: str = "") -> HistoryEntry:
        """Add an entry (its text may be set later) and return it."""
        entry = HistoryEntry(role, text)
        self._entries.append(entry)
        return entry

    def messages(self) -> list[HistoryEntry]:
        """The entries whose text is known, oldest first."""
        return [entry for entry in self._entries if entry.text]

    def item_events(self) -> list[dict[str, object]]:
        """``conversation.item.create`` events that rebuild the conversation's text."""
        events: list[dict[str, object]] = []
        for entry in self.messages():
            kind = "input_text" if entry.role == "user" else "output_text"
            events.append({
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": entry.role,
                    "content": [{"type": kind, "text": entry.text}],
                },
            })
        return events
