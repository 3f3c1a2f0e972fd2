"""The realtime node's state machine, fed server events directly (no socket, no graph).

The events are parsed by the openai SDK's own ``parse_event``, as the node receives them.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
from collections.abc import Callable
from typing import Any, cast

import pytest
from flowkit_openai.realtime.conversation import Reply, SpokenItem
from flowkit_openai.realtime.dialogue import Dialogue
from flowkit_openai.realtime.events import Event
from flowkit_openai.testing.realtime_script import tone
from openai.resources.realtime.realtime import AsyncRealtimeConnection

import flowkit as fk

URL = "ws://example/v1/realtime?model=m"


class Recorder:
    """The dialogue's effects, recorded."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.out: list[Any] = []
        self.states: list[fk.AgentState | fk.UserState] = []
        self.handoffs: list[Any] = []

    def send(self, event: dict[str, Any]) -> None:
        self.sent.append(event)

    def speak(self, audio: fk.AgentAudio) -> None:
        self.out.append(audio)

    user_transcript = agent_transcript = tool_call = interrupt = metrics = speak

    def agent_state(self, state: fk.AgentState) -> None:
        self.states.append(state)

    user_state = agent_state

    def handoff(self, agent: Any) -> None:
        self.handoffs.append(agent)


class Timers:
    """A call_later that runs nothing until told to."""

    def __init__(self) -> None:
        self.pending: list[tuple[float, Callable[[], None]]] = []

    def __call__(self, delay: float, callback: Callable[[], None]) -> Any:
        self.pending.append((delay, callback))

        class Handle:
            def cancel(self) -> None:
                pass

        return Handle()


def event(**fields: Any) -> Event:
    return AsyncRealtimeConnection.parse_event(cast(Any, None), json.dumps(fields))


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def timers() -> Timers:
    return Timers()


@pytest.fixture
def dialogue(recorder: Recorder, timers: Timers) -> Dialogue:
    return Dialogue(recorder, url=URL, clock=lambda: 0.0, call_later=timers,
                    logger=logging.getLogger("flowkit.node.test"), tool_result_timeout=5.0)


def _respond(d: Dialogue, response_id: str = "r1", metadata: dict[str, str] | None = None) -> None:
    d.on_event(event(type="response.created", event_id="e",
                     response={"id": response_id, "metadata": metadata}))


def _audio(d: Dialogue, ms: int, response_id: str = "r1", item_id: str = "i1") -> None:
    d.on_event(event(type="response.output_audio.delta", event_id="e", response_id=response_id,
                     item_id=item_id, output_index=0, content_index=0,
                     delta=base64.b64encode(tone(ms)).decode()))


def _done(d: Dialogue, status: str = "completed", response_id: str = "r1", **extra: Any) -> None:
    d.on_event(event(type="response.done", event_id="e",
                     response={"id": response_id, "status": status, **extra}))


def test_a_malformed_or_unknown_event_is_skipped_and_logged(
    dialogue: Dialogue, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="flowkit.node")
    _respond(dialogue)
    dialogue.on_event(event(type="response.output_audio.delta", event_id="e", response_id="r1",
                            delta="AAAA"))
    dialogue.on_event(event(type="something.new", event_id="e"))
    assert [r.getMessage() for r in caplog.records] == [
        f"the server at {URL} sent a malformed event (response.output_audio.delta has no "
        "item_id); skipped. Check that base_url points at a server that speaks the GA "
        "Realtime API"
    ]
    assert recorder.out == []


def test_a_failed_response_is_logged_and_ends_the_reply(
    dialogue: Dialogue, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="flowkit.node")
    _respond(dialogue)
    _audio(dialogue, 100)
    _done(dialogue, "failed", status_details={
        "type": "failed",
        "error": {"type": "invalid_request_error", "code": "rate_limit_exceeded",
                  "message": "Rate limit reached."}})
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert error.getMessage() == (
        f"the server at {URL} failed response r1 (invalid_request_error/rate_limit_exceeded): "
        "Rate limit reached.; check the account's quota and rate limits; the conversation "
        "goes on"
    )
    audio = [m for m in recorder.out if isinstance(m, fk.AgentAudio)]
    assert len(audio) == 6 and audio[-1].final and audio[-1].frame is None
    [metrics] = [m for m in recorder.out if isinstance(m, fk.Metrics)]
    assert metrics.labels == {"response_id": "r1", "status": "failed"}


def test_an_error_event_names_the_client_event_it_answers(
    dialogue: Dialogue, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="flowkit.node")
    dialogue.send({"type": "conversation.item.truncate", "item_id": "i9", "content_index": 0,
                   "audio_end_ms": 5000})
    dialogue.send({"type": "response.cancel"})
    truncate_id, cancel_id = "fk_1", "fk_2"
    dialogue.on_event(event(type="error", event_id="e", error={
        "type": "invalid_request_error", "code": "invalid_value", "param": "audio_end_ms",
        "message": "Audio content of 1200ms is already shorter than 5000ms",
        "event_id": truncate_id}))
    dialogue.on_event(event(type="error", event_id="e", error={
        "type": "invalid_request_error", "code": "response_cancel_not_active",
        "message": "Cancellation failed: no active response found", "event_id": cancel_id}))
    first, second = caplog.records
    assert first.levelno == logging.ERROR and first.getMessage() == (
        f"the server at {URL} answered conversation.item.truncate with "
        "invalid_request_error/invalid_value (parameter audio_end_ms): Audio content of 1200ms "
        "is already shorter than 5000ms; the model's context may keep words the listener did "
        "not hear; nothing else is affected"
    )
    assert second.levelno == logging.DEBUG  # a harmless race


def test_the_cut_points_of_a_reply_of_two_items() -> None:
    reply = Reply(1, items=[SpokenItem("a", audio_s=0.5), SpokenItem("b", audio_s=0.3)])
    assert reply.cut_points(0.2) == [("a", 200), ("b", 0)]
    assert reply.cut_points(0.6) == [("b", 100)]
    assert reply.cut_points(0.8) == []
    reply.items[0].transcript = ["One two three four."]
    reply.items[1].transcript = ["Five six."]
    reply.cut, reply.played_s = True, 0.65
    assert reply.heard() == "One two three four. Five"


def test_a_tool_that_does_not_answer_in_time_gets_an_error_result(
    dialogue: Dialogue, recorder: Recorder, timers: Timers
) -> None:
    _respond(dialogue)
    dialogue.on_event(event(type="response.output_item.done", event_id="e", response_id="r1",
                            output_index=0, item={"type": "function_call", "id": "f1",
                                                  "call_id": "c1", "name": "slow",
                                                  "arguments": "{}"}))
    _done(dialogue)
    [call] = [m for m in recorder.out if isinstance(m, fk.ToolCall)]
    assert recorder.sent == [] and dialogue.busy
    [(delay, expire)] = timers.pending
    assert delay == 5.0
    expire()
    output, create = recorder.sent
    assert output["item"] == {"type": "function_call_output", "call_id": "c1",
                              "output": "error: the tool 'slow' gave no result within 5 s"}
    assert create["type"] == "response.create"
    assert create["response"]["metadata"] == {"flowkit_turn": str(call.turn_id)}
    # The late result is dropped: the model has its answer already. Its handoff is still
    # followed: the ToolRouter switched its tools when it sent it.
    agent = object()
    dialogue.on_tool_result(fk.ToolResult(call_id="c1", name="slow", output="late",
                                          handoff=agent))
    assert len(recorder.sent) == 2
    assert recorder.handoffs == [agent]


def test_a_result_of_the_routers_own_call_is_a_reply_of_its_own(
    dialogue: Dialogue, recorder: Recorder
) -> None:
    call = fk.ToolCall(turn_id=fk.new_turn_id(), call_id="fk_1", name="book",
                       arguments='{"day": "Friday"}')
    ended = object()
    dialogue.on_tool_result(fk.ToolResult(
        turn_id=call.turn_id, call_id="fk_1", name="book", output="not booked", is_error=True,
        handoff=ended, call=call,
    ))
    made, output, create = recorder.sent
    assert made["item"] == {"type": "function_call", "call_id": "fk_1", "name": "book",
                            "arguments": '{"day": "Friday"}'}
    assert output["item"] == {"type": "function_call_output", "call_id": "fk_1",
                              "output": "error: not booked"}
    assert create["response"]["metadata"] == {"flowkit_turn": str(call.turn_id)}
    assert recorder.handoffs == [ended]
    # With stop_response the call and its output go to the server, and no response.
    quiet = dataclasses.replace(call, call_id="fk_2")
    dialogue.on_tool_result(fk.ToolResult(
        turn_id=quiet.turn_id, call_id="fk_2", name="book", output="", stop_response=True,
        call=quiet,
    ))
    assert [e["item"]["type"] for e in recorder.sent[3:]] == [
        "function_call", "function_call_output",
    ]


def test_a_tool_result_with_a_handoff_switches_agents(
    dialogue: Dialogue, recorder: Recorder
) -> None:
    _respond(dialogue)
    dialogue.on_event(event(type="response.output_item.done", event_id="e", response_id="r1",
                            output_index=0, item={"type": "function_call", "id": "f1",
                                                  "call_id": "c1", "name": "transfer",
                                                  "arguments": "{}"}))
    _done(dialogue)
    agent = object()
    dialogue.on_tool_result(fk.ToolResult(call_id="c1", name="transfer", output="ok",
                                          handoff=agent))
    assert recorder.handoffs == [agent]
    assert [e["type"] for e in recorder.sent] == ["conversation.item.create", "response.create"]


def test_a_refused_response_create_ends_the_reply_waiting_for_it(
    dialogue: Dialogue, recorder: Recorder
) -> None:
    _respond(dialogue)
    _audio(dialogue, 40)
    dialogue.on_event(event(type="response.output_item.done", event_id="e", response_id="r1",
                            output_index=0, item={"type": "function_call", "id": "f1",
                                                  "call_id": "c1", "name": "t",
                                                  "arguments": "{}"}))
    _done(dialogue)
    dialogue.on_tool_result(fk.ToolResult(call_id="c1", name="t", output="ok"))
    create = recorder.sent[-1]
    assert create["type"] == "response.create" and dialogue.busy
    dialogue.on_event(event(type="error", event_id="e", error={
        "type": "invalid_request_error", "code": "conversation_already_has_active_response",
        "message": "Conversation already has an active response", "event_id": create["event_id"]}))
    assert not dialogue.busy
    assert recorder.out[-1] == fk.AgentAudio(frame=None, turn_id=create_turn(create), final=True)


def create_turn(create: dict[str, Any]) -> int:
    return int(create["response"]["metadata"]["flowkit_turn"])


def test_user_transcripts_interim_then_final(dialogue: Dialogue, recorder: Recorder) -> None:
    dialogue.on_event(event(type="input_audio_buffer.speech_started", event_id="e",
                            audio_start_ms=0, item_id="u1"))
    for delta in ("What is", " the weather"):
        dialogue.on_event(event(type="conversation.item.input_audio_transcription.delta",
                                event_id="e", item_id="u1", content_index=0, delta=delta))
    dialogue.on_event(event(type="conversation.item.input_audio_transcription.completed",
                            event_id="e", item_id="u1", content_index=0,
                            transcript="What is the weather?",
                            usage={"type": "duration", "seconds": 1.0}))
    said = [(t.text, t.final) for t in recorder.out if isinstance(t, fk.Transcript)]
    assert said == [("What is", False), ("What is the weather", False),
                    ("What is the weather?", True)]
    assert len({t.turn_id for t in recorder.out}) == 1
    assert [(e.role, e.text) for e in dialogue.history.messages()] == [
        ("user", "What is the weather?")
    ]


def _states(recorder: Recorder, kind: type) -> list[tuple[str, int]]:
    return [(str(s.state), s.turn_id) for s in recorder.states if isinstance(s, kind)]


def test_a_barge_in_on_a_reply_being_made_makes_the_agent_listen_at_once(
    dialogue: Dialogue, recorder: Recorder
) -> None:
    _respond(dialogue)
    [reply] = dialogue.replies
    dialogue.on_event(event(type="input_audio_buffer.speech_started", event_id="e",
                            audio_start_ms=0, item_id="u1"))
    # The reply is still being made (no response.done yet), but it was cut: not thinking.
    assert _states(recorder, fk.AgentState) == [("listening", 0), ("thinking", reply),
                                                ("listening", reply)]
    _audio(dialogue, 100)  # late audio of the cut reply
    dialogue.on_event(event(type="response.output_text.delta", event_id="e", response_id="r1",
                            item_id="i1", output_index=0, content_index=0, delta="late"))
    _done(dialogue, "cancelled")
    assert _states(recorder, fk.AgentState)[-1] == ("listening", reply)
    assert len(recorder.states) == 4  # the user speaking, and nothing more for the agent
    dialogue.on_event(event(type="input_audio_buffer.speech_stopped", event_id="e",
                            audio_end_ms=900, item_id="u1"))
    (speaking, turn), (listening, same) = _states(recorder, fk.UserState)
    assert (speaking, listening) == ("speaking", "listening")
    assert turn == same > reply  # the user's new turn, from speech_started
    assert [m for m in recorder.out if isinstance(m, (fk.AgentAudio, fk.Transcript))] == []


def test_the_sinks_reports_make_the_agent_speak_pause_and_listen(
    dialogue: Dialogue, recorder: Recorder
) -> None:
    dialogue.on_request(fk.ReplyRequest(turn_id=7, instructions="Greet."))
    assert _states(recorder, fk.AgentState) == [("listening", 0), ("thinking", 7)]
    _respond(dialogue, metadata={"flowkit_turn": "7"})
    _audio(dialogue, 200)
    _done(dialogue)
    assert _states(recorder, fk.AgentState)[-1] == ("thinking", 7)  # made, not heard yet
    for event_kind in ("started", "paused", "resumed", "finished"):
        dialogue.on_playout(fk.Playout(turn_id=7, event=fk.PlayoutEvent(event_kind),
                                       played_duration=0.2))
    assert _states(recorder, fk.AgentState)[1:] == [
        ("thinking", 7), ("speaking", 7), ("listening", 7), ("speaking", 7), ("listening", 7)
    ]


def test_a_refused_request_and_a_lost_connection_leave_both_listening(
    dialogue: Dialogue, recorder: Recorder
) -> None:
    dialogue.on_request(fk.ReplyRequest(turn_id=3))
    [create] = recorder.sent
    dialogue.on_event(event(type="error", event_id="e", error={
        "type": "invalid_request_error", "code": "conversation_already_has_active_response",
        "message": "Conversation already has an active response",
        "event_id": create["event_id"]}))
    assert _states(recorder, fk.AgentState) == [("listening", 0), ("thinking", 3),
                                                ("listening", 3)]
    dialogue.on_event(event(type="input_audio_buffer.speech_started", event_id="e",
                            audio_start_ms=0, item_id="u1"))
    dialogue.connection_lost()  # the new session will not send this speech's end
    assert [str(s.state) for s in recorder.states if isinstance(s, fk.UserState)] == [
        "speaking", "listening"
    ]


def test_a_barge_in_on_a_reply_being_heard_makes_the_agent_listen_before_the_sink_reports(
    dialogue: Dialogue, recorder: Recorder
) -> None:
    _respond(dialogue)
    [reply] = dialogue.replies
    _audio(dialogue, 400)
    _done(dialogue)
    dialogue.on_playout(fk.Playout(turn_id=reply, event=fk.PlayoutEvent.STARTED))
    dialogue.on_event(event(type="input_audio_buffer.speech_started", event_id="e",
                            audio_start_ms=0, item_id="u1"))
    [flush] = [m for m in recorder.out if isinstance(m, fk.Interrupt)]
    assert flush.turn_id == reply
    assert _states(recorder, fk.AgentState)[-2:] == [("speaking", reply), ("listening", reply)]
    dialogue.on_playout(fk.Playout(turn_id=reply, event=fk.PlayoutEvent.INTERRUPTED,
                                   played_duration=0.1))
    assert _states(recorder, fk.AgentState)[-1] == ("listening", reply)
    assert len(_states(recorder, fk.AgentState)) == 4


def test_without_playout_reports_the_clock_says_when_the_agent_stops_speaking(
    recorder: Recorder, timers: Timers
) -> None:
    now = [0.0]
    dialogue = Dialogue(recorder, url=URL, clock=lambda: now[0], call_later=timers,
                        logger=logging.getLogger("flowkit.node.test"))
    dialogue.playout_closed()
    _respond(dialogue)
    [reply] = dialogue.replies
    _audio(dialogue, 300)
    now[0] = 0.1
    _audio(dialogue, 200)  # more audio: the estimated end moves to 0.5 s
    _done(dialogue)
    assert _states(recorder, fk.AgentState) == [("listening", 0), ("thinking", reply),
                                                ("speaking", reply)]
    delay, look_again = timers.pending[-1]
    assert delay == pytest.approx(0.4)  # 0.5 s of audio from 0.0, seen at 0.1
    now[0] = 0.3
    look_again()  # (early: the state holds, and the check is scheduled again)
    assert _states(recorder, fk.AgentState)[-1] == ("speaking", reply)
    assert timers.pending[-1][0] == pytest.approx(0.2)
    now[0] = 0.5
    timers.pending[-1][1]()
    assert _states(recorder, fk.AgentState)[-1] == ("listening", reply)


def test_the_newest_image_goes_with_the_users_next_turn(
    dialogue: Dialogue, recorder: Recorder
) -> None:
    old = fk.Image(data=b"old", mime_type="image/png")
    new = fk.Image(data=b"new", mime_type="image/png")
    dialogue.on_image(old)
    dialogue.on_image(new)
    assert recorder.sent == []  # nothing until the user speaks
    dialogue.on_event(event(type="input_audio_buffer.speech_started", event_id="e",
                            audio_start_ms=0, item_id="u1"))
    [shown] = recorder.sent
    assert shown["item"] == {
        "type": "message", "role": "user",
        "content": [{"type": "input_image", "image_url": new.data_url()}],
    }
    # Shown once: the next turn without a newer image sends none.
    dialogue.on_event(event(type="input_audio_buffer.speech_started", event_id="e",
                            audio_start_ms=900, item_id="u2"))
    assert len(recorder.sent) == 1
    # A commit the graph makes, and a request's user text, take the newest one too, first.
    dialogue.on_image(old)
    dialogue.on_commit(respond=False)
    assert [e["type"] for e in recorder.sent[1:]] == [
        "conversation.item.create", "input_audio_buffer.commit",
    ]
    dialogue.on_image(new)
    dialogue.on_request(fk.ReplyRequest(user_text="What do you see?"))
    image, text = recorder.sent[3:5]
    assert image["item"]["content"][0]["type"] == "input_image"
    assert text["item"]["content"] == [{"type": "input_text", "text": "What do you see?"}]


def test_a_typed_turn_is_a_user_message_and_a_reply_of_its_own(
    dialogue: Dialogue, recorder: Recorder
) -> None:
    turn = fk.UserTurn(turn_id=fk.new_turn_id(), text="What is on the menu?",
                       context=("Lentil soup today.",))
    dialogue.on_turn(turn)
    note, said, create = recorder.sent
    assert note["item"] == {"type": "message", "role": "assistant", "content": [
        {"type": "output_text", "text": turn.context_note()}]}
    assert said["item"] == {"type": "message", "role": "user", "content": [
        {"type": "input_text", "text": "What is on the menu?"}]}
    assert create["response"]["metadata"] == {"flowkit_turn": str(turn.turn_id)}
    # Kept unanswered: the words go to the server, no response is asked for.
    dialogue.on_turn(fk.UserTurn(turn_id=fk.new_turn_id(), text="hold on", reply=False))
    assert [e["type"] for e in recorder.sent[3:]] == ["conversation.item.create"]
    assert [(m.role, m.text) for m in dialogue.history.messages()] == [
        ("assistant", turn.context_note()), ("user", "What is on the menu?"),
        ("user", "hold on"),
    ]
