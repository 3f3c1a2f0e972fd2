from pathlib import Path

from click.testing import CliRunner

from flowkit.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "graphs"
CHAT = FIXTURES / "console_chat.py"
NO_CHAT = FIXTURES / "run_echo.py"  # hears a room source, not typed text


def test_piped_lines_are_a_conversation_turn_by_turn(tmp_path: Path) -> None:
    voice = tmp_path / "voice.wav"
    result = CliRunner().invoke(
        main, ["console", str(CHAT), "--output", str(voice)], input="hello\nhow are you\n"
    )
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:4] == [
        "you:   hello",
        "agent: you said hello.",
        "you:   how are you",
        "agent: you said how are you.",
    ]
    assert any(line.startswith("│ llm  │ echo") for line in lines)  # the usage table
    assert f"of agent audio to {voice}" in result.stdout
    assert voice.stat().st_size > 44  # more than a WAV header


def test_a_reply_not_spoken_in_time_is_a_warning_and_the_rest_goes_on() -> None:
    result = CliRunner().invoke(
        main, ["console", str(CHAT), "--wait", "0.5"], input="silence\nhello\n"
    )
    assert result.exit_code == 0, result.stderr
    assert "agent: you said hello." in result.stdout
    assert "1 line(s) had no reply spoken within 0.5 s" in result.stderr
    assert "--wait" in result.stderr


def test_a_graph_without_a_chat_input_is_refused_with_the_remedy() -> None:
    result = CliRunner().invoke(main, ["console", str(NO_CHAT)], input="hello\n")
    assert result.exit_code == 2
    assert "has no ChatInput" in result.stderr
    assert "flowkit.nodes.room_state.ChatInput" in result.stderr


def test_a_wait_that_is_not_positive_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["console", str(CHAT), "--wait", "0"], input="")
    assert result.exit_code == 2
    assert "--wait" in result.stderr


def test_states_shows_the_agents_state_as_it_changes() -> None:
    result = CliRunner().invoke(main, ["console", str(CHAT), "--states"], input="hello\n")
    assert result.exit_code == 0, result.stderr
    states = [line for line in result.stderr.splitlines() if line.startswith("[")]
    assert states == ["[listening]", "[thinking]", "[speaking]", "[listening]"]
    # Without the flag the state is kept, not shown.
    quiet = CliRunner().invoke(main, ["console", str(CHAT)], input="hello\n")
    assert quiet.exit_code == 0 and "[thinking]" not in quiet.stderr
