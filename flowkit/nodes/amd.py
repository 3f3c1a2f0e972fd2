"""Who answered an outbound call: LiveKit Agents' answering-machine detection (AMD) as a node.

An agent that places calls meets people, phone menus (IVR) and voicemail, and should act
differently on each: talk, navigate, leave a message or hang up.
:class:`AnsweringMachineDetector` listens to the greeting and gives one
:class:`~flowkit.messages.AMDVerdict` per call, from the timing of the speech and, for
anything longer than a short hello, an LLM's reading of the transcript
(:func:`~flowkit.nodes.amd_classifier.classify_greeting`):

- **a short greeting** (speech of at most ``human_speech_threshold``, 2.5 s) followed by
  ``human_silence_threshold`` (0.5 s) of silence with no transcript yet: a person ("Hello?"),
  decided without the LLM;
- **anything longer, or a transcript**: the LLM classifies the transcript, again with the
  whole of it as each new final transcript comes in; it may ask to hear more (at most
  ``max_waits`` times, ``max_wait`` seconds each). Its category is released once the other
  side has been silent for ``machine_silence_threshold`` (1.5 s) and, for anything but a
  person, the turn has ended (a committed turn on ``turns``, or ``max_endpointing_delay``
  after the speech ended), so a machine's greeting is heard out before the agent acts;
- **fallbacks**: no speech within ``no_speech_threshold`` (10 s), or no verdict within
  ``timeout`` (20 s), gives ``uncertain``. With ``wait_until_finished`` (the default) the
  timeout waits for the end of the turn once there was speech. An LLM that fails or answers
  with garbage leaves the verdict to these (logged), the call goes on.

One difference from LiveKit on purpose: the node **holds the user turns** it gets on
``turns`` until its verdict, and passes them on ``released`` (to the LLM) only for a person,
a menu or an uncertain answer; for a voicemail or a mailbox it drops them, so the agent does
not answer a recording or talk over the greeting (LiveKit's session answers meanwhile and
interrupts the reply when a machine is detected). A voicemail verdict also asks the LLM for
the message to leave (``voicemail_instructions``, a reply that may not be interrupted), when
given. The timings, defaults and categories are LiveKit's (``voice/amd``); the prompt is
flowkit's own.

Listening starts when the node starts, or, with a
:class:`~flowkit.nodes.participant.ParticipantWatch` linked to ``participant``, once the
called participant is answered: for a SIP participant when ``sip.callStatus`` becomes
``active`` (as LiveKit's AMD waits), so the ringback tone, a carrier's announcement or the
keys of ``automation`` are not taken for a greeting, and the two timeouts count from the
answer. Speech, transcripts and turns that come before are dropped. A call that ends
before a verdict (``hangup``, or the participant leaves) gives ``uncertain`` at once, with
reason ``participant_missing``, unless a verdict was already decided. Without that link,
start the graph once the call is answered (``wait_until_answered`` when dialling).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pydantic

from flowkit.messages import (
    AMDCategory,
    AMDVerdict,
    ParticipantUpdate,
    ReplyRequest,
    Transcript,
    UserTurn,
    VADEvent,
    VADEventKind,
)
from flowkit.node import Node, NodeParams
from flowkit.nodes.amd_classifier import DEFAULT_AMD_PROMPT, classify_greeting
from flowkit.ports import In, Out
from flowkit.providers.llm import LLMProvider
from flowkit.runtime.queues import InputQueue

__all__ = ["DEFAULT_VOICEMAIL_INSTRUCTIONS", "AnsweringMachineDetector"]

log = logging.getLogger("flowkit.nodes.amd")

DEFAULT_VOICEMAIL_INSTRUCTIONS = (
    "You have reached voicemail. Leave a short message: who you are, why you called, and "
    "ask to be called back."
)

# The verdicts after which the agent talks to the other side.
_ANSWERED = (AMDCategory.HUMAN, AMDCategory.MACHINE_IVR, AMDCategory.UNCERTAIN)


class AnsweringMachineDetector(Node):
    """Tells a person from a menu, a voicemail or a dead mailbox; holds turns until it knows."""

    transcripts: In[Transcript] = In(
        default=True, doc="what the other side says: final transcripts are classified"
    )
    vad: In[VADEvent] = In(doc="start and end of the other side's speech (the VAD node's)")
    turns: In[UserTurn] = In(
        required=False,
        doc="the TurnDetector's committed turns: held until the verdict; each also ends a turn",
    )
    participant: In[ParticipantUpdate] = In(
        required=False,
        doc="the called participant (ParticipantWatch): listen once the call is answered; "
        "a hang-up before the verdict ends detection",
    )
    verdicts: Out[AMDVerdict] = Out(default=True, doc="the verdict, once per call")
    released: Out[UserTurn] = Out(
        doc="the turns the agent may answer (to the LLM): all of them after a person, a menu "
        "or an uncertain verdict, none after a voicemail or mailbox"
    )
    requests: Out[ReplyRequest] = Out(doc="the voicemail message, asked of the LLM")

    class Params(NodeParams):
        """Parameters of :class:`AnsweringMachineDetector`."""

        llm: Any
        human_speech_threshold: float = pydantic.Field(2.5, gt=0.0)
        human_silence_threshold: float = pydantic.Field(0.5, ge=0.0)
        machine_silence_threshold: float = pydantic.Field(1.5, ge=0.0)
        no_speech_threshold: float = pydantic.Field(10.0, gt=0.0)
        timeout: float = pydantic.Field(20.0, gt=0.0)
        max_endpointing_delay: float = pydantic.Field(3.0, ge=0.0)
        max_waits: int = pydantic.Field(3, ge=0)
        max_wait: float = pydantic.Field(10.0, ge=0.0)
        wait_until_finished: bool = True
        prompt: str = DEFAULT_AMD_PROMPT
        voicemail_instructions: str | None = DEFAULT_VOICEMAIL_INSTRUCTIONS

    def __init__(
        self,
        llm: LLMProvider,
        *,
        human_speech_threshold: float = 2.5,
        human_silence_threshold: float = 0.5,
        machine_silence_threshold: float = 1.5,
        no_speech_threshold: float = 10.0,
        timeout: float = 20.0,
        max_endpointing_delay: float = 3.0,
        max_waits: int = 3,
        max_wait: float = 10.0,
        wait_until_finished: bool = True,
        prompt: str = DEFAULT_AMD_PROMPT,
        voicemail_instructions: str | None = DEFAULT_VOICEMAIL_INSTRUCTIONS,
    ) -> None:
        """Make the detector.

        Args:
            llm: The chat model that classifies greetings (tool calls needed); it may be
                the agent's own or a small, fast one.
            human_speech_threshold: Speech up to this many seconds is a short greeting.
            human_silence_threshold: Silence after a short greeting (with no transcript)
                that makes it a person.
            machine_silence_threshold: Silence after longer speech before a verdict is
                released.
            no_speech_threshold: Seconds without any speech before ``uncertain``.
            timeout: Seconds without a verdict before ``uncertain``.
            max_endpointing_delay: Seconds after the speech ended that count as the end
                of the turn when no turn is committed.
            max_waits: How many times the LLM may ask to hear more of the greeting.
            max_wait: The longest such wait, in seconds.
            wait_until_finished: Once there was speech, let the timeout wait for the end
                of the turn, so a long greeting is heard out.
            prompt: The LLM's system message (see ``DEFAULT_AMD_PROMPT``).
            voicemail_instructions: The instructions of the reply asked of the LLM on a
                voicemail verdict (the message to leave); ``None``: no reply.

        Raises:
            TypeError: ``llm`` is not an LLM provider.
            NodeParamsError: A duration is out of range.
        """
        if not isinstance(llm, LLMProvider):
            raise TypeError(
                f"AnsweringMachineDetector(llm={llm!r}): an LLM provider has name and "
                "chat(history, tools); see flowkit.providers.LLMProvider"
            )
        super().__init__(
            llm=llm,
            human_speech_threshold=human_speech_threshold,
            human_silence_threshold=human_silence_threshold,
            machine_silence_threshold=machine_silence_threshold,
            no_speech_threshold=no_speech_threshold,
            timeout=timeout,
            max_endpointing_delay=max_endpointing_delay,
            max_waits=max_waits,
            max_wait=max_wait,
            wait_until_finished=wait_until_finished,
            prompt=prompt,
            voicemail_instructions=voicemail_instructions,
        )

    async def run(
        self,
        transcripts: AsyncIterator[Transcript],
        vad: AsyncIterator[VADEvent],
        turns: AsyncIterator[UserTurn],
        participant: AsyncIterator[ParticipantUpdate],
    ) -> None:
        """Detect until ``transcripts`` and ``vad`` end, then pass turns until they end."""
        params = self.params
        assert isinstance(params, AnsweringMachineDetector.Params)
        detection = _Detection(self, params)
        if isinstance(participant, InputQueue) and participant.exhausted:
            detection.start_listening()  # nothing linked to ``participant``: listen now
        watch = self.ctx.create_task(detection.read_participant(participant), name="participant")
        speech = self.ctx.create_task(detection.read_vad(vad), name="vad")
        held = self.ctx.create_task(detection.read_turns(turns), name="turns")
        try:
            async for transcript in transcripts:
                detection.on_transcript(transcript)
            await speech
            # The call's audio is over: whatever was not decided will not be.
            detection.settle(AMDCategory.UNCERTAIN, "input_ended", now=True)
            await held
        finally:
            watch.cancel()
            speech.cancel()
            held.cancel()
            detection.close()


class _Detection:
    """The state of one call's detection (a restart of the node begins afresh)."""

    def __init__(self, node: AnsweringMachineDetector, params: AnsweringMachineDetector.Params):
        self.node = node
        self.params = params
        self.llm: LLMProvider = params.llm
        self.loop = asyncio.get_running_loop()
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self.short_greeting_pending = False  # the silence timer would decide "human"
        self.verdict: AMDVerdict | None = None  # decided, waiting for silence / end of turn
        self.emitted: AMDVerdict | None = None
        self.silence_reached = False
        self.turn_ended = False
        self.speaking = False
        self.first_speech: float | None = None
        self.speech_end: float | None = None
        self.transcript = ""
        self.waits = 0
        self.classifying: asyncio.Task[None] | None = None
        self.held: list[UserTurn] = []
        self.listening = False  # the call is answered: what is heard is the greeting
        self.speech_at_answer = False  # the VAD's speech that began before the answer goes on

    def start_listening(self) -> None:
        """The call is answered (or no answer is awaited): hear the greeting from now."""
        if self.listening or self.emitted is not None:
            return
        self.listening = True
        self.arm("no_speech", self.params.no_speech_threshold, self.on_no_speech)
        self.arm("timeout", self.params.timeout, self.on_timeout)
        if self.speech_at_answer:
            # The VAD's segment began before the answer (ringback running into "Hello?"):
            # what comes after the answer is speech, counted from now.
            self.on_speech_started()

    def heard(self) -> bool:
        """Whether an input event counts: the call is answered and nothing is decided yet."""
        return self.listening and self.emitted is None

    # --- inputs ---------------------------------------------------------------------------

    async def read_participant(self, updates: AsyncIterator[ParticipantUpdate]) -> None:
        seen = False
        async for update in updates:
            seen = True
            if self.emitted is not None:
                continue
            if update.answered:
                self.start_listening()
            elif not update.present or update.call_status == "hangup":
                log.info(
                    "AMD: the call with %s ended (%s) before a verdict",
                    update.identity,
                    "left the room" if not update.present else "hangup",
                )
                self.settle(AMDCategory.UNCERTAIN, "participant_missing", now=True)
            # Otherwise dialing, ringing or automation: the answer is still to come.
        if not seen:
            self.start_listening()  # nobody tells when the call is answered: listen now
        elif not self.listening:
            # The room closed while the call was still ringing.
            self.settle(AMDCategory.UNCERTAIN, "participant_missing", now=True)

    async def read_vad(self, events: AsyncIterator[VADEvent]) -> None:
        async for event in events:
            if not self.listening:
                self.speech_at_answer = event.kind is VADEventKind.START_OF_SPEECH
            if not self.heard():
                continue
            if event.kind is VADEventKind.START_OF_SPEECH:
                self.on_speech_started()
            else:
                self.on_speech_ended(event.silence_duration)

    async def read_turns(self, turns: AsyncIterator[UserTurn]) -> None:
        async for turn in turns:
            if not self.listening and self.emitted is None:
                continue  # a turn made of what was heard before the answer
            if self.emitted is None:
                self.held.append(turn)
                self.turn_ended = True
                self.try_emit()
            elif self.emitted.category in _ANSWERED:
                self.node.released.send(turn)

    def on_speech_started(self) -> None:
        for name in ("silence", "no_speech", "end_of_turn"):
            self.cancel(name)
        self.short_greeting_pending = False
        if self.first_speech is None:
            self.first_speech = self.loop.time()
        self.speaking = True
        self.silence_reached = False
        self.turn_ended = False

    def on_speech_ended(self, silence: float) -> None:
        if self.first_speech is None:
            log.debug("AMD: an end of speech without a start; ignored")
            return
        params = self.params
        self.speaking = False
        self.speech_end = self.loop.time() - silence
        self.arm_end_of_turn(max(0.0, params.max_endpointing_delay - silence))
        if self.speech_duration() <= params.human_speech_threshold and not self.transcript:
            # A short hello and nothing transcribed yet: a person, unless words come in
            # before the silence is long enough (on_transcript switches to the LLM then).
            self.short_greeting_pending = True
            self.arm(
                "silence",
                max(0.0, params.human_silence_threshold - silence),
                lambda: self.settle(AMDCategory.HUMAN, "short_greeting"),
            )
        else:
            self.short_greeting_pending = False
            self.arm(
                "silence", max(0.0, params.machine_silence_threshold - silence), self.on_silence
            )

    def on_transcript(self, transcript: Transcript) -> None:
        text = transcript.text.strip()
        if not self.heard() or not transcript.final or not text:
            return
        self.cancel("no_speech")
        self.arm_end_of_turn(self.params.max_endpointing_delay)
        if self.short_greeting_pending and self.speech_end is not None:
            # Words, so not decided on timing alone: the LLM reads them, and the verdict
            # waits for the longer silence, counted from the same end of speech.
            self.short_greeting_pending = False
            left = self.speech_end + self.params.machine_silence_threshold - self.loop.time()
            self.arm("silence", max(0.0, left), self.on_silence)
        self.transcript = f"{self.transcript} {text}".strip()
        self.classify()

    # --- timers -----------------------------------------------------------------------------

    def arm(self, name: str, delay: float, callback: Callable[[], None]) -> None:
        self.cancel(name)
        self.timers[name] = self.loop.call_later(delay, self._fire, name, callback)

    def _fire(self, name: str, callback: Callable[[], None]) -> None:
        del self.timers[name]
        callback()

    def cancel(self, name: str) -> None:
        timer = self.timers.pop(name, None)
        if timer is not None:
            timer.cancel()

    def arm_end_of_turn(self, delay: float) -> None:
        if self.speaking:
            return  # the turn cannot end while the other side speaks
        self.turn_ended = False
        self.arm("end_of_turn", delay, self.on_end_of_turn)

    def on_no_speech(self) -> None:
        self.settle(AMDCategory.UNCERTAIN, "no_speech_timeout")

    def on_timeout(self) -> None:
        self.settle(AMDCategory.UNCERTAIN, "detection_timeout")

    def on_silence(self) -> None:
        self.silence_reached = True
        self.try_emit()

    def on_end_of_turn(self) -> None:
        self.turn_ended = True
        self.try_emit()

    def on_wait_over(self) -> None:
        # The greeting had its extra time: decide on what was heard (with fewer or no more
        # waits left, the LLM must commit sooner).
        self.silence_reached = True
        self.classify()
        self.try_emit()

    # --- deciding ---------------------------------------------------------------------------

    def speech_duration(self) -> float:
        if self.first_speech is None:
            return 0.0
        end = self.speech_end if self.speech_end is not None else self.loop.time()
        return max(0.0, end - self.first_speech)

    def make_verdict(self, category: AMDCategory, reason: str, transcript: str) -> AMDVerdict:
        return AMDVerdict(
            category=category,
            reason=reason,
            transcript=transcript,
            speech_duration=self.speech_duration(),
        )

    def settle(self, category: AMDCategory, reason: str, *, now: bool = False) -> None:
        """Decide ``category`` unless the LLM already decided, and release it when allowed.

        Args:
            category: The fallback verdict.
            reason: Why it falls back (the verdict's ``reason``).
            now: Release at once (the input ended): nothing more can be waited for.
        """
        if self.emitted is not None:
            return
        self.cancel("silence")
        self.short_greeting_pending = False
        self.silence_reached = True
        heard = self.first_speech is not None or bool(self.transcript)
        if now or not (self.params.wait_until_finished and heard):
            self.turn_ended = True
        if self.verdict is None:
            self.verdict = self.make_verdict(category, reason, "")
        self.try_emit()

    def classify(self) -> None:
        if self.classifying is not None:
            self.classifying.cancel()  # a newer transcript replaces the question
        self.classifying = self.node.ctx.create_task(
            self._classify(self.transcript), name="amd-classify"
        )

    async def _classify(self, transcript: str) -> None:
        params = self.params
        try:
            answer = await classify_greeting(
                self.llm,
                transcript,
                prompt=params.prompt,
                may_wait=self.waits < params.max_waits,
                max_wait=params.max_wait,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a provider failure must not end the call
            log.warning(
                "AMD: classifying %r with %s failed (%s: %s); the timeouts decide instead",
                transcript, self.llm.name, type(exc).__name__, exc,
            )
            return
        if self.emitted is not None:
            return
        if answer.category is not None and answer.category is not AMDCategory.UNCERTAIN:
            self.verdict = self.make_verdict(answer.category, "llm", transcript)
            self.try_emit()
        elif answer.wait is not None:
            self.waits += 1
            self.short_greeting_pending = False
            self.arm("silence", answer.wait, self.on_wait_over)

    def try_emit(self) -> None:
        verdict = self.verdict
        if verdict is None or self.emitted is not None or not self.silence_reached:
            return
        if not (verdict.is_human or self.turn_ended):
            return  # a machine's greeting is heard out first
        if self.speech_end is not None:  # the delay is the one the call sees: to the release
            verdict = dataclasses.replace(
                verdict, delay=max(0.0, self.loop.time() - self.speech_end)
            )
        self.emitted = verdict
        self.close()
        log.info(
            "AMD: %s (%s) after %.1f s of speech: %r",
            verdict.category.value, verdict.reason, verdict.speech_duration, verdict.transcript,
        )
        self.node.verdicts.send(verdict)
        held, self.held = self.held, []
        if verdict.category in _ANSWERED:
            for turn in held:
                self.node.released.send(turn)
        elif held:
            log.info("AMD: %d turn(s) of a %s not answered", len(held), verdict.category.value)
        instructions = self.params.voicemail_instructions
        if verdict.category is AMDCategory.MACHINE_VM and instructions:
            self.node.requests.send(
                ReplyRequest(instructions=instructions, allow_interruptions=False)
            )

    def close(self) -> None:
        for name in list(self.timers):
            self.cancel(name)
        # Not the classification that is deciding right now: it ends by itself.
        if self.classifying is not None and self.classifying is not asyncio.current_task():
            self.classifying.cancel()
        self.classifying = None
