"""Helpers for the MCP tests: the test server as a subprocess (stdio or HTTP), free ports,
whether a process is still alive, how often a server connected, waiting for a state, and an
LLM-and-router agent on a scripted fake LLM fed turns by the test."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from support import Collect

import flowkit as fk
from flowkit.nodes.llm import LLM
from flowkit.nodes.tools import ToolRouter
from flowkit.providers.llm import ToolCallChunk
from flowkit.testing import FakeLLM, FakeReply
from flowkit.tools.mcp import MCPServer, MCPServerStdio
from flowkit.tools.mcp.connection import Connection

APP = str(Path(__file__).with_name("mcp_server_app.py"))

SERVER_TOOLS = ["add", "fail", "slow", "snapshot", "crash", "garble", "pid", "whoami", "grow"]
"""The test server's tools, in the order it lists them."""


def stdio_server(mode: str = "stdio", **options: Any) -> MCPServerStdio:
    """The test server as a subprocess of the job."""
    return MCPServerStdio(sys.executable, [APP, mode], **options)


def free_port() -> int:
    """A TCP port nobody listens on (at the moment of asking)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServedOverHTTP:
    """The test server in its own process, over streamable HTTP or SSE, on a free port (or
    on ``port``: the same server started again)."""

    def __init__(self, transport: str = "http", port: int | None = None) -> None:
        self.transport = transport
        self.port = free_port() if port is None else port
        path = "/sse" if transport == "sse" else "/mcp"
        self.url = f"http://127.0.0.1:{self.port}{path}"
        self._log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in stop())
        self.process = subprocess.Popen(
            [sys.executable, APP, transport, str(self.port)], stderr=self._log,
            stdout=subprocess.DEVNULL,
        )
        self._wait_ready(30.0)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._log.seek(0)
            if "ready" in self._log.read():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        self._log.seek(0)
        raise RuntimeError(f"the test MCP server did not start: {self._log.read()[-2000:]}")

    def stop(self) -> None:
        """End the server process."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        self._log.close()

    def restart(self) -> ServedOverHTTP:
        """Stop it, and start it again at the same address (a new process, knowing nothing)."""
        self.stop()
        return ServedOverHTTP(self.transport, port=self.port)


@contextlib.contextmanager
def served_over_http(transport: str = "http") -> Iterator[ServedOverHTTP]:
    """Run the test server over HTTP for the block."""
    served = ServedOverHTTP(transport)
    try:
        yield served
    finally:
        served.stop()


def alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie waiting to be reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    return True


class OpenCount:
    """Counts the connections a server opens (each reconnect is one more)."""

    def __init__(self, server: MCPServer) -> None:
        self.count = 0
        real_open = server._open

        async def counting_open(stack: AsyncExitStack, connection: Connection) -> Any:
            self.count += 1
            return await real_open(stack, connection)

        server._open = counting_open  # type: ignore[method-assign]


async def eventually(condition: Callable[[], bool], what: str) -> None:
    """Wait until ``condition()`` holds: something the server does on its own time (a
    process dies, a notification arrives). Fails after many tries, never on a duration."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


class Turns(fk.Node):
    """Sends the user turns the test puts in its queue, until it puts ``None``."""

    out: fk.Out[fk.UserTurn]

    def __init__(self) -> None:
        super().__init__()
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()

    async def run(self) -> None:
        while (text := await self.queue.get()) is not None:
            self.out.send(fk.UserTurn(turn_id=fk.new_turn_id(), text=text))


def mcp_agent(fake: FakeLLM, server: MCPServer, name: str) -> tuple[fk.GraphRunner, Turns]:
    """An LLM and a ToolRouter sharing ``server``, fed by the test's turns."""
    g = fk.Graph(name)
    turns = Turns()
    llm = LLM(fake, mcp_servers=[server])
    g.add(turns, name="turns") >> g.add(llm, name="llm")
    llm.tool_calls >> g.add(ToolRouter(mcp_servers=[server]), name="tools") >> llm.tool_results
    llm >> g.add(Collect(), name="text")
    return fk.GraphRunner(g), turns


def tool_call(name: str, arguments: dict[str, Any], call_id: str) -> FakeReply:
    """A fake LLM reply that is one call of ``name``."""
    return FakeReply(tool_calls=(ToolCallChunk(call_id, name, json.dumps(arguments)),))


async def answered(fake: FakeLLM, requests: int) -> None:
    """Wait until the fake LLM has answered ``requests`` requests."""
    await eventually(lambda: len(fake.requests) >= requests and fake.requests[-1].completed,
                     f"the LLM's request {requests} answered")
