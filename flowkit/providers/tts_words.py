"""Word timings from a synthesiser: how a provider hands them over, and how they reach the text.

A TTS provider that knows when each word is spoken (Piper's phoneme alignments, an API's
word timestamps) attaches :class:`~flowkit.messages.TimedWord` s to the frames it yields,
in the frame's ``userdata`` under :data:`TIMED_WORDS_KEY`, as LiveKit Agents attaches its
timed transcripts to audio frames. The words of one request are the whitespace-separated
words of the text it was given, in order, with seconds counted from the start of that
request's audio; each frame carries the words not given before, at the latest on the frame
in which the word starts (usually all of a sentence's words on its first frame).

The TTS node speaks a sentence after its text transforms (markdown and emoji removed), but
the sink cuts the sentence as written. :class:`WrittenWords` carries the timings of the
spoken words over to the written ones.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from livekit import rtc

from flowkit.messages import TimedWord

__all__ = ["TIMED_WORDS_KEY", "WrittenWords", "attach_timed_words", "timed_words"]

TIMED_WORDS_KEY = "flowkit.timed_words"
"""The ``rtc.AudioFrame.userdata`` key of the words a frame's provider timed."""

_WORD = re.compile(r"\S+")


def attach_timed_words(frame: rtc.AudioFrame, words: Iterable[TimedWord]) -> rtc.AudioFrame:
    """Attach word timings to a frame a provider is about to yield.

    Args:
        frame: The frame.
        words: The words given with this frame (see the module).

    Returns:
        ``frame`` itself.
    """
    frame.userdata[TIMED_WORDS_KEY] = tuple(words)
    return frame


def timed_words(frame: rtc.AudioFrame) -> tuple[TimedWord, ...]:
    """The word timings a provider attached to ``frame`` (none when it attached none)."""
    words = frame.userdata.get(TIMED_WORDS_KEY, ())
    return words if isinstance(words, tuple) else tuple(words)


def _key(word: str) -> str:
    """What two spellings of one word share: its letters and digits, case folded."""
    return "".join(c for c in word.casefold() if c.isalnum())


def _match(written: Sequence[str], spoken: Sequence[str]) -> list[int] | None:
    """For each spoken word's key, the index of the written word (by key) it was made from.

    Written words with no letters or digits (an emoji, a markdown rule) may have been
    dropped by the transforms; any other written word must be spoken, in order. ``None``
    when the two do not line up that way (a transform that rewrites words).

    Args:
        written: The written words' keys (:func:`_key`).
        spoken: The spoken words' keys.
    """
    indices: list[int] = []
    cursor = 0
    for key in spoken:
        while cursor < len(written) and written[cursor] != key:
            if written[cursor]:
                return None  # a written word that was neither spoken nor droppable
            cursor += 1
        if cursor == len(written):
            return None
        indices.append(cursor)
        cursor += 1
    if any(written[cursor:]):
        return None
    return indices


class WrittenWords:
    """Carries a provider's timings of the spoken sentence over to the sentence as written.

    Each written word gets the timing of the spoken word made from it; a written word the
    transforms dropped (an emoji) gets an empty timing where the word before it ended, so
    the written words stay one for one with the timings, in order. When the spoken text's
    words cannot be lined up with the written ones, or the provider's words are not the
    spoken text's, the sentence gets no timings (and the sink estimates, as without them).
    """

    def __init__(self, written: str, spoken: str) -> None:
        """Line up the two texts' words.

        Args:
            written: The sentence as the reply wrote it.
            spoken: The sentence as it was given to the synthesiser.
        """
        self._written = _WORD.findall(written)
        self._spoken = [_key(word) for word in _WORD.findall(spoken)]
        self._index = _match([_key(word) for word in self._written], self._spoken)
        self._taken = 0  # spoken words timed so far
        self._emitted = 0  # written words given out so far
        self._last_end = 0.0

    @property
    def usable(self) -> bool:
        """Whether timings can still be carried over for this sentence."""
        return self._index is not None

    def take(self, words: Sequence[TimedWord]) -> tuple[TimedWord, ...]:
        """The written words' timings for the next spoken words a provider timed.

        Args:
            words: The spoken words the provider gave with one frame, continuing the ones
                before.

        Returns:
            The timings of the written words up to the last of ``words``; empty if there
            are none or the sentence's timings are unusable.
        """
        index = self._index
        if index is None or not words:
            return ()
        out: list[TimedWord] = []
        for word in words:
            at = self._taken
            if at >= len(index) or _key(word.text) != self._spoken[at]:
                self._index = None  # not the spoken text's words: trust none of them
                return ()
            self._taken = at + 1
            target = index[at]
            while self._emitted < target:  # dropped words: empty, where the last one ended
                out.append(TimedWord(self._written[self._emitted], self._last_end,
                                     self._last_end))
                self._emitted += 1
            out.append(TimedWord(self._written[target], word.start, word.end))
            self._emitted = target + 1
            self._last_end = word.end
        return tuple(out)
