"""bench/sink_heard.py runs from a clean checkout (a smoke run; its figures are not asserted).

The scenario itself is asserted on in test_sink_heard_room.py; this keeps the benchmark's own
code (both variants, the table, the JSON) from rotting unnoticed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "sink_heard.py"


def test_one_run_of_each_variant_writes_both_figures(tmp_path: Path) -> None:
    out = tmp_path / "sink_heard.json"
    run = subprocess.run(
        [sys.executable, str(BENCH), "--runs", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=400,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    document = json.loads(out.read_text())
    assert set(document["runs"]) == set(document["medians"]) == {"sink", "queue blind"}
    for rows in document["runs"].values():
        (row,) = rows
        assert row["stretches"] == 2 and row["node_errors"] == []
        assert row["cut_reported_minus_heard_s"] == row["cut_played_s"] - row["cut_heard_s"]
