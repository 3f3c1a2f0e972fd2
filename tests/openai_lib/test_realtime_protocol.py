"""The test Realtime server itself: the protocol subset it speaks, and its errors.

A raw WebSocket client (aiohttp) sends what the node never would: malformed events.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from flowkit_openai.testing.realtime_script import ScriptedReply, tone
from flowkit_openai.testing.realtime_server import RealtimeTestServer


class Client:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, **event: Any) -> None:
        await self.ws.send_str(json.dumps(event))

    async def receive(self, until: str | None = None) -> list[dict[str, Any]]:
        """Events until one of type ``until`` (inclusive), or the next one."""
        events = []
        while True:
            message = await self.ws.receive(timeout=5)
            assert message.type is aiohttp.WSMsgType.TEXT, message
            events.append(json.loads(message.data))
            if until is None or events[-1]["type"] == until:
                return events


@pytest.fixture
async def server() -> AsyncIterator[RealtimeTestServer]:
    async with RealtimeTestServer([ScriptedReply("Hi there.", audio_ms=250)],
                                  api_key="k") as fake:
        yield fake


@pytest.fixture
async def client(server: RealtimeTestServer) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as http, http.ws_connect(
        server.base_url.replace("http", "ws") + "/realtime?model=m",
        headers={"Authorization": "Bearer k"},
    ) as ws:
        connected = Client(ws)
        [created] = await connected.receive()
        assert created["type"] == "session.created" and created["session"]["model"] == "m"
        yield connected


async def test_a_connection_without_the_key_is_refused(server: RealtimeTestServer) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(server.base_url + "/realtime?model=m")
    assert refused.value.status == 401 and server.connections == 0


async def test_malformed_events_get_the_apis_error_events(client: Client) -> None:
    await client.ws.send_str("{not json")
    [error] = await client.receive()
    assert error["type"] == "error" and error["error"]["code"] == "invalid_json"
    await client.send(type="session.explode", event_id="c1")
    [error] = await client.receive()
    assert error["error"]["type"] == "invalid_request_error"
    assert (error["error"]["param"], error["error"]["event_id"]) == ("type", "c1")
    assert error["error"]["message"].startswith("Invalid value: 'session.explode'.")
    await client.send(type="session.update", event_id="c2",
                      session={"type": "realtime", "temperature": 0.8})
    [error] = await client.receive()
    assert error["error"]["code"] == "unknown_parameter"
    assert error["error"]["param"] == "session.temperature"
    await client.send(type="input_audio_buffer.append", audio="***")
    [error] = await client.receive()
    assert error["error"]["param"] == "audio"
    await client.send(type="input_audio_buffer.commit")
    [error] = await client.receive()
    assert error["error"]["code"] == "input_audio_buffer_commit_empty"
    await client.send(type="response.cancel")
    [error] = await client.receive()
    assert error["error"]["code"] == "response_cancel_not_active"
    await client.send(type="conversation.item.truncate", item_id="nope", content_index=0,
                      audio_end_ms=10)
    [error] = await client.receive()
    assert error["error"]["param"] == "item_id"


async def test_a_requested_response_and_its_truncation(
    client: Client, server: RealtimeTestServer
) -> None:
    await client.send(type="response.create", response={"metadata": {"flowkit_turn": "7"}})
    events = await client.receive(until="response.done")
    kinds = [e["type"] for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.done"
    assert events[0]["response"]["metadata"] == {"flowkit_turn": "7"}
    audio = b"".join(base64.b64decode(e["delta"]) for e in events
                     if e["type"] == "response.output_audio.delta")
    assert audio == tone(250)
    words = "".join(e["delta"] for e in events
                    if e["type"] == "response.output_audio_transcript.delta")
    assert words == "Hi there."
    item_id = events[-1]["response"]["output"][0]["id"]
    await client.send(type="conversation.item.truncate", item_id=item_id, content_index=0,
                      audio_end_ms=300)
    [error] = await client.receive()
    assert error["error"]["message"] == "Audio content of 250ms is already shorter than 300ms"
    await client.send(type="conversation.item.truncate", item_id=item_id, content_index=0,
                      audio_end_ms=120)
    [truncated] = await client.receive()
    assert truncated == {**truncated, "type": "conversation.item.truncated",
                         "item_id": item_id, "audio_end_ms": 120}
    assert [t["audio_end_ms"] for t in server.truncations] == [120]


async def test_speech_is_detected_by_energy_and_answered(client: Client) -> None:
    await client.send(type="session.update", session={
        "type": "realtime",
        "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 200,
                                               "prefix_padding_ms": 100},
                            "transcription": {"model": "whisper-1"}}},
    })
    assert (await client.receive())[0]["type"] == "session.updated"
    pcm = bytes(2 * 24 * 300) + tone(400) + bytes(2 * 24 * 400)  # 300 ms quiet, 400 ms loud
    await client.send(type="input_audio_buffer.append", audio=base64.b64encode(pcm).decode())
    events = await client.receive(until="response.done")
    kinds = [e["type"] for e in events]
    assert kinds[:6] == [
        "input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed", "conversation.item.added",
        "conversation.item.input_audio_transcription.completed", "response.created",
    ]
    assert events[0]["audio_start_ms"] == 200  # speech at 300 ms, less 100 ms of padding
    assert events[1]["audio_end_ms"] == 900  # 700 ms of audio, then 200 ms of silence
    assert events[4]["transcript"].startswith("(user speech")


async def test_a_text_session_answers_in_text_only(client: Client) -> None:
    await client.send(type="session.update",
                      session={"type": "realtime", "output_modalities": ["text", "audio"]})
    [error] = await client.receive()
    assert error["error"]["param"] == "session.output_modalities"
    await client.send(type="session.update",
                      session={"type": "realtime", "output_modalities": ["text"]})
    assert (await client.receive())[0]["type"] == "session.updated"
    await client.send(type="response.create")
    events = await client.receive(until="response.done")
    assert [e["type"] for e in events] == [
        "response.created", "response.output_item.added", "conversation.item.added",
        "response.content_part.added", "response.output_text.delta",
        "response.output_text.delta", "response.output_text.done", "response.content_part.done",
        "response.output_item.done", "response.done",
    ]
    assert [e["delta"] for e in events if e["type"] == "response.output_text.delta"] == [
        "Hi", " there."
    ]
    assert events[6]["text"] == "Hi there."
    [item] = events[-1]["response"]["output"]
    assert item["content"] == [{"type": "output_text", "text": "Hi there."}]
