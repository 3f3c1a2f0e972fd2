"""The VAD node: start and end of speech, decided by any :class:`~flowkit.vad.VADProvider`.

The node keeps one detector stream per wiring (a restart begins a fresh stream), passes the
audio on unchanged for the nodes after it (``vad >> stt``), and sends a
:class:`~flowkit.messages.VADEvent` for every decision. When the provider needs one sample
rate, the input port declares it, so a graph inserts a resampler in front of the node by
itself.

When the provider makes deferred streams (:func:`~flowkit.vad.is_deferred`, e.g. Silero
batched across sessions), the node asks for one with a callback and sends the events from
it: a decision then goes out up to one event-loop iteration after its audio, while the
audio itself passes through at once as before.
"""

from __future__ import annotations

from typing import Any, cast

from livekit import rtc
from reactivex import Observable

from flowkit.audio.frames import samples
from flowkit.messages import VADEvent
from flowkit.node import Node, NodeParams
from flowkit.nodes.audio import mix_channels
from flowkit.ports import AudioFormat, In, Out
from flowkit.runtime.stage import Stage
from flowkit.vad.contract import (
    DeferredVADProvider,
    VADDecision,
    VADProvider,
    VADStream,
    is_deferred,
)
from flowkit.vad.energy import EnergyVAD

__all__ = ["VAD"]


class VAD(Node):
    """Voice activity detection: passes audio through and sends start/end of speech events."""

    audio: In[rtc.AudioFrame] = In(doc="the speaker's audio")
    passthrough: Out[rtc.AudioFrame] = Out(default=True, doc="the same audio, unchanged")
    events: Out[VADEvent] = Out(doc="start and end of speech")

    class Params(NodeParams):
        """Parameters of :class:`VAD`."""

        provider: Any
        speaker: str = "user"

    def __init__(self, provider: VADProvider | None = None, *, speaker: str = "user") -> None:
        """Create a VAD node.

        Args:
            provider: The detector; :class:`~flowkit.vad.EnergyVAD` (no model) by default.
            speaker: The participant identity put on the events.
        """
        chosen = provider if provider is not None else EnergyVAD()
        if not isinstance(chosen, VADProvider):
            raise TypeError(
                f"VAD(provider={chosen!r}): a VAD provider has sample_rate, window_ms and "
                "stream(); see flowkit.vad.VADProvider"
            )
        super().__init__(provider=chosen, speaker=speaker)
        rate = chosen.sample_rate
        if rate is not None:
            self.audio.format = AudioFormat(rate, 1)

    def wire(self, audio: Observable[rtc.AudioFrame]) -> dict[str, Observable[rtc.AudioFrame]]:
        """Detect on every frame; events go out on ``events``, audio on ``passthrough``."""
        provider: VADProvider = self.params.provider  # type: ignore[attr-defined]
        speaker: str = self.params.speaker  # type: ignore[attr-defined]
        events = self.events
        # False once this wiring ended: a deferred stream must not send into a finished or
        # restarted wiring's port (its pending windows are dropped with it).
        live = [True]

        def send(decisions: list[VADDecision]) -> None:
            if not live[0]:
                return
            for d in decisions:
                events.send(
                    VADEvent(
                        kind=d.kind,
                        timestamp=d.timestamp,
                        speech_duration=d.speech_duration,
                        silence_duration=d.silence_duration,
                        speaker=speaker,
                    )
                )

        stream: VADStream = (
            cast(DeferredVADProvider, provider).stream(on_decisions=send)
            if is_deferred(provider)
            else provider.stream()
        )

        def detect(frame: rtc.AudioFrame) -> tuple[rtc.AudioFrame]:
            block = samples(frame)
            mono = block[:, 0] if frame.num_channels == 1 else mix_channels(block, 1)[:, 0]
            decisions = stream.push(mono, frame.sample_rate)
            if decisions:
                send(decisions)
            return (frame,)

        def complete() -> tuple[()]:
            # The flush also settles a deferred stream's pending windows, so every decision
            # (an utterance still open is closed by it) goes out before the outputs complete.
            send(stream.flush())
            return ()

        def stop() -> None:
            live[0] = False

        return {"passthrough": Stage(audio, detect, complete, stop)}
