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
* once the model is done with the reply, an empty chunk with ``final=True``. A reply that
  was cut gets none, as the LLM node sends none for a reply it cancelled: the TTS node and
  the sink were flushed, and the next reply's turn id ends its text anyway.

The node takes whatever is linked to ``text`` to speak it (it then waits for the sink's
reports on those replies), so the output is for a TTS node, text filters in between
allowed; the text alone is on ``agent_transcripts``.

A model that speaks itself (``output_modality="audio"``) has no such output: its ``text``
attribute is a :class:`NoTextOutput`, which refuses a link with an error that names both
sides and the remedy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

from flowkit.messages import TextChunk
from flowkit.node import Node
from flowkit.ports import In
from flowkit.problems import GraphError, Problem, ProblemKind
from flowkit_openai.realtime.conversation import Reply, SpokenItem

__all__ = ["NoTextOutput", "VoicedText"]


class VoicedText:
    """Sends the text of replies on for a TTS node to speak (see the module).

    Args:
        send: Sends a chunk on the node's ``text`` output.
    """

    def __init__(self, send: Callable[[TextChunk], None]) -> None:
        self._send = send

    def push(self, reply: Reply, item: SpokenItem, text: str, *, done: bool) -> None:
        """Send an item's text delta, or (``done``) the rest of its whole text and a space.

        Marks the reply voiced once some of it went out: the sink will report on it.
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
        self._send(TextChunk(turn_id=reply.turn_id, text=text))

    def end(self, reply: Reply) -> None:
        """The model is done with ``reply``: its last chunk, unless it was cut or is empty."""
        if reply.voiced and not reply.cut:
            self._send(TextChunk(turn_id=reply.turn_id, text="", final=True))


class NoTextOutput:
    """``model.text`` of a model that speaks itself: a link from it is refused.

    Such a model (``output_modality="audio"``) writes no text for a TTS node, so it has no
    ``text`` output port. flowkit's validation has no hook through which a node adds a
    problem of its own, so the refusal is raised where the link is written:
    ``model.text >> tts`` raises :class:`~flowkit.problems.GraphError` with one
    ``invalid-link`` problem naming both sides and the remedy. ``g.connect(model.text, ...)``
    fails on this object with its description (the same remedy), and
    ``g.connect("model.text", ...)`` is reported as an unknown port by validation.

    Args:
        node: The model it stands in for.
    """

    def __init__(self, node: Node) -> None:
        self.node = node

    def problem(self, target: Any) -> Problem:
        """The problem of linking this output to ``target`` (a node, a port, a list, ...)."""
        model = self.node.name or "model"
        names = [self.node.name] + [n.name for n in _nodes(target) if n.name]
        return Problem(
            ProblemKind.INVALID_LINK,
            f"{model}.text >> {_describe(target)}: RealtimeModel {model!r} speaks its replies "
            "itself (output_modality='audio'), so it has no text output for a TTS node; to "
            f"have {_describe(target)} speak them, build it with "
            "RealtimeModel(output_modality='text'), or keep the model's own voice and link "
            f"its speech to the sink ({model} >> speaker) without a TTS node",
            tuple(dict.fromkeys(names)),
        )

    def __rshift__(self, other: Any) -> NoReturn:
        """Refuse the link (see the class)."""
        graph = self.node.graph
        raise GraphError(graph.name if graph is not None else "(none)", [self.problem(other)])

    def __repr__(self) -> str:
        model = self.node.name or "model"
        return (
            f"<no text output: RealtimeModel {model!r} speaks its replies itself "
            "(output_modality='audio'); build it with output_modality='text' for a TTS node "
            "to speak them>"
        )


def _nodes(target: Any) -> list[Node]:
    if isinstance(target, list):
        return [node for item in target for node in _nodes(item)]
    if isinstance(target, Node):
        return [target]
    if isinstance(target, In) and target.node is not None:
        return [target.node]
    return []


def _describe(target: Any) -> str:
    if isinstance(target, list):
        return "[" + ", ".join(_describe(item) for item in target) + "]"
    if isinstance(target, In):
        return target.qualname
    if isinstance(target, Node):
        return target.name or type(target).__qualname__
    if isinstance(target, type):
        return target.__qualname__
    return str(getattr(target, "name", None) or repr(target))  # a subgraph, say
