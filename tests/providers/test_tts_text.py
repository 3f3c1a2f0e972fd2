"""Text transforms for TTS input: markdown and emoji out, the words (and numbers) kept."""

from __future__ import annotations

import pytest

from flowkit.providers import (
    DEFAULT_TTS_TEXT_TRANSFORMS,
    apply_text_transforms,
    strip_emoji,
    strip_markdown,
)


@pytest.mark.parametrize(
    ("written", "spoken"),
    [
        ("## Weather in Paris", "Weather in Paris"),
        ("- Sunny today", "Sunny today"),
        ("* Sunny today", "Sunny today"),
        ("1. Paris\n2. London", "1. Paris\n2. London"),
        ("> It is **very** warm.", "It is very warm."),
        ("It is *quite* warm, ~~cold~~ not cold.", "It is quite warm, cold not cold."),
        ("Call `get_weather()` first.", "Call get_weather() first."),
        ("See [the forecast](https://example.com/paris) now.", "See the forecast now."),
        ("Here: ![a map](map.png) done.", "Here: done."),
        ("It is <b>warm</b> today.", "It is warm today."),
        ("| city | degrees |", "city, degrees"),
        ("|---|:---:|", ""),
        ("---", ""),
        ("```python", ""),
        ("Tom &amp; Jerry", "Tom & Jerry"),
        # emphasis cut apart by a sentence boundary leaves its markers as text
        ("**It is warm.", "It is warm."),
        ("Bring a hat.**", "Bring a hat."),
        # a star between digits is arithmetic, in text and in code alike
        ("It is 2*3 m, **not** 4*5.", "It is 2*3 m, not 4*5."),
        ("Run `2*3*4` now.", "Run 2*3*4 now."),
    ],
)
def test_markdown_is_removed_and_its_words_kept(written: str, spoken: str) -> None:
    assert strip_markdown(written) == spoken


@pytest.mark.parametrize(
    "prose",
    [
        "Multiplication: 3 * 7 = 21, and 10 - 4 = 6.",
        "The variable snake_case_name is set.",
        "Well-known places - like Paris - are busy.",
        "An escaped \\*star\\* stays.",
        "That is 2*3*4 = 24.",
    ],
)
def test_what_only_looks_like_markdown_is_spoken_as_written(prose: str) -> None:
    expected = prose.replace("\\*", "*")
    assert strip_markdown(prose) == expected


def test_plain_prose_is_returned_unparsed() -> None:
    prose = "It is sunny in Paris today, with a high of 22 degrees."
    assert strip_markdown(prose) is prose
    assert strip_emoji(prose) is prose


@pytest.mark.parametrize(
    ("written", "spoken"),
    [
        ("Sunny all day \N{SMILING FACE WITH SUNGLASSES}!", "Sunny all day!"),
        ("Thumbs up \N{THUMBS UP SIGN}\N{EMOJI MODIFIER FITZPATRICK TYPE-4} from us.",
         "Thumbs up from us."),
        # a family: four people joined by zero-width joiners, removed as one
        ("A \N{MAN}\u200d\N{WOMAN}\u200d\N{GIRL}\u200d\N{BOY} picnic.", "A picnic."),
        ("Press 1\ufe0f\u20e3 for sales.", "Press 1 for sales."),
        ("\N{PARTY POPPER}", ""),
    ],
)
def test_emoji_are_removed_and_keycaps_keep_their_key(written: str, spoken: str) -> None:
    assert strip_emoji(written) == spoken


def test_the_default_chain_removes_both() -> None:
    written = "- **Sunny** \N{SUN WITH FACE}, see [the map](https://example.com)"
    spoken = apply_text_transforms(written, DEFAULT_TTS_TEXT_TRANSFORMS)
    assert spoken == "Sunny, see the map"


def test_a_transform_that_returns_no_string_is_named() -> None:
    def shout(text: str) -> str:
        return None  # type: ignore[return-value]

    with pytest.raises(TypeError, match=r"shout returned NoneType, not str"):
        apply_text_transforms("hello", [str.upper, shout])
