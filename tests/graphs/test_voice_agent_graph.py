"""graphs/voice_agent.py end to end: user speech in, the agent's spoken reply out."""

import re
from pathlib import Path
from typing import Any

import pytest
from support import Script, speech

import flowkit as fk
from flowkit.loader import load_graph
from flowkit.nodes.llm import LLM
from flowkit.testing.memory_io import MemoryIO

GRAPH = Path(__file__).parents[2] / "graphs" / "voice_agent.py"
RATE = 48_000
# The recogniser gets each utterance with the VAD's padding and trailing silence around it,
# so it reports more than the voiced seconds.
UTTERANCE = re.compile(r"^\[(\d+\.\d) s of speech\]$")


def _seconds(text: str) -> float:
    match = UTTERANCE.match(text)
    assert match, text
    return float(match.group(1))


async def _run(io: MemoryIO) -> tuple[fk.Graph, fk.GraphRunner]:
    job = fk.JobContext(io=io, extra={"providers": "demo"})
    graph = load_graph(GRAPH, job)
    runner = fk.GraphRunner(graph, job=job)
    await runner.run()
    return graph, runner


@pytest.mark.looptime
async def test_the_agent_answers_a_spoken_question() -> None:
    io = MemoryIO(speech(("silence", 0.5), ("voice", 1.2), ("silence", 12.0)), paced=True)
    graph, runner = await _run(io)
    assert runner.node_errors == []
    brain = graph.nodes["llm"]
    assert isinstance(brain, LLM)
    [user] = [m.content for m in brain.history.messages if m.role == "user"]
    assert 1.2 <= _seconds(user) <= 3.0
    assert io.played, "the agent said nothing"
    first_played = io.played[0][0]
    assert 1.7 + 0.5 <= first_played <= 4.0  # after the end of speech + endpointing delay
    agent = [t.text for t in io.transcripts if t.speaker == "agent" and t.final]
    assert agent and agent[0].startswith(f"I heard {user}.")  # the reply, as one segment
    assert any(t.speaker != "agent" and t.final for t in io.transcripts)
    assert runner.metrics().node("tts").messages_out > 0
    # Preemptive generation: the turn was announced while its endpointing delay ran, and the
    # reply is the request started then (a turn that did not take it over makes a second).
    assert runner.metrics().edge("turns.tentative", "llm.tentative").messages == 1
    provider = brain.params.provider
    assert len(provider.requests) == 1 and provider.requests[0].completed


@pytest.mark.looptime
async def test_a_barge_in_stops_the_agent_and_cuts_its_history() -> None:
    io = MemoryIO(
        speech(("silence", 0.5), ("voice", 1.0), ("silence", 3.5), ("voice", 1.5),
               ("silence", 12.0)),
        paced=True,
    )
    graph, runner = await _run(io)
    assert runner.node_errors == []
    assert io.cleared, "the barge-in never cleared the output"
    brain = graph.nodes["llm"]
    assert isinstance(brain, LLM)
    assistant = [m for m in brain.history.messages if m.role == "assistant"]
    assert assistant[0].interrupted
    assert assistant[0].content  # part of it was heard
    full = brain.params.provider.requests[0].text  # type: ignore[attr-defined]
    assert len(assistant[0].content) < len(full) and full.startswith(assistant[0].content)
    # within one frame of the pause nothing more of that reply is played
    pause = io.cleared[0]
    late = [t for t, _ in io.played if pause + 0.021 < t < pause + 1.0]
    assert late == []
    # the second utterance became the next turn and got its own reply
    user = [_seconds(m.content) for m in brain.history.messages if m.role == "user"]
    assert len(user) == 2 and user[1] > user[0]  # the longer second utterance


@pytest.mark.looptime
async def test_speech_over_a_greeting_that_may_not_be_interrupted_is_answered_after_it() -> None:
    greeting = "Welcome to the weather desk. Please listen to these three short notices first."
    io = MemoryIO(
        speech(("silence", 0.5), ("voice", 1.5), ("silence", 14.0)), paced=True
    )
    job = fk.JobContext(io=io, extra={"providers": "demo"})
    graph = load_graph(GRAPH, job)
    brain = graph.nodes["llm"]
    assert isinstance(brain, LLM)
    request = fk.ReplyRequest(say=greeting, allow_interruptions=False)
    graph.add(Script((0.0, request)), name="greeter") >> brain.requests
    runner = fk.GraphRunner(graph, job=job)
    await runner.run()
    assert runner.node_errors == []
    assert io.cleared == [], "the greeting was interrupted"
    assistant = [m for m in brain.history.messages if m.role == "assistant"]
    assert [m.content for m in assistant[:1]] == [greeting] and not assistant[0].interrupted
    # The user's words were kept and answered, after the whole greeting had played.
    [user] = [m.content for m in brain.history.messages if m.role == "user"]
    assert len(assistant) == 2 and assistant[1].content.startswith(f"I heard {user}.")
    # Two stretches of audio: the whole greeting, over the user's speech (0.5-2.0 s), then
    # the answer, which started only once the greeting had ended.
    times = [t for t, _ in io.played]
    gaps = [i for i in range(1, len(times)) if times[i] - times[i - 1] > 0.1]
    assert len(gaps) == 1
    greeting_end = times[gaps[0] - 1] + 0.02
    assert times[0] < 0.5 and greeting_end > 2.0
    assert times[gaps[0]] >= greeting_end


AUDIO = Path(__file__).parents[2] / "examples" / "audio"


def _cli_run(args: list[str]) -> Any:
    from click.testing import CliRunner

    from flowkit.cli import main

    return CliRunner().invoke(
        main, ["run", str(GRAPH), *args], env={"FLOWKIT_PROVIDERS": "demo"}
    )


def test_flowkit_run_answers_a_wav_of_speech_with_true_timings(tmp_path: Path) -> None:
    out = tmp_path / "reply.wav"
    result = _cli_run(["--input", str(AUDIO / "weather_question.wav"), "--output", str(out),
                       "--quiet"])
    assert result.exit_code == 0, result.output
    assert "user:" in result.output and "agent: I heard" in result.output
    row = next(line for line in result.output.splitlines() if line.startswith("│    1"))
    cells = [c.strip() for c in row.strip("│").split("│")]
    stt, endpointing = int(cells[1]), int(cells[2])
    # the fast-forward clock keeps the configured 0.5 s from end of speech to the turn
    assert stt + endpointing == pytest.approx(500, abs=30)
    from flowkit.audio.wav import probe

    assert probe(out).duration > 4.0


def test_flowkit_run_keeps_two_questions_as_two_turns(tmp_path: Path) -> None:
    from flowkit.audio.wav import read_frames, write_wav

    both = tmp_path / "two.wav"
    frames = [*read_frames(AUDIO / "weather_question.wav"), *read_frames(AUDIO / "hello_joke.wav")]
    write_wav(both, frames)
    result = _cli_run(["--input", str(both), "--output", str(tmp_path / "o.wav"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.output.count("user:") == 2


def test_flowkit_run_with_a_camera_shows_the_image_to_the_model(tmp_path: Path) -> None:
    from PIL import Image as PILImage

    photo = tmp_path / "desk.png"
    PILImage.new("RGB", (1600, 1200), (90, 60, 30)).save(photo)
    result = _cli_run(["--input", str(AUDIO / "weather_question.wav"), "--output",
                       str(tmp_path / "o.wav"), "--camera", str(photo), "--quiet"])
    assert result.exit_code == 0, result.output
    # the demo model says the size of what it was shown: scaled to 1024 on the longer side
    assert "I see a 1024 by 768 picture from your camera" in " ".join(result.output.split())


def test_flowkit_run_refuses_a_camera_file_that_is_not_an_image(tmp_path: Path) -> None:
    notes = tmp_path / "notes.jpg"
    notes.write_text("a shopping list")
    result = _cli_run(["--input", str(AUDIO / "weather_question.wav"), "--output",
                       str(tmp_path / "o.wav"), "--camera", str(notes), "--quiet"])
    assert result.exit_code != 0
    assert "notes.jpg' is not an image Pillow can read" in " ".join(result.output.split())


def test_flowkit_run_presses_keys_that_become_a_turn(tmp_path: Path) -> None:
    result = _cli_run(["--input", str(AUDIO / "weather_question.wav"), "--output",
                       str(tmp_path / "o.wav"), "--dtmf", "0.2:42#", "--quiet"])
    assert result.exit_code == 0, result.output
    said = [line.split(":", 1)[1].strip() for line in result.output.splitlines()
            if line.startswith("user:")]
    # the keypad entry is a turn of its own, before the spoken question's
    assert said == ["<dtmf>4 2</dtmf>", "[2.9 s of speech]"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("4.5", "'4.5' is not SECONDS:KEYS"),
        ("soon:12", "'soon:12' is not SECONDS:KEYS"),
        ("0.5:12x", "'x' is not a keypad key"),
        ("60:1", "keypad entry '1' at 60 s is outside"),
    ],
)
def test_flowkit_run_refuses_a_wrong_keypad_entry(tmp_path: Path, entry: str,
                                                  message: str) -> None:
    result = _cli_run(["--input", str(AUDIO / "weather_question.wav"), "--output",
                       str(tmp_path / "o.wav"), "--dtmf", entry, "--quiet"])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def test_the_demo_providers_load_no_model() -> None:
    import subprocess
    import sys

    probe = (
        "import sys; import flowkit as fk; from flowkit.loader import load_graph; "
        f"g = load_graph({str(GRAPH)!r}, fk.JobContext(extra={{'providers': 'demo'}})); "
        "print([t.name for t in g.nodes['llm'].params.tools], "
        "any(m in sys.modules for m in ('faster_whisper', 'piper', 'llama_cpp')))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "['get_time'] False"


def test_an_unknown_provider_choice_is_named_with_the_choices() -> None:
    from flowkit.loader import GraphFileError

    with pytest.raises(GraphFileError, match="providers 'bogus': choose 'local', 'openai' or"):
        load_graph(GRAPH, fk.JobContext(extra={"providers": "bogus"}))


def test_prewarm_loads_the_providers_the_environment_chooses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flowkit.worker.jobs import GraphFactory

    factory = GraphFactory(GRAPH)
    loads: list[str] = []
    monkeypatch.setattr(factory.module, "_local", lambda: loads.append("local"))
    monkeypatch.setenv("FLOWKIT_PROVIDERS", "local")
    factory.prewarm()  # what a worker calls before it registers
    assert loads == ["local"]
    monkeypatch.setenv("FLOWKIT_PROVIDERS", "demo")
    factory.prewarm()  # stand-ins: nothing to load
    assert loads == ["local"]


def test_noise_suppression_is_opt_in_between_the_resampler_and_the_vad(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLOWKIT_PROVIDERS", "demo")
    plain = load_graph(GRAPH)
    assert "denoise" not in plain.nodes
    job = fk.JobContext.local(noise_suppression=True)
    graph = load_graph(GRAPH, job)
    assert graph.problems() == []
    edges = {str(e) for e in graph.edges}
    assert {"resample.out -> denoise.audio", "denoise.out -> vad.audio"} <= edges
    assert "resample.out -> vad.audio" not in edges
