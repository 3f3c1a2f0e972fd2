"""Test an agent's behaviour: send it a user turn, then check what it did, event by event.

:class:`Harness` runs a graph (with scripted providers from :mod:`flowkit.testing.fakes`,
or real ones) and sends user turns as text straight into the graph's ``UserTurn`` input,
skipping audio. Each :meth:`Harness.run` returns the events of that turn, and ``expect``
reads them in order::

    async with Harness(build(job)) as agent:
        result = await agent.run("What's the weather in Paris?")
    result.expect.next_event().is_function_call(name="get_weather", arguments={"city": "Paris"})
    result.expect.next_event().is_function_call_output()
    result.expect.next_event().is_message(role="assistant", contains="sunny")
    result.expect.no_more_events()

What a tool says while it runs (``ctx.say``) is an assistant message event where the tool
said it, before its call's output, once the LLM node has spoken it.

A reply the agent makes on its own, not to a turn sent by :meth:`Harness.run` (a task
completed by a timer or an event, which the ToolRouter answers in a call of its own), is
read with :meth:`Harness.next_reply`, called before that reply starts.

Mark such tests ``@pytest.mark.looptime`` so that scripted delays take no real time.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from flowkit.graph import Graph
from flowkit.job import JobContext
from flowkit.messages import TextChunk, ToolCall, ToolResult, ToolSpeech, UserTurn, new_turn_id
from flowkit.providers.chat import ChatMessage, ToolSpec
from flowkit.providers.llm import LLMProvider, TextDelta, ToolCallChunk
from flowkit.runtime.runner import GraphRunner
from flowkit.tools.task import TaskEnded, TaskStarted
from flowkit.typenames import is_assignable

__all__ = [
    "JUDGE_TOOL",
    "AgentHandoffEvent",
    "ChatMessageEvent",
    "EventAssert",
    "EventExpectations",
    "FunctionCallEvent",
    "FunctionCallOutputEvent",
    "Harness",
    "RunEvent",
    "RunResult",
]


@dataclass(frozen=True, slots=True)
class ChatMessageEvent:
    """The agent said something (one LLM request's text)."""

    role: str
    content: str


@dataclass(frozen=True, slots=True)
class FunctionCallEvent:
    """The LLM called a tool."""

    name: str
    arguments: dict[str, Any]
    call_id: str


@dataclass(frozen=True, slots=True)
class FunctionCallOutputEvent:
    """A tool answered."""

    name: str
    output: str
    is_error: bool
    call_id: str


@dataclass(frozen=True, slots=True)
class AgentHandoffEvent:
    """A tool handed the conversation to another agent, or a task began or ended.

    Attributes:
        agent: The agent now talking: the one handed to, or the task that began (also when
            a task's end starts the next task of the same tool); ``None`` when a task ended
            and the conversation went back to the agent from before it.
        ended: The task that ended, if one did (:mod:`flowkit.tools.task`).
    """

    agent: Any
    ended: Any = None


RunEvent = ChatMessageEvent | FunctionCallEvent | FunctionCallOutputEvent | AgentHandoffEvent


@dataclass(slots=True)
class RunResult:
    """What the agent did for one user turn, in order."""

    user_input: str
    events: list[RunEvent] = field(default_factory=list)
    _cursor: EventExpectations | None = field(default=None, init=False, repr=False)

    @property
    def expect(self) -> EventExpectations:
        """Read the events in order with assertions.

        One cursor per result, as in LiveKit Agents: each ``result.expect.next_event()``
        checks the event after the one the previous call checked.
        """
        if self._cursor is None:
            self._cursor = EventExpectations(self)
        return self._cursor


class EventExpectations:
    """A cursor over a run's events; each check consumes one event."""

    def __init__(self, result: RunResult) -> None:
        self._result = result
        self._index = 0

    def next_event(self) -> EventAssert:
        """The next event, to be checked; fails when there is none."""
        events = self._result.events
        if self._index >= len(events):
            raise AssertionError(
                f"expected another event after {self._index} for {self._result.user_input!r}, "
                f"but the agent did nothing more; events: {_listing(events)}"
            )
        event = events[self._index]
        self._index += 1
        return EventAssert(event, self._index - 1, self._result)

    def skip_next(self, count: int = 1) -> None:
        """Pass over ``count`` events without checking them."""
        for _ in range(count):
            self.next_event()

    def no_more_events(self) -> None:
        """Fail if events are left."""
        rest = self._result.events[self._index:]
        if rest:
            raise AssertionError(
                f"expected no more events for {self._result.user_input!r}, found "
                f"{_listing(rest)}"
            )


class EventAssert:
    """One event, checked by one of the ``is_...`` methods."""

    def __init__(self, event: RunEvent, index: int, result: RunResult) -> None:
        self.event = event
        self._user_input = result.user_input
        self._where = f"event {index} for {result.user_input!r} ({_describe(event)})"

    def _fail(self, expected: str) -> AssertionError:
        return AssertionError(f"{self._where}: expected {expected}")

    def is_message(
        self, *, role: str = "assistant", contains: str | None = None, content: str | None = None
    ) -> ChatMessageEvent:
        """Check it is a message from ``role``, with ``content`` or containing ``contains``."""
        event = self.event
        if not isinstance(event, ChatMessageEvent) or event.role != role:
            raise self._fail(f"a message from {role}")
        if content is not None and event.content != content:
            raise self._fail(f"the message {content!r}")
        if contains is not None and contains.lower() not in event.content.lower():
            raise self._fail(f"a message containing {contains!r}")
        return event

    def is_function_call(
        self, *, name: str | None = None, arguments: dict[str, Any] | None = None
    ) -> FunctionCallEvent:
        """Check it is a call of tool ``name`` with exactly ``arguments``."""
        event = self.event
        if not isinstance(event, FunctionCallEvent):
            raise self._fail(f"a call of {name or 'a tool'}")
        if name is not None and event.name != name:
            raise self._fail(f"a call of {name!r}")
        if arguments is not None and event.arguments != arguments:
            raise self._fail(f"the arguments {arguments!r}")
        return event

    def is_function_call_output(
        self, *, output: str | None = None, is_error: bool | None = None
    ) -> FunctionCallOutputEvent:
        """Check it is a tool's answer (with ``output``, an error or not)."""
        event = self.event
        if not isinstance(event, FunctionCallOutputEvent):
            raise self._fail("a tool's output")
        if output is not None and event.output != output:
            raise self._fail(f"the output {output!r}")
        if is_error is not None and event.is_error != is_error:
            raise self._fail("an error output" if is_error else "a successful output")
        return event

    def is_agent_handoff(self) -> AgentHandoffEvent:
        """Check it is a handoff to another agent."""
        if not isinstance(self.event, AgentHandoffEvent):
            raise self._fail("a handoff to another agent")
        return self.event

    async def judge(self, llm: LLMProvider, *, intent: str) -> str:
        """Check it is an agent's message that does what ``intent`` says, as ``llm`` judges.

        LiveKit Agents' ``judge``: for what a string match cannot check ("asks for the
        caller's email address, politely", "does not promise a refund"). The judge model
        gets the user's input, the message and the intent, and must call ``check_intent``
        with its verdict and a reason (:data:`JUDGE_TOOL`). Use a capable model: a small one
        judges poorly.

        Args:
            llm: The judge (any chat provider that can call tools).
            intent: What the message should do, in plain words.

        Returns:
            The judge's reason for its verdict.

        Raises:
            AssertionError: It is not an agent's message; the judge says it does not do
                what ``intent`` says (with its reason); or the judge gave no verdict, or a
                malformed one.
        """
        message = self.is_message(role="assistant")
        history = [
            ChatMessage("system", _JUDGE_INSTRUCTIONS),
            ChatMessage("user", (
                f"The user said: {self._user_input!r}\n\nThe agent answered: "
                f"{message.content!r}\n\nIntent: {intent}"
            )),
        ]
        calls: list[ToolCallChunk] = []
        written: list[str] = []
        async for chunk in llm.chat(history, [JUDGE_TOOL], tool_choice=JUDGE_TOOL.name):
            if isinstance(chunk, ToolCallChunk):
                calls.append(chunk)
            elif isinstance(chunk, TextDelta):
                written.append(chunk.text)
        verdict = next((call for call in calls if call.name == JUDGE_TOOL.name), None)
        if verdict is None:
            raise AssertionError(
                f"{self._where}: the judge {llm.name} gave no verdict on {intent!r} (it must "
                f"call {JUDGE_TOOL.name}; it wrote {''.join(written)!r}); use a model that "
                "calls tools"
            )
        try:
            arguments = json.loads(verdict.arguments)
            success, reason = arguments["success"], arguments["reason"]
        except (json.JSONDecodeError, KeyError, TypeError):
            success, reason = None, None
        if not isinstance(success, bool) or not isinstance(reason, str):
            raise AssertionError(
                f"{self._where}: the judge {llm.name} gave a malformed verdict on {intent!r}: "
                f"{verdict.arguments!r} (expected {{\"success\": true or false, \"reason\": "
                "\"...\"}})"
            )
        if not success:
            raise AssertionError(
                f"{self._where}: the judge {llm.name} found it does not do what was intended "
                f"({intent!r}): {reason}"
            )
        return reason


def _describe(event: RunEvent) -> str:
    if isinstance(event, ChatMessageEvent):
        return f"{event.role} message {event.content!r}"
    if isinstance(event, FunctionCallEvent):
        return f"call {event.name}({event.arguments})"
    if isinstance(event, FunctionCallOutputEvent):
        return f"{'error ' if event.is_error else ''}output of {event.name}: {event.output!r}"
    if event.ended is not None:
        # Not "back to": in a task group the next agent can be the next task.
        then = "the agent before it" if event.agent is None else type(event.agent).__name__
        return f"end of {type(event.ended).__name__}, then {then}"
    return f"handoff to {type(event.agent).__name__}"


def _listing(events: list[RunEvent]) -> str:
    return "[" + "; ".join(_describe(e) for e in events) + "]" if events else "none"


_NOT_YET = -2  # the turn of a reply of the agent's own, before it starts

JUDGE_TOOL = ToolSpec(
    name="check_intent",
    description="Give your verdict: whether the agent's answer does what the intent says.",
    parameters={
        "type": "object",
        "properties": {
            "success": {"type": "boolean", "description": "true if it does, false if not"},
            "reason": {"type": "string", "description": "why, in one or two sentences"},
        },
        "required": ["success", "reason"],
        "additionalProperties": False,
    },
)
"""The tool a judge model must call with its verdict (:meth:`EventAssert.judge`)."""

_JUDGE_INSTRUCTIONS = (
    "You check a voice agent's answers in a test. You get what the user said, the agent's "
    "answer and the intent the answer should fulfil. Judge the answer only against the "
    "intent: not its style or length unless the intent asks for them. Answer by calling "
    "check_intent once, with success and a short reason."
)


class _Recorder:
    """Turns the graph's messages of one turn into run events."""

    def __init__(self) -> None:
        self.turn_id = -1
        # Waiting for a reply of the agent's own: the turns it may be newer than.
        self._newer_than = -1
        self.result = RunResult("")
        self.done = asyncio.Event()
        self._text: list[str] = []
        # What tools said, not yet spoken by the LLM node: (words, where they were said).
        self._said: list[tuple[str, int]] = []

    def start(self, turn_id: int, user_input: str) -> RunResult:
        self.turn_id, self.result = turn_id, RunResult(user_input)
        self.done.clear()
        self._text = []
        self._said = []
        return self.result

    def start_own(self) -> RunResult:
        """Record the next reply of a turn newer than the last one recorded, when it starts."""
        self._newer_than = max(self.turn_id, self._newer_than)
        return self.start(_NOT_YET, "")

    def _adopt(self, turn_id: int) -> bool:
        """Whether a message of ``turn_id`` is of the turn recorded, adopting a new own one."""
        if self.turn_id == _NOT_YET and turn_id > self._newer_than:
            self.turn_id = turn_id
        return turn_id == self.turn_id

    def _flush_text(self) -> None:
        # The message as the model wrote it: the LLM node ends the text before a tool round
        # with a space for the TTS node's sentence splitter, which is not the model's.
        text = "".join(self._text).strip()
        if text:
            self.result.events.append(ChatMessageEvent("assistant", text))
        self._text = []

    def on_speech(self, speech: ToolSpeech) -> None:
        if not speech.text.strip() or not self._adopt(speech.turn_id):
            return  # another turn's, or a tool protecting its reply without words
        self._flush_text()
        # Its event goes here, where the tool said it, before the call's output; but only
        # once the LLM node speaks it (the node drops words said after the reply moved on).
        self._said.append((speech.text.strip(), len(self.result.events)))

    def _spoken_by_tool(self, chunk: TextChunk) -> bool:
        """Record ``chunk`` where its tool said it, if it is a tool's words being spoken."""
        words = chunk.text.strip()
        found = next((i for i, (said, _) in enumerate(self._said) if said == words), None)
        if not chunk.flush or found is None:
            return False
        _, index = self._said.pop(found)
        self.result.events.insert(index, ChatMessageEvent("assistant", words))
        self._said = [(said, at + (at >= index)) for said, at in self._said]
        return True

    def on_text(self, chunk: TextChunk) -> None:
        if not self._adopt(chunk.turn_id) or self._spoken_by_tool(chunk):
            return
        self._text.append(chunk.text)
        if chunk.final:
            self._flush_text()
            self.done.set()
        elif chunk.flush:
            self._flush_text()  # a stretch of speech ends: before a tool round, or a tool's words

    def on_call(self, call: ToolCall) -> None:
        if not self._adopt(call.turn_id):
            return
        self._flush_text()
        try:
            arguments = json.loads(call.arguments or "{}")
        except json.JSONDecodeError:
            arguments = {"_raw": call.arguments}
        self.result.events.append(FunctionCallEvent(call.name, arguments, call.call_id))

    def on_result(self, result: ToolResult) -> None:
        if not self._adopt(result.turn_id):
            return
        if result.call is not None:
            self.on_call(result.call)  # the ToolRouter's own call: no model sent it out
        self.result.events.append(
            FunctionCallOutputEvent(result.name, result.output, result.is_error, result.call_id)
        )
        handoff = result.handoff
        if isinstance(handoff, TaskStarted):
            self.result.events.append(AgentHandoffEvent(handoff.task))
        elif isinstance(handoff, TaskEnded):
            then = handoff.then.task if isinstance(handoff.then, TaskStarted) else handoff.then
            self.result.events.append(AgentHandoffEvent(then, ended=handoff.task))
        elif handoff is not None:
            self.result.events.append(AgentHandoffEvent(handoff))


class Harness:
    """Runs a graph and sends it user turns as text (see the module docstring).

    Args:
        graph: The agent's graph; its one ``UserTurn`` input receives the turns (name it with
            ``turn_input="node.port"`` when there are several).
        job: The job the graph runs for.
        turn_input: The input that receives the turns.
        reply_timeout: Seconds (loop time) a turn may take before :meth:`run` fails.
    """

    def __init__(
        self,
        graph: Graph,
        *,
        job: JobContext | None = None,
        turn_input: str | None = None,
        reply_timeout: float = 60.0,
    ) -> None:
        self.runner = GraphRunner(graph, job=job)
        self.reply_timeout = reply_timeout
        self.turn_input = turn_input or self._find_turn_input()
        self._recorder = _Recorder()

    def _find_turn_input(self) -> str:
        found = [
            f"{node.name}.{name}"
            for node in self.runner.plan.nodes
            for name, port in node.inputs.items()
            if port.type is not Any and is_assignable(UserTurn, port.type)
        ]
        if len(found) != 1:
            raise ValueError(
                f"Harness: the graph has {len(found)} UserTurn inputs "
                f"({', '.join(found) or 'none'}); name the one to use with "
                "Harness(graph, turn_input='node.port')"
            )
        return found[0]

    async def __aenter__(self) -> Harness:
        await self.runner.start()
        handlers: list[tuple[type, Any]] = [
            (TextChunk, self._recorder.on_text),
            (ToolCall, self._recorder.on_call),
            (ToolResult, self._recorder.on_result),
            (ToolSpeech, self._recorder.on_speech),
        ]
        for node in self.runner.plan.nodes:
            for name, port in node.outputs.items():
                for kind, handler in handlers:
                    if port.type is kind:
                        self.runner.observe(f"{node.name}.{name}").subscribe(handler)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.close()

    async def run(self, user_input: str) -> RunResult:
        """Send ``user_input`` as a user turn; return what the agent did until its reply ended."""
        turn = UserTurn(turn_id=new_turn_id(), text=user_input)
        result = self._recorder.start(turn.turn_id, user_input)
        self.runner.inject(self.turn_input, turn)
        return await self._until_done(
            result, f"the agent did not finish its reply to {user_input!r}"
        )

    async def next_reply(self) -> RunResult:
        """Wait for the next reply the agent makes on its own; what it did until it ended.

        Not a reply to a turn sent by :meth:`run`: one the agent starts itself, such as
        the reply to a task completed outside its tools (a timer, an event), which the
        ToolRouter answers in a call of its own: its events are that call, its output, the
        task's end, then what the agent said. Call it before that reply starts: it waits
        for a reply newer than the last one recorded.

        Raises:
            AssertionError: No such reply ended within ``reply_timeout`` (one whose tool
                asked for no reply, ``StopResponse``, never does).
        """
        result = self._recorder.start_own()
        return await self._until_done(result, "the agent made no reply of its own")

    async def _until_done(self, result: RunResult, failure: str) -> RunResult:
        """``result`` once its reply has ended; ``failure`` if it does not in time."""
        try:
            async with asyncio.timeout(self.reply_timeout):
                await self._recorder.done.wait()
        except TimeoutError:
            raise AssertionError(
                f"{failure} within {self.reply_timeout:g} s; events so far: "
                f"{_listing(result.events)}"
            ) from None
        return result
