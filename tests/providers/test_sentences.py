from __future__ import annotations

import pytest

from flowkit.providers import SentenceSplitter, split_sentences


def test_emits_a_sentence_as_soon_as_the_space_after_it_arrives() -> None:
    splitter = SentenceSplitter(min_length=0)
    assert splitter.push("Hello there") == []
    assert splitter.push(".") == []  # could still be "there.com" or an ellipsis
    assert splitter.push(" How") == ["Hello there."]
    assert splitter.pending == "How"
    assert splitter.push(" are you? I'm") == ["How are you?"]
    assert splitter.flush() == ["I'm"]
    assert splitter.flush() == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Dr. Smith is here. He is late.", ["Dr. Smith is here.", "He is late."]),
        ("Use a tool, e.g. a hammer. Then stop.", ["Use a tool, e.g. a hammer.", "Then stop."]),
        ("It costs 3.5 dollars. Cheap!", ["It costs 3.5 dollars.", "Cheap!"]),
        ("J. R. R. Tolkien wrote it. Yes.", ["J. R. R. Tolkien wrote it.", "Yes."]),
        ('She said "stop." Then left.', ['She said "stop."', "Then left."]),
        ("Wait... what? Really!", ["Wait...", "what?", "Really!"]),
        ("First item\nSecond item", ["First item", "Second item"]),
        ("So do I. Great.", ["So do I.", "Great."]),
    ],
)
def test_split_whole_texts(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_token_by_token_gives_the_same_sentences_as_whole_text() -> None:
    text = "Mr. Brown paid 2.75 euros. That is e.g. cheap! Is it? Yes, it is."
    splitter = SentenceSplitter(min_length=0)
    pieces: list[str] = []
    for i in range(0, len(text), 3):
        pieces += splitter.push(text[i : i + 3])
    pieces += splitter.flush()
    assert pieces == split_sentences(text)
    assert pieces == ["Mr. Brown paid 2.75 euros.", "That is e.g. cheap!", "Is it?", "Yes, it is."]


def test_short_sentences_run_on_into_the_next() -> None:
    splitter = SentenceSplitter(min_length=12)
    assert splitter.push("Ok. Sure. That sounds great. ") == ["Ok. Sure. That sounds great."]
    assert splitter.push("Hi. ") == []
    assert splitter.flush() == ["Hi."]  # the last piece goes out, however short
    with pytest.raises(ValueError, match="min_length"):
        SentenceSplitter(min_length=-1)
