"""Speech and language providers: the contracts STT, LLM and TTS nodes call, and helpers.

A provider wraps one service or local model (Whisper, an OpenAI-compatible endpoint, Piper)
behind a small :class:`typing.Protocol`, so that a node works with any of them and tests
can use the scripted fakes of :mod:`flowkit.testing`. Providers are factories shared by
every session; per-stream state lives in the stream objects they make.

* :mod:`~flowkit.providers.stt`: :class:`BatchSTT`, :class:`StreamingSTT`,
  :class:`StreamingSTTFromBatch`.
* :mod:`~flowkit.providers.llm`: :class:`LLMProvider` and its :data:`LLMChunk` values.
* :mod:`~flowkit.providers.tts`: :class:`BatchTTS`, :class:`StreamingTTS`,
  :class:`StreamingTTSFromBatch`.
* :mod:`~flowkit.providers.chat`: :class:`ChatHistory`, :class:`ChatMessage`,
  :class:`ToolSpec`.
* :mod:`~flowkit.providers.fallback`: :class:`FallbackSTT`, :class:`FallbackLLM`,
  :class:`FallbackTTS`.
* :mod:`~flowkit.providers.errors`: :class:`ProviderError` and its kinds.
* :mod:`~flowkit.providers.tts_text`: :func:`strip_markdown`, :func:`strip_emoji`: what
  the TTS node does to a sentence before it is spoken.
"""

from flowkit.providers.chat import ChatHistory, ChatMessage, ChatRole, ToolSpec
from flowkit.providers.errors import (
    ProviderError,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    error_for_status,
)
from flowkit.providers.fallback import AvailabilityChange, FallbackLLM, FallbackSTT, FallbackTTS
from flowkit.providers.llm import (
    LLMChunk,
    LLMMeter,
    LLMProvider,
    TextDelta,
    ToolCallChunk,
    ToolChoice,
    Usage,
)
from flowkit.providers.sentences import SentenceSplitter, split_sentences
from flowkit.providers.stt import (
    BatchSTT,
    SpeechResult,
    StreamingSTT,
    StreamingSTTFromBatch,
    STTMeter,
    STTStream,
)
from flowkit.providers.tts import (
    BatchTTS,
    StreamingTTS,
    StreamingTTSFromBatch,
    TTSMeter,
    TTSStream,
)
from flowkit.providers.tts_text import (
    DEFAULT_TTS_TEXT_TRANSFORMS,
    TextTransform,
    apply_text_transforms,
    strip_emoji,
    strip_markdown,
)
from flowkit.providers.tts_words import (
    TIMED_WORDS_KEY,
    WrittenWords,
    attach_timed_words,
    timed_words,
)

__all__ = [
    "DEFAULT_TTS_TEXT_TRANSFORMS",
    "TIMED_WORDS_KEY",
    "AvailabilityChange",
    "BatchSTT",
    "BatchTTS",
    "ChatHistory",
    "ChatMessage",
    "ChatRole",
    "FallbackLLM",
    "FallbackSTT",
    "FallbackTTS",
    "LLMChunk",
    "LLMMeter",
    "LLMProvider",
    "ProviderError",
    "ProviderRejected",
    "ProviderTimeout",
    "ProviderUnavailable",
    "STTMeter",
    "STTStream",
    "SentenceSplitter",
    "SpeechResult",
    "StreamingSTT",
    "StreamingSTTFromBatch",
    "StreamingTTS",
    "StreamingTTSFromBatch",
    "TTSMeter",
    "TTSStream",
    "TextDelta",
    "TextTransform",
    "ToolCallChunk",
    "ToolChoice",
    "ToolSpec",
    "Usage",
    "WrittenWords",
    "apply_text_transforms",
    "attach_timed_words",
    "error_for_status",
    "split_sentences",
    "strip_emoji",
    "strip_markdown",
    "timed_words",
]
