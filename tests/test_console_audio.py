"""`flowkit console --audio`: a spoken question from the microphone, the reply on the speakers.

The sound devices are a PulseAudio server of the test's own with two null sinks, paced in
real time by PulseAudio: the user speaks into ``mic`` (``paplay``), whose monitor is the
default microphone, and the agent's voice goes to ``speaker``, whose monitor the test records
(``parecord``). PortAudio reaches the server through ALSA's pulse plugin, as on a desktop.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).parents[1]
QUESTION = ROOT / "examples" / "audio" / "weather_question.wav"
RATE = 48_000


@pytest.fixture
def sound_server(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A PulseAudio server with null sinks ``mic`` and ``speaker``; the env to reach it."""
    assert shutil.which("pulseaudio"), "scripts/test.sh installs pulseaudio (apt)"
    socket = tmp_path / "pulse.sock"
    env = {**os.environ, "HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path),
           "PULSE_SERVER": f"unix:{socket}"}
    server = subprocess.Popen(
        ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--disallow-exit",
         "--use-pid-file=no",
         "-L", f"module-native-protocol-unix auth-anonymous=1 socket={socket}",
         "-L", f"module-null-sink sink_name=speaker rate={RATE} channels=1",
         "-L", f"module-null-sink sink_name=mic rate={RATE} channels=1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            assert time.monotonic() < deadline, "PulseAudio did not start within 10 s"
            time.sleep(0.1)
        subprocess.run(["pactl", "set-default-sink", "speaker"], env=env, check=True)
        subprocess.run(["pactl", "set-default-source", "mic.monitor"], env=env, check=True)
        yield env
    finally:
        server.terminate()
        server.wait(10)


def test_a_spoken_question_is_answered_on_the_speakers(
    sound_server: dict[str, str], tmp_path: Path
) -> None:
    env = {**sound_server, "FLOWKIT_PROVIDERS": "demo"}
    heard = tmp_path / "speaker.raw"
    recorder = subprocess.Popen(
        ["parecord", "--device=speaker.monitor", "--raw", "--format=s16le", f"--rate={RATE}",
         "--channels=1", str(heard)], env=env,
    )
    agent = subprocess.Popen(
        [sys.executable, "-c", "from flowkit.cli import main; main()", "console", "--audio",
         str(ROOT / "graphs" / "voice_agent.py")],
        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(3.0)  # the graph built and listening
        subprocess.run(["paplay", "--device=mic", str(QUESTION)], env=env, check=True,
                       timeout=30)
        time.sleep(6.0)  # the turn ends, the reply is said
        # The end of input (Ctrl+D): the console ends once the reply has played.
        out, err = agent.communicate(timeout=60)
    finally:
        if agent.poll() is None:
            agent.kill()
        recorder.terminate()
        recorder.wait(10)
    assert agent.returncode == 0, err
    # The recogniser describes what the microphone brought, the model repeats it.
    assert "agent: I heard [" in out, (out, err)
    pcm = np.frombuffer(heard.read_bytes(), np.int16).astype(np.float64)
    windows = pcm[: len(pcm) // 960 * 960].reshape(-1, 960)
    loud = np.sqrt((windows**2).mean(axis=1)) > 1000
    assert loud.sum() * 0.02 > 1.0, (loud.sum(), out)  # seconds of the reply's voice


def test_audio_and_an_output_file_are_refused_together() -> None:
    from click.testing import CliRunner

    from flowkit.cli import main

    result = CliRunner().invoke(main, [
        "console", "--audio", "-o", "out.wav", str(ROOT / "graphs" / "voice_agent.py"),
    ])
    assert result.exit_code == 2
    assert "--audio plays the voice on the speakers; drop --output" in result.output


def test_without_sounddevice_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from flowkit.cli import main

    monkeypatch.setitem(sys.modules, "sounddevice", None)  # as if not installed
    result = CliRunner().invoke(main, [
        "console", "--audio", str(ROOT / "graphs" / "voice_agent.py"),
    ])
    assert result.exit_code == 2
    assert "pip install 'flowkit-agents[console]'" in result.output
