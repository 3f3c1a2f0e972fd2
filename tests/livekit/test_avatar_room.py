"""An avatar speaks the agent's voice in a real room (tests/livekit/avatar_scenario.py).

The agent's room sink sends its replies to flowkit's avatar over LiveKit Agents' avatar
protocol; a listener gets them from the avatar's tracks, with a picture that moves with the
voice; a barge-in cuts the avatar short, and both sides agree on what was played.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SCENARIO = str(Path(__file__).with_name("avatar_scenario.py"))


def test_the_avatar_speaks_for_the_agent_and_a_barge_in_cuts_it(run_scenario: Any) -> None:
    result = run_scenario(SCENARIO, "scenario_avatar_speaks_for_the_agent")
    assert result["node_errors"] == [], result
    # The agent publishes no voice of its own: the avatar speaks, on its behalf.
    assert result["agent_tracks"] == 0 and result["publish_on_behalf"] == "agent", result
    # One stream per reply; bob heard the whole first reply and the start of the cut one.
    assert result["streams_sent"] == 2 and result["stretches"] == 2, result
    assert abs(result["first_heard_s"] - 1.0) < 0.05, result
    assert abs(result["finished_played_s"] - 1.0) < 1e-6, result
    assert 0.5 < result["cut_heard_s"] < 1.6, result
    # The avatar played what it told the agent, and the agent got both reports and starts.
    first, cut = result["avatar_reports"]
    assert result["agent_got_reports"] == [first, cut], result
    assert result["agent_got_started"] == 2, result
    assert not first["interrupted"] and abs(first["playback_position"] - 1.0) < 0.02, result
    assert cut["interrupted"], result
    # What the sink reported heard of the cut reply, what the avatar says it played and what
    # bob heard agree: the sink kept the avatar at most 0.3 s ahead and took that back.
    assert abs(result["cut_played_s"] - result["cut_heard_s"]) < 0.15, result
    assert abs(cut["playback_position"] - result["cut_heard_s"]) < 0.15, result
    # The picture moved with the voice: the waveform fills it while the reply plays.
    assert result["video_frames"] > 20, result
    assert result["video_speaking_brightness"] > result["video_idle_brightness"] + 20, result
    # An avatar that never joins: the first reply fails with whom it waited for, and how long.
    assert "the avatar 'ghost' did not join room 'lobby'" in result["not_joined"], result
    assert "within 0.5 s" in result["not_joined"], result


def test_a_local_avatar_node_joins_as_the_agents_avatar_and_leaves_with_the_graph(
    run_scenario: Any,
) -> None:
    result = run_scenario(SCENARIO, "scenario_local_avatar_node")
    assert result["node_errors"] == [], result
    # An agent participant speaking for the agent, so no agent hears it as a user.
    assert result["kind"] == "PARTICIPANT_KIND_AGENT", result
    assert result["publish_on_behalf"] == "agent" and result["agent_tracks"] == 0, result
    assert result["video_size"] == [160, 120], result
    assert abs(result["heard"]["peak_hz"] - 300) < 10 and result["heard"]["rms"] > 3000, result
    assert result["left"], result
