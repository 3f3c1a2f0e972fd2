import wave
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import flowkit as fk
from flowkit.audio import probe, read_frames, samples
from flowkit.cli import main
from flowkit.cli_run import has_room_source

FIXTURES = Path(__file__).parent / "fixtures" / "graphs"
ECHO = FIXTURES / "run_echo.py"


def write_noise(path: Path, seconds: float, rate: int = 48_000, channels: int = 2) -> Path:
    rng = np.random.default_rng(0)
    block = (rng.standard_normal((round(seconds * rate), channels)) * 1000).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(block.tobytes())
    return path


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_run_writes_the_conversation(tmp_path: Path) -> None:
    wav_in = write_noise(tmp_path / "in.wav", 3.0)
    wav_out = tmp_path / "out.wav"
    code, out, err = invoke("run", str(ECHO), "--input", str(wav_in), "--output", str(wav_out))
    assert code == 0, err
    # Three turns, one per second of input; the second reply was cut short.
    lines = [line.rstrip() for line in out.splitlines()]
    assert lines[:6] == [
        "user:  second 1",
        "agent: you said second 1",
        "user:  second 2",
        "agent: you said second 2 [interrupted]",
        "user:  second 3",
        "agent: you said second 3",
    ]
    assert "latency per turn (ms)" in out
    for column in ("stt", "endpointing", "llm", "tts", "playout", "voice-to-voice"):
        assert column in out
    assert sum(1 for line in lines if line.startswith("│")) == 3  # one row per turn
    # The output is on the input's clock: replies (0.5 s; the second cut to 0.2 s) start
    # once a second of input is heard; the last ends 0.5 s after the 3 s input.
    info = probe(wav_out)
    assert (info.format.sample_rate, info.format.num_channels) == (16_000, 1)
    assert 3.5 <= info.duration <= 3.6
    audio = np.concatenate([samples(f)[:, 0] for f in read_frames(wav_out)])
    first = int(np.flatnonzero(audio)[0])
    assert 1.0 <= first / 16_000 <= 1.1
    assert "wrote 3." in out and "3.00 s of input heard" in out


def test_long_inputs_run_with_and_without_progress(tmp_path: Path) -> None:
    wav_in = write_noise(tmp_path / "in.wav", 6.0, rate=16_000, channels=1)
    code, out, err = invoke("run", str(ECHO), "-i", str(wav_in), "-o", str(tmp_path / "o.wav"))
    assert code == 0, err
    assert "user:  second 6" in out
    code, out, err = invoke(
        "run", str(ECHO), "-i", str(wav_in), "-o", str(tmp_path / "o.wav"), "--quiet"
    )
    assert code == 0, err
    assert err == ""
    assert "user:  second 6" in out


def test_not_a_wav_input_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "notes.wav"
    bad.write_text("these are notes, not audio")
    code, _, err = invoke("run", str(ECHO), "-i", str(bad), "-o", str(tmp_path / "o.wav"))
    assert code == 2
    assert err.strip().startswith("error: ")
    assert "notes.wav: is not a WAV file" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "o.wav").exists()


def test_missing_input_exits_2(tmp_path: Path) -> None:
    code, _, err = invoke("run", str(ECHO), "-i", str(tmp_path / "no.wav"), "-o", "o.wav")
    assert code == 2
    assert "no.wav: no such file" in err


NO_SOURCE = '''
import flowkit as fk

class Numbers(fk.Node):
    out: fk.Out[int]

    async def run(self) -> None:
        self.out.send(1)

def build(job):
    g = fk.Graph("no-mic")
    g.add(Numbers())
    return g
'''


def test_a_graph_without_a_room_source_exits_2(tmp_path: Path) -> None:
    graph_file = tmp_path / "no_mic.py"
    graph_file.write_text(NO_SOURCE)
    wav_in = write_noise(tmp_path / "in.wav", 0.5)
    code, _, err = invoke("run", str(graph_file), "-i", str(wav_in), "-o", str(tmp_path / "o.wav"))
    assert code == 2
    assert "graph 'no-mic' has no RoomSource: flowkit run feeds --input into a RoomSource node" \
        in err
    assert "room_source = True" in err


HANGS_UP = '''
import flowkit as fk
from livekit import rtc
from flowkit.nodes.room import RoomSource

class HangsUp(fk.Node):
    audio: fk.In[rtc.AudioFrame]

    async def run(self, audio) -> None:
        heard = 0.0
        async for frame in audio:
            heard += frame.samples_per_channel / frame.sample_rate
            if heard >= 1.0:
                self.ctx.job.shutdown("hung up after a second")

def build(job):
    g = fk.Graph("hangs-up")
    g.add(RoomSource(sample_rate=16000), name="mic") >> g.add(HangsUp(), name="hang_up")
    return g
'''


def test_a_graph_that_ends_its_job_ends_the_run_there(tmp_path: Path) -> None:
    graph_file = tmp_path / "hangs_up.py"
    graph_file.write_text(HANGS_UP)
    wav_in = write_noise(tmp_path / "in.wav", 30.0, rate=16_000, channels=1)
    code, out, err = invoke(
        "run", str(graph_file), "-i", str(wav_in), "-o", str(tmp_path / "o.wav"), "--quiet"
    )
    assert code == 0, err
    heard = float(out.split("s of input heard")[0].rsplit("(", 1)[1])
    assert 1.0 <= heard < 2.0  # not the 30 s of the file


FAILS = '''
import flowkit as fk
from livekit import rtc

class BrokenMic(fk.Node):
    room_source = True
    error_policy = fk.ErrorPolicy.END_GRAPH
    audio: fk.Out[rtc.AudioFrame]

    async def run(self) -> None:
        async for frame in self.ctx.job.io.audio_input(16000, 1).frames():
            raise RuntimeError("the microphone broke")

def build(job):
    g = fk.Graph("broken")
    g.add(BrokenMic(), name="mic")
    return g
'''


def test_a_graph_that_fails_exits_1_with_one_line(tmp_path: Path) -> None:
    graph_file = tmp_path / "broken.py"
    graph_file.write_text(FAILS)
    wav_in = write_noise(tmp_path / "in.wav", 0.5)
    code, _, err = invoke("run", str(graph_file), "-i", str(wav_in), "-o", str(tmp_path / "o.wav"))
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert "node 'mic' of graph 'broken' raised RuntimeError: the microphone broke" in lines[0]


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    graph_file = tmp_path / "broken.py"
    graph_file.write_text(FAILS)
    wav_in = write_noise(tmp_path / "in.wav", 0.5)
    result = CliRunner().invoke(
        main, ["--debug", "run", str(graph_file), "-i", str(wav_in), "-o", str(tmp_path / "o")]
    )
    assert result.exit_code == 1
    assert "Traceback" in result.stderr and "the microphone broke" in result.stderr


def test_room_source_check_accepts_the_real_room_source(monkeypatch: pytest.MonkeyPatch) -> None:
    # Stands in for flowkit.nodes.room (written elsewhere): the check looks the class up in
    # sys.modules, so a graph that imported the real module is recognised the same way.
    import sys
    import types

    from livekit import rtc

    class RoomSource(fk.Node):
        audio: fk.Out[rtc.AudioFrame]

        async def run(self) -> None:
            pass

    room = types.ModuleType("flowkit.nodes.room")
    room.RoomSource = RoomSource  # type: ignore[attr-defined]
    g = fk.Graph("g")
    g.add(RoomSource())
    monkeypatch.delitem(sys.modules, "flowkit.nodes.room", raising=False)
    assert not has_room_source(g)  # neither the room module's class nor the marker
    monkeypatch.setitem(sys.modules, "flowkit.nodes.room", room)
    assert has_room_source(g)


PROBLEMS = """
import flowkit as fk
from livekit import rtc

class Mic(fk.Node):
    room_source = True
    audio: fk.Out[rtc.AudioFrame]

    async def run(self) -> None:
        pass

class Needs(fk.Node):
    text: fk.In[str]

    async def run(self, text) -> None:
        pass

def build(job):
    g = fk.Graph("unwired")
    g.add(Mic())
    g.add(Needs(), name="needs")
    return g
"""


def test_a_graph_with_problems_lists_them_and_exits_1(tmp_path: Path) -> None:
    graph_file = tmp_path / "unwired.py"
    graph_file.write_text(PROBLEMS)
    wav_in = write_noise(tmp_path / "in.wav", 0.5)
    code, out, _ = invoke("run", str(graph_file), "-i", str(wav_in), "-o", str(tmp_path / "o"))
    assert code == 1
    assert "graph 'unwired'" in out and "is not valid" in out
    assert "needs.text" in out


def test_run_prints_what_each_provider_consumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The voice agent on the demo providers: every provider node reports its requests.
    root = Path(__file__).parents[1]
    monkeypatch.setenv("FLOWKIT_PROVIDERS", "demo")
    code, out, err = invoke(
        "run", str(root / "graphs" / "voice_agent.py"), "--input",
        str(root / "examples" / "audio" / "weather_question.wav"), "--output",
        str(tmp_path / "out.wav"),
    )
    assert code == 0, err
    assert "provider usage (tokens, characters, seconds of audio)" in out
    table = out[out.index("provider usage"):]
    header = next(line for line in table.splitlines() if "node" in line)
    assert [c.strip() for c in header.strip("┃ ").split("┃")] == [
        "node", "provider", "requests", "prompt", "completion", "chars", "audio"
    ]
    rows = {
        cells[0]: cells for cells in (
            [c.strip() for c in line.strip("│ ").split("│")]
            for line in table.splitlines() if line.startswith("│")
        )
    }
    assert set(rows) == {"stt", "llm", "tts"}
    # One utterance heard (about 2 s of speech), one reply written and spoken.
    assert rows["stt"][2] == "1" and 1.0 <= float(rows["stt"][6].removesuffix(" s")) <= 3.0
    assert rows["llm"][2] == "1" and int(rows["llm"][4]) > 0
    # The TTS spoke the reply printed above the tables (wrapped at the console's width).
    reply = out[out.index("agent: ") + len("agent: "):out.index("latency per turn")]
    spoken = " ".join(reply.split())
    assert spoken.startswith("I heard [") and abs(int(rows["tts"][5]) - len(spoken)) <= 2
