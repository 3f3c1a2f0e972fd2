"""A graph for worker tests that needs no room: its behaviour comes from the job's metadata.

Metadata is JSON: ``{"mode": "forever"}`` (default) ticks until the job is ended;
``{"mode": "finish", "seconds": 0.3}`` ends after that long; ``{"mode": "raise",
"seconds": 0.2}`` raises after that long (the job fails); ``{"mode": "block", "seconds":
0.4}`` blocks the event loop that long after its first tick (with ``"times": n``, n times,
0.1 s apart), then ticks forever. ``{"build_blocks": 0.4}`` blocks the loop in ``build``,
as loading a model there would.

``{"turns": n}`` (with any mode) adds a ``talker`` node that holds ``n`` conversation turns,
0.05 s apart: each a committed ``UserTurn``, a reply's ``TextChunk`` and its
``Playout(FINISHED)``, as a voice graph's nodes send them.

``{"usage": n}`` (with any mode) adds a ``provider`` node that reports, on its ``metrics``
output (linked to nothing), as a provider node does: ``n`` LLM requests of provider
``"fake-llm"`` (40 prompt and 12 completion tokens each, and a ``ttft``), then one TTS
request of provider ``"fake-tts"`` (120 characters, 2.5 s of audio, and a ``ttfa``).
``{"usage_file": path}`` registers a shutdown callback writing ``job.usage.summary()``, as
it sees it then, to ``path`` as JSON.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import flowkit as fk


class Ticker(fk.Node):
    """Emits a tick every 20 ms; finishes or raises as the job's metadata says."""

    error_policy = fk.ErrorPolicy.END_GRAPH

    ticks: fk.Out[int]

    def __init__(self, mode: str = "forever", seconds: float = 0.0, times: int = 1) -> None:
        super().__init__()
        self.mode = mode
        self.seconds = seconds
        self.times = times

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        n = 0
        while True:
            await self.ticks.put(n)
            n += 1
            await asyncio.sleep(0.02)
            if self.mode == "block" and n == 1:
                for _ in range(self.times):
                    block_the_loop(self.seconds)
                    await asyncio.sleep(0.1)
                continue
            if self.mode not in ("forever", "block") and loop.time() - start >= self.seconds:
                break
        if self.mode == "raise":
            raise RuntimeError("the job graph raised on purpose")


class Provider(fk.Node):
    """Reports ``requests`` LLM requests and one TTS request, as provider nodes do; ends."""

    metrics: fk.Out[fk.Metrics]

    def __init__(self, requests: int) -> None:
        super().__init__()
        self.requests = requests

    async def run(self) -> None:
        for _ in range(self.requests):
            await self.metrics.put(fk.Metrics(
                kind="llm", node=self.name,
                values={"prompt_tokens": 40.0, "completion_tokens": 12.0, "ttft": 0.2},
                labels={"provider": "fake-llm", "cancelled": False},
            ))
        await self.metrics.put(fk.Metrics(
            kind="tts", node=self.name,
            values={"characters": 120.0, "audio_duration": 2.5, "ttfa": 0.1},
            labels={"provider": "fake-tts"},
        ))


class Talker(fk.Node):
    """Holds ``turns`` conversation turns, as a voice graph's nodes report them, then waits."""

    turns: fk.Out[fk.UserTurn]
    replies: fk.Out[fk.TextChunk]
    playouts: fk.Out[fk.Playout]

    def __init__(self, turns: int) -> None:
        super().__init__()
        self.count = turns

    async def run(self) -> None:
        for n in range(1, self.count + 1):
            turn_id = fk.new_turn_id()
            await self.turns.put(fk.UserTurn(turn_id=turn_id, text=f"question {n}"))
            await asyncio.sleep(0.01)
            await self.replies.put(fk.TextChunk(turn_id=turn_id, text=f"answer {n}"))
            await self.playouts.put(fk.Playout(
                turn_id=turn_id, event=fk.PlayoutEvent.FINISHED, played_text=f"answer {n}",
            ))
            await asyncio.sleep(0.05)


def block_the_loop(seconds: float) -> None:
    """What a synchronous call in a node does to the event loop every job shares."""
    time.sleep(seconds)


@fk.node
def count(n: int) -> None:
    """Swallow a tick."""


def build(job: fk.JobContext) -> fk.Graph:
    config = json.loads(job.metadata or "{}")
    if config.get("build_blocks"):
        block_the_loop(config["build_blocks"])
    g = fk.Graph("worker-test")
    ticker = g.add(
        Ticker(config.get("mode", "forever"), config.get("seconds", 0.0), config.get("times", 1))
    )
    ticker >> count()
    if config.get("turns"):
        g.add(Talker(config["turns"]))
    if config.get("usage"):
        g.add(Provider(config["usage"]))
    if config.get("usage_file"):
        path = Path(config["usage_file"])

        async def write_usage() -> None:
            path.write_text(job.usage.summary().model_dump_json())

        job.add_shutdown_callback(write_usage)
    return g
