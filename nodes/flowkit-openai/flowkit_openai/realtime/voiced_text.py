"""A text reply spoken by the graph: the model's text out as TextChunks for a TTS node.

With ``output_modality="text"`` and the node's ``text`` output linked (``model.text >> tts``),
the model writes the reply and a TTS node speaks it (LiveKit Agents' realtime model with
``modalities=["text"]`` and a TTS of the user's choice). :class:`VoicedText` sends the text
on as :class:`~flowkit.messages.TextChunk` s, the stream the LLM node sends a TTS node, so
the TTS node, the sink, its playout reports and the barge-in flushes work as they do in the
cascaded pipeline:

* each message item's text deltas as they come, tagged with the reply's turn id (the
  responses of a tool round included: the listener hears one reply);
* when an item's text is done, whatever of it the deltas did not carry, then a space: the
  item's last sentence is complete, so the TTS node speaks it now instead of after the tool
  round that may follow (its sentence splitter waits for the whitespace after a full stop),
  and the words of two items never run together;
* when a response that called tools ends and the reply waits for their results, an empty
  chunk with ``flush=True``, as the LLM node sends before a tool round: the text the model
  wrote before its calls ("Let me check the weather", unfinished as it may be) is spoken
  while the tools run, instead of waiting in the TTS node's sentence splitter for the
  reply's next words, which come only after the results and would run into it. None when
  no text went out since the reply's last flush (the response wrote none), as the LLM node
  sends none after a request that wrote no text: the TTS node holds nothing of the reply
  then, and a reply with nothing sent yet is not opened at the TTS node by an empty chunk;
* once the model is done with the reply, an empty chunk with ``final=True``. A reply that
  was cut gets none, as the LLM node sends none for a reply it cancelled: the TTS node and
  the sink were flushed, and the next reply's turn id ends its text anyway.

A reply said from code (``ReplyRequest(say=...)``, :mod:`.say`) goes out the same way, as the
LLM node sends a say: its whole text in one chunk, then the final one, each with the
request's ``allow_interruptions``. What a tool says while the reply waits for it
(:mod:`.tool_speech`) goes out in that reply as the LLM node sends it: one chunk with the
whole text and a space, flushed (``TextChunk(flush=True)``), so the TTS node speaks it at
once; words said while the calling response streamed follow that response's flush.

The node takes whatever is linked to ``text`` to speak it (it then waits for the sink's
reports on those replies), so the output is for a TTS node, text filters in between
allowed; the text alone is on ``agent_transcripts``.

A model that speaks itself (``output_modality="audio"``) writes nothing on ``text``:
validation refuses a link from it (:func:`text_link_problems`), naming both sides and the
remedy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from livekit import rtc

from flowkit.messages import TextChunk
from flowkit.node import Node
from flowkit.problems import Problem, ProblemKind
from flowkit_openai.realtime.conversation import Reply, SpokenItem

if TYPE_CHECKING:
    from flowkit.graph import Edge

__all__ = ["VoicedText", "text_link_problems"]


class VoicedText:
    """Sends the text of replies on for a TTS node to speak (see the module).

    Args:
        send: Sends a chunk on the node's ``text`` output.
    """

    def __init__(self, send: Callable[[TextChunk], None]) -> None:
        self._send = send
        # Replies (turn ids) with text sent since their last flushed chunk: the TTS node may
        # be holding the end of it for the sentence to go on.
        self._unflushed: set[int] = set()

    def push(
        self,
        reply: Reply,
        item: SpokenItem,
        text: str,
        *,
        done: bool,
        audio: tuple[rtc.AudioFrame, ...] | None = None,
    ) -> None:
        """Send an item's text delta, or (``done``) the rest of its whole text and a space.

        Marks the reply voiced once some of it went out: the sink will report on it. With
        ``audio`` (a said reply's recording), the TTS node plays that instead of
        synthesising the text.
        """
        if done:
            said = item.tts_text
            # The deltas carried the text so far; a whole text that does not go on from
            # them (a server that sent none, or other ones) cannot be unsaid: only an
            # ending is added.
            rest = text[len(said):] if text.startswith(said) else ""
            if not (said + rest).strip():
                return
            text = rest + " "
        if not text:
            return
        item.tts_text += text
        reply.voiced = True
        self._unflushed.add(reply.turn_id)
        self._send(TextChunk(turn_id=reply.turn_id, text=text,
                             allow_interruptions=reply.allow_interruptions, audio=audio))

    def sentence(self, reply: Reply, item: SpokenItem, text: str) -> None:
        """Send ``text`` as a sentence of its own in ``reply``: whole, a space, ``flush``.

        What a tool says while the reply waits for it (:mod:`.tool_speech`), as the LLM
        node sends it: flushed, so the TTS node speaks it now, even unfinished ("One
        moment"), instead of holding it in its sentence splitter until the reply's next
        words, which come only after the tool's result, and would run into it. Marks the
        reply voiced.
        """
        text = text + " "
        item.tts_text += text
        reply.voiced = True
        self._unflushed.discard(reply.turn_id)  # this chunk flushes what came before it
        self._send(TextChunk(turn_id=reply.turn_id, text=text, flush=True,
                             allow_interruptions=reply.allow_interruptions))

    def flush(self, reply: Reply) -> None:
        """Have the TTS node speak ``reply``'s text so far now: its tool round starts.

        An empty chunk with ``flush=True``, as the LLM node sends before a tool round, so
        that the model's words before its calls, even unfinished ("Let me check the
        weather"), are heard while the tools run rather than held in the TTS node's
        sentence splitter until the words after the results. Sent only when text went out
        since the reply's last flush, as the LLM node flushes only after a request that
        wrote text: otherwise the TTS node holds nothing of it, and an empty chunk would
        open at the TTS node a reply that has nothing to say yet. It carries no words, so
        no item's :attr:`~.SpokenItem.tts_text` changes and the words heard do not either.
        """
        if reply.turn_id not in self._unflushed or reply.cut:
            return
        self._unflushed.discard(reply.turn_id)
        self._send(TextChunk(turn_id=reply.turn_id, text="", flush=True,
                             allow_interruptions=reply.allow_interruptions))

    def mark(self, reply: Reply, mark: int) -> None:
        """Have the TTS node put playout marker ``mark`` behind ``reply``'s text so far.

        Flushed, so the text before it is spoken now. It carries no words and does not
        make the reply voiced: with no text before it, the speaker reaches it at once.
        """
        self._unflushed.discard(reply.turn_id)
        self._send(TextChunk(turn_id=reply.turn_id, text="", flush=True, mark=mark,
                             allow_interruptions=reply.allow_interruptions))

    def protect(self, reply: Reply) -> None:
        """Tell the TTS node, and through it the speaker, that ``reply`` may not be cut now.

        An empty chunk carrying ``allow_interruptions=False`` (the reply's flag, which the
        caller cleared), as the LLM node sends for a tool's ``ctx.disallow_interruptions()``.
        Not flushed: the TTS node acts on the flag at once, and a flush would have it speak
        the sentence the model is still writing as if it had ended. It opens the reply at
        the TTS node if none of its text went there yet, so the reply counts as voiced: its
        final chunk closes it there, and the sink reports on it.
        """
        reply.voiced = True
        self._send(TextChunk(turn_id=reply.turn_id, text="",
                             allow_interruptions=reply.allow_interruptions))

    def end(self, reply: Reply) -> None:
        """The model is done with ``reply``: its last chunk, unless it was cut or is empty."""
        self._unflushed.discard(reply.turn_id)  # the final chunk ends its text, if any
        if reply.voiced and not reply.cut:
            self._send(TextChunk(turn_id=reply.turn_id, text="", final=True,
                                 allow_interruptions=reply.allow_interruptions))


def text_link_problems(model: Node, edges: Sequence[Edge]) -> list[Problem]:
    """The problem of each link from ``model.text`` of a model that speaks itself.

    Such a model (``output_modality="audio"``) writes no text for a TTS node, so a link
    from its ``text`` output is refused by validation, naming both sides and the remedy.

    Args:
        model: The realtime model node.
        edges: The edges into or out of it.
    """
    name = model.name or "model"
    problems = []
    for edge in edges:
        if edge.src.node is not model or edge.src.name != "text":
            continue
        target = edge.dst.qualname
        names = [name] + ([edge.dst.node.name] if edge.dst.node is not None else [])
        problems.append(
            Problem(
                ProblemKind.INVALID_LINK,
                f"{name}.text >> {target}: RealtimeModel {name!r} speaks its replies itself "
                "(output_modality='audio'), so it writes no text for a TTS node; to have "
                f"{target} speak them, build it with RealtimeModel(output_modality='text'), "
                "or keep the model's own voice and link its speech to the sink "
                f"({name} >> speaker) without a TTS node",
                tuple(dict.fromkeys(names)),
            )
        )
    return problems
