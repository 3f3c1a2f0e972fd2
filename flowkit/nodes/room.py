"""Room nodes: the user's audio in, the agent's speech out, through the job's :class:`RoomIO`.

:class:`RoomSource` hears a participant, :class:`RoomSink` plays the agent's replies (with
pause, resume and flush on barge-in, and a report of what was heard), and
:class:`TranscriptPublisher` publishes transcripts. They read and write through
``ctx.job.io`` (a WAV file offline, a track in a LiveKit room, memory in tests), so the same
graph runs everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pydantic
from livekit import rtc

from flowkit.audio.frames import duration_s
from flowkit.messages import (
    AgentAudio,
    Interrupt,
    InterruptAction,
    Playout,
    PlayoutEvent,
    TimedWord,
    Transcript,
)
from flowkit.node import Node, NodeParams
from flowkit.nodes.unheard import UnheardAudio
from flowkit.policy import ErrorPolicy
from flowkit.ports import AudioFormat, In, Out
from flowkit.room_io import (
    AudioOutput,
    AvatarOutputs,
    PushAudioInput,
    QueuedAudioOutput,
    RoomIO,
    SegmentedAudioOutput,
)

__all__ = ["RoomSink", "RoomSource", "TranscriptPublisher", "room_io"]

# An unpaced output (a file) returns from write at once; yield to the loop this often so a
# long reply does not keep interrupts and timers waiting.
_YIELD_EVERY = 50

# Less audio than this left in a queued output counts as played out (float noise).
_PLAYED_OUT = 1e-3


def room_io(node: Node) -> RoomIO:
    """The room I/O of the job ``node`` runs for.

    Raises:
        RuntimeError: The job has no room I/O; the message names the ways to give it one.
    """
    job = node.ctx.job
    io = getattr(job, "io", None)
    if io is None:
        why = "the graph runs without a job" if job is None else "the job has no io"
        raise RuntimeError(
            f"{type(node).__name__} node {node.name!r} needs the job's room I/O, but {why}; "
            "run the graph with `flowkit run graph.py --input in.wav` or in a LiveKit worker "
            "(`flowkit start graph.py`), or give the runner a job with one: "
            "GraphRunner(g, job=JobContext(io=...)) (in tests: "
            "flowkit.testing.memory_io.MemoryIO)"
        )
    return io  # type: ignore[no-any-return]


class RoomSource(Node):
    """The user's audio from the room, in the format it declares."""

    audio: Out[rtc.AudioFrame] = Out(default=True, doc="the participant's audio")
    error_policy = ErrorPolicy.RESTART  # re-subscribe on a glitch; a missing io ends the graph

    class Params(NodeParams):
        """Parameters of :class:`RoomSource`."""

        sample_rate: int = pydantic.Field(default=48_000, gt=0, description="Hz")
        num_channels: int = pydantic.Field(default=1, ge=1)
        participant: str | None = pydantic.Field(
            default=None, description="identity; None: the first participant"
        )

    def __init__(
        self, sample_rate: int = 48_000, num_channels: int = 1, participant: str | None = None
    ) -> None:
        """Create a room source.

        Args:
            sample_rate: The rate to deliver the audio at, in Hz.
            num_channels: The channels to deliver.
            participant: Whose audio to hear; the first participant when ``None``.
        """
        super().__init__(
            sample_rate=sample_rate, num_channels=num_channels, participant=participant
        )
        self.audio.format = AudioFormat(sample_rate, num_channels)

    async def run(self) -> None:
        """Send the participant's audio until it ends."""
        p = self.params
        assert isinstance(p, RoomSource.Params)
        source = room_io(self).audio_input(p.sample_rate, p.num_channels, p.participant)
        if isinstance(source, PushAudioInput):
            # Frames enter the graph from the transport's callback: no task step per frame.
            await source.deliver(self.audio.sender())
            return
        async for frame in source.frames():
            await self.audio.put(frame)


class TranscriptPublisher(Node):
    """Publishes transcripts to the room (LiveKit: the ``lk.transcription`` topic)."""

    transcripts: In[Transcript] = In(doc="user or agent transcripts")
    error_policy = ErrorPolicy.RESTART

    async def run(self, transcripts: AsyncIterator[Transcript]) -> None:
        """Publish every transcript as it arrives."""
        io = room_io(self)
        async for transcript in transcripts:
            io.publish_transcript(transcript)


# Seconds of speech per character before the sink has timed a sentence of its own: the local
# voices at their default speed read plain sentences at 0.045-0.065, medians 0.052 (piper)
# and 0.056 (espeak-ng), about 18 characters a second (bench/speaking_rate.py).
DEFAULT_SECONDS_PER_CHAR = 0.055
# Sentences shorter than this ("Sure.") are mostly the TTS's own leading and trailing silence,
# and would teach the rate that padding.
_SHORTEST_TIMED = 16
# Each sentence timed weighs this much less than the one after it: the rate follows the voice
# (and its speed setting) within a few sentences without jumping at every one.
_RATE_MEMORY = 0.7


class _SpeakingRate:
    """How fast the sink's voice speaks: seconds of audio per character of text.

    Learned from the sentences whose whole audio the sink has received (the most recent weigh
    most); :data:`DEFAULT_SECONDS_PER_CHAR` before the first. It stands in for the length of
    a sentence still being synthesized, whose audio so far says nothing about how much is
    left.
    """

    def __init__(self) -> None:
        """Start with no sentences timed."""
        self._seconds = 0.0
        self._chars = 0.0

    @property
    def seconds_per_char(self) -> float:
        """The current estimate."""
        return self._seconds / self._chars if self._chars else DEFAULT_SECONDS_PER_CHAR

    def learn(self, text: str, seconds: float) -> None:
        """Take in a sentence whose whole audio is known.

        Args:
            text: The sentence.
            seconds: The length of its audio.
        """
        chars = len(text.strip())
        if chars < _SHORTEST_TIMED or seconds <= 0:
            return
        self._seconds = self._seconds * _RATE_MEMORY + seconds
        self._chars = self._chars * _RATE_MEMORY + chars

    def seconds(self, text: str) -> float:
        """How long ``text`` is expected to take to speak."""
        return len(text.strip()) * self.seconds_per_char


@dataclass(slots=True)
class _Sentence:
    text: str
    received: float = 0.0  # seconds of its audio received
    played: float = 0.0  # seconds of its audio played (written, less what was taken back)
    complete: bool = False  # audio of a later sentence, or the end marker, arrived
    started: bool = False  # its first audio was written (its transcript sent)
    # The synthesiser's timings of the sentence's first words, one per word, in order.
    words: list[TimedWord] = field(default_factory=list)

    def heard(self, rate: _SpeakingRate, played: float) -> str:
        """The words of the sentence within its first ``played`` seconds (not yet whole)."""
        if self.words:
            # Timed: the words that have ended, whether or not the rest has arrived.
            count = 0
            for word in self.words:
                if word.end > played + 1e-6:
                    break
                count += 1
            return _first_words(self.text, count)
        length = self.received
        if not self.complete:
            length = max(length, rate.seconds(self.text))
        return _words_within(self.text, played / length if length else 0.0)


class _Reply:
    """The audio of one reply (turn) at the sink: what is queued, received and played."""

    def __init__(self, turn_id: int, allow_interruptions: bool, rate: _SpeakingRate) -> None:
        self.turn_id = turn_id
        self.allow_interruptions = allow_interruptions
        self.rate = rate
        self.queue: deque[AgentAudio] = deque()
        self.sentences: dict[int, _Sentence] = {}
        self.started = self.paused = self.done = False
        self.draining = False  # all written; a queued output is still playing the end
        self.played = 0.0
        self.published = ""  # the heard text last published (synchronized transcripts)
        # For a queued output: the pieces written it may still hold, and the markers
        # written whose audio before them is still queued, each reported by a timer.
        self.unheard = UnheardAudio()
        self.marks: dict[int, asyncio.TimerHandle] = {}

    def receive(self, audio: AgentAudio) -> None:
        if audio.frame is not None:
            sentence = self.sentences.get(audio.segment)
            if sentence is None:
                self._complete_all()
                sentence = self.sentences[audio.segment] = _Sentence(audio.text)
            sentence.received += duration_s(audio.frame)
            sentence.words.extend(audio.words)
        if audio.final:
            self._complete_all()
        self.queue.append(audio)

    def unplay(self, items: list[AgentAudio]) -> None:
        """Take back written pieces that were never heard from what counts as played."""
        for item in items:
            if item.frame is not None:
                seconds = duration_s(item.frame)
                self.played -= seconds
                self.sentences[item.segment].played -= seconds

    def forget_marks(self) -> None:
        """Cancel the reports of markers not yet reached (the reply ended first)."""
        for handle in self.marks.values():
            handle.cancel()
        self.marks.clear()

    def _complete_all(self) -> None:
        for sentence in self.sentences.values():
            if not sentence.complete:
                sentence.complete = True
                self.rate.learn(sentence.text, sentence.received)

    def played_text(self, unheard: float = 0.0) -> str:
        """Whole sentences played, then the played share of the current one, cut at a word.

        The share of a sentence whose audio is still arriving is taken of its expected
        length (by the voice's speaking rate) when that is longer than the audio received:
        a TTS streaming at playback speed is only a little ahead of the player, and the
        audio received says little about how much of the sentence is left.

        Args:
            unheard: Seconds at the end of the audio played that a queued output still
                holds: left out, so that only what was heard counts.
        """
        parts: list[str] = []
        left = self.played - unheard  # sentences play in order: the first ones got it
        for index in sorted(self.sentences):
            sentence = self.sentences[index]
            played = min(sentence.played, left)
            left -= sentence.played
            if played <= 0:
                break
            if sentence.complete and played >= sentence.received - 1e-9:
                if sentence.text.strip():
                    parts.append(sentence.text.strip())
                continue
            heard = sentence.heard(self.rate, played)
            if heard:
                parts.append(heard)
            break
        return " ".join(parts)


def _words_within(text: str, share: float) -> str:
    """The words of ``text`` that end within its first ``share`` of characters."""
    limit = len(text) * share + 1e-9
    end = 0
    for word in re.finditer(r"\S+", text):
        if word.end() > limit:
            break
        end = word.end()
    return text[:end].strip()


def _first_words(text: str, count: int) -> str:
    """The first ``count`` words of ``text``, as written."""
    end = 0
    for index, word in enumerate(re.finditer(r"\S+", text)):
        if index == count:
            break
        end = word.end()
    return text[:end].strip()


class RoomSink(Node):
    """Plays the agent's replies, reports their playout and the agent's transcript.

    A reply is the audio of one turn up to its end marker. The output is opened at the
    first frame's format. ``playout`` reports, per reply: ``STARTED`` once its first frame
    is written, ``FINISHED`` once its last frame has played (a paced output returns from
    ``write`` when the frame starts playing; a queued one, such as LiveKit's, up to its
    queue's length earlier, see :class:`~flowkit.room_io.QueuedAudioOutput`, and the sink
    waits for the queue to play out), ``PAUSED`` / ``RESUMED`` on interrupts,
    ``PROTECTED`` when a tool protects a reply that has started from barge-in (a marker
    in its audio, see :class:`~flowkit.messages.AgentAudio`), ``REACHED`` when it has played
    a reply's audio up to a playout marker (a tool's ``ctx.wait_for_playout()``), and
    ``INTERRUPTED`` on a flush, on audio of a newer turn, or when the input ends while the
    reply is paused. An interrupt names its reply by ``turn_id`` (``0``: the current one);
    a flush stops that turn and every older one. Audio of an older turn than the current
    one, or of a flushed turn, is dropped, so a flush that names a turn none of whose audio
    has come reports that turn ``INTERRUPTED`` at once, nothing played: its end would
    otherwise never be reported to whoever waits for it.

    The agent's transcript published to the room (``publish_transcripts``) follows the
    playout by default (``sync_transcripts``), as LiveKit Agents' transcription sync does:
    one segment per reply, an interim transcript each time another word has been played,
    then a final one when the reply ends, holding the whole reply when it finished and
    only the words played when it was interrupted, so a listener's screen never shows what
    they did not hear. Without it, each sentence is published whole, as final, when it
    starts playing. The ``transcripts`` output sends each sentence as it starts, either way.

    ``played_text`` holds the sentences played whole and, of the current one, the words
    that have been played: when the TTS timed its words (``AgentAudio.words``), the words
    that end within the sentence's audio played; otherwise the words within the share of
    its text that its played audio stands for: of the audio received, or, while the
    sentence is still arriving, of the length the voice's speaking rate gives it when that
    is longer (learned from this sink's earlier sentences; about 18 characters a second
    before the first).

    With a queued output, what the output still holds when a barge-in clears it is taken
    off what was played: an interrupted reply's ``played_text`` and ``played_duration``
    leave it out, a paused reply plays it again when it resumes (cut where the listener
    was), and a marker is reported reached once the audio before it has played. A newer
    reply's audio arriving while the last one's end is still queued ends that one as
    ``FINISHED`` at once (its end plays before the newer reply's start).

    ``avatar`` names an avatar participant that speaks the agent's voice with a face: in a
    LiveKit room the audio goes to it (:mod:`flowkit.livekit.avatar`, LiveKit Agents'
    avatar protocol) instead of a track of the agent's, each reply as one stream; the
    reports, the transcript and what was heard of a cut reply work as they do for a track.
    Where the job's I/O has no avatars (an offline run), the voice plays as without one.
    """

    audio: In[AgentAudio] = In(
        default=True, queue=100_000, doc="the agent's speech, tagged with its text"
    )
    interrupt: In[Interrupt] = In(required=False, doc="pause, resume or flush a reply")
    playout: Out[Playout] = Out(default=True, doc="started, paused, resumed, finished, ...")
    transcripts: Out[Transcript] = Out(doc="the agent's speech, a sentence as it starts")
    error_policy = ErrorPolicy.RESTART

    class Params(NodeParams):
        """Parameters of :class:`RoomSink`."""

        publish_transcripts: bool = pydantic.Field(
            default=True, description="also publish the agent's transcript to the room"
        )
        sync_transcripts: bool = pydantic.Field(
            default=True,
            description="publish the transcript word by word as it plays, and only what "
            "was played of an interrupted reply",
        )
        avatar: str | None = pydantic.Field(
            default=None, min_length=1,
            description="the identity of an avatar participant that speaks the agent's voice",
        )

    def __init__(
        self,
        *,
        publish_transcripts: bool = True,
        sync_transcripts: bool = True,
        avatar: str | None = None,
    ) -> None:
        """Create a room sink.

        Args:
            publish_transcripts: Publish the agent's transcript through the room I/O too
                (it is always sent on the ``transcripts`` output).
            sync_transcripts: Publish it as it plays: per reply, interim transcripts that
                grow a word at a time and a final one with what was played. ``False``:
                publish each sentence whole, as final, when it starts playing.
            avatar: The identity of the avatar participant that speaks the agent's voice
                (see the class); ``None``: the agent's own voice track.
        """
        super().__init__(
            publish_transcripts=publish_transcripts, sync_transcripts=sync_transcripts,
            avatar=avatar,
        )

    async def run(
        self, audio: AsyncIterator[AgentAudio], interrupt: AsyncIterator[Interrupt]
    ) -> None:
        """Play the audio reply by reply; end after the last one, then close the output."""
        playback = _Playback(self, room_io(self))
        watcher = self.ctx.create_task(playback.watch(interrupt), name="interrupts")
        try:
            async for item in audio:
                playback.receive(item)
            await playback.drain()
        finally:
            watcher.cancel()
            playback.stop_player()
            if playback.output is not None:
                await playback.output.aclose()


class _Playback:
    """The sink's state while it runs: the current reply, the player task, the output."""

    def __init__(self, node: RoomSink, io: RoomIO) -> None:
        self.node, self.io = node, io
        p = node.params
        assert isinstance(p, RoomSink.Params)
        self.publish = p.publish_transcripts
        self.sync = p.publish_transcripts and p.sync_transcripts
        self.avatar = p.avatar
        self.output: AudioOutput | None = None
        self.queued_output: QueuedAudioOutput | None = None  # the output, if it queues
        self.format: AudioFormat | None = None
        self.current: _Reply | None = None
        self.rate = _SpeakingRate()  # of the voice, over every reply this sink plays
        self.flushed = -1  # audio of this turn and older is no longer wanted
        self.player: asyncio.Task[None] | None = None
        self.wake = asyncio.Event()  # the player has something new to look at
        self.settled = asyncio.Event()  # a reply ended, or the interrupt input did
        self.audio_ended = self.interrupts_ended = False

    # --- audio in

    def receive(self, item: AgentAudio) -> None:
        reply = self.current
        stale = reply is not None and item.turn_id < reply.turn_id
        if stale or item.turn_id <= self.flushed:
            self.node.ctx.logger.debug("dropped stale audio of turn %d", item.turn_id)
            return
        if reply is None or item.turn_id > reply.turn_id or reply.done:
            if item.mark and item.frame is None and not item.final:
                # A playout marker with nothing of its reply before it here (a tool called
                # before any words): reached now. It opens no reply, which no end would close.
                self.report_unplayed(item.turn_id, PlayoutEvent.REACHED,
                                     allow_interruptions=item.allow_interruptions, mark=item.mark)
                return
            if reply is not None and not reply.done:
                if reply.draining:
                    # All written: its end, still in the output's queue, plays before this
                    # reply's start. Reported now, up to the queue's length early.
                    self.end(reply, PlayoutEvent.FINISHED)
                else:
                    self.interrupt(reply, "a newer turn")
            reply = self.current = _Reply(item.turn_id, item.allow_interruptions, self.rate)
        elif reply.allow_interruptions and not item.allow_interruptions:
            self.protect(reply)
        if item.frame is None and not item.final and not item.mark:
            return  # the protection marker: nothing to play
        reply.receive(item)  # a playout marker waits in the queue for the audio before it
        self.start_player()
        self.wake.set()

    def protect(self, reply: _Reply) -> None:
        """From now on only a forced interrupt stops ``reply`` (a tool protected it)."""
        reply.allow_interruptions = False
        if reply.started:
            # One not started yet says so in its STARTED report, which carries the flag.
            self.report(reply, PlayoutEvent.PROTECTED)

    async def drain(self) -> None:
        """Wait until the last reply has played.

        A reply still paused when nothing can resume it (the interrupt input ended) is
        interrupted.
        """
        self.audio_ended = True
        self.wake.set()
        while (reply := self.current) is not None and not reply.done:
            if reply.paused and self.interrupts_ended:
                self.interrupt(reply, "paused when the input ended")
                break
            self.settled.clear()
            await self.settled.wait()

    # --- interrupts

    async def watch(self, interrupts: AsyncIterator[Interrupt]) -> None:
        async for event in interrupts:
            self.on_interrupt(event)
        self.interrupts_ended = True
        self.settled.set()

    def on_interrupt(self, event: Interrupt) -> None:
        reply = self.current
        if event.action is InterruptAction.FLUSH:
            if event.turn_id == 0 and reply is None:
                return
            if not event.force and reply is not None and not reply.allow_interruptions:
                return  # typed text or a key press: a protected reply plays to its end
            target = event.turn_id or (reply.turn_id if reply is not None else 0)
            newly_flushed = target > self.flushed
            self.flushed = max(self.flushed, target)
            if reply is not None and not reply.done and reply.turn_id <= target:
                reply.queue.clear()
                self.interrupt(reply, event.reason)
            if newly_flushed and (reply is None or reply.turn_id < target):
                # None of that reply's audio came here, and none will now: its end is
                # reported all the same, nothing played, or whoever waits for it (a tool's
                # wait_for_playout, the agent's state, EndCall) would wait on.
                self.report_unplayed(target, PlayoutEvent.INTERRUPTED)
            return
        if reply is None or reply.done or event.turn_id not in (0, reply.turn_id):
            return
        if event.action is InterruptAction.PAUSE and not reply.paused:
            self.stop_player()
            reply.paused = True
            # What the output still holds was not heard: it plays again on resume.
            reply.queue.extendleft(reversed(self.take_back(reply)))
            reply.draining = False
            self.clear_output()
            self.report(reply, PlayoutEvent.PAUSED)
        elif event.action is InterruptAction.RESUME and reply.paused:
            reply.paused = False
            self.report(reply, PlayoutEvent.RESUMED)
            self.start_player()
            self.wake.set()

    def interrupt(self, reply: _Reply, reason: str) -> None:
        """End ``reply`` now: stop its audio and report what was heard."""
        self.node.ctx.logger.debug("reply of turn %d interrupted: %s", reply.turn_id, reason)
        self.stop_player()
        self.take_back(reply)
        self.clear_output()
        self.end(reply, PlayoutEvent.INTERRUPTED)
        self.start_player()  # for the replies after it

    # --- the player

    def start_player(self) -> None:
        if self.player is None or self.player.done():
            self.player = self.node.ctx.create_task(self.play(), name="player")

    def stop_player(self) -> None:
        # Cancelling mid-write drops that frame unplayed: it is still first in its queue.
        if self.player is not None:
            self.player.cancel()
            self.player = None

    async def play(self) -> None:
        written = 0
        while True:
            reply = self.current
            if reply is None or reply.done or reply.paused or not reply.queue:
                if reply is not None and not reply.done and not reply.paused and self.audio_ended:
                    await self.finish(reply)  # no end marker, but nothing more
                    continue
                self.wake.clear()
                await self.wake.wait()
                continue
            item = reply.queue[0]
            output = None
            if item.frame is not None:
                output = self.open_output(item.frame)
                await output.write(item.frame)
            # No await between the write and here: a cancelled write leaves its frame queued,
            # a finished one is accounted for, never both.
            reply.queue.popleft()
            queued = 0.0
            if self.queued_output is not None:
                queued = self.queued_output.queued_seconds
                reply.unheard.wrote(item, queued)
            if item.frame is not None:
                self.played(reply, item, item.frame, queued)
            if item.mark:
                self.reach(reply, item.mark, queued)
            if item.final:
                if isinstance(self.output, SegmentedAudioOutput):
                    self.output.end_segment()
                await self.finish(reply)
            written += 1
            if output is not None and not output.paced and written % _YIELD_EVERY == 0:
                await asyncio.sleep(0)

    def open_output(self, frame: rtc.AudioFrame) -> AudioOutput:
        fmt = AudioFormat(frame.sample_rate, frame.num_channels)
        if self.output is None:
            if self.avatar is not None and isinstance(self.io, AvatarOutputs):
                self.output = self.io.avatar_output(
                    self.avatar, fmt.sample_rate, fmt.num_channels
                )
            else:
                if self.avatar is not None:
                    self.node.ctx.logger.info(
                        "no avatar here (%s): avatar %r is not sent the voice, it plays as is",
                        type(self.io).__name__, self.avatar,
                    )
                self.output = self.io.audio_output(fmt.sample_rate, fmt.num_channels)
            self.format = fmt
            if isinstance(self.output, QueuedAudioOutput):
                self.queued_output = self.output
        elif fmt != self.format:
            raise ValueError(
                f"RoomSink {self.node.name!r}: got {fmt} audio after {self.format} audio; the "
                "output is opened at the first frame's format, so make every TTS feeding the "
                "sink speak one format (one voice per sink, or resample in the provider)"
            )
        return self.output

    def reach(self, reply: _Reply, mark: int, queued: float) -> None:
        """Report the marker ``mark`` reached once the ``queued`` audio before it has played."""
        if queued > _PLAYED_OUT:
            loop = asyncio.get_running_loop()
            reply.marks[mark] = loop.call_later(queued, self.reached, reply, mark)
        else:
            self.report(reply, PlayoutEvent.REACHED, mark=mark)

    def reached(self, reply: _Reply, mark: int) -> None:
        reply.marks.pop(mark, None)
        self.report(reply, PlayoutEvent.REACHED, mark=mark)

    async def finish(self, reply: _Reply) -> None:
        """End ``reply`` as finished, once the output has played all of it."""
        queued = 0.0 if self.queued_output is None else self.queued_output.queued_seconds
        if queued > _PLAYED_OUT:
            reply.draining = True
            await asyncio.sleep(queued)
        if reply.done:
            return  # a newer reply ended it while its end played
        for mark, handle in list(reply.marks.items()):  # due now too: reached first
            handle.cancel()
            self.reached(reply, mark)
        self.end(reply, PlayoutEvent.FINISHED)

    def take_back(self, reply: _Reply) -> list[AgentAudio]:
        """The pieces of ``reply`` the output holds unheard, taken off what was played.

        Call it before clearing the output: the markers among them are no longer reached.
        """
        if self.queued_output is None:
            return []
        back = reply.unheard.take_back(
            self.queued_output.queued_seconds,
            lambda item: item.final or item.mark in reply.marks,
        )
        for item in back:
            if item.mark:
                reply.marks.pop(item.mark).cancel()
        reply.unplay(back)
        return back

    def played(
        self, reply: _Reply, item: AgentAudio, frame: rtc.AudioFrame, queued: float
    ) -> None:
        """Count ``frame`` as played; ``queued``: what the output holds unheard after it."""
        seconds = duration_s(frame)
        reply.played += seconds
        sentence = reply.sentences[item.segment]
        starts = not sentence.started  # not played == 0: a pause can take it all back
        sentence.started = True
        sentence.played += seconds
        if not reply.started:
            reply.started = True
            self.report(reply, PlayoutEvent.STARTED)
        if starts and sentence.text:
            spoken = Transcript(turn_id=reply.turn_id, text=sentence.text, speaker="agent")
            self.node.transcripts.send(spoken)
            if self.publish and not self.sync:
                self.io.publish_transcript(spoken)
        if self.sync:
            self.publish_heard(reply, final=False, queued=queued)

    def publish_heard(self, reply: _Reply, *, final: bool, queued: float = 0.0) -> None:
        """Publish what has been played of ``reply``: an interim if it grew, or the final.

        The heard text is an estimate while a sentence is still arriving (see
        :meth:`_Reply.played_text`) and can fall back by a word when more of its audio
        comes in; an interim is only sent when it is longer than the last one, so the text
        on a listener's screen never shrinks before the final.
        """
        # An interim comes as audio is written: a queued output has not played all of it
        # (``queued``, read once per frame by the player). The final counts what was heard.
        heard = reply.played_text(0.0 if final else queued)
        if final:
            if not heard and not reply.published:
                return  # nothing was played and nothing shown: no segment to close
        elif len(heard) <= len(reply.published):
            return
        reply.published = heard
        self.io.publish_transcript(
            Transcript(turn_id=reply.turn_id, text=heard, final=final, speaker="agent")
        )

    def clear_output(self) -> None:
        if self.output is not None:
            self.output.clear()

    # --- reports

    def end(self, reply: _Reply, event: PlayoutEvent) -> None:
        reply.done = True
        reply.forget_marks()
        if self.sync:
            self.publish_heard(reply, final=True)
        self.report(reply, event)
        self.settled.set()

    def report_unplayed(
        self,
        turn_id: int,
        event: PlayoutEvent,
        *,
        allow_interruptions: bool = True,
        mark: int = 0,
    ) -> None:
        """Report on a turn that has no reply here: nothing of it was played."""
        self.report(_Reply(turn_id, allow_interruptions, self.rate), event, mark=mark)

    def report(self, reply: _Reply, event: PlayoutEvent, *, mark: int = 0) -> None:
        with contextlib.suppress(RuntimeError):  # the graph closed under us: nobody listens
            self.node.playout.send(
                Playout(
                    turn_id=reply.turn_id,
                    event=event,
                    played_text=reply.played_text(),
                    played_duration=reply.played,
                    allow_interruptions=reply.allow_interruptions,
                    mark=mark,
                )
            )
