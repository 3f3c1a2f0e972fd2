"""EnergyVAD on synthetic audio: a 300 Hz harmonic 'voice' between stretches of quiet noise."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt
import pytest

from flowkit.messages import VADEventKind
from flowkit.vad import (
    EnergyVAD,
    EnergyVADOptions,
    EnergyVADStream,
    SpeechOptions,
    VADDecision,
    VADProvider,
    VADStream,
    WindowedVADStream,
    check_pcm,
)

START = VADEventKind.START_OF_SPEECH
END = VADEventKind.END_OF_SPEECH
RATE = 16_000
Float = npt.NDArray[np.float64]


def voice(rate: int, seconds: float, level_db: float = -20.0, f0: float = 300.0) -> Float:
    """A harmonic tone at an RMS level in dBFS: crude, but speech-like in level and band."""
    t = np.arange(round(rate * seconds)) / rate
    x = sum(np.sin(2 * np.pi * f0 * k * t + k) / k for k in range(1, 6))
    x = np.asarray(x, dtype=np.float64)
    scaled: Float = x / np.sqrt(np.mean(x**2)) * 10 ** (level_db / 20)
    return scaled


def quiet(rate: int, seconds: float) -> Float:
    return np.zeros(round(rate * seconds))


def to_pcm(parts: Sequence[Float], noise_db: float | None = -65.0, seed: int = 7) -> np.ndarray:
    """Join parts and add white noise at an RMS level in dBFS (None: no noise)."""
    x = np.concatenate(parts)
    if noise_db is not None:
        x = x + np.random.default_rng(seed).normal(0.0, 10 ** (noise_db / 20), x.size)
    return np.clip(np.round(x * 32768), -32768, 32767).astype(np.int16)


def run(
    pcm: np.ndarray,
    rate: int = RATE,
    options: EnergyVADOptions | None = None,
    piece: float | Iterable[int] = 0.02,
    flush: bool = True,
) -> list[VADDecision]:
    """Push pcm in pieces of `piece` seconds (or of the given sample counts)."""
    stream = EnergyVAD(options).stream()
    sizes: Iterable[int]
    if isinstance(piece, float):
        step = max(1, round(rate * piece))
        sizes = [step] * math.ceil(pcm.size / step)
    else:
        sizes = piece
    out: list[VADDecision] = []
    pos = 0
    for size in sizes:
        out += stream.push(pcm[pos : pos + size], rate)
        pos += size
    assert pos >= pcm.size
    if flush:
        out += stream.flush()
    return out


def is_speaking(stream: EnergyVADStream) -> bool:
    # A function call keeps mypy from narrowing the property across push/flush.
    return stream.speaking


def kinds(decisions: Sequence[VADDecision]) -> list[VADEventKind]:
    return [d.kind for d in decisions]


def test_provider_and_stream_satisfy_the_contract() -> None:
    vad = EnergyVAD()
    assert isinstance(vad, VADProvider)
    assert isinstance(vad.stream(), VADStream)
    assert vad.sample_rate is None
    assert vad.window_ms == 30.0


@pytest.mark.parametrize("rate", [8_000, 16_000, 24_000, 44_100, 48_000])
def test_one_burst_gives_one_start_and_one_end_at_the_right_times(rate: int) -> None:
    opts = EnergyVADOptions()
    win = round(rate * opts.window_ms / 1000) / rate
    onset, length = 1.0, 1.0
    pcm = to_pcm([quiet(rate, onset), voice(rate, length), quiet(rate, 1.5)])

    out = run(pcm, rate, opts)

    assert kinds(out) == [START, END]
    start, end = out
    speech_windows = math.ceil(opts.min_speech_duration / win - 1e-9)
    silence_windows = math.ceil(opts.min_silence_duration / win - 1e-9)
    assert abs(start.timestamp - (onset + speech_windows * win)) <= win
    assert start.speech_duration == pytest.approx(speech_windows * win)
    assert start.silence_duration == 0.0
    assert start.probability >= opts.activation_threshold
    assert abs(end.timestamp - (onset + length + silence_windows * win)) <= win
    assert abs(end.speech_duration - length) <= 2 * win
    assert end.silence_duration == pytest.approx(silence_windows * win)
    assert end.probability <= opts.effective_deactivation_threshold
    # Both decisions agree on where the utterance began.
    assert end.timestamp - end.silence_duration - end.speech_duration == pytest.approx(
        start.timestamp - start.speech_duration
    )
    assert end.speech_samples is None


def test_a_burst_shorter_than_min_speech_duration_gives_no_event() -> None:
    opts = EnergyVADOptions(min_speech_duration=0.25)
    short = to_pcm([quiet(RATE, 1.0), voice(RATE, 0.15), quiet(RATE, 1.0)])
    long = to_pcm([quiet(RATE, 1.0), voice(RATE, 0.4), quiet(RATE, 1.0)])

    assert run(short, options=opts) == []
    # The same options do hear a burst that is long enough.
    assert kinds(run(long, options=opts)) == [START, END]


def test_short_bursts_do_not_add_up_to_min_speech_duration() -> None:
    # 40 ms clicks touch at most two 30 ms windows; four in a row are needed.
    opts = EnergyVADOptions(min_speech_duration=0.12)
    clicks = [part for _ in range(10) for part in (voice(RATE, 0.04), quiet(RATE, 0.2))]
    pcm = to_pcm([quiet(RATE, 0.5), *clicks, quiet(RATE, 1.0)])

    assert run(pcm, options=opts) == []


def test_hysteresis_keeps_speech_that_softens_between_the_thresholds() -> None:
    # A still floor makes probability exact: (level + 60) / 20, so -52 dBFS is 0.4,
    # below activation (0.5) but above deactivation (0.35).
    opts = EnergyVADOptions(noise_floor_rise_db_per_s=0.0)
    loud_then_soft = to_pcm(
        [quiet(RATE, 0.99), voice(RATE, 0.51), voice(RATE, 0.6, -52.0), quiet(RATE, 1.0)]
    )
    soft_only = to_pcm([quiet(RATE, 0.99), voice(RATE, 0.6, -52.0), quiet(RATE, 1.0)])

    out = run(loud_then_soft, options=opts)
    assert kinds(out) == [START, END]
    assert out[1].speech_duration == pytest.approx(1.11, abs=0.031)
    # The same soft voice cannot start an utterance on its own.
    assert run(soft_only, options=opts) == []


def test_a_pause_shorter_than_min_silence_duration_does_not_split_an_utterance() -> None:
    opts = EnergyVADOptions(min_silence_duration=0.55)

    def two_bursts(pause: float) -> np.ndarray:
        return to_pcm(
            [
                quiet(RATE, 0.5),
                voice(RATE, 0.6),
                quiet(RATE, pause),
                voice(RATE, 0.6),
                quiet(RATE, 1.0),
            ]
        )

    joined = run(two_bursts(0.3), options=opts)
    split = run(two_bursts(0.9), options=opts)

    assert kinds(joined) == [START, END]
    assert abs(joined[1].speech_duration - 1.5) <= 0.06
    assert kinds(split) == [START, END, START, END]


@pytest.mark.parametrize("noise_db", [-75.0, -60.0, -50.0, -42.0])
def test_steady_background_noise_gives_no_event(noise_db: float) -> None:
    pcm = to_pcm([quiet(RATE, 5.0)], noise_db=noise_db)

    assert run(pcm) == []


def test_loud_noise_from_the_first_sample_gives_one_short_false_utterance() -> None:
    # -25 dBFS is 15 dB above the starting cap of the floor (-40 dBFS): the floor must
    # climb 8 dB at 3 dB/s before the noise stops counting as speech.
    pcm = to_pcm([quiet(RATE, 10.0)], noise_db=-25.0)

    out = run(pcm)

    assert kinds(out) == [START, END]
    assert out[1].timestamp < 4.0


def test_a_stream_that_opens_mid_speech_still_hears_it() -> None:
    pcm = to_pcm([voice(RATE, 1.0), quiet(RATE, 1.0)])

    start, end = run(pcm)

    assert (start.kind, end.kind) == (START, END)
    assert start.timestamp - start.speech_duration == pytest.approx(0.0)
    assert end.speech_duration == pytest.approx(1.0, abs=0.03)


def test_digital_silence_gives_no_event_and_no_error() -> None:
    assert run(np.zeros(RATE * 2, dtype=np.int16)) == []


def test_voice_is_heard_at_quiet_and_loud_levels() -> None:
    for level_db in (-45.0, -30.0, -6.0):
        pcm = to_pcm([quiet(RATE, 1.0), voice(RATE, 1.0, level_db), quiet(RATE, 1.0)], -70.0)
        assert kinds(run(pcm)) == [START, END], level_db


def test_a_voice_barely_above_the_noise_is_not_speech() -> None:
    # 6 dB above the floor is probability 0.3, below the 0.5 activation threshold.
    pcm = to_pcm([quiet(RATE, 1.0), voice(RATE, 1.0, -54.0), quiet(RATE, 1.0)], -60.0)

    assert run(pcm) == []


def test_a_lasting_rise_in_noise_is_absorbed_by_the_floor() -> None:
    # A fan switched on: noise jumps from -65 to -45 dBFS and stays.
    rng = np.random.default_rng(3)
    low = rng.normal(0.0, 10 ** (-65 / 20), RATE * 2)
    high = rng.normal(0.0, 10 ** (-45 / 20), RATE * 12)
    pcm = to_pcm([low, high], noise_db=None)

    out = run(pcm, flush=False)

    # At most one false utterance, closed within a few seconds, then quiet.
    assert kinds(out) in ([], [START, END])
    if out:
        assert out[1].timestamp < 2.0 + 8.0
    # Speech over the new noise is still heard.
    speech = to_pcm([low, high, voice(RATE, 1.0, -20.0), quiet(RATE, 1.0)], noise_db=None)
    assert kinds(run(speech)[len(out) :]) == [START, END]


@pytest.mark.parametrize("keep", [False, True])
def test_results_do_not_depend_on_how_audio_is_cut(keep: bool) -> None:
    opts = EnergyVADOptions(keep_speech_samples=keep)
    pcm = to_pcm(
        [
            quiet(RATE, 0.7),
            voice(RATE, 1.0),
            quiet(RATE, 0.8),
            voice(RATE, 0.5, -30.0),
            quiet(RATE, 0.9),
            voice(RATE, 0.3),
        ]
    )
    rng = np.random.default_rng(11)
    ragged = rng.integers(1, 2_000, size=pcm.size // 1_000 + 10).tolist()

    reference = run(pcm, options=opts, piece=0.02)
    assert kinds(reference) == [START, END, START, END, START, END]
    for piece in (0.01, 1.0, 0.0137, ragged):
        other = run(pcm, options=opts, piece=piece)
        # Exact equality: time is counted in samples and levels are summed in integers.
        assert other == reference
        for a, b in zip(other, reference, strict=True):
            if keep and a.kind is END:
                assert a.speech_samples is not None and b.speech_samples is not None
                np.testing.assert_array_equal(a.speech_samples, b.speech_samples)


@pytest.mark.parametrize("prefix", [0.0, 0.3, 0.5])
def test_end_of_speech_carries_the_utterance_audio_with_its_prefix(prefix: float) -> None:
    opts = EnergyVADOptions(keep_speech_samples=True, prefix_padding_duration=prefix)
    pcm = to_pcm([quiet(RATE, 1.0), voice(RATE, 1.0), quiet(RATE, 1.0)])

    start, end = run(pcm, options=opts)

    onset = round((start.timestamp - start.speech_duration) * RATE)
    first = onset - round(prefix * RATE)
    last = round(end.timestamp * RATE)
    assert end.speech_samples is not None
    assert end.speech_samples.dtype == np.int16
    assert end.speech_samples.size == last - first
    np.testing.assert_array_equal(end.speech_samples, pcm[first:last])
    assert not end.speech_samples.flags.writeable
    assert start.speech_samples is None


# 960 samples are two whole windows, pushed with no leftover; 250 leave leftovers.
@pytest.mark.parametrize("size", [960, 250])
def test_a_caller_may_reuse_its_buffer_after_each_push(size: int) -> None:
    opts = EnergyVADOptions(keep_speech_samples=True)
    pcm = to_pcm([quiet(RATE, 1.0), voice(RATE, 1.0), quiet(RATE, 1.0)])
    stream = EnergyVAD(opts).stream()
    buffer = np.empty(size, dtype=np.int16)
    out: list[VADDecision] = []
    for pos in range(0, pcm.size, buffer.size):
        piece = pcm[pos : pos + buffer.size]
        buffer[: piece.size] = piece
        out += stream.push(buffer[: piece.size], RATE)
        buffer[:] = 12345  # the caller scribbles over its buffer
    out += stream.flush()

    reference = run(pcm, options=opts)
    assert out == reference
    assert out[1].speech_samples is not None and reference[1].speech_samples is not None
    np.testing.assert_array_equal(out[1].speech_samples, reference[1].speech_samples)


def test_prefix_padding_stops_at_the_start_of_the_stream() -> None:
    opts = EnergyVADOptions(keep_speech_samples=True, prefix_padding_duration=0.5)
    pcm = to_pcm([quiet(RATE, 0.2), voice(RATE, 1.0), quiet(RATE, 1.0)])

    _, end = run(pcm, options=opts)

    assert end.speech_samples is not None
    np.testing.assert_array_equal(end.speech_samples, pcm[: round(end.timestamp * RATE)])


def test_kept_audio_is_capped_by_max_buffered_speech() -> None:
    opts = EnergyVADOptions(
        keep_speech_samples=True, prefix_padding_duration=0.0, max_buffered_speech=0.4
    )
    pcm = to_pcm([quiet(RATE, 1.0), voice(RATE, 1.0), quiet(RATE, 1.0)])

    _, end = run(pcm, options=opts)

    assert end.speech_samples is not None
    assert end.speech_samples.size == round(0.4 * RATE)
    assert end.speech_duration > 0.9  # the cap limits audio kept, not the utterance


def test_flush_ends_an_open_utterance() -> None:
    opts = EnergyVADOptions(keep_speech_samples=True, prefix_padding_duration=0.0)
    # 2.0 s in 30 ms windows: the last 20 ms of voice are left over, not a whole window.
    pcm = to_pcm([quiet(RATE, 0.99), voice(RATE, 1.01)])
    stream = EnergyVAD(opts).stream()

    pushed = stream.push(pcm, RATE)
    assert kinds(pushed) == [START]
    assert is_speaking(stream)

    flushed = stream.flush()
    assert kinds(flushed) == [END]
    end = flushed[0]
    assert end.timestamp == pytest.approx(2.0)
    # The leftover continues the speech it follows.
    assert end.speech_duration == pytest.approx(1.01)
    assert end.silence_duration == 0.0
    assert end.speech_samples is not None
    np.testing.assert_array_equal(end.speech_samples, pcm[round(0.99 * RATE) :])
    assert not is_speaking(stream)
    # Nothing is left open, and the clock goes on after a flush.
    assert stream.flush() == []
    more = stream.push(to_pcm([voice(RATE, 0.3), quiet(RATE, 0.7)]), RATE)
    assert kinds(more) == [START, END]
    assert more[0].timestamp > 2.0


def test_flush_during_a_short_pause_reports_the_silence_so_far() -> None:
    pcm = to_pcm([quiet(RATE, 0.99), voice(RATE, 0.99), quiet(RATE, 0.25)])

    start, end = run(pcm)

    assert (start.kind, end.kind) == (START, END)
    assert end.timestamp == pytest.approx(2.23)
    assert end.speech_duration == pytest.approx(0.99)
    assert end.silence_duration == pytest.approx(0.25)


def test_flush_without_speech_or_audio_gives_nothing() -> None:
    stream = EnergyVAD().stream()
    assert stream.flush() == []
    stream.push(to_pcm([quiet(RATE, 0.5)]), RATE)
    assert stream.flush() == []


def test_streams_of_one_provider_keep_separate_state() -> None:
    vad = EnergyVAD()
    speech = to_pcm([quiet(RATE, 0.5), voice(RATE, 0.5)])
    silence = to_pcm([quiet(RATE, 1.0)])
    a, b = vad.stream(), vad.stream()

    assert kinds(a.push(speech, RATE)) == [START]
    assert b.push(silence, RATE) == []
    assert a.speaking and not b.speaking
    assert kinds(a.flush()) == [END]
    assert b.flush() == []


def test_a_zero_length_push_is_fine() -> None:
    stream = EnergyVAD().stream()
    assert stream.push(np.zeros(0, dtype=np.int16), RATE) == []


def test_decisions_are_frozen_and_compare_without_their_audio() -> None:
    a = VADDecision(kind=END, timestamp=1.0, speech_samples=np.ones(3, dtype=np.int16))
    b = VADDecision(kind=END, timestamp=1.0, speech_samples=np.zeros(5, dtype=np.int16))
    assert a == b
    with pytest.raises(AttributeError):
        a.timestamp = 2.0  # type: ignore[misc]


# --- the level gate (min_speech_level_db), in the state machine every detector shares -------

WINDOW = 512  # 32 ms at 16 kHz, as Silero's
WINDOW_S = WINDOW / RATE
SILENCE_WINDOWS = 18  # min_silence_duration 0.55 s in 32 ms windows


class Scripted(WindowedVADStream):
    """A detector whose probabilities are given, window by window, like a model that lags."""

    def __init__(self, options: SpeechOptions, probabilities: Sequence[float]) -> None:
        super().__init__(options)
        self._script = iter(probabilities)

    def _bind(self, rate: int) -> int:
        return WINDOW

    def _probabilities(self, blocks: npt.NDArray[np.int16]) -> list[float]:
        return [next(self._script) for _ in range(blocks.shape[0])]


def square(amplitude: int, windows: int) -> np.ndarray:
    """A square wave of +-amplitude: its RMS level is exactly 20 log10(amplitude / 32768)."""
    n = windows * WINDOW
    return np.where(np.arange(n) % 2 == 0, amplitude, -amplitude).astype(np.int16)


def scripted(
    pcm: np.ndarray, probabilities: Sequence[float], gate: float | None = -60.0
) -> list[VADDecision]:
    assert pcm.size == len(probabilities) * WINDOW
    stream = Scripted(SpeechOptions(min_speech_level_db=gate), probabilities)
    out: list[VADDecision] = []
    for pos in range(0, pcm.size, 320):  # 20 ms pushes, as a room delivers them
        out += stream.push(pcm[pos : pos + 320], RATE)
    return out + stream.flush()


# 10 windows of voice at -20 dBFS, then digital silence that the "model" takes three windows
# to believe (0.9, 0.7 and 0.5 are above the deactivation threshold 0.35), as Silero does
# after the bench's espeak speech.
VOICED = 10
LAG = (0.9, 0.7, 0.5)
TRAILING = 30


def trailing_silence() -> tuple[np.ndarray, list[float]]:
    pcm = np.concatenate((square(3277, VOICED), np.zeros(TRAILING * WINDOW, np.int16)))
    probabilities = [1.0] * VOICED + list(LAG) + [0.02] * (TRAILING - len(LAG))
    return pcm, probabilities


def test_the_level_gate_starts_the_silence_count_where_the_voice_stops() -> None:
    pcm, probabilities = trailing_silence()
    start, end = scripted(pcm, probabilities)
    assert (start.kind, end.kind) == (START, END)
    assert end.timestamp == pytest.approx((VOICED + SILENCE_WINDOWS) * WINDOW_S)
    assert end.speech_duration == pytest.approx(VOICED * WINDOW_S)
    assert end.silence_duration == pytest.approx(SILENCE_WINDOWS * WINDOW_S)
    # The decision still reports the model's probability for the window that settled it.
    assert end.probability == pytest.approx(0.02)


def test_without_the_gate_the_lagging_probability_delays_the_end() -> None:
    pcm, probabilities = trailing_silence()
    gated = scripted(pcm, probabilities)
    start, end = scripted(pcm, probabilities, gate=None)
    assert end.timestamp == pytest.approx((VOICED + len(LAG) + SILENCE_WINDOWS) * WINDOW_S)
    assert end.speech_duration == pytest.approx((VOICED + len(LAG)) * WINDOW_S)
    assert end.timestamp - gated[1].timestamp == pytest.approx(len(LAG) * WINDOW_S)
    assert start == gated[0]


@pytest.mark.parametrize(
    ("amplitude", "gated"),
    [
        (33, False),  # -59.9 dBFS: above the gate, the model decides
        (32, True),  # -60.2 dBFS: below it, silence whatever the model says
        (0, True),
    ],
)
def test_a_quiet_window_is_judged_by_the_model_unless_it_is_below_the_gate(
    amplitude: int, gated: bool
) -> None:
    # Voice, then 25 quiet windows the model is sure are speech, then 30 it knows are not.
    quiet_windows = 25
    pcm = np.concatenate(
        (
            square(3277, VOICED),
            square(amplitude, quiet_windows),
            np.zeros(TRAILING * WINDOW, np.int16),
        )
    )
    probabilities = [1.0] * (VOICED + quiet_windows) + [0.0] * TRAILING
    _, end = scripted(pcm, probabilities)
    spoken = VOICED if gated else VOICED + quiet_windows
    assert end.speech_duration == pytest.approx(spoken * WINDOW_S)
    assert end.timestamp == pytest.approx((spoken + SILENCE_WINDOWS) * WINDOW_S)


def test_a_quiet_window_the_model_calls_silence_is_silence_above_the_gate_too() -> None:
    pcm = np.concatenate((square(3277, VOICED), square(330, 40)))  # -40 dBFS hiss
    probabilities = [1.0] * VOICED + [0.1] * 40
    _, end = scripted(pcm, probabilities)
    assert end.timestamp == pytest.approx((VOICED + SILENCE_WINDOWS) * WINDOW_S)


@pytest.mark.parametrize(("gate", "started"), [(-60.0, False), (-70.0, True), (None, True)])
def test_a_start_of_speech_needs_windows_above_the_gate(gate: float | None, started: bool) -> None:
    # -64 dBFS that the model would take for speech (a faint voice, or a model fooled by hum).
    pcm = np.concatenate((square(20, VOICED), np.zeros(TRAILING * WINDOW, np.int16)))
    probabilities = [1.0] * VOICED + [0.0] * TRAILING
    decisions = scripted(pcm, probabilities, gate=gate)
    assert kinds(decisions) == ([START, END] if started else [])


def test_energy_vad_takes_the_gate_too() -> None:
    # With its floor lowered to -90 dBFS, EnergyVAD alone hears a -66 dBFS voice as speech;
    # the gate, shared with every windowed detector, makes it silence.
    pcm = to_pcm([quiet(RATE, 0.5), voice(RATE, 1.0, level_db=-66.0), quiet(RATE, 1.0)], -95.0)
    low_floor = EnergyVADOptions(min_noise_floor_db=-90.0, min_speech_level_db=None)
    assert kinds(run(pcm, options=low_floor)) == [START, END]
    gated = EnergyVADOptions(min_noise_floor_db=-90.0)
    assert run(pcm, options=gated) == []
    # A -50 dBFS voice is above the gate: found with it as without it.
    loud = to_pcm([quiet(RATE, 0.5), voice(RATE, 1.0, level_db=-50.0), quiet(RATE, 1.0)], -95.0)
    assert run(loud, options=gated) == run(loud, options=low_floor)
    assert kinds(run(loud, options=gated)) == [START, END]


def test_the_gate_does_not_depend_on_how_audio_is_cut() -> None:
    pcm, probabilities = trailing_silence()
    reference = scripted(pcm, probabilities)
    for sizes in ([WINDOW * 40], [1, 511, 513, 7000], [97] * math.ceil(pcm.size / 97)):
        stream = Scripted(SpeechOptions(), probabilities)
        out: list[VADDecision] = []
        pos = 0
        for size in [*sizes, pcm.size]:
            out += stream.push(pcm[pos : pos + size], RATE)
            pos += size
        assert out + stream.flush() == reference


# --- input validation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("samples", "error", "words"),
    [
        (np.zeros(320, dtype=np.float32), TypeError, "int16"),
        (np.zeros(320, dtype=np.int32), TypeError, "int16"),
        ([0] * 320, TypeError, "numpy int16 array"),
        (b"\x00" * 640, TypeError, "np.frombuffer"),
        (np.zeros((320, 2), dtype=np.int16), ValueError, "mono"),
        (np.zeros((320, 1), dtype=np.int16), ValueError, "ravel"),
    ],
)
def test_bad_audio_is_rejected_with_the_remedy(
    samples: object, error: type[Exception], words: str
) -> None:
    stream = EnergyVAD().stream()
    with pytest.raises(error, match=words):
        stream.push(samples, RATE)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rate", "error", "words"),
    [
        (0, ValueError, "positive"),
        (-16_000, ValueError, "positive"),
        (16_000.0, TypeError, "integer"),
        (True, TypeError, "integer"),
        (2, ValueError, "at least 8000 Hz"),
    ],
)
def test_bad_sample_rates_are_rejected(rate: object, error: type[Exception], words: str) -> None:
    stream = EnergyVAD().stream()
    with pytest.raises(error, match=words):
        stream.push(np.zeros(320, dtype=np.int16), rate)  # type: ignore[arg-type]


def test_numpy_integer_rates_are_accepted() -> None:
    assert EnergyVAD().stream().push(np.zeros(320, dtype=np.int16), np.int64(RATE)) == []  # type: ignore[arg-type]


def test_a_stream_refuses_a_change_of_sample_rate() -> None:
    stream = EnergyVAD().stream()
    stream.push(np.zeros(320, dtype=np.int16), 16_000)
    with pytest.raises(ValueError, match=r"runs at 16000 Hz but got audio at 48000 Hz.*stream\(\)"):
        stream.push(np.zeros(960, dtype=np.int16), 48_000)


def test_check_pcm_returns_good_audio_unchanged() -> None:
    pcm = np.arange(10, dtype=np.int16)
    assert check_pcm(pcm, 8_000) is pcm


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"activation_threshold": 0.0}, "activation_threshold"),
        ({"activation_threshold": 1.5}, "activation_threshold"),
        ({"activation_threshold": 0.5, "deactivation_threshold": 0.6}, "deactivation_threshold"),
        ({"min_speech_duration": -0.1}, "min_speech_duration"),
        ({"min_silence_duration": math.nan}, "min_silence_duration"),
        ({"prefix_padding_duration": -1.0}, "prefix_padding_duration"),
        ({"window_ms": 1.0}, "window_ms"),
        ({"speech_snr_db": 0.0}, "speech_snr_db"),
        ({"min_noise_floor_db": 3.0}, "min_noise_floor_db"),
    ],
)
def test_bad_options_are_rejected_by_name(options: dict[str, float], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        EnergyVADOptions(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("gate", "error", "words"),
    [
        (0.0, ValueError, r"min_speech_level_db must be a level below 0 dBFS.*got 0\.0;"),
        (60, ValueError, r"got 60 \(did you mean -60\?\).*None turns the gate off"),
        (math.nan, ValueError, "min_speech_level_db must be a level below 0 dBFS"),
        (-math.inf, ValueError, "None turns the gate off"),
        ("-60", TypeError, "min_speech_level_db must be a number of dBFS or None.*try -60"),
        (True, TypeError, "min_speech_level_db must be a number"),
    ],
)
def test_a_bad_level_gate_is_rejected_with_the_remedy(
    gate: object, error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        SpeechOptions(min_speech_level_db=gate)  # type: ignore[arg-type]
    with pytest.raises(error, match=words):
        EnergyVADOptions(min_speech_level_db=gate)  # type: ignore[arg-type]


def test_the_level_gate_is_on_by_default_and_takes_any_real_number_or_none() -> None:
    assert SpeechOptions().min_speech_level_db == -60.0
    assert EnergyVADOptions().min_speech_level_db == -60.0
    assert SpeechOptions(min_speech_level_db=None).min_speech_level_db is None
    assert SpeechOptions(min_speech_level_db=-45).min_speech_level_db == -45
    assert SpeechOptions(min_speech_level_db=np.float32(-50.0)).min_speech_level_db == -50.0  # type: ignore[arg-type]


def test_default_deactivation_follows_livekit() -> None:
    assert EnergyVADOptions().effective_deactivation_threshold == pytest.approx(0.35)
    assert EnergyVADOptions(activation_threshold=0.1).effective_deactivation_threshold == 0.01
    assert EnergyVADOptions(deactivation_threshold=0.2).effective_deactivation_threshold == 0.2
