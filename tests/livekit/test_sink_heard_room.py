"""A room sink in a real room reports what the listener heard, not what it queued.

The scenario (tests/livekit/sink_heard_scenario.py, also what bench/sink_heard.py runs)
plays a reply to its end and cuts another while a second participant listens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SCENARIO = str(Path(__file__).with_name("sink_heard_scenario.py"))


def test_a_room_sink_reports_the_end_and_a_cut_as_the_listener_heard_them(
    run_scenario: Any,
) -> None:
    result = run_scenario(SCENARIO, "scenario_sink_reports_what_was_heard")
    assert result["node_errors"] == [] and result["stretches"] == 2, result
    assert abs(result["first_heard_s"] - 1.0) < 0.05, result
    assert abs(result["finished_played_s"] - 1.0) < 1e-6, result
    # FINISHED came when the source had played the end, not up to its 200 ms queue before:
    # the end reaches bob after it by the network's and the receiver's delay only (about
    # 0.14 s here, 0.34 when FINISHED came as the last frame was queued: bench/sink_heard.py).
    assert -0.05 < result["first_end_heard_after_finished_s"] < 0.24, result
    # The cut reply's reported duration is what bob got (within 0.02 s here), not what was
    # queued (0.17 s more when the queue was counted as played).
    assert abs(result["cut_played_s"] - result["cut_heard_s"]) < 0.08, result
