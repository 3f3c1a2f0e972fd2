"""Silero VAD batched across streams: the same decisions as one stream at a time."""

from __future__ import annotations

import asyncio
import threading
import wave
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from flowkit_local.silero import SileroVADOptions, SileroVADProvider
from flowkit_local.silero_batch import BatchedSileroVADStream, SileroBatcher
from support import Collect, collected

import flowkit as fk
from flowkit.audio import frame_from_samples
from flowkit.audio.wav import write_wav
from flowkit.messages import VADEventKind
from flowkit.nodes.audio import WavSource
from flowkit.nodes.vad import VAD
from flowkit.vad import DeferredVADProvider, VADDecision, VADStream, is_deferred

RATE = 16_000
FRAME = 320  # 20 ms, as the workload feeds
AUDIO = Path(__file__).resolve().parents[2] / "examples" / "audio"
PCM = npt.NDArray[np.int16]


def read_pcm(name: str) -> PCM:
    with wave.open(str(AUDIO / name)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


@pytest.fixture(scope="module", params=[1, None], ids=["threaded", "on-loop"])
def provider(request: pytest.FixtureRequest) -> SileroVADProvider:
    return SileroVADProvider(
        SileroVADOptions(keep_speech_samples=True), batch=True, batch_thread_from=request.param
    )


@pytest.fixture(scope="module")
def sessions() -> list[PCM]:
    """Several different recordings: the weather question shifted, and with a pause."""
    weather = read_pcm("weather_question.wav")
    silence = np.zeros(RATE, dtype=np.int16)
    return [
        np.concatenate((silence[: 1000 * i + 7], weather, silence, weather[::-1].copy()))
        for i in range(5)
    ]


def unbatched(provider: SileroVADProvider, pcm: PCM) -> list[VADDecision]:
    stream = provider.stream()
    out: list[VADDecision] = []
    for pos in range(0, pcm.size, FRAME):
        out += stream.push(pcm[pos : pos + FRAME], RATE)
    return out + stream.flush()


def same(a: list[VADDecision], b: list[VADDecision]) -> None:
    assert a == b
    for x, y in zip(a, b, strict=True):
        assert (x.speech_samples is None) == (y.speech_samples is None)
        if x.speech_samples is not None:
            assert np.array_equal(x.speech_samples, y.speech_samples)


def test_a_batching_provider_keeps_both_contracts(provider: SileroVADProvider) -> None:
    assert is_deferred(provider)
    assert isinstance(provider, DeferredVADProvider)
    assert not is_deferred(SileroVADProvider())
    assert isinstance(provider.stream(on_decisions=lambda d: None), VADStream)
    assert type(provider.stream()) is not BatchedSileroVADStream


async def test_interleaved_sessions_batched_decide_as_one_at_a_time(
    provider: SileroVADProvider, sessions: list[PCM]
) -> None:
    decisions = await interleaved_equal_unbatched(provider, sessions)
    assert all(len(d) >= 2 for d in decisions)


@pytest.mark.parametrize("gate", [-60.0, -45.0, None])
async def test_batched_and_unbatched_agree_with_and_without_the_level_gate(
    sessions: list[PCM], gate: float | None
) -> None:
    # Quiet copies too (20 and 40 dB down), where the gate changes starts and ends.
    quiet = [(sessions[i] * scale).astype(np.int16) for i, scale in ((3, 0.1), (4, 0.01))]
    audio = sessions[:3] + quiet
    options = SileroVADOptions(keep_speech_samples=True, min_speech_level_db=gate)
    provider = SileroVADProvider(options, batch=True)
    decisions = await interleaved_equal_unbatched(provider, audio)
    assert all(len(d) >= 2 for d in decisions[:4])
    if gate is not None:
        # The gate is really at work in these sessions: without it they decide otherwise.
        ungated = SileroVADProvider(
            SileroVADOptions(keep_speech_samples=True, min_speech_level_db=None)
        )
        assert decisions != [unbatched(ungated, pcm) for pcm in audio]


async def interleaved_equal_unbatched(
    provider: SileroVADProvider, sessions: list[PCM]
) -> list[list[VADDecision]]:
    """Feed the sessions interleaved, batched; check against one stream at a time."""
    expected = [unbatched(provider, pcm) for pcm in sessions]
    got: list[list[VADDecision]] = [[] for _ in sessions]
    streams = [provider.stream(on_decisions=got[i].extend) for i in range(len(sessions))]
    batcher = provider.batcher(asyncio.get_running_loop())
    calls0, windows0 = batcher.calls, batcher.windows
    longest = max(pcm.size for pcm in sessions)
    for pos in range(0, longest, FRAME):
        for i, (stream, pcm) in enumerate(zip(streams, sessions, strict=True)):
            # Uneven pieces: session 0 sometimes pushes two frames in one iteration.
            if pos < pcm.size:
                assert stream.push(pcm[pos : pos + FRAME], RATE) == []
            if i == 0 and pos % (7 * FRAME) == 0 and pos + FRAME < pcm.size:
                assert stream.push(np.zeros(0, dtype=np.int16), RATE) == []
        await asyncio.sleep(0)
        await batcher.wait_idle()
    for i, stream in enumerate(streams):
        got[i] += stream.flush()
    for g, e in zip(got, expected, strict=True):
        same(g, e)
    windows = sum(pcm.size // 512 for pcm in sessions)
    assert batcher.windows - windows0 == windows
    # Batched: far fewer model calls than windows.
    assert batcher.calls - calls0 < windows / 3
    return got


@pytest.mark.parametrize("size", [FRAME, 1024], ids=["leftovers", "whole-windows"])
async def test_a_caller_may_reuse_its_buffer_while_windows_wait_for_the_batch(
    provider: SileroVADProvider, sessions: list[PCM], size: int
) -> None:
    pcm = sessions[1]
    got: list[VADDecision] = []
    stream = provider.stream(on_decisions=got.extend)
    batcher = provider.batcher(asyncio.get_running_loop())
    buffer = np.empty(size, dtype=np.int16)
    for pos in range(0, pcm.size, size):
        piece = pcm[pos : pos + size]
        buffer[: piece.size] = piece
        assert stream.push(buffer[: piece.size], RATE) == []
        buffer[:] = 12345  # the caller scribbles over its buffer before the batch runs
        await asyncio.sleep(0)
        await batcher.wait_idle()
    got += stream.flush()
    same(got, unbatched(provider, pcm))
    assert len(got) >= 2


async def test_decisions_come_after_push_through_the_batcher(
    provider: SileroVADProvider, sessions: list[PCM]
) -> None:
    got: list[VADDecision] = []
    stream = provider.stream(on_decisions=got.extend)
    assert isinstance(stream, BatchedSileroVADStream)
    batcher = provider.batcher(asyncio.get_running_loop())
    expected = unbatched(provider, sessions[0])
    pos = 0
    while not got:
        assert stream.push(sessions[0][pos : pos + FRAME], RATE) == []
        pos += FRAME
        assert not got  # never from inside push
        await batcher.wait_idle()
    assert got[0] == expected[0]
    assert stream.pending_windows == 0


async def test_a_threaded_batch_leaves_the_loop_free_while_the_model_runs(
    sessions: list[PCM], monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = SileroVADProvider(batch=True, batch_thread_from=1)
    release = threading.Event()
    model = provider._run

    def held(windows: npt.NDArray[np.float32], states: npt.NDArray[np.float32]) -> Any:
        assert threading.current_thread() is not threading.main_thread()
        release.wait(10.0)
        return model(windows, states)

    monkeypatch.setattr(provider, "_run", held)
    batcher = provider.batcher(asyncio.get_running_loop())
    got: list[VADDecision] = []
    streams = [provider.stream(on_decisions=got.extend) for _ in range(3)]
    for stream in streams:
        stream.push(sessions[0][RATE : RATE + 512], RATE)
    await asyncio.sleep(0)  # the batcher hands its call to its thread
    ran = 0
    for _ in range(20):  # the loop runs on while the call is held
        await asyncio.sleep(0)
        ran += 1
    assert ran == 20 and batcher.calls == 1 and all(s.pending_windows == 1 for s in streams)
    release.set()
    await asyncio.wait_for(batcher.wait_idle(), 10.0)
    assert all(s.pending_windows == 0 for s in streams)


@pytest.mark.parametrize("streams", [3, 4])
async def test_only_batches_of_batch_thread_from_windows_go_to_the_thread(
    sessions: list[PCM], streams: int
) -> None:
    provider = SileroVADProvider(batch=True, batch_thread_from=4)
    batcher = provider.batcher(asyncio.get_running_loop())
    threads: set[str] = set()
    model = provider._run

    def noted(windows: npt.NDArray[np.float32], states: npt.NDArray[np.float32]) -> Any:
        threads.add(threading.current_thread().name)
        return model(windows, states)

    provider._run = noted  # type: ignore[method-assign]
    for stream in [provider.stream(on_decisions=lambda _: None) for _ in range(streams)]:
        stream.push(sessions[0][RATE : RATE + 512], RATE)
    await asyncio.sleep(0)
    await asyncio.wait_for(batcher.wait_idle(), 10.0)
    on_loop = threads == {threading.main_thread().name}
    assert on_loop == (streams < 4), threads


def test_batch_thread_from_must_be_a_window_count() -> None:
    with pytest.raises(ValueError, match=r"at least 1 window.*None"):
        SileroVADProvider(batch=True, batch_thread_from=0)


def waiting_batcher(
    streams: int, wait: float = 0.002
) -> tuple[list[BatchedSileroVADStream], SileroBatcher]:
    """``streams`` streams of a provider whose batches wait ``wait`` for missing streams."""
    provider = SileroVADProvider(batch=True, batch_thread_from=None, batch_wait=wait)
    made = [provider.stream(on_decisions=lambda _: None) for _ in range(streams)]
    return [s for s in made if isinstance(s, BatchedSileroVADStream)], provider.batcher(
        asyncio.get_running_loop()
    )


async def join(batcher: SileroBatcher, streams: list[BatchedSileroVADStream], window: PCM) -> None:
    """Push a window into each stream at once (a full batch), so each counts as a member."""
    for stream in streams:
        stream.push(window, RATE)
    await asyncio.sleep(0)
    await batcher.wait_idle()


@pytest.mark.looptime
async def test_a_batch_short_of_a_stream_waits_for_its_window(sessions: list[PCM]) -> None:
    (a, b), batcher = waiting_batcher(2)
    window = sessions[0][RATE : RATE + 512]
    await join(batcher, [a, b], window)
    calls = batcher.calls
    a.push(window, RATE)
    await asyncio.sleep(0.001)  # half the wait: still gathering
    assert batcher.calls == calls and a.pending_windows == 1
    b.push(window, RATE)  # the batch is full: it goes at once, both windows in one call
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert batcher.calls == calls + 1
    assert a.pending_windows == b.pending_windows == 0


@pytest.mark.looptime
async def test_a_batch_goes_alone_when_the_wait_is_over(sessions: list[PCM]) -> None:
    (a, b), batcher = waiting_batcher(2)
    window = sessions[0][RATE : RATE + 512]
    await join(batcher, [a, b], window)
    calls, start = batcher.calls, asyncio.get_running_loop().time()
    a.push(window, RATE)
    await batcher.wait_idle()
    assert batcher.calls == calls + 1 and a.pending_windows == 0
    assert asyncio.get_running_loop().time() - start == pytest.approx(0.002, abs=1e-4)


@pytest.mark.looptime
@pytest.mark.parametrize("case", ["one stream", "the other flushed", "wait 0"])
async def test_a_batch_waits_for_no_one_when_no_stream_is_missing(
    sessions: list[PCM], case: str
) -> None:
    streams, batcher = waiting_batcher(
        1 if case == "one stream" else 2, wait=0.0 if case == "wait 0" else 0.002
    )
    window = sessions[0][RATE : RATE + 512]
    await join(batcher, streams, window)
    if case == "the other flushed":
        streams[1].flush()  # its audio ended: the batcher no longer counts it
    calls, start = batcher.calls, asyncio.get_running_loop().time()
    streams[0].push(window, RATE)
    await asyncio.sleep(0)
    assert batcher.calls == calls + 1 and streams[0].pending_windows == 0
    assert asyncio.get_running_loop().time() == start


@pytest.mark.parametrize("wait", [-0.001, 0.05])
def test_batch_wait_must_be_within_a_window(wait: float) -> None:
    with pytest.raises(ValueError, match=r"between 0 and one window \(0\.032 s\)"):
        SileroVADProvider(batch=True, batch_wait=wait)


async def test_a_flush_during_a_threaded_call_waits_for_its_row(
    sessions: list[PCM], monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = SileroVADProvider(
        SileroVADOptions(keep_speech_samples=True), batch=True, batch_thread_from=1
    )
    release = threading.Event()
    model = provider._run

    def held(windows: npt.NDArray[np.float32], states: npt.NDArray[np.float32]) -> Any:
        release.wait(10.0)
        return model(windows, states)

    monkeypatch.setattr(provider, "_run", held)
    late: list[VADDecision] = []
    stream = provider.stream(on_decisions=late.extend)
    assert isinstance(stream, BatchedSileroVADStream)
    pcm = sessions[1]
    for pos in range(0, pcm.size, FRAME):
        stream.push(pcm[pos : pos + FRAME], RATE)
        await asyncio.sleep(0)
    assert stream._inflight is not None  # its first window's call is held on the thread
    threading.Timer(0.05, release.set).start()
    flushed = stream.flush()  # waits for that call, then classifies the rest itself
    assert stream._inflight is None and stream.pending_windows == 0
    await provider.batcher(asyncio.get_running_loop()).wait_idle()
    assert late == []  # the landing call found its row already taken
    same(flushed, unbatched(provider, pcm))


async def test_flush_settles_pending_windows_and_nothing_comes_after(
    provider: SileroVADProvider, sessions: list[PCM]
) -> None:
    late: list[VADDecision] = []
    stream = provider.stream(on_decisions=late.extend)
    pcm = sessions[1]
    for pos in range(0, pcm.size, FRAME):
        stream.push(pcm[pos : pos + FRAME], RATE)
    assert late == []  # never yielded: everything is pending
    flushed = stream.flush()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert late == []
    same(flushed, unbatched(provider, pcm))


def test_outside_an_event_loop_push_answers_at_once(
    provider: SileroVADProvider, sessions: list[PCM]
) -> None:
    late: list[VADDecision] = []
    stream = provider.stream(on_decisions=late.extend)
    out: list[VADDecision] = []
    pcm = sessions[2]
    for pos in range(0, pcm.size, FRAME):
        out += stream.push(pcm[pos : pos + FRAME], RATE)
    same(out + stream.flush(), unbatched(provider, pcm))
    assert late == []


def test_a_stream_follows_the_loop_it_is_pushed_from(
    provider: SileroVADProvider, sessions: list[PCM]
) -> None:
    # The stream remembers its loop to skip asyncio.get_running_loop() (a system call on
    # 3.11) while that loop runs here: once it has stopped, a push answers at once again,
    # and a push from a new loop defers to that loop's batcher.
    pcm = sessions[1]
    later: list[VADDecision] = []
    stream = provider.stream(on_decisions=later.extend)
    half = (pcm.size // 2) // FRAME * FRAME

    async def feed(start: int, stop: int) -> list[VADDecision]:
        answered: list[VADDecision] = []
        for pos in range(start, stop, FRAME):
            answered += stream.push(pcm[pos : pos + FRAME], RATE)
        await provider.batcher(asyncio.get_running_loop()).wait_idle()
        return answered

    assert asyncio.run(feed(0, FRAME * 20)) == []  # deferred: all through on_decisions
    at_once: list[VADDecision] = []
    for pos in range(FRAME * 20, half, FRAME):  # no loop runs now
        at_once += stream.push(pcm[pos : pos + FRAME], RATE)
    deferred_before = len(later)
    assert asyncio.run(feed(half, pcm.size)) == []
    assert len(later) > deferred_before  # the new loop's batcher classified them
    same(later[:deferred_before] + at_once + later[deferred_before:] + stream.flush(),
         unbatched(provider, pcm))


async def test_a_failing_callback_does_not_starve_the_other_streams(
    provider: SileroVADProvider, sessions: list[PCM]
) -> None:
    errors: list[dict[str, object]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))

    def boom(_: list[VADDecision]) -> None:
        raise RuntimeError("consumer broke")

    good: list[VADDecision] = []
    bad, fine = provider.stream(on_decisions=boom), provider.stream(on_decisions=good.extend)
    pcm = sessions[0]
    for pos in range(0, pcm.size, FRAME):
        bad.push(pcm[pos : pos + FRAME], RATE)
        fine.push(pcm[pos : pos + FRAME], RATE)
        await provider.batcher(loop).wait_idle()
    good += fine.flush()
    loop.set_exception_handler(None)
    assert errors and "on_decisions" in str(errors[0]["message"])
    same(good, unbatched(provider, pcm))


@pytest.mark.parametrize("thread_from", [1, None], ids=["threaded", "on-loop"])
async def test_a_failing_model_call_drops_its_windows_and_keeps_what_was_decided(
    thread_from: int | None, sessions: list[PCM], monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = SileroVADProvider(
        SileroVADOptions(min_speech_duration=0.01), batch=True, batch_thread_from=thread_from
    )
    pcm = sessions[0]
    expected = unbatched(provider, pcm)
    start = round(expected[0].timestamp * RATE)  # the end of the window that starts speech
    errors: list[dict[str, object]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    # A stream's windows go one per call, in order: the call after the speech start fails.
    failing = start // provider.window + 1
    run, calls = provider._run, [0]

    def one_call_fails(rows: Any, states: Any) -> Any:
        calls[0] += 1
        if calls[0] == failing:
            raise RuntimeError("model broke")
        return run(rows, states)

    monkeypatch.setattr(provider, "_run", one_call_fails)
    got: list[VADDecision] = []
    stream = provider.stream(on_decisions=got.extend)
    # Everything up to the window that starts speech and the two after it, in one push (on
    # the loop: all calls in one run; threaded: one call after another).
    stream.push(pcm[: start + 2 * provider.window], RATE)
    await provider.batcher(loop).wait_idle()
    loop.set_exception_handler(None)
    assert calls[0] == failing
    assert [str(e["message"]) for e in errors] == [
        "Silero VAD batch inference failed; windows dropped"
    ]
    # The speech start, decided by a call before the failure, went out; the failed call's
    # window and the one after it were dropped.
    assert [d.kind for d in got] == [VADEventKind.START_OF_SPEECH]
    assert got[0].timestamp == expected[0].timestamp
    assert stream.pending_windows == 0
    # The stream goes on with the next audio.
    stream.push(pcm[start + provider.window : start + 2 * provider.window], RATE)
    await provider.batcher(loop).wait_idle()
    assert stream.pending_windows == 0


async def test_the_vad_node_sends_batched_events_before_completing(
    tmp_path: Path, sessions: list[PCM]
) -> None:
    batched = SileroVADProvider(batch=True)
    plain = SileroVADProvider()
    results = []
    for chosen in (plain, batched):
        wav = tmp_path / "session.wav"
        pcm = sessions[3]
        frames = range(0, pcm.size, FRAME)
        write_wav(wav, [frame_from_samples(pcm[i : i + FRAME].copy(), RATE) for i in frames])
        g = fk.Graph("silero-batch")
        vad = g.add(VAD(chosen))
        events, audio = Collect(), Collect()
        g.add(WavSource(wav)) >> vad >> audio
        vad.events >> events
        await fk.GraphRunner(g).run()
        results.append(
            (
                [(e.kind, e.timestamp, e.speech_duration) for e in collected(events)],
                sum(f.samples_per_channel for f in collected(audio)),
            )
        )
    assert results[0] == results[1]
    kinds = [k for k, _, _ in results[1][0]]
    assert kinds[:2] == [VADEventKind.START_OF_SPEECH, VADEventKind.END_OF_SPEECH]
