"""flowkit-openai: flowkit providers and nodes for any OpenAI-compatible endpoint.

OpenAI itself, or a server that speaks its API (llama.cpp's ``llama_cpp.server``, vLLM,
Ollama's ``/v1``, LocalAI) given its ``base_url``. Each module holds one provider
(implementing a :mod:`flowkit.providers` contract) and a node preconfigured with it, so a
graph can use either ``LLM(OpenAILLMProvider(...))`` or ``OpenAILLM(...)``:

* :mod:`~flowkit_openai.llm`: :class:`OpenAILLMProvider`, :class:`OpenAILLM` (streaming
  chat completions with tools).
* :mod:`~flowkit_openai.stt`: :class:`OpenAISTTProvider`, :class:`OpenAISTT`
  (``/audio/transcriptions``).
* :mod:`~flowkit_openai.tts`: :class:`OpenAITTSProvider`, :class:`OpenAITTS`
  (``/audio/speech`` as streamed PCM).
* :mod:`~flowkit_openai.errors`: how the SDK's exceptions map onto
  :class:`~flowkit.providers.ProviderError`.
* :mod:`~flowkit_openai.realtime`: :class:`RealtimeModel`, a speech-to-speech model on the
  Realtime API (a WebSocket per job) in place of STT, LLM and TTS. Imported on first use,
  so the other nodes do not pay for its WebSocket client.
* :mod:`~flowkit_openai.testing`: test doubles of the servers (the Realtime API).
"""

from typing import TYPE_CHECKING, Any

from flowkit_openai.errors import map_openai_error
from flowkit_openai.llm import OpenAILLM, OpenAILLMProvider, to_openai_messages
from flowkit_openai.stt import OpenAISTT, OpenAISTTProvider, wav_bytes
from flowkit_openai.tts import OpenAITTS, OpenAITTSProvider, PCMFramer

if TYPE_CHECKING:
    from flowkit_openai.realtime import RealtimeModel, SemanticVAD, ServerVAD

_REALTIME = frozenset(("RealtimeModel", "SemanticVAD", "ServerVAD"))

__all__ = [
    "OpenAILLM",
    "OpenAILLMProvider",
    "OpenAISTT",
    "OpenAISTTProvider",
    "OpenAITTS",
    "OpenAITTSProvider",
    "PCMFramer",
    "RealtimeModel",
    "SemanticVAD",
    "ServerVAD",
    "map_openai_error",
    "to_openai_messages",
    "wav_bytes",
]


def __getattr__(name: str) -> Any:
    if name in _REALTIME:
        from flowkit_openai import realtime

        return getattr(realtime, name)
    raise AttributeError(f"module 'flowkit_openai' has no attribute {name!r}")
