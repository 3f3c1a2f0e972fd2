"""A text realtime model spoken by a TTS node: RealtimeModel(output_modality="text") -> TTS.

LiveKit Agents' realtime model with ``modalities=["text"]`` and a TTS of the user's: the
model hears the user and writes, a flowkit TTS node (with a deterministic fake voice) speaks,
the room sink plays and reports back. Against the test Realtime server through the real
openai SDK, in real time (a real socket: no looptime).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import pytest
from fake_server import close_clients  # noqa: F401 (a fixture)
from flowkit_openai.realtime import RealtimeModel
from flowkit_openai.testing.realtime_script import ScriptedReply
from flowkit_openai.testing.realtime_server import RealtimeTestServer
from realtime_helpers import API_KEY, Agent, agent
from support import speech

import flowkit as fk
from flowkit.nodes.room import RoomSink, RoomSource
from flowkit.nodes.tts import TTS
from flowkit.testing.fakes import FakeTTS
from flowkit.tools.function_tool import FunctionTool

pytestmark = pytest.mark.usefixtures("close_clients")

QUESTION = "What is the weather in Paris?"
ANSWER = "It is sunny in Paris today."
# Sentences the TTS node speaks one by one; the first lasts 2.8 s at 0.04 s a character.
FIRST = "One two three four five six seven eight nine ten eleven twelve thirteen."
LONG = f"{FIRST} Fourteen fifteen sixteen seventeen. Eighteen nineteen twenty."
AGAIN = "Yes, go on."


@pytest.fixture
async def server() -> AsyncIterator[RealtimeTestServer]:
    async with RealtimeTestServer(user_transcripts=[QUESTION, "Wait."]) as fake:
        yield fake


def _question(after: float = 2.0) -> list[object]:
    return speech(("silence", 0.3), ("voice", 0.6), ("silence", after))


def _barge_in() -> list[object]:
    # The question, then "Wait." about 0.9 s into the spoken answer.
    return speech(("silence", 0.3), ("voice", 0.6), ("silence", 1.2), ("voice", 0.5),
                  ("silence", 1.5))


def _weather_round(
    server: RealtimeTestServer, before: str, get_weather: FunctionTool
) -> tuple[Agent, FakeTTS]:
    """A text session spoken by a TTS node, the model scripted for one tool round.

    It writes ``before`` and calls ``get_weather`` for Paris, then says "It is {output}
    today." with the tool's result.
    """
    server.replies.extend([
        ScriptedReply(before, tool_call=("get_weather", json.dumps({"city": "Paris"}))),
        ScriptedReply("It is {output} today."),
    ])
    voice = FakeTTS(seconds_per_char=0.03)
    a = agent(server.base_url, _question(3.0), tools=[get_weather], output_modality="text",
              tts=TTS(voice))
    return a, voice


def _events(playout: list[fk.Playout]) -> list[tuple[int, fk.PlayoutEvent]]:
    return [(p.turn_id, p.event) for p in playout]


async def test_a_text_reply_is_spoken_by_the_tts_node(server: RealtimeTestServer) -> None:
    server.replies.append(ScriptedReply(ANSWER))
    voice = FakeTTS(seconds_per_char=0.03)
    a = agent(server.base_url, _question(), output_modality="text", tts=TTS(voice))
    runner = await a.run()
    assert runner.node_errors == []
    assert a.texts is not None

    # The reply went out as the LLM node sends one: deltas of one turn, then a final chunk.
    chunks = a.texts.items
    [turn] = {c.turn_id for c in chunks}
    assert "".join(c.text for c in chunks).strip() == ANSWER
    assert [c.final for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert chunks[-1].text == "" and all(c.allow_interruptions for c in chunks)
    # The TTS node spoke it, and the sink played that audio; the model made none itself.
    assert voice.texts == [ANSWER]
    assert a.speech.items == [] and server.deltas == []
    assert a.io.played_duration == pytest.approx(voice.audio_duration(ANSWER), abs=0.021)
    assert _events(a.playout.items) == [(turn, fk.PlayoutEvent.STARTED),
                                        (turn, fk.PlayoutEvent.FINISHED)]
    # The agent's state follows the TTS's playout, as it follows the model's own speech.
    assert a.agent_state_changes() == [
        ("listening", 0), ("thinking", turn), ("speaking", turn), ("listening", turn)
    ]
    # What was heard, once it was heard (no interims of text not yet spoken).
    assert a.agents.items == [fk.Transcript(turn_id=turn, text=ANSWER, speaker="agent")]
    assert server.truncations == [] and server.deletions == []
    assert server.conversations[0].messages() == [("user", QUESTION), ("assistant", ANSWER)]


async def test_a_barge_in_stops_the_tts_and_the_model_keeps_what_was_heard(
    server: RealtimeTestServer,
) -> None:
    server.replies.extend([ScriptedReply(LONG), ScriptedReply(AGAIN)])
    # Synthesis at twice the pace of playback: the barge-in (0.9 s into the answer) finds
    # the TTS node still at the first sentence, and the sink with more of it than played.
    voice = FakeTTS(seconds_per_char=0.04, frame_gap=0.01)
    a = agent(server.base_url, _barge_in(), output_modality="text", tts=TTS(voice))
    runner = await a.run()
    assert runner.node_errors == []
    assert a.texts is not None

    first, second = dict.fromkeys(c.turn_id for c in a.texts.items)
    [flush] = a.interrupts.items
    assert (flush.turn_id, flush.action, flush.reason) == (first, fk.InterruptAction.FLUSH,
                                                           "barge_in")
    # The TTS node's request for the sentence under way was cancelled, the rest never made.
    assert voice.texts == [FIRST, AGAIN]
    assert voice.requests[0].cancelled and not voice.requests[0].completed
    # The sink stopped within a frame, and reported the words heard.
    [cleared] = a.io.cleared
    assert not [t for t, _ in a.io.played if cleared + 0.021 < t < cleared + 0.3]
    [cut] = [p for p in a.playout.items if p.event is fk.PlayoutEvent.INTERRUPTED]
    heard = cut.played_text
    assert cut.turn_id == first and FIRST.startswith(heard) and 0 < len(heard) < len(FIRST)
    # The server's item says only that: deleted, and made again in its place with the
    # words heard (the API truncates audio only, and this item has none).
    conversation = server.conversations[0]
    question_item = conversation.items[0].id
    [deleted] = server.deletions
    [create] = server.of_type("conversation.item.create")
    assert create["item"]["id"] == deleted["item_id"]
    assert create["previous_item_id"] == question_item
    assert create["item"]["content"] == [{"type": "output_text", "text": heard}]
    assert server.truncations == []
    assert conversation.messages() == [
        ("user", QUESTION), ("assistant", heard), ("user", "Wait."), ("assistant", AGAIN)
    ]
    # The transcripts and the states say the same.
    assert [(t.turn_id, t.text, t.final) for t in a.agents.items] == [
        (first, heard, True), (second, AGAIN, True)
    ]
    assert a.agent_state_changes() == [
        ("listening", 0),
        ("thinking", first), ("speaking", first), ("listening", first),  # cut by the user
        ("thinking", second), ("speaking", second), ("listening", second),
    ]


async def test_a_reply_cut_before_any_of_it_played_leaves_the_conversation(
    server: RealtimeTestServer,
) -> None:
    server.replies.extend([ScriptedReply(LONG), ScriptedReply(AGAIN)])
    # The first synthesis never answers: nothing of the first reply reaches the sink, which
    # reports it ended when the flush names it, with nothing played.
    voice = FakeTTS(seconds_per_char=0.03, hang=[0])
    a = agent(server.base_url, _barge_in(), output_modality="text", tts=TTS(voice))
    runner = await a.run()
    assert runner.node_errors == []
    assert a.texts is not None

    first, second = dict.fromkeys(c.turn_id for c in a.texts.items)
    assert [i.turn_id for i in a.interrupts.items] == [first]
    assert voice.requests[0].cancelled  # the flush closed the hanging request
    [cut] = [p for p in a.playout.items if p.turn_id == first]
    assert (cut.event, cut.played_text, cut.played_duration) == (
        fk.PlayoutEvent.INTERRUPTED, "", 0.0
    )
    # Never heard: deleted from the server's conversation, not made again.
    [deleted] = server.deletions
    assert server.of_type("conversation.item.create") == []
    assert server.conversations[0].messages() == [
        ("user", QUESTION), ("user", "Wait."), ("assistant", AGAIN)
    ]
    assert deleted["item_id"] not in {item.id for item in server.conversations[0].items}
    assert [(t.turn_id, t.text) for t in a.agents.items] == [(second, AGAIN)]
    assert a.agent_state_changes() == [
        ("listening", 0), ("thinking", first), ("listening", first),
        ("thinking", second), ("speaking", second), ("listening", second),
    ]


async def test_a_tool_round_is_one_spoken_reply_whose_first_sentence_does_not_wait(
    server: RealtimeTestServer,
) -> None:
    loop = asyncio.get_running_loop()
    returned: list[float] = []

    @fk.function_tool
    async def get_weather(city: str) -> str:
        """Look up today's weather for a city (slowly).

        Args:
            city: The city's name.
        """
        await asyncio.sleep(0.8)
        returned.append(loop.time())
        return f"sunny in {city}"

    before = "Let me check the weather for you."
    a, voice = _weather_round(server, before, get_weather)
    runner = await a.run()
    assert runner.node_errors == []
    assert a.texts is not None

    [call] = a.calls.items
    after = "It is sunny in Paris today."
    chunks = a.texts.items
    assert {c.turn_id for c in chunks} == {call.turn_id}
    assert " ".join("".join(c.text for c in chunks).split()) == f"{before} {after}"
    assert [c.final for c in chunks].count(True) == 1 and chunks[-1].final
    assert voice.texts == [before, after]
    # The sentence before the call was spoken while the tool ran, not after its result.
    [done] = returned
    assert a.io.played[0][0] < done - 0.3
    # One reply for the listener: one playout, one transcript, one speaking stretch.
    assert _events(a.playout.items) == [(call.turn_id, fk.PlayoutEvent.STARTED),
                                        (call.turn_id, fk.PlayoutEvent.FINISHED)]
    assert [t.text for t in a.agents.items] == [f"{before} {after}"]
    assert a.agent_state_changes() == [
        ("listening", 0), ("thinking", call.turn_id), ("speaking", call.turn_id),
        ("listening", call.turn_id),
    ]
    assert server.deletions == [] and server.truncations == []
    assert [(i.type, i.text) for i in server.conversations[0].items] == [
        ("message", QUESTION), ("message", before),
        ("function_call", 'get_weather({"city": "Paris"})'),
        ("function_call_output", "sunny in Paris"), ("message", after),
    ]


def test_a_model_that_speaks_itself_has_no_text_for_a_tts_node() -> None:
    g = fk.Graph("misuse")
    model = g.add(RealtimeModel(api_key=API_KEY), name="model")  # output_modality="audio"
    tts = g.add(TTS(FakeTTS()), name="tts")
    speaker = g.add(RoomSink(), name="speaker")
    tts >> speaker

    model.text >> tts
    [problem] = [p for p in g.problems() if p.kind is fk.ProblemKind.INVALID_LINK]
    assert problem.nodes == ("model", "tts")
    message = problem.message
    assert message.startswith("model.text >> tts.text: RealtimeModel 'model' speaks its replies")
    assert "output_modality='text'" in message and "model >> speaker" in message
    with pytest.raises(fk.GraphError, match=r"model\.text >> tts\.text: RealtimeModel"):
        g.validate()

    # Linked by name, the same problem (the port exists; this model never writes on it).
    by_name = fk.Graph("by-name")
    named = by_name.add(RealtimeModel(api_key=API_KEY), name="model")
    by_name.connect("model.text", by_name.add(TTS(FakeTTS()), name="tts"))
    assert [p.message for p in by_name.problems() if p.nodes == ("model", "tts")] == [message]
    assert "text" in named.outputs

    # Writing text, the same model has the output, and the link is valid.
    ok = fk.Graph("text-model")
    writer = ok.add(RealtimeModel(api_key=API_KEY, output_modality="text"), name="model")
    mic = ok.add(RoomSource(sample_rate=24_000), name="mic")
    mic >> writer
    writer.text >> ok.add(TTS(FakeTTS()), name="tts") >> ok.add(RoomSink(), name="speaker")
    assert ok.problems() == []


async def test_without_playout_reports_the_reply_is_spoken_but_not_followed(
    server: RealtimeTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="flowkit.node")
    server.replies.append(ScriptedReply(ANSWER))
    voice = FakeTTS(seconds_per_char=0.03)
    a = agent(server.base_url, _question(), output_modality="text", tts=TTS(voice),
              playout=False)
    runner = await a.run()
    assert runner.node_errors == []

    # Spoken all the same, but nothing says when: the node warns at the start, the agent
    # never shows speaking, and the reply counts as heard once written.
    assert voice.texts == [ANSWER] and a.io.played
    [warning] = [r.getMessage() for r in caplog.records if "playout" in r.getMessage()]
    assert "model.text feeds a TTS node" in warning and "speaker >> model.playout" in warning
    [turn] = {s.turn_id for s in a.agent_states.items if s.turn_id}
    assert a.agent_state_changes() == [("listening", 0), ("thinking", turn), ("listening", turn)]
    assert [t.text for t in a.agents.items] == [ANSWER]


async def test_unfinished_text_before_a_tool_call_is_flushed_to_the_tts_node_for_the_round(
    server: RealtimeTestServer,
) -> None:
    loop = asyncio.get_running_loop()
    returned: list[float] = []
    seen: list[list[fk.TextChunk]] = []  # what the TTS input had when the tool returned

    @fk.function_tool
    async def get_weather(city: str) -> str:
        """Look up today's weather for a city (slowly).

        Args:
            city: The city's name.
        """
        await asyncio.sleep(1.0)
        assert a.texts is not None
        seen.append(list(a.texts.items))
        returned.append(loop.time())
        return f"sunny in {city}"

    # No full stop: the TTS node's sentence splitter would hold it for the sentence to go
    # on, that is until the words after the tool's result, were it not flushed.
    before = "Let me check the weather"
    after = "It is sunny in Paris today."
    a, voice = _weather_round(server, before, get_weather)
    runner = await a.run()
    assert runner.node_errors == []
    assert a.texts is not None

    # The reply's text, then an empty flushed chunk of its turn (as the LLM node sends before
    # a tool round), then the text after the result, then the final chunk.
    [call] = a.calls.items
    turn = call.turn_id
    chunks = a.texts.items
    assert {c.turn_id for c in chunks} == {turn} and all(c.allow_interruptions for c in chunks)
    flush = fk.TextChunk(turn_id=turn, text="", flush=True)
    assert chunks.count(flush) == 1 and [c.flush for c in chunks].count(True) == 1
    at = chunks.index(flush)
    assert "".join(c.text for c in chunks[:at]) == before + " "
    assert "".join(c.text for c in chunks[at + 1:]).strip() == after
    assert [c.final for c in chunks].count(True) == 1 and chunks[-1].final
    # The flush reached the TTS input before the tool's result went back to the model (and
    # so before any text of the response that uses it).
    [so_far] = seen
    assert so_far == chunks[:at + 1]
    # So the TTS node spoke the unfinished sentence while the tool ran, on its own.
    assert voice.texts == [before, after]
    [done] = returned
    assert a.io.played[0][0] < done - 0.3
    # The empty chunk carries no words: the reply is heard, and kept, as written.
    assert _events(a.playout.items) == [(turn, fk.PlayoutEvent.STARTED),
                                        (turn, fk.PlayoutEvent.FINISHED)]
    assert [t.text for t in a.agents.items] == [f"{before} {after}"]
    assert server.deletions == [] and server.truncations == []
    assert [(i.type, i.text) for i in server.conversations[0].items] == [
        ("message", QUESTION), ("message", before),
        ("function_call", 'get_weather({"city": "Paris"})'),
        ("function_call_output", "sunny in Paris"), ("message", after),
    ]
