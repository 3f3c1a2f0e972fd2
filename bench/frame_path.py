"""Per-frame costs of the voice input path: frames, resampling, the batched VAD.

    python bench/frame_path.py            # about 20 s
    python bench/frame_path.py --quick

- ``samples()`` on a frame made by ``rtc.AudioFrame`` (what a room delivers) against one
  made by ``frame_from_samples`` (what ``Resample`` sends on: it keeps its numpy view).
- ``frame_from_samples`` on 20 ms at 16 kHz (what ``Resample`` makes for every frame).
- soxr ``LQ`` 48 → 16 kHz on 20 ms int16 frames: one stream called back to back; 100
  streams called in turn (each call finds the others' state in between); one 100-channel
  stream (the cost per channel-frame, if sessions could share one stream, which they cannot
  when their frames arrive at different moments).
- The ``Resample`` node's per-frame step (its resampler's ``push``: format check, soxr, the
  output frame) on 100 streams in turn: minus the soxr row above, its Python.
- The batched Silero VAD (``SileroVADProvider(batch=True)``, on the loop): 100 streams, each
  pushed one 20 ms frame at 16 kHz per loop iteration, the batcher running between
  iterations as in a graph: push, cutting windows, the model call and stepping each stream,
  per session-frame; and the model call's share of it.

Best of 3 passes, ``time.process_time``, µs per call (per channel-frame for the
multi-channel row). Results: ``bench/results/frame_path.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soxr
from livekit import rtc
from model_clock import ModelClock
from rich.console import Console
from rich.table import Table

from flowkit.audio import frame_from_samples, samples
from flowkit.nodes.audio import _Resampler

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "frame_path.json"
STREAMS = 100
VAD_FRAME = 320  # 20 ms at 16 kHz


def best_us(work: Callable[[], None], calls: int) -> float:
    """CPU µs per call of ``work`` (which makes ``calls`` calls), best of 3 passes."""
    work()  # warm
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        work()
        best = min(best, time.process_time() - start)
    return best / calls * 1e6


def vad_costs(quick: bool) -> tuple[float, float]:
    """CPU µs per session-frame of the batched VAD, all of it and the model call's part.

    Best of 3 passes; each pass is a fresh event loop (and so a fresh batcher) feeding
    ``STREAMS`` streams whose frames are offset from each other, so their windows complete
    at different iterations, as the workload's sessions do.
    """
    from flowkit_local.silero import SileroVADProvider

    ticks = 200 if quick else 1_500
    provider = SileroVADProvider(batch=True, batch_thread_from=None)
    model = ModelClock(provider)
    speech = (np.random.default_rng(1).standard_normal(VAD_FRAME * 50) * 3000).astype(np.int16)
    frames = [speech[i : i + VAD_FRAME] for i in range(0, speech.size, VAD_FRAME)]

    async def feed() -> None:
        streams = [provider.stream(on_decisions=lambda decisions: None) for _ in range(STREAMS)]
        for tick in range(ticks):
            for index, stream in enumerate(streams):
                stream.push(frames[(tick + 7 * index) % len(frames)], 16_000)
            await asyncio.sleep(0)  # the batcher runs here, as between a graph's ticks
        await provider.batcher(asyncio.get_running_loop()).wait_idle()

    best = (float("inf"), 0.0)
    for _ in range(4):  # the first pass warms up
        model.ns = 0
        start = time.process_time()
        asyncio.run(feed())
        best = min(best, (time.process_time() - start, model.ns / 1e9))
    per_frame = 1e6 / (ticks * STREAMS)
    return best[0] * per_frame, best[1] * per_frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls per row")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args()
    calls = 20_000 if args.quick else 200_000
    frames = 2_000 if args.quick else 20_000  # soxr calls per pass

    pcm = (np.random.default_rng(0).standard_normal(960) * 3000).astype(np.int16)
    plain = rtc.AudioFrame(pcm.tobytes(), 48_000, 1, 960)
    made = frame_from_samples(pcm[:320].copy(), 16_000)

    def read(frame: rtc.AudioFrame) -> Callable[[], None]:
        def work() -> None:
            for _ in range(calls):
                samples(frame)
        return work

    block = pcm.reshape(-1, 1)
    one = soxr.ResampleStream(48_000, 16_000, 1, dtype="int16", quality="LQ")
    many = [soxr.ResampleStream(48_000, 16_000, 1, dtype="int16", quality="LQ")
            for _ in range(STREAMS)]
    shared = soxr.ResampleStream(48_000, 16_000, STREAMS, dtype="int16", quality="LQ")
    wide = np.ascontiguousarray(np.repeat(block, STREAMS, axis=1))

    def resample_one() -> None:
        for _ in range(frames):
            one.resample_chunk(block)

    def resample_many() -> None:
        for _ in range(frames // STREAMS):
            for stream in many:
                stream.resample_chunk(block)

    def resample_shared() -> None:
        for _ in range(frames // STREAMS):
            shared.resample_chunk(wide)

    resamplers = [_Resampler(16_000, 1, "LQ") for _ in range(STREAMS)]

    def resample_nodes() -> None:
        for _ in range(frames // STREAMS):
            for resampler in resamplers:
                resampler.push(plain)

    def make_frames() -> None:
        for _ in range(calls):
            frame_from_samples(made_from, 16_000)

    made_from = pcm[:320].copy()
    vad_frames, vad_model = vad_costs(args.quick)
    rows = [
        {"what": "samples(), rtc.AudioFrame", "us": best_us(read(plain), calls)},
        {"what": "samples(), frame_from_samples frame", "us": best_us(read(made), calls)},
        {"what": "frame_from_samples, 320 samples", "us": best_us(make_frames, calls)},
        {"what": "soxr LQ, one stream", "us": best_us(resample_one, frames)},
        {"what": f"soxr LQ, {STREAMS} streams in turn", "us": best_us(resample_many, frames)},
        {"what": f"Resample node's step, {STREAMS} streams in turn",
         "us": best_us(resample_nodes, frames)},
        {"what": f"soxr LQ, one {STREAMS}-channel stream (per channel-frame)",
         "us": best_us(resample_shared, frames)},
        {"what": f"batched Silero VAD, {STREAMS} streams (per session-frame)", "us": vad_frames},
        {"what": "  of which the model call", "us": vad_model},
    ]
    table = Table(title="per-frame costs of the input path, CPU µs per call")
    table.add_column("what")
    table.add_column("µs", justify="right")
    for row in rows:
        row["us"] = round(row["us"], 2)
        table.add_row(str(row["what"]), f"{row['us']:.2f}")
    console = Console()
    console.print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"benchmark": "frame_path", "rows": rows}, indent=2))
    console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
