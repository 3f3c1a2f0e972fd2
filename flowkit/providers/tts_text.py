"""Text transforms for TTS input: what a reply says, without what only a screen can show.

LLMs write for screens: ``**bold**``, ``- list items``, ``[links](https://...)``, emoji. Read
aloud, a synthesiser says "asterisk asterisk" or the emoji's name, or skips it at random. The
TTS node therefore passes each sentence through a chain of :data:`TextTransform` functions
before it is synthesised, while the reply's transcript and chat history keep the text as
written (as LiveKit Agents' ``tts_text_transforms`` do).

- :func:`strip_markdown` parses the sentence with markdown-it (CommonMark, plus
  strikethrough) and keeps only what would be read: the words of emphasis, links and inline
  code, list items' numbers, code blocks' code. Emphasis markers left unmatched because a
  sentence boundary cut them apart (``"**First."``) are removed too.
- :func:`strip_emoji` removes emoji (the ``emoji`` package's table, so sequences with skin
  tones and zero-width joiners go as one); a keycap keeps its digit (``"1️⃣"`` says ``"1"``).

Both return their input unchanged (the same object) when there is nothing to remove, so
plain prose costs a regular-expression scan. markdown-it and the emoji table (about 4 and
7 MiB resident) are imported the first time a sentence needs them, not with flowkit: a
worker whose replies are plain text never loads them.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.token import Token

__all__ = [
    "DEFAULT_TTS_TEXT_TRANSFORMS",
    "TextTransform",
    "apply_text_transforms",
    "strip_emoji",
    "strip_markdown",
]

TextTransform = Callable[[str], str]
"""A function from a sentence as written to the sentence as it should be spoken."""


# Anything that can make markdown-it's output differ from its input; without one, the
# sentence is returned as it came, unparsed.
_MARKUP_HINT = re.compile(
    r"[*_`~#>\[\]<|\\&]|^\s*(?:[-+]|\d{1,9}[.)])(?:\s|$)|^\s*[-=]{3,}\s*$|^\s{4}", re.M
)

# Emphasis markers the parser left as text because their partner is in another sentence:
# a run of * or _ (or ~~, or backticks) at the start or end of a word. "5 * 3" and
# "snake_case" keep theirs.
_MARK = r"(?:\*{1,3}|_{1,3}|~~|`+)"
_STRAY_MARKS = re.compile(rf"(?<!\S){_MARK}(?=\S)|(?<=\S){_MARK}(?!\S)")

# A star between two digits is arithmetic ("2*3*4"), which CommonMark would read as
# emphasis of the middle digit. It is swapped for a private-use character that no markdown
# rule matches (so it is kept in text and code spans alike) and swapped back afterwards.
_DIGIT_STAR = re.compile(r"(?<=\d)\*(?=\d)")
_STAR_STANDIN = "\ue000"

_TABLE_ROW = re.compile(r"^\s*\|(.*)\|\s*$")
_TABLE_RULE = re.compile(r"^[\s|:-]*$")
_SPACE_BEFORE_PUNCTUATION = re.compile(r"[ \t]+([,.;:!?])")
_SPACES = re.compile(r"[ \t]{2,}")


def strip_markdown(text: str) -> str:
    """The text with its markdown formatting removed, as it should be read aloud.

    Headings, block quotes, bullets and horizontal rules lose their markers; numbered list
    items keep their number (``"1. Paris"``); emphasis, strikethrough and inline code keep
    their words; a link keeps its text, an image is dropped (its alt text describes a
    picture the listener cannot see); inline HTML tags are dropped; a table row's cells are
    read separated by commas and its rule line is dropped. A star between two digits is
    arithmetic, not emphasis, and is kept (``"2*3*4"``).

    Example:
        >>> strip_markdown("- **Sunny** all day, see [the map](https://example.com)")
        'Sunny all day, see the map'
    """
    if not _MARKUP_HINT.search(text):
        return text
    blocks: list[str] = []
    number = ""
    for token in _markdown_parser().parse(_DIGIT_STAR.sub(_STAR_STANDIN, text)):
        if token.type == "list_item_open" and token.info:
            number = f"{token.info}{token.markup} "
        elif token.type == "inline":
            words = _table_cells(_inline_text(token.children or []))
            if words:
                blocks.append(number + words)
            number = ""
        elif token.type in ("fence", "code_block"):
            blocks.append(token.content.strip("\n"))
    spoken = _tidy("\n".join(block for block in blocks if block))
    return spoken.replace(_STAR_STANDIN, "*")


def strip_emoji(text: str) -> str:
    """The text without emoji; a keycap emoji keeps its key (``"1️⃣"`` becomes ``"1"``).

    Example:
        >>> strip_emoji("Sunny all day \N{SMILING FACE WITH SUNGLASSES}!")
        'Sunny all day!'
    """
    if text.isascii():  # no emoji is ASCII (a keycap's key is, its keycap mark is not)
        return text
    import emoji  # the first sentence that may hold one loads the table

    if emoji.emoji_count(text) == 0:
        return text
    return _tidy(emoji.replace_emoji(text, replace=_emoji_replacement))


DEFAULT_TTS_TEXT_TRANSFORMS: tuple[TextTransform, ...] = (strip_markdown, strip_emoji)
"""What the TTS node applies unless told otherwise: markdown, then emoji, removed."""


def apply_text_transforms(text: str, transforms: Sequence[TextTransform]) -> str:
    """``text`` passed through each transform in turn.

    Raises:
        TypeError: A transform returned something other than a string; the message names it.
    """
    for transform in transforms:
        result = transform(text)
        if not isinstance(result, str):
            raise TypeError(
                f"TTS text transform {_name(transform)} returned {type(result).__name__}, "
                "not str: a transform takes a sentence and returns the sentence to speak"
            )
        text = result
    return text


@functools.cache
def _markdown_parser() -> MarkdownIt:
    from markdown_it import MarkdownIt

    # "text_join" would fold escapes (\*) into plain text, where the stray-marker pass
    # would then remove them; kept apart, an escaped character is spoken as written.
    return MarkdownIt("commonmark").enable("strikethrough").disable("text_join")


def _inline_text(children: Sequence[Token]) -> str:
    parts: list[str] = []
    for child in children:
        kind = child.type
        if kind == "text":
            parts.append(_STRAY_MARKS.sub("", child.content))
        elif kind in ("text_special", "code_inline"):
            parts.append(child.content)
        elif kind in ("softbreak", "hardbreak"):
            parts.append("\n")
        # Markers (strong_open, link_close, ...), images and inline HTML say nothing.
    return "".join(parts).strip()


def _table_cells(line: str) -> str:
    """A table row read as its cells with commas between; its rule line, nothing."""
    rows = []
    for row in line.split("\n"):
        match = _TABLE_ROW.match(row)
        if match is None:
            rows.append(row)
        elif not _TABLE_RULE.match(row):
            rows.append(", ".join(cell.strip() for cell in match.group(1).split("|")))
    return "\n".join(row for row in rows if row)


def _emoji_replacement(chars: str, _data: dict[str, Any]) -> str:
    # A keycap is a key (0-9, #, *) followed by the keycap mark: the key is what it says.
    return chars[0] if chars.endswith("\u20e3") else ""


def _tidy(text: str) -> str:
    """Close the gaps that removed markup leaves: doubled spaces, a space before a comma."""
    text = _SPACE_BEFORE_PUNCTUATION.sub(r"\1", text)
    return _SPACES.sub(" ", text).strip()


def _name(transform: TextTransform) -> str:
    return getattr(transform, "__qualname__", None) or repr(transform)
