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
"""

from flowkit_openai.errors import map_openai_error
from flowkit_openai.llm import OpenAILLM, OpenAILLMProvider, to_openai_messages
from flowkit_openai.stt import OpenAISTT, OpenAISTTProvider, wav_bytes
from flowkit_openai.tts import OpenAITTS, OpenAITTSProvider, PCMFramer

__all__ = [
    "OpenAILLM",
    "OpenAILLMProvider",
    "OpenAISTT",
    "OpenAISTTProvider",
    "OpenAITTS",
    "OpenAITTSProvider",
    "PCMFramer",
    "map_openai_error",
    "to_openai_messages",
    "wav_bytes",
]
