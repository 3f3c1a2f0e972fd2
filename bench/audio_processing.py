"""CPU cost of WebRTC's audio processing on the user's audio (the AudioProcessing node).

Per session-minute of 20 ms mono int16 frames, through the node's frame handling (10 ms
pieces through ``rtc.AudioProcessingModule``, joined back into one frame), for each feature
set at 16 and 48 kHz; the input is white noise at -30 dBFS, which keeps the noise
suppressor working on every frame. Also how much the suppressor takes off that noise once
it has adapted (the last 30 s of the minute).

Usage: python bench/audio_processing.py [--minutes 1] [--repeat 3]
Writes bench/results/audio_processing.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
from livekit import rtc
from rich.console import Console
from rich.table import Table

from flowkit.nodes.audio_processing import TenMsPieces

RESULTS = Path(__file__).parent / "results" / "audio_processing.json"
FEATURES = {
    "noise suppression + high-pass": {"noise_suppression": True, "high_pass_filter": True},
    "noise suppression": {"noise_suppression": True},
    "high-pass filter": {"high_pass_filter": True},
    "automatic gain control": {"auto_gain_control": True},
}


def run(rate: int, features: dict[str, bool], minutes: float) -> tuple[float, float]:
    """(CPU seconds for ``minutes`` of audio, dB the output is below the input at the end)."""
    size = rate // 50
    count = int(minutes * 60 * 50)
    noise = (np.random.default_rng(3).standard_normal(size * 50) * 1036).astype(np.int16)
    frames = [rtc.AudioFrame(noise[i:i + size].tobytes(), rate, 1, size)
              for i in range(0, noise.size, size)]
    processor = TenMsPieces(rtc.AudioProcessingModule(**features).process_stream, "bench")
    outputs: list[rtc.AudioFrame] = []
    start = time.process_time()
    for k in range(count):
        outputs.extend(processor.push(frames[k % len(frames)]))
    seconds = time.process_time() - start
    # The level change over the second half, outside the timed loop.
    tail_in = tail_out = 0.0
    for k in range(count // 2, count):
        pcm_in = np.frombuffer(frames[k % len(frames)].data, np.int16).astype(np.float64)
        pcm_out = np.frombuffer(outputs[k].data, np.int16).astype(np.float64)
        tail_in += float(np.square(pcm_in).sum())
        tail_out += float(np.square(pcm_out).sum())
    return seconds, float(10 * np.log10(max(tail_out, 1.0) / tail_in))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=1.0, help="session-minutes per row")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row; the best counts")
    args = parser.parse_args()
    results = []
    for rate in (16_000, 48_000):
        for name, features in FEATURES.items():
            runs = [run(rate, features, args.minutes) for _ in range(args.repeat)]
            seconds = min(r[0] for r in runs)
            results.append({
                "rate": rate, "features": name, "session_minutes": args.minutes,
                "cpu_s_per_session_minute": round(seconds / args.minutes, 4),
                "us_per_frame": round(seconds / (args.minutes * 3000) * 1e6, 1),
                "noise_change_db": round(runs[0][1], 1),
            })
    table = Table(title=f"AudioProcessing, 20 ms frames, {args.minutes:g} session-min per row")
    for column in ("rate", "features", "CPU s / session-min", "µs / frame", "noise, dB"):
        table.add_column(column, justify="left" if column == "features" else "right")
    for r in results:
        table.add_row(f"{r['rate'] // 1000} kHz", r["features"],
                      f"{r['cpu_s_per_session_minute']:.4f}", f"{r['us_per_frame']:.1f}",
                      f"{r['noise_change_db']:+.1f}")
    Console(width=100).print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "benchmark": "audio_processing",
        "input": "white noise at -30 dBFS, mono int16, 20 ms frames",
        "unit": "CPU seconds (time.process_time) per session-minute of input",
        "python": platform.python_version(),
        "results": results,
    }, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
