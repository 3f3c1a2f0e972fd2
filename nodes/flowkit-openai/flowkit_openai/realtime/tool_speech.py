"""What a tool says while it runs (``await ctx.say(...)``), spoken by the graph's TTS node.

The :class:`~flowkit.nodes.tools.ToolRouter`'s ``speech`` output, linked to the node's
``tool_speech`` input, brings a :class:`~flowkit.messages.ToolSpeech` for each ``ctx.say``.
As with the LLM node, the words belong to the reply that made the call, and only while that
reply waits for the call's result: the call is in a tool round of the reply of the
message's turn, it has no result yet (nor the timeout's error result), and the reply was not
cut (by the user, a flush or a ``say``). Anything else (an unknown or answered call, another
turn, a cut reply, a connection lost meanwhile) is dropped with a debug log naming the tool
and its words, as the LLM node drops them.

The Realtime API speaks only what its model generates, so only a text session whose ``text``
output a TTS node speaks (:mod:`.voiced_text`) can say them. There, what a tool says:

* goes to the TTS node in the reply, under its turn and ``allow_interruptions``, as a
  sentence of its own, flushed so that it is spoken at once (:meth:`.VoicedText.sentence`);
* joins the server's conversation as an assistant message the node names
  (:meth:`.SaidReplies.add_item`), last in it when sent. The router gets each call as the
  call's item is done, before the response that made it ends; words that come meanwhile
  wait for that end (``response.done``), so that they follow every item of that response,
  on the server and at the TTS node, rather than cut into its text. They go before the
  ``response.create`` that continues the reply, and before the call's
  ``function_call_output`` when the tool speaks before it returns (each result is sent as it
  comes). So the model reads its text, its call, what the tool said, the output, and goes
  on after them; a ``function_call_output`` only needs its call to be in the conversation,
  so a message between the two is accepted (the chat APIs' rule that results follow their
  call at once, which has the LLM node keep the words on the calling message, is not the
  Realtime API's);
* is an item of the reply for the listener (:mod:`.listening`): the sink's reports on the
  reply cover it (the agent ``speaking`` while it plays), its words count in the words heard,
  and when the user cuts the reply short in it or before it, its item is rewritten on the
  server to the words heard (or deleted), as the model's items are. The reply's history
  entry, which a reconnection replays, is the reply's text with these words in their place
  (or the words heard of it).

A tool's ``ctx.disallow_interruptions()`` (a ``ToolSpeech`` with ``allow_interruptions=False``)
makes the reply waiting for it one that may not be cut, from then until it ends, as a
``ReplyRequest(allow_interruptions=False)`` makes a reply from its start, and as the LLM node
does for a tool (:meth:`ToolSpeaker.protect`): the server's barge-ins leave it alone
(:meth:`.Listening.barge_in`), a flush that is not forced does too, and the user's audio,
commits and requests wait until it has played, then reach the server in order
(:mod:`.held_input`). The flag rides on the reply's later text chunks or audio, and the
speaker is told at once (an empty chunk for the TTS node, a frameless ``AgentAudio`` behind
the model's audio), so it reports the reply ``PROTECTED`` and no flush that is not forced
stops it; a reply the speaker has nothing of yet gets the flag with its first audio. A
request for a reply that has moved on (cut, answered, another turn) is dropped with a debug
log, as the LLM node drops it.

A tool's ``ctx.wait_for_playout()`` is: its playout marker goes behind what the reply has
said, once the calling response is done (as words do): to the TTS node in a text session
(:meth:`.VoicedText.mark`), or to the speaker behind the model's audio in one that speaks
itself. The speaker reports reaching it to the ToolRouter.

A model that speaks itself (``output_modality="audio"``), or a text one whose ``text`` is not
linked, has no voice for a given text: the first words a tool says in a run are logged as a
warning with the remedy, and all are dropped; nothing is sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flowkit.messages import AgentAudio, ToolSpeech
from flowkit_openai.realtime.conversation import Reply
from flowkit_openai.realtime.say import SaidReplies
from flowkit_openai.realtime.tool_rounds import ToolRounds
from flowkit_openai.realtime.voiced_text import VoicedText

__all__ = ["ToolSpeaker"]


class ToolSpeaker:
    """Speaks what tools say in the replies waiting for them (see the module).

    Args:
        voicing: Sends text on for the TTS node; ``None``: there is none (the model speaks
            itself, or its ``text`` output is not linked), so tools' words are dropped.
        tools: The replies' tool rounds (which call a reply still waits for).
        said: Adds an item the node names to a reply and to the server's conversation.
        speak: Sends audio (a playout marker) to the speaker, behind the model's own.
        logger: The node's logger.
    """

    def __init__(
        self,
        voicing: VoicedText | None,
        *,
        tools: ToolRounds,
        said: SaidReplies,
        speak: Callable[[AgentAudio], None],
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
    ) -> None:
        self.voicing, self.tools, self.said, self.log = voicing, tools, said, logger
        self._speak_audio = speak
        # Words that came while the response that made their call still streamed, by turn.
        self._held: dict[int, list[ToolSpeech]] = {}
        self._warned = False

    def take(self, speech: ToolSpeech) -> None:
        """Speak ``speech`` in its reply now, after its calling response, or drop it."""
        if speech.mark:
            self._take_mark(speech)
            return
        if not speech.allow_interruptions:
            self._take_protection(speech)
            if not speech.text.strip():
                return
        if self.voicing is None:
            self._no_voice(speech)
            return
        reply = self.tools.awaiting(speech.call_id)
        if reply is None:
            self._drop(speech, "its reply no longer waits for that call: answered, timed out or "
                               "unknown")
        elif reply.turn_id != speech.turn_id:
            self._drop(speech, f"its call is of turn {reply.turn_id}, not {speech.turn_id}")
        elif reply.cut:
            self._drop(speech, "its reply was cut")
        elif not speech.text.strip():
            self._drop(speech, "it is blank")
        elif reply.round is not None and not reply.round.response_done:
            self._held.setdefault(reply.turn_id, []).append(speech)
        else:
            self._speak(self.voicing, reply, speech)

    def response_ended(self, reply: Reply) -> None:
        """The response that made ``reply``'s calls is done: say what waited for that.

        Called before the reply's tool round goes on, so the words come before the next
        response of the reply.
        """
        for speech in self._held.pop(reply.turn_id, []):
            if speech.mark:
                self._mark(reply, speech.mark)
            elif self.voicing is not None:
                self._speak(self.voicing, reply, speech)

    def reply_ended(self, reply: Reply) -> None:
        """The model is done with ``reply``: words still waiting for its response are dropped."""
        for speech in self._held.pop(reply.turn_id, []):
            self._drop(speech, "its reply ended before the response that made the call did")

    def _speak(self, voicing: VoicedText, reply: Reply, speech: ToolSpeech) -> None:
        text = speech.text.strip()
        item = self.said.add_item(reply, text)
        voicing.sentence(reply, item, text)

    def _take_mark(self, speech: ToolSpeech) -> None:
        """Put a playout marker in the reply after what it said so far, or drop it."""
        reply = self.tools.awaiting(speech.call_id)
        if reply is None or reply.turn_id != speech.turn_id or reply.cut:
            # The ToolRouter stops waiting when the speaker reports the reply over.
            self._drop(speech, "its reply no longer waits for the call")
        elif reply.round is not None and not reply.round.response_done:
            self._held.setdefault(reply.turn_id, []).append(speech)
        else:
            self._mark(reply, speech.mark)

    def _mark(self, reply: Reply, mark: int) -> None:
        if self.voicing is not None:
            self.voicing.mark(reply, mark)
        else:
            # Behind the model's audio of the reply so far, on its way to the speaker.
            self._speak_audio(AgentAudio(
                turn_id=reply.turn_id, frame=None, mark=mark,
                allow_interruptions=reply.allow_interruptions,
            ))

    def _drop(self, speech: ToolSpeech, why: str) -> None:
        self.log.debug("dropped what tool %r said (%s): %r", speech.name, why, speech.text)

    def _take_protection(self, speech: ToolSpeech) -> None:
        """Protect the reply waiting for ``speech``'s call, or drop the request (too late)."""
        reply = self.tools.awaiting(speech.call_id)
        if reply is None or reply.turn_id != speech.turn_id or reply.cut:
            self.log.debug(
                "dropped ctx.disallow_interruptions() of tool %r: its reply no longer waits "
                "for the call (cut, answered, timed out or of another turn)", speech.name,
            )
            return
        self.protect(reply)

    def protect(self, reply: Reply) -> None:
        """From now until it ends, only a forced flush cuts ``reply`` (see the module).

        The speaker learns it at once, not with the reply's next audio: the tool may run for
        a while, and what the speaker plays meanwhile must not be stopped either.
        """
        if not reply.allow_interruptions:
            return  # said that way, or protected by an earlier tool
        reply.allow_interruptions = False
        if self.voicing is not None:
            # The TTS node passes it on to the speaker, and opens the reply for it if none of
            # its text came yet; the reply's final chunk will then close it there.
            self.voicing.protect(reply)
        elif reply.audio_s > 0:
            # Without audio at the speaker, a marker would open a reply there that no end
            # marker closes (a reply without audio has none); its first frame carries the flag.
            self._speak_audio(AgentAudio(turn_id=reply.turn_id, frame=None,
                                         allow_interruptions=False))

    def _no_voice(self, speech: ToolSpeech) -> None:
        if self._warned:
            self.log.debug("dropped what tool %r said (no TTS node speaks for this model): %r",
                           speech.name, speech.text)
            return
        self._warned = True
        self.log.warning(
            "tool %r said %r (ctx.say), which is dropped, as is whatever tools say later in "
            "this run: this RealtimeModel has no TTS node to speak a given text, and the "
            "Realtime API speaks only what its model generates; build it with "
            "RealtimeModel(output_modality='text') and link its text to a TTS node "
            "(model.text >> tts >> speaker), or have the tool return those words in its "
            "result for the model to say", speech.name, speech.text,
        )
