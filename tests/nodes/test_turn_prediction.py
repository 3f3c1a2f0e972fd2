"""TurnPredictor (the audio a model hears at each end of speech) and the TurnDetector's use
of its predictions (the short delay when the turn sounds over, the long one when not)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
from livekit import rtc
from numpy.typing import NDArray
from support import Collect, Script, TimedCollect, collected

import flowkit as fk
from flowkit.messages import TurnPrediction, VADEvent, VADEventKind
from flowkit.nodes import room
from flowkit.nodes.turn import TurnDetector
from flowkit.nodes.turn_prediction import TurnPredictor

RATE = 16_000
FRAME = 320  # 20 ms


class ScriptedTurnModel:
    """Answers with the next of its probabilities and keeps each clip it was given."""

    name = "scripted"
    sample_rate = RATE
    max_seconds = 8.0

    def __init__(self, *answers: float | Exception) -> None:
        self.answers = list(answers)
        self.clips: list[NDArray[np.float32]] = []

    def predict(self, audio: NDArray[np.float32]) -> float:
        self.clips.append(audio.copy())
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def _frames(seconds: float) -> list[tuple[float, rtc.AudioFrame]]:
    """Frames in real time whose samples all hold the frame's index (to find a clip's start)."""
    frames = []
    for index in range(round(seconds * RATE / FRAME)):
        data = np.full(FRAME, index, dtype=np.int16)
        frames.append((index * 0.02, rtc.AudioFrame(data.tobytes(), RATE, 1, FRAME)))
    return frames


def _start(at: float, onset: float) -> tuple[float, VADEvent]:
    return at, VADEvent(kind=VADEventKind.START_OF_SPEECH, timestamp=at, speech_duration=at - onset)


def _end(at: float, speech_ended: float, speech: float = 1.0) -> tuple[float, VADEvent]:
    return at, VADEvent(
        kind=VADEventKind.END_OF_SPEECH, timestamp=at, speech_duration=speech,
        silence_duration=at - speech_ended,
    )


async def _predict(
    model: ScriptedTurnModel, events: list[tuple[float, VADEvent]], seconds: float = 10.0,
    **options: float,
) -> list[TurnPrediction]:
    g = fk.Graph("predict")
    predictor = g.add(TurnPredictor(model, **options), name="predictor")
    g.add(Script(*_frames(seconds)), name="audio") >> predictor
    g.add(Script(*events), name="vad") >> predictor.vad
    out = g.add(Collect(), name="out")
    predictor >> out
    await fk.GraphRunner(g).run()
    return collected(out)


def _first_frame(clip: NDArray[np.float32]) -> int:
    return round(float(clip[0]) * 32768)


@pytest.mark.looptime
async def test_each_end_of_speech_is_judged_on_the_turn_so_far() -> None:
    model = ScriptedTurnModel(0.2, 0.9, 0.8)
    predictions = await _predict(model, [
        _start(0.5, onset=0.4), _end(1.6, speech_ended=1.3),
        _start(2.1, onset=2.0), _end(2.8, speech_ended=2.5),  # the same turn: judged unfinished
        _start(4.1, onset=4.0), _end(5.0, speech_ended=4.7),  # after a complete one: a new turn
    ])
    assert [(p.speech_end, p.probability) for p in predictions] == [
        (1.6, 0.2), (2.8, 0.9), (5.0, 0.8),
    ]
    # Each clip runs from the turn's onset to the end of speech, trailing silence included.
    assert [(_first_frame(c), c.size) for c in model.clips] == [
        (20, round(1.2 * RATE)), (20, round(2.4 * RATE)), (200, round(1.0 * RATE)),
    ]


@pytest.mark.looptime
async def test_a_long_pause_starts_a_new_turn_even_after_an_unfinished_one() -> None:
    model = ScriptedTurnModel(0.1, 0.1)
    await _predict(model, [
        _start(0.5, onset=0.4), _end(1.6, speech_ended=1.3),
        _start(5.1, onset=5.0), _end(6.0, speech_ended=5.7),  # 3.7 s after: over max_pause
    ], max_pause=3.0)
    assert [_first_frame(c) for c in model.clips] == [20, 250]


@pytest.mark.looptime
async def test_the_model_hears_at_most_its_own_window() -> None:
    model = ScriptedTurnModel(0.1)
    model.max_seconds = 2.0
    await _predict(model, [_start(0.5, onset=0.4), _end(6.0, speech_ended=5.7)])
    [clip] = model.clips
    assert clip.size == 2 * RATE and _first_frame(clip) == 200  # the last 2 s, up to 6.0


@pytest.mark.looptime
async def test_a_failing_model_sends_nothing_for_that_end_and_keeps_going(
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = ScriptedTurnModel(RuntimeError("model crashed"), 0.7)
    with caplog.at_level(logging.ERROR, logger="flowkit.node.predictor"):
        predictions = await _predict(model, [
            _start(0.5, onset=0.4), _end(1.6, speech_ended=1.3),
            _start(2.1, onset=2.0), _end(2.8, speech_ended=2.5),
        ])
    assert [p.speech_end for p in predictions] == [2.8]
    assert any("turn model scripted failed" in r.getMessage() for r in caplog.records)


def test_audio_at_another_rate_gets_a_resampler_in_front_of_the_model() -> None:
    g = fk.Graph("wrong-rate")
    source = g.add(room.RoomSource(sample_rate=48_000), name="mic")
    predictor = g.add(TurnPredictor(ScriptedTurnModel()), name="predictor")
    source >> predictor
    g.add(Script(), name="vad") >> predictor.vad
    assert g.problems() == []
    [inserted] = [n for n in g.spec().nodes if n.inserted]
    assert inserted.name == "resample@predictor.audio" and inserted.params["rate"] == RATE


def test_an_object_without_the_model_shape_is_refused() -> None:
    with pytest.raises(TypeError, match="an audio turn model has name, sample_rate"):
        TurnPredictor(object())  # type: ignore[arg-type]


# -- the turn detector ----------------------------------------------------------------------


async def _commit_time(
    predictions: list[tuple[float, TurnPrediction]],
    *,
    transcript_at: float = 1.1,
    text: str = "I would like to book a table for",
    end_of_turn: Any = None,
) -> float:
    """When the turn of one utterance ending at 1.0 s commits (min 0.5 s, max 3.0 s)."""
    g = fk.Graph("turns")
    detector = g.add(
        TurnDetector(
            mode="vad", min_endpointing_delay=0.5, max_endpointing_delay=3.0,
            end_of_turn=end_of_turn,
        ),
        name="turns",
    )
    transcript = fk.Transcript(text=text, final=True)
    # The transcripts and VAD stay open past every delay: their end would commit at once.
    g.add(Script((transcript_at, transcript), end_at=6.0), name="stt") >> detector
    vad = Script(_start(0.3, onset=0.2), _end(1.0, speech_ended=0.7), end_at=6.0)
    g.add(vad, name="vad") >> detector.vad
    g.add(Script(*predictions), name="model") >> detector.predictions
    turns = g.add(TimedCollect(), name="out")
    detector >> turns
    await fk.GraphRunner(g).run()
    [(at, turn)] = [(at, t) for at, t in turns.items if isinstance(t, fk.UserTurn)]
    assert turn.text == text
    return at


def _prediction(probability: float, speech_end: float = 1.0) -> TurnPrediction:
    return TurnPrediction(probability=probability, speech_end=speech_end)


@pytest.mark.looptime
@pytest.mark.parametrize(
    ("predictions", "commits_at"),
    [
        ([(1.1, _prediction(0.9))], 1.5),  # sounds finished: the short delay
        ([(1.1, _prediction(0.1))], 4.0),  # sounds unfinished: the long one
        ([], 1.5),  # no prediction by the short delay's end: not waited for
        ([(1.7, _prediction(0.1))], 1.5),  # too late to count
        ([(1.1, _prediction(0.1, speech_end=0.2))], 1.5),  # judges another end of speech
    ],
    ids=["finished", "unfinished", "none", "late", "other-end"],
)
async def test_the_detector_waits_long_only_when_the_voice_says_the_turn_goes_on(
    predictions: list[tuple[float, TurnPrediction]], commits_at: float
) -> None:
    assert await _commit_time(predictions) == pytest.approx(commits_at, abs=0.03)


@pytest.mark.looptime
async def test_a_late_prediction_stays_unused_when_a_late_transcript_re_times_the_turn() -> None:
    # The transcript comes after the short delay (a slow recogniser): the turn commits at
    # once, as without a model, although an "unfinished" prediction came meanwhile.
    at = await _commit_time([(1.8, _prediction(0.05))], transcript_at=2.0)
    assert at == pytest.approx(2.0, abs=0.03)


@pytest.mark.looptime
async def test_a_prediction_outweighs_the_text_hook() -> None:
    asked: list[str] = []

    def text_model(text: str) -> float:
        asked.append(text)
        return 0.0  # would pick the long delay

    at = await _commit_time([(1.1, _prediction(0.95))], text="Thanks.", end_of_turn=text_model)
    assert at == pytest.approx(1.5, abs=0.03)
    assert asked == []


@pytest.mark.looptime
async def test_predictions_are_not_waited_for_without_speech_events() -> None:
    # Timed by transcripts alone, a turn has no end of speech a prediction could answer.
    g = fk.Graph("stt-only")
    detector = g.add(
        TurnDetector(mode="stt", min_endpointing_delay=0.5, max_endpointing_delay=3.0),
        name="turns",
    )
    said = Script((0.0, fk.Transcript(text="hello", final=True)), end_at=5.0)
    g.add(said, name="stt") >> detector
    g.add(Script((0.1, _prediction(0.0)), end_at=5.0), name="model") >> detector.predictions
    turns = g.add(TimedCollect(), name="out")
    detector >> turns
    await fk.GraphRunner(g).run()
    [at] = [at for at, t in turns.items if isinstance(t, fk.UserTurn)]
    assert at == pytest.approx(0.5, abs=0.03)
