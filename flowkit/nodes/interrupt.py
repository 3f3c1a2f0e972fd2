"""Barge-in: decides when user speech interrupts the agent's reply, and when it was false.

The agent speaks reply ``T`` from the sink's ``Playout(STARTED)`` of ``T`` until its
``FINISHED`` or ``INTERRUPTED`` (a ``PAUSED`` reply is still ``T``). User speech that starts
while it speaks, lasts ``min_interruption_duration`` (the VAD's speech so far counts) and
brings ``min_interruption_words`` transcribed words is a barge-in:

1. ``Interrupt(PAUSE, T)``; then, within ``false_interruption_timeout``,
2. words transcribed since the speech started → ``Interrupt(FLUSH, T, "barge_in")``
   (sent right after the pause when the words came before it), or
3. no words → ``Interrupt(RESUME, T, "false_interruption")``.

With ``resume_false_interruption=False`` or ``false_interruption_timeout=None`` the first
step is a ``FLUSH``. A reply whose playout reports say ``allow_interruptions=False`` (asked
for with ``ReplyRequest(allow_interruptions=False)``) is never interrupted, and neither is
any reply with the node's ``allow_interruptions=False``; a ``PROTECTED`` report (a tool's
``ctx.disallow_interruptions()``) makes the reply such a reply from then on, resuming it if
it was paused for a barge-in still undecided. A flushed or finished reply is
never interrupted again; a resumed one may be. The node ends when ``vad`` and
``transcripts`` end (``playout`` is a feedback input and is not waited for); a pause still
undecided then is resumed, since no words can come.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, TypeVar

import pydantic

from flowkit.messages import (
    Interrupt,
    InterruptAction,
    Playout,
    PlayoutEvent,
    Transcript,
    VADEvent,
    VADEventKind,
)
from flowkit.node import Node, NodeParams
from flowkit.ports import In, Out

__all__ = ["Interruptions"]

T = TypeVar("T")


class Interruptions(Node):
    """Barge-in detection: pauses, flushes or resumes the agent's reply as the user speaks."""

    vad: In[VADEvent] = In(default=True, doc="start and end of the user's speech")
    transcripts: In[Transcript] = In(required=False, doc="the user's transcripts (words)")
    playout: In[Playout] = In(feedback=True, doc="the sink's reports: is the agent speaking")
    interrupts: Out[Interrupt] = Out(doc="pause, flush or resume the reply being played")

    class Params(NodeParams):
        """Parameters of :class:`Interruptions`."""

        allow_interruptions: bool = True
        min_interruption_duration: float = pydantic.Field(0.5, ge=0.0)
        min_interruption_words: int = pydantic.Field(0, ge=0)
        false_interruption_timeout: float | None = pydantic.Field(2.0, gt=0.0)
        resume_false_interruption: bool = True

    def __init__(
        self,
        *,
        allow_interruptions: bool = True,
        min_interruption_duration: float = 0.5,
        min_interruption_words: int = 0,
        false_interruption_timeout: float | None = 2.0,
        resume_false_interruption: bool = True,
    ) -> None:
        """Create the barge-in detector.

        Args:
            allow_interruptions: ``False`` never interrupts.
            min_interruption_duration: Seconds of user speech needed to interrupt.
            min_interruption_words: Transcribed words needed too (``0``: none).
            false_interruption_timeout: Seconds a pause waits for words before resuming;
                ``None`` flushes at once instead of pausing.
            resume_false_interruption: ``False`` flushes at once instead of pausing.
        """
        super().__init__(
            allow_interruptions=allow_interruptions,
            min_interruption_duration=min_interruption_duration,
            min_interruption_words=min_interruption_words,
            false_interruption_timeout=false_interruption_timeout,
            resume_false_interruption=resume_false_interruption,
        )

    async def run(
        self,
        vad: AsyncIterator[VADEvent],
        transcripts: AsyncIterator[Transcript],
        playout: AsyncIterator[Playout],
    ) -> None:
        """Watch the three inputs; end when ``vad`` and ``transcripts`` have ended."""
        params = self.params
        assert isinstance(params, Interruptions.Params)
        detector = _BargeIn(self, params)
        watcher = self.ctx.create_task(
            detector.read(playout, detector.on_playout), name="playout"
        )
        words = self.ctx.create_task(
            detector.read(transcripts, detector.on_transcript), name="transcripts"
        )
        try:
            async for event in vad:
                detector.on_vad(event)
            await asyncio.wait([words])
            detector.settle()
        finally:
            watcher.cancel()
            words.cancel()
            detector.close()


class _Phase(enum.Enum):
    IDLE = "idle"  # no barge-in under way
    CANDIDATE = "candidate"  # user speech while the agent speaks: waiting for length, words
    PAUSED = "paused"  # we paused the reply: waiting for words, or the timeout
    DONE = "done"  # we flushed the reply: nothing more to do for it


class _BargeIn:
    """The state of one run (a restart begins afresh)."""

    def __init__(self, node: Interruptions, params: Interruptions.Params) -> None:
        self.node = node
        self.params = params
        self.loop = asyncio.get_running_loop()
        self.reply: int | None = None  # the turn id of the reply being played
        self.reply_interruptible = True  # its ReplyRequest did not say allow_interruptions=False
        self.phase = _Phase.IDLE
        self.user_speaking = False
        self.speech_started_at = 0.0
        self.long_enough = False
        self.final_words = 0  # in final transcripts since the speech started
        self.interim_words = 0  # in the latest interim (replaced by the next one)
        self.timer: asyncio.Task[None] | None = None

    @staticmethod
    async def read(inp: AsyncIterator[T], handle: Callable[[T], None]) -> None:
        async for item in inp:
            handle(item)

    @property
    def words(self) -> int:
        return self.final_words + self.interim_words

    # -- inputs ---------------------------------------------------------------------------

    def on_vad(self, event: VADEvent) -> None:
        if event.kind is VADEventKind.START_OF_SPEECH:
            self.user_speaking = True
            self.speech_started_at = self.loop.time() - event.speech_duration
            self.final_words = self.interim_words = 0
            if self.phase is _Phase.IDLE:
                self._consider()
            return
        self.user_speaking = False
        if self.phase is _Phase.CANDIDATE and not self.long_enough:
            self._reset()  # a blip: too short to be a barge-in

    def on_transcript(self, transcript: Transcript) -> None:
        count = len(transcript.text.split())
        if transcript.final:
            self.final_words += count
            self.interim_words = 0
        else:
            self.interim_words = count
        if self.phase is _Phase.CANDIDATE:
            self._try_interrupt()
        elif self.phase is _Phase.PAUSED and count:
            self._flush("barge_in")

    def on_playout(self, report: Playout) -> None:
        event = report.event
        if event is PlayoutEvent.STARTED:
            self._reset()
            self.reply = report.turn_id
            self.reply_interruptible = report.allow_interruptions
            # The user may already be talking over the start of the reply.
            if self.user_speaking:
                self._consider()
        elif event is PlayoutEvent.RESUMED and report.turn_id != self.reply:
            self._reset()
            self.reply = report.turn_id
            self.reply_interruptible = report.allow_interruptions
        elif event is PlayoutEvent.PROTECTED and report.turn_id == self.reply:
            self.reply_interruptible = False
            if self.phase is _Phase.PAUSED:
                # Paused for a barge-in still undecided: the reply may no longer be cut.
                self._send(InterruptAction.RESUME, "protected")
            if self.phase is not _Phase.DONE:
                self._reset()
        elif event in (PlayoutEvent.FINISHED, PlayoutEvent.INTERRUPTED) and (
            report.turn_id == self.reply
        ):
            self._reset()
            self.reply = None

    def settle(self) -> None:
        """The user's inputs ended: no words can come, so a pause was a false one."""
        if self.phase is _Phase.PAUSED:
            self._resume()

    def close(self) -> None:
        self._cancel_timer()

    # -- decisions ------------------------------------------------------------------------

    def _consider(self) -> None:
        if (
            self.reply is None
            or not self.reply_interruptible
            or not self.params.allow_interruptions
        ):
            return
        self.phase = _Phase.CANDIDATE
        self.long_enough = False
        when = self.speech_started_at + self.params.min_interruption_duration
        self._start_timer(self._long_enough_at(when))

    async def _long_enough_at(self, when: float) -> None:
        delay = when - self.loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        self.timer = None
        self.long_enough = True
        self._try_interrupt()

    def _try_interrupt(self) -> None:
        if not self.long_enough or self.words < self.params.min_interruption_words:
            return
        params = self.params
        if not params.resume_false_interruption or params.false_interruption_timeout is None:
            self._flush("barge_in")
            return
        self._send(InterruptAction.PAUSE, "barge_in")
        self.phase = _Phase.PAUSED
        if self.words:
            self._flush("barge_in")
            return
        self._start_timer(self._resume_after(params.false_interruption_timeout))

    async def _resume_after(self, timeout: float) -> None:
        await asyncio.sleep(timeout)
        self.timer = None
        self._resume()

    def _resume(self) -> None:
        self._send(InterruptAction.RESUME, "false_interruption")
        # The same reply plays on and may be interrupted again by new speech.
        self._reset()

    def _flush(self, reason: str) -> None:
        self._cancel_timer()
        self._send(InterruptAction.FLUSH, reason)
        self.phase = _Phase.DONE

    def _reset(self) -> None:
        self._cancel_timer()
        self.phase = _Phase.IDLE
        self.long_enough = False

    def _send(self, action: InterruptAction, reason: str) -> None:
        assert self.reply is not None
        self.node.interrupts.send(Interrupt(turn_id=self.reply, action=action, reason=reason))

    def _start_timer(self, coro: Coroutine[Any, Any, None]) -> None:
        self._cancel_timer()
        self.timer = self.node.ctx.create_task(coro, name="interrupt-timer")

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
