"""The voice-session benchmark runs from a clean checkout and its sessions answer.

Not a performance test (figures are the benchmark's, never asserted here): a smoke run of
``bench/voice_sessions.py`` with two sessions, so that the benchmark cannot rot unnoticed.
It once did: on a machine without the espeak-ng program, its fallback to flowkit-local's
eSpeak library imported a name the package does not export and called ``asyncio.run`` inside
the running loop, and nothing ran it there.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "voice_sessions.py"


def test_two_sessions_run_and_every_finished_speech_gets_a_reply(tmp_path: Path) -> None:
    out = tmp_path / "sessions.json"
    run = subprocess.run(
        [sys.executable, str(BENCH), "--sessions", "2", "--warmup", "1", "--measure", "8",
         "--no-floor", "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    document = json.loads(out.read_text())
    (row,) = document["rows"]
    assert row["sessions"] == 2
    assert row["node_errors"] == 0
    # The user's speech is synthesised (by the espeak-ng program or flowkit-local's library)
    # and trimmed to at most the workload's 2.5 s.
    assert 1.0 < document["speech"]["seconds"] <= 2.5
    # 9 s of a 8.5 s loop: each session's speech ended in the window and was answered.
    assert row["speech_ends"] >= 2
    assert row["replies"] >= 1
    assert row["missed_replies"] == 0
    assert row["input_frames"] > 0
