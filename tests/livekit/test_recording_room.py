"""A call in a real room, recorded as both sides heard it (tests/livekit/recording_scenario.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

SCENARIO = str(Path(__file__).with_name("recording_scenario.py"))


def test_a_recorded_call_holds_the_user_and_the_agent_as_heard(run_scenario: Any) -> None:
    result = run_scenario(SCENARIO, "scenario_recorded_call")
    assert result["node_errors"] == [] and result["rate"] == 16_000, result
    # Bob's tone on the left, as much as the room source heard of it.
    [(user_start, user_length)] = result["user"]
    assert result["user_heard_s"] > 0.5, result
    assert abs(user_length - result["user_heard_s"]) < 0.06, result
    # On the right, after it: the first reply whole, the cut one as far as it was heard.
    (first_start, first_length), (cut_start, cut_length) = result["agent"]
    assert first_start > user_start + user_length, result
    assert abs(first_length - 1.0) < 0.06, result
    assert abs(cut_length - result["cut_played_s"]) < 0.1, result
    assert cut_length < 1.6 and cut_start > first_start + first_length, result
