"""Voice activity detection: the provider contract and a detector that needs no model.

A :class:`VADProvider` makes one :class:`VADStream` per audio stream; a stream turns 16-bit
mono PCM into :class:`VADDecision` values (start and end of speech). :class:`EnergyVAD` is
the built-in provider, numpy only, so that a voice graph can run without any model.
"""

from flowkit.vad.contract import (
    DecisionCallback,
    DeferredVADProvider,
    PCMSamples,
    VADDecision,
    VADProvider,
    VADStream,
    check_pcm,
    is_deferred,
)
from flowkit.vad.energy import (
    EnergyVAD,
    EnergyVADOptions,
    EnergyVADStream,
    SpeechOptions,
    WindowedVADStream,
)

__all__ = [
    "DecisionCallback",
    "DeferredVADProvider",
    "EnergyVAD",
    "EnergyVADOptions",
    "EnergyVADStream",
    "PCMSamples",
    "SpeechOptions",
    "VADDecision",
    "VADProvider",
    "VADStream",
    "WindowedVADStream",
    "check_pcm",
    "is_deferred",
]
