"""Room nodes on MemoryIO: the source's format and pacing, the sink's playout, barge-ins."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import math
from collections.abc import AsyncIterator, Callable

import numpy as np
import pytest
from livekit import rtc
from support import Collect, Script, TimedCollect, collected

import flowkit as fk
from flowkit.audio import frame_from_samples
from flowkit.messages import (
    AgentAudio,
    Interrupt,
    InterruptAction,
    Playout,
    PlayoutEvent,
    TextChunk,
    TimedWord,
    Transcript,
)
from flowkit.nodes.room import (
    DEFAULT_SECONDS_PER_CHAR,
    RoomSink,
    RoomSource,
    TranscriptPublisher,
)
from flowkit.nodes.tts import TTS
from flowkit.room_io import PushAudioInput, TrackOutputs
from flowkit.testing.fakes import FakeTTS
from flowkit.testing.memory_io import MemoryIO

FRAME = 0.02  # seconds per frame in these tests


def tone(seconds: float, rate: int = 24_000, channels: int = 1) -> list[rtc.AudioFrame]:
    """``seconds`` of a tone in frames of FRAME seconds."""
    step = round(rate * FRAME)
    count = round(seconds * rate)
    t = np.arange(count) / rate
    pcm = (3000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    if channels > 1:
        pcm = np.repeat(pcm[:, None], channels, axis=1)
    return [frame_from_samples(pcm[i : i + step].copy(), rate) for i in range(0, count, step)]


def reply(turn: int, *sentences: tuple[str, float], final: bool = True) -> list[AgentAudio]:
    """A reply's AgentAudio: each (text, seconds) sentence as tagged frames, then the marker."""
    items = [
        AgentAudio(turn_id=turn, frame=frame, text=text, segment=index)
        for index, (text, seconds) in enumerate(sentences)
        for frame in tone(seconds)
    ]
    if final:
        items.append(AgentAudio(turn_id=turn, frame=None, segment=len(sentences), final=True))
    return items


def at(time: float, items: list[AgentAudio]) -> list[tuple[float, AgentAudio]]:
    return [(time, item) for item in items]


class Sink:
    """A RoomSink graph fed by scripts, with its outputs recorded."""

    def __init__(
        self,
        audio: list[tuple[float, AgentAudio]],
        interrupts: list[tuple[float, Interrupt]] | None = None,
        *,
        paced: bool = True,
        publish_transcripts: bool = True,
        sync_transcripts: bool = True,
        output_queue: float = 0.0,
    ) -> None:
        self.io = MemoryIO(paced=paced, output_queue=output_queue)
        self.graph = g = fk.Graph("sink")
        sink = g.add(
            RoomSink(publish_transcripts=publish_transcripts, sync_transcripts=sync_transcripts)
        )
        self.playout, self.transcripts = TimedCollect(), TimedCollect()
        g.add(Script(*audio)) >> sink >> self.playout
        sink.transcripts >> self.transcripts
        if interrupts:
            g.add(Script(*interrupts)) >> sink.interrupt
        self.start = 0.0

    async def run(self) -> Sink:
        self.start = asyncio.get_running_loop().time()
        await fk.GraphRunner(self.graph, job=fk.JobContext(io=self.io)).run()
        return self

    @property
    def events(self) -> list[tuple[int, PlayoutEvent]]:
        return [(p.turn_id, p.event) for _, p in self.playout.items]

    def report(self, event: PlayoutEvent) -> Playout:
        (found,) = [p for _, p in self.playout.items if p.event is event]
        assert isinstance(found, Playout)
        return found

    @property
    def played_times(self) -> list[float]:
        return [t - self.start for t, _ in self.io.played]


# ------------------------------------------------------------------------------ RoomSink


@pytest.mark.looptime
async def test_sink_plays_in_real_time_and_reports_the_whole_reply() -> None:
    items = reply(1, ("Hello there friend.", 0.2), ("How are you today?", 0.3))
    run = await Sink(at(0.0, items)).run()

    times = run.played_times
    assert len(times) == 25
    assert times[0] == pytest.approx(0.0)
    assert np.diff(times) == pytest.approx([FRAME] * 24)
    assert [f for _, f in run.io.played] == [a.frame for a in items if a.frame is not None]
    assert run.events == [(1, PlayoutEvent.STARTED), (1, PlayoutEvent.FINISHED)]
    done = run.report(PlayoutEvent.FINISHED)
    assert done.played_text == "Hello there friend. How are you today?"
    assert done.played_duration == pytest.approx(0.5)
    # Agent transcripts: one per sentence, as it starts playing.
    spoken = [(t - run.start, s) for t, s in run.transcripts.items]
    assert [s.text for _, s in spoken] == ["Hello there friend.", "How are you today?"]
    assert [t for t, _ in spoken] == pytest.approx([0.0, 0.2])
    assert all(s.speaker == "agent" and s.final and s.turn_id == 1 for _, s in spoken)
    # Published to the room: the reply as one segment, closed by its whole text.
    assert run.io.transcripts[-1] == Transcript(
        turn_id=1, text="Hello there friend. How are you today?", speaker="agent"
    )
    assert run.io.output is not None and run.io.output.closed


def published_over_time(run: Sink) -> list[tuple[float, Transcript]]:
    """Record when each transcript is published to ``run``'s room I/O (call before run)."""
    times: list[tuple[float, Transcript]] = []
    loop = asyncio.get_running_loop()

    def publish(transcript: Transcript) -> None:
        times.append((loop.time() - run.start, transcript))

    run.io.publish_transcript = publish  # type: ignore[method-assign]
    return times


@pytest.mark.looptime
async def test_the_published_transcript_grows_a_word_at_a_time_as_the_reply_plays() -> None:
    text = "one two three four five six seven eight nine ten."
    run = Sink(at(0.0, reply(1, (text, 1.0))))
    published = published_over_time(run)
    run.start = asyncio.get_running_loop().time()
    await run.run()

    interims = [(t, s) for t, s in published if not s.final]
    words = text.split()
    # One interim per word, each the words played so far, in order.
    assert [s.text for _, s in interims] == [" ".join(words[: n + 1]) for n in range(10)]
    assert all(s.speaker == "agent" and s.turn_id == 1 for _, s in published)
    # A word is published as the frame that completes it (its end's share of the text's
    # characters, of the sentence's 1.0 s) starts playing: a paced output takes a frame
    # when it starts, and the sink counts it as played then.
    for when, interim in interims[:-1]:
        share = len(interim.text) / len(text)
        assert when == pytest.approx((math.ceil(round(share / FRAME, 6)) - 1) * FRAME)
    final = published[-1][1]
    assert final.final and final.text == text
    assert sum(1 for _, s in published if s.final) == 1


@pytest.mark.looptime
async def test_an_interrupted_reply_is_published_as_the_words_heard() -> None:
    items = reply(1, ("one two three four five six seven eight nine ten", 1.0), ("Never.", 0.2))
    run = Sink(at(0.0, items), [(0.51, Interrupt(turn_id=1, action=InterruptAction.FLUSH))])
    published = published_over_time(run)
    await run.run()

    assert run.report(PlayoutEvent.INTERRUPTED).played_text == "one two three four five"
    finals = [s for _, s in published if s.final]
    assert [s.text for s in finals] == ["one two three four five"]
    assert all("six" not in s.text and "Never" not in s.text for _, s in published)
    # Nothing is published after the cut.
    assert published[-1][1] is finals[0]
    assert published[-1][0] == pytest.approx(0.51)


@pytest.mark.looptime
async def test_a_reply_cut_before_its_first_word_publishes_nothing() -> None:
    items = reply(1, ("Supercalifragilistic expialidocious.", 1.0))
    run = await Sink(
        at(0.0, items), [(0.05, Interrupt(turn_id=1, action=InterruptAction.FLUSH))]
    ).run()
    assert run.events == [(1, PlayoutEvent.STARTED), (1, PlayoutEvent.INTERRUPTED)]
    assert run.io.transcripts == []


@pytest.mark.looptime
async def test_each_reply_is_its_own_segment_and_a_newer_one_closes_the_one_before() -> None:
    first = reply(1, ("one two three four five six seven eight nine ten", 1.0))
    second = reply(2, ("Right away.", 0.2))
    run = await Sink(at(0.0, first) + at(0.3, second)).run()

    finals = [(s.turn_id, s.text) for s in run.io.transcripts if s.final]
    assert finals == [(1, "one two three"), (2, "Right away.")]
    # Every interim comes before its reply's final: the segments do not interleave.
    turns = [s.turn_id for s in run.io.transcripts]
    assert turns == sorted(turns)


@pytest.mark.looptime
async def test_the_published_transcript_never_shrinks_when_a_sentence_turns_out_longer() -> None:
    # 40 characters at the default rate are about 2.2 s, so the first 0.4 s played stand for
    # a sixth of the words; then the rest arrives at once and the sentence is 4 s long: the
    # words played by then are a tenth. The screen keeps what it showed until more is heard.
    text = "one two three four five six seven eight."
    items = reply(1, (text, 4.0))
    run = Sink(at(0.0, items[:20]) + at(0.4, items[20:]))
    published = published_over_time(run)
    await run.run()

    texts = [s.text for _, s in published if not s.final]
    assert len(texts) > 3
    for before, after in itertools.pairwise(texts):
        assert after.startswith(before) and len(after) > len(before), texts
    assert published[-1][1] == Transcript(turn_id=1, text=text, speaker="agent")
    # Before the rest arrived, the default rate had let two words through already.
    assert [s.text for t, s in published if t < 0.4] == ["one", "one two"]


@pytest.mark.looptime
async def test_unsynchronized_transcripts_are_published_per_sentence_as_it_starts() -> None:
    items = reply(1, ("Hello there friend.", 0.2), ("How are you today?", 0.3))
    run = Sink(at(0.0, items), sync_transcripts=False)
    published = published_over_time(run)
    await run.run()
    assert [(round(t, 2), s.text, s.final) for t, s in published] == [
        (0.0, "Hello there friend.", True), (0.2, "How are you today?", True)]


@pytest.mark.looptime
async def test_transcripts_are_not_published_when_told_so() -> None:
    run = await Sink(at(0.0, reply(1, ("Only on the port.", 0.1))), publish_transcripts=False).run()
    assert [s.text for _, s in run.transcripts.items] == ["Only on the port."]
    assert run.io.transcripts == []


@pytest.mark.looptime
async def test_pause_stops_within_a_frame_and_resume_plays_the_rest() -> None:
    items = reply(1, ("A whole second of speech for the pause test.", 1.0))
    pause, resume = 0.31, 1.0
    run = await Sink(
        at(0.0, items),
        [
            (pause, Interrupt(turn_id=1, action=InterruptAction.PAUSE)),
            (resume, Interrupt(turn_id=1, action=InterruptAction.RESUME)),
        ],
    ).run()

    times = run.played_times
    assert all(t <= pause + FRAME for t in times if t < resume)
    assert next(t for t in times if t > pause) == pytest.approx(resume)
    assert [f for _, f in run.io.played] == [a.frame for a in items if a.frame is not None]
    assert [t - run.start for t in run.io.cleared] == pytest.approx([pause])
    assert run.events == [
        (1, PlayoutEvent.STARTED),
        (1, PlayoutEvent.PAUSED),
        (1, PlayoutEvent.RESUMED),
        (1, PlayoutEvent.FINISHED),
    ]
    assert run.report(PlayoutEvent.PAUSED).played_duration == pytest.approx(0.32)
    assert run.report(PlayoutEvent.FINISHED).played_duration == pytest.approx(1.0)


@pytest.mark.looptime
async def test_flush_mid_sentence_reports_the_words_heard() -> None:
    items = reply(1, ("one two three four five six seven eight nine ten", 1.0), ("Never.", 0.2))
    late = reply(1, ("Arrives after the flush.", 0.2))
    run = await Sink(
        at(0.0, items) + at(0.7, late),
        [(0.51, Interrupt(turn_id=1, action=InterruptAction.FLUSH))],
    ).run()

    assert run.events == [(1, PlayoutEvent.STARTED), (1, PlayoutEvent.INTERRUPTED)]
    cut = run.report(PlayoutEvent.INTERRUPTED)
    assert len(run.io.played) == 26  # frames at 0.00 .. 0.50
    assert cut.played_duration == pytest.approx(0.52)
    assert cut.played_text == "one two three four five"  # 52% of ten words, cut at a word
    assert max(run.played_times) <= 0.51
    assert [t - run.start for t in run.io.cleared] == pytest.approx([0.51])


def streamed(
    turn: int, segment: int, text: str, seconds: float, *, start: float, lead: float
) -> list[tuple[float, AgentAudio]]:
    """A sentence's frames arriving at playback pace, each ``lead`` seconds before it plays."""
    frames = tone(seconds)
    return [
        (max(0.0, start + index * FRAME - lead),
         AgentAudio(turn_id=turn, frame=frame, text=text, segment=segment))
        for index, frame in enumerate(frames)
    ]


@pytest.mark.looptime
async def test_a_sentence_streamed_at_playback_pace_is_cut_by_the_voices_speaking_rate() -> None:
    # The first sentence arrives whole: 24 characters in 0.48 s teach the rate (0.02 s a
    # character). The second (48 characters, 0.96 s) arrives two frames ahead of playback,
    # so at the flush the sink has received 0.56 s of it and played 0.52 s: of the audio
    # received that would be nine words of ten heard; of the 0.96 s the rate gives, five.
    first = reply(1, ("one two three four five.", 0.48), final=False)
    second = "six seven eight nine ten eleven twelve thirteen."
    items = at(0.0, first) + streamed(1, 1, second, 0.96, start=0.48, lead=0.04)
    flush = Interrupt(turn_id=1, action=InterruptAction.FLUSH)
    run = await Sink(items, [(0.48 + 0.51, flush)]).run()

    cut = run.report(PlayoutEvent.INTERRUPTED)
    assert cut.played_duration == pytest.approx(0.48 + 0.52)
    assert cut.played_text == "one two three four five. six seven eight nine ten"


@pytest.mark.looptime
async def test_a_first_sentence_still_arriving_is_cut_by_the_default_rate() -> None:
    # No sentence timed yet: 40 characters are expected to take 40 x 0.055 = 2.2 s. Half
    # of them played, and only a frame more received: the first half of the words.
    text = "alpha bravo charlie delta echo foxtrot g"
    assert len(text) == 40
    seconds = round(len(text) * DEFAULT_SECONDS_PER_CHAR, 2)
    items = streamed(1, 0, text, seconds, start=0.0, lead=0.02)
    run = await Sink(items, [(1.11, Interrupt(turn_id=1, action=InterruptAction.FLUSH))]).run()

    cut = run.report(PlayoutEvent.INTERRUPTED)
    assert cut.played_duration == pytest.approx(1.12)
    assert cut.played_text == "alpha bravo charlie"  # 20.4 of 40 characters; "delta" ends at 25


@pytest.mark.looptime
async def test_a_sentence_received_faster_than_its_expected_length_is_cut_by_its_audio() -> None:
    # "Hi there friend" is expected to last 0.8 s, but 2.0 s of it has arrived at once (a
    # slow voice, not yet complete): the share is taken of the audio received.
    items = at(0.0, reply(1, ("Hi there friend", 2.0), final=False))
    run = await Sink(items, [(1.41, Interrupt(turn_id=1, action=InterruptAction.FLUSH))]).run()
    assert run.report(PlayoutEvent.INTERRUPTED).played_text == "Hi there"  # 71% of 15 chars


@pytest.mark.looptime
async def test_audio_of_an_older_turn_is_dropped() -> None:
    newer = reply(2, ("The newer reply.", 0.1))
    older = reply(1, ("A stale reply.", 0.1))
    run = await Sink(at(0.0, newer) + at(0.05, older)).run()
    assert [f for _, f in run.io.played] == [a.frame for a in newer if a.frame is not None]
    assert run.events == [(2, PlayoutEvent.STARTED), (2, PlayoutEvent.FINISHED)]


@pytest.mark.looptime
async def test_a_newer_turn_interrupts_the_reply_playing() -> None:
    older = reply(1, ("one two three four five six seven eight nine ten", 1.0))
    newer = reply(2, ("The answer to the new turn.", 0.2))
    run = await Sink(at(0.0, older) + at(0.3, newer)).run()

    assert run.events == [
        (1, PlayoutEvent.STARTED),
        (1, PlayoutEvent.INTERRUPTED),
        (2, PlayoutEvent.STARTED),
        (2, PlayoutEvent.FINISHED),
    ]
    turn_of = {id(a.frame): a.turn_id for a in older + newer if a.frame is not None}
    played = [(t - run.start, turn_of[id(f)]) for t, f in run.io.played]
    assert all(t <= 0.3 for t, turn in played if turn == 1)
    assert sum(turn == 2 for _, turn in played) == 10
    assert run.report(PlayoutEvent.INTERRUPTED).played_text == "one two three"  # 0.32 s
    assert [t - run.start for t in run.io.cleared] == pytest.approx([0.3])


@pytest.mark.looptime
async def test_a_playout_marker_is_reached_once_the_audio_before_it_has_played() -> None:
    first = reply(1, ("Let me put you through.", 0.4), final=False)
    # The marker behind the first sentence, the second sentence sent at once after it.
    marker = AgentAudio(turn_id=1, frame=None, mark=7)
    second = [dataclasses.replace(item, segment=item.segment + 1)
              for item in reply(1, ("Hold on.", 0.2))]
    items = [*first, marker, *second]
    # Before its reply, a marker of the next turn, whose reply has nothing before it here:
    # reached at once, without cutting the reply playing.
    early = AgentAudio(turn_id=2, frame=None, mark=8)
    run = await Sink(at(0.0, items) + at(0.1, [early])).run()
    reached = [(t - run.start, p) for t, p in run.playout.items
               if p.event is PlayoutEvent.REACHED]
    assert [(p.turn_id, p.mark) for _, p in reached] == [(2, 8), (1, 7)]
    assert reached[0][0] == pytest.approx(0.1)
    # As the first sentence's last frame starts (a paced write returns then).
    assert reached[1][0] == pytest.approx(0.4 - FRAME)
    assert reached[1][1].played_text == "Let me put you through."
    assert run.events == [(1, PlayoutEvent.STARTED), (2, PlayoutEvent.REACHED),
                          (1, PlayoutEvent.REACHED), (1, PlayoutEvent.FINISHED)]
    assert len(run.io.played) == 30


# A LiveKit AudioSource's queue: write returns up to this long before its frame is heard.
QUEUE = 0.2


def time_of(run: Sink, event: PlayoutEvent) -> float:
    (found,) = [t - run.start for t, p in run.playout.items if p.event is event]
    return found


def heard_samples(run: Sink) -> np.ndarray:
    return np.concatenate([np.frombuffer(f.data, np.int16) for _, f in run.io.played])


def reply_samples(items: list[AgentAudio]) -> np.ndarray:
    return np.concatenate([np.frombuffer(a.frame.data, np.int16) for a in items if a.frame])


@pytest.mark.looptime
async def test_a_queued_output_reports_markers_and_the_end_once_they_are_heard() -> None:
    first = reply(1, ("Let me put you through.", 0.4), final=False)
    marker = AgentAudio(turn_id=1, frame=None, mark=7)
    second = [dataclasses.replace(item, segment=item.segment + 1)
              for item in reply(1, ("Hold on.", 0.2))]
    run = await Sink(at(0.0, [*first, marker, *second]), output_queue=QUEUE).run()

    # The last write returns QUEUE before its frame ends; the reports wait for the ears.
    assert run.events == [(1, PlayoutEvent.STARTED), (1, PlayoutEvent.REACHED),
                          (1, PlayoutEvent.FINISHED)]
    assert time_of(run, PlayoutEvent.REACHED) == pytest.approx(0.4)
    assert time_of(run, PlayoutEvent.FINISHED) == pytest.approx(0.6)
    assert run.report(PlayoutEvent.FINISHED).played_duration == pytest.approx(0.6)
    assert run.played_times == pytest.approx([i * FRAME for i in range(30)])


@pytest.mark.looptime
async def test_a_flush_on_a_queued_output_reports_only_what_was_heard() -> None:
    items = reply(1, ("one two three four five six seven eight nine ten", 1.0))
    run = await Sink(
        at(0.0, items),
        [(0.51, Interrupt(turn_id=1, action=InterruptAction.FLUSH))],
        output_queue=QUEUE,
    ).run()

    cut = run.report(PlayoutEvent.INTERRUPTED)
    # Written by then: 0.72 s (the queue ahead of the ears); heard: 0.51 s.
    assert cut.played_duration == pytest.approx(0.51)
    assert cut.played_text == "one two three four five"
    assert len(heard_samples(run)) == round(0.51 * 24_000)
    assert run.io.transcripts[-1].text == "one two three four five"


@pytest.mark.looptime
async def test_interim_transcripts_of_a_queued_output_never_run_ahead_of_the_ears() -> None:
    text = "one two three four five six seven eight nine ten."
    run = Sink(at(0.0, reply(1, (text, 1.0))), output_queue=QUEUE)
    published = published_over_time(run)
    await run.run()

    interims = [(t, s) for t, s in published if not s.final]
    assert len(interims) >= 7  # the last words are written before they play: in the final
    for when, interim in interims:
        # The audio of the words published had played (their end's share of 1.0 s).
        assert len(interim.text) / len(text) <= when + 1e-6
    assert published[-1][1].final and published[-1][1].text == text


@pytest.mark.looptime
async def test_a_paused_reply_on_a_queued_output_resumes_where_the_listener_was() -> None:
    items = reply(1, ("A whole second of speech for the pause test.", 1.0))
    pause, resume = 0.31, 1.0
    run = await Sink(
        at(0.0, items),
        [
            (pause, Interrupt(turn_id=1, action=InterruptAction.PAUSE)),
            (resume, Interrupt(turn_id=1, action=InterruptAction.RESUME)),
        ],
        output_queue=QUEUE,
    ).run()

    # The queued audio the pause dropped plays again: the listener hears every sample once.
    assert np.array_equal(heard_samples(run), reply_samples(items))
    assert run.report(PlayoutEvent.PAUSED).played_duration == pytest.approx(pause)
    done = run.report(PlayoutEvent.FINISHED)
    assert done.played_duration == pytest.approx(1.0)
    assert time_of(run, PlayoutEvent.FINISHED) == pytest.approx(resume + 1.0 - pause)


@pytest.mark.looptime
async def test_a_sentence_a_pause_took_back_whole_is_announced_once() -> None:
    items = reply(1, ("First one.", 0.2), ("Second.", FRAME), ("Third sentence here.", 0.5))
    # At 0.19 the output holds up to 0.39: the second sentence's one frame goes back whole,
    # and its played time returns to exactly 0.
    run = await Sink(
        at(0.0, items),
        [
            (0.19, Interrupt(turn_id=1, action=InterruptAction.PAUSE)),
            (0.5, Interrupt(turn_id=1, action=InterruptAction.RESUME)),
        ],
        output_queue=QUEUE,
    ).run()

    assert run.report(PlayoutEvent.PAUSED).played_text == "First"
    spoken = [s.text for _, s in run.transcripts.items]
    assert spoken == ["First one.", "Second.", "Third sentence here."]
    assert np.array_equal(heard_samples(run), reply_samples(items))


@pytest.mark.looptime
async def test_a_pause_while_a_queued_end_plays_holds_the_end_back_too() -> None:
    items = reply(1, ("Short.", 0.3))
    pause, resume = 0.25, 0.5  # all written by 0.1; the end is still in the queue
    run = await Sink(
        at(0.0, items),
        [
            (pause, Interrupt(turn_id=1, action=InterruptAction.PAUSE)),
            (resume, Interrupt(turn_id=1, action=InterruptAction.RESUME)),
        ],
        output_queue=QUEUE,
    ).run()

    assert run.events == [(1, PlayoutEvent.STARTED), (1, PlayoutEvent.PAUSED),
                          (1, PlayoutEvent.RESUMED), (1, PlayoutEvent.FINISHED)]
    assert np.array_equal(heard_samples(run), reply_samples(items))
    assert time_of(run, PlayoutEvent.FINISHED) == pytest.approx(resume + 0.3 - pause)


@pytest.mark.looptime
async def test_a_newer_reply_lets_the_queued_end_of_the_last_one_play() -> None:
    older = reply(1, ("one two three four five", 0.5))
    newer = reply(2, ("The answer to the new turn.", 0.2))
    # By 0.35 the older reply is all written (at 0.3) and its last 0.15 s are queued.
    run = await Sink(at(0.0, older) + at(0.35, newer), output_queue=QUEUE).run()

    assert run.events == [(1, PlayoutEvent.STARTED), (1, PlayoutEvent.FINISHED),
                          (2, PlayoutEvent.STARTED), (2, PlayoutEvent.FINISHED)]
    finished = [p for _, p in run.playout.items if p.event is PlayoutEvent.FINISHED]
    assert finished[0].played_text == "one two three four five"
    assert np.array_equal(heard_samples(run), reply_samples(older + newer))
    assert run.played_times == pytest.approx([i * FRAME for i in range(35)])


@pytest.mark.looptime
async def test_a_reply_still_paused_when_the_inputs_end_is_interrupted() -> None:
    run = await Sink(
        at(0.0, reply(1, ("Paused and never resumed.", 0.5))),
        [(0.1, Interrupt(turn_id=1, action=InterruptAction.PAUSE))],
    ).run()
    assert run.events[-1] == (1, PlayoutEvent.INTERRUPTED)
    assert len(run.io.played) == 6


@pytest.mark.looptime
async def test_unpaced_output_plays_everything_at_once() -> None:
    items = reply(1, ("Fast as a file.", 0.4))
    run = await Sink(at(0.0, items), paced=False).run()
    assert len(run.io.played) == 20
    assert set(run.played_times) == {0.0}
    assert run.events == [(1, PlayoutEvent.STARTED), (1, PlayoutEvent.FINISHED)]


@pytest.mark.looptime
async def test_sink_refuses_a_second_audio_format() -> None:
    a = AgentAudio(turn_id=1, frame=tone(0.02)[0], text="At 24 kHz.")
    b = AgentAudio(turn_id=1, frame=tone(0.02, rate=16_000)[0], text="At 16 kHz.", segment=1)
    g = fk.Graph("formats")
    g.add(Script((0.0, a), (0.0, b))) >> g.add(
        RoomSink(), error_policy=fk.ErrorPolicy.END_GRAPH
    )
    with pytest.raises(fk.GraphFailed, match="16 kHz mono audio after 24 kHz mono"):
        await fk.GraphRunner(g, job=fk.JobContext(io=MemoryIO())).run()


@pytest.mark.looptime
async def test_tts_into_the_sink_plays_the_whole_reply() -> None:
    s1, s2 = "The first sentence is here.", "The second sentence follows it."
    io = MemoryIO(paced=True)
    g = fk.Graph("speak")
    playout, spoken = Collect(), Collect()
    sink = g.add(RoomSink())
    text = Script(
        (0.0, TextChunk(turn_id=4, text=s1 + " The second")),
        (0.2, TextChunk(turn_id=4, text=" sentence follows it.", final=True)),
    )
    g.add(text) >> TTS(FakeTTS(seconds_per_char=0.02, ttfa=0.1)) >> sink >> playout
    sink.transcripts >> spoken
    await fk.GraphRunner(g, job=fk.JobContext(io=io)).run()
    events = collected(playout)
    assert [p.event for p in events] == [PlayoutEvent.STARTED, PlayoutEvent.FINISHED]
    assert events[-1].played_text == f"{s1} {s2}"
    assert events[-1].played_duration == pytest.approx(0.02 * (len(s1) + len(s2)), abs=0.021)
    assert [t.text for t in collected(spoken)] == [s1, s2]


@pytest.mark.looptime
async def test_a_reply_that_may_not_be_interrupted_says_so_in_its_audio_and_playout() -> None:
    io = MemoryIO(paced=True)
    g = fk.Graph("speak")
    audio, playout = Collect(), Collect()
    sink = g.add(RoomSink())
    tts = g.add(TTS(FakeTTS(seconds_per_char=0.02, ttfa=0.1)))
    text = Script(
        (0.0, TextChunk(turn_id=4, text="Please hold.", final=True, allow_interruptions=False)),
        (1.0, TextChunk(turn_id=5, text="Go ahead.", final=True)),
    )
    g.add(text) >> tts >> sink >> playout
    tts >> audio
    await fk.GraphRunner(g, job=fk.JobContext(io=io)).run()
    flags = {(a.turn_id, a.allow_interruptions) for a in collected(audio)}
    assert flags == {(4, False), (5, True)}
    reports = [(p.turn_id, p.event, p.allow_interruptions) for p in collected(playout)]
    assert reports == [
        (4, PlayoutEvent.STARTED, False), (4, PlayoutEvent.FINISHED, False),
        (5, PlayoutEvent.STARTED, True), (5, PlayoutEvent.FINISHED, True),
    ]


@pytest.mark.looptime
@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize("protected", [False, True])
async def test_a_flush_that_is_not_forced_leaves_a_protected_reply_alone(
    force: bool, protected: bool
) -> None:
    # What typed text and key presses send: Interrupt(turn_id=0, force=False).
    io = MemoryIO(paced=True)
    g = fk.Graph("speak")
    playout = Collect()
    sink = g.add(RoomSink())
    tts = g.add(TTS(FakeTTS(seconds_per_char=0.05, ttfa=0.1)))
    first, second = "Please hold.", "I am checking your account."
    words, allow = f"{first} {second}", not protected
    text = Script(  # the second sentence reaches TTS after the flush
        (0.0, TextChunk(turn_id=4, text=first + " ", flush=True, allow_interruptions=allow)),
        (1.0, TextChunk(turn_id=4, text=second, final=True, allow_interruptions=allow)),
    )
    flush = Interrupt(turn_id=0, action=InterruptAction.FLUSH, reason="dtmf", force=force)
    interrupts = Script((0.4, flush), end_at=3.0)  # while the first sentence plays
    g.add(text) >> tts >> sink >> playout
    g.add(interrupts) >> tts.interrupt
    interrupts >> sink.interrupt
    await fk.GraphRunner(g, job=fk.JobContext(io=io)).run()
    last: Playout = collected(playout)[-1]
    if protected and not force:
        assert last.event is PlayoutEvent.FINISHED and last.played_text == words
    else:
        assert last.event is PlayoutEvent.INTERRUPTED
        assert len(last.played_text) < len(words)


# ---------------------------------------------------------------------------- RoomSource


@pytest.mark.looptime
async def test_room_source_delivers_the_declared_format() -> None:
    source = RoomSource(16_000, 1)
    assert source.audio.format == fk.AudioFormat(16_000, 1)
    g = fk.Graph("hear")
    out = Collect()
    g.add(source) >> out
    io = MemoryIO(tone(1.0, rate=48_000, channels=2))
    await fk.GraphRunner(g, job=fk.JobContext(io=io)).run()
    frames: list[rtc.AudioFrame] = collected(out)
    assert {(f.sample_rate, f.num_channels) for f in frames} == {(16_000, 1)}
    assert sum(f.samples_per_channel for f in frames) == 16_000


@pytest.mark.looptime
async def test_room_source_passes_frames_of_the_right_format_untouched() -> None:
    frames = tone(0.2, rate=48_000)
    g = fk.Graph("hear")
    out = Collect()
    g.add(RoomSource()) >> out
    await fk.GraphRunner(g, job=fk.JobContext(io=MemoryIO(frames))).run()
    assert all(a is b for a, b in zip(collected(out), frames, strict=True))


class PushInput:
    """A push-style input: the test plays the transport's callback."""

    def __init__(self) -> None:
        self.on_frame: Callable[[rtc.AudioFrame], None] | None = None
        self.ended = asyncio.Event()

    def frames(self) -> AsyncIterator[rtc.AudioFrame]:
        raise AssertionError("RoomSource must take a push input's frames through deliver()")

    async def deliver(self, on_frame: Callable[[rtc.AudioFrame], None]) -> None:
        self.on_frame = on_frame
        await self.ended.wait()


class PushIO:
    def __init__(self) -> None:
        self.input = PushInput()

    def audio_input(
        self, sample_rate: int, num_channels: int, participant: str | None = None
    ) -> PushInput:
        return self.input

    def audio_output(self, sample_rate: int, num_channels: int) -> MemoryIO:
        raise AssertionError("no output in this test")

    def publish_transcript(self, transcript: Transcript) -> None:
        return None


async def test_room_source_takes_a_push_input_frame_by_frame_where_it_arrives() -> None:
    seen: list[rtc.AudioFrame] = []

    @fk.node
    def hear(frame: rtc.AudioFrame) -> None:
        seen.append(frame)

    io = PushIO()
    assert isinstance(io.input, PushAudioInput)
    g = fk.Graph("pushed")
    g.add(RoomSource()) >> hear()
    runner = fk.GraphRunner(g, job=fk.JobContext(io=io))
    await runner.start()
    await asyncio.sleep(0)
    assert io.input.on_frame is not None
    frames = tone(0.1, rate=48_000)
    for index, frame in enumerate(frames):
        io.input.on_frame(frame)
        # Delivered inside the transport's call: the graph has it before the call returns.
        assert len(seen) == index + 1 and seen[-1] is frame
    io.input.ended.set()
    await asyncio.wait_for(runner.wait(), 1.0)
    await runner.close()
    assert seen == frames


@pytest.mark.parametrize("job", [None, fk.JobContext()])
async def test_room_source_without_io_names_the_remedy(job: fk.JobContext | None) -> None:
    g = fk.Graph("no-io")
    g.add(RoomSource(), error_policy=fk.ErrorPolicy.END_GRAPH) >> Collect()
    with pytest.raises(fk.GraphFailed) as failed:
        await fk.GraphRunner(g, job=job).run()
    message = str(failed.value.node_error.error)
    assert "flowkit run" in message and "JobContext(io=" in message


async def test_room_source_without_io_ends_the_graph_after_its_restarts() -> None:
    g = fk.Graph("no-io")
    g.add(RoomSource()) >> Collect()
    runner = fk.GraphRunner(g)
    with pytest.raises(fk.GraphFailed, match="flowkit run"):
        await runner.run()
    assert len(runner.node_errors) == RoomSource.max_restarts + 1


@pytest.mark.looptime
async def test_transcript_publisher_publishes() -> None:
    class Lines(Script):
        out: fk.Out[Transcript]

    said = [Transcript(turn_id=1, text="hi"), Transcript(turn_id=1, text="bye", speaker="agent")]
    g = fk.Graph("publish")
    g.add(Lines(*((0.0, t) for t in said))) >> TranscriptPublisher()
    io = MemoryIO()
    await fk.GraphRunner(g, job=fk.JobContext(io=io)).run()
    assert io.transcripts == said


# ---------------------------------------------------------------------------- MemoryIO


@pytest.mark.looptime
async def test_memory_io_paces_input_on_the_loop_clock() -> None:
    io = MemoryIO(tone(0.2, rate=16_000), paced=True)
    loop = asyncio.get_running_loop()
    start = loop.time()
    times = [loop.time() - start async for _ in io.audio_input(16_000, 1).frames()]
    assert times == pytest.approx([k * FRAME for k in range(10)])


@pytest.mark.looptime
async def test_memory_io_unpaced_input_is_immediate() -> None:
    io = MemoryIO(tone(0.2, rate=16_000))
    loop = asyncio.get_running_loop()
    start = loop.time()
    frames = [f async for f in io.audio_input(16_000, 1).frames()]
    assert len(frames) == 10 and loop.time() == start


@pytest.mark.looptime
async def test_memory_io_live_pushes_follow_the_script() -> None:
    io = MemoryIO({"alice": []}, paced=True, live=True)
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def user() -> None:
        await asyncio.sleep(1.0)
        for frame in tone(0.1, rate=16_000):
            io.push_audio(frame)
        await asyncio.sleep(2.0)
        io.push_audio(tone(0.02, rate=16_000)[0], "alice")
        io.end_audio()

    speaking = asyncio.create_task(user())
    times = [loop.time() - start async for _ in io.audio_input(16_000, 1, "alice").frames()]
    await speaking
    assert times == pytest.approx([1.0, 1.02, 1.04, 1.06, 1.08, 3.0])
    with pytest.raises(RuntimeError, match="after its input ended"):
        io.push_audio(tone(0.02)[0])
    with pytest.raises(KeyError, match="'bob'"):
        io.audio_input(16_000, 1, "bob")


@pytest.mark.looptime
async def test_memory_io_paced_output_returns_when_each_frame_is_due() -> None:
    io = MemoryIO(paced=True)
    out = io.audio_output(24_000, 1)
    loop = asyncio.get_running_loop()
    start = loop.time()
    returned = []
    for frame in tone(0.06):
        await out.write(frame)
        returned.append(loop.time() - start)
    assert returned == pytest.approx([0.0, 0.02, 0.04])
    out.clear()  # the frame playing since 0.04 stops now: the next one plays at once
    await out.write(tone(0.02)[0])
    await out.aclose()
    assert loop.time() - start == pytest.approx(0.06)
    assert [t - start for t, _ in io.played] == pytest.approx([0.0, 0.02, 0.04, 0.04])
    assert io.played_duration == pytest.approx(0.08)
    with pytest.raises(ValueError, match="opened at 24 kHz mono"):
        await io.audio_output(24_000, 1).write(tone(0.02, rate=16_000)[0])


@pytest.mark.looptime
async def test_memory_io_tracks_are_recorded_apart_from_the_voice() -> None:
    io = MemoryIO(paced=True)
    start = asyncio.get_running_loop().time()
    assert isinstance(io, TrackOutputs)
    voice, background = io.audio_output(24_000, 1), io.track_output("bg", 24_000, 1)
    assert io.track_output("bg", 24_000, 1) is background
    with pytest.raises(ValueError, match="track 'bg' is open at 24 kHz mono, not 16 kHz mono"):
        io.track_output("bg", 16_000, 1)
    await asyncio.gather(voice.write(tone(0.02)[0]), background.write(tone(0.02)[0]))
    await background.write(tone(0.02)[0])
    assert len(io.played) == 1
    assert [t - start for t, _ in io.tracks["bg"]] == pytest.approx([0.0, 0.02], abs=1e-6)


@pytest.mark.looptime
async def test_an_interrupt_without_a_turn_flushes_the_current_reply() -> None:
    run = await Sink(
        at(0.0, reply(5, ("one two three four five six seven eight nine ten", 1.0))),
        [(0.21, Interrupt())],  # turn 0, FLUSH: "whatever is playing"
    ).run()
    assert run.events == [(5, PlayoutEvent.STARTED), (5, PlayoutEvent.INTERRUPTED)]
    assert run.report(PlayoutEvent.INTERRUPTED).played_text == "one two"
    assert len(run.io.played) == 11


@pytest.mark.looptime
async def test_a_flush_of_a_turn_whose_audio_never_came_reports_its_end_once() -> None:
    flush6 = Interrupt(turn_id=6, action=InterruptAction.FLUSH, reason="code")
    run = await Sink(
        at(0.0, reply(5, ("one two three", 0.2))) + at(0.5, reply(6, ("four five", 0.2))),
        [(0.11, flush6), (0.2, flush6), (0.3, Interrupt(turn_id=5))],
    ).run()
    # A flush names its turn and every older one: reply 5 is cut where it was; 6 had no
    # audio here and will have none (it is dropped), so it ends as named, nothing played.
    # A flush already made reports nothing again, nor does one naming an older turn.
    assert run.events == [
        (5, PlayoutEvent.STARTED), (5, PlayoutEvent.INTERRUPTED), (6, PlayoutEvent.INTERRUPTED)
    ]
    six = run.playout.items[2]
    assert six[0] - run.start == pytest.approx(0.11)
    assert (six[1].played_text, six[1].played_duration) == ("", 0.0)
    assert len(run.io.played) == 6  # reply 5's frames begun by 0.11 s, nothing of 6


# ------------------------------------------------------------------- word timings (TTS)


def timed(turn: int, text: str, seconds: float, words: list[tuple[float, float]],
          *, final: bool = True) -> list[AgentAudio]:
    """One sentence whose TTS timed its words, all given with its first frame."""
    timings = tuple(
        TimedWord(word, start, end) for word, (start, end) in zip(text.split(), words, strict=True)
    )
    items = [
        AgentAudio(turn_id=turn, frame=frame, text=text, words=timings if not index else ())
        for index, frame in enumerate(tone(seconds))
    ]
    if final:
        items.append(AgentAudio(turn_id=turn, frame=None, segment=1, final=True))
    return items


# A long first word: by the share of characters its end is 2/3 of the way in, by its timing
# a quarter. The timings are what the listener heard.
LONG_FIRST = "Supercalifragilistic is a word"
LONG_FIRST_TIMES = [(0.0, 0.3), (0.3, 0.5), (0.5, 0.6), (0.6, 0.9)]


@pytest.mark.looptime
async def test_a_reply_with_timed_words_is_cut_at_the_words_that_ended() -> None:
    items = timed(1, LONG_FIRST, 1.0, LONG_FIRST_TIMES)
    run = await Sink(
        at(0.0, items), [(0.51, Interrupt(turn_id=1, action=InterruptAction.FLUSH))]
    ).run()
    cut = run.report(PlayoutEvent.INTERRUPTED)
    assert cut.played_duration == pytest.approx(0.52)
    # By characters (0.52 of 30) no word had ended yet; by the timings two had.
    assert cut.played_text == "Supercalifragilistic is"


@pytest.mark.looptime
async def test_the_published_transcript_follows_the_timed_words() -> None:
    run = Sink(at(0.0, timed(1, LONG_FIRST, 1.0, LONG_FIRST_TIMES)))
    published = published_over_time(run)
    run.start = asyncio.get_running_loop().time()
    await run.run()

    interims = [(t, s.text) for t, s in published if not s.final]
    # Each word appears as the frame holding its end starts playing (a paced output counts
    # a frame as played when it starts): ends at 0.3, 0.5, 0.6 and 0.9 s.
    assert [text for _, text in interims] == [
        "Supercalifragilistic", "Supercalifragilistic is", "Supercalifragilistic is a",
        LONG_FIRST,
    ]
    assert [t for t, _ in interims] == pytest.approx([0.28, 0.48, 0.58, 0.88])
    assert published[-1][1].final and published[-1][1].text == LONG_FIRST


@pytest.mark.looptime
async def test_timed_words_need_no_speaking_rate_while_the_sentence_still_arrives() -> None:
    # The sentence streams two frames ahead of playback, so at the cut the sink has 0.56 s
    # of its 1.0 s. Without timings the share would be taken of the 30 characters' 1.65 s
    # by the default rate (no word ended); the timings say two words were heard.
    items = timed(1, LONG_FIRST, 1.0, LONG_FIRST_TIMES, final=False)
    script = [(max(0.0, index * FRAME - 0.04), item) for index, item in enumerate(items)]
    run = await Sink(script, [(0.51, Interrupt(turn_id=1, action=InterruptAction.FLUSH))]).run()
    assert run.report(PlayoutEvent.INTERRUPTED).played_text == "Supercalifragilistic is"


@pytest.mark.looptime
async def test_tts_word_timings_reach_the_sink_as_the_written_words() -> None:
    # FakeTTS(word_timings=True) gives each spoken word an equal share of the audio. The
    # TTS node speaks the sentence without its markdown and emoji and hands the sink the
    # timings of the words as written; "🎉" was not spoken, so it ends where "Big" does.
    written = "**Big** 🎉 congratulations to everyone here today."
    io = MemoryIO(paced=True)
    g = fk.Graph("timed")
    tts = FakeTTS(seconds_per_char=0.02, ttfa=0.0, word_timings=True)
    audio, playout = Collect(), Collect()
    sink = g.add(RoomSink())
    speech = g.add(Script((0.0, TextChunk(turn_id=2, text=written, final=True)))) >> TTS(tts)
    speech >> audio
    speech >> sink >> playout
    await fk.GraphRunner(g, job=fk.JobContext(io=io)).run()

    assert tts.texts == ["Big congratulations to everyone here today."]
    words = [w for item in collected(audio) for w in item.words]
    assert [w.text for w in words] == written.split()
    share = len(tts.texts[0]) * 0.02 / 6  # six spoken words, equal shares
    assert [w.start for w in words] == pytest.approx([n * share for n in (0, 1, 1, 2, 3, 4, 5)])
    assert [w.end for w in words] == pytest.approx([n * share for n in (1, 1, 2, 3, 4, 5, 6)])
    assert collected(playout)[-1].played_text == written
