"""Word error rate for the local-model tests: word edit distance over reference words."""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["normalize", "wer", "word_errors"]


# Whisper writes small numbers either way ("two" or "2"); neither is an error.
_NUMBERS = [
    "zero", "one", "two", "three", "four", "five", "six",
    "seven", "eight", "nine", "ten", "eleven", "twelve",
]


# Whisper writes "the weather's" where the speaker said "the weather is", and the other way
# round; spelt out on both sides, neither is an error.
_CONTRACTIONS = re.compile(r"n't\b|'re\b|'ll\b|'ve\b|'m\b|'d\b|'s\b")
_SPELT_OUT = {
    "n't": " not", "'re": " are", "'ll": " will", "'ve": " have", "'m": " am", "'d": " would",
    "'s": " is",
}


def normalize(text: str) -> list[str]:
    """Lower-case words, punctuation removed, contractions and small numerals spelt out.

    "7." is "seven", "weather's" is "weather is" (so is the possessive: both sides are
    normalised alike, so it only matters where one side contracts and the other does not).
    """
    # "7:00" is how Whisper writes "seven" after "at".
    text = re.sub(r":00\b", "", text.lower().replace("\u2019", "'"))
    text = _CONTRACTIONS.sub(lambda m: _SPELT_OUT[m.group(0)], text)
    words = re.sub(r"[^a-z0-9' ]+", " ", text).split()
    return [_NUMBERS[int(w)] if w.isdigit() and int(w) < len(_NUMBERS) else w for w in words]


def word_errors(reference: str, hypothesis: str) -> int:
    """Substitutions + deletions + insertions turning the reference into the hypothesis."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, word in enumerate(ref, start=1):
        diagonal, row[0] = row[0], i
        for j, other in enumerate(hyp, start=1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (word != other))
    return row[-1]


def wer(pairs: Sequence[tuple[str, str]]) -> float:
    """Corpus WER of (reference, hypothesis) pairs: all errors over all reference words."""
    words = sum(len(normalize(ref)) for ref, _ in pairs)
    return sum(word_errors(ref, hyp) for ref, hyp in pairs) / max(words, 1)
