"""Console room I/O: talk to a graph by typing in the terminal (``flowkit console``).

:class:`ConsoleIO` is a :class:`~flowkit.room_io.RoomIO` bound to a terminal instead of a
room, for trying an agent's prompt, tools and flow without a LiveKit server:

- each typed line is a message from the user, as text typed in a room's chat (LiveKit's
  ``lk.chat``): a :class:`~flowkit.nodes.room_state.ChatInput` node makes it a user turn, and
  a new line cuts off the reply being spoken, as in a room;
- the agent's transcript, which the room sink publishes in step with its voice, is shown a
  word at a time as the words are played (``agent: ...``);
- the agent's voice is played on the loop's clock, in real time, so a reply takes as long
  as it would in a room and its playout reports are true; with ``output`` it is also written
  to a WAV file, one reply after the other;
- the user's audio: by default there is no microphone, so the room source hears nothing
  until the console ends; with ``audio=True`` (``flowkit console --audio``) the room source
  hears the computer's microphone and the agent speaks through its speakers
  (:mod:`flowkit.console_audio`), as in LiveKit Agents' console mode, typing still on;
- the agent's state, when the graph publishes it, is kept (:attr:`ConsoleIO.agent_state`)
  and, with ``on_state``, shown as it changes (``flowkit console --states``).

:func:`converse` runs a graph on it until the typing ends (and the last reply has been
played) or the graph ends the call.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from livekit import rtc

from flowkit.audio.frames import duration_s, frame_format
from flowkit.audio.wav import WavWriter
from flowkit.console_audio import DeviceAudioInput, DeviceAudioOutput, EchoCanceller
from flowkit.following import Following
from flowkit.graph import Graph
from flowkit.job import JobContext
from flowkit.messages import Playout, PlayoutEvent, Transcript, UserTurn
from flowkit.nodes.audio_processing import APM_RATES
from flowkit.ports import AudioFormat
from flowkit.runtime.runner import GraphRunner
from flowkit.usage import UsageSummary

__all__ = [
    "AGENT_PREFIX",
    "ConsoleAudioInput",
    "ConsoleAudioOutput",
    "ConsoleIO",
    "Conversation",
    "TranscriptPrinter",
    "converse",
]

AGENT_PREFIX = "agent: "
"""What starts each of the agent's lines in the console."""

StrPath = str | os.PathLike[str]


class TranscriptPrinter:
    """Shows the agent's transcript as it grows: one line per reply, a word at a time.

    The room sink publishes, per reply, interim transcripts that grow as words are played,
    then a final one (see :class:`~flowkit.nodes.room.RoomSink`). Each interim adds what it
    has beyond what is shown; the final ends the line. A transcript that does not extend
    the line (another reply, or a final cut back to the words heard) starts a new one.
    The user's transcripts are not shown: the user typed them.

    Args:
        write: Writes text to the terminal as is (no newline added).
    """

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write
        self._turn: int | None = None
        self._shown = ""

    @property
    def open(self) -> bool:
        """Whether a reply's line is started and not yet ended."""
        return self._turn is not None

    def show(self, transcript: Transcript) -> None:
        """Show what ``transcript`` adds to the agent's line (nothing for the user's)."""
        if transcript.speaker != "agent":
            return
        text = transcript.text.strip()
        if self._turn is not None and not (
            self._turn == transcript.turn_id and text.startswith(self._shown)
        ):
            cut_back = self._turn == transcript.turn_id and transcript.final
            self.end_line()
            if cut_back:  # the final holds fewer words than shown: the line stands as is
                return
        if self._turn is None:
            if not text:
                return
            self._write(AGENT_PREFIX)
            self._turn = transcript.turn_id
        self._write(text[len(self._shown):])
        self._shown = text
        if transcript.final:
            self.end_line()

    def end_line(self) -> None:
        """End the current line, if one is open."""
        if self._turn is not None:
            self._write("\n")
        self._turn = None
        self._shown = ""


class ConsoleAudioInput:
    """The user's audio in the console: nothing, until the console ends."""

    def __init__(self, closed: asyncio.Event) -> None:
        self._closed = closed

    def frames(self) -> AsyncIterator[rtc.AudioFrame]:
        """No frame; the iteration ends when the console is closed."""
        return self

    def __aiter__(self) -> ConsoleAudioInput:
        return self

    async def __anext__(self) -> rtc.AudioFrame:
        await self._closed.wait()
        raise StopAsyncIteration


class ConsoleAudioOutput:
    """The agent's voice, played on the loop's clock in real time, kept in a WAV if asked.

    ``write`` returns when its frame is due to play, as a room's audio track does, so the
    room sink's transcripts and playout reports follow what a listener would hear.
    ``clear`` (a barge-in) drops what was written but not yet played: the played part
    ends now. Frames go into the file as they are written, one reply after the other with no
    silence between them; audio cleared after it was written stays in the file.

    Args:
        fmt: The output's format.
        path: The WAV file to write, or ``None`` for none.
    """

    def __init__(self, fmt: AudioFormat, path: StrPath | None = None) -> None:
        self.format = fmt
        self.path = Path(path) if path is not None else None
        self._writer = WavWriter(path) if path is not None else None
        self._end = 0.0  # loop time at which the audio written so far has played
        self.written = 0.0  # seconds written
        self.closed = False

    @property
    def paced(self) -> bool:
        """Always: ``write`` returns when its frame is due."""
        return True

    async def write(self, frame: rtc.AudioFrame) -> None:
        """Play ``frame`` after the ones before it; return when it is due.

        Raises:
            ValueError: The frame's format is not the output's (resample before the sink).
            RuntimeError: The output was closed.
        """
        if self.closed:
            raise RuntimeError("the console's audio output was written to after aclose()")
        have = frame_format(frame)
        if have != self.format:
            raise ValueError(
                f"the console's audio output was opened at {self.format} but got a {have} "
                f"frame; resample the agent's audio to {self.format} before the sink"
            )
        if self._writer is not None:
            self._writer.write(frame)
        seconds = duration_s(frame)
        self.written += seconds
        now = asyncio.get_running_loop().time()
        start = max(self._end, now)
        self._end = start + seconds
        if start > now:
            await asyncio.sleep(start - now)

    def clear(self) -> None:
        """Stop playing: what was written and not yet played is dropped."""
        self._end = 0.0

    async def aclose(self) -> None:
        """Finish the file (what is written is kept)."""
        self.closed = True
        if self._writer is not None:
            self._writer.close()


class ConsoleIO:
    """A room I/O bound to the terminal: typed lines in, the agent's words and voice out.

    Implements :class:`~flowkit.room_io.RoomIO` with the optional text input and agent state
    (kept in :attr:`agent_state`). Whoever reads the terminal hands each line to
    :meth:`type_line` and its end to :meth:`end_typing`; see the module for the rest.

    Args:
        show: Called with every transcript published (the agent's, and the user's lines
            when a graph publishes them); a :class:`TranscriptPrinter`'s ``show`` prints
            the agent's.
        output: A WAV file for the agent's voice, or ``None``.
        identity: The typing user's participant identity.
        on_state: Called with the agent's state each time it changes (``thinking``,
            ``speaking``, ``listening``), from a graph that publishes it
            (``AgentStates`` into ``AgentStatePublisher``); ``None``: only kept.
        audio: Hear the microphone and speak through the speakers (see the module).
        input_device: The microphone (a ``sounddevice`` name or index; ``None``: default).
        output_device: The speakers (likewise).
        echo_cancellation: With ``audio``, take what the speakers play out of what the
            microphone hears (:class:`~flowkit.console_audio.EchoCanceller`), for a
            microphone read mono at 8, 16, 32 or 48 kHz.

    Raises:
        ValueError: ``audio`` with ``output`` (the voice goes to the speakers).

    Attributes:
        agent_state: The agent's last state (``initializing``, ``listening``, ...).
        output: The agent's audio output, once the room sink opened it.
    """

    def __init__(
        self,
        show: Callable[[Transcript], None],
        *,
        output: StrPath | None = None,
        identity: str = "user",
        on_state: Callable[[str], None] | None = None,
        audio: bool = False,
        input_device: Any = None,
        output_device: Any = None,
        echo_cancellation: bool = True,
    ) -> None:
        if audio and output is not None:
            raise ValueError(
                "the console speaks through the speakers with audio=True; drop the output "
                "file (or record with a RecordingIO)"
            )
        self._show = show
        self._on_state = on_state
        self._output_path = output
        self._audio = audio
        self._devices = (input_device, output_device)
        self._echo_cancellation = echo_cancellation
        self._echo: EchoCanceller | None = None  # made with the microphone
        self._microphone: DeviceAudioInput | None = None
        self.identity = identity
        self.agent_state = "initializing"
        self.output: ConsoleAudioOutput | DeviceAudioOutput | None = None
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._closed = asyncio.Event()
        self._typing_done = asyncio.Event()

    @property
    def typing_done(self) -> asyncio.Event:
        """Set once the graph has read every line up to the end of the typing."""
        return self._typing_done

    def type_line(self, line: str) -> None:
        """The user typed ``line`` (without its newline)."""
        self._lines.put_nowait(line)

    def end_typing(self) -> None:
        """The user is done typing (end of input)."""
        self._lines.put_nowait(None)

    async def text_input(self) -> AsyncIterator[tuple[str, str]]:
        """``(identity, line)`` for each typed line, until the typing ends.

        A reader cancelled while it waits (a node restarted by its error policy) loses no
        line: the next call goes on from the first line not yet read.
        """
        while not self._typing_done.is_set():
            line = await self._lines.get()
            if line is None:
                # Set only once the lines before it were read, so their turns are known
                # to whoever waits for the replies.
                self._typing_done.set()
                return
            yield self.identity, line

    def audio_input(
        self, sample_rate: int, num_channels: int, participant: str | None = None
    ) -> ConsoleAudioInput | DeviceAudioInput:
        """The user's audio: the microphone with ``audio``, else none; ends with the console."""
        if self._audio:
            if (self._echo_cancellation and self._echo is None and num_channels == 1
                    and sample_rate in APM_RATES):
                self._echo = EchoCanceller(sample_rate)
            self._microphone = DeviceAudioInput(
                AudioFormat(sample_rate, num_channels), self._closed, self._devices[0],
                echo=self._echo,
            )
            return self._microphone
        return ConsoleAudioInput(self._closed)

    def audio_output(
        self, sample_rate: int, num_channels: int
    ) -> ConsoleAudioOutput | DeviceAudioOutput:
        """The agent's voice output (the first call opens it; later ones get the same).

        Raises:
            ValueError: It is already open at another format.
        """
        fmt = AudioFormat(sample_rate, num_channels)
        if self.output is None:
            self.output = (
                DeviceAudioOutput(fmt, self._devices[1], echo=self._echo,
                                  microphone=self._microphone) if self._audio
                else ConsoleAudioOutput(fmt, self._output_path)
            )
        elif self.output.format != fmt:
            raise ValueError(
                f"the console's audio output is open at {self.output.format}, not {fmt}; "
                "a graph has one voice: resample the agent's audio to one format"
            )
        return self.output

    def publish_transcript(self, transcript: Transcript) -> None:
        """Show ``transcript`` (see ``show``)."""
        self._show(transcript)

    def set_agent_state(self, state: str) -> None:
        """Keep the agent's state; tell ``on_state`` when it changed."""
        changed = state != self.agent_state
        self.agent_state = state
        if changed and self._on_state is not None:
            self._on_state(state)

    async def aclose(self) -> None:
        """End the user's audio and finish the output file."""
        self._closed.set()
        if self.output is not None:
            await self.output.aclose()


class _Replies:
    """Which typed turn still waits for its reply to be played, and how many turns came."""

    def __init__(self) -> None:
        self.waiting: int | None = None
        self.turns = 0
        self.changed = asyncio.Event()

    def on_message(self, message: object) -> None:
        if isinstance(message, UserTurn):
            # A new line flushes the reply before it, which then may never play: only the
            # latest turn is waited for.
            self.waiting = message.turn_id
            self.turns += 1
        elif (
            isinstance(message, Playout)
            and message.turn_id == self.waiting
            and message.event in (PlayoutEvent.FINISHED, PlayoutEvent.INTERRUPTED)
        ):
            self.waiting = None
        else:
            return
        self.changed.set()

    async def played(self, after: int = -1) -> None:
        """Wait until a turn after the first ``after`` came and its reply was played.

        With ``after=-1`` (no turn to wait for): until no turn waits for its reply.
        """
        while not (self.turns > after and self.waiting is None):
            self.changed.clear()
            await self.changed.wait()


@dataclass(frozen=True, slots=True)
class Conversation:
    """How a console conversation went.

    Attributes:
        usage: What each provider consumed.
        unanswered: Lines whose reply was not played within the wait for it (an LLM that
            failed, say); the conversation went on without it.
    """

    usage: UsageSummary
    unanswered: int


async def _type(
    lines: AsyncIterator[str], io: ConsoleIO, replies: _Replies, *, turn_by_turn: bool,
    reply_timeout: float, on_typed: Callable[[str], None] | None,
) -> int:
    """Type ``lines`` into ``io`` (each after the last one's reply, turn by turn); the misses."""
    unanswered = 0
    async for line in lines:
        if on_typed is not None:
            on_typed(line)
        turns = replies.turns
        io.type_line(line)
        if turn_by_turn and line.strip():  # a blank line is no turn: nothing to wait for
            try:
                async with asyncio.timeout(reply_timeout):
                    await replies.played(after=turns)
            except TimeoutError:
                unanswered += 1
    io.end_typing()
    return unanswered


async def converse(
    graph: Graph,
    job: JobContext,
    io: ConsoleIO,
    lines: AsyncIterator[str],
    *,
    turn_by_turn: bool = False,
    reply_timeout: float = 60.0,
    on_typed: Callable[[str], None] | None = None,
) -> Conversation:
    """Run ``graph`` on the console: type ``lines``, until the last reply has been played.

    Each line is typed as it comes, cutting off the reply being spoken as a new message
    does in a room; with ``turn_by_turn`` each waits until the reply to the one before has
    been played (a scripted conversation, one turn at a time). When the lines end, the
    conversation ends once the last reply has played. It ends earlier when the graph
    finishes or the job is asked to end (an ``EndCall``). A reply waited for is given at
    most ``reply_timeout`` seconds, so one that never comes (an LLM that failed) does not
    hold the console forever.

    Args:
        graph: The graph; it needs a ``ChatInput`` to hear the lines.
        job: The job; its ``io`` must be ``io``.
        io: The console.
        lines: What the user types; the end of the iterator is the end of the typing.
        turn_by_turn: Type each line only once the reply to the one before was played.
        reply_timeout: Seconds to wait for a reply.
        on_typed: Called with each line as it is typed (to show piped lines).

    Returns:
        What each provider consumed, and how many lines went unanswered.

    Raises:
        GraphFailed: The graph failed.
        ValueError: ``reply_timeout`` is not positive.
    """
    if not reply_timeout > 0:
        raise ValueError(
            f"reply_timeout={reply_timeout!r}: the wait for a reply must be positive "
            "seconds (60 by default)"
        )
    runner = GraphRunner(graph, job=job)
    replies = _Replies()
    following = Following()
    unanswered = 0
    await runner.start()
    try:
        following.follow(runner, (UserTurn, Playout), replies.on_message)
        typist = asyncio.ensure_future(_type(
            lines, io, replies, turn_by_turn=turn_by_turn, reply_timeout=reply_timeout,
            on_typed=on_typed,
        ))
        finished = asyncio.ensure_future(runner.wait())
        ended = asyncio.ensure_future(job.wait_for_shutdown())
        typed = asyncio.ensure_future(io.typing_done.wait())
        try:
            await asyncio.wait({finished, ended, typed}, return_when=asyncio.FIRST_COMPLETED)
            if typed.done() and not (finished.done() or ended.done()):
                unanswered = typist.result()
            if typed.done() and not (finished.done() or ended.done() or turn_by_turn):
                # Every line's turn is known by now (the end of the typing is read after
                # them): what is left is the last one's reply, if it has not played yet.
                # (Turn by turn, the typist has waited for every reply already.)
                last = asyncio.ensure_future(replies.played())
                done, _ = await asyncio.wait(
                    {last, finished, ended}, timeout=reply_timeout,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                unanswered += 0 if done else 1
                last.cancel()
        finally:
            for task in (typist, ended, typed):
                task.cancel()
            if not finished.done():
                finished.cancel()
        if finished.done() and not finished.cancelled():
            finished.result()
    finally:
        following.dispose()
        await runner.close()
        await io.aclose()
    return Conversation(runner.usage.summary(), unanswered)
