"""``ReplyRequest(say=...)``: a reply from code, spoken as written by the graph's TTS node.

LiveKit Agents' ``session.say(text)`` with a realtime model that writes text and a TTS of
the user's. The Realtime API can only speak what its model generates, so ``say`` needs a
text session (``output_modality="text"``) whose ``text`` output a TTS node speaks
(:mod:`.voiced_text`); a model that speaks itself logs the request with that remedy and
ignores it, unless it comes with a recording (``audio=``): the node then plays that itself,
converted to the session's 24 kHz mono, ``say`` on every frame, and follows it as a voiced
reply (the sink reports the words heard). A said reply:

* replaces what is under way, as the LLM node's ``say`` cancels the reply in progress: the
  response being made is cancelled (``response.cancel``), the responses asked for and not
  started are dropped (or cancelled as they start: their turn is older than the say's, so
  the TTS node would drop their text as stale), and every reply still being made or heard
  is cut, with an ``Interrupt(FLUSH, reason="say")`` for the TTS node and the sink, and made
  to say on the server only what was heard of it (:mod:`.listening`);
* goes to the TTS node as the LLM node sends a say, under a turn of its own (the request's
  ``turn_id``, or a new one): one :class:`~flowkit.messages.TextChunk` with the whole text,
  then the empty ``final=True`` one, both with the request's ``allow_interruptions``;
* joins the server's conversation as an assistant message (``conversation.item.create``
  with ``output_text`` content) under an id of the node's, and the history replayed after a
  reconnection;
* is then followed as a generated voiced reply is: the agent ``thinking`` until the sink
  starts it, ``speaking`` while it plays, its transcript (the words heard) once played out,
  and, when the user cuts it short, its item rewritten on the server to the words heard.

With ``allow_interruptions=False`` the user's speech does not cut it: the node's barge-in
leaves it alone (:meth:`.Listening.barge_in`), and the user's input waits until it has
played (:mod:`.held_input`), requests (a second ``say`` included) too. A flush from the
graph (the node's ``interrupt`` input) still cuts it.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Any

from livekit import rtc

from flowkit.messages import AgentAudio, ReplyRequest, new_turn_id
from flowkit.nodes.audio import convert_recording
from flowkit_openai.realtime.conversation import History, Reply, SpokenItem
from flowkit_openai.realtime.listening import Listening
from flowkit_openai.realtime.options import SAMPLE_RATE
from flowkit_openai.realtime.voiced_text import VoicedText

__all__ = ["SaidReplies"]


class SaidReplies:
    """The replies said from code (see the module).

    Args:
        voicing: Sends their text on for the TTS node; ``None``: there is none (the model
            speaks itself, or its ``text`` output is not linked), so a ``say`` is ignored.
        listening: Follows them to the listener (playout, what was heard).
        history: The conversation's text, for a new connection.
        send: Sends a client event (stamped with an id).
        logger: The node's logger.
        supersede: Cuts what is under way (the response being made, those asked for, the
            replies still being made or heard).
        end_reply: Ends a reply: its final chunk goes out.
    """

    def __init__(
        self,
        voicing: VoicedText | None,
        *,
        listening: Listening,
        history: History,
        send: Callable[[dict[str, Any]], None],
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
        supersede: Callable[[], None],
        end_reply: Callable[[Reply], None],
    ) -> None:
        self.voicing, self.listening, self.history = voicing, listening, history
        self._send, self.log = send, logger
        self._supersede, self._end_reply = supersede, end_reply
        self._ids = itertools.count(1)

    def take(self, request: ReplyRequest) -> None:
        """Have the TTS node speak ``request.say`` in place of what is under way.

        With ``request.audio`` and no TTS node (a model that speaks itself), the node
        plays the recording itself.
        """
        text = request.say or ""
        if self.voicing is None and request.audio is None:
            self.log.warning(
                "ReplyRequest(say=%r) ignored: this RealtimeModel has no TTS node to speak a "
                "given text, and the Realtime API speaks only what its model generates; give "
                "a recording of it (ReplyRequest(say=..., audio=frames)), build it with "
                "RealtimeModel(output_modality='text') and link its text to a TTS node "
                "(model.text >> tts >> speaker), or ask the model with "
                "ReplyRequest(instructions='Say: ...')", text,
            )
            return
        if not text.strip():
            self.log.warning("ReplyRequest(say=%r) ignored: there is nothing to say", text)
            return
        self._supersede()
        turn_id = request.turn_id or new_turn_id()
        reply = self.listening.replies[turn_id] = Reply(
            turn_id, allow_interruptions=request.allow_interruptions
        )
        if request.add_to_history:
            self.listening.entries[turn_id] = self.history.add("assistant")
        item = self.add_item(reply, text, on_server=request.add_to_history)
        if self.voicing is None:
            assert request.audio is not None  # (checked above)
            self._play(reply, text, request.audio)
        else:
            self.voicing.push(reply, item, text, done=False, audio=request.audio)
        self._end_reply(reply)

    def protecting(self) -> bool:
        """A reply that may not be cut is on its way or being heard.

        Said with ``allow_interruptions=False``, or protected by a tool
        (:meth:`.ToolSpeaker.protect`): such a reply may still be made (waiting for its
        tool, or for the response after it) with nothing of it at the speaker yet.
        """
        return any(
            not reply.allow_interruptions
            and (self.listening.playing(reply) or (reply.generating and not reply.cut))
            for reply in self.listening.replies.values()
        )

    def add_item(self, reply: Reply, text: str, *, on_server: bool = True) -> SpokenItem:
        """Add ``text`` to ``reply`` as an item of its own, and to the server's conversation.

        An assistant message (``conversation.item.create``, ``output_text`` content, last in
        the conversation) whose id the node gives (``fk_said_<n>``), so that a cut can
        rewrite it as it rewrites the model's items. Its text is the item's whole
        transcript: it counts in the words heard, the agent's transcript and the history
        entry of ``reply``. A said reply's only item, or what a tool said in its reply
        (:mod:`.tool_speech`). With ``on_server=False`` (a say kept out of the history) the
        server never gets it, and a cut leaves it alone there.
        """
        item = reply.item(f"fk_said_{next(self._ids)}")
        item.transcript, item.transcript_done = [text], True
        item.on_server = on_server
        if on_server:
            self._send({
                "type": "conversation.item.create",
                "item": {"id": item.item_id, "type": "message", "role": "assistant",
                         "content": [{"type": "output_text", "text": text}]},
            })
        return item

    def _play(self, reply: Reply, text: str, audio: tuple[rtc.AudioFrame, ...]) -> None:
        """Play the recording ``audio`` of ``text`` as ``reply``, for a model that speaks itself.

        In the session's audio format, with ``text`` on every frame, then its end marker.
        It is followed as a voiced reply is (the sink reports the words heard, and a cut
        rewrites its item to them), as the server has no audio of it to truncate.
        """
        reply.voiced = True
        turn_id, allow = reply.turn_id, reply.allow_interruptions
        speak = self.listening.effects.speak
        for frame in convert_recording(audio, SAMPLE_RATE, 1):
            speak(AgentAudio(frame=frame, turn_id=turn_id, text=text,
                             allow_interruptions=allow))
        speak(AgentAudio(frame=None, turn_id=turn_id, final=True, allow_interruptions=allow))
