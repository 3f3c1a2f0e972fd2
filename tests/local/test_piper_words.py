"""PiperWordTimer: phoneme alignments to word timings, on made-up phonemes."""

from __future__ import annotations

from dataclasses import dataclass

from flowkit_local.piper_words import PiperWordTimer, phoneme_words

from flowkit.messages import TimedWord

# A made-up phonemiser: each letter is a phoneme, "7" is spoken as two words, "-" is silent
# and punctuation stays punctuation; "." ends a sentence.
SPOKEN = {"7": "se ven", "-": ""}


def phonemize(text: str) -> list[list[str]]:
    words = [SPOKEN.get(w, w.lower()) for w in text.split()]
    sentences: list[list[str]] = [[]]
    for word in " ".join(w for w in words if w).split(" "):
        if sentences[-1]:
            sentences[-1].append(" ")
        sentences[-1].extend(word)
        if word.endswith("."):
            sentences.append([])
    return [s for s in sentences if s]


@dataclass
class Alignment:
    phoneme: str
    num_samples: int


def aligned(phonemes: list[str], width: int = 10) -> list[Alignment]:
    """Piper's alignments: ``^``, each phoneme ``width`` samples wide, ``$``."""
    return [Alignment(p, width) for p in ("^", *phonemes, "$")]


def test_phoneme_words_are_runs_with_a_sound_between_spaces() -> None:
    assert phoneme_words([*list("ab"), " ", *list("c,"), " ", "."]) == 2
    assert phoneme_words([]) == 0


def test_each_word_spans_its_phoneme_words_across_piper_sentences() -> None:
    text = "Hi 7 - cats. Go"
    timer = PiperWordTimer(text, phonemize)
    assert timer.usable
    first, second = phonemize(text)  # "hi se ven cats." / "go"
    rate = 100
    timed = timer.sentence(aligned(first), (len(first) + 2) * 10, rate)
    # "^" takes 10 samples; "hi" 10-30, " " 30-40, "se" 40-60, " ", "ven" 70-100, " ",
    # "cats" 110-150 and its "." (a pause, not part of the word) 150-160.
    assert timed == [
        TimedWord("Hi", 0.1, 0.3),
        TimedWord("7", 0.4, 1.0),
        TimedWord("-", 1.1, 1.1),  # not spoken: empty, where the next word starts
        TimedWord("cats.", 1.1, 1.5),
    ]
    # The second sentence's words count from the start of the text's audio.
    assert timer.sentence(aligned(second), 40, rate) == [TimedWord("Go", 1.8, 2.0)]


def test_words_that_phonemise_differently_together_get_no_timings() -> None:
    def in_context(text: str) -> list[list[str]]:
        # "Dr" is one phoneme word alone but two within the text.
        return phonemize(text.replace("Dr ", "doctor who ") if " " in text else text)

    timer = PiperWordTimer("Dr Who", in_context)
    assert not timer.usable
    assert timer.sentence(aligned(list("dr")), 40, 100) == []


def test_a_sentence_piper_could_not_align_ends_the_timings() -> None:
    timer = PiperWordTimer("Go. Now", phonemize)
    _first, second = phonemize("Go. Now")
    assert timer.sentence(None, 40, 100) == []
    assert not timer.usable
    assert timer.sentence(aligned(second), 40, 100) == []
