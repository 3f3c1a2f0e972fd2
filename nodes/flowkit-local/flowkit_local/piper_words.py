"""Word timings from Piper's phoneme alignments.

Piper (1.8) can report how many audio samples each phoneme of a sentence took, once its
model has the alignment output (``piper.patch_voice_with_alignment``, applied in memory at
load). Its phonemiser, espeak-ng, separates words with a space phoneme, so a sentence's
phonemes fall into phoneme words, each with a start and an end in the audio.

A phoneme word is not always one word of the text: ``23`` is spoken ``twenty three``, and
``Dr.`` may end a sentence of its own. :class:`PiperWordTimer` phonemises each word of the
text alone to learn how many phoneme words it becomes, and accepts that count only when
their total is what the whole text phonemises to; a text word then spans its phoneme words,
from the start of the first to the end of the last. Otherwise the text gets no timings.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from typing import Any

from flowkit.messages import TimedWord

__all__ = ["PiperWordTimer", "phoneme_words"]

_BOS, _EOS, _SPACE = "^", "$", " "


def _is_punctuation(phoneme: str) -> bool:
    return all(unicodedata.category(c).startswith("P") for c in phoneme)


def phoneme_words(phonemes: Sequence[str]) -> int:
    """How many words a sentence's phonemes hold: runs between spaces with a sound in them.

    Args:
        phonemes: Phonemes as Piper's phonemiser gives them (no ``^`` / ``$`` markers).

    Returns:
        The count; punctuation alone (a pause) is not a word.
    """
    count, sounding = 0, False
    for phoneme in (*phonemes, _SPACE):
        if phoneme == _SPACE:
            count += sounding
            sounding = False
        elif not _is_punctuation(phoneme):
            sounding = True
    return count


class PiperWordTimer:
    """Times the words of one text from the alignments of the sentences Piper makes of it.

    Feed it each sentence's alignments in order with :meth:`sentence`; it returns the text's
    words whose last phoneme word was in that sentence, timed from the start of the text's
    audio.
    """

    def __init__(self, text: str, phonemize: Callable[[str], list[list[str]]]) -> None:
        """Learn how many phoneme words each word of ``text`` becomes.

        Args:
            text: What is to be synthesised.
            phonemize: The voice's phonemiser (``PiperVoice.phonemize``): text to phonemes,
                a list per sentence.
        """
        self._words = text.split()
        counts = [sum(phoneme_words(s) for s in phonemize(word)) for word in self._words]
        whole = sum(phoneme_words(s) for s in phonemize(text))
        # A word that is not spoken at all (a lone dash) gets an empty timing beside the
        # next one; when the counts do not add up, the words cannot be told apart: no timings.
        self._counts: list[int] | None = counts if sum(counts) == whole else None
        self._word = 0  # the text word being timed
        self._heard = 0  # its phoneme words seen so far
        self._start = 0.0  # where its first phoneme word started
        self._offset = 0  # samples of the text's audio before this sentence's

    @property
    def usable(self) -> bool:
        """Whether the text's words line up with its phoneme words (see the module)."""
        return self._counts is not None

    def sentence(self, alignments: Sequence[Any] | None, samples: int,
                 sample_rate: int) -> list[TimedWord]:
        """The words completed by one sentence of the text's audio.

        Args:
            alignments: The sentence's ``piper.PhonemeAlignment`` list (``phoneme``,
                ``num_samples``, with the ``^`` and ``$`` markers), or ``None`` when Piper
                could not align it; then this and every later sentence get no timings.
            samples: The sentence's audio length in samples.
            sample_rate: The voice's rate.

        Returns:
            The timed words, in order; empty when none completed or timing is off.
        """
        counts = self._counts
        if counts is None or alignments is None:
            self._counts = None
            return []
        timed: list[TimedWord] = []
        at = self._offset
        spans: list[tuple[int, int]] = []  # each phoneme word's first and last sample
        first = last = -1
        for alignment in alignments:
            phoneme, width = alignment.phoneme, int(alignment.num_samples)
            if phoneme in (_SPACE, _EOS):
                if first >= 0:
                    spans.append((first, last))
                first = last = -1
            elif phoneme != _BOS and not _is_punctuation(phoneme):
                if first < 0:
                    first = at
                last = at + width
            at += width
        if first >= 0:
            spans.append((first, last))
        for begin, end in spans:
            while self._word < len(counts) and counts[self._word] == 0:
                timed.append(self._timed(self._word, begin, begin, sample_rate))
                self._word += 1
            if self._word >= len(counts):
                self._counts = None  # more phoneme words than the text has: stop timing
                return []
            if self._heard == 0:
                self._start = begin
            self._heard += 1
            if self._heard == counts[self._word]:
                timed.append(self._timed(self._word, self._start, end, sample_rate))
                self._word += 1
                self._heard = 0
        self._offset += samples
        return timed

    def _timed(self, index: int, begin: float, end: float, sample_rate: int) -> TimedWord:
        return TimedWord(self._words[index], begin / sample_rate, end / sample_rate)
