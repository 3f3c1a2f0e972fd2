"""UnheardAudio: the pieces a queued output may still hold, and taking them back."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from flowkit.audio import frame_from_samples
from flowkit.messages import AgentAudio, TimedWord
from flowkit.nodes.unheard import UnheardAudio

RATE = 1_000  # one sample a millisecond keeps the arithmetic readable


def piece(start: int, ms: int, **fields: Any) -> AgentAudio:
    """``ms`` milliseconds of audio whose samples count up from ``start``."""
    pcm = np.arange(start, start + ms, dtype=np.int16)
    return AgentAudio(turn_id=1, frame=frame_from_samples(pcm, RATE), **fields)


def pcm(items: list[AgentAudio]) -> list[int]:
    return [int(v) for a in items if a.frame is not None
            for v in np.frombuffer(a.frame.data, np.int16)]


def never(item: AgentAudio) -> bool:
    return False


def always(item: AgentAudio) -> bool:
    return True


def test_whole_pieces_come_back_in_order_and_the_playing_one_is_cut_where_heard() -> None:
    log = UnheardAudio()
    for i in range(5):  # 5 pieces of 100 ms; the output holds the last 250 ms
        log.wrote(piece(i * 100, 100, text="t"), queued=0.25)

    back = log.take_back(0.25, never)

    assert pcm(back) == list(range(250, 500))
    assert [a.frame.samples_per_channel for a in back if a.frame] == [50, 100, 100]
    assert back[0].text == "t"  # the cut piece keeps its tags
    assert len(log) == 0  # forgotten: the output is cleared after


def test_a_cut_piece_loses_its_word_timings_which_were_for_its_start() -> None:
    log = UnheardAudio()
    words = (TimedWord(text="hello", start=0.0, end=0.08),)
    log.wrote(piece(0, 100, words=words), queued=0.1)
    (back,) = log.take_back(0.05, never)
    assert back.words == ()
    assert pcm([back]) == list(range(50, 100))


def test_only_enough_pieces_to_cover_the_queue_are_kept() -> None:
    log = UnheardAudio()
    for i in range(50):
        log.wrote(piece(i * 20, 20), queued=min((i + 1) * 0.02, 0.2))
    assert len(log) == 10  # 200 ms of 20 ms pieces
    # The output drained meanwhile: less comes back than is kept.
    assert pcm(log.take_back(0.03, never)) == list(range(970, 1000))


def test_markers_come_back_only_while_not_yet_reported() -> None:
    log = UnheardAudio()
    reported = AgentAudio(turn_id=1, frame=None, mark=1)
    pending = AgentAudio(turn_id=1, frame=None, mark=2)
    end = AgentAudio(turn_id=1, frame=None, final=True)
    for item in (piece(0, 100), reported, piece(100, 100), pending, piece(200, 100), end):
        log.wrote(item, queued=0.3)

    back = log.take_back(0.15, lambda item: item.final or item.mark == 2)

    assert [(a.mark, a.final, a.frame is not None) for a in back] == [
        (0, False, True), (2, False, False), (0, False, True), (0, True, False)
    ]
    assert pcm(back) == list(range(150, 300))


def test_the_end_marker_comes_back_even_when_nothing_is_queued() -> None:
    log = UnheardAudio()
    log.wrote(piece(0, 100), queued=0.1)
    log.wrote(AgentAudio(turn_id=1, frame=None, final=True), queued=0.1)
    (back,) = log.take_back(0.0, always)
    assert back.final


def test_no_more_comes_back_than_the_reply_wrote() -> None:
    log = UnheardAudio()
    log.wrote(piece(0, 100), queued=0.3)  # 200 ms of it is an older reply's
    assert pcm(log.take_back(0.3, never)) == list(range(100))


@pytest.mark.parametrize("queued", [0.0, 1e-9])
def test_nothing_comes_back_when_the_queue_has_played_out(queued: float) -> None:
    log = UnheardAudio()
    log.wrote(piece(0, 100), queued=0.1)
    assert log.take_back(queued, never) == []
