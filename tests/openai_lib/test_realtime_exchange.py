"""RealtimeModel against the test Realtime server: a spoken exchange, tools, barge-in.

Real sockets and the real openai SDK, so real time (no looptime): each test runs a few
seconds of paced audio.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import numpy as np
import pytest
from fake_server import close_clients  # noqa: F401 (a fixture)
from flowkit_openai.realtime.conversation import heard_words
from flowkit_openai.testing.realtime_script import ScriptedReply, tone
from flowkit_openai.testing.realtime_server import RealtimeTestServer
from realtime_helpers import agent, get_weather
from support import Script, speech

import flowkit as fk
from flowkit.nodes.push_to_talk import PushToTalk
from flowkit.testing.memory_io import MemoryIO

pytestmark = pytest.mark.usefixtures("close_clients")

QUESTION = "What is the weather in Paris?"
ANSWER = "It is sunny in Paris today, twenty four degrees."


@pytest.fixture
async def server() -> AsyncIterator[RealtimeTestServer]:
    async with RealtimeTestServer(user_transcripts=[QUESTION, "Wait."]) as fake:
        yield fake


def _playout_events(collected: list[fk.Playout]) -> list[tuple[int, fk.PlayoutEvent]]:
    return [(p.turn_id, p.event) for p in collected]


async def test_a_spoken_question_is_answered_in_speech(server: RealtimeTestServer) -> None:
    server.replies.append(ScriptedReply(ANSWER, audio_ms=800))
    voice = speech(("silence", 0.3), ("voice", 0.8), ("silence", 1.6))
    a = agent(server.base_url, voice, voice="marin", instructions="Be brief.")
    runner = await a.run()
    assert runner.node_errors == []

    # The session was configured as asked, for 24 kHz PCM both ways.
    [session] = server.sessions
    assert session["model"] == "gpt-realtime" and session["instructions"] == "Be brief."
    assert session["audio"]["output"] == {"format": {"type": "audio/pcm", "rate": 24_000},
                                          "voice": "marin"}
    audio_in = session["audio"]["input"]
    assert audio_in["format"] == {"type": "audio/pcm", "rate": 24_000}
    assert audio_in["turn_detection"]["type"] == "server_vad"
    assert audio_in["turn_detection"]["silence_duration_ms"] == 300
    assert audio_in["transcription"] == {"model": "gpt-4o-mini-transcribe"}
    assert session["tools"] == []
    # The user's audio went up whole, resampled to 24 kHz mono, in 100 ms appends.
    appends = [e["bytes"] for e in server.of_type("input_audio_buffer.append")]
    assert all(size == 4800 for size in appends[:-1])
    assert sum(appends) / 48_000 == pytest.approx(2.7, abs=0.03)

    [user] = a.users.items
    assert (user.text, user.final, user.speaker) == (QUESTION, True, "user")
    frames = a.frames()
    assert {(f.frame.sample_rate, f.frame.num_channels) for f in frames} == {(24_000, 1)}
    assert {f.frame.samples_per_channel for f in frames} == {480}  # 20 ms each
    assert b"".join(bytes(f.frame.data) for f in frames) == tone(800)
    [turn] = {f.turn_id for f in frames}
    assert turn > user.turn_id
    assert a.speech.items[-1] == fk.AgentAudio(frame=None, turn_id=turn, final=True)
    [said] = a.agents.items
    assert (said.text, said.speaker, said.turn_id) == (ANSWER, "agent", turn)
    assert _playout_events(a.playout.items) == [
        (turn, fk.PlayoutEvent.STARTED), (turn, fk.PlayoutEvent.FINISHED)
    ]
    assert a.playout.items[-1].played_duration == pytest.approx(0.8)
    # It played after the user's turn ended (voice ends at 1.1 s, plus 300 ms of silence).
    start = a.io.played[0][0] - a.started
    assert 1.4 <= start <= 2.0
    assert a.io.played_duration == pytest.approx(0.8)
    [metrics] = a.metrics.items
    assert metrics.node == "model" and metrics.labels["status"] == "completed"
    assert metrics.labels["provider"] == "openai-realtime:gpt-realtime"
    assert 0 <= metrics.values["ttfa"] < 0.5 and metrics.values["output_tokens"] == 10
    assert a.interrupts.items == [] and server.truncations == []


@pytest.mark.parametrize("echo", [True, False], ids=["metadata", "no-metadata"])
async def test_a_tool_call_goes_through_the_router_and_the_reply_goes_on(
    server: RealtimeTestServer, echo: bool
) -> None:
    # Without its metadata echoed (some compatible servers), the response the node asked
    # for is still taken as the next step of the same reply.
    server.echo_metadata = echo

    server.replies.extend([
        ScriptedReply("Let me check.", audio_ms=400,
                      tool_call=("get_weather", json.dumps({"city": "Paris"}))),
        ScriptedReply("It is {output}.", audio_ms=600),
    ])
    voice = speech(("silence", 0.3), ("voice", 0.6), ("silence", 1.8))
    a = agent(server.base_url, voice, tools=[get_weather])
    runner = await a.run()
    assert runner.node_errors == []

    [tool] = server.sessions[0]["tools"]
    assert tool["type"] == "function" and tool["name"] == "get_weather"
    assert tool["parameters"]["properties"]["city"]["type"] == "string"
    assert server.sessions[0]["tool_choice"] == "auto"
    [call] = a.calls.items
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Paris"})
    # The result went back as a function_call_output, then the node asked for the reply.
    kinds = [e["type"] for e in server.events if e["type"] != "input_audio_buffer.append"]
    assert kinds == ["session.update", "conversation.item.create", "response.create"]
    [output] = server.of_type("conversation.item.create")
    assert output["item"] == {"type": "function_call_output", "call_id": call.call_id,
                              "output": "sunny in Paris"}
    [create] = server.of_type("response.create")
    assert create["response"]["metadata"] == {"flowkit_turn": str(call.turn_id)}
    # Both responses are one reply for the listener: one turn, one end marker, no cut.
    assert {f.turn_id for f in a.speech.items} == {call.turn_id}
    assert [f.final for f in a.speech.items].count(True) == 1 and a.speech.items[-1].final
    assert [f.segment for f in a.frames()] == [0] * 20 + [1] * 30
    assert [t.text for t in a.agents.items] == ["Let me check. It is sunny in Paris."]
    assert _playout_events(a.playout.items) == [
        (call.turn_id, fk.PlayoutEvent.STARTED), (call.turn_id, fk.PlayoutEvent.FINISHED)
    ]
    assert a.io.played_duration == pytest.approx(1.0)
    assert a.interrupts.items == [] and server.truncations == []


async def test_after_max_tool_steps_the_model_may_not_call_tools(
    server: RealtimeTestServer,
) -> None:
    @fk.function_tool
    async def lookup(key: str) -> str:
        """Look something up."""
        return key.upper()

    call = ("lookup", json.dumps({"key": "a"}))
    server.replies.extend([
        ScriptedReply("", tool_call=call),
        ScriptedReply("Got {output}.", audio_ms=300, tool_call=call),  # a call it may not make
    ])
    voice = speech(("silence", 0.2), ("voice", 0.5), ("silence", 1.2))
    a = agent(server.base_url, voice, tools=[lookup], max_tool_steps=1)
    runner = await a.run()
    assert runner.node_errors == []
    assert len(a.calls.items) == 1
    [create] = server.of_type("response.create")
    assert create["response"]["tool_choice"] == "none"
    assert [t.text for t in a.agents.items] == ["Got A."]


async def test_a_barge_in_flushes_the_reply_and_truncates_it_at_what_was_played(
    server: RealtimeTestServer,
) -> None:
    long = "One two three four five six seven eight nine ten eleven twelve."
    server.replies.extend([ScriptedReply(long, audio_ms=3000), ScriptedReply("Yes?", 400)])
    voice = speech(("silence", 0.3), ("voice", 0.6), ("silence", 1.2), ("voice", 0.5),
                   ("silence", 1.2))
    a = agent(server.base_url, voice)
    runner = await a.run()
    assert runner.node_errors == []

    first = a.frames()[0].turn_id
    [flush] = a.interrupts.items
    assert (flush.turn_id, flush.action, flush.reason) == (first, fk.InterruptAction.FLUSH,
                                                           "barge_in")
    assert a.io.cleared, "the sink was not flushed"
    cleared = a.io.cleared[0]
    heard = [frame for t, frame in a.io.played if t <= cleared]
    played = sum(f.samples_per_channel for f in heard) / 24_000
    assert 0.4 < played < 1.5  # the second utterance started about 0.9 s into the reply
    # Nothing more of the first reply played after the flush (within one frame).
    assert not [t for t, _ in a.io.played if cleared + 0.021 < t < cleared + 0.3]
    interrupted = [p for p in a.playout.items if p.event is fk.PlayoutEvent.INTERRUPTED]
    assert [(p.turn_id, pytest.approx(p.played_duration)) for p in interrupted] == [
        (first, played)
    ]
    # The server's copy of the reply was cut where the listener stopped hearing it.
    first_item = server.deltas[0][1]
    [truncate] = server.truncations
    assert (truncate["item_id"], truncate["content_index"]) == (first_item, 0)
    assert truncate["audio_end_ms"] == round(played * 1000)
    # The agent's transcript says what was heard, not what was generated.
    assert a.agents.items[0].text == heard_words(long, played / 3.0)
    assert 0 < len(a.agents.items[0].text) < len(long)
    # The second utterance got its own reply, which played whole.
    assert [t.text for t in a.users.items] == [QUESTION, "Wait."]
    assert a.agents.items[1].text == "Yes?" and a.agents.items[1].turn_id > first
    assert a.frames()[-1].turn_id == a.agents.items[1].turn_id


async def test_without_playout_reports_the_clock_decides_what_was_heard(
    server: RealtimeTestServer,
) -> None:
    long = "One two three four five six seven eight nine ten eleven twelve."
    server.replies.extend([ScriptedReply(long, audio_ms=3000), ScriptedReply("Yes?", 400)])
    voice = speech(("silence", 0.3), ("voice", 0.6), ("silence", 1.2), ("voice", 0.5),
                   ("silence", 1.2))
    a = agent(server.base_url, voice, playout=False)
    runner = await a.run()
    assert runner.node_errors == []
    cleared = a.io.cleared[0]
    played = sum(f.samples_per_channel for t, f in a.io.played if t <= cleared) / 24_000
    [truncate] = server.truncations
    # Estimated from the first frame's time: within a frame or two of what the sink played.
    assert truncate["audio_end_ms"] == pytest.approx(played * 1000, abs=60)


async def test_replies_asked_for_from_code_and_manual_turns(server: RealtimeTestServer) -> None:
    server.replies.extend([ScriptedReply("Hello! Ask me anything.", audio_ms=400),
                           ScriptedReply(ANSWER, audio_ms=400)])
    voice = speech(("silence", 0.8), ("voice", 0.5), ("silence", 1.6))
    a = agent(server.base_url, voice, turn_detection=None)
    greet = a.graph.add(
        Script((0.1, fk.ReplyRequest(instructions="Greet the user."))), name="greeter"
    )
    greet >> a.model.requests
    a.graph.add(Script((1.6, "commit")), name="push_to_talk") >> a.model.commit
    runner = await a.run()
    assert runner.node_errors == []
    assert server.sessions[0]["audio"]["input"]["turn_detection"] is None
    kinds = [e["type"] for e in server.events if e["type"] != "input_audio_buffer.append"]
    assert kinds == ["session.update", "response.create", "input_audio_buffer.commit",
                     "response.create"]
    assert server.of_type("response.create")[0]["response"]["instructions"] == "Greet the user."
    assert [t.text for t in a.agents.items] == ["Hello! Ask me anything.", ANSWER]
    assert [t.text for t in a.users.items] == [QUESTION]  # the committed item, transcribed
    assert a.io.played_duration == pytest.approx(0.8)


async def test_a_talk_button_commits_and_clears_the_models_turns(
    server: RealtimeTestServer,
) -> None:
    server.replies.append(ScriptedReply(ANSWER, audio_ms=400))
    # Speech with the button up (not sent as speech), held and let go, held and cancelled.
    voice = speech(("voice", 0.5), ("silence", 1.0), ("voice", 0.5), ("silence", 1.5),
                   ("voice", 0.4), ("silence", 1.0))
    button = PushToTalk()
    a = agent(server.base_url, voice, turn_detection=None, button=button)
    a.graph.add(Script((1.4, "start"), (2.1, "end"), (3.4, "start"), (4.0, "cancel"),
                       end_at=4.5), name="presses") >> button.presses
    runner = await a.run()
    assert runner.node_errors == []
    kinds = [e["type"] for e in server.events if e["type"] != "input_audio_buffer.append"]
    assert kinds == ["session.update", "input_audio_buffer.clear", "input_audio_buffer.commit",
                     "response.create", "input_audio_buffer.clear", "input_audio_buffer.clear"]
    # What the server had when it was committed: the held speech, not the earlier one.
    [committed] = server.committed_audio
    pcm = np.frombuffer(committed, dtype=np.int16)
    pcm = pcm[: pcm.size // 240 * 240].reshape(-1, 240)  # 10 ms windows
    loud = float((np.abs(pcm).max(axis=1) > 1000).sum()) / 100
    assert 0.4 <= loud <= 0.6, loud  # the held half second, not the earlier one
    assert [t.text for t in a.users.items] == [QUESTION]
    assert [t.text for t in a.agents.items] == [ANSWER]


async def test_what_comes_before_the_connection_is_open_waits_for_it() -> None:
    # A distant server: the handshake takes 0.6 s. The greeting asked for at once and the
    # user's audio of that time are not lost; the settings still go first.
    async with RealtimeTestServer([ScriptedReply("Hello!", audio_ms=300)],
                                  accept_delay=0.6) as slow:
        voice = speech(("silence", 1.0), ("voice", 0.3), ("silence", 1.0))
        a = agent(slow.base_url, voice, transcription_model=None)
        a.graph.add(Script((0.0, fk.ReplyRequest(instructions="Greet."))), name="greeter") \
            >> a.model.requests
        runner = await a.run()
        assert runner.node_errors == []
        kinds = [e["type"] for e in slow.events]
        assert kinds[:3] == ["session.update", "response.create", "input_audio_buffer.append"]
        appended = sum(e["bytes"] for e in slow.of_type("input_audio_buffer.append"))
        assert appended / 48_000 == pytest.approx(2.3, abs=0.03)
        assert [t.text for t in a.agents.items] == ["Hello!", "Hello from the test server."]
        assert a.users.items == []  # transcription_model=None: no user transcripts
        assert "transcription" not in slow.sessions[0]["audio"]["input"]


async def test_words_said_before_a_late_connection_are_answered_after_the_input_ends() -> None:
    # The handshake outlasts the user's audio (a distant server, or MCP servers still
    # listing their tools): the words wait in the queue and are heard and answered once the
    # connection opens, rather than dropped when the input ends.
    async with RealtimeTestServer([ScriptedReply(ANSWER, audio_ms=400)],
                                  user_transcripts=[QUESTION], accept_delay=2.5) as late:
        voice = speech(("silence", 0.2), ("voice", 0.6), ("silence", 0.8))
        a = agent(late.base_url, voice)
        runner = await a.run()
        assert runner.node_errors == []
        assert len(late.sessions) == 1
        appended = sum(e["bytes"] for e in late.of_type("input_audio_buffer.append"))
        assert appended / 48_000 == pytest.approx(1.6, abs=0.03)
        assert [t.text for t in a.users.items] == [QUESTION]
        assert [t.text for t in a.agents.items] == [ANSWER]
        assert a.io.played_duration == pytest.approx(0.4)


async def test_a_late_connection_with_nothing_to_answer_closes_soon_after_it_opens() -> None:
    # Only silence waited: nothing starts a reply, and the node closes once the server has
    # been quiet for a second, not after the 30 s a reply under way may take.
    async with RealtimeTestServer(accept_delay=1.5) as late:
        a = agent(late.base_url, speech(("silence", 0.5)))
        runner = await a.run()
        ended = asyncio.get_running_loop().time() - a.started
        assert runner.node_errors == []
        assert len(late.sessions) == 1 and late.of_type("input_audio_buffer.append")
        assert a.agents.items == []
        assert 2.5 <= ended < 6.0


async def test_closing_the_graph_mid_session_hangs_up_and_leaves_nothing_running(
    server: RealtimeTestServer,
) -> None:
    long = ScriptedReply("A long answer that is still playing.", audio_ms=5000)
    server.replies.append(long)
    voice = speech(("silence", 0.2), ("voice", 0.4), ("silence", 0.6))
    a = agent(server.base_url, voice)
    a.io = MemoryIO(voice, paced=True, live=True)  # the user stays: the input never ends
    runner = fk.GraphRunner(a.graph, job=fk.JobContext(io=a.io))
    await runner.start()
    await asyncio.sleep(1.8)  # the reply is playing
    assert a.io.played and server.open_connections == 1
    await runner.close()
    assert runner.pending_tasks() == [] and runner.live_subscriptions() == 0
    await asyncio.sleep(0.1)
    assert server.open_connections == 0


async def test_what_the_agent_sees_goes_to_the_server_before_the_users_words(
    server: RealtimeTestServer,
) -> None:
    server.replies.append(ScriptedReply(ANSWER, audio_ms=300))
    voice = speech(("silence", 0.5), ("voice", 0.8), ("silence", 1.4))
    a = agent(server.base_url, voice)
    camera = fk.Image(data=b"\xff\xd8jpeg", mime_type="image/jpeg", width=64, height=48)
    a.graph.add(Script((0.1, camera)), name="camera") >> a.model.images
    runner = await a.run()
    assert runner.node_errors == []
    [created] = server.of_type("conversation.item.create")
    assert created["item"]["content"] == [{"type": "input_image", "image_url": camera.data_url()}]
    # In the server's conversation: the image, then the user's spoken turn, then the answer.
    items = server.conversations[0].items
    assert [(item.type, item.role) for item in items] == [
        ("message", "user"), ("message", "user"), ("message", "assistant"),
    ]
    assert [item.text for item in items[1:]] == [QUESTION, ANSWER]


async def test_a_typed_turn_is_answered_in_speech(server: RealtimeTestServer) -> None:
    server.replies.append(ScriptedReply(ANSWER, audio_ms=300))
    a = agent(server.base_url, speech(("silence", 2.0)))
    typed = fk.UserTurn(turn_id=fk.new_turn_id(), text=QUESTION)
    a.graph.add(Script((0.2, typed)), name="chat") >> a.model.turns
    runner = await a.run()
    assert runner.node_errors == []
    assert server.conversations[0].messages() == [("user", QUESTION), ("assistant", ANSWER)]
    [turn] = {f.turn_id for f in a.frames()}
    assert turn == typed.turn_id  # the reply is the typed turn's
    assert a.io.played_duration == pytest.approx(0.3)
