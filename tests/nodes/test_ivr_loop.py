"""TranscriptLoopDetector: TF-IDF similarity of the other side's transcripts, repeats in a row."""

from __future__ import annotations

import math

import pytest

from flowkit.nodes.ivr_loop import TranscriptLoopDetector, _similarity_to_last

MENU = "Press 1 for sales, press 2 for support."


def test_similarity_is_the_cosine_of_smoothed_tf_idf_vectors() -> None:
    # Two documents "a b" and "a c": idf(a) = ln(3/3) + 1 = 1, idf(b) = idf(c) = ln(3/2) + 1,
    # so the unit vectors share only "a" and their cosine is 1 / (1 + idf(b)^2).
    idf = math.log(1.5) + 1.0
    (cosine,) = _similarity_to_last([["a", "b"], ["a", "c"]])
    assert cosine == pytest.approx(1.0 / (1.0 + idf * idf))
    assert _similarity_to_last([["x", "y"], ["y", "x"], ["z"]]).tolist() == [0.0, 0.0]


def test_a_prompt_said_four_times_is_a_loop_on_the_fourth() -> None:
    detector = TranscriptLoopDetector()
    assert [detector.add(MENU) for _ in range(4)] == [False, False, False, True]
    assert detector.in_a_row == 3


def test_a_different_transcript_starts_the_count_again() -> None:
    detector = TranscriptLoopDetector(repeats=2)
    assert not detector.add(MENU)
    assert not detector.add(MENU.upper())  # case does not matter: a repeat
    assert not detector.add("Your call is important to us, please hold the line")
    assert detector.in_a_row == 0
    assert not detector.add(MENU)  # repeats the first, one in a row
    assert detector.add(MENU)


def test_one_character_words_count_so_menu_digits_tell_prompts_apart() -> None:
    detector = TranscriptLoopDetector(similarity=0.7, repeats=1)
    assert not detector.add("press 1")
    assert not detector.add("press 2")  # alike in everything but the digit
    assert detector.add("press 2")


def test_transcripts_without_words_are_left_out() -> None:
    detector = TranscriptLoopDetector(repeats=2)
    for text in (MENU, "...", MENU, "", MENU):
        looped = detector.add(text)
    assert looped and detector.in_a_row == 2


def test_only_the_window_is_remembered_and_reset_forgets() -> None:
    detector = TranscriptLoopDetector(window=3, repeats=1)
    detector.add(MENU)
    detector.add("one thing")
    detector.add("another thing")
    assert not detector.add(MENU)  # the first one has left the window of 3
    assert detector.add(MENU)
    detector.reset()
    assert detector.in_a_row == 0 and not detector.add(MENU)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window": 1}, "window must be at least 2"),
        ({"similarity": 1.5}, "similarity must be between 0 and 1"),
        ({"repeats": 0}, "repeats must be at least 1"),
    ],
)
def test_out_of_range_settings_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TranscriptLoopDetector(**kwargs)  # type: ignore[arg-type]
