"""The LLM node: the conversation's history, streamed replies, tool rounds and handoffs.

For each user turn the node adds the user's text to its :class:`ChatHistory`, asks the
provider for a reply and streams it out as :class:`TextChunk` s. Tool calls go out on
``tool_calls``; the reply waits for their results (which come back on the ``tool_results``
feedback loop, from a :class:`~flowkit.nodes.tools.ToolRouter`) and continues, for at most
``max_tool_steps`` rounds (see :mod:`flowkit.nodes.llm_tool_rounds`). The text the model
wrote before its tool calls is flushed to TTS, to be heard while the tools run, and what a
tool says as it runs (``await ctx.say(...)``, arriving on ``tool_speech`` from the router)
is spoken then too, as part of the reply. A newer turn, or an
``Interrupt(FLUSH)`` of the reply's turn, cancels the reply: the provider's request is
cancelled, not left running (see :mod:`flowkit.nodes.llm_request`). When the speaker
reports an interrupted reply (``playout``), the history keeps only what was played, marked
interrupted.

A reply asked for with ``ReplyRequest(allow_interruptions=False)`` is not cut by what comes
after it: user turns and requests that arrive while it is under way wait, in order, until
the speaker reports it finished (``playout``; with no playout input, until its text is
written), and are then taken as if they had just arrived. Nothing the user said is dropped,
where LiveKit Agents skips a user turn that ends during such a reply. A tool makes the reply
that called it such a reply from then on with ``ctx.disallow_interruptions()`` (a
``ToolSpeech`` with ``allow_interruptions=False``).

With ``tentative`` linked (from the turn detector), the node generates preemptively: it
starts the request for a :class:`TentativeTurn` while the endpointing delay runs, and the
reply takes it over if the turn commits with the same text and history (see
:mod:`flowkit.nodes.llm_preemption`); otherwise the early request is cancelled. With
``prefetch`` linked to a TTS node, the early request's text goes there as it streams, so the
first sentence's audio can be made during the delay too (preemptive TTS).

With ``images`` linked (from an :class:`~flowkit.nodes.video.ImageEncoder`), the node keeps
the newest image it has not shown yet and attaches it to the next user message, for a vision
model; ``max_images`` bounds how many messages of the history keep theirs.

With ``mcp_servers``, the tools those Model Context Protocol servers list are offered too:
the node lists them when it starts, before its first request (a server that cannot be
reached is logged and left out), and keeps them across handoffs, which swap only the
agent's function tools (see :mod:`flowkit.tools.toolbox`).

A tool that goes on in the background (``await ctx.update(...)``) answers its call with its
first update; what it reports later, and its outcome, come as results of calls the
ToolRouter makes (``ToolResult(deferred=True)``, :mod:`flowkit.nodes.tool_background`). The
node holds them until the agent is idle: no reply under way or protected, the speaker
has reported the end of the last one (with ``playout`` linked), and the user is not speaking
nor in the pause before their turn commits (with ``user_state`` linked, a TurnDetector's:
until a turn is taken, while the detector has announced one on ``tentative``, else for
:data:`~flowkit.nodes.user_floor.SETTLE_SECONDS` after they stop). It then adds them to the
history and replies to all of them at once, on a turn of its own. A user turn taken while
they wait takes them into the history before the user's words, and its reply is the answer:
the model knows them (a preemptive request for the turn is made with them). Without
``user_state`` the node does not know whether the user is talking; a reply that starts while
they do is cut by barge-in as any other, and the results stay in the history for the turn
that follows.

The node owns two feedback loops (tool results and playout), so it ends them itself: when
its turns, requests and interrupts have ended and the last reply is done, it closes its
outputs and then drains the loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import typing
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pydantic
from livekit import rtc

from flowkit.messages import (
    Image,
    Interrupt,
    InterruptAction,
    Metrics,
    Playout,
    PlayoutEvent,
    ReplyRequest,
    SpeechPrefetch,
    TentativeTurn,
    TextChunk,
    ToolCall,
    ToolResult,
    ToolSpeech,
    UserState,
    UserStateKind,
    UserTurn,
    new_turn_id,
)
from flowkit.node import Node, NodeParams
from flowkit.nodes.llm_preemption import PreemptiveRequest
from flowkit.nodes.llm_request import RequestStreamer
from flowkit.nodes.llm_tool_rounds import ToolRounds
from flowkit.nodes.tool_playout import PlayoutWaits
from flowkit.nodes.user_floor import UserFloor
from flowkit.ports import In, Out, Overflow
from flowkit.providers.chat import ChatHistory
from flowkit.providers.llm import LLMMeter, LLMProvider
from flowkit.tools.agent_update import AgentUpdate
from flowkit.tools.function_tool import FunctionTool
from flowkit.tools.invoke import AgentLike
from flowkit.tools.mcp.server import MCPServer
from flowkit.tools.toolbox import Toolbox

__all__ = ["LLM"]

# Reports of what was played of replies not written (yet) that the node holds at most.
_PLAYED_KEPT = 8


class LLM(Node):
    """Answers user turns with a streamed reply, calling tools through a ToolRouter."""

    turns: In[UserTurn] = In(default=True, doc="committed user turns")
    tool_results: In[ToolResult] = In(
        feedback=True, required=False, doc="results of the tool calls (from a ToolRouter)"
    )
    playout: In[Playout] = In(
        feedback=True, required=False, doc="what the speaker played (history truncation)"
    )
    tool_speech: In[ToolSpeech] = In(
        feedback=True, required=False,
        doc="what running tools say (ctx.say), spoken in their reply (from a ToolRouter)",
    )
    interrupt: In[Interrupt] = In(required=False, doc="FLUSH cancels the reply of its turn")
    requests: In[ReplyRequest] = In(required=False, doc="say / generate_reply from code")
    tentative: In[TentativeTurn] = In(
        required=False, doc="turns about to commit: start their replies early (preemptive)"
    )
    # Only the newest image matters: a full queue drops the older one.
    images: In[Image] = In(
        required=False, queue=1, overflow=Overflow.DROP_OLDEST,
        doc="what the agent sees (an ImageEncoder's): the newest goes with the next user turn",
    )
    updates: In[AgentUpdate] = In(
        required=False,
        doc="changes to the agent from code (AgentUpdate); link them to the ToolRouter too",
    )
    user_state: In[UserState] = In(
        required=False,
        doc="the user's state (a TurnDetector's): reports of tools in the background wait "
        "while the user speaks",
    )
    text: Out[TextChunk] = Out(default=True, doc="the reply, streamed")
    tool_calls: Out[ToolCall] = Out(doc="tool calls, to a ToolRouter")
    metrics: Out[Metrics] = Out(doc="time to first token, tokens/s per request")
    prefetch: Out[SpeechPrefetch] = Out(
        doc="a preemptive reply's text, for TTS to synthesise ahead (preemptive TTS)"
    )

    class Params(NodeParams):
        """Parameters of :class:`LLM`."""

        provider: Any
        instructions: str = ""
        tools: tuple[Any, ...] = ()
        mcp_servers: tuple[Any, ...] = ()
        max_tool_steps: int = 3
        max_history: int | None = None
        tool_result_timeout: float = 60.0
        max_images: int = pydantic.Field(default=1, ge=0)

    def __init__(
        self,
        provider: LLMProvider,
        *,
        instructions: str = "",
        tools: Sequence[FunctionTool] = (),
        agent: AgentLike | None = None,
        mcp_servers: Sequence[MCPServer] = (),
        max_tool_steps: int = 3,
        max_history: int | None = None,
        tool_result_timeout: float = 60.0,
        max_images: int = 1,
    ) -> None:
        """Create an LLM node.

        Args:
            provider: The chat model.
            instructions: The system instructions.
            tools: The tools the model may call (give the same ones to the ToolRouter).
            agent: Instructions and tools in one object (instead of the two above).
            mcp_servers: MCP servers whose tools the model may call too (give the same
                ones to the ToolRouter). They are listed when the node starts, before any
                request, and stay across handoffs; a server that cannot be reached is
                left out (logged) and the node goes on with the other tools.
            max_tool_steps: Tool rounds per reply; after that the model must answer in text.
            max_history: Keep at most this many messages (besides the instructions) in each
                request; older ones are dropped, tool calls with their results.
            tool_result_timeout: Seconds a reply waits for its tool results before it goes
                on with an error result for each missing one.
            max_images: How many user messages of the history keep their images (the
                newest ones); older ones keep their text. Every image in the history goes
                with every request, at hundreds of tokens each.

        Raises:
            NodeParamsError: ``max_images`` is negative.
        """
        if not isinstance(provider, LLMProvider):
            raise TypeError(
                f"LLM(provider={provider!r}): an LLM provider has name and chat(history, "
                "tools); see flowkit.providers.LLMProvider"
            )
        if agent is not None:
            instructions, tools = agent.instructions, tuple(agent.tools)
        super().__init__(
            provider=provider,
            instructions=instructions,
            tools=tuple(tools),
            mcp_servers=tuple(mcp_servers),
            max_tool_steps=max_tool_steps,
            max_history=max_history,
            tool_result_timeout=tool_result_timeout,
            max_images=max_images,
        )
        self.history = ChatHistory(instructions or None)
        self._unseen: Image | None = None  # the newest image, not yet shown to the model
        p = typing.cast(LLM.Params, self.params)
        self._rounds = ToolRounds(
            Toolbox(tools, mcp_servers), self.tool_calls.send,
            max_steps=p.max_tool_steps, result_timeout=p.tool_result_timeout,
        )
        rounds = self._rounds
        self._requests = RequestStreamer(
            p.provider, self.text.send, self.metrics.send, max_history=p.max_history,
            history_from=lambda: rounds.history_from,
        )
        self._reply: asyncio.Task[None] | None = None
        self._reply_turn = 0
        self._reply_allows_interruptions = True
        # Interrupted replies whose history entry was not written yet: turn -> played text.
        self._played: dict[int, str] = {}
        # The turn of a reply that may not be interrupted, until it has played; what comes
        # meanwhile waits in _waiting. _playout_open: the speaker can still report.
        self._protected: int | None = None
        self._waiting: deque[UserTurn | ReplyRequest | ToolResult] = deque()
        self._unprotected = asyncio.Event()
        self._unprotected.set()
        self._playout_open = True
        # The turns and requests have ended: a result the ToolRouter sends on its own (a task
        # completed outside its tools) still joins the history but starts no reply.
        self._inputs_ended = False
        # The request started for the turn the user has probably finished, if any.
        self._preemptive: PreemptiveRequest | None = None
        self._prefetch_keys = itertools.count(1)
        self._preemptive_key = 0
        # Results of tools in the background, held until the agent is idle, and the task
        # that delivers them then; the speaker's reports say when a reply has played.
        self._deferred: list[ToolResult] = []
        self._delivering: asyncio.Task[None] | None = None
        self._speaker = PlayoutWaits()
        # Whether the user may be in the middle of a turn (user_state, tentative, turns).
        self._floor = UserFloor()

    async def run(
        self,
        turns: AsyncIterator[UserTurn],
        tool_results: AsyncIterator[ToolResult],
        playout: AsyncIterator[Playout],
        interrupt: AsyncIterator[Interrupt],
        requests: AsyncIterator[ReplyRequest],
        tentative: AsyncIterator[TentativeTurn],
        images: AsyncIterator[Image],
        tool_speech: AsyncIterator[ToolSpeech],
        updates: AsyncIterator[AgentUpdate],
        user_state: AsyncIterator[UserState],
    ) -> None:
        """List the MCP servers' tools, then serve until the inputs end (see the class)."""
        # Images, updates and the user's state are not waited for at the end: their
        # sources may last as long as the room.
        looking = self.ctx.create_task(self._read_images(images), name="images")
        updating = self.ctx.create_task(self._read_updates(updates), name="updates")
        following = self.ctx.create_task(self._read_user_state(user_state), name="user_state")
        try:
            # No request may go out before the tool list is known: the servers answer first.
            async with self._rounds.opened(self.ctx.logger):
                await self._serve(
                    turns, tool_results, playout, interrupt, requests, tentative, tool_speech
                )
        finally:
            looking.cancel()
            updating.cancel()
            following.cancel()

    async def _serve(
        self,
        turns: AsyncIterator[UserTurn],
        tool_results: AsyncIterator[ToolResult],
        playout: AsyncIterator[Playout],
        interrupt: AsyncIterator[Interrupt],
        requests: AsyncIterator[ReplyRequest],
        tentative: AsyncIterator[TentativeTurn],
        tool_speech: AsyncIterator[ToolSpeech],
    ) -> None:
        """Serve turns and requests until they end; then close the loops and drain them."""
        # A restarted run begins unprotected: the reply that was protected died with it,
        # and so did the task of a preemptive request.
        self._protected = None
        self._preemptive = None
        self._waiting.clear()
        self._unprotected.set()
        self._playout_open = True
        self._inputs_ended = False
        # Held results stay held; the task that waited to deliver them died with the run.
        self._speaker = PlayoutWaits()
        self._delivering = None
        if self._deferred:
            self._deliver_when_idle()
        loops = [
            self.ctx.create_task(self._read_results(tool_results), name="tool_results"),
            self.ctx.create_task(self._read_playout(playout), name="playout"),
            self.ctx.create_task(self._read_tool_speech(tool_speech), name="tool_speech"),
        ]
        await asyncio.gather(
            self._read_turns(turns), self._read_requests(requests),
            self._read_interrupts(interrupt), self._read_tentative(tentative),
        )
        self._inputs_ended = True
        self._drop_preemptive()  # no turn can come to take it over
        # What waits behind a protected reply is still to be answered.
        while self._waiting:
            await self._unprotected.wait()
            await asyncio.sleep(0)  # let a reply started by the release take its first step
        if self._reply is not None:
            await asyncio.gather(self._reply, return_exceptions=True)
        self._stop_delivering()
        for port in (self.text, self.tool_calls, self.metrics, self.prefetch):
            port.close()
        await asyncio.gather(*loops)

    # -- inputs ---------------------------------------------------------------------------

    async def _read_turns(self, turns: AsyncIterator[UserTurn]) -> None:
        async for turn in turns:
            if self._protected is not None:
                self._waiting.append(turn)
            else:
                self._take_turn(turn)

    async def _read_requests(self, requests: AsyncIterator[ReplyRequest]) -> None:
        async for request in requests:
            if self._protected is not None:
                self._waiting.append(request)
            else:
                self._take_request(request)

    async def _read_updates(self, updates: AsyncIterator[AgentUpdate]) -> None:
        async for update in updates:
            # At once: the next request has them; one under way finishes as it began.
            self._rounds.update(update, self.history, self.ctx.logger)

    async def _read_user_state(self, states: AsyncIterator[UserState]) -> None:
        try:
            async for state in states:
                if state.state is UserStateKind.SPEAKING:
                    self._floor.speaking()
                else:
                    self._floor.quiet()
        finally:
            self._floor.release()  # no state can come: nothing waits on it

    async def _read_images(self, images: AsyncIterator[Image]) -> None:
        async for image in images:
            self._unseen = image

    def _add_user(self, history: ChatHistory, text: str, *, show: bool = True) -> None:
        """Add the user's message with the image not yet shown (``show``: it now is)."""
        seen = () if self._unseen is None else (self._unseen,)
        if show:
            self._unseen = None
        history.add_user(text, seen)
        history.keep_images(self.params.max_images)  # type: ignore[attr-defined]

    def _take_turn(self, turn: UserTurn) -> None:
        self._floor.turn_taken()
        if turn.turn_id < self._reply_turn:
            return  # an older turn than the reply in progress: stale
        self._cancel_reply()
        # What tools in the background reported meanwhile goes before the user's words:
        # the reply to them answers both.
        self._add_deferred()
        if note := turn.context_note():
            # Before the user's words, which the model answers: an assistant message, as
            # LiveKit's recipe adds it (the history keeps one system message, first).
            self.history.add_assistant(note)
        self._add_user(self.history, turn.text)
        if not turn.reply:
            self._drop_preemptive()  # the turn is not answered: nothing may be spoken for it
            return
        # A preemptive request made without the context no longer matches the history.
        self._start_reply(turn.turn_id, early=self._take_preemptive(turn.text))

    def _take_request(self, request: ReplyRequest) -> None:
        turn_id = request.turn_id or new_turn_id()
        self._cancel_reply()
        self._drop_preemptive()  # the reply from code changes what the turn is answered from
        allow = request.allow_interruptions
        if request.say is not None:
            self._say(turn_id, request.say, allow, request.audio, request.add_to_history)
        else:
            if request.user_text:
                self._add_user(self.history, request.user_text)
            self._start_reply(turn_id, request.instructions, allow)
        if allow:
            return
        self._protected = turn_id
        self._unprotected.clear()
        if self._reply is None:  # said: its text is written already
            self._text_done(turn_id)
        else:
            self._reply.add_done_callback(lambda task: self._reply_ended(turn_id, task))

    def _text_done(self, turn_id: int) -> None:
        """The protected reply's text is written: with no speaker to report, it is over."""
        if not self._playout_open and self._protected == turn_id:
            self._release()

    def _reply_ended(self, turn_id: int, task: asyncio.Task[None]) -> None:
        """The protected reply's task ended: written whole, flushed, or failed."""
        if task.cancelled() or task.exception() is not None:
            # Flushed from outside: its end is never played. Failed: its end was sent, but
            # the node restarts and a speaker's report of it is not waited for. Either way
            # nothing is left to wait for (the next turn replaces what was sent of it).
            if self._protected == turn_id:
                self._release()
            return
        self._text_done(turn_id)

    def _release(self) -> None:
        """The protected reply is over: take what waited, in order, as if it came now."""
        self._protected = None
        while self._waiting and self._protected is None:
            item = self._waiting.popleft()
            if isinstance(item, UserTurn):
                self._take_turn(item)
            elif isinstance(item, ToolResult):
                self._take_router_result(item)
            else:
                self._take_request(item)
        if self._protected is None:
            self._unprotected.set()

    # -- preemptive generation --------------------------------------------------------------

    async def _read_tentative(self, tentative: AsyncIterator[TentativeTurn]) -> None:
        async for turn in tentative:
            self._floor.announced()
            self._preempt(turn)

    def _preempt(self, turn: TentativeTurn) -> None:
        """Start the request the turn will need if it commits as it stands."""
        self._drop_preemptive()
        if self._protected is not None or (self._reply is not None and not self._reply.done()):
            # A reply is under way: its end (and a barge-in's cut) changes the history the
            # turn will be answered from, so a request made now would be thrown away.
            return
        view = self.history.copy()
        if any(result.handoff is not None for result in self._deferred):
            return  # another agent will answer the turn (_take_turn follows the handoff)
        for result in self._deferred:
            # The turn takes what tools in the background reported before its words.
            self._rounds.add_router_call(result, view)
        # The image the committed turn would carry, so that it can take this request over.
        self._add_user(view, turn.text, show=False)
        messages = self._requests.messages(view)
        provider: LLMProvider = self.params.provider  # type: ignore[attr-defined]
        tool_choice = self._rounds.tool_choice(0)
        specs = self._rounds.offered(tool_choice)
        meter = LLMMeter(provider.name, self.name)
        try:
            stream = provider.chat(messages, specs, tool_choice=tool_choice)
        except Exception:
            # The request made at the commit will meet the same error where it counts.
            self.ctx.logger.debug("preemptive request for %r refused", turn.text, exc_info=True)
            return
        key = self._preemptive_key = next(self._prefetch_keys)
        self._preemptive = PreemptiveRequest(
            turn.text, messages, specs, stream, meter, self.metrics.send,
            lambda coro: self.ctx.create_task(coro, name="preemptive"),
            self._prefetcher(turn.turn_id, key),
        )

    def _take_preemptive(self, text: str) -> PreemptiveRequest | None:
        """The preemptive request, if it is the one the committed turn would make now."""
        early, self._preemptive = self._preemptive, None
        if early is None:
            return None
        specs = self._rounds.offered(self._rounds.tool_choice(0))
        if early.matches(text, self._requests.messages(self.history), specs):
            return early
        early.cancel()
        self._discard_prefetch()
        return None

    def _drop_preemptive(self) -> None:
        if self._preemptive is not None:
            self._preemptive.cancel()
            self._preemptive = None
            self._discard_prefetch()

    def _prefetcher(self, epoch: int, key: int) -> Callable[[str, bool], None]:
        """What sends a preemptive request's text to TTS, as :class:`SpeechPrefetch`."""

        def send(text: str, final: bool) -> None:
            with contextlib.suppress(RuntimeError):  # the graph closed under the request
                self.prefetch.send(SpeechPrefetch(turn_id=epoch, key=key, text=text, final=final))

        return send

    def _discard_prefetch(self) -> None:
        """Tell TTS the audio it may be making ahead will not be wanted."""
        with contextlib.suppress(RuntimeError):
            self.prefetch.send(
                SpeechPrefetch(turn_id=self._reply_turn, key=self._preemptive_key, discard=True)
            )

    async def _read_interrupts(self, interrupt: AsyncIterator[Interrupt]) -> None:
        async for message in interrupt:
            if message.action is not InterruptAction.FLUSH:
                continue
            if not message.force and (
                message.turn_id == self._protected
                or (message.turn_id == self._reply_turn and not self._reply_allows_interruptions)
            ):
                continue  # not forced: a reply that may not be interrupted goes on
            if message.turn_id == self._reply_turn:
                self._cancel_reply()
            if message.turn_id == self._protected:
                # Flushed on purpose (Interruptions never flushes such a reply): whatever of
                # it reached the speaker is dropped, and this flush need not have reached the
                # speaker, so no report of its end may come.
                self._release()

    async def _read_results(self, results: AsyncIterator[ToolResult]) -> None:
        async for result in results:
            if result.call is None:
                self._rounds.deliver(result, self.history, self.ctx.logger)
            elif result.deferred:
                self._deferred.append(result)
                if self._inputs_ended:
                    self._add_deferred()  # no reply can be made for it: the history keeps it
                else:
                    self._deliver_when_idle()
            elif self._protected is not None:
                self._waiting.append(result)  # a turn of its own: after the protected reply
            else:
                self._take_router_result(result)

    def _take_router_result(self, result: ToolResult) -> None:
        """A result of a call the ToolRouter made (a task completed outside its tools).

        It is a turn of its own, as a ``generate_reply`` is: the reply under way is cut, the
        call and its result join the history, its handoff is followed, and the model replies
        from there, unless the tool asked for no reply or the inputs have ended.
        """
        self._cancel_reply()
        # Started from the history and agent before this end: the user's turn, once
        # committed, is asked afresh.
        self._drop_preemptive()
        self._rounds.take_router_result(result, self.history, self.ctx.logger)
        if result.stop_response or self._inputs_ended:
            return
        self._start_reply(result.turn_id)

    def _deliver_when_idle(self) -> None:
        """Have the held results of tools in the background answered once the agent is idle."""
        if self._delivering is None or self._delivering.done():
            self._delivering = self.ctx.create_task(self._deliver_deferred(), name="deferred")

    async def _deliver_deferred(self) -> None:
        """Wait until the agent is idle, then reply to every held result at once."""
        while self._deferred:
            reply = self._reply
            if reply is not None and not reply.done():
                await asyncio.wait([reply])
                continue
            if self._protected is not None:
                await self._unprotected.wait()
                continue
            if self._floor.hold() != 0.0:
                # Speaking, or in the pause before their turn commits: the turn takes the
                # reports (_take_turn), and a reply started now would be cut by it.
                await self._floor.wait()
                continue
            if self._reply_turn and self.ctx.input_linked("playout"):
                # Its text is written; it is over for the speaker once it has played (or
                # was cut), which a newer reply's audio would cut short.
                _, played = self._speaker.new_mark(self._reply_turn)
                if not played.done():
                    await played
                    continue
            # The newest result's turn, unless a reply (from code) has come since the tool
            # sent it: the TTS node and the speaker drop a reply older than the last one.
            newest = max(result.turn_id for result in self._deferred)
            turn_id = newest if newest > self._reply_turn else new_turn_id()
            self._deferred = [
                dataclasses.replace(result, turn_id=turn_id, call=dataclasses.replace(
                    result.call, turn_id=turn_id
                )) if result.call is not None else result
                for result in self._deferred
            ]
            self._drop_preemptive()  # made from the history as it was
            results = self._add_deferred()
            if not self._inputs_ended and any(not result.stop_response for result in results):
                self._start_reply(turn_id)

    def _stop_delivering(self) -> None:
        """The inputs have ended: no reply can be made for held results; the history keeps them."""
        if self._delivering is not None:
            self._delivering.cancel()
        self._add_deferred()

    def _add_deferred(self) -> list[ToolResult]:
        """Add the held results of tools in the background to the history; they are no more held.

        Each is a call the ToolRouter made, so it goes in as one (see
        :meth:`ToolRounds.take_router_result`), with its handoff followed.
        """
        results, self._deferred = self._deferred, []
        # A preemptive request made with them (_preempt) still matches the turn that takes
        # them; one made without them no longer does, and _take_preemptive discards it.
        for result in results:
            self._rounds.take_router_result(result, self.history, self.ctx.logger)
        return results

    async def _read_tool_speech(self, speech: AsyncIterator[ToolSpeech]) -> None:
        async for said in speech:
            self._speak_for_tool(said)

    def _speak_for_tool(self, said: ToolSpeech) -> None:
        """Speak what a tool says, in the reply waiting for that tool's result.

        Anywhere else it would be out of place: the reply was cut by the user or a newer
        turn, or its round gave up on the call (timed out), so it is dropped. So is a
        request to protect the reply (``allow_interruptions=False``) that comes too late,
        and a playout marker (``mark``): the ToolRouter stops waiting for it when the
        speaker reports the reply's end.
        """
        if said.turn_id != self._reply_turn or not self._rounds.awaits(said.call_id):
            self.ctx.logger.debug(
                "dropped what tool %r said after its reply moved on: %r", said.name, said.text
            )
            return
        if not said.allow_interruptions:
            self._protect_reply(said.turn_id)
        if said.text.strip():
            # Its own sentence, spoken now; the history keeps it on the message that called
            # the tool (see ChatHistory.extend_last_assistant).
            self.text.send(
                TextChunk(
                    turn_id=said.turn_id, text=said.text.strip() + " ", flush=True,
                    allow_interruptions=self._reply_allows_interruptions,
                )
            )
            self.history.extend_last_assistant(said.text.strip())
        if said.mark:
            # The tool waits for the speaker to play the reply up to here. Flushed, so that
            # a ReplyGuard between passes it on now.
            self.text.send(
                TextChunk(
                    turn_id=said.turn_id, text="", flush=True, mark=said.mark,
                    allow_interruptions=self._reply_allows_interruptions,
                )
            )

    def _protect_reply(self, turn_id: int) -> None:
        """Let nothing but a forced interrupt cut the reply under way, until it has played.

        The reply becomes what ``ReplyRequest(allow_interruptions=False)`` makes: turns and
        requests that come meanwhile wait for it. An empty chunk carries the protection
        to the TTS node and, through its audio, to the speaker and the barge-in detector,
        at once: the reply may be silent for as long as its tool runs.
        """
        if not self._reply_allows_interruptions:
            return  # protected from the start, or by an earlier tool
        self._reply_allows_interruptions = False
        # Flushed (there is no text held: the text before the round and the tool's words
        # were flushed) so that a ReplyGuard between passes it on now, not at the reply's
        # next checkpoint.
        self.text.send(
            TextChunk(turn_id=turn_id, text="", flush=True, allow_interruptions=False)
        )
        reply = self._reply
        if self._protected is not None or reply is None:
            return
        self._protected = turn_id
        self._unprotected.clear()
        reply.add_done_callback(lambda task: self._reply_ended(turn_id, task))

    async def _read_playout(self, playout: AsyncIterator[Playout]) -> None:
        try:
            async for report in playout:
                self._speaker.on_playout(report)
                self._on_playout(report)
        finally:
            self._speaker.close()
            self._playout_open = False
            # No report can come now: a protected reply whose text is written is over.
            if self._protected is not None and (self._reply is None or self._reply.done()):
                self._release()

    def _on_playout(self, report: Playout) -> None:
        if report.event is PlayoutEvent.INTERRUPTED:
            if report.turn_id == self._reply_turn:
                # The speaker stopped it even if no Interrupt reached us; what it streamed
                # is written now, so that the report can cut it.
                self._cancel_reply()
            if not self.history.truncate_reply(report.turn_id, report.played_text):
                self._keep_played(report.turn_id, report.played_text)
        if report.turn_id == self._protected and report.event in (
            PlayoutEvent.FINISHED, PlayoutEvent.INTERRUPTED
        ):
            self._release()  # after the history took the reply as played

    # -- replies --------------------------------------------------------------------------

    def _cancel_reply(self) -> None:
        streamed = self._requests.take_text()
        if self._reply is not None and not self._reply.done():
            self._reply.cancel()
            # Now, not as the task unwinds: its calls need results before a new message.
            self._rounds.abandon(self.history)
            # Recorded now, not when the task unwinds: a new user message is about to be
            # added and the cut reply must come before it.
            if streamed:
                self._remember_reply(self._reply_turn, streamed, cut=True)
        self._reply = None

    def _start_reply(
        self,
        turn_id: int,
        instructions: str | None = None,
        allow_interruptions: bool = True,
        early: PreemptiveRequest | None = None,
    ) -> None:
        self._reply_turn = turn_id
        self._reply_allows_interruptions = allow_interruptions
        self._reply = self.ctx.create_task(
            self._generate(turn_id, instructions, allow_interruptions, early), name="reply"
        )

    def _say(
        self,
        turn_id: int,
        text: str,
        allow_interruptions: bool,
        audio: tuple[rtc.AudioFrame, ...] | None = None,
        add_to_history: bool = True,
    ) -> None:
        self._reply_turn = turn_id
        allow = allow_interruptions
        self.text.send(
            TextChunk(turn_id=turn_id, text=text, allow_interruptions=allow, audio=audio)
        )
        self.text.send(
            TextChunk(turn_id=turn_id, text="", final=True, allow_interruptions=allow)
        )
        if add_to_history:
            self._remember_reply(turn_id, text)

    def _remember_reply(self, turn_id: int, text: str, *, cut: bool = False) -> None:
        """Add the reply's last text to the history, cut to what was played if known.

        Its earlier messages, if it called tools, are in the history already (written by
        its rounds); a report of what was played cuts them all (``truncate_reply``).
        """
        played = self._played.pop(turn_id, None)
        if text:
            self.history.add_assistant(text, turn_id=turn_id)
            if cut and played is None:
                self.history.truncate_last_assistant(text)  # marked interrupted
        if played is not None:
            self.history.truncate_reply(turn_id, played)

    def _keep_played(self, turn_id: int, played_text: str) -> None:
        """Hold a report of what was played of a reply not written yet, for when it is."""
        self._played[turn_id] = played_text
        # A reply that is never written (nothing was streamed) leaves its report here: keep
        # the newest few, a long call must not collect them.
        while len(self._played) > _PLAYED_KEPT:
            del self._played[next(iter(self._played))]

    async def _generate(
        self,
        turn_id: int,
        instructions: str | None,
        allow_interruptions: bool,
        early: PreemptiveRequest | None = None,
    ) -> None:
        """The reply: requests, with a tool round between two while the model calls tools."""
        try:
            await self._rounds_of(turn_id, instructions, allow_interruptions, early)
        except Exception:
            self._end_failed_reply(turn_id, allow_interruptions)
            raise  # the node's error: logged, reported, and its policy applies
        allow_interruptions = self._allows_interruptions(turn_id, allow_interruptions)
        self.text.send(
            TextChunk(turn_id=turn_id, text="", final=True, allow_interruptions=allow_interruptions)
        )

    async def _rounds_of(
        self,
        turn_id: int,
        instructions: str | None,
        allow_interruptions: bool,
        early: PreemptiveRequest | None,
    ) -> None:
        """The reply's requests and tool rounds, until the model answers without calls."""
        steps = 0
        while True:
            # A tool may have protected the reply during the round before (ToolSpeech).
            allow_interruptions = self._allows_interruptions(turn_id, allow_interruptions)
            calls = await self._request(
                turn_id, instructions, self._rounds.tool_choice(steps), allow_interruptions, early
            )
            early = None  # only the first request can have been made ahead
            text = self._requests.take_text()
            if not calls:
                self._remember_reply(turn_id, text)
                break
            steps += 1
            results = await self._rounds.run(
                self.history, turn_id, text, calls, self.ctx.logger
            )
            if any(r.stop_response for r in results):
                break

    def _end_failed_reply(self, turn_id: int, allow_interruptions: bool) -> None:
        """The model failed mid-reply (its provider's retries and fallbacks ran out).

        What it streamed before was sent to TTS and is heard, so it goes into the history,
        marked interrupted (the answer was cut off), before the next user message; the
        calls of a round under way get their results; and the reply is ended, so that TTS
        speaks its last words and the speaker reports its end (agent state, barge-in and
        waiting tools follow that report) instead of holding the reply open.
        """
        if turn_id != self._reply_turn:
            return  # a newer reply took over: it cancelled this one, and wrote its text
        self._rounds.abandon(self.history)
        text = self._requests.take_text()
        if text:
            self._remember_reply(turn_id, text, cut=True)
        allow = self._allows_interruptions(turn_id, allow_interruptions)
        with contextlib.suppress(RuntimeError):  # the graph closed under the request
            self.text.send(
                TextChunk(turn_id=turn_id, text="", final=True, allow_interruptions=allow)
            )

    def _allows_interruptions(self, turn_id: int, allowed: bool) -> bool:
        """Whether the reply of ``turn_id`` may still be cut: ``allowed``, unless protected."""
        return allowed and (turn_id != self._reply_turn or self._reply_allows_interruptions)

    async def _request(
        self,
        turn_id: int,
        instructions: str | None,
        tool_choice: str,
        allow_interruptions: bool,
        early: PreemptiveRequest | None = None,
    ) -> list[ToolCall]:
        """One request of the reply (or the preemptive one it takes over); its tool calls."""
        if early is not None:
            return await self._requests.take_over(
                early, turn_id=turn_id, allow_interruptions=allow_interruptions
            )
        return await self._requests.request(
            self.history, instructions, self._rounds.offered(tool_choice), tool_choice,
            turn_id=turn_id, allow_interruptions=allow_interruptions, node=self.name,
        )
