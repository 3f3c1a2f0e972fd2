"""A speech-to-speech realtime model: the OpenAI Realtime API as one flowkit node.

* :mod:`~flowkit_openai.realtime.node`: :class:`RealtimeModel`, the node and its ports.
* :mod:`~flowkit_openai.realtime.options`: :class:`ServerVAD`, :class:`SemanticVAD`,
  :data:`OutputModality` and the ``session.update`` the node sends.
* :mod:`~flowkit_openai.realtime.dialogue`: server events in, flowkit messages out.
* :mod:`~flowkit_openai.realtime.listening`: barge-ins, playout, truncation, what was heard.
* :mod:`~flowkit_openai.realtime.states`: the agent's and the user's states.
* :mod:`~flowkit_openai.realtime.tool_rounds`: function calls out, results back.
* :mod:`~flowkit_openai.realtime.voiced_text`: a text reply out as ``TextChunk`` s for a TTS
  node, and the refusal of that link on a model that speaks itself.
* :mod:`~flowkit_openai.realtime.say`: ``ReplyRequest(say=...)``, spoken by that TTS node.
* :mod:`~flowkit_openai.realtime.tool_speech`: what a tool says while it runs (``ctx.say``),
  spoken by that TTS node in the reply waiting for the tool.
* :mod:`~flowkit_openai.realtime.held_input`: the user's input held while a reply that may
  not be cut plays.
* :mod:`~flowkit_openai.realtime.effects`: what the state machine asks of the node.
* :mod:`~flowkit_openai.realtime.events`: the server events read from the SDK's models.
* :mod:`~flowkit_openai.realtime.conversation`: replies, their items and the history.
* :mod:`~flowkit_openai.realtime.session`: connecting, sending, reconnecting.
* :mod:`~flowkit_openai.realtime.link`: one WebSocket through the ``openai`` SDK.
* :mod:`~flowkit_openai.realtime.audio_in`: the user's audio gathered into appends.
* :mod:`~flowkit_openai.realtime.server_errors`: what an ``error`` event means.
"""

from flowkit_openai.realtime.node import DEFAULT_TURN_DETECTION, RealtimeModel
from flowkit_openai.realtime.options import OutputModality, SemanticVAD, ServerVAD, TurnDetection

__all__ = [
    "DEFAULT_TURN_DETECTION",
    "OutputModality",
    "RealtimeModel",
    "SemanticVAD",
    "ServerVAD",
    "TurnDetection",
]
