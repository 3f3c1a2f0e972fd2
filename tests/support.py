"""Helpers shared by the tests: small nodes (module level, so their annotations resolve) and a
protocol-level agent worker for the test LiveKit server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any

import aiohttp
import numpy as np
import reactivex
from livekit import rtc
from livekit.protocol import agent as agent_pb
from reactivex import Observable
from reactivex import operators as ops

import flowkit as fk
from flowkit.audio import frame_from_samples
from flowkit.testing.memory_io import MemoryIO


class Numbers(fk.Node):
    """Rx source: emits the given values, then completes."""

    out: fk.Out[int]

    class Params(fk.NodeParams):
        values: tuple[int, ...] = (1, 2, 3)

    def __init__(self, values: Iterable[int] = (1, 2, 3)) -> None:
        super().__init__(values=tuple(values))

    def wire(self) -> Observable[int]:
        params = self.params
        assert isinstance(params, Numbers.Params)
        return reactivex.from_iterable(params.values)


class Pusher(fk.Node):
    """Async source: sends values with send(), optionally pausing between them."""

    out: fk.Out[int]

    class Params(fk.NodeParams):
        values: tuple[int, ...] = (1, 2, 3)
        gap: float = 0.0

    async def run(self) -> None:
        params = self.params
        assert isinstance(params, Pusher.Params)
        for value in params.values:
            if params.gap:
                await asyncio.sleep(params.gap)
            self.out.send(value)


class Forever(fk.Node):
    """Async source that never ends: one message per second until cancelled."""

    out: fk.Out[int]

    async def run(self) -> None:
        i = 0
        while True:
            await asyncio.sleep(1.0)
            self.out.send(i)
            i += 1


class Words(fk.Node):
    """Rx source of strings."""

    out: fk.Out[str]

    def wire(self) -> Observable[str]:
        return reactivex.from_iterable(["a", "b"])


class AddOne(fk.Node):
    """Rx transform: x + 1."""

    inp: fk.In[int]
    out: fk.Out[int]

    def wire(self, inp: Observable[int]) -> Observable[int]:
        return inp.pipe(ops.map(lambda x: x + 1))


class Collect(fk.Node):
    """Async sink that records everything it receives."""

    inp: fk.In[Any]

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.items: list[Any] = []

    async def run(self, inp: AsyncIterator[Any]) -> None:
        async for item in inp:
            self.items.append(item)


class TwoOut(fk.Node):
    """Rx node with two outputs and no default: ``>>`` from it is ambiguous."""

    inp: fk.In[int]
    evens: fk.Out[int]
    odds: fk.Out[int]

    def wire(self, inp: Observable[int]) -> dict[str, Observable[int]]:
        return {
            "evens": inp.pipe(ops.filter(lambda x: x % 2 == 0)),
            "odds": inp.pipe(ops.filter(lambda x: x % 2 == 1)),
        }


@fk.node
def double(x: int) -> int:
    """Twice the input."""
    return x * 2


@fk.node
def to_text(x: int) -> str:
    """The number as text."""
    return str(x)


def collected(node: fk.Node) -> list[Any]:
    """What a Collect node received."""
    assert isinstance(node, Collect)
    return node.items


class Script(fk.Node):
    """Sends each ``(at, message)`` at ``at`` seconds after it starts.

    A callable ``message`` is called at that moment and its value sent (a user turn whose
    turn id must be drawn when the user speaks, not when the test is written). It ends
    after the last message, or at ``end_at``; with ``hold=True`` it stays open like a live
    source until the graph closes.
    """

    out: fk.Out[Any]

    class Params(fk.NodeParams):
        events: tuple[tuple[float, Any], ...] = ()
        end_at: float | None = None
        hold: bool = False

    def __init__(
        self, *events: tuple[float, Any], end_at: float | None = None, hold: bool = False
    ) -> None:
        super().__init__(events=tuple(events), end_at=end_at, hold=hold)

    async def run(self) -> None:
        params = self.params
        assert isinstance(params, Script.Params)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for at, message in params.events:
            await asyncio.sleep(max(0.0, start + at - loop.time()))
            self.out.send(message() if callable(message) else message)
        if params.end_at is not None:
            await asyncio.sleep(max(0.0, start + params.end_at - loop.time()))
        if params.hold:
            await asyncio.Event().wait()


def user_turn(text: str) -> fk.UserTurn:
    """A committed user turn with a fresh turn id."""
    return fk.UserTurn(turn_id=fk.new_turn_id(), text=text)


def tool_call(call_id: str, name: str, arguments: str = "{}") -> Any:
    """A FakeLLM reply that calls one tool."""
    from flowkit.providers.llm import ToolCallChunk
    from flowkit.testing import FakeReply

    return FakeReply(tool_calls=(ToolCallChunk(call_id, name, arguments),))


def tool_loop_graph(
    fake: Any, instructions: str, tools: list[fk.FunctionTool], turns: list[tuple[float, Any]],
    *, timeout: float = 30.0, end_at: float | None = None,
) -> tuple[fk.Graph, Any, Collect, Collect]:
    """Scripted user turns → LLM ⇄ ToolRouter (its speech linked): the graph of the task tests.

    Returns:
        The graph, its LLM node, and the Collects of the LLM's text and the router's results.
    """
    from flowkit.nodes.llm import LLM
    from flowkit.nodes.tools import ToolRouter

    g = fk.Graph("tool-loop")
    llm = g.add(LLM(fake, instructions=instructions, tools=tools), name="llm")
    g.add(Script(*turns, end_at=end_at), name="turns") >> llm
    router = g.add(ToolRouter(tools, timeout=timeout), name="router")
    llm.tool_calls >> router >> llm.tool_results
    router.speech >> llm.tool_speech
    text, results = g.add(Collect(), name="text"), g.add(Collect(), name="results")
    llm >> text
    router.results >> results
    return g, llm, text, results


def system_prompt(fake: Any, index: int) -> str:
    """The system message of a FakeLLM's ``index``-th request."""
    return str(fake.requests[index].history[0].content)


def offered_tools(fake: Any, index: int) -> set[str]:
    """The names of the tools a FakeLLM's ``index``-th request offered."""
    return {tool.name for tool in fake.requests[index].tools}


class TimedCollect(fk.Node):
    """Records ``(seconds since it started, message)``, and when its input ended."""

    inp: fk.In[Any]

    def __init__(self) -> None:
        super().__init__()
        self.items: list[tuple[float, Any]] = []
        self.ended_at: float | None = None

    async def run(self, inp: AsyncIterator[Any]) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        async for item in inp:
            self.items.append((round(loop.time() - start, 6), item))
        self.ended_at = round(loop.time() - start, 6)


class VoiceOnlyIO:
    """A room I/O with the agent's voice only (no ``track_output``)."""

    def audio_input(self, sample_rate: int, num_channels: int, participant: str | None = None):
        raise NotImplementedError

    def audio_output(self, sample_rate: int, num_channels: int):
        raise NotImplementedError

    def publish_transcript(self, transcript: object) -> None:
        raise NotImplementedError


class RawWorker:
    """A protocol-level agent worker on an ``/agent`` WebSocket: what it sends is up to the test."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.id = ""

    async def send(self, **message: object) -> None:
        await self.ws.send_bytes(agent_pb.WorkerMessage(**message).SerializeToString())

    async def receive(self, timeout: float = 5.0) -> agent_pb.ServerMessage:
        frame = await self.ws.receive(timeout=timeout)
        assert frame.type is aiohttp.WSMsgType.BINARY, frame
        message = agent_pb.ServerMessage()
        message.ParseFromString(frame.data)
        return message

    async def register(
        self, agent_name: str = "", load: float = 0.0,
        job_type: agent_pb.JobType = agent_pb.JT_ROOM,
    ) -> None:
        await self.send(register=agent_pb.RegisterWorkerRequest(
            type=job_type, agent_name=agent_name, version="raw"))
        first = await self.receive()
        assert first.WhichOneof("message") == "register"
        self.id = first.register.worker_id
        await self.send(update_worker=agent_pb.UpdateWorkerStatus(
            status=agent_pb.WS_AVAILABLE, load=load))

    async def answer(self, available: bool = True, identity: str = "") -> agent_pb.Job:
        offer = await self.receive()
        assert offer.WhichOneof("message") == "availability"
        job = offer.availability.job
        await self.send(availability=agent_pb.AvailabilityResponse(
            job_id=job.id, available=available, participant_identity=identity))
        return job


SPEECH_RATE = 48_000
"""The rate of :func:`speech`'s frames."""


def speech(*segments: tuple[str, float]) -> list[rtc.AudioFrame]:
    """20 ms frames at 48 kHz of ("voice" | "silence", seconds); the voice is a harmonic tone."""
    parts = []
    rng = np.random.default_rng(7)
    for kind, seconds in segments:
        t = np.arange(int(SPEECH_RATE * seconds)) / SPEECH_RATE
        noise = rng.normal(0, 1e-4, t.size)
        tone = sum(np.sin(2 * np.pi * 180 * k * t) / k for k in range(1, 6)) * 0.15
        parts.append(noise + (tone if kind == "voice" else 0))
    pcm = np.clip(np.round(np.concatenate(parts) * 32767), -32768, 32767).astype(np.int16)
    step = SPEECH_RATE // 50
    return [
        frame_from_samples(pcm[i:i + step].copy(), SPEECH_RATE)
        for i in range(0, pcm.size, step)
    ]


class Billing:
    """The agent a handoff tool (:func:`to_billing`) hands the conversation to."""

    instructions = "You are the billing agent."

    @property
    def tools(self) -> list[fk.FunctionTool]:
        """Its function tools."""
        return [refund]


@fk.function_tool
async def refund(order: str) -> str:
    """Refund an order."""
    return f"refunded {order}"


@fk.function_tool
async def to_billing() -> Billing:
    """Transfer the user to billing."""
    return Billing()


class TimedLine(MemoryIO):
    """A MemoryIO that notes when (loop time) each key is pressed, and can fail at the n-th."""

    def __init__(self, fail_at: int | None = None) -> None:
        super().__init__()
        self.fail_at = fail_at
        self.attempts = 0
        self.times: list[float] = []

    async def publish_dtmf(self, digit: str) -> None:
        self.attempts += 1
        if self.attempts == self.fail_at:
            raise RuntimeError("the room closed")
        self.times.append(asyncio.get_running_loop().time())
        await super().publish_dtmf(digit)
