"""What the room sink reports against what a listener in a real room heard.

LiveKit's ``rtc.AudioSource`` holds 200 ms of audio ahead of what it plays. ``RoomSink``
reads that queue (``QueuedAudioOutput``), so a reply's ``FINISHED`` comes when its end has
played and an interrupted reply's ``played_duration`` is what the listener got. This runs the
room scenario of tests/livekit/sink_heard_scenario.py on the project's test server, in a
private network namespace, with the queue taken into account (``sink``) and without (``queue
blind``: the output hides its queue, so the sink counts a frame as played once it is queued,
as it did before), alternately, ``--runs`` times each.

Figures per run, both in seconds:

- ``end heard after FINISHED``: when the last loud 10 ms frame of a 1 s reply reached the
  listener, minus when the sink reported the reply ``FINISHED``. What is left with the queue
  read is the network's and the receiver's delay.
- ``cut: reported - heard``: an interrupted 4 s reply's reported ``played_duration`` minus
  how much of it the listener got (its loud frames, 10 ms each).

Run: ``python bench/sink_heard.py`` (about a minute); JSON in ``bench/results/sink_heard.json``.
Needs what the LiveKit tests need: a private network namespace (docs/livekit.md, "Testing an
agent end to end: the test server").
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "tests" / "livekit" / "sink_heard_scenario.py"
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "sink_heard.json"
VARIANTS = {
    "sink": "scenario_sink_reports_what_was_heard",
    "queue blind": "scenario_sink_counts_what_was_queued",
}


def figures(result: dict[str, Any]) -> dict[str, float]:
    """The two figures of one run (see the module)."""
    return {
        "end_heard_after_finished_s": result["first_end_heard_after_finished_s"],
        "cut_reported_minus_heard_s": result["cut_played_s"] - result["cut_heard_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each variant")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from flowkit.testing.netns import run_async_in_namespace

    console = Console()
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
    for attempt in range(args.runs):
        for name, function in VARIANTS.items():  # alternately: a slow stretch hits both
            result = run_async_in_namespace(SCENARIO, function, timeout=180.0)
            if result["stretches"] != 2 or result["node_errors"]:
                raise SystemExit(f"run {attempt + 1} of {name!r}: the listener heard "
                                 f"{result['stretches']} loud stretches (2 expected) and "
                                 f"the graph had node errors {result['node_errors']}: "
                                 f"{result}")
            run = figures(result)
            runs[name].append({**result, **run})
            console.print(f"run {attempt + 1}, {name}: end heard "
                          f"{run['end_heard_after_finished_s']:.3f} s after FINISHED, cut "
                          f"reported {run['cut_reported_minus_heard_s']:+.3f} s off")

    table = Table(title="the room sink's reports against what the listener heard (s)")
    for column in ("variant", "end heard after FINISHED", "cut: reported - heard"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    summary: dict[str, dict[str, float]] = {}
    for name, rows in runs.items():
        ends = [r["end_heard_after_finished_s"] for r in rows]
        cuts = [r["cut_reported_minus_heard_s"] for r in rows]
        summary[name] = {"end_heard_after_finished_median_s": statistics.median(ends),
                         "cut_reported_minus_heard_median_s": statistics.median(cuts)}
        table.add_row(name, f"{min(ends):.3f} to {max(ends):.3f}",
                      f"{min(cuts):+.3f} to {max(cuts):+.3f}")
    console.print(table)
    blind, aware = summary["queue blind"], summary["sink"]
    closer = (blind["end_heard_after_finished_median_s"]
              - aware["end_heard_after_finished_median_s"])
    console.print(
        f"Medians: FINISHED came {closer:.3f} s closer to the end the listener heard; the cut "
        f"reply's report was {abs(blind['cut_reported_minus_heard_median_s']):.3f} s off "
        f"queue blind, {abs(aware['cut_reported_minus_heard_median_s']):.3f} s with the queue "
        "read."
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"runs": runs, "medians": summary}, indent=2) + "\n")
    console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
