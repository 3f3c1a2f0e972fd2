"""The TTS node: the reply's text in, the agent's speech out, a sentence at a time.

The node cuts each reply into sentences itself (:class:`~flowkit.providers.sentences.
SentenceSplitter`) and has each one synthesised as soon as it is complete, in order, so the
agent starts speaking while the LLM still writes. Every frame is tagged with the sentence it
speaks (:class:`~flowkit.messages.AgentAudio`), so the sink can tell what the listener heard;
an end marker follows the reply's last frame. A newer turn, or a flush of the reply, cancels
the provider's request in flight (it is closed, not left running).

With ``prefetch`` linked (from an LLM that generates preemptively), the first sentence of a
reply for a turn not yet committed is synthesised ahead and used if the reply starts with it
(:mod:`flowkit.nodes.tts_prefetch`).

What is synthesised is each sentence passed through the node's text transforms (by default
markdown and emoji removed, :mod:`flowkit.providers.tts_text`); the frames carry the sentence
as written, so transcripts and the chat history keep the reply's text. Word timings the
provider gives (:mod:`flowkit.providers.tts_words`) go with the frames as timings of the
written words, so the sink can tell which words were heard by when they were spoken.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

import pydantic
from livekit import rtc

from flowkit.messages import (
    AgentAudio,
    Interrupt,
    InterruptAction,
    Metrics,
    SpeechPrefetch,
    TextChunk,
)
from flowkit.node import Node, NodeParams
from flowkit.nodes.audio import converted_recording
from flowkit.nodes.tts_prefetch import PrefetchedSpeech, SpeechPrefetcher
from flowkit.ports import In, Out
from flowkit.providers.sentences import SentenceSplitter
from flowkit.providers.tts import BatchTTS, StreamingTTS, TTSMeter
from flowkit.providers.tts_text import (
    DEFAULT_TTS_TEXT_TRANSFORMS,
    TextTransform,
    apply_text_transforms,
)
from flowkit.providers.tts_words import WrittenWords, timed_words

__all__ = ["TTS"]


@dataclasses.dataclass(frozen=True, slots=True)
class _Recorded:
    """Recorded speech of ``text`` (a ``say`` with ``audio``), to play as it is."""

    text: str
    frames: tuple[rtc.AudioFrame, ...]


class _Reply:
    """One turn's synthesis: its sentences, waiting in order, and the task speaking them."""

    def __init__(self, turn_id: int, min_length: int, allow_interruptions: bool) -> None:
        self.turn_id = turn_id
        self.allow_interruptions = allow_interruptions
        self.splitter = SentenceSplitter(min_length)
        # Sentences in order; an int is a playout marker's id, None the end of the text.
        self.sentences: asyncio.Queue[str | int | _Recorded | None] = asyncio.Queue()
        self.text_ended = False
        self.cancelled = False
        self.task: asyncio.Task[None] | None = None
        self.meter: TTSMeter | None = None
        self.characters = 0
        self.prefetched = False  # its first sentence's audio was made ahead

    def push(self, text: str) -> None:
        for sentence in self.splitter.push(text):
            self.sentences.put_nowait(sentence)

    def flush_text(self) -> None:
        """Speak the text held back so far as a sentence, short or unfinished as it is."""
        for sentence in self.splitter.flush():
            self.sentences.put_nowait(sentence)

    def recorded(self, text: str, frames: tuple[rtc.AudioFrame, ...]) -> None:
        """Play ``frames``, the recorded speech of ``text``, after the text so far."""
        self.flush_text()
        self.sentences.put_nowait(_Recorded(text, frames))

    def mark(self, mark: int) -> None:
        """Put playout marker ``mark`` after the text so far, which is spoken now."""
        self.flush_text()
        self.sentences.put_nowait(mark)

    def end_text(self) -> None:
        self.flush_text()
        self.sentences.put_nowait(None)
        self.text_ended = True


class TTS(Node):
    """Text to speech: speaks each sentence of a reply as soon as it is complete.

    Sentences of a turn are synthesised one after the other, in order. Text of a newer turn
    cancels the older turn's synthesis; a ``FLUSH`` interrupt for a turn (``turn_id`` 0: the
    current one) cancels it too, and later text of that turn is dropped, as is text of an
    older turn than the current one. A chunk with ``flush`` has the text held back so far
    spoken at once, even a sentence shorter than ``min_sentence_length`` or one without its
    end (the LLM node flushes before a tool round). A chunk with a ``mark`` puts a playout
    marker among the reply's audio, after the audio of the text before it (a tool's
    ``ctx.wait_for_playout()``). A chunk with ``audio`` (a ``say`` with a recording) has
    that recording played in its place among the reply's sentences, converted to the
    provider's format, its text the frames' sentence. A cancelled reply gets no end marker
    (the sink ends it itself). When a request fails, the error is logged and the reply ends
    with its marker, so the sink reports what was played and the next turn starts afresh.
    ``metrics`` gets one :class:`~flowkit.messages.Metrics` per reply (``ttfa`` from its
    first sentence's request to its first audio), with the reply's ``turn_id``.

    Each sentence goes through ``text_transforms`` before it is synthesised; a sentence that
    comes out empty (a rule line, a lone emoji) is skipped, and a transform that raises skips
    only its sentence (logged with the sentence).
    """

    text: In[TextChunk] = In(default=True, doc="the reply's text, as the LLM writes it")
    interrupt: In[Interrupt] = In(required=False, doc="a FLUSH cancels that reply's speech")
    prefetch: In[SpeechPrefetch] = In(
        required=False, doc="a preemptive reply's text: its first sentence is made ahead"
    )
    audio: Out[AgentAudio] = Out(default=True, doc="the speech, each frame with its sentence")
    metrics: Out[Metrics] = Out(doc="time to first audio, per reply")

    class Params(NodeParams):
        """Parameters of :class:`TTS`."""

        provider: Any
        min_sentence_length: int = pydantic.Field(
            default=20, ge=0, description="shorter sentences are joined with the next"
        )
        text_transforms: tuple[Any, ...] = pydantic.Field(
            default=DEFAULT_TTS_TEXT_TRANSFORMS,
            description="functions from a sentence as written to the sentence as spoken",
        )

    def __init__(
        self,
        provider: BatchTTS | StreamingTTS,
        *,
        min_sentence_length: int = 20,
        text_transforms: Sequence[TextTransform] = DEFAULT_TTS_TEXT_TRANSFORMS,
    ) -> None:
        """Create a TTS node.

        Args:
            provider: A batch synthesiser (one ``synthesize`` call per sentence) or a
                streaming one (one stream per sentence). One with both is used as batch.
            min_sentence_length: Sentences shorter than this many characters are joined
                with the next one (a request per "Ok." costs more latency than it saves).
            text_transforms: Applied in order to each sentence before it is synthesised:
                by default :func:`~flowkit.providers.tts_text.strip_markdown` and
                :func:`~flowkit.providers.tts_text.strip_emoji`; ``()`` speaks the text as
                written.

        Raises:
            TypeError: ``provider`` is neither kind of synthesiser, or a transform is not
                callable.
        """
        if not isinstance(provider, BatchTTS | StreamingTTS):
            raise TypeError(
                f"TTS(provider={provider!r}): expected a synthesiser with synthesize(text) "
                "(flowkit.providers.BatchTTS) or stream() (flowkit.providers.StreamingTTS)"
            )
        for transform in text_transforms:
            if not callable(transform):
                raise TypeError(
                    f"TTS(text_transforms=...): {transform!r} is not callable; give functions "
                    "from a sentence (str) to the sentence to speak, e.g. "
                    "flowkit.providers.strip_markdown"
                )
        super().__init__(
            provider=provider,
            min_sentence_length=min_sentence_length,
            text_transforms=tuple(text_transforms),
        )

    async def run(
        self,
        text: AsyncIterator[TextChunk],
        interrupt: AsyncIterator[Interrupt],
        prefetch: AsyncIterator[SpeechPrefetch],
    ) -> None:
        """Speak each turn's text; after the text ends, finish the last reply."""
        session = _Session(self)
        watchers = [
            self.ctx.create_task(session.watch(interrupt), name="interrupts"),
            self.ctx.create_task(session.read_prefetch(prefetch), name="prefetch"),
        ]
        try:
            async for chunk in text:
                session.take(chunk)
            await session.finish()
        finally:
            for watcher in watchers:
                watcher.cancel()
            session.prefetcher.drop()
            session.cancel_current("the node stopped")


class _Session:
    """The node's state while it runs: the newest reply and which turns are over."""

    def __init__(self, node: TTS) -> None:
        self.node = node
        p = node.params
        assert isinstance(p, TTS.Params)
        self.provider: BatchTTS | StreamingTTS = p.provider
        self.min_length = p.min_sentence_length
        self.transforms: tuple[TextTransform, ...] = p.text_transforms
        self.current: _Reply | None = None
        self.flushed = -1  # text of this turn and older is no longer wanted
        self.prefetcher = SpeechPrefetcher(
            self.min_length, self._spoken, self._synthesize,
            lambda coro: node.ctx.create_task(coro, name="prefetched speech"),
        )

    def take(self, chunk: TextChunk) -> None:
        reply = self.current
        if (reply is not None and chunk.turn_id < reply.turn_id) or chunk.turn_id <= self.flushed:
            self.node.ctx.logger.debug("dropped text of stale turn %d", chunk.turn_id)
            return
        if reply is None or chunk.turn_id > reply.turn_id:
            self.cancel_current("a newer turn")
            reply = self.current = _Reply(
                chunk.turn_id, self.min_length, chunk.allow_interruptions
            )
            reply.task = self.node.ctx.create_task(self.speak(reply), name="speak")
        elif reply.text_ended:
            self.node.ctx.logger.warning(
                "dropped text of turn %d after its final chunk: %r", chunk.turn_id, chunk.text
            )
            return
        elif reply.allow_interruptions and not chunk.allow_interruptions:
            self.protect(reply)
        if chunk.audio is not None:
            reply.recorded(chunk.text, chunk.audio)
        else:
            reply.push(chunk.text)
        if chunk.mark:
            reply.mark(chunk.mark)
        if chunk.final:
            reply.end_text()
        elif chunk.flush:
            reply.flush_text()

    def protect(self, reply: _Reply) -> None:
        """The reply may no longer be interrupted (a tool said so): tell the speaker now.

        Not with the next frame: the reply may be silent for as long as the tool runs, and
        the speaker must not stop what it is playing meanwhile. Sent past the queue's
        back-pressure, as a marker holds no audio.
        """
        reply.allow_interruptions = False
        self.node.audio.send(
            AgentAudio(turn_id=reply.turn_id, frame=None, allow_interruptions=False)
        )

    async def finish(self) -> None:
        """The text ended: speak what is left of the last reply and wait for its audio."""
        reply = self.current
        if reply is None or reply.cancelled or reply.task is None:
            return
        if not reply.text_ended:
            reply.end_text()
        # wait(), not await: a FLUSH may cancel the task, which must not cancel this run.
        await asyncio.wait([reply.task])

    async def read_prefetch(self, prefetch: AsyncIterator[SpeechPrefetch]) -> None:
        async for message in prefetch:
            self.prefetcher.take(message)

    async def watch(self, interrupts: AsyncIterator[Interrupt]) -> None:
        async for event in interrupts:
            if event.action is not InterruptAction.FLUSH:
                continue  # pause and resume are the sink's business: keep synthesising
            reply = self.current
            if not event.force and reply is not None and not reply.allow_interruptions:
                continue  # not forced: a reply that may not be interrupted is made whole
            target = event.turn_id or (reply.turn_id if reply is not None else -1)
            self.flushed = max(self.flushed, target)
            if reply is not None and reply.turn_id <= target:
                self.cancel_current(f"flushed ({event.reason})")

    def cancel_current(self, reason: str) -> None:
        reply = self.current
        if reply is None or reply.cancelled or reply.task is None or reply.task.done():
            return
        reply.cancelled = True
        reply.task.cancel()  # closes the provider's request (see _synthesize)
        self.node.ctx.logger.debug("synthesis of turn %d cancelled: %s", reply.turn_id, reason)
        if reply.meter is not None:
            with contextlib.suppress(RuntimeError):  # the graph closed under us
                self.node.metrics.send(_metrics(reply, cancelled=True))

    async def speak(self, reply: _Reply) -> None:
        node, segment = self.node, 0
        try:
            while (sentence := await reply.sentences.get()) is not None:
                if isinstance(sentence, int):
                    # After the audio of every sentence before it, as the tool asked.
                    await node.audio.put(AgentAudio(
                        turn_id=reply.turn_id, frame=None, segment=segment, mark=sentence,
                        allow_interruptions=reply.allow_interruptions,
                    ))
                    continue
                if isinstance(sentence, _Recorded):
                    # In the voice's format: the sink's output opens at its first frame's.
                    # Converted off the loop, a chunk at a time: a recording can be minutes.
                    provider = self.provider
                    converted = converted_recording(
                        sentence.frames, provider.sample_rate, provider.num_channels
                    )
                    async with contextlib.aclosing(converted):
                        async for frame in converted:
                            await node.audio.put(AgentAudio(
                                turn_id=reply.turn_id, frame=frame, text=sentence.text,
                                segment=segment, allow_interruptions=reply.allow_interruptions,
                            ))
                    segment += 1
                    continue
                spoken = self._spoken(sentence)
                if not spoken:
                    continue
                if reply.meter is None:
                    reply.meter = TTSMeter(self.provider.name, node.name)
                reply.characters += len(spoken)
                ahead = self.prefetcher.claim(spoken) if segment == 0 else None
                reply.prefetched = reply.prefetched or ahead is not None
                # The provider times the words it spoke; the sink cuts the words written.
                words = WrittenWords(sentence, spoken)
                async with contextlib.aclosing(self._frames(spoken, ahead)) as frames:
                    async for frame in frames:
                        reply.meter.frame(frame)
                        await node.audio.put(
                            AgentAudio(
                                turn_id=reply.turn_id, frame=frame, text=sentence,
                                segment=segment,
                                allow_interruptions=reply.allow_interruptions,
                                words=words.take(timed_words(frame)),
                            )
                        )
                segment += 1
        except Exception:
            # One failed reply must not stop the agent: the sink still gets the end marker
            # and reports what was played; the next turn starts afresh.
            node.ctx.logger.exception("synthesis of turn %d failed", reply.turn_id)
        await node.audio.put(
            AgentAudio(
                turn_id=reply.turn_id, frame=None, segment=segment, final=True,
                allow_interruptions=reply.allow_interruptions,
            )
        )
        if reply.meter is not None:
            node.metrics.send(_metrics(reply, cancelled=False))

    async def _frames(
        self, sentence: str, ahead: PrefetchedSpeech | None
    ) -> AsyncGenerator[rtc.AudioFrame, None]:
        """The sentence's audio: made ahead if it was, else synthesised now."""
        if ahead is None:
            async with contextlib.aclosing(self._synthesize(sentence)) as frames:
                async for frame in frames:
                    yield frame
            return
        try:
            async for frame in ahead.replay():
                yield frame
        finally:
            ahead.cancel()  # a reply cut short cuts the request it took over

    def _spoken(self, sentence: str) -> str:
        """The sentence as it is to be synthesised; empty when nothing of it is to be said."""
        try:
            return apply_text_transforms(sentence, self.transforms).strip()
        except Exception:
            # A broken transform costs its sentence, not the reply or the session.
            self.node.ctx.logger.exception("TTS text transform failed on %r", sentence)
            return ""

    async def _synthesize(self, sentence: str) -> AsyncGenerator[rtc.AudioFrame, None]:
        provider = self.provider
        if isinstance(provider, BatchTTS):
            audio = provider.synthesize(sentence)
            try:
                async for frame in audio:
                    yield frame
            finally:
                # Close at once, also on cancellation, so the provider's request ends too.
                aclose = getattr(audio, "aclose", None)
                if aclose is not None:
                    await aclose()
            return
        stream = provider.stream()
        try:
            stream.push_text(sentence)
            stream.end_input()
            async for frame in stream:
                yield frame
        finally:
            await stream.aclose()


def _metrics(reply: _Reply, *, cancelled: bool) -> Metrics:
    assert reply.meter is not None
    metrics = reply.meter.finish(reply.characters, cancelled=cancelled)
    labels = {**metrics.labels, "prefetched": reply.prefetched}
    return dataclasses.replace(metrics, turn_id=reply.turn_id, labels=labels)
