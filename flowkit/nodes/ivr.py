"""Keeping an agent moving through a phone menu: LiveKit Agents' ``ivr_detection`` as a node.

An agent that calls a business often meets an automated system (IVR) before a person: menus
that wait for a key or a word, and say their prompt again when nothing comes. Two things
stall such a call, and :class:`IVRWatch` asks the LLM for a reply (a
:class:`~flowkit.messages.ReplyRequest` to its ``requests`` input) on each:

- **silence**: both sides have been quiet for ``max_silence_duration`` seconds (the other
  side listening or away, the agent listening). The reply's instructions say the call has
  gone quiet and to speak or press keys. The clock starts when both become quiet; it does
  not start again until one of them has spoken (or the agent has tried to), so an agent
  that chooses to wait is reminded once per silence, not every few seconds;
- **a loop**: the other side's final transcripts repeat themselves
  (:class:`~flowkit.nodes.ivr_loop.TranscriptLoopDetector`: three in a row alike by TF-IDF
  cosine similarity, by default). That reply may not be interrupted, as in LiveKit: the menu
  would otherwise talk over the agent's way out of it. The detector then starts afresh.

Keys are pressed by the LLM through the ``send_dtmf`` tool (:mod:`flowkit.tools.dtmf`),
which the graph gives the LLM and its ToolRouter as any tool; LiveKit's ``ivr_detection``
adds the same tool to the session.

The node reads the other side's state from :class:`~flowkit.nodes.TurnDetector`'s
``user_state`` and the agent's from :class:`~flowkit.nodes.AgentStates` (a feedback input:
the agent's state follows the replies this node asks for). As in LiveKit, the silence clock
waits for the first state of each side: a call in which the other side has not spoken yet
(``TurnDetector`` reports a user state only when it changes) is not a silence to break.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pydantic

from flowkit.messages import (
    AgentState,
    AgentStateKind,
    AMDCategory,
    AMDVerdict,
    ReplyRequest,
    Transcript,
    UserState,
    UserStateKind,
)
from flowkit.node import Node, NodeParams
from flowkit.nodes.ivr_loop import TranscriptLoopDetector
from flowkit.ports import In, Out

__all__ = ["DEFAULT_LOOP_INSTRUCTIONS", "DEFAULT_SILENCE_INSTRUCTIONS", "IVRWatch"]

log = logging.getLogger("flowkit.nodes.ivr")

DEFAULT_SILENCE_INSTRUCTIONS = (
    "The call has been silent for a while. Say something or press keys to move the call on."
)
DEFAULT_LOOP_INSTRUCTIONS = (
    "The automated system keeps repeating the same prompt. Answer it differently than before "
    "(another key, another word) to move the call on."
)

_USER_QUIET = (UserStateKind.LISTENING, UserStateKind.AWAY)


class IVRWatch(Node):
    """Asks the LLM to act when a call with a phone menu falls silent or goes round in a loop."""

    transcripts: In[Transcript] = In(
        default=True, doc="what the other side says: its final transcripts are compared"
    )
    user_state: In[UserState] = In(doc="the other side's state, from the TurnDetector")
    agent_state: In[AgentState] = In(
        feedback=True, doc="the agent's state, from AgentStates: quiet while it listens"
    )
    verdicts: In[AMDVerdict] = In(
        required=False,
        doc="an AnsweringMachineDetector's verdict: when wired, the watch starts on a menu only",
    )
    requests: Out[ReplyRequest] = Out(
        default=True, doc="replies asked of the LLM (and told to AgentStates)"
    )

    class Params(NodeParams):
        """Parameters of :class:`IVRWatch`."""

        max_silence_duration: float = pydantic.Field(5.0, gt=0.0)
        silence_instructions: str = DEFAULT_SILENCE_INSTRUCTIONS
        loop_instructions: str = DEFAULT_LOOP_INSTRUCTIONS
        loop_window: int = pydantic.Field(20, ge=2)
        loop_similarity: float = pydantic.Field(0.85, ge=0.0, le=1.0)
        loop_repeats: int = pydantic.Field(3, ge=1)

    def __init__(
        self,
        *,
        max_silence_duration: float = 5.0,
        silence_instructions: str = DEFAULT_SILENCE_INSTRUCTIONS,
        loop_instructions: str = DEFAULT_LOOP_INSTRUCTIONS,
        loop_window: int = 20,
        loop_similarity: float = 0.85,
        loop_repeats: int = 3,
    ) -> None:
        """Make the watch.

        Args:
            max_silence_duration: Seconds of silence on both sides before the LLM is asked
                to act (LiveKit's default, 5 s).
            silence_instructions: The instructions of that reply.
            loop_instructions: The instructions of the reply to a loop.
            loop_window: How many of the other side's recent final transcripts a new one is
                compared with.
            loop_similarity: TF-IDF cosine similarity above which a transcript repeats an
                earlier one.
            loop_repeats: Repeats in a row that make a loop.
        """
        super().__init__(
            max_silence_duration=max_silence_duration,
            silence_instructions=silence_instructions,
            loop_instructions=loop_instructions,
            loop_window=loop_window,
            loop_similarity=loop_similarity,
            loop_repeats=loop_repeats,
        )

    async def run(
        self,
        transcripts: AsyncIterator[Transcript],
        user_state: AsyncIterator[UserState],
        agent_state: AsyncIterator[AgentState],
        verdicts: AsyncIterator[AMDVerdict],
    ) -> None:
        """Watch until ``transcripts`` and ``user_state`` end (``agent_state`` is feedback)."""
        params = self.params
        assert isinstance(params, IVRWatch.Params)
        watch = _Watch(self, params)
        users = self.ctx.create_task(watch.read_user_states(user_state), name="user_state")
        agents = self.ctx.create_task(watch.read_agent_states(agent_state), name="agent_state")
        verdict = self.ctx.create_task(watch.read_verdict(verdicts), name="verdicts")
        try:
            async for transcript in transcripts:
                watch.on_transcript(transcript)
            await asyncio.wait([users])
        finally:
            users.cancel()
            agents.cancel()
            verdict.cancel()
            watch.close()


class _Watch:
    """The state of one run (a restart begins afresh, with both sides unknown)."""

    def __init__(self, node: IVRWatch, params: IVRWatch.Params) -> None:
        self.node = node
        self.params = params
        self.loop = asyncio.get_running_loop()
        self.loops = TranscriptLoopDetector(
            params.loop_window, params.loop_similarity, params.loop_repeats
        )
        self.user: UserStateKind | None = None
        self.agent: AgentStateKind | None = None
        self.timer: asyncio.TimerHandle | None = None
        # Whether both sides were quiet at the last change: the clock starts when they
        # become so, not again while they stay so.
        self.quiet = False
        # Off until the verdicts input says a menu answered, or ends without a verdict
        # (not wired: the watch runs for the whole call).
        self.on = False

    async def read_verdict(self, verdicts: AsyncIterator[AMDVerdict]) -> None:
        async for verdict in verdicts:
            if verdict.category is not AMDCategory.MACHINE_IVR:
                log.debug("IVRWatch: %s answered, not a menu; it stays off", verdict.category)
                return
            break
        self.on = True
        self.on_change()

    async def read_user_states(self, states: AsyncIterator[UserState]) -> None:
        async for state in states:
            self.user = state.state
            self.on_change()

    async def read_agent_states(self, states: AsyncIterator[AgentState]) -> None:
        async for state in states:
            self.agent = state.state
            self.on_change()

    def on_transcript(self, transcript: Transcript) -> None:
        if not self.on or not transcript.final or not self.loops.add(transcript.text):
            return
        log.info(
            "IVRWatch: the other side said the same thing %d times in a row; asking the LLM "
            "to answer differently", self.loops.in_a_row + 1,
        )
        self.loops.reset()
        self.node.requests.send(
            ReplyRequest(instructions=self.params.loop_instructions, allow_interruptions=False)
        )

    def on_change(self) -> None:
        quiet = self.on and self.user in _USER_QUIET and self.agent is AgentStateKind.LISTENING
        if quiet and not self.quiet:
            self.timer = self.loop.call_later(self.params.max_silence_duration, self.on_silence)
        elif not quiet:
            self.close()
        self.quiet = quiet

    def on_silence(self) -> None:
        self.timer = None
        log.info(
            "IVRWatch: %.1f s of silence on both sides; asking the LLM to act",
            self.params.max_silence_duration,
        )
        self.node.requests.send(ReplyRequest(instructions=self.params.silence_instructions))

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
