"""``ReplyRequest(say=...)`` on a RealtimeModel: a text model's TTS node speaks the text.

LiveKit Agents' ``session.say()`` with a realtime model that writes text and a TTS of the
user's. The graph tests run the node, a TTS node with a deterministic fake voice and the room
sink against the test Realtime server through the real openai SDK, in real time (a real
socket: no looptime); the state machine's tests feed the dialogue directly.
"""

from __future__ import annotations

import base64
import logging

import numpy as np
import pytest
from fake_server import close_clients  # noqa: F401 (a fixture)
from flowkit_openai.realtime.dialogue import Dialogue
from flowkit_openai.testing.realtime_script import ScriptedReply
from flowkit_openai.testing.realtime_server import RealtimeTestServer
from realtime_helpers import EffectsRecorder, agent, server_event
from support import Script, TimedCollect, speech

import flowkit as fk
from flowkit.audio.frames import frame_from_samples, silence
from flowkit.nodes.room import RoomSink
from flowkit.nodes.tts import TTS
from flowkit.testing.fakes import FakeTTS

QUESTION = "What is the weather in Paris?"
SAID = "Welcome to the weather line."
# Two sentences; the first lasts 2.2 s at 0.03 s a character.
LONG = ("One two three four five six seven eight nine ten eleven twelve thirteen. "
        "Fourteen fifteen sixteen.")
HOLD = "Calls are recorded. Please stay on the line."
AGAIN = "Yes, go on."


def _events(playout: list[fk.Playout]) -> list[tuple[int, fk.PlayoutEvent]]:
    return [(p.turn_id, p.event) for p in playout]


def _quiet(seconds: float) -> list[object]:
    return speech(("silence", seconds))


# -- against the test server ------------------------------------------------------------------


@pytest.mark.usefixtures("close_clients")
async def test_said_text_is_spoken_by_the_tts_node_and_joins_the_conversation() -> None:
    async with RealtimeTestServer() as server:
        voice = FakeTTS(seconds_per_char=0.03)
        a = agent(server.base_url, _quiet(2.0), output_modality="text", tts=TTS(voice))
        a.graph.add(Script((0.1, fk.ReplyRequest(turn_id=0, say=SAID))), name="code") \
            >> a.model.requests
        runner = await a.run()
    assert runner.node_errors == []
    assert a.texts is not None

    # As the LLM node sends a say: the whole text under a turn of its own, then the end.
    [turn] = {c.turn_id for c in a.texts.items}
    assert a.texts.items == [fk.TextChunk(turn_id=turn, text=SAID),
                             fk.TextChunk(turn_id=turn, text="", final=True)]
    assert voice.texts == [SAID]
    assert _events(a.playout.items) == [(turn, fk.PlayoutEvent.STARTED),
                                        (turn, fk.PlayoutEvent.FINISHED)]
    # Followed as a voiced reply is: thinking until the sink starts it, speaking while it
    # plays, and its transcript once heard.
    assert a.agent_state_changes() == [
        ("listening", 0), ("thinking", turn), ("speaking", turn), ("listening", turn)
    ]
    assert a.agents.items == [fk.Transcript(turn_id=turn, text=SAID, speaker="agent")]
    # The model was not asked for anything; the text joined its conversation as said.
    assert server.of_type("response.create") == []
    [create] = server.of_type("conversation.item.create")
    assert create["item"]["role"] == "assistant"
    assert create["item"]["content"] == [{"type": "output_text", "text": SAID}]
    assert server.conversations[0].messages() == [("assistant", SAID)]
    assert server.deletions == []


@pytest.mark.usefixtures("close_clients")
async def test_a_said_recording_is_played_by_the_tts_node_and_its_text_joins_the_conversation(
) -> None:
    recording = tuple(silence(20, 48_000) for _ in range(50))  # 1 s, 20 ms frames
    async with RealtimeTestServer() as server:
        voice = FakeTTS(seconds_per_char=0.03)
        a = agent(server.base_url, _quiet(2.0), output_modality="text", tts=TTS(voice))
        a.graph.add(Script((0.1, fk.ReplyRequest(say=SAID, audio=recording))), name="code") \
            >> a.model.requests
        runner = await a.run()
    assert runner.node_errors == []
    assert a.texts is not None
    [said, end] = a.texts.items
    assert (said.text, said.audio, end.final) == (SAID, recording, True)
    assert voice.texts == []  # played, not synthesised
    assert a.agents.items == [fk.Transcript(turn_id=said.turn_id, text=SAID, speaker="agent")]
    assert server.conversations[0].messages() == [("assistant", SAID)]
    assert server.of_type("response.create") == []


@pytest.mark.usefixtures("close_clients")
async def test_a_model_that_speaks_itself_plays_a_said_recording_and_keeps_its_text() -> None:
    rate = 16_000
    tone = (np.sin(2 * np.pi * 300 * np.arange(rate * 3 // 2) / rate) * 8000).astype(np.int16)
    recording = tuple(
        frame_from_samples(tone[i:i + 320].reshape(-1, 1), rate) for i in range(0, tone.size, 320)
    )
    async with RealtimeTestServer() as server:
        a = agent(server.base_url, _quiet(2.5))  # audio out: the model speaks itself
        a.graph.add(Script((0.1, fk.ReplyRequest(say=HOLD, audio=recording))), name="code") \
            >> a.model.requests
        runner = await a.run()
    assert runner.node_errors == []
    frames = a.frames()
    [turn] = {f.turn_id for f in frames}
    # The whole recording, at the session's 24 kHz, its text on every frame.
    assert {(f.frame.sample_rate, f.text) for f in frames if f.frame} == {(24_000, HOLD)}
    assert sum(f.frame.samples_per_channel for f in frames if f.frame) == 36_000
    assert [a.final for a in a.speech.items if a.frame is None] == [True]
    assert _events(a.playout.items) == [(turn, fk.PlayoutEvent.STARTED),
                                        (turn, fk.PlayoutEvent.FINISHED)]
    assert a.agent_state_changes() == [
        ("listening", 0), ("thinking", turn), ("speaking", turn), ("listening", turn)
    ]
    assert a.agents.items == [fk.Transcript(turn_id=turn, text=HOLD, speaker="agent")]
    # The model was asked for nothing; the text joined its conversation.
    assert server.of_type("response.create") == []
    assert server.conversations[0].messages() == [("assistant", HOLD)]


@pytest.mark.usefixtures("close_clients")
async def test_a_said_reply_cut_by_the_user_stays_in_the_conversation_as_heard() -> None:
    async with RealtimeTestServer([ScriptedReply(AGAIN)], user_transcripts=["Wait."]) as server:
        # Synthesis at twice the pace of playback: the sink has more than it played.
        voice = FakeTTS(seconds_per_char=0.03, frame_gap=0.01)
        audio = speech(("silence", 1.0), ("voice", 0.5), ("silence", 1.5))
        a = agent(server.base_url, audio, output_modality="text", tts=TTS(voice))
        a.graph.add(Script((0.1, fk.ReplyRequest(say=LONG))), name="code") >> a.model.requests
        runner = await a.run()
    assert runner.node_errors == []
    assert a.texts is not None

    said, answer = dict.fromkeys(c.turn_id for c in a.texts.items)
    [flush] = a.interrupts.items
    assert (flush.turn_id, flush.reason) == (said, "barge_in")
    [cut] = [p for p in a.playout.items if p.event is fk.PlayoutEvent.INTERRUPTED]
    heard = cut.played_text
    assert cut.turn_id == said and LONG.startswith(heard) and 0 < len(heard) < len(LONG)
    # Its item, named by the node, is made again in its place with the words heard.
    [first, again] = server.of_type("conversation.item.create")
    [deleted] = server.deletions
    assert deleted["item_id"] == first["item"]["id"] == again["item"]["id"]
    assert again["previous_item_id"] == "root"
    assert again["item"]["content"] == [{"type": "output_text", "text": heard}]
    assert server.conversations[0].messages() == [
        ("assistant", heard), ("user", "Wait."), ("assistant", AGAIN)
    ]
    assert [(t.turn_id, t.text) for t in a.agents.items] == [(said, heard), (answer, AGAIN)]


@pytest.mark.usefixtures("close_clients")
async def test_a_say_replaces_the_reply_under_way_as_the_llm_nodes_say_does() -> None:
    async with RealtimeTestServer([ScriptedReply(LONG)], user_transcripts=[QUESTION]) as server:
        voice = FakeTTS(seconds_per_char=0.03, frame_gap=0.01)
        audio = speech(("silence", 0.3), ("voice", 0.6), ("silence", 3.0))
        a = agent(server.base_url, audio, output_modality="text", tts=TTS(voice))
        # The answer starts playing at about 1.3 s; the say comes 0.9 s into it.
        a.graph.add(Script((2.2, fk.ReplyRequest(say=SAID))), name="code") >> a.model.requests
        runner = await a.run()
    assert runner.node_errors == []
    assert a.texts is not None

    answer, said = dict.fromkeys(c.turn_id for c in a.texts.items)
    assert said > answer
    [flush] = a.interrupts.items
    assert (flush.turn_id, flush.reason) == (answer, "say")
    assert [c for c in a.texts.items if c.turn_id == said] == [
        fk.TextChunk(turn_id=said, text=SAID), fk.TextChunk(turn_id=said, text="", final=True)
    ]
    [cut] = [p for p in a.playout.items if p.event is fk.PlayoutEvent.INTERRUPTED]
    heard = cut.played_text
    assert cut.turn_id == answer and LONG.startswith(heard) and 0 < len(heard) < len(LONG)
    assert _events(a.playout.items)[-2:] == [(said, fk.PlayoutEvent.STARTED),
                                             (said, fk.PlayoutEvent.FINISHED)]
    # The model keeps what was heard of its answer, then what was said.
    assert server.conversations[0].messages() == [
        ("user", QUESTION), ("assistant", heard), ("assistant", SAID)
    ]
    assert [(t.turn_id, t.text) for t in a.agents.items] == [(answer, heard), (said, SAID)]
    assert a.agent_state_changes() == [
        ("listening", 0), ("thinking", answer), ("speaking", answer),
        ("thinking", said), ("speaking", said), ("listening", said),
    ]


@pytest.mark.usefixtures("close_clients")
async def test_a_reply_asked_for_just_before_a_say_is_cancelled_and_leaves_nothing() -> None:
    async with RealtimeTestServer([ScriptedReply("Hello there, how can I help?")]) as server:
        voice = FakeTTS(seconds_per_char=0.03)
        a = agent(server.base_url, _quiet(2.0), output_modality="text", tts=TTS(voice))
        a.graph.add(Script((0.1, fk.ReplyRequest(instructions="Greet the user.")),
                           (0.1, fk.ReplyRequest(say=SAID))), name="code") >> a.model.requests
        runner = await a.run()
    assert runner.node_errors == []
    assert a.texts is not None

    # Its response started after the say, which replaced it: cancelled, none of its text
    # sent on (the TTS node would drop it as stale), and what it wrote deleted again.
    [said] = {c.turn_id for c in a.texts.items}
    assert voice.texts == [SAID]
    assert len(server.of_type("response.create")) == 1
    assert len(server.of_type("response.cancel")) == 1
    [deleted] = server.deletions
    assert not deleted["item_id"].startswith("fk_said_")
    assert server.conversations[0].messages() == [("assistant", SAID)]
    assert a.agents.items == [fk.Transcript(turn_id=said, text=SAID, speaker="agent")]
    assert a.agent_state_changes()[-2:] == [("speaking", said), ("listening", said)]


@pytest.mark.usefixtures("close_clients")
async def test_a_say_that_may_not_be_cut_plays_whole_and_the_user_is_answered_after() -> None:
    async with RealtimeTestServer([ScriptedReply(AGAIN)], user_transcripts=["Wait."]) as server:
        voice = FakeTTS(seconds_per_char=0.03)
        # "Wait." at 0.5 s, while the say (1.3 s from about 0.2 s) plays.
        audio = speech(("silence", 0.5), ("voice", 0.4), ("silence", 2.5))
        a = agent(server.base_url, audio, output_modality="text", tts=TTS(voice))
        a.graph.add(Script((0.1, fk.ReplyRequest(say=HOLD, allow_interruptions=False))),
                    name="code") >> a.model.requests
        users = a.graph.add(TimedCollect(), name="user_times")
        heard = a.graph.add(TimedCollect(), name="playout_times")
        a.model.user_state >> users
        speaker = a.graph.nodes["speaker"]
        assert isinstance(speaker, RoomSink)
        speaker.playout >> heard
        runner = await a.run()
    assert runner.node_errors == []
    assert a.texts is not None

    said, answer = dict.fromkeys(c.turn_id for c in a.texts.items)
    # The flag rides with the text, its audio and the sink's reports, as the LLM node's.
    assert [c for c in a.texts.items if c.turn_id == said] == [
        fk.TextChunk(turn_id=said, text=HOLD, allow_interruptions=False),
        fk.TextChunk(turn_id=said, text="", final=True, allow_interruptions=False),
    ]
    reports = [p for p in a.playout.items if p.turn_id == said]
    assert [p.event for p in reports] == [fk.PlayoutEvent.STARTED, fk.PlayoutEvent.FINISHED]
    assert not any(p.allow_interruptions for p in reports)
    assert reports[-1].played_text == HOLD
    assert a.interrupts.items == []
    # The user's words waited until it had played, then were heard and answered; none of
    # their audio was dropped.
    [finished_at] = [t for t, p in heard.items
                     if p.turn_id == said and p.event is fk.PlayoutEvent.FINISHED]
    [speaking_at] = [t for t, s in users.items if s.state is fk.UserStateKind.SPEAKING]
    assert speaking_at > finished_at
    assert server.conversations[0].messages() == [
        ("assistant", HOLD), ("user", "Wait."), ("assistant", AGAIN)
    ]
    assert voice.texts == ["Calls are recorded. Please stay on the line.", AGAIN]
    appended = sum(e["bytes"] for e in server.of_type("input_audio_buffer.append"))
    assert appended / 48_000 == pytest.approx(3.4, abs=0.03)
    assert [(t.turn_id, t.text) for t in a.agents.items] == [(said, HOLD), (answer, AGAIN)]


# -- the state machine alone ------------------------------------------------------------------


def _dialogue(recorder: EffectsRecorder, *, voiced: bool) -> Dialogue:
    return Dialogue(recorder, url="ws://example/v1/realtime?model=m", clock=lambda: 0.0,
                    call_later=lambda delay, callback: None, voiced=voiced,
                    logger=logging.getLogger("flowkit.node.test"))


@pytest.mark.parametrize("allow", [True, False])
def test_a_model_without_a_tts_node_logs_the_remedy_and_says_nothing(
    caplog: pytest.LogCaptureFixture, allow: bool
) -> None:
    caplog.set_level(logging.WARNING, logger="flowkit.node")
    recorder = EffectsRecorder()
    dialogue = _dialogue(recorder, voiced=False)  # speaks itself, or text not linked
    dialogue.on_request(fk.ReplyRequest(say=SAID, allow_interruptions=allow))
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning.startswith(f"ReplyRequest(say={SAID!r}) ignored: this RealtimeModel has no "
                              "TTS node")
    assert "RealtimeModel(output_modality='text')" in warning
    assert "model.text >> tts >> speaker" in warning
    assert recorder.events() == []
    # Nothing was held back for it either: the user's audio goes on.
    dialogue.user_audio(b"\0" * 4800)
    assert recorder.events() == ["audio"]


@pytest.mark.parametrize("text", ["", "   "])
def test_a_blank_say_is_refused_and_leaves_the_reply_under_way_alone(
    caplog: pytest.LogCaptureFixture, text: str
) -> None:
    caplog.set_level(logging.WARNING, logger="flowkit.node")
    recorder = EffectsRecorder()
    dialogue = _dialogue(recorder, voiced=True)
    dialogue.on_request(fk.ReplyRequest(say=text))
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning == f"ReplyRequest(say={text!r}) ignored: there is nothing to say"
    assert recorder.events() == []  # no cancel, no item, no text for the TTS node


def test_while_a_say_that_may_not_be_cut_plays_the_users_input_waits_in_order() -> None:
    recorder = EffectsRecorder()
    dialogue = _dialogue(recorder, voiced=True)
    dialogue.on_request(fk.ReplyRequest(turn_id=5, say=HOLD, allow_interruptions=False))
    assert recorder.events() == ["conversation.item.create"]
    del recorder.log[:]

    dialogue.user_audio(b"\0" * 4800)
    dialogue.on_request(fk.ReplyRequest(turn_id=6, instructions="Answer."))
    dialogue.user_audio(b"\0" * 4800)
    dialogue.user_audio(b"\0" * 4800)
    dialogue.on_commit(respond=False)
    # Audio already on its way when the say started may still be heard: no barge-in on it.
    dialogue.on_event(server_event("input_audio_buffer.speech_started", audio_start_ms=0,
                             item_id="u1"))
    assert recorder.events() == []
    assert not [m for m in recorder.log if isinstance(m, fk.Interrupt)]

    dialogue.on_playout(fk.Playout(turn_id=5, event=fk.PlayoutEvent.STARTED))
    assert recorder.events() == []
    dialogue.on_playout(fk.Playout(turn_id=5, event=fk.PlayoutEvent.FINISHED,
                                   played_text=HOLD, allow_interruptions=False))
    # Released in the order it came, the audio between two actions in one append.
    assert recorder.events() == ["audio", "response.create", "audio",
                                 "input_audio_buffer.commit"]
    assert [m for m in recorder.log if isinstance(m, tuple)] == [("audio", 4800),
                                                                 ("audio", 9600)]
    dialogue.user_audio(b"\0" * 4800)
    assert recorder.events()[-1] == "audio"


@pytest.mark.parametrize("force", [False, True])
def test_a_flush_that_is_not_forced_leaves_a_say_that_may_not_be_cut(force: bool) -> None:
    recorder = EffectsRecorder()
    dialogue = _dialogue(recorder, voiced=True)
    dialogue.on_request(fk.ReplyRequest(turn_id=5, say=HOLD, allow_interruptions=False))
    dialogue.on_playout(fk.Playout(turn_id=5, event=fk.PlayoutEvent.STARTED))
    del recorder.log[:]
    # What a key press or a typed message sends.
    dialogue.on_flush(fk.Interrupt(turn_id=0, action=fk.InterruptAction.FLUSH, force=force))
    dialogue.user_audio(b"\0" * 4800)
    # Forced, the say is cut (the sink stops it); not forced, it plays on. Either way the
    # user's audio waits for the sink's report that it ended.
    assert dialogue.replies[5].cut is force
    assert recorder.events() == []
    end = fk.PlayoutEvent.INTERRUPTED if force else fk.PlayoutEvent.FINISHED
    dialogue.on_playout(fk.Playout(turn_id=5, event=end, allow_interruptions=False))
    assert recorder.events()[-1:] == ["audio"]  # after the cut's rewrite, when forced


def test_a_reply_queued_behind_the_response_under_way_is_dropped_by_a_say() -> None:
    recorder = EffectsRecorder()
    dialogue = _dialogue(recorder, voiced=True)
    dialogue.on_event(server_event("response.created", response={"id": "r1"}))  # the server's VAD
    dialogue.on_request(fk.ReplyRequest(turn_id=3, instructions="Answer."))  # waits for r1
    dialogue.on_request(fk.ReplyRequest(turn_id=4, say=SAID))
    assert recorder.events() == ["response.cancel", "conversation.item.create"]
    dialogue.on_event(server_event("response.done", response={"id": "r1", "status": "cancelled"}))
    # The reply asked for before the say is never asked of the model.
    assert recorder.events() == ["response.cancel", "conversation.item.create"]
    assert not dialogue.busy
    assert [m.turn_id for m in recorder.log if isinstance(m, fk.TextChunk)] == [4, 4]



def test_a_recording_said_over_a_reply_the_model_speaks_cuts_it_as_a_barge_in_does() -> None:
    recorder = EffectsRecorder()
    dialogue = _dialogue(recorder, voiced=False)  # the model speaks itself
    dialogue.on_event(server_event("response.created", response={"id": "r1"}))
    dialogue.on_event(server_event(
        "response.output_audio.delta", response_id="r1", item_id="i1", output_index=0,
        content_index=0, delta=base64.b64encode(b"\0" * 48_000).decode(),  # 1 s at 24 kHz
    ))
    [speaking] = {a.turn_id for a in recorder.log if isinstance(a, fk.AgentAudio)}
    dialogue.on_playout(fk.Playout(turn_id=speaking, event=fk.PlayoutEvent.STARTED))
    del recorder.log[:]

    dialogue.on_request(fk.ReplyRequest(turn_id=9, say=SAID, audio=(silence(500, 16_000),)))
    # The reply under way is cancelled and flushed; the said text joins the conversation.
    assert recorder.events() == ["response.cancel", "conversation.item.create"]
    [flush] = [m for m in recorder.log if isinstance(m, fk.Interrupt)]
    assert (flush.turn_id, flush.reason) == (speaking, "say")
    # Still a reply of audio: when the sink says where it stopped, its audio is cut there.
    assert not dialogue.replies[speaking].voiced
    dialogue.on_playout(fk.Playout(turn_id=speaking, event=fk.PlayoutEvent.INTERRUPTED,
                                   played_duration=0.25))
    [truncate] = [m for m in recorder.log
                  if isinstance(m, dict) and m["type"] == "conversation.item.truncate"]
    assert (truncate["item_id"], truncate["audio_end_ms"]) == ("i1", 250)
    # The recording went out after the flush, 0.5 s at 24 kHz, then its end marker.
    said = [a for a in recorder.log if isinstance(a, fk.AgentAudio) and a.turn_id == 9]
    assert sum(a.frame.samples_per_channel for a in said if a.frame) == 12_000
    assert said[-1].final and {a.text for a in said if a.frame} == {SAID}


def test_a_said_recording_the_user_cuts_stays_in_the_conversation_as_heard() -> None:
    recorder = EffectsRecorder()
    dialogue = _dialogue(recorder, voiced=False)  # the model speaks itself
    dialogue.on_request(fk.ReplyRequest(turn_id=7, say=HOLD, audio=(silence(3000, 24_000),)))
    [create] = [m for m in recorder.log if isinstance(m, dict)]
    item_id = create["item"]["id"]
    dialogue.on_playout(fk.Playout(turn_id=7, event=fk.PlayoutEvent.STARTED))
    del recorder.log[:]
    dialogue.on_playout(fk.Playout(turn_id=7, event=fk.PlayoutEvent.INTERRUPTED,
                                   played_duration=1.2, played_text="Calls are recorded."))
    # The server has no audio of it to truncate: its item is rewritten to the words heard.
    delete, again = [m for m in recorder.log if isinstance(m, dict)]
    assert (delete["type"], delete["item_id"]) == ("conversation.item.delete", item_id)
    assert again["item"]["id"] == item_id
    assert again["item"]["content"] == [{"type": "output_text", "text": "Calls are recorded."}]
    assert [t.text for t in recorder.log if isinstance(t, fk.Transcript)] == [
        "Calls are recorded."
    ]


def test_a_say_kept_out_of_the_history_never_reaches_the_servers_conversation() -> None:
    recorder = EffectsRecorder()
    dialogue = _dialogue(recorder, voiced=True)
    dialogue.on_request(fk.ReplyRequest(turn_id=5, say=HOLD, add_to_history=False))
    # Spoken by the TTS node, but no item for the server.
    assert recorder.events() == []
    assert [c.text for c in recorder.log if isinstance(c, fk.TextChunk)] == [HOLD, ""]
    dialogue.on_playout(fk.Playout(turn_id=5, event=fk.PlayoutEvent.STARTED))
    dialogue.on_playout(fk.Playout(turn_id=5, event=fk.PlayoutEvent.INTERRUPTED,
                                   played_text="Calls are recorded."))
    # Cut short: nothing to rewrite on the server; the transcript is still published.
    assert recorder.events() == []
    assert [t.text for t in recorder.log if isinstance(t, fk.Transcript)] == [
        "Calls are recorded."
    ]
    # Nor is it in the history a new connection replays.
    assert dialogue.history.messages() == []
