"""The turn predictor: at each end of speech, does the voice say the turn is over.

The question goes to an audio turn model (see :class:`AudioTurnModel`).

Silence alone says little: people pause mid-sentence ("I'd like to book a table for...
um... four"), and a fixed endpointing delay either cuts them off or keeps everyone waiting.
An audio turn model hears how the speech ended (intonation, a trailing "and", a drawn-out
word) and gives the probability that the turn is complete. :class:`TurnPredictor` keeps
the user's recent audio and, at each end of speech the VAD reports, asks the model about the
utterance that just ended; the :class:`~flowkit.nodes.turn.TurnDetector` (its
``predictions`` input) then waits the short endpointing delay when the turn sounds finished
and the long one when it does not, as LiveKit Agents' turn detector does with text.

What the model hears: the audio from the start of the user's current turn to the end of
speech, at most ``model.max_seconds`` of it (the most recent part). A turn starts at a start
of speech after the model last judged a turn complete, or after more than ``max_pause``
seconds of silence; pauses the model judged mid-turn stay in, so it hears the whole
sentence the user is still building.

The model runs on a worker thread (``ctx.run_in_thread``): the loop and every other session
keep going while it thinks. flowkit-local's ``SmartTurnModel`` (Pipecat's Smart Turn v3, an
ONNX model) is the local one; any object with the :class:`AudioTurnModel` shape works.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pydantic
from livekit import rtc
from numpy.typing import NDArray

from flowkit.audio.frames import samples
from flowkit.messages import TurnPrediction, VADEvent, VADEventKind
from flowkit.node import Node, NodeParams
from flowkit.nodes.audio import mix_channels
from flowkit.ports import AudioFormat, In, Out

__all__ = ["AudioTurnModel", "TurnPredictor"]


@runtime_checkable
class AudioTurnModel(Protocol):
    """A model that tells from the end of an utterance whether the speaker's turn is over.

    Attributes:
        name: A short name, for logs.
        sample_rate: The rate of the audio it takes (the predictor's input must have it).
        max_seconds: The most audio it looks at; the predictor sends at most this much.
    """

    name: str
    sample_rate: int
    max_seconds: float

    def predict(self, audio: NDArray[np.float32]) -> float:
        """The probability, 0 to 1, that the turn ending with ``audio`` is complete.

        Called on a worker thread, never on the event loop.

        Args:
            audio: Mono samples in [-1, 1] at :attr:`sample_rate`, ending at the end of
                speech (the VAD's trailing silence included).
        """
        ...


class TurnPredictor(Node):
    """Predicts, at each end of the user's speech, whether their turn is complete."""

    audio: In[rtc.AudioFrame] = In(default=True, doc="the user's audio, from its first frame")
    vad: In[VADEvent] = In(doc="the same audio's start and end of speech (a VAD's events)")
    predictions: Out[TurnPrediction] = Out(
        default=True, doc="the probability the turn is over, per end of speech"
    )

    class Params(NodeParams):
        """Parameters of :class:`TurnPredictor`."""

        model: Any
        max_pause: float = pydantic.Field(3.0, gt=0.0)
        complete_threshold: float = pydantic.Field(0.5, ge=0.0, le=1.0)
        audio_wait: float = pydantic.Field(0.2, ge=0.0)

    def __init__(
        self,
        model: AudioTurnModel,
        *,
        max_pause: float = 3.0,
        complete_threshold: float = 0.5,
        audio_wait: float = 0.2,
    ) -> None:
        """Create a turn predictor.

        Args:
            model: The audio turn model (e.g. ``flowkit_local.SmartTurnModel()``).
            max_pause: Seconds of silence after which the next speech starts a new turn,
                whatever the model said about the last one.
            complete_threshold: A prediction at or above this ends the turn for the
                predictor's own bookkeeping (the next speech starts a new one); the
                TurnDetector applies its own ``unlikely_threshold`` to choose its delay.
            audio_wait: Seconds an end of speech waits for the audio up to its timestamp
                (a VAD may report the end before the frame that settled it arrives here).

        Raises:
            TypeError: ``model`` does not have the :class:`AudioTurnModel` shape.
        """
        if not isinstance(model, AudioTurnModel):
            raise TypeError(
                f"TurnPredictor(model={model!r}): an audio turn model has name, sample_rate, "
                "max_seconds and predict(audio); see flowkit.nodes.turn_prediction."
                "AudioTurnModel (flowkit_local.SmartTurnModel is one)"
            )
        super().__init__(
            model=model, max_pause=max_pause, complete_threshold=complete_threshold,
            audio_wait=audio_wait,
        )
        # The graph checker then refuses audio at another rate, naming the Resample to add.
        self.audio.format = AudioFormat(model.sample_rate, 1)

    async def run(
        self, audio: AsyncIterator[rtc.AudioFrame], vad: AsyncIterator[VADEvent]
    ) -> None:
        """Keep the audio; predict at each end of speech; end when both inputs end."""
        params = self.params
        assert isinstance(params, TurnPredictor.Params)
        heard = _HeardAudio(params.model.sample_rate, params.model.max_seconds)
        listening = self.ctx.create_task(self._keep(audio, heard), name="audio")
        try:
            turn = _TurnWindow(params.max_pause)
            async for event in vad:
                if event.kind is VADEventKind.START_OF_SPEECH:
                    turn.speech_started(event)
                    continue
                start = turn.speech_ended(event)
                probability = await self._predict(heard, start, event, params)
                turn.judged(probability is not None and probability >= params.complete_threshold)
            await listening
        finally:
            listening.cancel()

    async def _keep(self, audio: AsyncIterator[rtc.AudioFrame], heard: _HeardAudio) -> None:
        async for frame in audio:
            heard.add(frame)
        heard.ended()

    async def _predict(
        self, heard: _HeardAudio, start: float, end: VADEvent, params: TurnPredictor.Params
    ) -> float | None:
        """Ask the model about the audio from ``start`` to the end of speech; send its answer."""
        await heard.reach(end.timestamp, params.audio_wait)
        clip = heard.clip(start, end.timestamp)
        if clip.size == 0:
            return None
        model: AudioTurnModel = params.model
        began = time.perf_counter()
        try:
            probability = float(await self.ctx.run_in_thread(model.predict, clip))
        except Exception:
            # No prediction: the turn detector falls back to its own delay for this turn.
            self.ctx.logger.exception(
                "turn model %s failed on %.2f s of audio", model.name, clip.size / heard.rate
            )
            return None
        self.predictions.send(
            TurnPrediction(
                probability=probability, speech_end=end.timestamp,
                elapsed=time.perf_counter() - began, speaker=end.speaker,
            )
        )
        return probability


class _TurnWindow:
    """Where the user's current turn began, in seconds of audio."""

    def __init__(self, max_pause: float) -> None:
        self.max_pause = max_pause
        self.start: float | None = None  # None: the next speech starts a turn
        self.last_end: float | None = None

    def speech_started(self, event: VADEvent) -> None:
        # The start is decided min_speech_duration into the speech: go back to its onset.
        onset = max(0.0, event.timestamp - event.speech_duration)
        paused_long = self.last_end is not None and onset - self.last_end > self.max_pause
        if self.start is None or paused_long:
            self.start = onset

    def speech_ended(self, event: VADEvent) -> float:
        """The start of the audio to judge for this end of speech."""
        self.last_end = event.timestamp - event.silence_duration
        if self.start is None:  # no start seen (the VAD began mid-speech): the utterance
            self.start = max(0.0, self.last_end - event.speech_duration)
        return self.start

    def judged(self, complete: bool) -> None:
        if complete:
            self.start = None


class _HeardAudio:
    """The most recent audio, mono, kept as the frames' own samples until a clip is cut."""

    def __init__(self, rate: int, max_seconds: float) -> None:
        self.rate = rate
        self.keep = int(rate * max_seconds)
        self.blocks: deque[NDArray[np.int16]] = deque()
        self.kept = 0
        self.total = 0  # samples heard since the first frame
        self.grew = asyncio.Event()
        self.over = False

    def add(self, frame: rtc.AudioFrame) -> None:
        block = samples(frame)
        # A view of a mono frame: no copy per frame; the conversion is paid per clip.
        mono = block[:, 0] if frame.num_channels == 1 else mix_channels(block, 1)[:, 0]
        self.blocks.append(mono)
        self.kept += mono.size
        self.total += mono.size
        # Whole blocks beyond what the model can use are dropped.
        while self.blocks and self.kept - self.blocks[0].size >= self.keep:
            self.kept -= self.blocks.popleft().size
        self.grew.set()

    def ended(self) -> None:
        self.over = True
        self.grew.set()

    async def reach(self, timestamp: float, wait: float) -> None:
        """Wait, at most ``wait`` seconds, until the audio up to ``timestamp`` is here."""
        needed = round(timestamp * self.rate)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while self.total < needed and not self.over:
            self.grew.clear()
            left = deadline - loop.time()
            if left <= 0:
                return
            try:
                await asyncio.wait_for(self.grew.wait(), left)
            except TimeoutError:
                return

    def clip(self, start: float, end: float) -> NDArray[np.float32]:
        """The kept audio from ``start`` to ``end`` (seconds since the first sample)."""
        if not self.blocks:
            return np.zeros(0, np.float32)
        heard = np.concatenate(self.blocks)
        first = self.total - heard.size  # the time, in samples, of heard[0]
        lo = max(round(start * self.rate) - first, 0, heard.size - self.keep)
        hi = min(round(end * self.rate) - first, heard.size)
        if hi <= lo:
            return np.zeros(0, np.float32)
        return heard[lo:hi].astype(np.float32) / np.float32(32768.0)
