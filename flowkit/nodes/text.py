"""Text nodes: choose, check and order transcripts and replies between the voice nodes.

- :class:`TranscriptChooser` keeps the better of two transcripts of one utterance (two
  recognisers on the same audio, side by side).
- :class:`ReplyGuard` checks each reply of the LLM before it is spoken and replaces a reply
  that fails the check with a safe one.
- :class:`TranscriptTimeline` merges several transcript streams (one per speaker) into one,
  ordered by when the words were spoken rather than by when recognition finished.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

import pydantic

from flowkit.messages import TextChunk, Transcript
from flowkit.node import Node, NodeParams
from flowkit.ports import In, Out

__all__ = [
    "PHONE_NUMBER",
    "ReplyGuard",
    "TranscriptChooser",
    "TranscriptTimeline",
    "by_confidence",
]

PHONE_NUMBER = r"\+?\d[\d\s().-]{6,}\d"
"""A pattern for :class:`ReplyGuard`: a phone number (8 or more digits and separators)."""


def by_confidence(transcript: Transcript) -> float:
    """The recogniser's confidence; a transcript without one scores ``0``."""
    return transcript.confidence if transcript.confidence is not None else 0.0


# ------------------------------------------------------------------------ TranscriptChooser


@dataclass(slots=True)
class _Held:
    transcript: Transcript
    side: int
    timer: asyncio.TimerHandle | None = None


class TranscriptChooser(Node):
    """Keeps the better of two transcripts of one utterance, from two recognisers.

    Final transcripts from ``first`` and ``second`` are paired when their times overlap
    (``start_time`` to ``end_time``, stream seconds; transcripts without times pair in
    arrival order), and the one with the higher ``score`` is sent on, ``first`` winning a
    tie. A transcript whose partner has not come within ``wait`` seconds is sent alone, so
    one slow or failed recogniser delays the conversation by at most ``wait``. Interim
    transcripts of ``first`` pass through at once (they say that the user is speaking);
    those of ``second`` are dropped.
    """

    first: In[Transcript] = In(default=True, doc="the first recogniser's transcripts")
    second: In[Transcript] = In(doc="the second recogniser's transcripts")
    transcripts: Out[Transcript] = Out(default=True, doc="the better final of each utterance")

    class Params(NodeParams):
        """Parameters of :class:`TranscriptChooser`."""

        wait: float = pydantic.Field(1.0, ge=0.0, description="seconds to wait for a partner")
        score: Callable[[Transcript], float] | None = None
        slack: float = pydantic.Field(
            0.1, ge=0.0, description="seconds by which two utterances may miss and still pair"
        )

    def __init__(
        self,
        *,
        wait: float = 1.0,
        score: Callable[[Transcript], float] | None = None,
        slack: float = 0.1,
    ) -> None:
        """Create a chooser.

        Args:
            wait: Seconds a transcript waits for its partner from the other recogniser.
            score: Higher is better; ``None`` for :func:`by_confidence` (a function's
                repr would make the graph's spec differ from run to run).
            slack: Seconds by which two utterances' times may fail to overlap and still be
                taken as one (recognisers cut utterances a little differently).
        """
        super().__init__(wait=wait, score=score, slack=slack)
        self._held: list[_Held] = []

    async def run(
        self, first: AsyncIterator[Transcript], second: AsyncIterator[Transcript]
    ) -> None:
        """Pair and choose until both inputs end; then send what is still held, in order."""
        try:
            await asyncio.gather(self._read(first, 0), self._read(second, 1))
            for held in sorted(self._held, key=lambda h: h.transcript.start_time):
                self.transcripts.send(held.transcript)
        finally:
            for held in self._held:
                if held.timer is not None:
                    held.timer.cancel()
            self._held = []

    async def _read(self, transcripts: AsyncIterator[Transcript], side: int) -> None:
        async for transcript in transcripts:
            if not transcript.final:
                if side == 0:
                    self.transcripts.send(transcript)
                continue
            partner = self._partner(transcript, side)
            if partner is None:
                held = _Held(transcript, side)
                wait: float = self.params.wait  # type: ignore[attr-defined]
                held.timer = asyncio.get_running_loop().call_later(wait, self._alone, held)
                self._held.append(held)
                continue
            self._held.remove(partner)
            if partner.timer is not None:
                partner.timer.cancel()
            if side == 0:
                self.transcripts.send(self._better(transcript, partner.transcript))
            else:
                self.transcripts.send(self._better(partner.transcript, transcript))

    def _partner(self, transcript: Transcript, side: int) -> _Held | None:
        slack: float = self.params.slack  # type: ignore[attr-defined]
        for held in self._held:  # oldest first
            if held.side == side:
                continue
            other = held.transcript
            untimed = transcript.end_time <= 0 or other.end_time <= 0
            if untimed or (
                transcript.start_time <= other.end_time + slack
                and other.start_time <= transcript.end_time + slack
            ):
                return held
        return None

    def _better(self, first: Transcript, second: Transcript) -> Transcript:
        score: Callable[[Transcript], float] = (
            self.params.score or by_confidence  # type: ignore[attr-defined]
        )
        return second if score(second) > score(first) else first

    def _alone(self, held: _Held) -> None:
        if held in self._held:
            self._held.remove(held)
            self.ctx.logger.debug("no partner for %r within the wait", held.transcript.text)
            self.transcripts.send(held.transcript)


# ------------------------------------------------------------------------------ ReplyGuard


@dataclass(slots=True)
class _GuardedReply:
    """What :class:`ReplyGuard` holds of the reply it is checking."""

    turn_id: int
    held: list[TextChunk] = field(default_factory=list)
    # Passed on at a checkpoint already: later checks judge the new text in its context.
    released: str = ""
    # Replaced already: the rest of it is never spoken.
    rejected: bool = False


class ReplyGuard(Node):
    """Checks each reply before it is spoken; a reply that fails is replaced by a safe one.

    The chunks of a reply (one ``turn_id``) are held and the reply's text is checked: it
    fails when it contains one of ``banned_words`` (whole words, any case), matches one of
    ``patterns`` (regular expressions, e.g. :data:`PHONE_NUMBER`), or ``check(text)``
    returns ``False``. A reply that passes goes on as it came (the same chunks); one that
    fails is replaced by ``fallback``, and its text is sent, as one chunk, on ``rejected``.

    The check runs at the reply's final chunk and, with ``release_at_flush`` (the default),
    at each chunk with ``flush`` too: such a chunk asks for the text so far to be spoken
    now (the LLM node flushes before a tool round and after what a tool says with
    ``ctx.say``), so that is a checkpoint. The reply's text so far (what was passed on
    before and what is held) is checked, and if it passes the held chunks go on at once,
    in order, the flush chunk with them, so the caller hears "Let me check that." and "One
    moment." while the tool runs; what follows is held until the next checkpoint. Every
    check sees the reply from its start, so a banned word is judged in context, and
    ``check`` is called once per checkpoint: it must be a test of the text alone.

    A reply that fails before anything of it was passed on is replaced whole, as if it had
    never been written. One that fails after a checkpoint passed cannot be taken back: the
    words passed on are spoken, ``fallback`` replaces the rest (it is sent where the
    failing text would have been, after a space if the spoken text ends without one, and
    ends the reply), and ``rejected`` carries all of the reply's text up to the failure,
    the spoken part included. Either way the replacement has the reply's ``turn_id`` and
    ``allow_interruptions`` and ends with a final chunk, and the reply's later chunks are
    dropped.

    Checkpoints have a price: a pattern that spans one is judged only at the next check,
    so a phone number split by a tool round can have its first half spoken before the
    whole number fails the reply. ``release_at_flush=False`` holds every reply whole until
    its final chunk, as a strict guard must, and as a ``check`` must that only a whole
    reply can pass (one that asks for a closing question or a disclaimer would fail every
    reply at its first checkpoint): no word of a bad reply is ever spoken, and the
    caller hears nothing of a reply, tool speech included, until the LLM's last token.

    Without flushes (a reply without tool rounds) the first audio waits for the last
    token either way. Chunks of an older turn than the newest one seen are dropped: the
    LLM abandoned that reply.
    """

    text: In[TextChunk] = In(default=True, doc="the LLM's reply, streamed")
    checked: Out[TextChunk] = Out(default=True, doc="the reply, or its safe replacement")
    rejected: Out[TextChunk] = Out(
        doc="replies that failed the check, up to where they failed, one chunk each"
    )

    class Params(NodeParams):
        """Parameters of :class:`ReplyGuard`."""

        fallback: str = "Sorry, I can't help with that."
        banned_words: tuple[str, ...] = ()
        patterns: tuple[str, ...] = ()
        check: Callable[[str], bool] | None = None
        release_at_flush: bool = True

        @pydantic.field_validator("patterns")
        @classmethod
        def _patterns_compile(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
            for pattern in patterns:
                try:
                    re.compile(pattern)
                except re.error as error:
                    raise ValueError(
                        f"pattern {pattern!r} is not a regular expression: {error}"
                    ) from None
            return patterns

    def __init__(
        self,
        *,
        fallback: str = "Sorry, I can't help with that.",
        banned_words: Sequence[str] = (),
        patterns: Sequence[str] = (),
        check: Callable[[str], bool] | None = None,
        release_at_flush: bool = True,
    ) -> None:
        """Create a reply guard.

        Args:
            fallback: What is spoken instead of a reply that fails.
            banned_words: Words a reply must not contain.
            patterns: Regular expressions a reply must not match.
            check: Any other test: ``False`` fails the reply. Called with the reply's text
                so far at each checkpoint, and with the whole reply at its end.
            release_at_flush: Check the text so far at each flushed chunk and pass it on
                if it passes, so that what the LLM asked to be spoken now (before a tool
                round, a tool's own words) is heard now. ``False`` holds each reply whole
                until its final chunk: never a word of a bad reply, at the cost of silence
                while tools run.
        """
        super().__init__(
            fallback=fallback,
            banned_words=tuple(banned_words),
            patterns=tuple(patterns),
            check=check,
            release_at_flush=release_at_flush,
        )
        words = [re.escape(w) for w in banned_words]
        self._banned = re.compile(rf"\b(?:{'|'.join(words)})\b", re.I) if words else None
        self._patterns = [re.compile(p) for p in patterns]

    def passes(self, text: str) -> bool:
        """Whether ``text`` passes the guard's checks."""
        if self._banned is not None and self._banned.search(text):
            return False
        if any(p.search(text) for p in self._patterns):
            return False
        check: Callable[[str], bool] | None = self.params.check  # type: ignore[attr-defined]
        return check is None or bool(check(text))

    async def run(self, text: AsyncIterator[TextChunk]) -> None:
        """Hold each reply to its next checkpoint (a flush, its end); send it or its stand-in."""
        at_flush: bool = self.params.release_at_flush  # type: ignore[attr-defined]
        reply: _GuardedReply | None = None
        newest = 0
        async for chunk in text:
            if chunk.turn_id < newest:
                continue
            if chunk.turn_id > newest:
                newest = chunk.turn_id
                reply = None  # an older reply never finished: the LLM abandoned it
            if reply is None:
                reply = _GuardedReply(chunk.turn_id)
            if reply.rejected:
                # Its replacement is out, final chunk included: nothing more of it is spoken.
                if chunk.final:
                    reply = None
                continue
            reply.held.append(chunk)
            if chunk.final:
                self._checkpoint(reply)
                reply = None  # more text of this turn would be a reply of its own, as before
            elif chunk.flush and at_flush:
                self._checkpoint(reply)

    def _checkpoint(self, reply: _GuardedReply) -> None:
        """Check the reply so far; pass on what is held, or replace the rest of the reply."""
        text = reply.released + "".join(c.text for c in reply.held)
        if self.passes(text):
            for chunk in reply.held:
                self.checked.send(chunk)
            reply.released, reply.held = text, []
            return
        last = reply.held[-1]
        turn_id = reply.turn_id
        allow = last.allow_interruptions  # the replacement is spoken as the reply was
        fallback: str = self.params.fallback  # type: ignore[attr-defined]
        if reply.released:
            self.ctx.logger.info(
                "reply of turn %d failed the check after %d characters of it were passed on;"
                " the rest replaced", turn_id, len(reply.released),
            )
            # The fallback follows words already spoken: keep it from running into them.
            if not reply.released[-1:].isspace():
                fallback = " " + fallback
        else:
            self.ctx.logger.info("reply of turn %d failed the check; replaced", turn_id)
        self.rejected.send(
            TextChunk(turn_id=turn_id, text=text, final=True, allow_interruptions=allow)
        )
        self.checked.send(TextChunk(turn_id=turn_id, text=fallback, allow_interruptions=allow))
        self.checked.send(
            TextChunk(turn_id=turn_id, text="", final=True, allow_interruptions=allow)
        )
        reply.held, reply.rejected = [], True


# ---------------------------------------------------------------------- TranscriptTimeline


@dataclass(order=True, slots=True)
class _Entry:
    start: float
    seq: int
    transcript: Transcript = field(compare=False)
    timer: asyncio.TimerHandle | None = field(default=None, compare=False)
    sent: bool = field(default=False, compare=False)


class TranscriptTimeline(Node):
    """Merges transcript streams (one per speaker) into one, in the order words were spoken.

    Recognisers answer with different delays, so arrival order is not speaking order. Each
    final transcript is held for ``hold`` seconds; when it is released, every held transcript
    that started earlier goes out before it. The output is therefore in ``start_time`` order
    whenever recognition delays differ by less than ``hold``; a transcript later than that
    goes out at once, out of order, rather than never. Link every stream into
    ``transcripts`` (several edges merge); the speaker is each transcript's ``speaker``.
    """

    transcripts: In[Transcript] = In(default=True, doc="transcripts of every speaker")
    timeline: Out[Transcript] = Out(default=True, doc="final transcripts in speaking order")

    class Params(NodeParams):
        """Parameters of :class:`TranscriptTimeline`."""

        hold: float = pydantic.Field(1.0, ge=0.0, description="seconds of reordering window")

    def __init__(self, *, hold: float = 1.0) -> None:
        """Create a timeline.

        Args:
            hold: Seconds each transcript waits for earlier ones that are still being
                recognised.
        """
        super().__init__(hold=hold)

    async def run(self, transcripts: AsyncIterator[Transcript]) -> None:
        """Order the final transcripts; at the end of the input, send what is held."""
        loop = asyncio.get_running_loop()
        hold: float = self.params.hold  # type: ignore[attr-defined]
        held: list[_Entry] = []
        counter = itertools.count()

        def send_first() -> None:
            entry = heapq.heappop(held)
            entry.sent = True
            if entry.timer is not None:
                entry.timer.cancel()
            self.timeline.send(entry.transcript)

        def release(entry: _Entry) -> None:
            # Sent already with a later one: what is held now arrived after it, and waits
            # for its own timer.
            while not entry.sent and held and held[0] <= entry:
                send_first()

        try:
            async for transcript in transcripts:
                if not transcript.final or not transcript.text.strip():
                    continue
                entry = _Entry(transcript.start_time, next(counter), transcript)
                heapq.heappush(held, entry)
                entry.timer = loop.call_later(hold, release, entry)
            while held:
                send_first()
        finally:
            for entry in held:
                if entry.timer is not None:
                    entry.timer.cancel()
