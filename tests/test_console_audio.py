"""`flowkit console --audio`: a spoken question from the microphone, the reply on the speakers.

The sound devices are a PulseAudio server of the test's own with two null sinks, paced in
real time by PulseAudio: the user speaks into ``mic`` (``paplay``), whose monitor is the
default microphone, and the agent's voice goes to ``speaker``, whose monitor the test records
(``parecord``). PortAudio reaches the server through ALSA's pulse plugin, as on a desktop.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from livekit import rtc

from flowkit.audio import read_frames, samples
from flowkit.console_audio import EchoCanceller
from flowkit.nodes.audio import convert_recording

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


def wait_for_microphone(env: dict[str, str], agent: subprocess.Popen[str]) -> None:
    """Wait until something records from ``mic.monitor``, the console's microphone."""

    def listed(kind: str) -> list[list[str]]:
        out = subprocess.run(["pactl", "list", "short", kind], env=env, capture_output=True,
                             text=True, check=True).stdout
        return [line.split("\t") for line in out.splitlines() if line.strip()]

    (mic,) = [row[0] for row in listed("sources") if row[1] == "mic.monitor"]
    deadline = time.monotonic() + 90
    while not any(row[1] == mic for row in listed("source-outputs")):
        assert agent.poll() is None, agent.communicate()
        assert time.monotonic() < deadline, "the console did not open the microphone in 90 s"
        time.sleep(0.1)
    time.sleep(0.5)  # PortAudio's stream has started; the graph reads its first blocks


def ask(env: dict[str, str], *flags: str, listen_s: float = 6.0) -> tuple[str, str]:
    """Run the console on the demo voice agent, say the question, wait; its stdout, stderr."""
    agent = subprocess.Popen(
        [sys.executable, "-c", "from flowkit.cli import main; main()", "console", "--audio",
         *flags, str(ROOT / "graphs" / "voice_agent.py")],
        env={**env, "FLOWKIT_PROVIDERS": "demo"}, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        # Speak only once the console's microphone stream is open: a fixed wait lost the
        # question on a loaded machine (the graph took longer to build, the mic heard silence).
        wait_for_microphone(env, agent)
        subprocess.run(["paplay", "--device=mic", str(QUESTION)], env=env, check=True,
                       timeout=30)
        time.sleep(listen_s)  # the turn ends, the reply is said
        # The end of input (Ctrl+D): the console ends once the reply has played.
        out, err = agent.communicate(timeout=60)
    finally:
        if agent.poll() is None:
            agent.kill()
    assert agent.returncode == 0, err
    assert "Traceback" not in err, err  # nothing failed in PortAudio's callbacks either
    return out, err


def test_a_spoken_question_is_answered_on_the_speakers(
    sound_server: dict[str, str], tmp_path: Path
) -> None:
    heard = tmp_path / "speaker.raw"
    recorder = subprocess.Popen(
        ["parecord", "--device=speaker.monitor", "--raw", "--format=s16le", f"--rate={RATE}",
         "--channels=1", str(heard)], env=sound_server,
    )
    try:
        out, err = ask(sound_server)
    finally:
        recorder.terminate()
        recorder.wait(10)
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



async def test_the_echo_canceller_takes_what_was_played_out_of_the_microphone() -> None:
    # The speakers play speech at 24 kHz (from PortAudio's thread); the microphone, at
    # 48 kHz, hears it 80 ms later at half the level, over a little room noise.
    played = np.concatenate([samples(f)[:, 0] for f in convert_recording(
        list(read_frames(QUESTION)), 24_000, 1)])
    played = np.concatenate([played, played])  # 8 s
    echo = np.concatenate([samples(f)[:, 0] for f in convert_recording(
        [rtc.AudioFrame(played.tobytes(), 24_000, 1, played.size)], RATE, 1)]).astype(float)
    delay = round(0.08 * RATE)
    near = np.zeros(echo.size)
    near[delay:] = 0.5 * echo[:-delay]
    near += np.random.default_rng(5).standard_normal(near.size) * 30
    canceller = EchoCanceller(RATE)
    canceller.bind(asyncio.get_running_loop())
    canceller.set_delay(0.08)
    cleaned = []
    for k in range(near.size // 960):
        block = played[k * 480:(k + 1) * 480].tobytes()
        speaker = threading.Thread(target=canceller.played, args=(block, 24_000, 1))
        speaker.start()
        speaker.join()
        await asyncio.sleep(0)  # the loop takes the speakers' block first, as it would
        mic = near[k * 960:(k + 1) * 960].astype(np.int16)
        (out,) = canceller.clean(rtc.AudioFrame(mic.tobytes(), RATE, 1, 960))
        cleaned.append(np.frombuffer(out.data, np.int16).astype(float))
    got = np.concatenate(cleaned)
    tail = slice(2 * RATE, got.size)  # once it has learnt the echo's path (about a second)

    def rms(pcm: np.ndarray) -> float:
        return float(np.sqrt(np.mean(pcm**2)))

    reduction = 20 * np.log10(rms(got[tail]) / rms(near[tail]))
    assert reduction < -20, reduction  # 36 dB measured


async def test_a_device_that_does_not_exist_is_named_in_the_error() -> None:
    from flowkit.console_audio import DeviceAudioInput, DeviceAudioOutput
    from flowkit.ports import AudioFormat

    fmt = AudioFormat(RATE, 1)
    microphone = DeviceAudioInput(fmt, asyncio.Event(), device="no-such-microphone")
    with pytest.raises(RuntimeError, match=r"cannot open the microphone \(no-such-microphone\)"
                                           r" at 48 kHz mono: .*python -m sounddevice"):
        await microphone.deliver(lambda frame: None)
    speakers = DeviceAudioOutput(fmt, device="no-such-speakers")
    with pytest.raises(RuntimeError, match=r"cannot open the speakers \(no-such-speakers\)"):
        await speakers.write(rtc.AudioFrame(bytes(1920), RATE, 1, 960))
