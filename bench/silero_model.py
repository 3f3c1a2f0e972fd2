"""Silero's model call alone: CPU µs per window by batch size, dense rewrite against published.

    python bench/silero_model.py            # batches 1, 10, 25, 64, 100, 200 (about a minute)
    python bench/silero_model.py --quick

Each row runs ``SileroVADProvider.infer_batch`` back to back on noise windows (one intra-op
thread, as the provider loads it), best of 3, ``time.process_time``; the largest difference
in probability between the two models over the same 300 windows of speech-like and quiet
input is printed with it. A second table times batches whose windows are partly digital
silence (all zeros), with the provider's silence shortcut (the silent windows through the
network's recurrent half) and without; the largest difference between the two over
windows of speech-like input, low noise and zeros is printed with it.
Results: ``bench/results/silero_model.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from flowkit_local.silero import MODEL_PATH, SileroVADProvider
from rich.console import Console
from rich.table import Table

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "silero_model.json"


def us_per_window(
    provider: SileroVADProvider, batch: int, calls: int, silent_share: float = 0.0
) -> float:
    rng = np.random.default_rng(batch)
    rows = (rng.standard_normal((batch, provider.context + provider.window)) * 0.1).astype(
        np.float32
    )
    rows[: round(batch * silent_share)] = 0.0  # digital silence, window and context
    states = provider.initial_state(batch)
    for _ in range(20):  # warm the session's buffers for this shape
        _, states = provider.infer_batch(rows, states)
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for _ in range(calls):
            _, states = provider.infer_batch(rows, states)
        best = min(best, time.process_time() - start)
    return best / (calls * batch) * 1e6


def largest_difference(dense: SileroVADProvider, published: SileroVADProvider) -> float:
    rng = np.random.default_rng(1)
    width = dense.context + dense.window
    state_d, state_p = dense.initial_state(4), published.initial_state(4)
    worst = 0.0
    for k in range(300):
        scale = 0.3 if k % 50 < 25 else 0.001  # loud stretches, then quiet ones
        rows = (rng.standard_normal((4, width)) * scale).astype(np.float32)
        p_d, state_d = dense.infer_batch(rows, state_d)
        p_p, state_p = published.infer_batch(rows, state_p)
        worst = max(worst, float(np.abs(p_d - p_p).max()))
    return worst


def largest_shortcut_difference(shortcut: SileroVADProvider, whole: SileroVADProvider) -> float:
    rng = np.random.default_rng(2)
    width = shortcut.context + shortcut.window
    state_s, state_w = shortcut.initial_state(8), whole.initial_state(8)
    worst = 0.0
    for k in range(300):
        scale = 0.3 if k % 50 < 20 else 0.001
        rows = (rng.standard_normal((8, width)) * scale).astype(np.float32)
        rows[rng.random(8) < 0.6] = 0.0  # silence after speech and after noise
        p_s, state_s = shortcut.infer_batch(rows, state_s)
        p_w, state_w = whole.infer_batch(rows, state_w)
        worst = max(worst, float(np.abs(p_s - p_w).max()))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls per row")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args()
    dense, published = SileroVADProvider(), SileroVADProvider(model_path=MODEL_PATH)
    window_budget = 3_000 if args.quick else 30_000  # windows per timed pass
    rows: list[dict[str, Any]] = []
    for batch in (1, 10, 25, 64, 100, 200):
        calls = max(10, window_budget // batch)
        row = {
            "batch": batch,
            "dense_us_per_window": round(us_per_window(dense, batch, calls), 1),
            "published_us_per_window": round(us_per_window(published, batch, calls), 1),
        }
        row["ratio"] = round(row["published_us_per_window"] / row["dense_us_per_window"], 2)
        rows.append(row)
    difference = largest_difference(dense, published)
    whole = SileroVADProvider(silence_shortcut=False)
    silence_rows: list[dict[str, Any]] = []
    for batch in (1, 25, 200):
        calls = max(10, window_budget // batch)
        for share in (0.0, 0.5, 0.7, 1.0):
            if batch == 1 and share not in (0.0, 1.0):
                continue
            silence_rows.append({
                "batch": batch,
                "silent_share": share,
                "whole_us_per_window": round(us_per_window(whole, batch, calls, share), 1),
                "shortcut_us_per_window": round(us_per_window(dense, batch, calls, share), 1),
            })
    shortcut_difference = largest_shortcut_difference(dense, whole)
    table = Table(title="Silero model call, CPU µs per window (one intra-op thread)")
    for column in ("batch", "dense", "published", "published / dense"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(str(row["batch"]), f"{row['dense_us_per_window']:.1f}",
                      f"{row['published_us_per_window']:.1f}", f"{row['ratio']:.2f}")
    console = Console()
    console.print(table)
    console.print(f"largest probability difference, dense against published: {difference:.2e}")
    silence = Table(title="Dense model, batches partly digital silence: CPU µs per window")
    for column in ("batch", "silent windows", "whole network", "silence shortcut", "ratio"):
        silence.add_column(column, justify="right")
    for row in silence_rows:
        silence.add_row(str(row["batch"]), f"{row['silent_share']:.0%}",
                        f"{row['whole_us_per_window']:.1f}",
                        f"{row['shortcut_us_per_window']:.1f}",
                        f"{row['shortcut_us_per_window'] / row['whole_us_per_window']:.2f}")
    console.print(silence)
    console.print("largest probability difference, shortcut against whole network: "
                  f"{shortcut_difference:.2e}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(
        {"benchmark": "silero_model", "rows": rows,
         "largest_probability_difference": difference,
         "silence_rows": silence_rows,
         "largest_shortcut_difference": shortcut_difference}, indent=2))
    console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
