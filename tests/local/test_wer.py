"""The word error rate helper of the local-model tests: what it forgives and what it counts."""

from wer import normalize, wer


def test_contractions_and_small_numbers_are_spelt_out_on_both_sides() -> None:
    assert normalize("The weather's perfect, isn't it? I\u2019m there at 7:00.") == [
        "the", "weather", "is", "perfect", "is", "not", "it", "i", "am", "there", "at", "seven",
    ]


def test_a_contracted_transcript_costs_only_its_real_errors() -> None:
    # A Piper reply as Whisper heard it in CI: "Bonjour" really is misheard (two errors), the
    # contraction is not.
    said = "Bonjour, it's a beautiful day in Paris. The weather is perfect for exploring the city!"
    heard = "One jur, it's a beautiful day in Paris. The weather's perfect for exploring the city."
    assert wer([(said, heard)]) == 2 / 16


def test_a_wrong_word_still_counts() -> None:
    assert wer([("the weather is sunny", "the weather was sunny")]) == 1 / 4
