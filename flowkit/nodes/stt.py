"""The STT node: audio in, interim and final transcripts out.

It takes any :class:`~flowkit.providers.StreamingSTT`; a batch recogniser
(:class:`~flowkit.providers.BatchSTT`) is wrapped with
:class:`~flowkit.providers.StreamingSTTFromBatch`, which cuts utterances with a VAD. One
recognition stream is opened per wiring, at the rate of the first frame, and ended when the
audio ends, so the last utterance is not lost.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from livekit import rtc

from flowkit.audio.frames import samples
from flowkit.messages import Metrics, Transcript, VADEvent, VADEventKind
from flowkit.node import Node, NodeParams
from flowkit.nodes.audio import mix_channels
from flowkit.ports import In, Out
from flowkit.providers.stt import (
    BatchSTT,
    SpeechResult,
    StreamingSTT,
    StreamingSTTFromBatch,
    STTMeter,
    STTStream,
)
from flowkit.runtime.queues import for_each
from flowkit.vad.contract import VADProvider
from flowkit.vad.energy import EnergyVAD, EnergyVADOptions

__all__ = ["STT"]


class STT(Node):
    """Speech to text: sends interim and final transcripts of the audio it hears."""

    audio: In[rtc.AudioFrame] = In(default=True, doc="the speaker's audio")
    speech: In[VADEvent] = In(
        required=False, doc="VAD events, to measure latency from the end of speech"
    )
    transcripts: Out[Transcript] = Out(default=True, doc="interim and final transcripts")
    metrics: Out[Metrics] = Out(doc="latency from end of speech to the final transcript")

    class Params(NodeParams):
        """Parameters of :class:`STT`."""

        provider: Any
        language: str | None = None
        speaker: str = "user"

    def __init__(
        self,
        provider: StreamingSTT | BatchSTT,
        *,
        language: str | None = None,
        speaker: str = "user",
        vad: VADProvider | None = None,
    ) -> None:
        """Create an STT node.

        Args:
            provider: A streaming recogniser, or a batch one (then ``vad`` cuts utterances).
            language: A language hint for the recogniser.
            speaker: The participant identity put on the transcripts.
            vad: For a batch recogniser: the VAD that cuts utterances (an EnergyVAD that
                keeps the utterance audio by default).
        """
        if isinstance(provider, StreamingSTT):
            streaming: StreamingSTT = provider
        elif isinstance(provider, BatchSTT):
            cutter = vad if vad is not None else EnergyVAD(
                EnergyVADOptions(keep_speech_samples=True)
            )
            streaming = StreamingSTTFromBatch(provider, cutter)
        else:
            raise TypeError(
                f"STT(provider={provider!r}): expected a streaming recogniser (stream()) or "
                "a batch one (recognize()); see flowkit.providers.StreamingSTT and BatchSTT"
            )
        super().__init__(provider=streaming, language=language, speaker=speaker)

    async def run(
        self, audio: AsyncIterator[rtc.AudioFrame], speech: AsyncIterator[VADEvent]
    ) -> None:
        """Push the audio into one recognition stream; send what it recognises."""
        provider: StreamingSTT = self.params.provider  # type: ignore[attr-defined]
        # One meter per utterance, oldest first: offline, several utterances can end before
        # the first final transcript comes back.
        meters: deque[STTMeter] = deque()
        watcher = self.ctx.create_task(
            self._watch_speech(speech, meters, provider.name), name="speech"
        )
        stream: STTStream | None = None
        reader: asyncio.Task[None] | None = None
        language: str | None = self.params.language  # type: ignore[attr-defined]

        def push(frame: rtc.AudioFrame) -> None:
            nonlocal stream, reader
            if stream is None:
                stream = provider.stream(frame.sample_rate, language=language)
                reader = self.ctx.create_task(self._read(stream, meters), name="read")
            block = samples(frame)
            stream.push(block[:, 0] if frame.num_channels == 1 else mix_channels(block, 1)[:, 0])

        try:
            # Pushing audio is synchronous by contract, so it runs where each frame is
            # delivered: no task wake-up per 20 ms frame (results come back on `reader`).
            await for_each(audio, push)
            if stream is not None and reader is not None:
                stream.end_input()
                await reader
        finally:
            watcher.cancel()
            if stream is not None:
                await stream.aclose()

    async def _read(self, stream: STTStream, meters: deque[STTMeter]) -> None:
        speaker: str = self.params.speaker  # type: ignore[attr-defined]
        async for result in stream:
            self.transcripts.send(_transcript(result, speaker))
            if result.final and meters:
                metrics = meters.popleft().result(result)
                if metrics is not None:
                    self.metrics.send(metrics)

    async def _watch_speech(
        self, speech: AsyncIterator[VADEvent], meters: deque[STTMeter], provider: str
    ) -> None:
        async for event in speech:
            if event.kind is VADEventKind.END_OF_SPEECH:
                meter = STTMeter(provider, self.name)
                meter.audio_ended(event.speech_duration)
                meters.append(meter)


def _transcript(result: SpeechResult, speaker: str) -> Transcript:
    return Transcript(
        text=result.text,
        final=result.final,
        speaker=speaker,
        language=result.language,
        confidence=result.confidence,
        start_time=result.start_time,
        end_time=result.end_time,
    )
