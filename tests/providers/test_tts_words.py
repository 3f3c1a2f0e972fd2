"""Word timings from a TTS provider: on frames, through the sentence adapter, onto the text."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest
from livekit import rtc

from flowkit.audio.frames import frame_from_samples
from flowkit.messages import TimedWord
from flowkit.providers import StreamingTTSFromBatch
from flowkit.providers.tts_words import WrittenWords, attach_timed_words, timed_words


def words(*spans: tuple[str, float, float]) -> tuple[TimedWord, ...]:
    return tuple(TimedWord(*span) for span in spans)


def test_timings_ride_on_a_frames_userdata() -> None:
    frame = frame_from_samples(np.zeros(160, np.int16), 8000)
    assert timed_words(frame) == ()
    given = words(("hi", 0.0, 0.2))
    assert attach_timed_words(frame, list(given)) is frame
    assert timed_words(frame) == given


def test_written_words_are_the_spoken_ones_when_nothing_was_transformed() -> None:
    mapper = WrittenWords("One two three.", "One two three.")
    assert mapper.take(words(("One", 0.0, 0.1), ("two", 0.2, 0.3))) == words(
        ("One", 0.0, 0.1), ("two", 0.2, 0.3)
    )
    # The rest arrives with a later frame and continues where the first left off.
    assert mapper.take(words(("three.", 0.4, 0.6))) == words(("three.", 0.4, 0.6))


def test_markdown_and_dropped_emoji_keep_the_written_words_one_for_one() -> None:
    mapper = WrittenWords("**Big** 🎉 news, _really_!", "Big news, really!")
    assert mapper.usable
    timed = mapper.take(
        words(("Big", 0.0, 0.3), ("news,", 0.4, 0.7), ("really!", 0.8, 1.2))
    )
    # The emoji was not spoken: an empty timing where the word before it ended.
    assert timed == words(
        ("**Big**", 0.0, 0.3), ("🎉", 0.3, 0.3), ("news,", 0.4, 0.7), ("_really_!", 0.8, 1.2)
    )


@pytest.mark.parametrize(
    ("written", "spoken"),
    [
        ("Call 911 now.", "Call nine one one now."),  # a word rewritten into others
        ("Hello there.", "Hello."),  # a written word that was not spoken
        ("Hello.", "Hello there."),  # a word the text does not have
    ],
)
def test_texts_whose_words_do_not_line_up_get_no_timings(written: str, spoken: str) -> None:
    mapper = WrittenWords(written, spoken)
    assert not mapper.usable
    assert mapper.take(words(*((w, 0.0, 0.1) for w in spoken.split()))) == ()


def test_a_provider_timing_other_words_than_it_was_given_is_not_trusted() -> None:
    mapper = WrittenWords("One two three.", "One two three.")
    assert mapper.take(words(("One", 0.0, 0.1))) == words(("One", 0.0, 0.1))
    assert mapper.take(words(("five", 0.2, 0.3))) == ()
    assert not mapper.usable
    assert mapper.take(words(("three.", 0.4, 0.5))) == ()  # and nothing after it


class TimedSentences:
    """Each sentence: 0.1 s of audio per word in two frames, its words timed on the first."""

    name, sample_rate, num_channels = "timed", 8000, 1

    async def synthesize(self, text: str) -> AsyncIterator[rtc.AudioFrame]:
        spoken = text.split()
        half = len(spoken) * 400
        first = frame_from_samples(np.zeros(half, np.int16), 8000)
        yield attach_timed_words(
            first, (TimedWord(w, i * 0.1, (i + 1) * 0.1) for i, w in enumerate(spoken))
        )
        yield frame_from_samples(np.zeros(half, np.int16), 8000)


async def test_the_sentence_adapter_counts_later_sentences_words_from_the_streams_start() -> None:
    stream = StreamingTTSFromBatch(TimedSentences(), min_sentence_length=1).stream()
    stream.push_text("One two three. Four five.")
    stream.end_input()
    timed = [w for frame in [f async for f in stream] for w in timed_words(frame)]
    assert [w.text for w in timed] == ["One", "two", "three.", "Four", "five."]
    # The second sentence starts after the first's 0.3 s of audio.
    assert [w.start for w in timed] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    assert [w.end for w in timed] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])
