"""What encoding a video frame for a vision LLM costs (flowkit.images.encode_frame).

Each row encodes one camera-like frame (a smooth gradient with sensor noise, in I420 as the
SDK's decoder gives it) the way ImageEncoder does, on the calling thread, and reports the
median and worst time per frame and the encoded size. ImageEncoder runs this on a worker
thread; at VideoSampler's default rates it runs about once a second per session.

Usage: python bench/images.py [--repeat 20] [--quick] [--json PATH]
Writes bench/results/images.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from livekit import rtc
from rich.console import Console
from rich.table import Table

from flowkit.images import ImageFormat, encode_frame

RESULTS = Path(__file__).parent / "results" / "images.json"
CASES: tuple[tuple[str, int, int, ImageFormat, int], ...] = (
    # name, width, height, format, max_size
    ("720p camera -> JPEG 1024", 1280, 720, "JPEG", 1024),
    ("1080p camera -> JPEG 1024", 1920, 1080, "JPEG", 1024),
    ("1080p camera -> PNG 1024", 1920, 1080, "PNG", 1024),
    ("720p camera -> JPEG 512", 1280, 720, "JPEG", 512),
)


def camera_frame(width: int, height: int) -> rtc.VideoFrame:
    """A gradient with a little noise, as I420 (what a decoded camera track gives)."""
    rng = np.random.default_rng(3)
    x = np.linspace(0, 1, width)[None, :, None]
    y = np.linspace(0, 1, height)[:, None, None]
    base = np.concatenate([x * 200 + 20 + 0 * y, y * 180 + 30 + 0 * x, (x + y) * 90 + 10], 2)
    pixels = np.clip(base + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8)
    rgba = np.concatenate([pixels, np.full((height, width, 1), 255, np.uint8)], 2)
    frame = rtc.VideoFrame(width, height, rtc.VideoBufferType.RGBA, rgba.tobytes())
    return frame.convert(rtc.VideoBufferType.I420)


def measure(repeat: int) -> list[dict[str, Any]]:
    rows = []
    for name, width, height, image_format, max_size in CASES:
        frame = camera_frame(width, height)
        encode_frame(frame, max_size=max_size, image_format=image_format)  # warm-up
        times, size = [], 0
        for _ in range(repeat):
            start = time.perf_counter()
            image = encode_frame(frame, max_size=max_size, image_format=image_format)
            times.append(time.perf_counter() - start)
            size = len(image.data)
        rows.append({
            "case": name,
            "ms_median": statistics.median(times) * 1000,
            "ms_max": max(times) * 1000,
            "kib": size / 1024,
            "out": f"{image.width}x{image.height}",
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="5 repetitions")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    repeat = 5 if args.quick else args.repeat
    rows = measure(repeat)
    table = Table(title=f"encode_frame, {repeat} repetitions each, one thread")
    for column in ("case", "out", "ms median", "ms max", "KiB"):
        table.add_column(column, justify="left" if column == "case" else "right")
    for row in rows:
        table.add_row(row["case"], row["out"], f"{row['ms_median']:.1f}",
                      f"{row['ms_max']:.1f}", f"{row['kib']:.0f}")
    Console().print(table)
    path = args.json or (None if args.quick else RESULTS)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(
            {"machine": platform.processor() or platform.machine(), "repeat": repeat,
             "rows": rows}, indent=2
        ) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
