"""RealtimeModel when things go wrong: error events, dropped and refused connections.

What is decided: a server ``error`` event is logged (what was refused, what to do) and the
session goes on; a dropped connection is reconnected ``max_reconnects`` times (1 by default)
with the session's settings and the conversation's text sent again; when that fails, or the
server refuses the key or the path, the node logs an error naming the server and the remedy
and goes on without a model: the job does not crash, and the graph ends with its input.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator

import pytest
from fake_server import close_clients  # noqa: F401 (a fixture)
from flowkit_openai.realtime import RealtimeModel
from flowkit_openai.realtime import node as realtime_node
from flowkit_openai.testing import realtime_connection
from flowkit_openai.testing.realtime_script import ScriptedReply
from flowkit_openai.testing.realtime_server import RealtimeTestServer
from realtime_helpers import API_KEY, agent
from support import speech

import flowkit as fk
from flowkit.nodes.audio import Resample
from flowkit.nodes.room import RoomSink, RoomSource
from flowkit.testing.memory_io import MemoryIO

pytestmark = pytest.mark.usefixtures("close_clients")

QUESTION = "What is the weather in Paris?"
ANSWER = "It is sunny."


@pytest.fixture
async def server() -> AsyncIterator[RealtimeTestServer]:
    async with RealtimeTestServer(
        [ScriptedReply(ANSWER, 400), ScriptedReply("Anything else?", 400)],
        user_transcripts=[QUESTION, "Thanks."], api_key=API_KEY,
    ) as fake:
        yield fake


@pytest.fixture
def node_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="flowkit.node")
    return caplog


def _messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name.startswith("flowkit.node") and r.levelno == level]


def two_questions() -> list[object]:
    """A question at 0.3 s, a second at 2.6 s (each answered in 400 ms of speech)."""
    return speech(("silence", 0.3), ("voice", 0.5), ("silence", 1.8), ("voice", 0.5),
                  ("silence", 1.3))


async def _later(seconds: float, action: object) -> None:
    await asyncio.sleep(seconds)
    result = action()  # type: ignore[operator]
    if asyncio.iscoroutine(result):
        await result


async def test_a_server_error_event_is_logged_and_the_session_goes_on(
    server: RealtimeTestServer, node_logs: pytest.LogCaptureFixture
) -> None:
    a = agent(server.base_url, two_questions())
    failure = asyncio.ensure_future(_later(1.9, lambda: server.push_error(
        "The server had an error while processing your request.")))
    runner = await a.run()
    await failure
    assert runner.node_errors == []
    [error] = _messages(node_logs, logging.ERROR)
    assert server.base_url.replace("http", "ws") in error
    assert "server_error: The server had an error while processing your request." in error
    assert "the session goes on" in error
    assert [t.text for t in a.agents.items] == [ANSWER, "Anything else?"]


async def test_a_refused_setting_is_logged_with_the_parameter_and_the_remedy(
    server: RealtimeTestServer, node_logs: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A compatible server that does not take one of the settings the node sends.
    known = realtime_connection._SESSION_KEYS - {"max_output_tokens"}
    monkeypatch.setattr(realtime_connection, "_SESSION_KEYS", known)
    a = agent(server.base_url, two_questions()[:100], max_output_tokens=200)
    runner = await a.run()
    assert runner.node_errors == []
    assert server.sessions == []  # the update was refused whole
    [error] = _messages(node_logs, logging.ERROR)
    assert "answered session.update with invalid_request_error/unknown_parameter" in error
    assert "(parameter session.max_output_tokens)" in error
    assert "the session runs on the server's defaults" in error
    assert "remove or fix that setting of the RealtimeModel node" in error
    # The conversation still happens, on the server's default session.
    assert [t.text for t in a.agents.items] == [ANSWER]


async def test_a_dropped_connection_is_reconnected_with_the_conversation_so_far(
    server: RealtimeTestServer, node_logs: pytest.LogCaptureFixture
) -> None:
    a = agent(server.base_url, two_questions(), instructions="Be brief.")
    drop = asyncio.ensure_future(_later(1.9, server.drop))
    runner = await a.run()
    await drop
    assert runner.node_errors == []
    assert server.connections == 2
    first, second = server.sessions
    assert first == second and second["instructions"] == "Be brief."
    [warning] = [m for m in _messages(node_logs, logging.WARNING) if "reconnecting" in m]
    assert server.base_url.replace("http", "ws") in warning
    assert "the connection dropped without a close frame" in warning
    # The new server session was given the conversation's text, in order, after its settings.
    kinds = [e["type"] for e in server.events if e["type"] != "input_audio_buffer.append"]
    assert kinds == ["session.update", "session.update", "conversation.item.create",
                     "conversation.item.create"]
    replayed = [e["item"] for e in server.of_type("conversation.item.create")]
    assert replayed == [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": QUESTION}]},
        {"type": "message", "role": "assistant",
         "content": [{"type": "output_text", "text": ANSWER}]},
    ]
    # And the conversation went on: the second question was answered.
    assert [t.text for t in a.agents.items] == [ANSWER, "Anything else?"]
    assert [t.text for t in a.users.items] == [QUESTION, "Thanks."]


async def test_when_reconnecting_fails_the_node_gives_up_and_the_job_goes_on(
    server: RealtimeTestServer, node_logs: pytest.LogCaptureFixture
) -> None:
    a = agent(server.base_url, two_questions())

    async def outage() -> None:
        server.refuse = 503
        await server.drop()

    drop = asyncio.ensure_future(_later(1.9, outage))
    runner = await a.run()
    await drop
    assert runner.node_errors == [] and runner.state == "closed"
    [error] = _messages(node_logs, logging.ERROR)
    url = server.base_url.replace("http", "ws")
    assert error.startswith(f"lost the connection to {url}/realtime?model=gpt-realtime "
                            "(the connection dropped without a close frame)")
    assert "could not get it back (1 attempt(s), the last: " in error
    assert "unavailable (HTTP 503)" in error
    assert "the agent is silent for the rest of this job" in error
    assert "max_reconnects=" in error
    # Only the first question was answered; the graph ran to the end of the input.
    assert [t.text for t in a.agents.items] == [ANSWER]
    assert a.speech.items[-1].final


async def test_a_server_that_is_not_there(node_logs: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    a = agent(f"http://127.0.0.1:{port}/v1", speech(("voice", 0.3), ("silence", 0.9)))
    runner = await a.run()
    assert runner.node_errors == []
    [error] = _messages(node_logs, logging.ERROR)
    assert error.startswith(f"openai-realtime:gpt-realtime: could not connect to "
                            f"ws://127.0.0.1:{port}/v1/realtime?model=gpt-realtime")
    assert "check that the server is running and that base_url is right" in error
    assert "gave up after 2 attempt(s)" in error
    assert a.speech.items == []


async def test_a_wrong_key_is_not_retried(
    server: RealtimeTestServer, node_logs: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    a = agent(server.base_url, speech(("voice", 0.3), ("silence", 0.9)), api_key=None,
              max_reconnects=3)
    runner = await a.run()
    assert runner.node_errors == []
    assert server.connections == 0 and server.attempts == 1
    [error] = _messages(node_logs, logging.ERROR)
    assert "the server refused the connection (HTTP 401" in error
    assert "no API key was configured: pass api_key= or set OPENAI_API_KEY" in error


def test_audio_in_another_format_is_converted_or_refused_when_the_graph_is_built() -> None:
    def wired(convert: bool) -> fk.Graph:
        g = fk.Graph("rates", convert_formats=convert)
        mic = g.add(RoomSource(sample_rate=48_000), name="mic")
        mic >> g.add(RealtimeModel(), name="model")
        return g

    [inserted] = [n for n in wired(True).spec().nodes if n.inserted]
    assert inserted.kind.endswith(".Resample") and inserted.params["rate"] == 24_000
    with pytest.raises(fk.GraphError, match=r"mic\.audio sends 48 kHz mono but model\.audio "
                                            r"expects 24 kHz mono"):
        wired(False).validate()


async def test_audio_in_another_format_at_run_time_is_dropped_with_an_error(
    server: RealtimeTestServer, node_logs: pytest.LogCaptureFixture
) -> None:
    # A resampler without a channel count declares no format, so the graph cannot check it.
    g = fk.Graph("wrong-rate")
    mic = g.add(RoomSource(sample_rate=48_000), name="mic")
    model = g.add(RealtimeModel(base_url=server.base_url, api_key=API_KEY), name="model")
    mic >> Resample(16_000) >> model >> g.add(RoomSink(), name="speaker")
    io = MemoryIO(speech(("voice", 0.3), ("silence", 0.5)), paced=True)
    runner = fk.GraphRunner(g, job=fk.JobContext(io=io))
    async with asyncio.timeout(20):
        await runner.run()
    assert runner.node_errors == []
    [error] = _messages(node_logs, logging.ERROR)
    assert "got 16 kHz mono audio, but the Realtime API takes 24 kHz mono PCM16" in error
    assert "put Resample(24_000, channels=1) before it" in error
    assert server.of_type("input_audio_buffer.append") == []


async def test_with_reconnecting_off_a_drop_ends_the_model_at_once(
    server: RealtimeTestServer, node_logs: pytest.LogCaptureFixture
) -> None:
    a = agent(server.base_url, two_questions(), max_reconnects=0)
    drop = asyncio.ensure_future(_later(1.9, server.drop))
    runner = await a.run()
    await drop
    assert runner.node_errors == []
    assert (server.attempts, server.connections) == (1, 1)
    [error] = _messages(node_logs, logging.ERROR)
    assert "could not get it back (reconnecting is off: max_reconnects=0)" in error
    assert [t.text for t in a.agents.items] == [ANSWER]


async def test_a_server_not_reached_in_time_after_the_input_ends_is_hung_up_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The input has ended and the handshake outlasts the wait for it: the node warns and
    # closes; the connection that opens after that is hung up at once, not served for ever.
    monkeypatch.setattr(realtime_node, "_SETTLE_S", 0.5)
    caplog.set_level(logging.WARNING, logger="flowkit")
    async with RealtimeTestServer(accept_delay=2.0) as late:
        a = agent(late.base_url, speech(("silence", 0.3)))
        runner = await a.run(timeout=10.0)
        assert runner.node_errors == []
        [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert "was not reached within 0.5 s of the input's end" in warning
        assert f"ws://127.0.0.1:{late.base_url.split(':')[2].split('/')[0]}/" in warning
        await asyncio.sleep(0.2)
        assert late.open_connections == 0
