"""Incremental sentence splitting, so that TTS can speak a reply while the LLM still writes it.

:class:`SentenceSplitter` takes text in pieces of any size (LLM tokens) and hands back each
sentence as soon as it is known to be complete, which is when the whitespace after its final
punctuation arrives: ``"3."`` may still become ``"3.5"``. It does not end sentences at
common abbreviations (``"Dr."``, ``"e.g."``), single-letter initials (``"J. Smith"``) or
decimal points, and it joins sentences shorter than ``min_length`` characters with the next
one, because a TTS request per ``"Ok."`` costs more latency than it saves.
"""

from __future__ import annotations

import re

__all__ = ["ABBREVIATIONS", "SentenceSplitter", "split_sentences"]

ABBREVIATIONS: frozenset[str] = frozenset(
    {
        "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "ft", "vs", "etc",
        "e.g", "i.e", "cf", "approx", "no", "vol", "fig", "inc", "ltd", "co", "corp",
        "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
        "u.s", "u.k", "gen", "col", "lt", "sgt", "capt", "rev", "hon", "dept", "est",
    }
)  # fmt: skip
"""Words (lower case, without their final period) after which a period ends no sentence."""

# End punctuation, then closing quotes or brackets, then the whitespace that proves the
# sentence is over; CJK full stops need no space after them. A line break ends a line item.
_CLOSERS = "\"')\\]\u201d\u2019\u300d\u300f"  # ASCII quotes, ) ], curly and CJK quotes
_BOUNDARY = re.compile(
    f"[.!?\u2026]+[{_CLOSERS}]*\\s+"  # . ! ? ... then whitespace
    f"|[\u3002\uff01\uff1f]+[{_CLOSERS}]*"  # CJK full stop, ! and ?
    "|\n+"
)
_WORD_BEFORE = re.compile(r"(\S+)$")


class SentenceSplitter:
    """Split streamed text into sentences, emitting each as soon as it is complete.

    Example:
        >>> splitter = SentenceSplitter(min_length=5)
        >>> splitter.push("Hello there. How a")
        ['Hello there.']
        >>> splitter.push("re you?")
        []
        >>> splitter.flush()
        ['How are you?']
    """

    def __init__(self, min_length: int = 20, abbreviations: frozenset[str] = ABBREVIATIONS) -> None:
        """Make a splitter.

        Args:
            min_length: Sentences shorter than this many characters are joined with the
                next one (the last one of the text is emitted by :meth:`flush` regardless).
            abbreviations: Lower-case words, without their final period, after which a
                period does not end a sentence.

        Raises:
            ValueError: ``min_length`` is negative.
        """
        if min_length < 0:
            raise ValueError(f"min_length must be >= 0, got {min_length}")
        self._min_length = min_length
        self._abbreviations = abbreviations
        self._buffer = ""

    @property
    def pending(self) -> str:
        """The text received but not yet emitted."""
        return self._buffer

    def push(self, text: str) -> list[str]:
        """Add text and return the sentences it completed, in order, stripped of whitespace."""
        self._buffer += text
        sentences: list[str] = []
        start = 0
        for match in _BOUNDARY.finditer(self._buffer):
            if self._is_abbreviation(match):
                continue
            sentence = self._buffer[start : match.end()].strip()
            if len(sentence) < self._min_length:
                continue  # too short: let it run on into the next sentence
            sentences.append(sentence)
            start = match.end()
        self._buffer = self._buffer[start:]
        return sentences

    def flush(self) -> list[str]:
        """End the text: return what is left as a last sentence (if it is not blank)."""
        rest, self._buffer = self._buffer.strip(), ""
        return [rest] if rest else []

    def _is_abbreviation(self, match: re.Match[str]) -> bool:
        if not match.group().startswith(".") or match.group().startswith(".."):
            return False
        word = _WORD_BEFORE.search(self._buffer, 0, match.start())
        if word is None:
            return False
        raw = word.group(1).lstrip("\"'([\u201c\u2018")
        # A lone capital before a period is an initial ("J. R. R. Tolkien"), "I" aside.
        initial = len(raw) == 1 and raw.isupper() and raw != "I"
        return initial or raw.lower() in self._abbreviations


def split_sentences(text: str, min_length: int = 0) -> list[str]:
    """Split a whole text into sentences.

    Args:
        text: The text.
        min_length: Join sentences shorter than this with the next one.

    Returns:
        The sentences, stripped, in order.
    """
    splitter = SentenceSplitter(min_length=min_length)
    return splitter.push(text) + splitter.flush()
