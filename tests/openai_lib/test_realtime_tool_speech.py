"""A tool's ``ctx.say`` in a realtime graph: spoken by the TTS node in the reply waiting for it.

``router.speech >> model.tool_speech``, as with the LLM node. In a text session whose text a
TTS node speaks, the words go out in the reply that called the tool, join the server's
conversation as an assistant message and are followed like the rest of the reply; a model
that speaks itself cannot say them and warns once. The graph tests run the node, a TTS node
with a deterministic fake voice, a ToolRouter and the room sink against the test Realtime
server through the real openai SDK, in real time; the state machine's tests feed the
dialogue directly.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from fake_server import close_clients  # noqa: F401 (a fixture)
from flowkit_openai.realtime.dialogue import Dialogue
from flowkit_openai.testing.realtime_script import ScriptedReply, tone
from flowkit_openai.testing.realtime_server import RealtimeTestServer
from realtime_helpers import Agent, EffectsRecorder, agent, server_event
from support import TimedCollect, speech

import flowkit as fk
from flowkit.nodes.tools import ToolRouter
from flowkit.nodes.tts import TTS
from flowkit.testing.fakes import FakeTTS

QUESTION = "What is the weather in Paris?"
BEFORE = "Let me check the weather for you."
# No full stop: only the flush has the TTS node speak it before the reply's next words.
SAID = "One moment while I look that up"
AFTER = "It is sunny in Paris today."
# Two sentences; the first lasts 2.2 s at 0.03 s a character.
LONG = ("One two three four five six seven eight nine ten eleven twelve thirteen. "
        "Fourteen fifteen sixteen.")
AGAIN = "Yes, go on."
ARGUMENTS = json.dumps({"city": "Paris"})


def _events(playout: list[fk.Playout]) -> list[tuple[int, fk.PlayoutEvent]]:
    return [(p.turn_id, p.event) for p in playout]


def _speaking_tool(*words: str, then: float) -> fk.FunctionTool:
    """``get_weather``, which says ``words`` as it starts and answers ``then`` s later."""

    @fk.function_tool
    async def get_weather(ctx: fk.RunContext, city: str) -> str:
        """Look up today's weather for a city (slowly).

        Args:
            city: The city's name.
        """
        for said in words:
            await ctx.say(said)
        await asyncio.sleep(then)
        return f"sunny in {city}"

    return get_weather


def _with_tool_speech(a: Agent) -> Agent:
    """``a`` with its router's speech linked to the model, as a user links it."""
    router = a.graph.nodes["tools"]
    assert isinstance(router, ToolRouter)
    router.speech >> a.model.tool_speech
    return a


# -- against the test server ------------------------------------------------------------------


@pytest.mark.usefixtures("close_clients")
async def test_a_tools_words_are_spoken_in_its_reply_and_join_the_conversation() -> None:
    replies = [ScriptedReply(BEFORE, tool_call=("get_weather", ARGUMENTS)),
               ScriptedReply("It is {output} today.")]
    async with RealtimeTestServer(replies, user_transcripts=[QUESTION]) as server:
        voice = FakeTTS(seconds_per_char=0.02)
        audio = speech(("silence", 0.3), ("voice", 0.6), ("silence", 3.5))
        a = _with_tool_speech(agent(server.base_url, audio, output_modality="text",
                                    tts=TTS(voice), tools=[_speaking_tool(SAID, then=0.6)]))
        runner = await a.run()
    assert runner.node_errors == []
    assert a.texts is not None

    # At the TTS node: one reply, the tool's words as a sentence of their own, flushed, after
    # the text before the call and before the text the reply goes on with.
    [call] = a.calls.items
    turn = call.turn_id
    chunks = a.texts.items
    assert {c.turn_id for c in chunks} == {turn} and all(c.allow_interruptions for c in chunks)
    said = chunks.index(fk.TextChunk(turn_id=turn, text=SAID + " ", flush=True))
    assert "".join(c.text for c in chunks[:said]) == BEFORE + " "
    assert "".join(c.text for c in chunks[said + 1:]).strip() == AFTER
    assert [c.final for c in chunks].count(True) == 1 and chunks[-1].final
    assert voice.texts == [BEFORE, SAID, AFTER]
    # One reply for the listener, the words included.
    assert _events(a.playout.items) == [(turn, fk.PlayoutEvent.STARTED),
                                        (turn, fk.PlayoutEvent.FINISHED)]
    assert [t.text for t in a.agents.items] == [f"{BEFORE} {SAID} {AFTER}"]
    # The model's conversation: its call, what the tool said (an item the node named), the
    # output, then the rest of the reply.
    creates = server.of_type("conversation.item.create")
    assert [e["item"]["type"] for e in creates] == ["message", "function_call_output"]
    item = creates[0]["item"]
    assert item["id"].startswith("fk_said_") and item["role"] == "assistant"
    assert item["content"] == [{"type": "output_text", "text": SAID}]
    conversation = server.conversations[0]
    assert [(i.type, i.text) for i in conversation.items] == [
        ("message", QUESTION), ("message", BEFORE),
        ("function_call", f"get_weather({ARGUMENTS})"), ("message", SAID),
        ("function_call_output", "sunny in Paris"), ("message", AFTER),
    ]
    assert conversation.items[3].id == item["id"]
    assert server.deletions == []


@pytest.mark.usefixtures("close_clients")
async def test_a_reconnection_gives_the_model_back_the_tools_words_in_their_reply() -> None:
    replies = [ScriptedReply(BEFORE, tool_call=("get_weather", ARGUMENTS)),
               ScriptedReply("It is {output} today.")]
    async with RealtimeTestServer(replies, user_transcripts=[QUESTION]) as server:
        voice = FakeTTS(seconds_per_char=0.02)
        audio = speech(("silence", 0.3), ("voice", 0.6), ("silence", 5.0))
        a = _with_tool_speech(agent(server.base_url, audio, output_modality="text",
                                    tts=TTS(voice), tools=[_speaking_tool(SAID, then=0.4)]))

        async def drop_once_heard() -> None:
            # The reply is played out at about 3.5 s; the input goes on to 5.9 s.
            await asyncio.sleep(4.5)
            await server.drop()

        dropping = asyncio.ensure_future(drop_once_heard())
        runner = await a.run()
        await dropping
    assert runner.node_errors == []
    assert server.connections == 2
    # The new session was given the reply as heard: the tool's words in their place.
    assert server.conversations[1].messages() == [
        ("user", QUESTION), ("assistant", f"{BEFORE} {SAID} {AFTER}")
    ]


@pytest.mark.usefixtures("close_clients")
async def test_a_user_who_cuts_the_tools_words_short_leaves_the_model_what_was_heard() -> None:
    replies = [ScriptedReply("", tool_call=("get_weather", ARGUMENTS)), ScriptedReply(AGAIN)]
    async with RealtimeTestServer(replies, user_transcripts=[QUESTION, "Wait."]) as server:
        # Synthesis at twice the pace of playback: the sink has more than it played.
        voice = FakeTTS(seconds_per_char=0.03, frame_gap=0.01)
        # The question, then "Wait." at 2.2 s, about 0.9 s into the tool's words.
        audio = speech(("silence", 0.3), ("voice", 0.6), ("silence", 1.3), ("voice", 0.5),
                       ("silence", 2.0))
        a = _with_tool_speech(agent(server.base_url, audio, output_modality="text",
                                    tts=TTS(voice), tools=[_speaking_tool(LONG, then=2.0)]))
        runner = await a.run()
    assert runner.node_errors == []
    assert a.texts is not None

    [call] = a.calls.items
    first, second = dict.fromkeys(c.turn_id for c in a.texts.items)
    assert first == call.turn_id
    # Followed as the rest of a reply: cut by the barge-in, heard as far as the sink says.
    [flush] = a.interrupts.items
    assert (flush.turn_id, flush.reason) == (first, "barge_in")
    [cut] = [p for p in a.playout.items if p.event is fk.PlayoutEvent.INTERRUPTED]
    heard = cut.played_text
    assert cut.turn_id == first and LONG.startswith(heard) and 0 < len(heard) < len(LONG)
    # Its item is made again in its place, after the call, with the words heard.
    [said, again] = [e for e in server.of_type("conversation.item.create")
                     if e["item"]["type"] == "message"]
    [deleted] = server.deletions
    assert said["item"]["id"] == deleted["item_id"] == again["item"]["id"]
    conversation = server.conversations[0]
    [function_call] = [i for i in conversation.items if i.type == "function_call"]
    assert again["previous_item_id"] == function_call.id
    assert again["item"]["content"] == [{"type": "output_text", "text": heard}]
    assert conversation.messages() == [
        ("user", QUESTION), ("assistant", heard), ("user", "Wait."), ("assistant", AGAIN)
    ]
    assert [(t.turn_id, t.text) for t in a.agents.items] == [(first, heard), (second, AGAIN)]
    # The reply was cut: its tool's result is given to the model, but it does not go on.
    assert [e["item"]["output"] for e in server.of_type("conversation.item.create")
            if e["item"]["type"] == "function_call_output"] == ["sunny in Paris"]
    assert server.of_type("response.create") == []


@pytest.mark.usefixtures("close_clients")
async def test_a_model_that_speaks_itself_warns_once_and_sends_nothing_of_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="flowkit.node")
    replies = [ScriptedReply(BEFORE, 400, tool_call=("get_weather", ARGUMENTS)),
               ScriptedReply("It is {output} today.", 400)]
    async with RealtimeTestServer(replies, user_transcripts=[QUESTION]) as server:
        audio = speech(("silence", 0.3), ("voice", 0.6), ("silence", 2.0))
        tool = _speaking_tool(SAID, "Almost there.", then=0.3)
        a = _with_tool_speech(agent(server.base_url, audio, tools=[tool]))  # audio output
        runner = await a.run()
    assert runner.node_errors == []

    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith(f"tool 'get_weather' said {SAID!r} (ctx.say), which is dropped, "
                              "as is whatever tools say later in this run: this RealtimeModel "
                              "has no TTS node")
    assert "RealtimeModel(output_modality='text')" in warning
    assert "model.text >> tts >> speaker" in warning
    assert "have the tool return those words in its result" in warning
    assert any("'Almost there.'" in r.getMessage() for r in caplog.records
               if r.levelno == logging.DEBUG)
    # Nothing of it went anywhere; the reply went on as the model made it.
    assert [e["item"]["type"] for e in server.of_type("conversation.item.create")] == [
        "function_call_output"
    ]
    assert [(i.type, i.text) for i in server.conversations[0].items if i.type == "message"] == [
        ("message", QUESTION), ("message", BEFORE), ("message", AFTER)
    ]
    assert [t.text for t in a.agents.items] == [f"{BEFORE} {AFTER}"]


# -- the state machine alone ------------------------------------------------------------------


class _Handle:
    def cancel(self) -> None:
        pass


class _Timers:
    """``call_later`` that keeps the callbacks for the test to fire."""

    def __init__(self) -> None:
        self.callbacks: list[Callable[[], None]] = []

    def __call__(self, delay: float, callback: Callable[[], None]) -> _Handle:
        self.callbacks.append(callback)
        return _Handle()





def _dialogue(recorder: EffectsRecorder, timers: _Timers | None = None, *,
              voiced: bool = True) -> Dialogue:
    return Dialogue(recorder, url="ws://example/v1/realtime?model=m", clock=lambda: 0.0,
                    call_later=timers or (lambda delay, callback: None), voiced=voiced,
                    logger=logging.getLogger("flowkit.node.test"))


def _calling_response(dialogue: Dialogue, *, done: bool = True) -> None:
    """The server's VAD answers with a response that calls get_weather (call ``c1``)."""
    dialogue.on_event(server_event("response.created", response={"id": "r1"}))
    dialogue.on_event(server_event(
        "response.output_item.done", response_id="r1", output_index=0,
        item={"id": "i1", "type": "function_call", "call_id": "c1", "name": "get_weather",
              "arguments": ARGUMENTS},
    ))
    if done:
        done_event = server_event("response.done", response={"id": "r1", "status": "completed"})
        dialogue.on_event(done_event)


def _said(call: fk.ToolCall, text: str = SAID, **changes: Any) -> fk.ToolSpeech:
    fields: dict[str, Any] = {"turn_id": call.turn_id, "call_id": call.call_id,
                              "name": call.name, "text": text, **changes}
    return fk.ToolSpeech(**fields)


def test_words_that_come_while_the_calling_response_streams_wait_for_its_end() -> None:
    recorder = EffectsRecorder()
    dialogue = _dialogue(recorder)
    _calling_response(dialogue, done=False)
    call = recorder.call()
    dialogue.on_tool_speech(_said(call))
    # An instant tool: its result comes before the response's end, and goes out at once.
    dialogue.on_tool_result(fk.ToolResult(turn_id=call.turn_id, call_id="c1",
                                          name="get_weather", output="sunny in Paris"))
    assert recorder.sent() == ["conversation.item.create"]  # the function_call_output
    dialogue.on_event(server_event("response.done", response={"id": "r1", "status": "completed"}))
    # Then the words (on the server and for the TTS node), and only then the next response.
    chunk = fk.TextChunk(turn_id=call.turn_id, text=SAID + " ", flush=True)
    assert recorder.sent() == ["conversation.item.create", "conversation.item.create", chunk,
                               "response.create"]
    said = [m for m in recorder.log if isinstance(m, dict)][1]
    assert said["item"]["id"].startswith("fk_said_")
    assert said["item"]["content"] == [{"type": "output_text", "text": SAID}]


Case = Callable[[Dialogue, fk.ToolCall, _Timers], fk.ToolSpeech]


def _answered(dialogue: Dialogue, call: fk.ToolCall, timers: _Timers) -> fk.ToolSpeech:
    dialogue.on_tool_result(fk.ToolResult(turn_id=call.turn_id, call_id="c1",
                                          name="get_weather", output="sunny in Paris"))
    return _said(call)


def _timed_out(dialogue: Dialogue, call: fk.ToolCall, timers: _Timers) -> fk.ToolSpeech:
    [timeout] = timers.callbacks
    timeout()
    return _said(call)


def _unknown_call(dialogue: Dialogue, call: fk.ToolCall, timers: _Timers) -> fk.ToolSpeech:
    return _said(call, call_id="c9")


def _other_turn(dialogue: Dialogue, call: fk.ToolCall, timers: _Timers) -> fk.ToolSpeech:
    return _said(call, turn_id=call.turn_id + 1)


def _cut(dialogue: Dialogue, call: fk.ToolCall, timers: _Timers) -> fk.ToolSpeech:
    dialogue.on_flush(fk.Interrupt(turn_id=call.turn_id, action=fk.InterruptAction.FLUSH))
    return _said(call)


CASES: dict[str, tuple[bool, Case]] = {
    # name: (the calling response is done first, what happens before the words come)
    "answered": (True, _answered),
    "timed out": (True, _timed_out),
    "unknown call": (True, _unknown_call),
    "other turn": (True, _other_turn),
    "cut while waiting for the tool": (True, _cut),
    "cut while the calling response streams": (False, _cut),
}


@pytest.mark.parametrize("case", list(CASES))
def test_words_for_a_reply_that_moved_on_are_dropped_with_a_debug_log(
    caplog: pytest.LogCaptureFixture, case: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="flowkit.node")
    recorder, timers = EffectsRecorder(), _Timers()
    dialogue = _dialogue(recorder, timers)
    done, before = CASES[case]
    _calling_response(dialogue, done=done)
    words = before(dialogue, recorder.call(), timers)
    sent = recorder.sent()
    dialogue.on_tool_speech(words)
    # Dropped at once (not held for the end of a response), with nothing sent: no item, no
    # text for the TTS node.
    assert recorder.sent() == sent
    [dropped] = [r.getMessage() for r in caplog.records if "dropped what tool" in r.getMessage()]
    assert dropped.startswith("dropped what tool 'get_weather' said (")
    assert dropped.endswith(f"): {SAID!r}")


def test_words_held_for_a_response_that_is_then_cancelled_are_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="flowkit.node")
    recorder = EffectsRecorder()
    dialogue = _dialogue(recorder)
    _calling_response(dialogue, done=False)
    dialogue.on_tool_speech(_said(recorder.call()))
    # The response ends without going on (the server cancelled it): no tool round follows.
    dialogue.on_event(server_event("response.done", response={"id": "r1", "status": "cancelled"}))
    assert recorder.sent() == []
    [dropped] = [r.getMessage() for r in caplog.records if "dropped what tool" in r.getMessage()]
    assert "its reply ended before the response that made the call did" in dropped


# -- playout markers (ctx.wait_for_playout) ----------------------------------------------------


def test_a_marker_waits_for_the_calling_response_then_goes_to_the_tts_node() -> None:
    recorder = EffectsRecorder()
    dialogue = _dialogue(recorder)
    _calling_response(dialogue, done=False)
    call = recorder.call()
    dialogue.on_tool_speech(_said(call, text="", mark=7))
    assert recorder.sent() == []  # behind the whole response, which still streams
    dialogue.on_event(server_event("response.done", response={"id": "r1", "status": "completed"}))
    marker = fk.TextChunk(turn_id=call.turn_id, text="", flush=True, mark=7)
    assert recorder.sent() == [marker]
    # Nothing joins the server's conversation for it.
    assert not [m for m in recorder.log if isinstance(m, dict)]


def test_a_model_that_speaks_itself_puts_the_marker_behind_its_audio() -> None:
    recorder = EffectsRecorder()
    dialogue = _dialogue(recorder, voiced=False)
    _calling_response(dialogue)
    call = recorder.call()
    dialogue.on_tool_speech(_said(call, text="", mark=7))
    [marker] = [m for m in recorder.log if isinstance(m, fk.AgentAudio)]
    assert (marker.turn_id, marker.frame, marker.mark, marker.final) == (
        call.turn_id, None, 7, False
    )
    assert recorder.sent() == []  # no text, no event


@pytest.mark.parametrize("case", ["answered", "timed out", "other turn", "cut while waiting"])
def test_a_marker_for_a_reply_that_moved_on_is_dropped(case: str) -> None:
    recorder, timers = EffectsRecorder(), _Timers()
    dialogue = _dialogue(recorder, timers)
    _calling_response(dialogue)
    call = recorder.call()
    before = {"answered": _answered, "timed out": _timed_out, "other turn": _other_turn,
              "cut while waiting": _cut}[case]
    words = before(dialogue, call, timers)
    log = list(recorder.log)
    dialogue.on_tool_speech(dataclasses.replace(words, text="", mark=7))
    assert recorder.log == log


@pytest.mark.parametrize("modality", ["text", "audio"])
@pytest.mark.usefixtures("close_clients")
async def test_a_tool_that_waits_for_playout_acts_once_the_calling_words_were_heard(
    modality: str,
) -> None:
    # Against the test server, end to end: the marker goes behind the words before the call
    # (to the TTS node in a text session, behind the model's audio in one that speaks
    # itself), the speaker reaches it, and its report reaches the router.
    loop = asyncio.get_running_loop()
    acted: list[float] = []

    @fk.function_tool
    async def get_weather(ctx: fk.RunContext, city: str) -> str:
        """Look up today's weather for a city.

        Args:
            city: The city's name.
        """
        await ctx.wait_for_playout()
        acted.append(loop.time())
        return f"sunny in {city}"

    replies = [ScriptedReply(BEFORE, tool_call=("get_weather", ARGUMENTS)),
               ScriptedReply("It is {output} today.")]
    async with RealtimeTestServer(replies, user_transcripts=[QUESTION]) as server:
        audio = speech(("silence", 0.3), ("voice", 0.6), ("silence", 4.0))
        if modality == "text":
            a = agent(server.base_url, audio, output_modality="text",
                      tts=TTS(FakeTTS(seconds_per_char=0.02)), tools=[get_weather])
        else:
            a = agent(server.base_url, audio, tools=[get_weather])
        router = a.graph.nodes["tools"]
        assert isinstance(router, ToolRouter)
        router.speech >> a.model.tool_speech
        a.graph.nodes["speaker"].playout >> router.playout
        runner = await a.run()
    assert runner.node_errors == []
    [moment] = acted
    [turn] = {p.turn_id for p in a.playout.items}
    # The words before the call had all started playing when the tool acted (a paced write
    # returns as its frame starts), and the words after its result only once it had.
    before = [at for at, _ in a.io.played if at <= moment]
    assert a.io.played[len(before):]
    if modality == "text":
        heard = sum(f.samples_per_channel / f.sample_rate for _, f in a.io.played[:len(before)])
        assert heard == pytest.approx(len(BEFORE) * 0.02, abs=0.05)
    else:
        # Exactly the model's audio before the marker: none of the reply's words after it.
        marker = next(i for i, s in enumerate(a.speech.items) if s.mark)
        assert len(before) == marker
    assert _events(a.playout.items)[-1] == (turn, fk.PlayoutEvent.FINISHED)


# -- protection (ctx.disallow_interruptions) ---------------------------------------------------


def _protection(call: fk.ToolCall, **changes: Any) -> fk.ToolSpeech:
    """What ``ctx.disallow_interruptions()`` sends: no words, the flag cleared."""
    return _said(call, text="", allow_interruptions=False, **changes)


def _audio(dialogue: Dialogue, ms: int, response_id: str, item_id: str) -> None:
    dialogue.on_event(server_event(
        "response.output_audio.delta", response_id=response_id, item_id=item_id,
        output_index=0, content_index=0, delta=base64.b64encode(tone(ms)).decode(),
    ))


def _held_and_unbroken(dialogue: Dialogue, recorder: EffectsRecorder) -> None:
    """The user talks over the reply: nothing reaches the server, nothing is cut."""
    del recorder.log[:]
    dialogue.user_audio(b"\0" * 4800)
    dialogue.on_commit(respond=True)
    # Audio the server had before the protection may still be heard: no barge-in on it.
    dialogue.on_event(server_event("input_audio_buffer.speech_started", audio_start_ms=0,
                                   item_id="u1"))
    # What a key press or a typed message sends: not forced, so it leaves the reply alone.
    dialogue.on_flush(fk.Interrupt(turn_id=0, action=fk.InterruptAction.FLUSH, force=False))
    assert recorder.events() == []
    assert not [m for m in recorder.log if isinstance(m, fk.Interrupt)]


def test_a_tool_protects_its_reply_in_a_text_session_at_once() -> None:
    recorder = EffectsRecorder()
    dialogue = _dialogue(recorder)
    _calling_response(dialogue, done=False)  # the calling response still streams
    call = recorder.call()
    turn = call.turn_id
    dialogue.on_tool_speech(_protection(call))
    # At once (not behind the response, as words are), to the TTS node: an empty chunk with
    # the flag, not flushed, so the sentence being written is not cut short at the TTS node.
    assert recorder.sent() == [fk.TextChunk(turn_id=turn, text="", allow_interruptions=False)]
    assert dialogue.replies[turn].allow_interruptions is False
    _held_and_unbroken(dialogue, recorder)

    # The reply goes on after the tool's result; what it says next carries the flag too.
    dialogue.on_event(server_event("response.done", response={"id": "r1", "status": "completed"}))
    dialogue.on_tool_result(fk.ToolResult(turn_id=turn, call_id="c1", name="get_weather",
                                          output="sunny in Paris"))
    assert recorder.events() == ["conversation.item.create", "response.create"]
    del recorder.log[:]
    dialogue.on_event(server_event("response.created", response={"id": "r2"}))
    dialogue.on_event(server_event("response.output_text.delta", response_id="r2", item_id="i2",
                                   output_index=0, content_index=0, delta=AFTER))
    dialogue.on_event(server_event("response.done", response={"id": "r2", "status": "completed"}))
    assert [m for m in recorder.log if isinstance(m, fk.TextChunk)] == [
        fk.TextChunk(turn_id=turn, text=AFTER, allow_interruptions=False),
        fk.TextChunk(turn_id=turn, text="", final=True, allow_interruptions=False),
    ]
    assert recorder.events() == []  # the user's input still waits: the reply is not heard yet

    # Once the sink reports it played, the user's input goes to the server, in order.
    dialogue.on_playout(fk.Playout(turn_id=turn, event=fk.PlayoutEvent.STARTED,
                                   allow_interruptions=False))
    assert recorder.events() == []
    dialogue.on_playout(fk.Playout(turn_id=turn, event=fk.PlayoutEvent.FINISHED,
                                   played_text=AFTER, allow_interruptions=False))
    assert recorder.events() == ["audio", "input_audio_buffer.commit", "response.create"]


def test_a_tool_protects_the_reply_of_a_model_that_speaks_itself() -> None:
    recorder = EffectsRecorder()
    dialogue = _dialogue(recorder, voiced=False)
    _calling_response(dialogue, done=False)
    _audio(dialogue, 100, "r1", "i0")  # the model's words (before its call, in its place)
    dialogue.on_event(server_event("response.done", response={"id": "r1", "status": "completed"}))
    call = recorder.call()
    turn = call.turn_id
    dialogue.on_tool_speech(_protection(call))
    # A frameless marker behind the audio the speaker has, which it reports PROTECTED on.
    marker = [m for m in recorder.log if isinstance(m, fk.AgentAudio)][-1]
    assert (marker.turn_id, marker.frame, marker.final, marker.mark,
            marker.allow_interruptions) == (turn, None, False, 0, False)
    _held_and_unbroken(dialogue, recorder)

    dialogue.on_tool_result(fk.ToolResult(turn_id=turn, call_id="c1", name="get_weather",
                                          output="sunny in Paris"))
    dialogue.on_event(server_event("response.created", response={"id": "r2"}))
    _audio(dialogue, 100, "r2", "i2")
    dialogue.on_event(server_event("response.output_audio.done", response_id="r2",
                                   item_id="i2", output_index=0, content_index=0))
    dialogue.on_event(server_event("response.done", response={"id": "r2", "status": "completed"}))
    after = [m for m in recorder.log if isinstance(m, fk.AgentAudio)]
    # Its audio after the tool, and its end marker, carry the flag.
    assert after[-1].final
    assert sum(a.frame is not None for a in after) == 5  # 100 ms in 20 ms frames
    assert not any(a.allow_interruptions for a in after)
    dialogue.on_playout(fk.Playout(turn_id=turn, event=fk.PlayoutEvent.FINISHED,
                                   played_duration=0.2, allow_interruptions=False))
    assert recorder.events()[-3:] == ["audio", "input_audio_buffer.commit", "response.create"]


def test_a_reply_with_nothing_at_the_speaker_gets_the_flag_with_its_first_audio() -> None:
    recorder = EffectsRecorder()
    dialogue = _dialogue(recorder, voiced=False)
    _calling_response(dialogue)  # a call before any words
    call = recorder.call()
    dialogue.on_tool_speech(_protection(call))
    # No marker: it would open a reply at the speaker that no end marker closes.
    assert [m for m in recorder.log if isinstance(m, fk.AgentAudio)] == []
    # But the reply is protected while it waits for its tool, with nothing to hear yet.
    _held_and_unbroken(dialogue, recorder)
    dialogue.on_tool_result(fk.ToolResult(turn_id=call.turn_id, call_id="c1",
                                          name="get_weather", output="sunny in Paris"))
    dialogue.on_event(server_event("response.created", response={"id": "r2"}))
    _audio(dialogue, 40, "r2", "i2")
    first = next(m for m in recorder.log if isinstance(m, fk.AgentAudio))
    assert first.frame is not None and first.allow_interruptions is False


@pytest.mark.parametrize("case", ["answered", "timed out", "other turn",
                                  "cut while waiting for the tool"])
def test_a_protection_that_comes_after_the_reply_moved_on_is_dropped(
    caplog: pytest.LogCaptureFixture, case: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="flowkit.node")
    recorder, timers = EffectsRecorder(), _Timers()
    dialogue = _dialogue(recorder, timers)
    _calling_response(dialogue)
    call = recorder.call()
    words = CASES[case][1](dialogue, call, timers)
    log = list(recorder.log)
    dialogue.on_tool_speech(dataclasses.replace(words, text="", allow_interruptions=False))
    assert recorder.log == log  # nothing sent
    assert all(reply.allow_interruptions for reply in dialogue.replies.values())
    [dropped] = [r.getMessage() for r in caplog.records
                 if "disallow_interruptions" in r.getMessage()]
    assert dropped.startswith("dropped ctx.disallow_interruptions() of tool 'get_weather'")
    dialogue.user_audio(b"\0" * 4800)  # nothing holds the user's input back
    assert recorder.events()[-1] == "audio"


def _protecting_tool(*, protect: bool) -> fk.FunctionTool:
    """``get_weather``, which protects its reply (or not) and answers 0.3 s later."""

    @fk.function_tool
    async def get_weather(ctx: fk.RunContext, city: str) -> str:
        """Look up today's weather for a city (a booking-like step that must not be cut).

        Args:
            city: The city's name.
        """
        if protect:
            ctx.disallow_interruptions()
        await asyncio.sleep(0.3)
        return f"sunny in {city}"

    return get_weather


@pytest.mark.parametrize("modality", ["audio", "text"])
@pytest.mark.parametrize("protect", [True, False])
@pytest.mark.usefixtures("close_clients")
async def test_speech_over_a_reply_a_tool_protected_is_answered_after_it(
    modality: str, protect: bool
) -> None:
    # Against the test server, end to end: the user says "Wait." while the words after the
    # tool's result play. Protected, the reply plays whole and "Wait." is heard and answered
    # after it; not protected (the control), the same speech cuts it.
    replies = [ScriptedReply(BEFORE, 1000, tool_call=("get_weather", ARGUMENTS)),
               ScriptedReply("It is {output} today.", 1500), ScriptedReply(AGAIN, 500)]
    async with RealtimeTestServer(replies, user_transcripts=[QUESTION, "Wait."]) as server:
        audio = speech(("silence", 0.3), ("voice", 0.6), ("silence", 1.8), ("voice", 0.4),
                       ("silence", 3.0))
        tool = _protecting_tool(protect=protect)
        if modality == "text":
            # 0.04 s a character: BEFORE lasts 1.3 s, the words after the result 1.1 s.
            a = agent(server.base_url, audio, output_modality="text",
                      tts=TTS(FakeTTS(seconds_per_char=0.04)), tools=[tool])
        else:
            a = agent(server.base_url, audio, tools=[tool])
        a = _with_tool_speech(a)
        users = a.graph.add(TimedCollect(), name="user_times")
        heard = a.graph.add(TimedCollect(), name="playout_times")
        a.model.user_state >> users
        a.graph.nodes["speaker"].playout >> heard
        runner = await a.run()
    assert runner.node_errors == []
    [call] = a.calls.items
    turn = call.turn_id
    events = [p.event for p in a.playout.items if p.turn_id == turn]
    speaking = [t for t, s in users.items if s.state is fk.UserStateKind.SPEAKING]
    messages = server.conversations[0].messages()
    if not protect:
        assert events[-1] is fk.PlayoutEvent.INTERRUPTED
        assert [i.turn_id for i in a.interrupts.items] == [turn]
        assert messages[-2:] == [("user", "Wait."), ("assistant", AGAIN)]
        return
    # The speaker was told (PROTECTED, or a STARTED that says so if the protection came
    # before the reply's first audio), and the reply played to its end.
    reports = [p for p in a.playout.items if p.turn_id == turn]
    told = next(p for p in reports if not p.allow_interruptions)
    assert told.event in (fk.PlayoutEvent.PROTECTED, fk.PlayoutEvent.STARTED)
    assert events[-1] is fk.PlayoutEvent.FINISHED and not reports[-1].allow_interruptions
    assert a.interrupts.items == []
    [finished_at] = [t for t, p in heard.items
                     if p.turn_id == turn and p.event is fk.PlayoutEvent.FINISHED]
    # "Wait." reached the server only once the reply had played, then was answered.
    assert speaking[-1] > finished_at
    assert messages == [("user", QUESTION), ("assistant", BEFORE),
                        ("assistant", AFTER), ("user", "Wait."), ("assistant", AGAIN)]
    # None of the user's audio was dropped.
    appended = sum(e["bytes"] for e in server.of_type("input_audio_buffer.append"))
    assert appended / 48_000 == pytest.approx(6.1, abs=0.03)
