"""Preemptive TTS: the first sentence of a reply synthesised before its turn is committed.

With preemptive generation the LLM answers a :class:`~flowkit.messages.TentativeTurn`
during the endpointing delay and keeps the answer until the turn commits. Its text also goes
out as :class:`~flowkit.messages.SpeechPrefetch`; the TTS node cuts it into sentences as it
would cut the reply, and a :class:`SpeechPrefetcher` synthesises the first one into a cache.
When the committed reply's first sentence is the same text, its audio comes from the cache
(:meth:`PrefetchedSpeech.replay`), so the synthesiser's time to first audio has run during
the delay as well as the model's. Anything else throws the cache away and cancels its
request. Nothing is spoken from the cache but the sentence the committed reply asks for.

Only the first sentence is made ahead: the ones after it are synthesised while it plays, so
making them early would save no latency and waste more work when the turn goes on.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable

from livekit import rtc

from flowkit.messages import SpeechPrefetch
from flowkit.nodes.replay_buffer import ReplayBuffer
from flowkit.providers.sentences import SentenceSplitter
from flowkit.runtime.context import TaskStarter

__all__ = ["PrefetchedSpeech", "SpeechPrefetcher"]

_log = logging.getLogger(__name__)

_Synthesize = Callable[[str], AsyncGenerator[rtc.AudioFrame, None]]


class PrefetchedSpeech:
    """One sentence's audio, being made ahead, read into a buffer until it is claimed.

    Attributes:
        text: The sentence as it is synthesised (after the node's text transforms).
    """

    def __init__(self, text: str, synthesize: _Synthesize, start: TaskStarter) -> None:
        """Start synthesising ``text``.

        Args:
            text: The sentence to synthesise.
            synthesize: The node's synthesis of one sentence (closes its request on exit).
            start: Starts a task owned by the node (so a restart cancels it).
        """
        self.text = text
        self._synthesize = synthesize
        self._frames: ReplayBuffer[rtc.AudioFrame] = ReplayBuffer()
        self._task = start(self._read())

    def cancel(self) -> None:
        """Throw the audio away; the synthesiser's request is closed if it still runs."""
        self._task.cancel()

    def replay(self) -> AsyncIterator[rtc.AudioFrame]:
        """The audio from its first frame: what is buffered at once, then the rest as it comes.

        Raises the synthesiser's error where its stream raised it, as a request made now
        would have.
        """
        return self._frames.replay()

    async def _read(self) -> None:
        error: Exception | None = None
        try:
            async with contextlib.aclosing(self._synthesize(self.text)) as frames:
                async for frame in frames:
                    self._frames.append(frame)
        except Exception as exc:
            error = exc  # raised to the reply that claims it, or never seen
            _log.debug("prefetched synthesis of %r failed", self.text, exc_info=True)
        finally:
            self._frames.end(error)


class SpeechPrefetcher:
    """Reads :class:`~flowkit.messages.SpeechPrefetch` text and makes its first sentence."""

    def __init__(
        self,
        min_sentence_length: int,
        spoken: Callable[[str], str],
        synthesize: _Synthesize,
        start: TaskStarter,
    ) -> None:
        """Create the prefetcher of one TTS node.

        Args:
            min_sentence_length: The node's: sentences are cut as the reply's will be.
            spoken: The node's text transforms, applied to the sentence.
            synthesize: The node's synthesis of one sentence.
            start: Starts a task owned by the node.
        """
        self._min_length = min_sentence_length
        self._spoken = spoken
        self._synthesize = synthesize
        self._start = start
        self._key = 0
        self._splitter: SentenceSplitter | None = None
        self._speech: PrefetchedSpeech | None = None

    def take(self, message: SpeechPrefetch) -> None:
        """Take the next piece of a preemptive request's text."""
        if message.key != self._key:
            self.drop()
            self._key = message.key
            self._splitter = SentenceSplitter(self._min_length)
        if message.discard:
            self.drop()
            return
        splitter = self._splitter
        if splitter is None:
            return  # this request's first sentence is made, or it was dropped
        sentences = splitter.push(message.text)
        if message.final:
            sentences += splitter.flush()
        for sentence in sentences:
            spoken = self._spoken(sentence)
            if spoken:  # as the reply skips a sentence with nothing to say, so does this
                self._splitter = None
                self._speech = PrefetchedSpeech(spoken, self._synthesize, self._start)
                return

    def claim(self, spoken: str) -> PrefetchedSpeech | None:
        """The audio made ahead if it speaks ``spoken``, a reply's first sentence.

        Whatever the answer, the cache is emptied: a reply has started, so audio made for
        any other first sentence will not be wanted.
        """
        speech, self._speech, self._splitter = self._speech, None, None
        if speech is None:
            return None
        if speech.text == spoken:
            return speech
        speech.cancel()
        _log.debug("prefetched %r, but the reply starts %r", speech.text, spoken)
        return None

    def drop(self) -> None:
        """Throw away what is being made ahead."""
        if self._speech is not None:
            self._speech.cancel()
        self._speech = self._splitter = None
