import asyncio
import json
import logging
from collections.abc import Callable

import pytest
from livekit import rtc
from reactivex import Observable

import flowkit as fk
from flowkit.messages import (
    AgentAudio,
    Playout,
    PlayoutEvent,
    TextChunk,
    Transcript,
    UserTurn,
    VADEvent,
    VADEventKind,
)
from flowkit.timeline import LATENCY_NAMES, TurnRecord, TurnTimeline

END = VADEventKind.END_OF_SPEECH
START = VADEventKind.START_OF_SPEECH


class Scripted(fk.Node, abstract=True):
    """Sends each (time, port, message) of its script at that virtual time after the start."""

    def __init__(self, script: list[tuple[float, str, object]]) -> None:
        super().__init__()
        self.script = script

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for at, port, message in self.script:
            await asyncio.sleep(start + at - loop.time())
            getattr(self, port).send(message)


class Ears(Scripted):
    vad: fk.Out[VADEvent]
    transcripts: fk.Out[Transcript]
    turns: fk.Out[UserTurn]


class Voice(Scripted):
    text: fk.Out[TextChunk]
    audio: fk.Out[AgentAudio]
    playout: fk.Out[Playout]


class Relay(fk.Node):
    """Passes text chunks on (the same objects), as a sentence splitter might."""

    text: fk.In[TextChunk]
    out: fk.Out[TextChunk]

    def wire(self, text: Observable[TextChunk]) -> Observable[TextChunk]:
        return text


def frame() -> rtc.AudioFrame:
    return rtc.AudioFrame.create(16_000, 1, 320)


EARS = [
    # turn 11: plain
    (0.8, "transcripts", Transcript(text="hel", final=False)),  # interim: not a stage
    (1.0, "vad", VADEvent(kind=END)),
    (1.3, "transcripts", Transcript(text="hello", final=True)),
    (1.8, "turns", UserTurn(turn_id=11, text="hello")),
    # turn 12: the user pauses; the last end of speech counts, and the first final after it
    (4.0, "vad", VADEvent(kind=END)),
    (4.1, "transcripts", Transcript(text="what is", final=True)),
    (4.2, "vad", VADEvent(kind=START)),
    (5.0, "vad", VADEvent(kind=END)),
    (5.2, "transcripts", Transcript(text="the time", final=True)),
    (5.3, "transcripts", Transcript(text="the time", final=True)),
    (5.5, "turns", UserTurn(turn_id=12, text="what is the time")),
]
VOICE = [
    (1.9, "text", TextChunk(turn_id=11, text="")),  # no text yet: not the first token
    (2.2, "text", TextChunk(turn_id=11, text="Hi ")),
    (2.3, "text", TextChunk(turn_id=11, text="there.", final=True)),
    (2.4, "audio", AgentAudio(turn_id=11, frame=None)),  # a marker: not audio
    (2.5, "audio", AgentAudio(turn_id=11, frame=frame(), text="Hi there.")),
    (2.6, "playout", Playout(turn_id=11, event=PlayoutEvent.STARTED)),
    (2.7, "transcripts_of_agent", None),
    (3.0, "playout", Playout(turn_id=11, event=PlayoutEvent.FINISHED, played_text="Hi there.")),
    (5.7, "text", TextChunk(turn_id=12, text="Sure, let me check.")),
    (6.0, "audio", AgentAudio(turn_id=12, frame=frame())),
    (6.1, "playout", Playout(turn_id=12, event=PlayoutEvent.STARTED)),
    (6.5, "playout", Playout(turn_id=12, event=PlayoutEvent.INTERRUPTED, played_text="Sure,")),
    # a reply from code (a greeting): no user turn
    (7.0, "text", TextChunk(turn_id=99, text="Welcome back!")),
    (7.2, "audio", AgentAudio(turn_id=99, frame=frame())),
    (7.3, "playout", Playout(turn_id=99, event=PlayoutEvent.STARTED)),
]


class AgentEcho(Scripted):
    """The agent's own transcript (RoomSink-like): must not count as the user's."""

    transcripts: fk.Out[Transcript]


def graph() -> fk.Graph:
    g = fk.Graph("timeline")
    g.add(Ears(EARS), name="ears")
    voice = g.add(Voice([e for e in VOICE if e[1] != "transcripts_of_agent"]), name="voice")
    voice.text >> g.add(Relay(), name="relay")
    g.add(AgentEcho([(1.05, "transcripts", Transcript(text="Hi there.", speaker="agent"))]),
          name="agent")
    return g


async def run_timeline(
    on_turn_over: Callable[[TurnRecord], None] | None = None,
) -> TurnTimeline:
    runner = fk.GraphRunner(graph())
    await runner.start()
    timeline = TurnTimeline.attach(runner, on_turn_over=on_turn_over)
    try:
        await runner.wait()
    finally:
        await runner.close()
    return timeline


@pytest.mark.looptime
async def test_latencies_equal_the_scripted_gaps() -> None:
    timeline = await run_timeline()
    first, second, greeting = timeline.turns
    assert (first.turn_id, second.turn_id, greeting.turn_id) == (11, 12, 99)

    assert first.latencies() == pytest.approx(
        {"stt": 0.3, "endpointing": 0.5, "llm": 0.4, "tts": 0.3, "playout": 0.1,
         "voice_to_voice": 1.6}
    )
    assert (first.user_text, first.agent_text, first.interrupted) == ("hello", "Hi there.", False)
    assert first.played_text == "Hi there."

    assert second.latencies() == pytest.approx(
        {"stt": 0.2, "endpointing": 0.3, "llm": 0.2, "tts": 0.3, "playout": 0.1,
         "voice_to_voice": 1.1}
    )
    assert second.user_text == "what is the time"
    assert second.agent_text == "Sure, let me check."  # relayed chunks are not counted twice
    assert second.interrupted and second.played_text == "Sure,"

    assert greeting.user_text == "" and greeting.agent_text == "Welcome back!"
    assert greeting.end_of_speech is None and greeting.committed is None
    assert greeting.latencies() == pytest.approx(
        {"stt": None, "endpointing": None, "llm": None, "tts": 0.2, "playout": 0.1,
         "voice_to_voice": None}
    )


@pytest.mark.looptime
async def test_ports_are_found_by_type() -> None:
    timeline = await run_timeline()
    assert sorted(timeline.ports) == [
        "agent.transcripts", "ears.transcripts", "ears.turns", "ears.vad",
        "relay.out", "voice.audio", "voice.playout", "voice.text",
    ]


@pytest.mark.looptime
async def test_a_transcript_ahead_of_the_vad_still_counts() -> None:
    g = fk.Graph("ahead")
    g.add(Ears([
        (1.0, "transcripts", Transcript(text="yes")),
        (1.2, "vad", VADEvent(kind=END)),
        (1.5, "turns", UserTurn(turn_id=5, text="yes")),
    ]))
    runner = fk.GraphRunner(g)
    await runner.start()
    timeline = TurnTimeline.attach(runner)
    await runner.wait()
    await runner.close()
    (turn,) = timeline.turns
    assert turn.stt == pytest.approx(-0.2)
    assert turn.endpointing == pytest.approx(0.5)


@pytest.mark.looptime
async def test_dict_form_is_json() -> None:
    timeline = await run_timeline()
    data = json.loads(json.dumps(timeline.to_dicts()))
    assert [d["turn_id"] for d in data] == [11, 12, 99]
    assert data[0]["latencies"]["voice_to_voice"] == pytest.approx(1.6)
    assert data[0]["stages"]["end_of_speech"] is not None
    assert data[2]["stages"]["committed"] is None
    assert list(data[0]["latencies"]) == list(LATENCY_NAMES)
    assert data[1]["interrupted"] is True


async def test_attach_before_start_is_refused() -> None:
    runner = fk.GraphRunner(graph())
    with pytest.raises(RuntimeError, match=r"after 'await runner.start\(\)'"):
        TurnTimeline.attach(runner)


@pytest.mark.looptime
async def test_detach_stops_recording() -> None:
    runner = fk.GraphRunner(graph())
    await runner.start()
    timeline = TurnTimeline.attach(runner)
    await asyncio.sleep(2.0)  # turn 11 is committed; its first token comes at 2.2
    timeline.detach()
    await runner.wait()
    await runner.close()
    (turn,) = timeline.turns
    assert turn.committed is not None and turn.first_token is None


def test_record_is_frozen() -> None:
    record = TurnRecord(1, end_of_speech=1.0, played=2.5)
    assert record.voice_to_voice == pytest.approx(1.5)
    assert record.stt is None
    with pytest.raises(AttributeError):
        record.turn_id = 2  # type: ignore[misc]


@pytest.mark.looptime
async def test_a_turn_is_over_when_a_later_user_turn_is_committed() -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    over: list[tuple[float, TurnRecord]] = []
    timeline = await run_timeline(lambda record: over.append((loop.time(), record)))
    # Turn 11 at turn 12's commit (5.5 s), whole; turn 12 and the greeting are never over.
    [(when, record)] = over
    assert when - start == pytest.approx(5.5, abs=0.01)
    assert record == timeline.turns[0]
    assert (record.turn_id, record.agent_text, record.played_text) == (11, "Hi there.", "Hi there.")


@pytest.mark.looptime
async def test_a_failing_turn_over_callback_is_logged_and_the_timeline_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="flowkit.timeline")

    def fail(record: TurnRecord) -> None:
        raise RuntimeError("exporter down")

    timeline = await run_timeline(fail)
    assert [t.turn_id for t in timeline.turns] == [11, 12, 99]
    assert timeline.turns[1].played_text == "Sure,"  # recorded after the callback raised
    assert "on_turn_over raised for turn 11" in caplog.text
