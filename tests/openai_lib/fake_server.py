"""A misbehaving OpenAI-compatible server for tests, run in-process on 127.0.0.1.

Each behaviour lives under its own prefix, so a test picks one by base_url:
``server.url("ok")`` is ``http://127.0.0.1:<port>/ok/v1``. Prefixes:

* ``ok``: well-formed answers. Chat streams two text deltas, two parallel tool calls whose
  arguments arrive in fragments (interleaved), and a usage chunk; transcriptions answer
  JSON; speech streams PCM in odd-sized chunks (samples split across chunks).
* ``text``: a chat stream of text only ("Hello there"), then usage.
* ``status<N>`` (e.g. ``status429``): an OpenAI-style JSON error with HTTP status N.
* ``hang``: accepts the request and never answers.
* ``stall``: sends the headers and one chunk, then nothing more.
* ``malformed``: an SSE stream whose data is not JSON.
* ``endless``: streams a text delta every 20 ms until the client goes away, then sets
  ``disconnected``.
* ``judge``: a test judge's verdict: one ``check_intent`` call (success, with a reason),
  its arguments in fragments.
* ``amd``: an answering-machine classifier's reply: a little text, then one
  ``record_category`` call for ``machine-vm`` and one ``wait_for_more`` call for 25 seconds,
  their arguments in fragments.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from flowkit_openai._client import ClientPool

SPEECH_PCM = bytes(range(256)) * 40  # 10240 bytes = 5120 samples


@dataclass
class Recorded:
    """One request the server got."""

    prefix: str
    path: str
    json: dict[str, Any] | None = None
    form: dict[str, Any] = field(default_factory=dict)


def _chunk(delta: dict[str, Any], *, finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "fake",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


OK_CHUNKS: list[dict[str, Any]] = [
    _chunk({"role": "assistant", "content": "Hello"}),
    _chunk({"content": " there"}),
    _chunk({"tool_calls": [
        {"index": 0, "id": "call_a", "type": "function",
         "function": {"name": "get_weather", "arguments": ""}},
    ]}),
    _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
    _chunk({"tool_calls": [
        {"index": 1, "id": "call_b", "type": "function",
         "function": {"name": "get_time", "arguments": '{"zone"'}},
    ]}),
    _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
    _chunk({"tool_calls": [{"index": 1, "function": {"arguments": ': "UTC"}'}}]}),
    _chunk({}, finish="tool_calls"),
    {
        "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0,
        "model": "fake", "choices": [],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    },
]


AMD_CHUNKS: list[dict[str, Any]] = [
    _chunk({"role": "assistant", "content": "A voicemail greeting."}),
    _chunk({"tool_calls": [
        {"index": 0, "id": "call_r", "type": "function",
         "function": {"name": "record_category", "arguments": '{"categ'}},
    ]}),
    _chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ory": "machine-'}}]}),
    _chunk({"tool_calls": [
        {"index": 1, "id": "call_w", "type": "function",
         "function": {"name": "wait_for_more", "arguments": '{"seconds": 2'}},
    ]}),
    _chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'vm"}'}}]}),
    _chunk({"tool_calls": [{"index": 1, "function": {"arguments": "5}"}}]}),
    _chunk({}, finish="tool_calls"),
]


JUDGE_CHUNKS: list[dict[str, Any]] = [
    _chunk({"role": "assistant", "tool_calls": [
        {"index": 0, "id": "call_j", "type": "function",
         "function": {"name": "check_intent", "arguments": '{"success": tr'}},
    ]}),
    _chunk({"tool_calls": [
        {"index": 0, "function": {"arguments": 'ue, "reason": "It asks for the email."}'}},
    ]}),
    _chunk({}, finish="tool_calls"),
]


class FakeOpenAI:
    """The server; use as ``async with FakeOpenAI() as server``."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.disconnected = asyncio.Event()
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    def url(self, prefix: str) -> str:
        """The base_url of one behaviour."""
        return f"http://127.0.0.1:{self.port}/{prefix}/v1"

    async def __aenter__(self) -> FakeOpenAI:
        app = web.Application()
        app.router.add_post("/{prefix}/v1/chat/completions", self._chat)
        app.router.add_post("/{prefix}/v1/audio/transcriptions", self._transcribe)
        app.router.add_post("/{prefix}/v1/audio/speech", self._speech)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- shared behaviours ---------------------------------------------------------------

    async def _misbehave(self, request: web.Request, prefix: str) -> web.StreamResponse | None:
        if prefix.startswith("status"):
            status = int(prefix.removeprefix("status"))
            body = {"error": {"message": f"fake error {status}", "type": "fake", "code": None}}
            return web.json_response(body, status=status)
        if prefix == "hang":
            await self._release.wait()
            return web.Response(status=503)
        return None

    async def _sse(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        return response

    # -- endpoints -----------------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        prefix = request.match_info["prefix"]
        self.requests.append(Recorded(prefix, request.path, json=await request.json()))
        failed = await self._misbehave(request, prefix)
        if failed is not None:
            return failed
        response = await self._sse(request)
        if prefix == "malformed":
            await response.write(b'data: {"id": "x", "choices": [{"delta": {"content": "Hi"\n\n')
            await response.write(b"data: [DONE]\n\n")
            return response
        if prefix == "stall":
            await response.write(f"data: {json.dumps(OK_CHUNKS[0])}\n\n".encode())
            await self._release.wait()
            return response
        if prefix == "endless":
            try:
                while True:
                    await response.write(
                        f"data: {json.dumps(_chunk({'content': ' word'}))}\n\n".encode()
                    )
                    await asyncio.sleep(0.02)
            except (ConnectionError, asyncio.CancelledError):
                self.disconnected.set()
                raise
        chunks = OK_CHUNKS
        if prefix == "amd":
            chunks = AMD_CHUNKS
        if prefix == "judge":
            chunks = JUDGE_CHUNKS
        if prefix == "text":
            chunks = [*OK_CHUNKS[:2], _chunk({}, finish="stop"), OK_CHUNKS[-1]]
        for chunk in chunks:
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        return response

    async def _transcribe(self, request: web.Request) -> web.StreamResponse:
        prefix = request.match_info["prefix"]
        form: dict[str, Any] = {}
        async for part in await request.multipart():
            name = part.name or ""
            if part.filename:  # type: ignore[union-attr]
                form[name] = {
                    "filename": part.filename,  # type: ignore[union-attr]
                    "content_type": part.headers.get("Content-Type"),
                    "data": await part.read(),  # type: ignore[union-attr]
                }
            else:
                form[name] = await part.text()  # type: ignore[union-attr]
        self.requests.append(Recorded(prefix, request.path, form=form))
        failed = await self._misbehave(request, prefix)
        if failed is not None:
            return failed
        if prefix == "malformed":
            return web.Response(text="<html>not json</html>", content_type="text/html")
        return web.json_response({"text": " hello world "})

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        prefix = request.match_info["prefix"]
        self.requests.append(Recorded(prefix, request.path, json=await request.json()))
        failed = await self._misbehave(request, prefix)
        if failed is not None:
            return failed
        response = web.StreamResponse(headers={"Content-Type": "audio/pcm"})
        await response.prepare(request)
        if prefix == "stall":
            await response.write(SPEECH_PCM[:1001])
            await self._release.wait()
            return response
        # Odd sizes, so that samples are split between chunks.
        for start in range(0, len(SPEECH_PCM), 777):
            await response.write(SPEECH_PCM[start : start + 777])
            await asyncio.sleep(0.001)
        return response


@pytest.fixture
async def close_clients(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """Close, after the test, the HTTP clients of every provider the test made.

    Kept-alive connections would otherwise stay open until garbage collection.
    """
    pools: list[ClientPool] = []
    original = ClientPool.__init__

    def recording(self: ClientPool, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        pools.append(self)

    monkeypatch.setattr(ClientPool, "__init__", recording)
    yield
    for pool in pools:
        await pool.aclose()
