"""The playout markers that tools wait for (``await ctx.wait_for_playout()``).

A tool that must not act before the user has heard what the reply said (hang up after the
goodbye, transfer after "I'll put you through") waits for its reply's audio so far to play.
The :class:`~flowkit.nodes.tools.ToolRouter` sends a marker with a fresh id into the reply
(a :class:`~flowkit.messages.ToolSpeech` with a ``mark``); the LLM node passes it to the TTS
node, which puts it among the reply's audio after the audio of the text before it, and the
speaker reports ``Playout(REACHED, mark=...)`` when it gets there. :class:`PlayoutWaits`
keeps each waiting tool's future and settles it from the speaker's reports, which reach the
router on its ``playout`` input.

A marker can be dropped on the way: the reply was cut, a newer turn replaced it, or its
round gave up on the call. So a wait also ends once the speaker is done with the marker's
reply: it reported the reply finished or interrupted, or reported on a newer turn (turn ids
grow, and the speaker plays one reply at a time), and every wait ends when the reports end
(the graph is closing). Nothing is waited for of a reply that is over already.
"""

from __future__ import annotations

import asyncio
import itertools

from flowkit.messages import Playout, PlayoutEvent

__all__ = ["PlayoutWaits"]

# Marker ids are unique in the process, so that two routers feeding one speaker never mix.
_marks = itertools.count(1)


class PlayoutWaits:
    """The markers tools wait for, settled by the speaker's reports (see the module)."""

    def __init__(self) -> None:
        self._waiting: dict[int, tuple[int, asyncio.Future[None]]] = {}
        # The newest turn the speaker reported on, and whether its end was reported: every
        # older turn is over (the speaker plays one reply at a time), so that is all to know.
        self._newest_turn = 0
        self._newest_ended = False
        self._closed = False

    def new_mark(self, turn_id: int) -> tuple[int, asyncio.Future[None]]:
        """A fresh marker for the reply of ``turn_id``, and the future it settles.

        The future is done already when that reply is over (or the reports have ended):
        nothing of it is left to play.
        """
        mark = next(_marks)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._over(turn_id):
            future.set_result(None)
        else:
            self._waiting[mark] = (turn_id, future)
            future.add_done_callback(lambda _: self._waiting.pop(mark, None))
        return mark, future

    def on_playout(self, report: Playout) -> None:
        """Settle the waits the speaker's report answers."""
        turn = report.turn_id
        if report.event is PlayoutEvent.REACHED:
            entry = self._waiting.get(report.mark)
            if entry is not None and not entry[1].done():
                entry[1].set_result(None)
            return
        if turn > self._newest_turn:
            self._newest_turn, self._newest_ended = turn, False
        if turn == self._newest_turn and report.event in (
            PlayoutEvent.FINISHED, PlayoutEvent.INTERRUPTED
        ):
            self._newest_ended = True
        for waited, future in list(self._waiting.values()):
            if self._over(waited) and not future.done():
                future.set_result(None)

    def close(self) -> None:
        """No report can come any more: every wait ends, and so will later ones at once."""
        self._closed = True
        for _, future in list(self._waiting.values()):
            if not future.done():
                future.set_result(None)

    def _over(self, turn_id: int) -> bool:
        newest = self._newest_turn
        return self._closed or turn_id < newest or (turn_id == newest and self._newest_ended)
