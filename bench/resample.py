"""CPU cost of resampling 48 kHz mono int16 (20 ms frames) to 16 kHz, per session-minute.

Rows:
  soxr raw             soxr.ResampleStream on plain numpy blocks (the resampler alone)
  soxr + frame views   the Resample node's core: view the AudioFrame, resample, wrap the
                       result in a new AudioFrame (what Resample.wire does per frame)
  rtc.AudioResampler   LiveKit's resampler (through its FFI), default MEDIUM quality
  graph: Resample      the Resample node inside a GraphRunner, fed by a source node and
                       drained by a counting sink
  graph: no Resample   the same graph without the Resample node: the runtime's own cost,
                       so "graph: Resample" minus this is what the node costs in a graph

Then a recording a ``say`` plays (a minute of 44.1 kHz stereo, converted to a 24 kHz mono
voice): its CPU converted at once on the loop (``convert_recording``), and with
``converted_recording`` (a second at a time on a worker thread, as the TTS node does) the
time to its first frame and the longest the event loop went without running (a 1 ms
ticker's largest gap, against the same ticker with nothing else to do).

Usage: python bench/resample.py [--minutes 10] [--repeat 3]
Writes bench/results/resample.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soxr
from livekit import rtc
from reactivex import operators as ops
from rich.console import Console
from rich.table import Table

import flowkit as fk
from flowkit.audio import frame_from_samples, samples
from flowkit.nodes.audio import Resample, convert_recording, converted_recording

IN_RATE, OUT_RATE, FRAME = 48_000, 16_000, 960  # 20 ms at 48 kHz
FRAMES_PER_MINUTE = 60 * IN_RATE // FRAME
RESULTS = Path(__file__).parent / "results" / "resample.json"


def _pool() -> list[np.ndarray]:
    # One second of a 440 Hz tone plus a little noise, as 50 blocks reused in a loop (a
    # whole number of periods, so the loop is seamless).
    rng = np.random.default_rng(1)
    t = np.arange(IN_RATE) / IN_RATE
    tone = 8000 * np.sin(2 * np.pi * 440 * t) + rng.normal(0, 300, IN_RATE)
    audio = tone.astype(np.int16)
    return [np.ascontiguousarray(audio[i : i + FRAME]) for i in range(0, IN_RATE, FRAME)]


BLOCKS = _pool()
FRAMES = [frame_from_samples(b, IN_RATE) for b in BLOCKS]


def _frames(n: int) -> Any:
    pool = FRAMES
    for i in range(n):
        yield pool[i % len(pool)]


def timed(work: Callable[[int], int], n: int) -> tuple[float, int]:
    start = time.process_time()
    produced = work(n)
    return time.process_time() - start, produced


def soxr_raw(quality: str) -> Callable[[int], int]:
    def work(n: int) -> int:
        stream = soxr.ResampleStream(IN_RATE, OUT_RATE, 1, dtype="int16", quality=quality)
        total = 0
        blocks = BLOCKS
        for i in range(n):
            total += len(stream.resample_chunk(blocks[i % len(blocks)]))
        return total + len(stream.resample_chunk(np.zeros(0, np.int16), last=True))

    return work


def soxr_frames(n: int) -> int:
    stream = soxr.ResampleStream(IN_RATE, OUT_RATE, 1, dtype="int16", quality="HQ")
    total = 0
    for frame in _frames(n):
        out = stream.resample_chunk(samples(frame))
        if out.shape[0]:
            total += frame_from_samples(out, OUT_RATE).samples_per_channel
    tail = stream.resample_chunk(np.zeros((0, 1), np.int16), last=True)
    return total + tail.shape[0]


def rtc_resampler(n: int) -> int:
    resampler = rtc.AudioResampler(IN_RATE, OUT_RATE, num_channels=1)
    total = 0
    for frame in _frames(n):
        for out in resampler.push(frame):
            total += out.samples_per_channel
    return total + sum(f.samples_per_channel for f in resampler.flush())


class _Source(fk.Node):
    """Sends n pre-built 48 kHz frames as fast as the graph takes them."""

    out: fk.Out[rtc.AudioFrame] = fk.Out(format=fk.AudioFormat(IN_RATE))

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    async def run(self) -> None:
        send = self.out.send
        for i, frame in enumerate(_frames(self.n)):
            send(frame)
            if i % 500 == 499:  # let the loop breathe, as a live source would
                await asyncio.sleep(0)


class _Count(fk.Node):
    """Counts the samples it receives (an Rx sink: no queue between it and the edge)."""

    audio: fk.In[rtc.AudioFrame] = fk.In()

    def __init__(self) -> None:
        super().__init__()
        self.samples = 0

    def wire(self, audio: Any) -> Any:
        def add(frame: rtc.AudioFrame) -> None:
            self.samples += frame.samples_per_channel

        return audio.pipe(ops.do_action(add))


def graph(with_resample: bool) -> Callable[[int], int]:
    def work(n: int) -> int:
        g = fk.Graph("bench-resample")
        count = g.add(_Count())
        source = g.add(_Source(n))
        if with_resample:
            source >> Resample(OUT_RATE, 1) >> count
        else:
            source >> count
        asyncio.run(fk.GraphRunner(g).run())
        return count.samples

    return work


def _a_minute_recording() -> list[rtc.AudioFrame]:
    rate = 44_100
    t = np.arange(60 * rate) / rate
    tone = np.stack([np.sin(2 * np.pi * 300 * t), np.sin(2 * np.pi * 500 * t)], axis=1)
    pcm = (tone * 8000).astype(np.int16)
    step = rate // 50
    return [frame_from_samples(pcm[i:i + step], rate) for i in range(0, len(pcm), step)]


async def _largest_loop_gap(work: Callable[[], Any] | None) -> tuple[float, float]:
    """(largest gap between a 1 ms ticker's ticks, seconds until ``work``'s first frame)."""
    loop = asyncio.get_running_loop()
    gaps: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        last = loop.time()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = loop.time()
            gaps.append(now - last)
            last = now

    ticker = asyncio.ensure_future(tick())
    await asyncio.sleep(0.05)
    start, first = loop.time(), 0.0
    if work is None:
        await asyncio.sleep(0.5)
    else:
        async for _ in work():
            first = first or loop.time() - start
    done.set()
    await ticker
    return max(gaps), first


def recording_figures() -> dict[str, float]:
    """A minute-long recording for a ``say``: at once on the loop, and off it (see module)."""
    frames = _a_minute_recording()
    convert_recording(frames[:50], 24_000, 1)  # warm up
    at_once = min(timed(lambda _: len(convert_recording(frames, 24_000, 1)), 0)[0]
                  for _ in range(3))
    idle_gap, _ = asyncio.run(_largest_loop_gap(None))
    off_gap, first = asyncio.run(
        _largest_loop_gap(lambda: converted_recording(frames, 24_000, 1))
    )
    return {
        "recording_s": 60.0,
        "at_once_cpu_ms": round(at_once * 1000, 1),
        "off_loop_first_frame_ms": round(first * 1000, 1),
        "off_loop_largest_loop_gap_ms": round(off_gap * 1000, 1),
        "idle_largest_loop_gap_ms": round(idle_gap * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="session-minutes per row")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row; the best counts")
    args = parser.parse_args()
    n = int(args.minutes * FRAMES_PER_MINUTE)
    rows: list[tuple[str, str, Callable[[int], int], int]] = [
        ("soxr raw", "QQ", soxr_raw("QQ"), OUT_RATE),
        ("soxr raw", "HQ", soxr_raw("HQ"), OUT_RATE),
        ("soxr + frame views", "HQ", soxr_frames, OUT_RATE),
        ("rtc.AudioResampler", "MEDIUM", rtc_resampler, OUT_RATE),
        ("graph: Resample", "HQ", graph(True), OUT_RATE),
        ("graph: no Resample", "-", graph(False), IN_RATE),
    ]
    results = []
    for name, quality, work, out_rate in rows:
        work(FRAMES_PER_MINUTE // 10)  # warm up: imports, allocator, soxr tables
        # The minimum of a few runs: other processes on a shared machine only ever add time.
        seconds, produced = min(timed(work, n) for _ in range(args.repeat))
        expected = n * FRAME * out_rate // IN_RATE
        results.append(
            {
                "name": name,
                "quality": quality,
                "session_minutes": args.minutes,
                "repeat": args.repeat,
                "frames": n,
                "cpu_seconds": round(seconds, 4),
                "cpu_s_per_session_minute": round(seconds / args.minutes, 4),
                "us_per_frame": round(seconds / n * 1e6, 2),
                "samples_out": produced,
                "samples_expected": expected,
            }
        )

    table = Table(title=f"48 kHz -> 16 kHz mono int16, 20 ms frames, {args.minutes:g} session-min")
    columns = ("path", "quality", "CPU s / session-min", "µs / frame", "samples out / expected")
    for column in columns:
        table.add_column(column, justify="left" if column in ("path", "quality") else "right")
    for r in results:
        table.add_row(
            r["name"], r["quality"], f"{r['cpu_s_per_session_minute']:.4f}",
            f"{r['us_per_frame']:.1f}", f"{r['samples_out']} / {r['samples_expected']}",
        )
    Console(width=110).print(table)
    recording = recording_figures()
    print(
        "a 60 s 44.1 kHz stereo recording to 24 kHz mono: "
        f"{recording['at_once_cpu_ms']:.1f} ms of CPU converted at once on the loop; "
        f"off the loop, first frame after {recording['off_loop_first_frame_ms']:.1f} ms, "
        f"largest loop gap {recording['off_loop_largest_loop_gap_ms']:.1f} ms "
        f"(idle: {recording['idle_largest_loop_gap_ms']:.1f} ms)"
    )

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "resample",
                "input": "48 kHz mono int16, 20 ms frames -> 16 kHz",
                "unit": "CPU seconds (time.process_time) per session-minute of input",
                "python": platform.python_version(),
                "machine": platform.machine(),
                "results": results,
                "recording": recording,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
