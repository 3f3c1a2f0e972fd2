"""The RealtimeModel node: a speech-to-speech model in place of STT, LLM and TTS.

LiveKit Agents' ``AgentSession(llm=openai.realtime.RealtimeModel(voice="alloy"))`` as a
node. The user's audio goes to the OpenAI Realtime API over one WebSocket per job (through
the ``openai`` SDK); the model's speech comes back as :class:`~flowkit.messages.AgentAudio`
for a :class:`~flowkit.nodes.room.RoomSink`, with the user's and the agent's transcripts,
tool calls for a :class:`~flowkit.nodes.tools.ToolRouter` (whose results come back on a
feedback loop, as with the LLM node) and barge-ins for the sink::

    mic >> Resample(24_000, channels=1) >> model >> speaker
    model.tool_calls >> router >> model.tool_results     # a declared feedback loop
    model.interrupts >> speaker.interrupt                # barge-in: flush what is queued
    speaker >> model.playout                             # truncate to what was heard
    model.agent_state >> AgentStatePublisher()           # lk.agent.state, as AgentStates

Turns are the server's (:class:`ServerVAD` by default, or :class:`SemanticVAD`). The agent's
and the user's states are the cascaded pipeline's messages with their meanings
(:mod:`flowkit_openai.realtime.states`). With ``output_modality="text"`` the model answers in
text only: the reply streams on ``agent_transcripts`` (interim, then final) and nothing goes
to ``speech``. Its ``text`` output then carries the reply as the LLM node's does, for a TTS
node with a voice of the user's choice to speak it (:mod:`flowkit_openai.realtime.voiced_text`)::

    model = RealtimeModel(output_modality="text")
    mic >> Resample(24_000, channels=1) >> model
    model.text >> tts >> speaker                         # the model writes, the TTS speaks
    model.interrupts >> [tts.interrupt, speaker.interrupt]
    speaker >> model.playout                             # the model keeps what was heard
    model.tool_calls >> router >> model.tool_results
    router.speech >> model.tool_speech                   # tools speak while they run

Such a graph can also speak a given text: ``ReplyRequest(say=...)`` on ``requests`` goes to
the TTS node as a reply of its own, in place of what was under way, and joins the model's
conversation as heard (:mod:`flowkit_openai.realtime.say`); what a tool says while it runs
(``await ctx.say(...)``, on ``tool_speech`` from the router) is spoken in the reply waiting
for that tool, as the LLM node speaks it, and joins the conversation too
(:mod:`flowkit_openai.realtime.tool_speech`). A model that speaks itself has no voice for a
given text: it logs a say, or the first words a tool says in a run, with that remedy and
drops them.

The user is ``away`` after ``user_away_timeout`` seconds in which both the user and the
agent listened (:mod:`flowkit_openai.realtime.states`).

What the events become is described in
:mod:`flowkit_openai.realtime.dialogue`; the connection's life, reconnection included, in
:mod:`flowkit_openai.realtime.session`.

With ``mcp_servers``, the tools those Model Context Protocol servers list are offered too
(give the same servers to the ToolRouter). The node holds the servers' connections while its
connection to the model lives, and the first ``session.update`` waits for their listing
(bounded by each server's ``timeout``; one that cannot be reached is logged and left out).
A handoff swaps only the agent's function tools; the MCP tools stay (see
:mod:`flowkit.tools.toolbox`). When a server's tool list changes, the node sends a new
``session.update`` with the new tools before the next event it sends or handles, so the
model's next response sees them (see :meth:`RealtimeModel.follow_tools`); a reconnection
sends the tools in use then.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

import openai
import pydantic
from livekit import rtc

from flowkit.messages import (
    AgentAudio,
    AgentState,
    Image,
    Interrupt,
    Metrics,
    Playout,
    ReplyRequest,
    TextChunk,
    ToolCall,
    ToolResult,
    ToolSpeech,
    Transcript,
    UserState,
    UserTurn,
)
from flowkit.node import Node, NodeParams
from flowkit.ports import AudioFormat, In, Out, Overflow
from flowkit.problems import Problem
from flowkit.runtime import for_each
from flowkit.tools.agent_update import AgentUpdate
from flowkit.tools.function_tool import FunctionTool, ToolSet
from flowkit.tools.invoke import AgentLike
from flowkit.tools.mcp.server import MCPServer
from flowkit.tools.task import TaskEnded, TaskStarted
from flowkit.tools.toolbox import Toolbox
from flowkit_openai._client import ClientPool, Connection
from flowkit_openai.realtime.audio_in import AudioChunker, format_problem
from flowkit_openai.realtime.dialogue import Dialogue
from flowkit_openai.realtime.events import Event
from flowkit_openai.realtime.link import RealtimeLink
from flowkit_openai.realtime.options import (
    SAMPLE_RATE,
    OutputModality,
    ServerVAD,
    SessionSettings,
    TurnDetection,
)
from flowkit_openai.realtime.session import RealtimeSession
from flowkit_openai.realtime.voiced_text import text_link_problems

if TYPE_CHECKING:
    from flowkit.graph import Edge

__all__ = ["DEFAULT_TURN_DETECTION", "RealtimeModel"]

_SETTLE_S = 30.0  # at the end of input, how long a reply under way may take to finish
# After a backlog is sent at the end of input, how long the server must stay silent before
# the node takes it that no reply is coming: it hears the backlog at once, faster than it
# was spoken, so its turn detection answers within a round trip or two.
_QUIET_S = 1.0

DEFAULT_TURN_DETECTION = ServerVAD()
"""The server's VAD with the API's own defaults: threshold 0.5, 300 ms prefix, 500 ms silence."""


class RealtimeModel(Node):
    """A speech-to-speech model on the OpenAI Realtime API (see the module).

    A ToolRouter serves its ``tool_calls`` and answers on ``tool_results``; linked to
    ``tool_speech`` too (``router.speech >> model.tool_speech``), the router lets tools speak
    while they run (``await ctx.say(...)``). With ``output_modality="text"`` and a TTS node on
    ``text``, those words are spoken in the reply waiting for the tool and join the model's
    conversation (:mod:`flowkit_openai.realtime.tool_speech`); a model that speaks itself
    cannot say a given text, so it drops them, with one warning per run naming the remedy.
    """

    audio: In[rtc.AudioFrame] = In(
        default=True, format=AudioFormat(SAMPLE_RATE, 1), doc="the user's audio, 24 kHz mono"
    )
    tool_results: In[ToolResult] = In(
        feedback=True, required=False, doc="results of the tool calls (from a ToolRouter)"
    )
    tool_speech: In[ToolSpeech] = In(
        feedback=True, required=False,
        doc="what running tools say (ctx.say), spoken in their reply by the TTS node on "
        "text (from a ToolRouter; output_modality='text' only, else dropped with a warning)",
    )
    playout: In[Playout] = In(
        feedback=True, required=False, doc="what the sink played (truncation to what was heard)"
    )
    interrupt: In[Interrupt] = In(required=False, doc="FLUSH cancels the reply under way")
    requests: In[ReplyRequest] = In(required=False, doc="replies asked for from code")
    commit: In[Any] = In(required=False, doc="end the user's turn now (no turn detection)")
    clear: In[Any] = In(
        required=False, doc="drop the user's audio not yet committed (no turn detection)"
    )
    updates: In[AgentUpdate] = In(
        required=False,
        doc="changes to the agent from code (AgentUpdate); link them to the ToolRouter too",
    )
    turns: In[UserTurn] = In(
        required=False,
        doc="turns the graph makes (typed chat, key-pad entries): a user message and a reply",
    )
    # Only the newest image matters: a full queue drops the older one.
    images: In[Image] = In(
        required=False, queue=1, overflow=Overflow.DROP_OLDEST,
        doc="what the agent sees (an ImageEncoder's): the newest goes with the next user turn",
    )
    speech: Out[AgentAudio] = Out(default=True, doc="the model's speech, 24 kHz, 20 ms frames")
    text: Out[TextChunk] = Out(
        doc="the reply's text for a TTS node to speak (only with output_modality='text')"
    )
    transcripts: Out[Transcript] = Out(doc="the user's speech, interim and final")
    agent_transcripts: Out[Transcript] = Out(
        doc="the agent's speech, cut to what was heard (text replies: interim, then final, "
        "unless a TTS node speaks them)"
    )
    tool_calls: Out[ToolCall] = Out(doc="tool calls, to a ToolRouter")
    interrupts: Out[Interrupt] = Out(doc="barge-ins: FLUSH the reply the user spoke over")
    metrics: Out[Metrics] = Out(doc="per response: time to first audio (or text), tokens")
    agent_state: Out[AgentState] = Out(doc="listening, thinking or speaking, on each change")
    user_state: Out[UserState] = Out(
        doc="speaking or listening (the server's VAD), or away, on each change"
    )

    class Params(NodeParams):
        """Parameters of :class:`RealtimeModel` (see its ``__init__``)."""

        model: str = pydantic.Field(default="gpt-realtime", min_length=1)
        voice: str = pydantic.Field(default="alloy", min_length=1)
        instructions: str = ""
        tools: tuple[Any, ...] = ()
        mcp_servers: tuple[Any, ...] = ()
        tool_choice: str = "auto"
        turn_detection: TurnDetection | None = pydantic.Field(
            default_factory=ServerVAD, discriminator="type"
        )
        """``None``: no server turn detection (turns end on ``commit``)."""
        transcription_model: str | None = "gpt-4o-mini-transcribe"
        speed: float | None = pydantic.Field(default=None, ge=0.25, le=1.5)
        max_output_tokens: int | None = pydantic.Field(default=None, ge=1, le=4096)
        noise_reduction: Literal["near_field", "far_field"] | None = None
        output_modality: OutputModality = "audio"
        base_url: str | None = None
        timeout: float = pydantic.Field(default=10.0, gt=0)
        max_reconnects: int = pydantic.Field(default=1, ge=0, le=10)
        append_ms: int = pydantic.Field(default=100, ge=10, le=1000)
        max_tool_steps: int = pydantic.Field(default=3, ge=0)
        tool_result_timeout: float = pydantic.Field(default=60.0, gt=0)
        user_away_timeout: float | None = pydantic.Field(default=15.0, gt=0)
        """``None``: the user is never ``away``."""

        @pydantic.field_validator("tools")
        @classmethod
        def _tools_are_function_tools(cls, tools: tuple[Any, ...]) -> tuple[Any, ...]:
            names: list[str] = []
            for tool in tools:
                if not isinstance(tool, FunctionTool):
                    raise ValueError(
                        f"{tool!r} is not a tool; decorate the function with "
                        "@flowkit.function_tool"
                    )
                if tool.name in names:
                    raise ValueError(f"two tools are named {tool.name!r}; rename one")
                names.append(tool.name)
            return tools

        @pydantic.model_validator(mode="after")
        def _tool_choice_names_a_tool(self) -> RealtimeModel.Params:
            names = [tool.name for tool in self.tools]
            if self.tool_choice not in ("auto", "none", "required", *names):
                raise ValueError(
                    f"tool_choice {self.tool_choice!r} is neither auto, none, required nor "
                    f"one of the tools ({', '.join(names) or 'none given'}); pass one of those"
                )
            return self

    def __init__(
        self,
        model: str = "gpt-realtime",
        *,
        voice: str = "alloy",
        instructions: str = "",
        tools: Sequence[FunctionTool] = (),
        agent: AgentLike | None = None,
        mcp_servers: Sequence[MCPServer] = (),
        tool_choice: str = "auto",
        turn_detection: TurnDetection | None = DEFAULT_TURN_DETECTION,
        transcription_model: str | None = "gpt-4o-mini-transcribe",
        speed: float | None = None,
        max_output_tokens: int | None = None,
        noise_reduction: Literal["near_field", "far_field"] | None = None,
        output_modality: OutputModality = "audio",
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 10.0,
        max_reconnects: int = 1,
        append_ms: int = 100,
        max_tool_steps: int = 3,
        tool_result_timeout: float = 60.0,
        user_away_timeout: float | None = 15.0,
        client: openai.AsyncOpenAI | None = None,
    ) -> None:
        """Create the node; nothing connects until the graph runs.

        Args:
            model: The realtime model, e.g. ``gpt-realtime`` or ``gpt-realtime-mini``.
            voice: The voice it speaks with (``alloy``, ``marin``, ``cedar``, ...).
            instructions: The system instructions.
            tools: The functions the model may call (give the same ones to the ToolRouter).
            agent: Instructions and tools in one object (instead of the two above).
            mcp_servers: MCP servers whose tools the model may call too (give the same
                ones to the ToolRouter). The first ``session.update`` waits for their
                listing; they stay across handoffs; a server that cannot be reached is
                left out (logged) and the node goes on with the other tools.
            tool_choice: ``auto``, ``none``, ``required`` or one tool's name.
            turn_detection: :class:`ServerVAD` (the default) or :class:`SemanticVAD`;
                ``None`` turns the server's detection off: a message on ``commit`` then
                ends the user's turn and asks for the answer, and one on ``clear`` drops
                what the user said since the last commit (push to talk: a
                :class:`~flowkit.nodes.push_to_talk.PushToTalk` drives both).
            transcription_model: The model that transcribes the user; ``None`` for no user
                transcripts.
            speed: Speaking speed, 0.25 to 1.5.
            max_output_tokens: The most tokens a response may have.
            noise_reduction: ``near_field`` or ``far_field`` filtering of the user's audio.
            output_modality: ``audio`` (the default): the model speaks, and writes nothing
                on ``text`` (validation refuses a link from ``model.text``, saying so).
                ``text``: it answers in text only (the API's ``output_modalities:
                ["text"]``) and ``speech`` stays silent. The text streams on
                ``agent_transcripts``, or, with ``text`` linked, goes to a TTS node that
                speaks it: the reply is then followed through the sink's reports (agent
                state, transcript of what was heard) and cut on a barge-in as speech is,
                ``ReplyRequest(say=...)`` has the TTS node speak a given text, and so
                does a tool's ``ctx.say`` (``router.speech >> model.tool_speech``), in the
                reply waiting for that tool. A model that speaks itself drops what tools
                say, with a warning.
            base_url: The API root (``.../v1``); ``None`` for OpenAI (or ``OPENAI_BASE_URL``).
            api_key: The key; ``None`` reads ``OPENAI_API_KEY``. Kept out of the graph's spec.
            timeout: Seconds the WebSocket handshake may take.
            max_reconnects: Attempts in a row to connect again after the connection drops
                (or fails to open) before the node gives up and stays silent.
            append_ms: Milliseconds of the user's audio per ``input_audio_buffer.append``.
            max_tool_steps: Tool rounds per reply; the response after the last may not call.
            tool_result_timeout: Seconds to wait for a round's tool results.
            user_away_timeout: Seconds in which both the user and the agent listen (neither
                speaks, the agent is not thinking) before ``user_state`` says ``away``, as
                LiveKit Agents' option of that name; the user's speech brings them back.
                ``None`` never says so; neither does a model without server turn detection,
                which sends no user state.
            client: An SDK client to use instead of one per event loop.

        Raises:
            flowkit.problems.NodeParamsError: A parameter out of range, a tool that is not a
                ``@function_tool``, two tools of one name, or a ``tool_choice`` that names
                no tool; the message names the parameter and what it accepts.
            flowkit.tools.ToolDefinitionError: An element of ``mcp_servers`` is not an MCP
                server, or one is given twice.
            flowkit.tools.DuplicateToolError: A server's ``allowed_tools`` (with its prefix)
                names a function tool or another server's tool.
        """
        if agent is not None:
            instructions, tools = agent.instructions, tuple(agent.tools)
        super().__init__(
            model=model, voice=voice, instructions=instructions, tools=tuple(tools),
            mcp_servers=tuple(mcp_servers), tool_choice=tool_choice,
            turn_detection=turn_detection,
            transcription_model=transcription_model, speed=speed,
            max_output_tokens=max_output_tokens, noise_reduction=noise_reduction,
            output_modality=output_modality, base_url=base_url, timeout=timeout,
            max_reconnects=max_reconnects, append_ms=append_ms, max_tool_steps=max_tool_steps,
            tool_result_timeout=tool_result_timeout, user_away_timeout=user_away_timeout,
        )
        self._connection = Connection(base_url, api_key, timeout)
        self._clients = ClientPool(self._connection, client)
        self._instructions = instructions
        self._toolbox = Toolbox(tools, mcp_servers)
        # The tools the session was last told of: the toolbox's set is a new object when
        # a server's listing or a handoff changed it.
        self._offered: ToolSet | None = None
        self.dialogue: Dialogue | None = None
        self.session: RealtimeSession | None = None

    @property
    def settings(self) -> RealtimeModel.Params:
        """The validated parameters, typed."""
        params = self.params
        assert isinstance(params, RealtimeModel.Params)
        return params

    @property
    def provider_name(self) -> str:
        """``openai-realtime:<model>``, as log messages start."""
        return f"openai-realtime:{self.settings.model}"

    async def run(
        self,
        audio: AsyncIterator[rtc.AudioFrame],
        tool_results: AsyncIterator[ToolResult],
        playout: AsyncIterator[Playout],
        interrupt: AsyncIterator[Interrupt],
        requests: AsyncIterator[ReplyRequest],
        commit: AsyncIterator[Any],
        clear: AsyncIterator[Any],
        tool_speech: AsyncIterator[ToolSpeech],
        updates: AsyncIterator[AgentUpdate],
        images: AsyncIterator[Image],
        turns: AsyncIterator[UserTurn],
    ) -> None:
        """Converse until the user's audio ends; then finish the reply and close the loops."""
        p = self.settings
        loop = asyncio.get_running_loop()
        link = RealtimeLink(self._clients, self._connection, p.model, self.provider_name)
        detection = p.turn_detection
        effects = _Effects(self)
        dialogue = self.dialogue = Dialogue(
            effects, url=link.url, clock=loop.time, call_later=loop.call_later,
            logger=self.ctx.logger,
            interrupt_response=detection is not None and detection.interrupt_response,
            max_tool_steps=p.max_tool_steps, tool_result_timeout=p.tool_result_timeout,
            voiced=self._voiced(),
            # Without the server's VAD nothing says when the user speaks, so nor when away.
            user_away_timeout=p.user_away_timeout if detection is not None else None,
        )
        session = self.session = RealtimeSession(
            link, logger=self.ctx.logger,
            spawn=lambda coro: self.ctx.create_task(coro, name="sender"),
            setup=lambda again: self._setup(dialogue, again),
            on_event=lambda event: self._on_event(dialogue, event),
            on_lost=dialogue.connection_lost,
            confirmed=lambda: dialogue.session_confirmed, max_reconnects=p.max_reconnects,
        )
        effects.session = session
        connection = self.ctx.create_task(self._connect(session), name="connection")
        loops = [
            self.ctx.create_task(self._read_results(tool_results, dialogue), name="results"),
            self.ctx.create_task(self._read_playout(playout, dialogue), name="playout"),
            self.ctx.create_task(self._read_tool_speech(tool_speech, dialogue),
                                 name="tool_speech"),
        ]
        # Not waited for at the end: their sources (a camera) may last as long as the room.
        updating = self.ctx.create_task(self._read_updates(updates), name="updates")
        looking = self.ctx.create_task(for_each(images, dialogue.on_image), name="images")
        chunker = AudioChunker(p.append_ms)
        warned = False

        def push(frame: rtc.AudioFrame) -> None:
            nonlocal warned
            if (problem := format_problem(frame, self.name)) is not None:
                if not warned:
                    warned = True
                    self.ctx.logger.error("%s", problem)
                return
            for chunk in chunker.push(frame):
                dialogue.user_audio(chunk)

        respond = detection is None or not detection.create_response

        def commit_turn(_: object) -> None:
            # The audio gathered toward the next append is the turn's last words.
            if rest := chunker.flush():
                dialogue.user_audio(rest)
            dialogue.on_commit(respond=respond)

        def clear_turn(_: object) -> None:
            chunker.flush()  # dropped with the rest of the turn
            dialogue.on_clear()

        await asyncio.gather(
            for_each(audio, push),
            self._read_flushes(interrupt, dialogue),
            self._read_requests(requests, dialogue),
            for_each(commit, commit_turn),
            for_each(clear, clear_turn),
            for_each(turns, dialogue.on_turn),
        )
        updating.cancel()
        looking.cancel()
        if rest := chunker.flush():
            dialogue.user_audio(rest)
        await self._settle(dialogue, session, connection)
        # (Cancelled instead, the connection task hangs up as it unwinds.)
        await session.close()
        with contextlib.suppress(asyncio.CancelledError):
            await connection
        dialogue.close()
        # (The TTS node's audio on ``text`` comes back as playout, and the router's ends
        # its speech with its results: loops too.)
        loop_outputs: tuple[Out[Any], ...] = (self.speech, self.tool_calls, self.text)
        for port in loop_outputs:
            port.close()  # this node owns the loops: ending them lets them complete
        await asyncio.gather(*loops)
        others: tuple[Out[Any], ...] = (
            self.transcripts, self.agent_transcripts, self.interrupts, self.metrics,
            self.agent_state, self.user_state,
        )
        for port in others:
            port.close()

    def link_problems(self, edges: Sequence[Edge]) -> list[Problem]:
        """Refuse a link from ``text`` when the model speaks itself (``audio`` output).

        Args:
            edges: The edges into or out of this node.
        """
        if self.settings.output_modality == "text":
            return []
        return text_link_problems(self, edges)

    def _voiced(self) -> bool:
        """Whether a TTS node speaks the text replies: ``text`` is linked (text mode).

        Warns when nothing reports the playout back: a cut reply then stays in the
        model's context as written, not as heard, and the agent never shows speaking.
        """
        graph = self.graph
        if self.settings.output_modality != "text" or graph is None:
            return False
        edges = graph.edges
        if not any(edge.src is self.text for edge in edges):
            return False
        if not any(edge.dst is self.playout for edge in edges):
            self.ctx.logger.warning(
                "%s.text feeds a TTS node but nothing reports its playout to %s.playout: a "
                "reply cut by the user will stay in the model's context as written rather "
                "than as heard, and the agent state never says speaking; link the sink's "
                "reports back (speaker >> %s.playout)", self.name, self.name, self.name,
            )
        return True

    async def _connect(self, session: RealtimeSession) -> None:
        """Hold the MCP servers and list their tools, then connect to the model and serve.

        Only the connection waits for the listing: the user's audio is read meanwhile and
        waits in the session's queue, as it does for the connection itself.
        """
        async with self._toolbox.opened(self.ctx.logger):
            await session.run()

    def _on_event(self, dialogue: Dialogue, event: Event) -> None:
        # A response the server starts on its own (its VAD ended the turn) follows events
        # such as speech_started: changed tools are sent ahead of it.
        self.follow_tools()
        dialogue.on_event(event)

    def follow_tools(self) -> None:
        """Send a ``session.update`` if the tools in use are not those the session has.

        Called before each event the node sends (but the user's audio) and each one it
        handles: an MCP server's new listing reaches the model before the next response,
        whether the node or the server's turn detection starts it. Reading the toolbox is
        cheap (its set is merged again only when a listing changed). Between connections
        nothing is sent: the next connection's setup sends the tools in use then.
        """
        session, dialogue = self.session, self.dialogue
        if session is None or dialogue is None or not session.connected:
            return
        if self._toolbox.toolset is not self._offered:
            dialogue.send(self._session_update())

    def _setup(self, dialogue: Dialogue, reconnect: bool) -> list[dict[str, Any]]:
        """The first events on a connection: settings, and after a drop the conversation."""
        events = [dialogue.stamp(self._session_update())]
        if reconnect:
            events += [dialogue.stamp(event) for event in dialogue.history.item_events()]
        return events

    def _session_update(self) -> dict[str, Any]:
        p = self.settings
        settings = SessionSettings(
            model=p.model, voice=p.voice, turn_detection=p.turn_detection,
            transcription_model=p.transcription_model,
            speed=p.speed, max_output_tokens=p.max_output_tokens,
            noise_reduction=p.noise_reduction, output_modality=p.output_modality,
        )
        tools = self._offered = self._toolbox.toolset
        payload = settings.payload(self._instructions, tools.specs(), p.tool_choice)
        return {"type": "session.update", "session": payload}

    async def _read_updates(self, updates: AsyncIterator[AgentUpdate]) -> None:
        async for update in updates:
            # At once, in a session.update: the next response has them.
            self._instructions = (
                update.applied(self._toolbox, self._instructions, self.ctx.logger) or ""
            )
            if self.dialogue is not None:
                self.dialogue.send(self._session_update())

    def hand_off(self, handoff: Any) -> None:
        """Follow a tool result's handoff: an agent's, or a task's, instructions and tools.

        The MCP servers' tools stay; a task's end brings back what its start kept aside
        (see :meth:`flowkit.tools.Toolbox.switch`). A task with its own history sees the
        whole conversation here: the server keeps one, and flowkit does not prune it.
        """
        started = handoff
        while isinstance(started, TaskEnded):  # a task's end may start the next one
            started = started.then
        if isinstance(started, TaskStarted) and started.task.own_history:
            self.ctx.logger.warning(
                "%s has own_history=True, but a RealtimeModel keeps one conversation on the "
                "server: the task sees all of it. Use an LLM node for a task with its own "
                "history, or leave own_history off",
                type(started.task).__name__,
            )
        self._instructions = (
            self._toolbox.switch(handoff, self._instructions, self.ctx.logger) or ""
        )
        if self.dialogue is not None:
            self.dialogue.send(self._session_update())

    async def _settle(
        self, dialogue: Dialogue, session: RealtimeSession, connection: asyncio.Task[None]
    ) -> None:
        """Wait (bounded) for the reply under way, if any, to be made whole.

        The user's last words held back while a reply that may not be cut plays are sent
        once it has played, and waited for too. When the input ended before the model was
        first reached, what waits for the connection is sent and answered first.
        """
        deadline = asyncio.get_running_loop().time() + _SETTLE_S
        first_pending = session.connections == 0 and not connection.done()
        if first_pending and not await self._send_backlog(dialogue, session, connection, deadline):
            return
        while (dialogue.busy or dialogue.held.holding) and not connection.done():
            if asyncio.get_running_loop().time() > deadline:
                self._warn_unsettled()
                return
            await asyncio.sleep(0.05)

    async def _send_backlog(
        self, dialogue: Dialogue, session: RealtimeSession, connection: asyncio.Task[None],
        deadline: float,
    ) -> bool:
        """Let what waited for the first connection be sent, then heard; ``False`` if late.

        The user's words spoken before the model was reached (a slow handshake, MCP
        servers still listing their tools) wait in the session's queue: closing at the end
        of the input would lose them unheard. Once sent, the server hears them at once, so
        a reply it starts shows within :data:`_QUIET_S` of its last event.
        """
        loop = asyncio.get_running_loop()
        self.ctx.logger.info(
            "the input ended before %s was reached; what waits for the connection is sent "
            "and answered before closing", session.link.url,
        )
        while not connection.done() and (not session.connected or session.unsent):
            if loop.time() > deadline:
                self.ctx.logger.warning(
                    "%s was not reached within %g s of the input's end; closing, so what the "
                    "user said before is not answered", session.link.url, _SETTLE_S,
                )
                return False
            await asyncio.sleep(0.05)
        sent_at = loop.time()
        while not connection.done() and not dialogue.busy:
            if loop.time() - max(sent_at, session.last_heard) >= _QUIET_S:
                break
            await asyncio.sleep(0.05)
        return True

    def _warn_unsettled(self) -> None:
        self.ctx.logger.warning(
            "the reply under way at the end of the input did not finish within %g s; "
            "closing the connection anyway", _SETTLE_S,
        )

    @staticmethod
    async def _read_results(results: AsyncIterator[ToolResult], dialogue: Dialogue) -> None:
        async for result in results:
            dialogue.on_tool_result(result)

    @staticmethod
    async def _read_tool_speech(
        speech: AsyncIterator[ToolSpeech], dialogue: Dialogue
    ) -> None:
        async for said in speech:
            dialogue.on_tool_speech(said)

    @staticmethod
    async def _read_playout(reports: AsyncIterator[Playout], dialogue: Dialogue) -> None:
        try:
            async for report in reports:
                dialogue.on_playout(report)
        finally:
            dialogue.playout_closed()

    @staticmethod
    async def _read_flushes(flushes: AsyncIterator[Interrupt], dialogue: Dialogue) -> None:
        async for flush in flushes:
            dialogue.on_flush(flush)

    @staticmethod
    async def _read_requests(requests: AsyncIterator[ReplyRequest], dialogue: Dialogue) -> None:
        async for request in requests:
            dialogue.on_request(request)


class _Effects:
    """The dialogue's effects, as this node's outputs and its session's sends."""

    def __init__(self, node: RealtimeModel) -> None:
        self.node = node
        self.session: RealtimeSession | None = None

    def send(self, event: dict[str, Any]) -> None:
        if self.session is not None:
            self.node.follow_tools()  # changed tools go ahead of what may start a response
            self.session.send(event)

    def send_audio(self, pcm: bytes) -> None:
        if self.session is not None:
            self.session.send_audio(pcm)

    def speak(self, audio: AgentAudio) -> None:
        _emit(self.node.speech, audio)

    def speak_text(self, chunk: TextChunk) -> None:
        _emit(self.node.text, chunk)

    def user_transcript(self, transcript: Transcript) -> None:
        _emit(self.node.transcripts, transcript)

    def agent_transcript(self, transcript: Transcript) -> None:
        _emit(self.node.agent_transcripts, transcript)

    def tool_call(self, call: ToolCall) -> None:
        _emit(self.node.tool_calls, call)

    def agent_state(self, state: AgentState) -> None:
        _emit(self.node.agent_state, state)

    def user_state(self, state: UserState) -> None:
        _emit(self.node.user_state, state)

    def interrupt(self, interrupt: Interrupt) -> None:
        _emit(self.node.interrupts, interrupt)

    def metrics(self, metrics: Metrics) -> None:
        node = self.node
        # The provider (with its model), as the other providers' metrics name theirs.
        labels = {**metrics.labels, "provider": node.provider_name}
        metrics = Metrics(kind=metrics.kind, node=node.name, turn_id=metrics.turn_id,
                          values=metrics.values, labels=labels)
        _emit(self.node.metrics, metrics)

    def handoff(self, agent: Any) -> None:
        self.node.hand_off(agent)


def _emit(port: Out[Any], message: Any) -> None:
    # The graph may be closing under a late event: nobody listens any more.
    with contextlib.suppress(RuntimeError):
        port.send(message)

