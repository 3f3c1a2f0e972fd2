"""What an idle gap between ticks does to the cost of the same work (issue 7).

A real-time voice process does a burst of work every 20 ms and sleeps in between. This
script measures the same work back to back and with a 20 ms sleep before each tick:

- soxr's stream resampler (48 to 16 kHz, 20 ms frames) at HQ over 1, 25 and 400 streams,
  and at each quality over 100 streams;
- one session's input path without a model (``RoomSource → Resample → VAD node → STT``, a
  VAD provider that decides nothing) for 25 and 200 sessions of the voice-session workload,
  fed through each session's push input, and the same calls made directly, without the
  graph (the difference is the runtime's share of the path).

It also measures the resampler's hold-back per soxr quality (how much audio a stream keeps
back, on average and at most, 48 to 16 kHz in 20 ms frames) and its response at a few
frequencies, the figures behind the voice path's choice of ``LQ``.

Run: ``python bench/tick_gaps.py`` (about 1 minute); JSON in ``bench/results/tick_gaps.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parent))

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "tick_gaps.json"
GAP = 0.020
FRAME_IN = 960


def soxr_cost(streams: int, gap: float, ticks: int, quality: str = "HQ") -> float:
    """CPU µs per stream-frame of soxr at ``quality``, ``gap`` s of sleep before each tick."""
    resamplers = [soxr.ResampleStream(48_000, 16_000, 1, dtype="int16", quality=quality)
                  for _ in range(streams)]
    frame = (np.random.default_rng(0).standard_normal((FRAME_IN, 1)) * 3000).astype(np.int16)
    for _ in range(20):
        for r in resamplers:
            r.resample_chunk(frame)
    spent = 0.0
    for _ in range(ticks):
        if gap:
            time.sleep(gap)
        start = time.process_time()
        for r in resamplers:
            r.resample_chunk(frame)
        spent += time.process_time() - start
    return 1e6 * spent / (ticks * streams)


class _Silent:
    """A VAD stream that decides nothing: the path's cost without a model."""

    def push(self, samples: Any, sample_rate: int) -> list[Any]:
        return []

    def flush(self) -> list[Any]:
        return []


class _NoModelVAD:
    sample_rate = 16_000
    window_ms = 32.0

    def stream(self) -> _Silent:
        return _Silent()


async def input_path_cost(sessions: int, gap: float, ticks: int) -> float:
    """CPU µs per session-frame of the workload's input path without a model."""
    import voice_workload as vw

    import flowkit as fk

    frames, *_ = vw.speech_loop()
    chunks = vw.tone_chunks()
    lateness = vw.Lateness()
    group = [vw.Session(i, 0, lateness) for i in range(sessions)]
    runners = []
    for session in group:
        graph = vw.build_session_graph(session, _NoModelVAD(), chunks, endpointing_delay=0.0)
        runner = fk.GraphRunner(graph, job=fk.JobContext(io=session.io))
        await runner.start()
        runners.append(runner)
    await asyncio.sleep(0.1)
    spent = 0.0
    for k in range(50 + ticks):
        if gap:
            await asyncio.sleep(gap)
        else:
            await asyncio.sleep(0)
        start = time.process_time()
        for session in group:
            # Silence (frames 200 on): no turn starts, so only the input path runs.
            session.input.push(frames[200 + k % 200], 0.0)
        await asyncio.sleep(0)
        if k >= 50:
            spent += time.process_time() - start
    for runner in runners:
        await runner.close()
    return 1e6 * spent / (ticks * sessions)


async def direct_path_cost(sessions: int, gap: float, ticks: int) -> float:
    """CPU µs per session-frame of the same input path's work without the graph.

    Each session's frame goes through the calls the graph's nodes make, called directly:
    soxr ``LQ`` (as the workload's ``Resample``), the 16 kHz frame it makes, the silent VAD
    stream's push and the STT stream's push (the workload's fake, which keeps nothing). What
    :func:`input_path_cost` spends beyond this is the runtime's share of a hop: port streams,
    edge taps with their counts and sampled timing, the stage observers, the STT's input
    queue.
    """
    import voice_workload as vw

    from flowkit.audio.frames import frame_from_samples, samples

    frames, *_ = vw.speech_loop()
    resamplers = [soxr.ResampleStream(48_000, 16_000, 1, dtype="int16", quality="LQ")
                  for _ in range(sessions)]
    vads = [_Silent() for _ in range(sessions)]
    heard: list[Any] = []

    def path(index: int, frame: Any) -> None:
        block = resamplers[index].resample_chunk(samples(frame))
        if block.shape[0]:
            out = frame_from_samples(block, 16_000)
            vads[index].push(samples(out)[:, 0], 16_000)
            heard.append(samples(out)[:, 0])  # the STT stream's push: the audio reaches it

    spent = 0.0
    for k in range(50 + ticks):
        await asyncio.sleep(gap if gap else 0)
        start = time.process_time()
        for index in range(sessions):
            path(index, frames[200 + k % 200])
        heard.clear()
        await asyncio.sleep(0)
        if k >= 50:
            spent += time.process_time() - start
    return 1e6 * spent / (ticks * sessions)


def holdback(quality: str) -> dict[str, float]:
    """Audio held back by a soxr stream, 48 to 16 kHz in 20 ms frames, in ms."""
    stream = soxr.ResampleStream(48_000, 16_000, 1, dtype="int16", quality=quality)
    noise = (np.random.default_rng(1).standard_normal((FRAME_IN * 500, 1)) * 3000)
    pcm = noise.astype(np.int16)
    out = 0
    held = []
    for k in range(500):
        out += stream.resample_chunk(pcm[k * FRAME_IN : (k + 1) * FRAME_IN]).shape[0]
        held.append(((k + 1) * 320 - out) / 16.0)
    tail = np.array(held[50:])
    return {"mean_ms": round(float(tail.mean()), 1), "min_ms": round(float(tail.min()), 1),
            "max_ms": round(float(tail.max()), 1)}


def response(quality: str) -> dict[str, float]:
    """Gain in dB of a tone resampled 48 to 16 kHz, per frequency in Hz."""
    t = np.arange(48_000) / 48_000
    gains = {}
    for hz in (4000, 6000, 7000, 7500, 10_000, 12_000):
        tone = (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
        out = soxr.resample(tone, 48_000, 16_000, quality=quality)[2000:-2000]
        rms = float(np.sqrt(np.mean(out.astype(np.float64) ** 2)))
        gains[str(hz)] = round(20 * np.log10(max(rms, 1e-12) / (0.5 / np.sqrt(2))), 1)
    return gains


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer ticks")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args()
    ticks = 100 if args.quick else 300

    rows: list[dict[str, Any]] = []
    for streams in (1, 25, 400):
        warm = soxr_cost(streams, 0.0, ticks)
        cold = soxr_cost(streams, GAP, ticks)
        rows.append({"work": f"soxr HQ, {streams} streams", "back_to_back_us": round(warm, 1),
                     "after_20ms_gap_us": round(cold, 1), "ratio": round(cold / warm, 2)})
    # Per quality at a workload-like count: how much of each one's cost the gap adds.
    for quality in ("QQ", "LQ", "MQ", "HQ"):
        warm = soxr_cost(100, 0.0, ticks, quality)
        cold = soxr_cost(100, GAP, ticks, quality)
        rows.append({"work": f"soxr {quality}, 100 streams", "back_to_back_us": round(warm, 1),
                     "after_20ms_gap_us": round(cold, 1), "ratio": round(cold / warm, 2)})
    # The path through the graph and the same calls made directly, at the workload's N
    # range: the difference is what the runtime's hops cost in place.
    for sessions in (25, 200):
        for label, cost in (("input path without a model", input_path_cost),
                            ("the same calls without the graph", direct_path_cost)):
            warm = asyncio.run(cost(sessions, 0.0, ticks))
            cold = asyncio.run(cost(sessions, GAP, ticks))
            rows.append({"work": f"{label}, {sessions} sessions", "back_to_back_us":
                         round(warm, 1), "after_20ms_gap_us": round(cold, 1),
                         "ratio": round(cold / warm, 2)})
    qualities = {q: {"holdback": holdback(q), "response_db": response(q)}
                 for q in ("HQ", "MQ", "LQ", "QQ")}

    from rich.console import Console
    from rich.table import Table

    table = Table(title="the same work, back to back and after a 20 ms idle gap (CPU µs per "
                  "stream- or session-frame)")
    for column in ("work", "back to back", "after a 20 ms gap", "ratio"):
        table.add_column(column, justify="left" if column == "work" else "right")
    for row in rows:
        table.add_row(row["work"], f"{row['back_to_back_us']:.1f}",
                      f"{row['after_20ms_gap_us']:.1f}", f"{row['ratio']:.2f}")
    console = Console()
    console.print(table)
    hold = Table(title="soxr 48 to 16 kHz in 20 ms frames: hold-back and response")
    for column in ("quality", "held back, mean / max ms", "4 kHz", "6 kHz", "7 kHz",
                   "7.5 kHz", "10 kHz", "12 kHz"):
        hold.add_column(column, justify="right")
    for q, figures in qualities.items():
        h, r = figures["holdback"], figures["response_db"]
        hold.add_row(q, f"{h['mean_ms']} / {h['max_ms']}", *(f"{r[k]} dB" for k in r))
    console.print(hold)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "benchmark": "tick_gaps", "gap_s": GAP, "ticks": ticks, "rows": rows,
        "soxr": qualities, "python": platform.python_version(),
        "platform": platform.platform(), "cpus": os.cpu_count(),
    }, indent=2) + "\n")
    console.print(f"wrote {args.json}")



if __name__ == "__main__":
    main()
