"""Telling when an automated phone system says the same thing again: TF-IDF over its transcripts.

A phone menu (IVR) that did not get the key or word it waits for plays its prompt again, and
an agent that answers each repetition the same way goes round with it. LiveKit Agents'
``ivr_detection`` spots that with a TF-IDF loop detector; :class:`TranscriptLoopDetector`
applies the same rule:

- it keeps the last ``window`` final transcripts of the other side;
- each new one is compared, by the cosine of TF-IDF vectors, with those before it in the
  window; one whose closest earlier transcript is more alike than ``similarity`` counts as a
  repeat, any other transcript starts the count again;
- ``repeats`` repeats in a row are a loop.

The vectors are computed here with numpy, as scikit-learn's ``TfidfVectorizer`` computes them
by default (raw term counts, smoothed inverse document frequency ``ln((1 + n) / (1 + df)) +
1``, each vector scaled to unit length), on at most ``window`` short strings: scikit-learn
and scipy would add 45 MB of wheels to an install for that (scikit-learn 1.9.1 9.3 MB, scipy
1.17.1 35.3 MB, for CPython 3.11 on x86-64 Linux). One difference, on purpose: words of
one character count (scikit-learn's default pattern drops them), because in a phone menu the
digit is what tells "press 1 for sales" from "press 2 for support".
"""

from __future__ import annotations

import re
from collections import deque

import numpy as np
import numpy.typing as npt

__all__ = ["TranscriptLoopDetector"]

_WORD = re.compile(r"\w+")


class TranscriptLoopDetector:
    """Counts transcripts that repeat an earlier one, by TF-IDF cosine similarity.

    Args:
        window: How many recent transcripts a new one is compared with (itself included).
        similarity: A transcript whose cosine similarity with an earlier one in the window is
            above this is a repeat (0 to 1).
        repeats: Repeats in a row that make a loop.

    Raises:
        ValueError: A value is out of range (the message says which and what it must be).
    """

    def __init__(self, window: int = 20, similarity: float = 0.85, repeats: int = 3) -> None:
        if window < 2:
            raise ValueError(
                f"window must be at least 2 transcripts (a new one and one to compare it "
                f"with), got {window}"
            )
        if not 0.0 <= similarity <= 1.0:
            raise ValueError(f"similarity must be between 0 and 1, got {similarity}")
        if repeats < 1:
            raise ValueError(f"repeats must be at least 1, got {repeats}")
        self.similarity = similarity
        self.repeats = repeats
        self._texts: deque[list[str]] = deque(maxlen=window)
        self._in_a_row = 0

    @property
    def in_a_row(self) -> int:
        """Repeats in a row so far."""
        return self._in_a_row

    def add(self, text: str) -> bool:
        """Take the next final transcript; ``True`` when it completes a loop.

        A transcript without a word (noise the recogniser wrote as punctuation) is neither a
        repeat nor a break: it is left out.
        """
        words = _WORD.findall(text.lower())
        if not words:
            return False
        self._texts.append(words)
        if len(self._texts) < 2:
            return False
        if float(np.max(_similarity_to_last(list(self._texts)))) > self.similarity:
            self._in_a_row += 1
        else:
            self._in_a_row = 0
        return self._in_a_row >= self.repeats

    def reset(self) -> None:
        """Forget every transcript and the count (after the agent has acted on a loop)."""
        self._texts.clear()
        self._in_a_row = 0


def _similarity_to_last(documents: list[list[str]]) -> npt.NDArray[np.float64]:
    """Cosine similarity of the last document's TF-IDF vector with each one before it."""
    vocabulary: dict[str, int] = {}
    for words in documents:
        for word in words:
            vocabulary.setdefault(word, len(vocabulary))
    counts = np.zeros((len(documents), len(vocabulary)))
    for row, words in enumerate(documents):
        for word in words:
            counts[row, vocabulary[word]] += 1.0
    n = len(documents)
    document_frequency = np.count_nonzero(counts, axis=0)
    weights = counts * (np.log((1.0 + n) / (1.0 + document_frequency)) + 1.0)
    weights /= np.linalg.norm(weights, axis=1, keepdims=True)
    similarity: npt.NDArray[np.float64] = weights[:-1] @ weights[-1]
    return similarity
