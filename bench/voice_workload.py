"""The voice-session v1 workload (issue 7): audio, providers, room I/O and the session graph.

Everything here is specific to the benchmark and lives in ``bench/``, not in flowkit:

- the user's audio: one loop of [2.5 s of speech, 6 s of silence] at 48 kHz, made once with
  ``espeak-ng -s 120 "what is the weather in paris today"`` (or flowkit-local's espeak provider
  on a machine without the CLI), trimmed, resampled and padded;
- :class:`Feeder`: ONE task that paces every session's input in real time (frame k of every
  session is due at t0 + k * 20 ms; late frames catch up, none is skipped);
- :class:`BenchIO`: the room I/O of one session: its input fed by the feeder, its output
  playing in real time (20 ms of clock per 20 ms of audio) and recording when each reply's
  first frame starts playing;
- the providers with the workload's exact timings (:class:`WorkloadSTT`, :class:`WorkloadLLM`,
  :class:`WorkloadTTS`) and :class:`TokenTTS`, a TTS node that streams the reply's text into
  the provider token by token (the stock ``TTS`` node cuts sentences first);
- :func:`build_session_graph`: one flowkit graph per session.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import shutil
import subprocess
import tempfile
import wave
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soxr
from livekit import rtc

import flowkit as fk
from flowkit.audio.frames import frame_from_samples
from flowkit.messages import (
    AgentAudio,
    Interrupt,
    InterruptAction,
    TextChunk,
    Transcript,
    VADEventKind,
)
from flowkit.nodes import audio, interrupt, llm, room, stt, turn, turn_prediction, vad
from flowkit.providers.chat import ChatMessage, ToolSpec
from flowkit.providers.llm import LLMChunk, TextDelta
from flowkit.providers.stt import SpeechResult
from flowkit.vad.contract import (
    DecisionCallback,
    PCMSamples,
    VADDecision,
    VADProvider,
    VADStream,
    is_deferred,
)

SENTENCE = "what is the weather in paris today"
RATE_IN = 48_000
FRAME_S = 0.020
FRAME_IN = 960  # samples per 20 ms at 48 kHz
SPEECH_S = 2.5
SILENCE_S = 6.0
LOOP_FRAMES = round((SPEECH_S + SILENCE_S) / FRAME_S)  # 425
STT_DELAY = 0.100
LLM_TTFT = 0.200
LLM_GAP = 0.020
TTS_TTFA = 0.100
PROVIDERS_S = STT_DELAY + LLM_TTFT + TTS_TTFA  # the 400 ms of fake providers
TTS_RATE = 24_000
TONE_HZ = 220.0
TONE_CHUNKS = 20  # of 100 ms: 2.0 s
REPLY = (
    "It is sunny in Paris today with a light breeze, a high of about twenty two degrees and "
    "clear skies."
)
REPLY_TOKENS: tuple[TextDelta, ...] = tuple(
    TextDelta(word if i == 0 else " " + word) for i, word in enumerate(REPLY.split())
)
assert len(REPLY_TOKENS) == 20, len(REPLY_TOKENS)
REPLY_GAP = 0.25  # seconds of silence at the output that separate two replies
TRIM_LEVEL = 328  # |sample| below -40 dBFS at either end is trimmed as silence


# --- the user's audio -----------------------------------------------------------------------


def _espeak_cli(path: Path) -> tuple[np.ndarray, int]:
    subprocess.run(["espeak-ng", "-s", "120", SENTENCE, "-w", str(path)], check=True)
    with wave.open(str(path)) as wav:
        rate = wav.getframerate()
        data = np.frombuffer(wav.readframes(wav.getnframes()), np.int16)
    return data, rate


def _espeak_library() -> tuple[np.ndarray, int]:
    from flowkit_local.espeak import EspeakTTSOptions, EspeakTTSProvider

    # The CLI's default voice is "en"; 120 words per minute as with -s 120. Synchronous:
    # this runs inside the benchmark's event loop, before the sessions start.
    provider = EspeakTTSProvider(EspeakTTSOptions(voice="en", rate=120))
    return provider.synthesize_sync(SENTENCE), provider.sample_rate


def speech_loop() -> tuple[list[rtc.AudioFrame], int, str, float]:
    """One content loop as 48 kHz 20 ms frames.

    Returns:
        The frames (425), the index of the last frame holding speech, which synthesiser made
        the speech, and the trimmed speech's duration in seconds.
    """
    if shutil.which("espeak-ng"):
        with tempfile.TemporaryDirectory() as tmp:
            pcm, rate = _espeak_cli(Path(tmp) / "speech.wav")
        source = "espeak-ng CLI (-s 120)"
    else:
        pcm, rate = _espeak_library()
        source = "flowkit_local.EspeakTTSProvider (libespeak-ng from espeakng-loader, rate 120)"
    loud = np.nonzero(np.abs(pcm.astype(np.int32)) >= TRIM_LEVEL)[0]
    pcm = pcm[loud[0] : loud[-1] + 1]
    speech = soxr.resample(pcm, rate, RATE_IN, quality="HQ")
    limit = round(SPEECH_S * RATE_IN)
    if speech.size > limit:
        raise RuntimeError(f"the speech is {speech.size / RATE_IN:.2f} s, longer than 2.5 s")
    content = np.zeros(LOOP_FRAMES * FRAME_IN, np.int16)
    content[: speech.size] = speech
    last_speech_frame = math.ceil(speech.size / FRAME_IN) - 1
    frames = [
        frame_from_samples(content[i * FRAME_IN : (i + 1) * FRAME_IN].copy(), RATE_IN)
        for i in range(LOOP_FRAMES)
    ]
    return frames, last_speech_frame, source, speech.size / RATE_IN


def tone_chunks() -> tuple[rtc.AudioFrame, ...]:
    """The fake TTS's reply: 2.0 s of 220 Hz at 24 kHz as 20 frames of 100 ms (shared)."""
    per = TTS_RATE // 10
    t = np.arange(per * TONE_CHUNKS) / TTS_RATE
    tone = (0.3 * 32767 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.int16)
    return tuple(
        frame_from_samples(tone[i * per : (i + 1) * per].copy(), TTS_RATE)
        for i in range(TONE_CHUNKS)
    )


# --- what each session records ----------------------------------------------------------------


class Lateness:
    """Input lateness of every frame while measuring: a histogram at 0.1 ms (no growth)."""

    BINS = 100_000  # 10 s

    def __init__(self) -> None:
        self.measuring = False
        self.counts = [0] * (self.BINS + 1)
        self.total = 0

    def add(self, seconds: float) -> None:
        index = int(seconds * 10_000.0)
        if index < 0:
            index = 0
        elif index > self.BINS:
            index = self.BINS
        self.counts[index] += 1
        self.total += 1

    def percentile(self, q: float) -> float:
        """The q-th percentile in seconds (upper edge of its 0.1 ms bin)."""
        if not self.total:
            return math.nan
        need = q / 100.0 * self.total
        seen = 0
        for index, count in enumerate(self.counts):
            seen += count
            if seen >= need and count:
                return (index + 1) / 10_000.0
        return self.BINS / 10_000.0

    @property
    def max(self) -> float:
        for index in range(self.BINS, -1, -1):
            if self.counts[index]:
                return (index + 1) / 10_000.0
        return math.nan


class Session:
    """One session's I/O and its timeline (loop times, seconds)."""

    def __init__(
        self, index: int, offset: int, lateness: Lateness, pull_input: bool = False
    ) -> None:
        self.index = index
        self.offset = offset  # frames: session i starts i/N of a loop later
        self.input = FeedInput(lateness) if pull_input else PushFeedInput(lateness)
        self.io = BenchIO(self)
        self.stt_stream: _STTStream | None = None
        self.speech_end: list[float] = []  # the last speech frame of a loop was fed
        self.vad_end: list[float] = []  # the VAD decided end of speech
        self.stt_final: list[float] = []  # the final transcript was given
        self.llm_request: list[float] = []  # the LLM request started
        self.tts_first_text: list[float] = []  # the TTS got its first text of a reply
        self.play_start: list[float] = []  # a reply's first frame started playing

    def end_of_speech(self, now: float) -> None:
        self.vad_end.append(now)
        if self.stt_stream is not None:
            self.stt_stream.ask(now)


# --- room I/O: one feeder for all sessions, paced outputs --------------------------------------


class FeedInput:
    """One session's input, handed over by the feeder and read with :meth:`frames`.

    The pull path: ``RoomSource``'s task wakes up for every frame. :class:`PushFeedInput`
    is the push path the benchmark uses by default; ``--pull-input`` selects this one, to
    compare the two.
    """

    def __init__(self, lateness: Lateness) -> None:
        self.frames_due: deque[tuple[rtc.AudioFrame, float]] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.ended = False
        self.lateness = lateness

    def push(self, frame: rtc.AudioFrame, due: float) -> None:
        self.frames_due.append((frame, due))
        self._wake()

    def end(self) -> None:
        self.ended = True
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def frames(self) -> AsyncIterator[rtc.AudioFrame]:
        loop = asyncio.get_running_loop()
        pending, lateness = self.frames_due, self.lateness
        while True:
            while pending:
                frame, due = pending.popleft()
                if lateness.measuring:
                    lateness.add(loop.time() - due)
                yield frame
            if self.ended:
                return
            self.waiter = loop.create_future()
            await self.waiter
            self.waiter = None


class PushFeedInput(FeedInput):
    """A push input (:class:`~flowkit.room_io.PushAudioInput`).

    Once ``RoomSource`` calls :meth:`deliver`, the feeder's push hands each frame straight
    into the graph, as a transport's callback would.
    """

    def __init__(self, lateness: Lateness) -> None:
        super().__init__(lateness)
        self.on_frame: Callable[[rtc.AudioFrame], None] | None = None
        self.failure: BaseException | None = None
        # Set by deliver(): asyncio.get_running_loop() per frame would cost a getpid()
        # system call each time on Python 3.11 (docs/performance.md, item 16).
        self.loop: asyncio.AbstractEventLoop | None = None

    def push(self, frame: rtc.AudioFrame, due: float) -> None:
        on_frame = self.on_frame
        if on_frame is None:
            super().push(frame, due)
            return
        if self.lateness.measuring:
            assert self.loop is not None
            self.lateness.add(self.loop.time() - due)
        try:
            on_frame(frame)
        except Exception as exc:  # one session's failure must not stop the feeder
            self.on_frame = None
            self.failure = exc
            self._wake()

    async def deliver(self, on_frame: Callable[[rtc.AudioFrame], None]) -> None:
        loop = self.loop = asyncio.get_running_loop()
        while self.frames_due:
            on_frame(self.frames_due.popleft()[0])
        self.on_frame = on_frame
        try:
            while not self.ended and self.failure is None:
                self.waiter = loop.create_future()
                await self.waiter
        finally:
            self.on_frame = None
            self.waiter = None
        if self.failure is not None:
            raise self.failure


class PacedOutput:
    """Plays in real time: each 20 ms of audio takes 20 ms of clock (accumulated deadlines).

    ``write`` returns when the frame's last 20 ms piece starts playing. A write after more
    than ``REPLY_GAP`` of silence starts a reply: its time is recorded in
    ``Session.play_start``.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self.head = -math.inf  # when the audio written so far ends

    @property
    def paced(self) -> bool:
        return True

    async def write(self, frame: rtc.AudioFrame) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now - self.head > REPLY_GAP:
            self.session.play_start.append(now)
            self.head = now
        elif self.head < now:
            self.head = now  # an underrun: play on from now
        pieces = max(1, round(frame.samples_per_channel / frame.sample_rate / FRAME_S))
        for _ in range(pieces):
            start = self.head
            if start > now:
                await asyncio.sleep(start - now)
                now = loop.time()
            self.head = start + FRAME_S

    def clear(self) -> None:
        self.head = min(self.head, asyncio.get_running_loop().time())

    async def aclose(self) -> None:
        return None


class BenchIO:
    """The :class:`~flowkit.room_io.RoomIO` of one session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def audio_input(
        self, sample_rate: int, num_channels: int, participant: str | None = None
    ) -> FeedInput:
        if (sample_rate, num_channels) != (RATE_IN, 1):
            raise ValueError("the workload's input is 48 kHz mono")
        return self.session.input

    def audio_output(self, sample_rate: int, num_channels: int) -> PacedOutput:
        return PacedOutput(self.session)

    def publish_transcript(self, transcript: Transcript) -> None:
        return None


class Feeder:
    """ONE task pacing every session: frame k is due at t0 + k * 20 ms, late ones catch up.

    That is voice-session v1: every session's frame k in one callback. With ``phases`` > 1
    (a variant, not v1) the sessions are dealt into that many groups and group g's frames
    are due g/phases of a frame later than group 0's, so frames of different sessions
    arrive at different moments, as a transport delivers them, and the batched VAD sees
    smaller batches.
    """

    def __init__(
        self,
        sessions: Sequence[Session],
        frames: Sequence[rtc.AudioFrame],
        last_speech: int,
        phases: int = 1,
    ) -> None:
        if phases < 1:
            raise ValueError(f"phases must be at least 1, got {phases}")
        self.sessions = sessions
        self.groups = [list(sessions[g::phases]) for g in range(phases)]
        self.frames = frames
        self.last_speech = last_speech
        self.ticks = 0
        self.t0 = 0.0
        self.burst_ends: list[float] = []  # v1: when each tick's frames were all pushed

    async def run(self, t0: float) -> None:
        loop = asyncio.get_running_loop()
        self.t0 = t0
        frames, last, size = self.frames, self.last_speech, len(self.frames)
        phases = len(self.groups)
        k = 0
        while True:
            for phase, group in enumerate(self.groups):
                due = t0 + (k + phase / phases) * FRAME_S
                # Always await: a feeder that is behind still lets the sessions run between
                # ticks.
                await asyncio.sleep(max(0.0, due - loop.time()))
                now = loop.time()
                for session in group:
                    position = (k - session.offset) % size
                    session.input.push(frames[position], due)
                    if position == last:
                        session.speech_end.append(now)
                if phases == 1:
                    self.burst_ends.append(loop.time())
            k += 1
            self.ticks = k


# --- providers with the workload's timings ----------------------------------------------------


class TappedVAD:
    """The shared Silero provider, telling the session when it decides an end of speech.

    The fake STT is asked at the end of the user's speech, as a batch recogniser behind a
    VAD is (LiveKit's StreamAdapter, flowkit's StreamingSTTFromBatch); this is how it learns
    of it without a second VAD. It passes the inner provider's ``deferred`` capability on,
    so a batching Silero provider (``SileroVADProvider(batch=True)``) is batched here too;
    the end of speech is then recorded when the callback delivers it, one loop iteration
    after its audio.
    """

    def __init__(self, inner: Any, session: Session) -> None:
        self.inner = inner
        self.session = session

    @property
    def sample_rate(self) -> int | None:
        return self.inner.sample_rate  # type: ignore[no-any-return]

    @property
    def window_ms(self) -> float:
        return self.inner.window_ms  # type: ignore[no-any-return]

    @property
    def deferred(self) -> bool:
        return is_deferred(self.inner)

    def stream(self, on_decisions: DecisionCallback | None = None) -> VADStream:
        session = self.session
        if on_decisions is None:
            return _TappedStream(self.inner.stream(), session)

        def tapped(decisions: list[VADDecision]) -> None:
            _tap(session, decisions)
            on_decisions(decisions)

        stream: VADStream = self.inner.stream(on_decisions=tapped)
        # The batching Silero stream returns nothing from push inside a running loop (every
        # decision comes through ``tapped``), so its push needs no wrapper: a Python call
        # less per frame and session.
        return stream


def _tap(session: Session, decisions: list[VADDecision]) -> None:
    for decision in decisions:
        if decision.kind is VADEventKind.END_OF_SPEECH:
            session.end_of_speech(asyncio.get_running_loop().time())


class _TappedStream:
    __slots__ = ("inner", "session")

    def __init__(self, inner: VADStream, session: Session) -> None:
        self.inner = inner
        self.session = session

    def push(self, samples: PCMSamples, sample_rate: int) -> list[VADDecision]:
        decisions = self.inner.push(samples, sample_rate)
        if decisions:
            _tap(self.session, decisions)
        return decisions

    def flush(self) -> list[VADDecision]:
        return self.inner.flush()


class WorkloadSTT:
    """The final transcript of the sentence, 100 ms after it is asked (end of user speech)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    @property
    def name(self) -> str:
        return "workload-stt"

    def stream(self, sample_rate: int, *, language: str | None = None) -> _STTStream:
        stream = _STTStream(self.session)
        self.session.stt_stream = stream
        return stream


class _STTStream:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.loop = asyncio.get_running_loop()
        self.results: asyncio.Queue[SpeechResult | None] = asyncio.Queue()
        self.closed = False

    def push(self, samples: PCMSamples) -> None:
        return None  # the transcript is scripted; the audio only has to reach the node

    def ask(self, now: float) -> None:
        self.loop.call_at(now + STT_DELAY, self._answer)

    def _answer(self) -> None:
        if self.closed:
            return
        self.session.stt_final.append(self.loop.time())
        self.results.put_nowait(SpeechResult(text=SENTENCE, final=True, language="en"))

    def end_input(self) -> None:
        self.results.put_nowait(None)

    async def aclose(self) -> None:
        self.closed = True
        self.results.put_nowait(None)

    def __aiter__(self) -> _STTStream:
        return self

    async def __anext__(self) -> SpeechResult:
        item = await self.results.get()
        if item is None:
            raise StopAsyncIteration
        return item


class WorkloadLLM:
    """First token 200 ms after the request, then the rest of 20 word tokens 20 ms apart."""

    def __init__(self, session: Session) -> None:
        self.session = session

    @property
    def name(self) -> str:
        return "workload-llm"

    def chat(
        self,
        history: Sequence[ChatMessage],
        tools: Sequence[ToolSpec] = (),
        *,
        tool_choice: str = "auto",
    ) -> AsyncIterator[LLMChunk]:
        return self._answer()

    async def _answer(self) -> AsyncIterator[LLMChunk]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        self.session.llm_request.append(start)
        for index, token in enumerate(REPLY_TOKENS):
            # Deadlines from the request, so the timings do not drift with the loop.
            await asyncio.sleep(max(0.0, start + LLM_TTFT + index * LLM_GAP - loop.time()))
            yield token


class WorkloadTTS:
    """A streaming TTS: 100 ms after its first text, 20 chunks of 100 ms of tone, no waits."""

    def __init__(self, session: Session, chunks: tuple[rtc.AudioFrame, ...]) -> None:
        self.session = session
        self.chunks = chunks

    @property
    def name(self) -> str:
        return "workload-tts"

    @property
    def sample_rate(self) -> int:
        return TTS_RATE

    @property
    def num_channels(self) -> int:
        return 1

    def stream(self) -> _TTSStream:
        return _TTSStream(self)


class _TTSStream:
    def __init__(self, tts: WorkloadTTS) -> None:
        self.tts = tts
        self.loop = asyncio.get_running_loop()
        self.first: asyncio.Future[float | None] = self.loop.create_future()
        self.text: list[str] = []
        self.audio = self._audio()

    def push_text(self, text: str) -> None:
        self.text.append(text)
        if not self.first.done():
            now = self.loop.time()
            self.tts.session.tts_first_text.append(now)
            self.first.set_result(now)

    def flush(self) -> None:
        return None

    def end_input(self) -> None:
        if not self.first.done():
            self.first.set_result(None)

    async def aclose(self) -> None:
        if not self.first.done():
            self.first.cancel()
        await self.audio.aclose()

    async def _audio(self) -> AsyncIterator[rtc.AudioFrame]:
        started = await self.first
        if started is None:
            return
        await asyncio.sleep(max(0.0, started + TTS_TTFA - self.loop.time()))
        for chunk in self.tts.chunks:
            yield chunk

    def __aiter__(self) -> AsyncIterator[rtc.AudioFrame]:
        return self.audio


class TokenTTS(fk.Node):
    """A TTS node that streams the reply's text into a streaming provider token by token.

    Same contract as the stock ``TTS`` node toward the sink (``AgentAudio`` per frame, an end
    marker after the last one, ``FLUSH`` and newer turns cancel), but one provider stream per
    reply fed every text chunk as it arrives, instead of one request per finished sentence.
    """

    text: fk.In[TextChunk] = fk.In(default=True, doc="the reply's text, as the LLM writes it")
    interrupt: fk.In[Interrupt] = fk.In(required=False, doc="a FLUSH cancels that reply")
    audio: fk.Out[AgentAudio] = fk.Out(default=True, doc="the speech")

    class Params(fk.NodeParams):
        provider: Any

    def __init__(self, provider: WorkloadTTS) -> None:
        super().__init__(provider=provider)

    async def run(
        self, text: AsyncIterator[TextChunk], interrupt: AsyncIterator[Interrupt]
    ) -> None:
        provider: WorkloadTTS = self.params.provider  # type: ignore[attr-defined]
        current: list[Any] = [0, None, None]  # turn id, stream, task
        flushed = [-1]

        def cancel() -> None:
            task = current[2]
            if task is not None and not task.done():
                task.cancel()

        async def watch() -> None:
            async for event in interrupt:
                if event.action is InterruptAction.FLUSH:
                    target = event.turn_id or current[0]
                    flushed[0] = max(flushed[0], target)
                    if current[0] <= target:
                        cancel()

        watcher = self.ctx.create_task(watch(), name="interrupts")
        try:
            async for chunk in text:
                if chunk.turn_id < current[0] or chunk.turn_id <= flushed[0]:
                    continue
                if chunk.turn_id > current[0]:
                    cancel()
                    stream = provider.stream()
                    current[:] = [
                        chunk.turn_id, stream,
                        self.ctx.create_task(self._speak(chunk.turn_id, stream), name="speak"),
                    ]
                stream = current[1]
                if chunk.text:
                    stream.push_text(chunk.text)
                if chunk.final:
                    stream.end_input()
            if current[2] is not None:
                await asyncio.wait([current[2]])
        finally:
            watcher.cancel()
            cancel()

    async def _speak(self, turn_id: int, stream: _TTSStream) -> None:
        put = self.audio.put
        try:
            async for frame in stream:
                await put(AgentAudio(turn_id=turn_id, frame=frame, text="".join(stream.text)))
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()
        await put(AgentAudio(turn_id=turn_id, frame=None, final=True))


# --- the graph --------------------------------------------------------------------------------


def build_session_graph(
    session: Session,
    vad_provider: VADProvider,
    chunks: tuple[rtc.AudioFrame, ...],
    *,
    endpointing_delay: float,
    turn_model: Any = None,
    silence_shortcut: bool = True,
) -> fk.Graph:
    """The voice agent of one session, from the room's audio to the agent's voice.

    With ``turn_model`` (a loaded audio turn model, e.g. flowkit-local's ``SmartTurnModel``),
    a ``TurnPredictor`` judges each end of speech for the turn detector, as in
    ``graphs/voice_agent.py`` (not part of voice-session v1). ``silence_shortcut=False``
    has the resampler call soxr on digital silence too (``Resample(silence_shortcut=)``).
    """
    g = fk.Graph(f"voice-session-{session.index}")
    mic = g.add(room.RoomSource(sample_rate=RATE_IN), name="mic")
    ears = g.add(vad.VAD(TappedVAD(vad_provider, session)), name="vad")  # type: ignore[arg-type]
    asr = g.add(stt.STT(WorkloadSTT(session)), name="stt")
    turns = g.add(
        turn.TurnDetector(mode="vad", min_endpointing_delay=endpointing_delay), name="turns"
    )
    brain = g.add(llm.LLM(WorkloadLLM(session), instructions="You are helpful."), name="llm")
    voice = g.add(TokenTTS(WorkloadTTS(session, chunks)), name="tts")
    speaker = g.add(room.RoomSink(publish_transcripts=False), name="speaker")
    barge = g.add(interrupt.Interruptions(), name="interruptions")

    # As graphs/voice_agent.py: LQ holds back half the audio HQ does (11 ms against 21 on
    # average), and the VAD's end of speech waits for it.
    hear = audio.Resample(16_000, channels=1, quality="LQ", silence_shortcut=silence_shortcut)
    mic >> hear >> ears >> asr >> turns >> brain >> voice >> speaker
    ears.events >> [asr.speech, turns.vad, barge.vad]
    asr >> barge.transcripts
    barge >> [speaker.interrupt, voice.interrupt, brain.interrupt]
    speaker >> [brain.playout, barge.playout]
    if turn_model is not None:
        predictor = g.add(turn_prediction.TurnPredictor(turn_model), name="turn_model")
        ears >> predictor
        ears.events >> predictor.vad
        predictor >> turns.predictions
    return g
