"""Background sound: an ambient loop, and a thinking sound while the agent thinks.

:class:`BackgroundAudio` does what LiveKit Agents' ``BackgroundAudioPlayer`` does, as a node:
it plays an ambient sound in a loop for the whole session and, each time the agent starts
thinking (an :class:`~flowkit.messages.AgentState` of ``thinking`` from
:class:`~flowkit.nodes.state.AgentStates`), one thinking sound chosen at random among those
given, until the agent leaves that state (it then fades out over one 20 ms frame rather than
click) or the sound ends. Silence between the two is silence: nothing is sent.

Other sounds play when a node asks: the node's named ``sounds`` are played by
:class:`~flowkit.messages.SoundCue` messages on its ``cues`` input (LiveKit's
``BackgroundAudioPlayer.play()``), once or in a loop until a stop cue, mixed over the rest.
Audio made on the fly (LiveKit's ``play()`` of an async iterator of frames: hold music from
a stream, a tone, a TTS announcement) is linked into the ``audio`` input as frames, in any
format, and played once as it comes, mixed over the rest too.

The sound goes to a track of its own (``track_output`` of the job's room I/O, see
:class:`~flowkit.room_io.TrackOutputs`), not into the agent's voice: a barge-in that flushes
the reply does not cut the ambience, and the voice's playout reports and transcripts stay the
voice's. In a LiveKit room it is a second published track (``background_audio``, as LiveKit
names it), offline it is mixed into the output file. A room I/O without extra tracks (the
benchmark's, your own) is not an error: the node then only consumes the states.

Sounds are WAV files (16-bit PCM, any rate and channel count), converted once to the node's
format with soxr and shared by every job of the process.
"""

from __future__ import annotations

import asyncio
import functools
import os
import random
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydantic
from livekit import rtc
from numpy.typing import NDArray

from flowkit.audio.frames import frame_from_samples, samples, samples_for
from flowkit.audio.wav import probe, read_frames
from flowkit.messages import AgentState, AgentStateKind, Playout, SoundCue
from flowkit.node import Node, NodeParams
from flowkit.nodes.audio import _Resampler
from flowkit.nodes.room import room_io
from flowkit.policy import ErrorPolicy
from flowkit.ports import AudioFormat, In
from flowkit.room_io import AudioOutput, TrackOutputs

__all__ = [
    "FRAME_MS",
    "MAX_CUES",
    "STREAM_AHEAD_MS",
    "BackgroundAudio",
    "BackgroundSound",
    "SoundSpec",
    "choose_sound",
    "load_sound",
]

FRAME_MS = 20.0
"""The duration of each frame the node plays."""

MAX_CUES = 8
"""How many cue sounds play at once; one more stops the oldest (a loop never stopped, say)."""

STREAM_AHEAD_MS = 200.0
"""How much of the ``audio`` input the node reads ahead of what it has played.

Beyond it the node stops reading, so a sender faster than real time (a file, a TTS) is held
back by the input's queue instead of filling memory, and a sender that stops sending is
silent within about this much (plus the input's few queued frames)."""

_AUDIO_QUEUE = 8  # frames queued on the ``audio`` input before its sender waits

StrPath = str | os.PathLike[str]


class BackgroundSound(pydantic.BaseModel):
    """A sound for :class:`BackgroundAudio`: a WAV file, how loud, how likely.

    Attributes:
        path: The WAV file (16-bit PCM, any rate and channel count).
        volume: The gain applied to it, from 0 (silent) to 1 (as recorded).
        probability: Among several thinking sounds, the chance this one is chosen each time
            the agent starts thinking. When the probabilities add up to less than 1, the rest
            is the chance that none plays; above 1 they are shares of the total. Ambient and
            cue sounds ignore it.
    """

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    path: str
    volume: float = pydantic.Field(default=1.0, ge=0.0, le=1.0)
    probability: float = pydantic.Field(default=1.0, ge=0.0, le=1.0)


SoundSpec = StrPath | BackgroundSound
"""A sound given to :class:`BackgroundAudio`: a path (volume and probability 1) or a sound."""


def _sound(spec: SoundSpec) -> BackgroundSound:
    if isinstance(spec, BackgroundSound):
        return spec
    return BackgroundSound(path=os.fspath(spec))


class BackgroundAudio(Node):
    """Plays ambient sound, and a thinking sound while the agent thinks, on a track of its own.

    Link ``AgentStates().states`` into ``states``: a ``thinking`` state starts a thinking
    sound, any other stops it. The node ends when the states end (they end with the user's
    input) and, when the sink's ``playout`` is linked too, once that has ended as well: the
    sound then lasts until the last reply has played (an offline file's last answer comes
    after its input ends).

    Link any node's :class:`~flowkit.messages.SoundCue` messages into ``cues`` to play the
    named ``sounds``: once, or in a loop until a stop cue or the node's end. Whether the cues
    end does not matter: they neither end the node nor keep it running.

    Link any node's audio frames into ``audio`` to play them as they come (converted to the
    track's format), mixed over the rest: a sender faster than real time is held back (the
    node reads :data:`STREAM_AHEAD_MS` ahead), a late frame leaves a gap of silence rather
    than delaying what follows. Like the cues, the input neither ends the node nor keeps it
    running; what is unplayed when the node ends is dropped.
    """

    states: In[AgentState] = In(
        default=True, doc="the agent's state: thinking starts the thinking sound, others stop it"
    )
    playout: In[Playout] = In(
        required=False, doc="the sink's reports: linked, the sound lasts until they end"
    )
    cues: In[SoundCue] = In(
        required=False, doc="play or stop one of the named sounds (their end does not matter)"
    )
    audio: In[rtc.AudioFrame] = In(
        required=False,
        queue=_AUDIO_QUEUE,
        doc="audio made on the fly, any format: played once as it comes, over the rest",
    )
    error_policy = ErrorPolicy.RESTART

    class Params(NodeParams):
        """Parameters of :class:`BackgroundAudio`."""

        ambient: BackgroundSound | None = pydantic.Field(
            default=None, description="looped for the whole session"
        )
        thinking: tuple[BackgroundSound, ...] = pydantic.Field(
            default=(), description="one, chosen by probability, each time the agent thinks"
        )
        sounds: dict[str, BackgroundSound] = pydantic.Field(
            default_factory=dict, description="played by name when a cue asks"
        )
        sample_rate: int = pydantic.Field(default=48_000, gt=0, description="Hz")
        num_channels: int = pydantic.Field(default=1, ge=1, le=2)
        track: str = pydantic.Field(
            default="background_audio", min_length=1, description="the track's name"
        )
        seed: int | None = pydantic.Field(
            default=None, description="seed of the thinking sound's choice (tests)"
        )

    def __init__(
        self,
        ambient: SoundSpec | None = None,
        thinking: SoundSpec | Sequence[SoundSpec] | None = None,
        *,
        sounds: Mapping[str, SoundSpec] | None = None,
        sample_rate: int = 48_000,
        num_channels: int = 1,
        track: str = "background_audio",
        seed: int | None = None,
    ) -> None:
        """Create the node; every sound file is read and checked here.

        Args:
            ambient: The sound looped for the whole session, or ``None`` for none.
            thinking: The sound played each time the agent starts thinking, or several to
                choose from by their ``probability``, or ``None`` for none.
            sounds: Sounds by name, played when a :class:`~flowkit.messages.SoundCue` on the
                ``cues`` input names them.
            sample_rate: The track's rate, in Hz (LiveKit's player uses 48 kHz).
            num_channels: The track's channels (1 or 2).
            track: The name of the track the sound is played on.
            seed: Seed the random choice of thinking sounds (for reproducible tests).

        Raises:
            AudioFileError: A sound file is missing or not a 16-bit PCM WAV with audio; the
                message names the file and how to convert it.
            pydantic.ValidationError: A volume or probability outside [0, 1], or another
                parameter out of range.
            ValueError: A sound's name is empty.
        """
        if thinking is None:
            chosen: tuple[BackgroundSound, ...] = ()
        elif isinstance(thinking, BackgroundSound | str | os.PathLike):
            chosen = (_sound(thinking),)
        else:
            chosen = tuple(_sound(s) for s in thinking)
        named = {name: _sound(spec) for name, spec in (sounds or {}).items()}
        if "" in named:
            raise ValueError(
                "BackgroundAudio(sounds=...) has a sound named ''; give each sound the name "
                "its cues use, e.g. sounds={'chime': 'chime.wav'}"
            )
        super().__init__(
            ambient=None if ambient is None else _sound(ambient),
            thinking=chosen,
            sounds=named,
            sample_rate=sample_rate,
            num_channels=num_channels,
            track=track,
            seed=seed,
        )
        p = self.settings()
        samples_for(FRAME_MS, sample_rate)  # a rate without whole 20 ms frames fails here
        fmt = AudioFormat(sample_rate, num_channels)
        # Read now: a wrong file fails when the graph is built (and `flowkit validate`), not
        # in the middle of a call.
        every = [p.ambient] if p.ambient is not None else []
        every += [*p.thinking, *p.sounds.values()]
        self._clips = {s.path: load_sound(s.path, fmt) for s in every}

    def settings(self) -> BackgroundAudio.Params:
        """The validated parameters."""
        p = self.params
        assert isinstance(p, BackgroundAudio.Params)
        return p

    async def run(
        self,
        states: AsyncIterator[AgentState],
        playout: AsyncIterator[Playout],
        cues: AsyncIterator[SoundCue],
        audio: AsyncIterator[rtc.AudioFrame],
    ) -> None:
        """Play until the states (and the playout, if linked) end."""
        p = self.settings()
        io = room_io(self)
        # Only its end matters: the states already say when the agent speaks.
        played = self.ctx.create_task(_drain(playout), name="playout")
        if not isinstance(io, TrackOutputs):
            self.ctx.logger.debug(
                "the room I/O (%s) has no tracks besides the voice; no background sound",
                type(io).__name__,
            )
            # Still read (and check) the cues and the audio, so no sender is held up.
            side = (
                self.ctx.create_task(self._cue(cues, None), name="cues"),
                self.ctx.create_task(_drain(audio), name="audio"),
            )
            try:
                await _drain(states)
                await played
            finally:
                for task in side:
                    task.cancel()
            return
        mixer = _Mixer(p, self._clips)
        output = io.track_output(p.track, p.sample_rate, p.num_channels)
        player = self.ctx.create_task(self._play(mixer, output), name="background")
        # Cues are read on the side and cancelled with the rest: an optional input whose
        # sender may end early or never must neither end the node nor keep it running.
        cued = self.ctx.create_task(self._cue(cues, mixer), name="cues")
        streamed = self.ctx.create_task(self._stream(audio, mixer), name="audio")
        try:
            async for state in states:
                if state.state is AgentStateKind.THINKING:
                    mixer.think()
                else:
                    mixer.stop_thinking()
            await played
        finally:
            player.cancel()
            played.cancel()
            cued.cancel()
            streamed.cancel()
        await output.aclose()

    async def _stream(self, audio: AsyncIterator[rtc.AudioFrame], mixer: _Mixer) -> None:
        """Read the ``audio`` input into the mix, in the track's format, a little ahead."""
        p = self.settings()
        # LQ, as the voice path: the audio plays as it comes, so soxr's hold-back is delay.
        resampler = _Resampler(p.sample_rate, p.num_channels, "LQ")
        first: AudioFormat | None = None
        try:
            async for frame in audio:
                have = AudioFormat(frame.sample_rate, frame.num_channels)
                first = first or have
                if have != first:
                    # One resampler stream has one input format; guessing where one stream
                    # ends and the next begins would click or drop audio.
                    raise ValueError(
                        f"a {have} frame came after {first} frames; send one format on "
                        "it, or put a Resample node before it"
                    )
                for block in resampler.push(frame):
                    mixer.add_stream(samples(block))
                await mixer.wait_for_room()
            for block in resampler.flush():
                mixer.add_stream(samples(block))
        except ValueError as exc:  # that, or channels that cannot be mixed (6 to 2, say)
            self.ctx.logger.warning(
                "BackgroundAudio's audio input stopped playing (the session goes on without "
                "it): %s",
                exc,
            )
            await _drain(audio)  # read on, so the sender is never held up

    async def _cue(self, cues: AsyncIterator[SoundCue], mixer: _Mixer | None) -> None:
        """Play or stop the sound each cue names; ``mixer`` is ``None`` without a track."""
        named = self.settings().sounds
        log = self.ctx.logger
        async for cue in cues:
            sound = named.get(cue.sound)
            if sound is None:
                # A typo in a sender must not cost the call; say which names there are.
                log.warning(
                    "a cue names the sound %r, which this node does not have (its sounds: "
                    "%s); give it in BackgroundAudio(sounds={...}). The cue is ignored",
                    cue.sound,
                    ", ".join(sorted(named)) or "none",
                )
            elif mixer is None:
                continue
            elif cue.stop:
                mixer.stop_cue(cue.sound)
            else:
                dropped = mixer.cue(cue.sound, sound, loop=cue.loop)
                if dropped is not None:
                    log.warning(
                        "%d cue sounds were playing; stopped the oldest (%r) to play %r",
                        MAX_CUES,
                        dropped,
                        cue.sound,
                    )

    async def _play(self, mixer: _Mixer, output: AudioOutput) -> None:
        """Write the mix frame by frame while there is something to play."""
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        try:
            while True:
                block = mixer.next_block()
                if block is None:
                    deadline = None
                    await mixer.wait_for_sound()
                    continue
                await output.write(frame_from_samples(block, mixer.rate))
                if not output.paced:
                    # An output that does not keep time (a test's, a file played as fast
                    # as possible): keep it here, 20 ms per frame on the loop's clock.
                    now = loop.time()
                    deadline = now if deadline is None else max(deadline, now - 0.2)
                    deadline += FRAME_MS / 1000
                    await asyncio.sleep(deadline - now)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Decoration, not the conversation: losing it must not end the call.
            self.ctx.logger.warning(
                "background sound stopped (the session goes on without it): %s: %s",
                type(exc).__name__,
                exc,
            )


async def _drain(messages: AsyncIterator[object]) -> None:
    async for _ in messages:
        pass


@dataclass(slots=True)
class _Cue:
    """One cue sound playing: its name, where it is, whether it loops or fades out."""

    name: str
    sound: BackgroundSound
    loop: bool
    at: int = 0
    fading: bool = False


class _Mixer:
    """The ambient loop, the current thinking sound and the cues, summed 20 ms at a time."""

    def __init__(self, p: BackgroundAudio.Params, clips: dict[str, NDArray[np.int16]]) -> None:
        self.rate = p.sample_rate
        self._block = samples_for(FRAME_MS, p.sample_rate)
        self._channels = p.num_channels
        self._clips = clips
        self._ambient = p.ambient
        self._ambient_at = 0
        self._sounds = p.thinking
        self._random = random.Random(p.seed)
        self._thinking: BackgroundSound | None = None
        self._thinking_at = 0
        self._fading = False
        self._cues: list[_Cue] = []
        self._sound_started = asyncio.Event()
        # The audio input's samples not played yet, in order; the first block is played
        # from ``_stream_at``. ``_room`` is set while fewer than STREAM_AHEAD_MS are held.
        self._stream: deque[NDArray[np.int16]] = deque()
        self._stream_at = 0
        self._stream_held = 0
        self._stream_limit = samples_for(STREAM_AHEAD_MS, p.sample_rate)
        self._room = asyncio.Event()
        self._room.set()

    def think(self) -> None:
        """The agent started thinking: choose a sound, unless one is playing already."""
        if self._thinking is not None and not self._fading:
            return
        self._thinking = choose_sound(self._sounds, self._random)
        self._thinking_at = 0
        self._fading = False
        if self._thinking is not None:
            self._sound_started.set()

    def stop_thinking(self) -> None:
        """The agent stopped thinking: fade the thinking sound out over the next frame."""
        if self._thinking is not None:
            self._fading = True

    def cue(self, name: str, sound: BackgroundSound, *, loop: bool) -> str | None:
        """Start ``sound`` (named ``name``) from its beginning, over whatever plays.

        Returns:
            The name of the oldest cue, stopped to make room when :data:`MAX_CUES` played
            already, or ``None``.
        """
        dropped = self._cues.pop(0).name if len(self._cues) >= MAX_CUES else None
        self._cues.append(_Cue(name, sound, loop))
        self._sound_started.set()
        return dropped

    def stop_cue(self, name: str) -> None:
        """Fade out, over the next frame, every playing cue of the sound ``name``."""
        for cue in self._cues:
            if cue.name == name:
                cue.fading = True

    def add_stream(self, block: NDArray[np.int16]) -> None:
        """Queue ``block`` (the track's format) of the ``audio`` input to play next."""
        if not len(block):
            return
        self._stream.append(block)
        self._stream_held += len(block)
        if self._stream_held >= self._stream_limit:
            self._room.clear()
        self._sound_started.set()

    async def wait_for_room(self) -> None:
        """Wait while :data:`STREAM_AHEAD_MS` or more of the ``audio`` input is queued."""
        await self._room.wait()

    async def wait_for_sound(self) -> None:
        """Wait until there is something to play again."""
        self._sound_started.clear()
        await self._sound_started.wait()

    def next_block(self) -> NDArray[np.int16] | None:
        """The next 20 ms of the mix, or ``None`` when nothing plays."""
        if (
            self._ambient is None
            and self._thinking is None
            and not self._cues
            and not self._stream
        ):
            return None
        n = self._block
        mix = np.zeros((n, self._channels), np.float32)
        if self._ambient is not None:
            clip = self._clips[self._ambient.path]
            # Wrap around the end of the loop; np.take with mode="wrap" reads both parts.
            idx = np.arange(self._ambient_at, self._ambient_at + n)
            mix += clip.take(idx, axis=0, mode="wrap") * np.float32(self._ambient.volume)
            self._ambient_at = (self._ambient_at + n) % len(clip)
        if self._thinking is not None:
            clip = self._clips[self._thinking.path]
            part = clip[self._thinking_at : self._thinking_at + n].astype(np.float32)
            part *= np.float32(self._thinking.volume)
            if self._fading:
                part *= np.linspace(1.0, 0.0, n, dtype=np.float32)[: len(part), None]
            mix[: len(part)] += part
            self._thinking_at += n
            if self._fading or self._thinking_at >= len(clip):
                self._thinking = None
                self._fading = False
        if self._cues:
            self._mix_cues(mix)
        if self._stream:
            self._mix_stream(mix)
        return np.clip(np.rint(mix), -32768, 32767).astype(np.int16)

    def _mix_cues(self, mix: NDArray[np.float32]) -> None:
        """Add the next 20 ms of every cue to ``mix``; forget those that ended or faded."""
        n = len(mix)
        playing: list[_Cue] = []
        for cue in self._cues:
            clip = self._clips[cue.sound.path]
            if cue.loop:
                idx = np.arange(cue.at, cue.at + n)
                part = clip.take(idx, axis=0, mode="wrap").astype(np.float32)
                cue.at = (cue.at + n) % len(clip)
                ended = False
            else:
                part = clip[cue.at : cue.at + n].astype(np.float32)
                cue.at += n
                ended = cue.at >= len(clip)
            part *= np.float32(cue.sound.volume)
            if cue.fading:
                part *= np.linspace(1.0, 0.0, n, dtype=np.float32)[: len(part), None]
            mix[: len(part)] += part
            if not (ended or cue.fading):
                playing.append(cue)
        self._cues = playing


    def _mix_stream(self, mix: NDArray[np.float32]) -> None:
        """Add up to the next 20 ms of the ``audio`` input to ``mix`` (less: it is late)."""
        n, filled = len(mix), 0
        stream = self._stream
        while stream and filled < n:
            block = stream[0]
            part = block[self._stream_at : self._stream_at + n - filled]
            mix[filled : filled + len(part)] += part
            filled += len(part)
            self._stream_at += len(part)
            if self._stream_at >= len(block):
                stream.popleft()
                self._stream_at = 0
        self._stream_held -= filled
        if self._stream_held < self._stream_limit:
            self._room.set()


def choose_sound(
    sounds: Sequence[BackgroundSound], rng: random.Random
) -> BackgroundSound | None:
    """Choose one of ``sounds`` by their probabilities (see :class:`BackgroundSound`).

    Returns:
        The sound, or ``None`` (no sounds, all at probability 0, or the chance of none when
        the probabilities add up to less than 1).
    """
    total = sum(s.probability for s in sounds)
    if total <= 0:
        return None
    draw = rng.random() * max(total, 1.0)
    for sound in sounds:
        if draw < sound.probability:
            return sound
        draw -= sound.probability
    return None


def load_sound(path: StrPath, fmt: AudioFormat) -> NDArray[np.int16]:
    """A WAV file's audio in ``fmt``, shape ``(n, channels)``, read-only and cached.

    Every job of a process that plays the same file at the same format shares one array;
    a file changed on disk (another modification time or size) is read again.

    Raises:
        AudioFileError: The file is missing, not a 16-bit PCM WAV, or holds no audio.
        ValueError: Its channels cannot be mixed into ``fmt`` (e.g. 6 to 2).
    """
    info = probe(path)  # the clear error for a missing or wrong file
    stat = Path(path).stat()
    try:
        return _load(str(info.path), stat.st_mtime_ns, stat.st_size, fmt)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


@functools.lru_cache(maxsize=32)
def _load(path: str, mtime_ns: int, size: int, fmt: AudioFormat) -> NDArray[np.int16]:
    del mtime_ns, size  # part of the cache key only
    resampler = _Resampler(fmt.sample_rate, fmt.num_channels, "HQ")
    blocks: list[NDArray[np.int16]] = []
    for frame in read_frames(path, 1000.0):
        blocks.extend(samples(f) for f in resampler.push(frame))
    blocks.extend(samples(f) for f in resampler.flush())
    audio = np.ascontiguousarray(np.concatenate(blocks))
    audio.flags.writeable = False  # shared by every job: nobody may change it
    return audio
