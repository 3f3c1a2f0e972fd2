"""Per-turn latency breakdown of a running voice graph, measured from its edges.

:class:`TurnTimeline` listens to every output port of a running graph that carries one of
the conversation messages below and notes, per turn, the loop time at which each stage was
first seen:

============== =========================================================================
stage          the first message of the turn that marks it
============== =========================================================================
end_of_speech  ``VADEvent(END_OF_SPEECH)``: the last one before the turn was committed
transcript     final user ``Transcript``: the first after that end of speech (else the
               last before it, when the recogniser was ahead of the VAD)
committed      ``UserTurn``
first_token    ``TextChunk`` with text
first_audio    ``AgentAudio`` with a frame
played         ``Playout(STARTED)``
============== =========================================================================

Speech and transcripts carry no turn yet (``turn_id`` 0): they belong to the next
``UserTurn``. A reply that no user turn started (a greeting from code) gets a record without
the user's stages.

A turn is *over* once a later user turn is committed: until then its reply may go on (a
tool round, a reply the agent makes on its own, the speaker finishing). ``on_turn_over``
hears each turn then, once, which is how a running job's turns leave as OpenTelemetry spans
(:class:`flowkit.telemetry.JobSpans`) without waiting for the job's end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flowkit.following import Following
from flowkit.messages import (
    AgentAudio,
    Playout,
    PlayoutEvent,
    TextChunk,
    Transcript,
    UserTurn,
    VADEvent,
    VADEventKind,
)

if TYPE_CHECKING:
    from flowkit.runtime.runner import GraphRunner

__all__ = ["LATENCY_NAMES", "TIMED_TYPES", "TurnRecord", "TurnTimeline"]

log = logging.getLogger(__name__)

TIMED_TYPES: tuple[type, ...] = (VADEvent, Transcript, UserTurn, TextChunk, AgentAudio, Playout)
"""The message types whose ports a :class:`TurnTimeline` observes."""

_STAGES = ("end_of_speech", "transcript", "committed", "first_token", "first_audio", "played")
# (name, from stage, to stage): the breakdown, stage to stage, then end to end.
_LATENCIES = (
    ("stt", "end_of_speech", "transcript"),
    ("endpointing", "transcript", "committed"),
    ("llm", "committed", "first_token"),
    ("tts", "first_token", "first_audio"),
    ("playout", "first_audio", "played"),
    ("voice_to_voice", "end_of_speech", "played"),
)
LATENCY_NAMES: tuple[str, ...] = tuple(name for name, _, _ in _LATENCIES)
"""The latencies of a :class:`TurnRecord`, in breakdown order (``voice_to_voice`` last)."""


@dataclass(frozen=True, slots=True)
class TurnRecord:
    """One turn: when each stage happened (loop time, seconds) and what was said.

    A stage that was not seen is ``None``, and so is every latency that needs it.

    Attributes:
        turn_id: The turn's id.
        user_text: What the user said (``UserTurn.text``; empty for a reply from code).
        agent_text: The agent's reply as the LLM streamed it (``TextChunk`` s joined).
        played_text: What the listener heard, as the last ``Playout`` report said.
        interrupted: Whether the reply was interrupted (``Playout(INTERRUPTED)``).
        end_of_speech: The user's end of speech.
        transcript: The final user transcript.
        committed: The turn's commit.
        first_token: The LLM's first text.
        first_audio: The TTS's first audio.
        played: The first audio played.
    """

    turn_id: int
    user_text: str = ""
    agent_text: str = ""
    played_text: str = ""
    interrupted: bool = False
    end_of_speech: float | None = None
    transcript: float | None = None
    committed: float | None = None
    first_token: float | None = None
    first_audio: float | None = None
    played: float | None = None

    def _gap(self, start: str, end: str) -> float | None:
        a, b = getattr(self, start), getattr(self, end)
        return None if a is None or b is None else b - a

    @property
    def stt(self) -> float | None:
        """End of speech → final transcript."""
        return self._gap("end_of_speech", "transcript")

    @property
    def endpointing(self) -> float | None:
        """Final transcript → turn committed."""
        return self._gap("transcript", "committed")

    @property
    def llm(self) -> float | None:
        """Turn committed → LLM first token."""
        return self._gap("committed", "first_token")

    @property
    def tts(self) -> float | None:
        """LLM first token → TTS first audio."""
        return self._gap("first_token", "first_audio")

    @property
    def playout(self) -> float | None:
        """TTS first audio → first audio played."""
        return self._gap("first_audio", "played")

    @property
    def voice_to_voice(self) -> float | None:
        """End of user speech → first agent audio played: what the user waits."""
        return self._gap("end_of_speech", "played")

    def latencies(self) -> dict[str, float | None]:
        """Every latency by name (``stt``, ``endpointing``, ..., ``voice_to_voice``)."""
        return {name: self._gap(a, b) for name, a, b in _LATENCIES}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form: texts, stage times and latencies (seconds, ``None`` if unseen)."""
        return {
            "turn_id": self.turn_id,
            "user_text": self.user_text,
            "agent_text": self.agent_text,
            "played_text": self.played_text,
            "interrupted": self.interrupted,
            "stages": {stage: getattr(self, stage) for stage in _STAGES},
            "latencies": self.latencies(),
        }


@dataclass(slots=True)
class _Turn:
    """A turn being recorded (mutable; frozen into a TurnRecord on read)."""

    turn_id: int
    user_text: str = ""
    chunks: list[TextChunk] = field(default_factory=list)
    played_text: str = ""
    interrupted: bool = False
    times: dict[str, float] = field(default_factory=dict)

    def mark(self, stage: str, when: float) -> None:
        self.times.setdefault(stage, when)

    def freeze(self) -> TurnRecord:
        return TurnRecord(
            self.turn_id, self.user_text, "".join(c.text for c in self.chunks),
            self.played_text, self.interrupted,
            **{stage: self.times.get(stage) for stage in _STAGES},
        )


class TurnTimeline:
    """Records each turn's stages from a running graph (see the module docs).

    Use it right after ``await runner.start()`` (before the loop runs the graph's tasks, so
    no message is missed): ``timeline = TurnTimeline.attach(runner)``; read :attr:`turns`
    at any time.

    Ports are found by type in ``runner.plan``: every output whose declared type is one of
    :data:`TIMED_TYPES` (or a subclass). A node that passes a message on (the same object)
    does not count it twice; one that re-creates text chunks would (pass them on instead).

    Args:
        clock: The time source; the running loop's clock by default.
        on_turn_over: Called with each turn's record once the turn is over (a later user
            turn was committed; see the module docs), in the order the turns began. What
            it raises is logged, not passed on: the graph's delivery must not fail for it.
    """

    def __init__(
        self,
        clock: Callable[[], float] | None = None,
        *,
        on_turn_over: Callable[[TurnRecord], None] | None = None,
    ) -> None:
        self._clock = clock
        self._on_turn_over = on_turn_over
        self._turns: dict[int, _Turn] = {}
        # Turns already handed to on_turn_over.
        self._over: set[int] = set()
        self._end_of_speech: float | None = None
        self._finals: list[float] = []
        self._following = Following()

    @property
    def ports(self) -> list[str]:
        """Every output listened to, as ``"node.port"``."""
        return self._following.ports

    @classmethod
    def attach(
        cls,
        runner: GraphRunner,
        clock: Callable[[], float] | None = None,
        *,
        on_turn_over: Callable[[TurnRecord], None] | None = None,
    ) -> TurnTimeline:
        """A timeline listening to ``runner``, which must have started.

        Args:
            runner: The running graph.
            clock: The time source; the running loop's clock by default.
            on_turn_over: See the class.

        Raises:
            RuntimeError: The runner has not started (its ports have no streams yet).
        """
        timeline = cls(clock, on_turn_over=on_turn_over)
        timeline.listen(runner)
        return timeline

    def listen(self, runner: GraphRunner) -> None:
        """Subscribe to every timed port of ``runner`` (see the class docs)."""
        from flowkit.runtime.runner import RunnerState

        if runner.state is not RunnerState.RUNNING:
            raise RuntimeError(
                f"TurnTimeline: graph {runner.graph.name!r} is {runner.state}; attach the "
                "timeline right after 'await runner.start()'"
            )
        if self._clock is None:
            self._clock = asyncio.get_running_loop().time
        self._following.follow(runner, TIMED_TYPES, self.on_message)

    def detach(self) -> None:
        """Stop listening (the records stay)."""
        self._following.dispose()

    @property
    def turns(self) -> list[TurnRecord]:
        """Every turn seen so far, in the order each was first seen."""
        return [turn.freeze() for turn in self._turns.values()]

    def to_dicts(self) -> list[dict[str, Any]]:
        """:attr:`turns` in JSON-able form."""
        return [record.to_dict() for record in self.turns]

    def on_message(self, message: object) -> None:
        """Note ``message`` at the clock's time (what each observed port delivers to)."""
        assert self._clock is not None, "listen() sets the clock"
        now = self._clock()
        if isinstance(message, VADEvent):
            if message.kind is VADEventKind.END_OF_SPEECH:
                self._end_of_speech = now
        elif isinstance(message, Transcript):
            if message.final and message.speaker != "agent":
                self._finals.append(now)
        elif isinstance(message, UserTurn):
            self._commit(message, now)
        elif isinstance(message, TextChunk):
            turn = self._turn(message.turn_id)
            if message.text and all(c is not message for c in turn.chunks):
                turn.chunks.append(message)
                turn.mark("first_token", now)
        elif isinstance(message, AgentAudio):
            if message.frame is not None:
                self._turn(message.turn_id).mark("first_audio", now)
        elif isinstance(message, Playout):
            turn = self._turn(message.turn_id)
            if message.event is PlayoutEvent.STARTED:
                turn.mark("played", now)
            elif message.event is PlayoutEvent.INTERRUPTED:
                turn.interrupted = True
            if message.played_text:
                turn.played_text = message.played_text

    def _commit(self, message: UserTurn, now: float) -> None:
        turn = self._turn(message.turn_id)
        if "committed" in turn.times:
            return  # the same turn seen on a second port
        turn.user_text = message.text
        turn.mark("committed", now)
        eos = self._end_of_speech
        if eos is not None:
            turn.mark("end_of_speech", eos)
        after = [t for t in self._finals if eos is None or t >= eos]
        if after:
            turn.mark("transcript", after[0])
        elif self._finals:
            turn.mark("transcript", self._finals[-1])
        self._end_of_speech = None
        self._finals.clear()
        if self._on_turn_over is not None:
            self._hand_over(before=message.turn_id)

    def _hand_over(self, before: int) -> None:
        """Give ``on_turn_over`` every turn not yet over that began before ``before``."""
        assert self._on_turn_over is not None
        for turn_id, turn in list(self._turns.items()):
            # Turn ids grow with time; a say from code can hold a later one than the commit.
            if turn_id >= before or turn_id in self._over:
                continue
            self._over.add(turn_id)
            try:
                self._on_turn_over(turn.freeze())
            except Exception:
                log.exception("on_turn_over raised for turn %d; the timeline goes on", turn_id)

    def _turn(self, turn_id: int) -> _Turn:
        turn = self._turns.get(turn_id)
        if turn is None:
            turn = self._turns[turn_id] = _Turn(turn_id)
        return turn
