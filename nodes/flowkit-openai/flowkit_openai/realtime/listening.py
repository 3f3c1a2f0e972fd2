"""What the listener heard: barge-ins, the sink's playout reports, truncation, transcripts.

The model makes audio faster than real time, so when the user speaks over a reply most of
what was made is still queued at the sink. :class:`Listening` cuts such replies (an
``Interrupt(FLUSH)`` for the sink), learns how much of each was played (the sink's
``Playout`` report; with no playout linked, the clock since the reply's first frame, as if
it played in real time from then), truncates the server's items there
(``conversation.item.truncate``, as LiveKit Agents does) and sends the agent's transcript cut
to the words heard once a reply is both made and played out. It also says, for the agent's
state (:mod:`.states`), whether a reply is on its way or being heard.

A text reply that a TTS node speaks (a *voiced* reply, :mod:`.voiced_text`) is followed
through the same sink reports, with two differences. What was heard is the words the sink
reports (``played_text``), since the node knows nothing of the TTS node's audio; a reply
cut before the sink reported it started was not heard at all (the sink may never have had
any of it; it then reports the reply interrupted, nothing played, when the flush reaches
it). And the Realtime API truncates audio only, so a voiced
reply cut short is put right by rewriting its items as LiveKit Agents does: each item the
listener stopped in or never reached is deleted (``conversation.item.delete``) and, if some
of it was heard, created again with the same id in the same place with the words heard
(``conversation.item.create``). That happens once the reply is both made and played out,
so no item is rewritten while the model still writes it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flowkit.messages import Interrupt, InterruptAction, Playout, PlayoutEvent, Transcript
from flowkit_openai.realtime.conversation import HistoryEntry, Reply
from flowkit_openai.realtime.effects import Effects

__all__ = ["Listening"]


class Listening:
    """The listener's side of the replies (see the module).

    Args:
        effects: Where interrupts and transcripts go.
        send: Sends a client event (stamped with an id).
        clock: The loop's clock, in seconds.
        end_reply: Ends a reply the model will not add to any more.

    Attributes:
        replies: The replies not yet over for the listener, by turn id.
        entries: The history entry each reply fills in when its transcript is known.
        playout_linked: The sink's reports come (until the node's playout input ends).
    """

    def __init__(
        self,
        effects: Effects,
        *,
        send: Callable[[dict[str, Any]], None],
        clock: Callable[[], float],
        end_reply: Callable[[Reply], None],
    ) -> None:
        self.effects, self._send, self.clock, self._end_reply = effects, send, clock, end_reply
        self.replies: dict[int, Reply] = {}
        self.entries: dict[int, HistoryEntry] = {}
        self.playout_linked = True

    def barge_in(self, reason: str) -> None:
        """Cut every reply that is still being made or played, but those said not to be.

        A reply said with ``allow_interruptions=False`` plays on, as the
        :class:`~flowkit.nodes.Interruptions` node leaves one alone in the cascaded pipeline
        (this node is where a realtime graph's barge-ins come from).
        """
        for reply in list(self.replies.values()):
            if reply.cut or not reply.allow_interruptions:
                continue
            if reply.generating or self.playing(reply):
                self.cut(reply, reason, notify=True)

    def flush(self, turn_id: int, reason: str) -> None:
        """Cut the replies a flush from the graph names (``0``: all that still play)."""
        for reply in list(self.replies.values()):
            if turn_id in (0, reply.turn_id) and not reply.played_out:
                self.cut(reply, reason, notify=False)

    def cut(self, reply: Reply, reason: str, *, notify: bool) -> None:
        """End ``reply`` for the listener; ``notify`` sends the sink (and TTS) its flush."""
        reply.cut = True
        if reply.voiced:
            if not self.playout_linked:
                reply.played_out = True  # what was heard is unknown: its text so far stands
            elif not reply.started:
                reply.played_text, reply.played_out = "", True
        elif reply.audio_s <= 0:
            reply.played_s, reply.played_out = 0.0, True
        elif not self.playout_linked:
            reply.played_s, reply.played_out = self.clock_played(reply), True
            self.truncate(reply)
        if notify and (reply.audio_s > 0 or reply.voiced):
            self.effects.interrupt(
                Interrupt(turn_id=reply.turn_id, action=InterruptAction.FLUSH, reason=reason)
            )
        if reply.round is not None and reply.round.response_done:
            self._end_reply(reply)  # its tools' results will be sent, but no reply follows
        self.publish(reply)

    def on_playout(self, report: Playout) -> None:
        """The sink's report: whether a reply is playing, what of it was played, if it was cut."""
        reply = self.replies.get(report.turn_id)
        if reply is None or report.event in (PlayoutEvent.PROTECTED, PlayoutEvent.REACHED):
            return  # protected, or a tool's marker reached: it plays on as it was
        reply.audible = report.event in (PlayoutEvent.STARTED, PlayoutEvent.RESUMED)
        reply.started = reply.started or reply.audible
        if report.event not in (PlayoutEvent.FINISHED, PlayoutEvent.INTERRUPTED):
            return
        reply.played_out = True
        reply.played_s = report.played_duration
        reply.played_text = report.played_text
        if report.event is PlayoutEvent.INTERRUPTED:
            reply.cut = True
            self.truncate(reply)
        self.publish(reply)

    def playout_closed(self) -> None:
        """No report can come any more: the clock stands in for the sink."""
        self.playout_linked = False
        for reply in list(self.replies.values()):
            self.publish(reply)

    def truncate(self, reply: Reply) -> None:
        """Cut the server's items of ``reply`` at what was played (once).

        A voiced reply has no audio on the server: :meth:`rewrite` puts it right instead.
        """
        if reply.truncated or reply.played_s is None or reply.voiced:
            return
        reply.truncated = True
        for item_id, end_ms in reply.cut_points(reply.played_s):
            self._send({"type": "conversation.item.truncate", "item_id": item_id,
                        "content_index": 0, "audio_end_ms": end_ms})

    def rewrite(self, reply: Reply) -> None:
        """Make the server's items of a voiced ``reply`` say only what was heard (once)."""
        if reply.truncated or reply.played_text is None:
            return  # without the sink's report nothing better than the text so far is known
        reply.truncated = True
        for item, kept in reply.text_cuts(reply.played_text):
            if not item.on_server:
                continue  # a say kept out of the history: nothing to put right there
            self._send({"type": "conversation.item.delete", "item_id": item.item_id})
            if not kept:
                continue
            create: dict[str, Any] = {
                "type": "conversation.item.create",
                "item": {"id": item.item_id, "type": "message", "role": "assistant",
                         "content": [{"type": "output_text", "text": kept}]},
            }
            if item.placed:  # else it goes last, which is where a reply cut short mostly is
                create["previous_item_id"] = item.previous_item_id or "root"
            self._send(create)

    def publish(self, reply: Reply) -> None:
        """Send the agent's transcript once the reply is made and its fate is known."""
        if reply.published or reply.generating:
            return
        if self.playout_linked and not reply.played_out:
            return
        reply.published = True
        if reply.voiced and reply.cut:
            self.rewrite(reply)
        text = reply.heard()
        entry = self.entries.pop(reply.turn_id, None)
        if entry is not None:
            entry.text = text
        if text:
            self.effects.agent_transcript(
                Transcript(turn_id=reply.turn_id, text=text, speaker="agent")
            )

    def playing(self, reply: Reply) -> bool:
        """Whether some of ``reply`` has not been heard yet."""
        if reply.played_out:
            return False
        if reply.voiced:
            return self.playout_linked  # without reports, a voiced reply is over once made
        if reply.audio_s <= 0:
            return False
        return self.playout_linked or self.clock_played(reply) < reply.audio_s - 1e-3

    def coming(self, reply: Reply) -> bool:
        """Whether ``reply`` is on its way to the listener: being made, or made and queued.

        Queued: the sink has its audio but has not reported it started. A paused reply has
        started, so it is not coming: the agent is quiet and hears the user out, as
        :class:`~flowkit.nodes.state.AgentStates` shows a pause.
        """
        if reply.cut:
            return False
        if reply.generating:
            return True
        at_sink = reply.audio_s > 0 or reply.voiced
        queued = at_sink and not reply.started and not reply.played_out
        return self.playout_linked and queued

    def audible(self, reply: Reply) -> bool:
        """Whether ``reply`` is being heard now: as the sink reports, or else by the clock.

        A cut reply is not: the sink stops it within a frame of the flush.
        """
        if reply.cut:
            return False
        if self.playout_linked:
            return reply.audible
        return reply.first_audio_at is not None and self.clock_left(reply) > 0

    def clock_left(self, reply: Reply) -> float:
        """Without playout reports: seconds of ``reply`` received that are still to play."""
        left = reply.audio_s - self.clock_played(reply)
        return left if left > 1e-3 else 0.0

    def clock_played(self, reply: Reply) -> float:
        """Without playout reports: what real-time playback from the first frame has played."""
        if reply.first_audio_at is None:
            return 0.0
        return min(reply.audio_s, max(0.0, self.clock() - reply.first_audio_at))

    def prune(self) -> None:
        """Forget the replies that are over for the listener."""
        for turn_id, reply in list(self.replies.items()):
            if reply.published and not self.playing(reply):
                del self.replies[turn_id]
