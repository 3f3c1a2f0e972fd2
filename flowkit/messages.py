"""Conversation messages: the payloads that travel on a graph's edges.

Audio travels as :class:`livekit.rtc.AudioFrame` itself; everything else a voice agent says
about a conversation is one of the small immutable classes below. They are frozen, slotted
dataclasses (cheap to create, safe to share between branches of a fan-out) and every one
carries a ``turn_id``: the conversation's epoch. A new user turn or an interruption bumps
the epoch, so a node downstream can drop output of a stale turn by comparing ids instead of
tracking cancellations.
"""

from __future__ import annotations

import base64
import enum
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from livekit import rtc

__all__ = [
    "DTMF_DIGITS",
    "SIP_CALL_STATUS",
    "AMDCategory",
    "AMDVerdict",
    "AgentAudio",
    "AgentState",
    "AgentStateKind",
    "DTMFDigit",
    "Image",
    "Interrupt",
    "InterruptAction",
    "Message",
    "Metrics",
    "ParticipantUpdate",
    "Playout",
    "PlayoutEvent",
    "ReplyRequest",
    "SoundCue",
    "SpeechPrefetch",
    "TentativeTurn",
    "TextChunk",
    "TimedWord",
    "ToolCall",
    "ToolResult",
    "ToolSpeech",
    "Transcript",
    "TurnPrediction",
    "UserState",
    "UserStateKind",
    "UserTurn",
    "VADEvent",
    "VADEventKind",
    "dtmf_code",
    "new_turn_id",
]

_turn_ids = itertools.count(1)


def new_turn_id() -> int:
    """A fresh conversation epoch, larger than every id handed out before in this process.

    User turns (the turn detector) and agent-initiated replies (``say``, ``generate_reply``)
    draw from this one counter, so "newer than" is a plain comparison whatever the source.
    """
    return next(_turn_ids)


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """Base of every conversation message.

    Attributes:
        turn_id: The conversation epoch this message belongs to. ``0`` before the first turn.
    """

    turn_id: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Transcript(Message):
    """Text recognised from speech, interim or final.

    Attributes:
        text: The recognised text.
        final: ``False`` for an interim hypothesis that may still change.
        speaker: Who spoke: a participant identity, or ``"agent"`` for the agent's own speech.
        language: BCP-47 language code when the recogniser reports one.
        confidence: The recogniser's confidence in ``[0, 1]``, when reported.
        start_time: Seconds from the start of the stream to the first word.
        end_time: Seconds from the start of the stream to the end of the last word.
    """

    text: str
    final: bool = True
    speaker: str = "user"
    language: str | None = None
    confidence: float | None = None
    start_time: float = 0.0
    end_time: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class UserTurn(Message):
    """A committed user turn: what the user said, ready for the LLM.

    A node between the turn detector and the LLM may enrich a turn before it is answered,
    as LiveKit Agents' ``on_user_turn_completed`` does: look up what the user asked about
    and send the turn on with ``context``, or with ``reply=False`` to keep it unanswered.

    Attributes:
        text: The whole turn's text.
        speaker: The participant identity of the speaker.
        context: Notes for the LLM that go with this turn (passages a retrieval step found
            for it, a customer record): the LLM node adds them to the history as one
            assistant message just before the user's words, as LiveKit's RAG recipe adds
            them to ``turn_ctx``, so they stay there for later turns too.
        reply: ``False``: the user's words (and ``context``) join the history, and no reply
            is made, as ``StopResponse`` from ``on_user_turn_completed``. The reply under
            way is still cut: the user has spoken.
    """

    text: str
    speaker: str = "user"
    context: tuple[str, ...] = ()
    reply: bool = True

    def context_note(self) -> str:
        """The message :attr:`context` becomes in the history; empty without notes."""
        notes = "\n\n".join(note.strip() for note in self.context if note.strip())
        return f"Information relevant to the user's next message:\n\n{notes}" if notes else ""


@dataclass(frozen=True, slots=True, kw_only=True)
class TentativeTurn(Message):
    """The turn the user has probably finished: it commits with this text unless they go on.

    The turn detector sends one when the user has stopped speaking and a final transcript is
    in, while the endpointing delay still runs; an LLM may start on it (preemptive
    generation) and use the result only if the committed :class:`UserTurn` says the same.
    It is not a turn: its ``turn_id`` is the epoch it belongs to (the last committed turn's),
    and nothing may be spoken for it.

    Attributes:
        text: The text the turn would commit with now.
        speaker: The participant identity of the speaker.
    """

    text: str
    speaker: str = "user"


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeechPrefetch(Message):
    """Text a reply will probably start with, for TTS to synthesise ahead and speak nothing.

    The LLM sends the text of a preemptive request (:class:`TentativeTurn`) as it streams;
    a TTS node linked to it synthesises the first sentence into a cache, and uses that audio
    if the committed reply's first sentence is the same. ``turn_id`` is the epoch, as on
    the tentative turn.

    Attributes:
        key: Which preemptive request the text belongs to; a new key starts over.
        text: The text delta.
        final: ``True`` when the request's text is complete (no tool call came).
        discard: ``True`` when the request was thrown away: its audio will not be wanted.
    """

    key: int
    text: str = ""
    final: bool = False
    discard: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class TextChunk(Message):
    """A piece of the agent's reply text, streamed from the LLM toward TTS.

    Attributes:
        text: The text delta.
        final: ``True`` on the last chunk of the reply (its text may be empty).
        flush: ``True`` when the reply's text so far is to be spoken now, as it stands,
            although more of the reply follows: the LLM node flushes before a tool round
            and after what a tool says, so that neither waits for the next sentence.
        allow_interruptions: Whether the user may barge in on this reply
            (:attr:`ReplyRequest.allow_interruptions`); carried on to its audio and its
            playout reports, where :class:`~flowkit.nodes.Interruptions` reads it.
        mark: Not ``0`` on a playout marker (a tool's ``ctx.wait_for_playout()``), a chunk
            without text: the TTS node puts it among the reply's audio after the audio of
            the text before it, and the speaker reports ``Playout(REACHED, mark=...)``
            when it gets there.
        audio: Recorded speech of ``text`` (a ``say`` with ``audio``): the TTS node plays
            it, converted to its voice's format, instead of synthesising ``text``, after
            the audio of the text before it.
    """

    text: str
    final: bool = False
    flush: bool = False
    allow_interruptions: bool = True
    mark: int = 0
    audio: tuple[rtc.AudioFrame, ...] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCall(Message):
    """A function call requested by the LLM.

    Attributes:
        call_id: The provider's id for this call, echoed back in the result.
        name: The tool's name.
        arguments: The arguments as a JSON object text, as the LLM produced them.
    """

    call_id: str
    name: str
    arguments: str = "{}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolResult(Message):
    """The outcome of one :class:`ToolCall`, sent back to the LLM.

    Attributes:
        call_id: The id of the call this answers.
        name: The tool's name.
        output: The tool's return value as text (JSON for structured values).
        is_error: ``True`` when ``output`` describes an error for the LLM to see.
        stop_response: The tool asked that the LLM not reply after this call.
        handoff: An agent (``instructions`` and ``tools``) the conversation moves to, or a
            task's start or end (:class:`~flowkit.tools.task.TaskStarted`,
            :class:`~flowkit.tools.task.TaskEnded`), which the nodes that keep an agent's
            instructions and tools follow with :meth:`flowkit.tools.Toolbox.switch`.
        call: The call this answers, when no model made it: the ToolRouter's own, for a
            task completed outside any tool call (:mod:`flowkit.tools.task`), or for what a
            tool running in the background reports (``deferred``). ``turn_id`` is then a
            fresh turn: the node that keeps the history adds the call and this result to it
            and replies, unless ``stop_response``. ``None`` for a result of the model's own
            call.
        deferred: With ``call``: an update or the result of a tool that went on in the
            background (``await ctx.update(...)``, :mod:`flowkit.nodes.tool_background`).
            It does not cut the agent short: the LLM node holds it until the agent is idle
            (no reply under way, the last one played), then adds it to the history and
            replies, several held results in one reply; a user turn that comes first takes
            them into its history instead, and its reply is the answer.
    """

    call_id: str
    name: str
    output: str
    is_error: bool = False
    stop_response: bool = False
    handoff: Any = None
    call: ToolCall | None = None
    deferred: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolSpeech(Message):
    """What a running tool says to the user (``await ctx.say(...)``), on its call's turn.

    A :class:`~flowkit.nodes.tools.ToolRouter` sends it from its ``speech`` output to the
    ``tool_speech`` input of the node that made the call, which speaks it as part of the reply
    that made the call, while that reply waits for the call's result, and drops it otherwise:
    the :class:`~flowkit.nodes.llm.LLM` node, or flowkit-openai's ``RealtimeModel`` when a TTS
    node speaks its text (``output_modality="text"``; one that speaks itself cannot say a
    given text, so it drops every one, with a warning).

    With ``allow_interruptions=False`` (``ctx.disallow_interruptions()``) it also asks that
    the reply may no longer be interrupted, from now until it ends; ``text`` is then empty
    when the tool says nothing. With a ``mark`` (``ctx.wait_for_playout()``) it asks for a
    playout marker in the reply, after what it has said so far (see :attr:`TextChunk.mark`).

    Attributes:
        call_id: The id of the call whose tool speaks.
        name: The tool's name.
        text: What to say, as plain text for TTS; empty when there are no words.
        allow_interruptions: ``False`` to protect the rest of the reply from barge-in.
        mark: Not ``0``: the playout marker the tool waits for.
    """

    call_id: str
    name: str
    text: str
    allow_interruptions: bool = True
    mark: int = 0


DTMF_DIGITS = "0123456789*#ABCD"
"""The sixteen telephone keypad keys, each at the index of its event code (RFC 4733).

``0``-``9`` are codes 0-9, ``*`` is 10, ``#`` is 11 and ``A``-``D`` (keys of military and
some office phones) are 12-15: the ``code`` LiveKit's SIP bridge puts on a DTMF packet.
"""


def dtmf_code(digit: str) -> int:
    """The RFC 4733 event code of a keypad ``digit`` (``"5"`` is 5, ``"*"`` 10, ``"#"`` 11).

    Raises:
        ValueError: ``digit`` is not one of the sixteen keys of :data:`DTMF_DIGITS`.
    """
    if len(digit) != 1 or digit not in DTMF_DIGITS:
        raise ValueError(
            f"{digit!r} is not a telephone keypad key; give one of {DTMF_DIGITS!r} "
            "(0-9, *, #, or A-D in upper case)"
        )
    return DTMF_DIGITS.index(digit)


@dataclass(frozen=True, slots=True, kw_only=True)
class DTMFDigit(Message):
    """A key pressed on a telephone keypad (DTMF), e.g. by a caller on a SIP line.

    It carries no turn of its own (``turn_id`` stays ``0``):
    :class:`~flowkit.nodes.dtmf.DTMFInput` collects presses into a :class:`UserTurn`.

    Attributes:
        digit: The key: ``"0"``-``"9"``, ``"*"``, ``"#"`` or ``"A"``-``"D"``
            (:data:`DTMF_DIGITS`), as the sender named it.
        code: The key's event code as the sender gave it (RFC 4733: the index in
            :data:`DTMF_DIGITS`, so ``#`` is 11).
        participant: The identity of the participant who pressed it; ``""`` when the room's
            server sent it on nobody's behalf.
    """

    digit: str
    code: int
    participant: str = "user"


@dataclass(frozen=True, slots=True, kw_only=True)
class Image(Message):
    """A still image for the LLM: a frame of a participant's video, encoded (JPEG by default).

    :class:`~flowkit.nodes.video.ImageEncoder` makes them from video frames; the
    :class:`~flowkit.nodes.llm.LLM` shows the newest one to the model with the next user
    turn. It carries no turn of its own (``turn_id`` stays ``0``).

    Attributes:
        data: The encoded image.
        mime_type: Its type: ``"image/jpeg"``, ``"image/png"``, ...
        width: Its width in pixels (after any scaling down).
        height: Its height in pixels.
        source: Where it was seen: ``"camera"``, ``"screen_share"``, ...
        captured_at: When the frame was taken to be encoded, on the event loop's clock
            (seconds).
    """

    data: bytes = field(repr=False)
    mime_type: str = "image/jpeg"
    width: int = 0
    height: int = 0
    source: str = "camera"
    captured_at: float = 0.0

    def data_url(self) -> str:
        """The image as a ``data:`` URL (base64), the form OpenAI-style chat APIs accept."""
        return f"data:{self.mime_type};base64,{base64.b64encode(self.data).decode('ascii')}"


class VADEventKind(enum.StrEnum):
    """What a voice activity detector saw."""

    START_OF_SPEECH = "start_of_speech"
    END_OF_SPEECH = "end_of_speech"


@dataclass(frozen=True, slots=True, kw_only=True)
class VADEvent(Message):
    """Start or end of speech in an audio stream.

    Attributes:
        kind: Start or end of speech.
        timestamp: Seconds from the start of the stream at which the event was decided.
        speech_duration: Seconds of speech so far (for an end: the whole utterance).
        silence_duration: Seconds of silence that led to an end of speech.
        speaker: The participant identity whose audio this is.
    """

    kind: VADEventKind
    timestamp: float = 0.0
    speech_duration: float = 0.0
    silence_duration: float = 0.0
    speaker: str = "user"


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnPrediction(Message):
    """How likely the user's turn is over, judged from their voice at an end of speech.

    A :class:`~flowkit.nodes.turn_prediction.TurnPredictor` sends one per end of speech;
    the :class:`~flowkit.nodes.turn.TurnDetector` waits the short endpointing delay when
    the turn sounds finished and the long one when it does not.

    Attributes:
        probability: The model's probability that the turn is complete, 0 to 1.
        speech_end: The ``timestamp`` of the :class:`VADEvent` (end of speech) it answers.
        elapsed: Seconds the model took.
        speaker: The participant identity whose audio this is.
    """

    probability: float
    speech_end: float
    elapsed: float = 0.0
    speaker: str = "user"


class InterruptAction(enum.StrEnum):
    """What an :class:`Interrupt` asks of the agent's speech."""

    PAUSE = "pause"
    """Stop the audio now but keep the rest: it may turn out to be a false interruption."""
    RESUME = "resume"
    """It was a false interruption: play on from where the pause stopped."""
    FLUSH = "flush"
    """The reply is over: drop what is queued, cancel its work, report what was played."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Interrupt(Message):
    """Pause, resume or end the agent's reply of ``turn_id`` (barge-in, or from code).

    ``turn_id`` 0 means the reply being played or made, whichever it is.

    Attributes:
        action: Pause, resume or flush.
        reason: Why: ``"barge_in"``, ``"false_interruption"``, ``"manual"``, ...
        force: ``False``: a flush that leaves alone a reply that may not be interrupted
            (``ReplyRequest(allow_interruptions=False)``), as LiveKit Agents'
            ``interrupt(force=False)``; typed text and key presses flush so, and their turn
            is answered after that reply. ``True`` (the default): cut whatever reply it
            names.
    """

    action: InterruptAction = InterruptAction.FLUSH
    reason: str = "barge_in"
    force: bool = True


@dataclass(frozen=True, slots=True)
class TimedWord:
    """One word of a sentence and when it is spoken, as a synthesiser timed it.

    Attributes:
        text: The word: one whitespace-separated word of the sentence, in order.
        start: Seconds from the start of the sentence's audio to where the word begins.
        end: Seconds from the start of the sentence's audio to where the word ends.
    """

    text: str
    start: float
    end: float


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentAudio(Message):
    """A piece of the agent's speech, with the text it speaks, on its way to the speaker.

    A piece without a frame that is not ``final`` is a marker. With a ``mark``, the speaker
    reports ``Playout(REACHED, mark=...)`` once it has played the audio before it (a tool's
    ``ctx.wait_for_playout()``); without, it tells the speaker that the reply may no longer
    be interrupted (``allow_interruptions=False``) before its next audio is made, as when a
    tool calls ``ctx.disallow_interruptions()``.

    Attributes:
        frame: The audio, or ``None`` on the end-of-reply marker and the protection marker.
        text: The sentence (segment) this audio speaks; the same on each of its frames.
        segment: The index of that sentence within the reply.
        final: ``True`` on the end-of-reply marker, after the reply's last frame.
        allow_interruptions: Whether the user may barge in on this reply (from its text).
        words: Timings of the sentence's next words, when the synthesiser gives them
            (:class:`TimedWord`, continuing where the sentence's earlier frames left off:
            together, the first words of ``text``, one for each of its words, in order).
            Empty when it gives none; the sink then estimates from the speaking rate.
        mark: Not ``0`` on a playout marker (see :attr:`TextChunk.mark`).
    """

    frame: rtc.AudioFrame | None
    text: str = ""
    segment: int = 0
    final: bool = False
    allow_interruptions: bool = True
    words: tuple[TimedWord, ...] = ()
    mark: int = 0


class PlayoutEvent(enum.StrEnum):
    """What happened to a reply's audio at the speaker."""

    STARTED = "started"
    PAUSED = "paused"
    RESUMED = "resumed"
    PROTECTED = "protected"
    """The reply may no longer be interrupted, from now on (a tool's
    ``ctx.disallow_interruptions()``); the report says ``allow_interruptions=False``."""
    REACHED = "reached"
    """The speaker has played the reply's audio up to a playout marker, whose id the
    report's ``mark`` gives (a tool's ``ctx.wait_for_playout()``); the reply goes on."""
    FINISHED = "finished"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True, slots=True, kw_only=True)
class Playout(Message):
    """The speaker's report on the reply of ``turn_id``.

    Attributes:
        event: What happened.
        played_text: The text the listener actually heard so far (whole sentences, and the
            share of the current one that was played, cut at a word).
        played_duration: Seconds of the reply's audio played.
        allow_interruptions: Whether the user may barge in on this reply (from its audio).
        mark: For ``REACHED``: the id of the marker reached.
    """

    event: PlayoutEvent
    played_text: str = ""
    played_duration: float = 0.0
    allow_interruptions: bool = True
    mark: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplyRequest(Message):
    """Ask the agent to speak from code: ``generate_reply`` or ``say``.

    Attributes:
        instructions: Extra instructions for this reply (``generate_reply``).
        user_text: A user message to add before replying.
        say: Speak exactly this text, without the LLM (``say``); it joins the history.
        audio: With ``say``: recorded speech to play instead of synthesising ``say``, which
            stays its transcript (a cached greeting, a recorded notice), as LiveKit Agents'
            ``say(text, audio=...)``. 16-bit PCM frames of any one rate and channel count;
            the TTS node converts them to its voice's format (read a WAV file with
            :func:`flowkit.audio.read_frames`).
        allow_interruptions: Whether the user may barge in on this reply. ``False`` rides
            with the reply's text, audio and playout reports:
            :class:`~flowkit.nodes.Interruptions` leaves such a reply alone, and the
            :class:`~flowkit.nodes.LLM` answers user turns that end meanwhile once it has
            played.
        add_to_history: With ``say``: ``False`` keeps the said text out of the chat history
            (LiveKit's ``add_to_chat_ctx=False``), so the model never reads it (a notice it
            should not repeat or answer). It is still spoken and its transcript published.

    Raises:
        ValueError: ``audio`` without ``say`` (the text the listener's transcript and the
            history show), or with no frames; ``add_to_history=False`` without ``say``.
    """

    instructions: str | None = None
    user_text: str | None = None
    say: str | None = None
    audio: tuple[rtc.AudioFrame, ...] | None = None
    allow_interruptions: bool = True
    add_to_history: bool = True

    def __post_init__(self) -> None:
        if not self.add_to_history and self.say is None:
            raise ValueError(
                "ReplyRequest(add_to_history=False) applies to a say: a generated reply is "
                "the model's own and stays in its history; give say=... too"
            )
        if self.audio is None:
            return
        if self.say is None or not self.say.strip():
            raise ValueError(
                "ReplyRequest(audio=...) needs say=... too: the words the recording speaks, "
                "for the transcript and the chat history"
            )
        if not self.audio:
            raise ValueError(
                f"ReplyRequest(say={self.say!r}, audio=()) has no frames to play; pass the "
                "recording's frames, or leave audio out to have the text synthesised"
            )
        first = self.audio[0]
        for frame in self.audio:
            if (frame.sample_rate, frame.num_channels) != (first.sample_rate, first.num_channels):
                raise ValueError(
                    f"ReplyRequest(say={self.say!r}, audio=...) mixes formats: a "
                    f"{frame.sample_rate} Hz, {frame.num_channels}-channel frame after "
                    f"{first.sample_rate} Hz, {first.num_channels}-channel ones; give one "
                    "recording in one format (read_frames of one WAV file is)"
                )


class AgentStateKind(enum.StrEnum):
    """The agent's conversational state, as LiveKit's ``lk.agent.state`` attribute names it."""

    INITIALIZING = "initializing"
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentState(Message):
    """The agent changed state.

    Attributes:
        state: The new state.
    """

    state: AgentStateKind


class UserStateKind(enum.StrEnum):
    """The user's conversational state."""

    SPEAKING = "speaking"
    LISTENING = "listening"
    AWAY = "away"


@dataclass(frozen=True, slots=True, kw_only=True)
class UserState(Message):
    """The user changed state.

    Attributes:
        state: The new state.
        speaker: The participant identity.
    """

    state: UserStateKind
    speaker: str = "user"


class AMDCategory(enum.StrEnum):
    """What answered an outbound call, as answering-machine detection tells it."""

    HUMAN = "human"
    """A person: "Hello?", "This is Lisa."."""
    MACHINE_IVR = "machine-ivr"
    """An automated menu or call screening: "press 1 for ...", "say your name ..."."""
    MACHINE_VM = "machine-vm"
    """A voicemail greeting after which a message can be left."""
    MACHINE_UNAVAILABLE = "machine-unavailable"
    """A mailbox that takes no message: full, not set up."""
    UNCERTAIN = "uncertain"
    """Not decided: nothing was said, or the greeting was too ambiguous before the time ran out."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AMDVerdict(Message):
    """What answered the call: the one result of answering-machine detection.

    Attributes:
        category: Human, one of three kinds of machine, or uncertain.
        reason: How it was decided: ``"llm"`` (the model classified the transcript),
            ``"short_greeting"`` (a short utterance, then silence: a person),
            ``"no_speech_timeout"`` or ``"detection_timeout"`` (a fallback),
            ``"participant_missing"`` (the call ended, or the room closed, before a verdict)
            or ``"input_ended"`` (the audio ended first).
        transcript: The greeting's text the model classified (empty for the others).
        speech_duration: Seconds from the first speech to the end of the last.
        delay: Seconds from the end of speech to the verdict.
    """

    category: AMDCategory
    reason: str
    transcript: str = ""
    speech_duration: float = 0.0
    delay: float = 0.0

    @property
    def is_human(self) -> bool:
        """Whether a person answered."""
        return self.category is AMDCategory.HUMAN

    @property
    def is_machine(self) -> bool:
        """Whether a machine answered (a menu, a voicemail or a mailbox that takes none)."""
        return self.category in (
            AMDCategory.MACHINE_IVR,
            AMDCategory.MACHINE_VM,
            AMDCategory.MACHINE_UNAVAILABLE,
        )


SIP_CALL_STATUS = "sip.callStatus"
"""The attribute LiveKit's SIP service keeps on a SIP participant: the state of its call.

Its values: ``"dialing"`` and ``"ringing"`` (an outbound call not answered yet),
``"automation"`` (answered, DTMF being sent before the call is bridged), ``"active"``
(answered) and ``"hangup"`` (ended)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ParticipantUpdate(Message):
    """Where a room participant is now: present or gone, and their attributes.

    :class:`~flowkit.nodes.participant.ParticipantWatch` sends one when the participant is
    first seen, after each change of their attributes, and when they leave.

    Attributes:
        identity: The participant's identity.
        attributes: All their attributes after the change (LiveKit participant attributes:
            SIP calls carry :data:`SIP_CALL_STATUS`, ``sip.phoneNumber`` and others).
        present: ``False`` once they left the room (or the room closed).
    """

    identity: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    present: bool = True

    @property
    def call_status(self) -> str | None:
        """The SIP call's state (:data:`SIP_CALL_STATUS`); ``None`` for a participant not on SIP."""
        return self.attributes.get(SIP_CALL_STATUS)

    @property
    def answered(self) -> bool:
        """Whether they are there to be heard: present, and a SIP call (if any) is answered.

        ``True`` for a participant without :data:`SIP_CALL_STATUS` (not a phone call) and
        for a call that is ``"active"``; not while the call is dialed, rings, or is in
        ``"automation"`` (the keys given at dial time are still being sent).
        """
        return self.present and self.call_status in (None, "active")


@dataclass(frozen=True, slots=True, kw_only=True)
class SoundCue(Message):
    """Play a named sound on the background track, or stop it: LiveKit's ``play()`` as a message.

    Send it to the ``cues`` input of :class:`~flowkit.nodes.background.BackgroundAudio`,
    which knows the sound by name (its ``sounds``). A cue plays the sound once, mixed over
    whatever else plays there (a chime when a tool answers); with ``loop=True`` it plays
    until a stop cue names it or the session ends (hold music). Each cue starts the sound
    anew, so two chimes close together overlap; a stop cue fades out every instance of the
    sound that is playing.

    Attributes:
        sound: The name of the sound, one of the node's ``sounds``.
        loop: Play it in a loop until stopped, rather than once.
        stop: Stop the sound (every instance playing) rather than play it.

    Raises:
        ValueError: ``loop`` and ``stop`` both set: a cue either plays or stops.
    """

    sound: str
    loop: bool = False
    stop: bool = False

    def __post_init__(self) -> None:
        if self.loop and self.stop:
            raise ValueError(
                f"SoundCue(sound={self.sound!r}) has loop=True and stop=True; a cue plays or "
                "stops: send stop=True alone to stop the sound"
            )


# weakref_slot: a UsageLedger remembers the metrics it counted, to count a message passed on
# by another node once, without keeping them alive (docs/observability.md, "Provider usage").
@dataclass(frozen=True, slots=True, kw_only=True, weakref_slot=True)
class Metrics(Message):
    """Figures a provider node measured for one request (time to first token, ...).

    Attributes:
        kind: What was measured: ``"stt"``, ``"llm"``, ``"tts"``, ``"vad"``, ...
        node: The name of the node that measured it.
        values: Named figures; durations are in seconds.
    """

    kind: str
    node: str = ""
    values: Mapping[str, float] = field(default_factory=dict)
    labels: Mapping[str, Any] = field(default_factory=dict)
