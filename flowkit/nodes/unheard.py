"""The audio a room sink has written to a queued output that may not have been heard yet.

LiveKit's ``rtc.AudioSource`` takes the agent's audio into a playout queue (200 ms by
default), so the sink's writes run ahead of the listener's ears
(:class:`~flowkit.room_io.QueuedAudioOutput`). :class:`UnheardAudio` keeps the last pieces a
reply wrote, just enough of them to cover what the output still holds. When the output's
queue is dropped (a barge-in pauses or cuts the reply), :meth:`UnheardAudio.take_back` gives
back the pieces that were never heard, the first one cut at the point the listener reached,
so the sink can take them off what it reports as played and, for a pause, play them again on
resume. LiveKit Agents drops that audio on a pause (its output has a to-do for it); here a
resumed reply goes on from the word the listener last heard.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable

from flowkit.audio.frames import duration_s, frame_from_samples, samples
from flowkit.messages import AgentAudio

__all__ = ["UnheardAudio"]

# Below this, an amount of queued audio is taken to be none: float noise in the estimates.
_EPSILON = 1e-6


def _duration(item: AgentAudio) -> float:
    frame = item.frame
    return 0.0 if frame is None else duration_s(frame)


class UnheardAudio:
    """The pieces of one reply written to a queued output, the latest ones first to go back.

    Holds the written pieces (frames and markers, as :class:`~flowkit.messages.AgentAudio`)
    whose audio the output may still hold, and no more: each :meth:`wrote` forgets the
    oldest pieces once the newer ones cover what the output says it holds.
    """

    __slots__ = ("_items", "_seconds")

    def __init__(self) -> None:
        """Start with nothing written."""
        self._items: deque[tuple[AgentAudio, float]] = deque()
        self._seconds = 0.0  # the audio of the pieces kept

    def __len__(self) -> int:
        """How many pieces are kept."""
        return len(self._items)

    def wrote(self, item: AgentAudio, queued: float) -> None:
        """Record ``item`` as written; ``queued`` is what the output holds after it.

        Args:
            item: The piece just written (a frame, or a marker with no audio).
            queued: Seconds of audio the output holds, unheard, now.
        """
        seconds = _duration(item)
        self._items.append((item, seconds))
        self._seconds += seconds
        # The output drains as time passes and only a write adds to it, so covering what it
        # holds now covers what it will hold until the next write.
        while len(self._items) > 1 and self._seconds - self._items[0][1] >= queued - _EPSILON:
            self._seconds -= self._items.popleft()[1]

    def take_back(
        self, queued: float, pending: Callable[[AgentAudio], bool]
    ) -> list[AgentAudio]:
        """The pieces not yet heard when the output held ``queued`` seconds; forget all.

        Call it just before the output's queue is dropped. The piece that was playing is cut
        where the listener reached: its unheard end comes back as a piece of its own.

        Args:
            queued: Seconds of audio the output holds, unheard, now.
            pending: Whether a marker (a piece with no audio) is still to come back: one
                already reported as reached was heard, and stays behind.

        Returns:
            The unheard pieces in the order they were written. Their audio adds up to
            ``queued``, or less when the pieces kept add up to less (the rest of the queue
            is another reply's).
        """
        back: list[AgentAudio] = []
        left = queued
        # Markers at the end come back whatever is queued: one written after the last audio
        # (the end marker) is not behind any of it.
        while self._items and (left > _EPSILON or self._items[-1][0].frame is None):
            item, seconds = self._items.pop()
            if item.frame is None:
                if pending(item):
                    back.append(item)
                continue
            if seconds <= left + _EPSILON:
                back.append(item)
                left -= seconds
                continue
            # The piece the listener is in: its last `left` seconds were not heard.
            pcm = samples(item.frame)
            keep = round(left * item.frame.sample_rate)
            if keep > 0:
                tail = frame_from_samples(pcm[pcm.shape[0] - keep :].copy(), item.frame.sample_rate)
                back.append(dataclasses.replace(item, frame=tail, words=()))
            break
        self._items.clear()
        self._seconds = 0.0
        back.reverse()
        return back
