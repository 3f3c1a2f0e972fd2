"""The turn detector: decides when the user has finished speaking and commits the turn.

A turn is the final transcripts heard since the previous turn, joined with spaces. When it
is committed depends on the mode:

- ``"vad"``: ``min_endpointing_delay`` seconds after the VAD's end of speech; speech starting
  again cancels the commit, and a final transcript that arrives once the delay has passed
  commits at once. If the ``vad`` input is not linked, or has ended, final transcripts time
  the turn as in ``"stt"`` mode.
- ``"stt"``: the same, timed from each final transcript; an interim transcript means the user
  is still speaking and restarts the timer. When a VAD is linked, its start of speech holds
  the commit and its end of speech restarts the timer.
- ``"manual"``: only a message on ``commit`` commits (push to talk).

In every mode a message on ``commit`` commits the pending text, and the end of the
transcripts commits it too, so an offline run loses nothing. A turn with no text is never
committed. A commit waits for the words the user has just said: while the VAD hears speech,
or speech it heard has no final transcript yet, the commit is made when that transcript
comes, or after ``commit_timeout`` seconds with what there is (a push-to-talk button is let
go right after the last word, before the recogniser has it; LiveKit Agents'
``commit_user_turn`` waits the same way). A message on ``clear`` discards the pending turn
(a cancelled push to talk), and the transcripts of speech it was in the middle of, which
come after it.

While the endpointing delay runs (``"vad"`` and ``"stt"`` modes), ``tentative`` carries the
text the turn would commit with, once per change of that text and at most
``max_tentative`` times a turn: an LLM linked to it starts its reply early (preemptive
generation) and keeps it only if the turn commits as announced. None is announced once the
user has spoken more than ``max_tentative_speech`` seconds in the turn (by the VAD): a long
utterance is more likely to go on, and its speaker to expect a slower answer.

The endpointing delay is ``min_endpointing_delay`` unless a turn model says the turn is
probably not over (its probability below ``unlikely_threshold``): then it is
``max_endpointing_delay``. Two kinds of model can say so. With ``predictions`` linked (from
a :class:`~flowkit.nodes.turn_prediction.TurnPredictor`, which hears how the speech ended),
each end of speech waits for its prediction, but never past the short delay: a prediction
that has not come by then is not waited for, and the turn commits as if there were none.
Otherwise ``end_of_turn``, a function of the turn's text, is asked.

With ``endpointing="dynamic"`` both delays are learned from the user's own pauses as the
call goes (:mod:`flowkit.nodes.endpointing`): the short one grows toward the pauses after
which the user went on (before the agent answered, or just as it started), the long one
moves toward the gaps the user leaves before the agent's answers, each within
``[min_endpointing_delay, max_endpointing_delay]``; the agent's starts come from
``agent_state``. ``endpointing_delays`` reads them.

The user is ``away`` after ``user_away_timeout`` seconds in which neither side spoke. With
the agent's state linked to ``agent_state`` (a feedback input: ``states >>
turns.agent_state``), the clock runs only while the agent is listening too, as in LiveKit
Agents, so a long reply or a slow tool does not count as the user's silence; without it,
the clock runs whenever the user is quiet.
"""

from __future__ import annotations

import asyncio
import inspect
import typing
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal

import pydantic

from flowkit.messages import (
    AgentState,
    AgentStateKind,
    TentativeTurn,
    Transcript,
    TurnPrediction,
    UserState,
    UserStateKind,
    UserTurn,
    VADEvent,
    VADEventKind,
    new_turn_id,
)
from flowkit.node import Node, NodeParams
from flowkit.nodes.endpointing import DynamicDelays
from flowkit.ports import In, Out

__all__ = ["EndOfTurn", "TurnDetector"]

EndOfTurn = Callable[[str], float | Awaitable[float]]
"""A turn model: the text so far → the probability that the user's turn is complete."""


class TurnDetector(Node):
    """Commits user turns: endpointing by VAD, by transcripts, or by hand (push to talk)."""

    transcripts: In[Transcript] = In(default=True, doc="the user's interim and final transcripts")
    vad: In[VADEvent] = In(required=False, doc="start and end of the user's speech")
    predictions: In[TurnPrediction] = In(
        required=False, doc="whether the voice says the turn is over (a TurnPredictor's)"
    )
    commit: In[Any] = In(required=False, doc="any message commits the pending turn")
    clear: In[Any] = In(required=False, doc="any message discards the pending turn")
    agent_state: In[AgentState] = In(
        required=False, feedback=True,
        doc="the agent's state: the away clock runs only while the agent listens",
    )
    turns: Out[UserTurn] = Out(default=True, doc="committed user turns, each with a new turn id")
    user_state: Out[UserState] = Out(doc="speaking, listening or away, on each change")
    tentative: Out[TentativeTurn] = Out(
        doc="the text a turn would commit with, while its endpointing delay runs"
    )

    class Params(NodeParams):
        """Parameters of :class:`TurnDetector`."""

        mode: Literal["vad", "stt", "manual"] = "vad"
        min_endpointing_delay: float = pydantic.Field(0.5, ge=0.0)
        max_endpointing_delay: float = pydantic.Field(6.0, ge=0.0)
        end_of_turn: EndOfTurn | None = None
        unlikely_threshold: float = pydantic.Field(0.5, ge=0.0, le=1.0)
        user_away_timeout: float | None = pydantic.Field(15.0, gt=0.0)
        max_tentative: int = pydantic.Field(3, ge=0)
        max_tentative_speech: float | None = pydantic.Field(10.0, gt=0.0)
        speaker: str = "user"
        endpointing: Literal["fixed", "dynamic"] = "fixed"
        endpointing_alpha: float = pydantic.Field(0.9, ge=0.0, lt=1.0)
        commit_timeout: float = pydantic.Field(2.0, ge=0.0)

        @pydantic.model_validator(mode="after")
        def _delays_ordered(self) -> TurnDetector.Params:
            if self.max_endpointing_delay < self.min_endpointing_delay:
                raise ValueError(
                    f"max_endpointing_delay ({self.max_endpointing_delay}) is below "
                    f"min_endpointing_delay ({self.min_endpointing_delay}); raise the maximum "
                    "or lower the minimum"
                )
            return self

    def __init__(
        self,
        mode: Literal["vad", "stt", "manual"] = "vad",
        *,
        min_endpointing_delay: float = 0.5,
        max_endpointing_delay: float = 6.0,
        end_of_turn: EndOfTurn | None = None,
        unlikely_threshold: float = 0.5,
        user_away_timeout: float | None = 15.0,
        max_tentative: int = 3,
        max_tentative_speech: float | None = 10.0,
        speaker: str = "user",
        endpointing: Literal["fixed", "dynamic"] = "fixed",
        endpointing_alpha: float = 0.9,
        commit_timeout: float = 2.0,
    ) -> None:
        """Create a turn detector.

        Args:
            mode: What ends a turn: ``"vad"``, ``"stt"`` or ``"manual"`` (see the module).
            min_endpointing_delay: Seconds of silence after speech before committing.
            max_endpointing_delay: The delay used when the turn model (``predictions`` or
                ``end_of_turn``) says the turn is probably not over.
            end_of_turn: A function (sync or async) from the turn's text to the probability
                that the turn is complete, e.g. a turn-detector model.
            unlikely_threshold: Below this probability the delay is the maximum one.
            user_away_timeout: Seconds without speech before the user is ``away`` (from
                either side, when ``agent_state`` is linked); ``None`` never marks the user
                away.
            max_tentative: At most this many texts announced on ``tentative`` per turn (each
                one an early LLM request, paid for when the user goes on); ``0`` announces
                none.
            max_tentative_speech: Announce nothing on ``tentative`` once the turn holds more
                than this many seconds of speech (the VAD's ``speech_duration`` of its
                utterances; without VAD events there is no cap); ``None``: no cap.
            speaker: The participant identity put on turns and states.
            endpointing: ``"fixed"`` uses the two delays as given; ``"dynamic"`` learns
                them from the user's pauses, within the given bounds (see the module; link
                ``agent_state`` so that the agent's answers count).
            endpointing_alpha: With ``"dynamic"``: the weight of the past in each update
                (0.9 moves a delay a tenth of the way toward each new pause).
            commit_timeout: How long a message on ``commit`` waits for the transcript of
                speech still being recognised; ``0`` commits at once.

        Raises:
            NodeParamsError: A delay is negative, the maximum is below the minimum, or
                ``endpointing_alpha`` is outside ``[0, 1)``.
        """
        super().__init__(
            mode=mode,
            min_endpointing_delay=min_endpointing_delay,
            max_endpointing_delay=max_endpointing_delay,
            end_of_turn=end_of_turn,
            unlikely_threshold=unlikely_threshold,
            user_away_timeout=user_away_timeout,
            max_tentative=max_tentative,
            max_tentative_speech=max_tentative_speech,
            speaker=speaker,
            endpointing=endpointing,
            endpointing_alpha=endpointing_alpha,
            commit_timeout=commit_timeout,
        )
        p = typing.cast(TurnDetector.Params, self.params)
        # Kept by the node, not the run: what was learned of the caller survives a restart.
        self._delays = DynamicDelays(
            p.min_endpointing_delay, p.max_endpointing_delay, p.endpointing_alpha
        ) if endpointing == "dynamic" else None

    @property
    def endpointing_delays(self) -> tuple[float, float]:
        """The short and long endpointing delays now (learned ones with ``"dynamic"``)."""
        if self._delays is not None:
            return self._delays.min_delay, self._delays.max_delay
        p = typing.cast(TurnDetector.Params, self.params)
        return p.min_endpointing_delay, p.max_endpointing_delay

    async def run(
        self,
        transcripts: AsyncIterator[Transcript],
        vad: AsyncIterator[VADEvent],
        commit: AsyncIterator[Any],
        clear: AsyncIterator[Any],
        agent_state: AsyncIterator[AgentState],
        predictions: AsyncIterator[TurnPrediction],
    ) -> None:
        """Read the inputs until they end; commit what is pending at the end.

        ``agent_state`` is a feedback input: it is read while the node runs, not waited for.
        """
        params = self.params
        assert isinstance(params, TurnDetector.Params)
        endpointer = _Endpointer(self, params, self._delays)
        readers = [
            self.ctx.create_task(endpointer.read_vad(vad), name="vad"),
            self.ctx.create_task(endpointer.read_commits(commit), name="commit"),
            self.ctx.create_task(endpointer.read_clears(clear), name="clear"),
        ]
        # Not waited for at the end: no turn is left to time once the transcripts end.
        predicting = self.ctx.create_task(
            endpointer.read_predictions(predictions), name="predictions"
        )
        agent = self.ctx.create_task(endpointer.read_agent_states(agent_state), name="agent")
        try:
            async for transcript in transcripts:
                endpointer.on_transcript(transcript)
            # No more text can come: waiting out the delay would only lose the turn.
            endpointer.commit_now()
            await asyncio.wait(readers)
        finally:
            for reader in (*readers, agent, predicting):
                reader.cancel()
            endpointer.close()


class _Endpointer:
    """The turn detector's state for one run (a restart begins afresh)."""

    def __init__(
        self, node: TurnDetector, params: TurnDetector.Params, delays: DynamicDelays | None
    ) -> None:
        self.node = node
        self.params = params
        self.delays = delays
        self.loop = asyncio.get_running_loop()
        self.pending: list[str] = []
        # When the user's speech last ended (the start of the endpointing delay); None while
        # the user speaks or once the turn is committed.
        self.ended_at: float | None = None
        self.vad_linked = True
        self.vad_speaking = False
        # Speech the VAD heard with no final transcript since it started (a commit waits
        # for one); a commit that waits; and, after a clear, transcripts still to drop.
        self.untranscribed = False
        self.commit_wait: asyncio.TimerHandle | None = None
        self.discarding = False
        self.timer: asyncio.Task[None] | None = None
        self.state = UserStateKind.LISTENING
        self.away: asyncio.TimerHandle | None = None
        # Until a state says otherwise (or with nothing linked), the agent is taken to listen.
        self.agent_listening = True
        self.last_turn_id = 0
        # The text last announced on ``tentative`` for the pending turn, and how many were.
        self.announced: str | None = None
        self.announcements = 0
        # Seconds of speech since the last commit, by the VAD's end-of-speech events.
        self.speech = 0.0
        # The audio turn model's answers (probability, when it came), by the end of speech
        # they judge (the VAD event's timestamp), and the last end of speech; over when the
        # linked input ended or never was linked (an unlinked input ends at once).
        self.predictions: dict[float, tuple[float, float]] = {}
        self.predicted = asyncio.Event()
        self.predictions_over = False
        self.last_speech_end: float | None = None
        self._arm_away()

    # -- inputs ---------------------------------------------------------------------------

    async def read_vad(self, events: AsyncIterator[VADEvent]) -> None:
        async for event in events:
            self.on_vad(event)
        # From now on the transcripts alone say when the user speaks.
        self.vad_linked = False
        self.vad_speaking = False

    async def read_predictions(self, predictions: AsyncIterator[TurnPrediction]) -> None:
        try:
            async for prediction in predictions:
                arrived = self.loop.time()
                self.predictions[prediction.speech_end] = (prediction.probability, arrived)
                while len(self.predictions) > 8:  # only the latest end of speech is asked
                    del self.predictions[next(iter(self.predictions))]
                self.predicted.set()
        finally:
            self.predictions_over = True
            self.predicted.set()

    async def read_commits(self, commits: AsyncIterator[Any]) -> None:
        async for _ in commits:
            self.request_commit()

    async def read_clears(self, clears: AsyncIterator[Any]) -> None:
        async for _ in clears:
            self.clear()

    async def read_agent_states(self, states: AsyncIterator[AgentState]) -> None:
        async for state in states:
            if state.state is AgentStateKind.SPEAKING and self.delays is not None:
                self.delays.agent_started(self.loop.time())
            listening = state.state is AgentStateKind.LISTENING
            if listening == self.agent_listening:
                continue
            self.agent_listening = listening
            if listening and self.state is UserStateKind.LISTENING:
                self._arm_away()  # a fresh clock: both sides are quiet from now
            else:
                self._disarm_away()

    def on_vad(self, event: VADEvent) -> None:
        mode = self.params.mode
        if self.delays is not None:
            if event.kind is VADEventKind.START_OF_SPEECH:
                before = self.delays.min_delay, self.delays.max_delay
                self.delays.user_started(self.loop.time())
                if (self.delays.min_delay, self.delays.max_delay) != before:
                    self.node.ctx.logger.debug(
                        "endpointing delays %.3f / %.3f s (were %.3f / %.3f)",
                        self.delays.min_delay, self.delays.max_delay, *before,
                    )
            else:
                self.delays.user_ended(self.loop.time())
        if event.kind is VADEventKind.START_OF_SPEECH:
            self.vad_speaking = True
            self.untranscribed = True
            self._set_state(UserStateKind.SPEAKING)
            if mode != "manual":
                self._cancel_timer()
                self.ended_at = None
            return
        self.vad_speaking = False
        self.speech += event.speech_duration
        self.last_speech_end = event.timestamp
        self._set_state(UserStateKind.LISTENING)
        if mode == "vad" or (mode == "stt" and self.pending):
            self.ended_at = self.loop.time()
            self._schedule()

    def on_transcript(self, transcript: Transcript) -> None:
        text = transcript.text.strip()
        if transcript.final:
            # The speech since its start has words (a recogniser that finalises during the
            # speech sends the rest after its end, if any: not waited for).
            self.untranscribed = False
        # A final transcript once the speech has ended: nothing heard is still to come.
        settled = transcript.final and not self.vad_speaking
        if self.discarding:
            self.discarding = not settled  # words of the cleared turn, still coming in
            return
        if not text:
            if settled and self.commit_wait is not None:
                self.commit_now()  # the last speech had no words: commit what there is
            return
        if not self.vad_linked:
            self._set_state(UserStateKind.SPEAKING)
        if transcript.final:
            self.pending.append(text)
        mode = self.params.mode
        if self.commit_wait is not None and settled:
            self.commit_now()  # the commit was waiting for these words
            return
        if mode == "manual":
            return
        timed_by_text = mode == "stt" or not self.vad_linked
        if timed_by_text:
            self.ended_at = self.loop.time()
        elif not transcript.final:
            return  # the VAD times this turn; an interim changes nothing to commit
        if not self.vad_speaking and self.ended_at is not None:
            self._schedule()

    def request_commit(self) -> None:
        """Commit the pending text once the speech just heard is transcribed (a ``commit``)."""
        waits = self.vad_linked and (self.vad_speaking or self.untranscribed)
        timeout = self.params.commit_timeout
        if not waits or timeout <= 0:
            self.commit_now()
        elif self.commit_wait is None:
            self.commit_wait = self.loop.call_later(timeout, self._commit_unheard)

    def _commit_unheard(self) -> None:
        self.commit_wait = None
        self.node.ctx.logger.debug(
            "commit: no transcript of the last speech within %.1f s; committing what there is",
            self.params.commit_timeout,
        )
        self.commit_now()

    def clear(self) -> None:
        """Discard the pending turn, and the transcripts still to come of its speech."""
        self._cancel_timer()
        self._cancel_commit_wait()
        self.ended_at = None
        self.pending.clear()
        self.announced, self.announcements, self.speech = None, 0, 0.0
        self.discarding = self.vad_speaking or self.untranscribed
        if not self.vad_speaking:
            self._set_state(UserStateKind.LISTENING)

    def commit_now(self) -> None:
        """Commit the pending text now, whatever the timers say."""
        self._cancel_timer()
        self._cancel_commit_wait()
        self.ended_at = None
        text = self._text()
        self.pending.clear()
        self.announced, self.announcements, self.speech = None, 0, 0.0
        if not text:
            return
        self.last_turn_id = new_turn_id()
        self.node.turns.send(
            UserTurn(turn_id=self.last_turn_id, text=text, speaker=self.params.speaker)
        )
        if not self.vad_speaking:
            self._set_state(UserStateKind.LISTENING)

    def close(self) -> None:
        self._cancel_timer()
        self._cancel_commit_wait()
        self._disarm_away()

    # -- endpointing ----------------------------------------------------------------------

    def _schedule(self) -> None:
        # Every change re-times the commit from the end of speech, so a final transcript
        # that arrives after the delay commits at once.
        self._cancel_timer()
        if self.pending and self.ended_at is not None:
            text = self._text()
            self.timer = self.node.ctx.create_task(
                self._commit_after_delay(self.ended_at, text), name="endpoint"
            )
            if self._may_announce(text):
                self.announced = text
                self.announcements += 1
                self.node.tentative.send(
                    TentativeTurn(turn_id=self.last_turn_id, text=text, speaker=self.params.speaker)
                )

    def _may_announce(self, text: str) -> bool:
        params = self.params
        long_speech = (
            params.max_tentative_speech is not None and self.speech > params.max_tentative_speech
        )
        return (
            text != self.announced
            and self.announcements < params.max_tentative
            and not long_speech
        )

    def _text(self) -> str:
        """The pending turn's text (its final transcripts, each stripped already)."""
        return " ".join(self.pending)

    async def _commit_after_delay(self, ended_at: float, text: str) -> None:
        delay = await self._delay(text, ended_at)
        remaining = ended_at + delay - self.loop.time()
        if remaining > 0:
            await asyncio.sleep(remaining)
        self.timer = None  # commit_now must not cancel the task it runs in
        self.commit_now()

    async def _delay(self, text: str, ended_at: float) -> float:
        params = self.params
        shortest, _ = self.node.endpointing_delays
        probability = await self._predicted(ended_at + shortest)
        if probability is not None:
            return self._delay_for(probability)
        hook = params.end_of_turn
        if hook is None:
            return shortest
        try:
            answer = hook(text)
            probability = float(await answer if inspect.isawaitable(answer) else answer)
        except Exception:
            # A failing turn model must not stall the conversation: fall back to the minimum.
            self.node.ctx.logger.warning(
                "end_of_turn(%r) raised; using min_endpointing_delay", text, exc_info=True
            )
            return shortest
        return self._delay_for(probability)

    def _delay_for(self, probability: float) -> float:
        shortest, longest = self.node.endpointing_delays
        return longest if probability < self.params.unlikely_threshold else shortest

    async def _predicted(self, deadline: float) -> float | None:
        """The audio model's answer for the last end of speech, waited for until ``deadline``.

        ``None`` when no model is linked, the VAD gave no end of speech, or the answer did
        not come in time (the short delay is not stretched for a slow model).
        """
        end = self.last_speech_end
        if end is None:
            return None
        while end not in self.predictions and not self.predictions_over:
            self.predicted.clear()
            left = deadline - self.loop.time()
            if left <= 0:
                self.node.ctx.logger.debug("no turn prediction for the speech end at %.2f", end)
                return None
            try:
                await asyncio.wait_for(self.predicted.wait(), left)
            except TimeoutError:
                continue
        answer = self.predictions.get(end)
        # One that came late stays unused when the commit is re-timed (a late transcript):
        # the turn is timed as it would have been without it.
        if answer is None or answer[1] > deadline:
            return None
        return answer[0]

    def _cancel_commit_wait(self) -> None:
        if self.commit_wait is not None:
            self.commit_wait.cancel()
            self.commit_wait = None

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    # -- user state -----------------------------------------------------------------------

    def _set_state(self, state: UserStateKind) -> None:
        if state is self.state:
            return
        self.state = state
        self.node.user_state.send(
            UserState(turn_id=self.last_turn_id, state=state, speaker=self.params.speaker)
        )
        if state is UserStateKind.LISTENING:
            self._arm_away()
        else:
            self._disarm_away()

    def _arm_away(self) -> None:
        self._disarm_away()
        timeout = self.params.user_away_timeout
        if timeout is not None and self.agent_listening:
            self.away = self.loop.call_later(timeout, self._set_state, UserStateKind.AWAY)

    def _disarm_away(self) -> None:
        if self.away is not None:
            self.away.cancel()
            self.away = None
