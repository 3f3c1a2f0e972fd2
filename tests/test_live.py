"""The live terminal dashboard: rendered while the demo voice agent runs, and `run --live`."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from flowkit.cli import main
from flowkit.job import JobContext
from flowkit.live import LiveView, live_dashboard
from flowkit.loader import load_graph
from flowkit.offline import OfflineIO
from flowkit.runtime.fastforward import FastForwardLoop
from flowkit.runtime.runner import GraphRunner

ROOT = Path(__file__).parents[1]
VOICE_AGENT = ROOT / "graphs" / "voice_agent.py"
QUESTION = ROOT / "examples" / "audio" / "weather_question.wav"
NODES = ("mic", "resample", "vad", "stt", "turns", "llm", "tts", "speaker")


async def _watch(output: Path, console: Console) -> tuple[LiveView, list[float]]:
    """Run the demo voice agent on the question, rendering the view every 0.25 s."""
    io_ = OfflineIO(QUESTION, output, realtime=True)
    job = JobContext.local()
    job.io = io_
    runner = GraphRunner(load_graph(VOICE_AGENT, job), job=job)
    await runner.start()
    view = LiveView.attach(runner)
    mic_rates: list[float] = []

    async def refresh() -> None:
        while True:
            console.print(view.render())
            mic_rates.append(view.rates.get("mic", (0.0, 0.0))[1])
            await asyncio.sleep(0.25)

    task = asyncio.get_running_loop().create_task(refresh())
    try:
        await runner.wait()
    finally:
        task.cancel()
        await runner.close()
        await io_.aclose()
    console.print(view.render())
    return view, mic_rates


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory) -> tuple[LiveView, list[float], str]:
    console = Console(record=True, file=io.StringIO(), width=120)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWKIT_PROVIDERS", "demo")
        with asyncio.Runner(loop_factory=FastForwardLoop) as aio:
            view, rates = aio.run(_watch(tmp_path_factory.mktemp("live") / "o.wav", console))
    return view, rates, console.export_text()


def test_the_dashboard_shows_nodes_states_and_transcripts(
    watched: tuple[LiveView, list[float], str],
) -> None:
    view, _, text = watched
    for name in NODES:
        assert f"│ {name} " in text, name
    assert "agent: speaking" in text or "agent: thinking" in text
    assert "user: speaking" in text  # seen while the question was heard
    assert "user: [2.9 s of speech]" in text
    assert "agent: I heard [2.9 s of speech]." in text
    assert "last turns (ms)" in text
    assert view.transcripts[0] == ("user", "[2.9 s of speech]")
    assert view.agent_state in ("listening", "speaking")


def test_rates_follow_the_audio(watched: tuple[LiveView, list[float], str]) -> None:
    _, rates, _ = watched
    # The microphone sends 20 ms frames: 50 a second while the 4 s of input last, then none.
    assert any(45 <= r <= 55 for r in rates), rates
    assert rates[-1] == 0.0


def test_the_dashboard_redraws_from_the_loop() -> None:
    """live_dashboard redraws while the body runs and leaves the last picture on a file."""

    class Counting:
        renders = 0

        def render(self) -> str:
            Counting.renders += 1
            return f"picture {Counting.renders}"

    async def body(console: Console) -> None:
        async with live_dashboard(Counting(), console, refresh_per_second=50):
            await asyncio.sleep(0.2)

    terminal = io.StringIO()
    asyncio.run(body(Console(file=terminal, width=60, force_terminal=True, highlight=False)))
    assert Counting.renders >= 5
    assert f"picture {Counting.renders - 1}" in terminal.getvalue()
    # On a file, nothing but the last picture is written (no cursor movements).
    file, Counting.renders = io.StringIO(), 0
    asyncio.run(body(Console(file=file, width=60)))
    assert file.getvalue() == f"picture {Counting.renders}\n"


def test_run_live_shows_the_dashboard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWKIT_PROVIDERS", "demo")
    result = CliRunner().invoke(main, [
        "run", str(VOICE_AGENT), "-i", str(QUESTION), "-o", str(tmp_path / "o.wav"), "--live",
    ])
    assert result.exit_code == 0, result.output
    dashboard = result.stderr
    assert "voice-agent" in dashboard and "agent: " in dashboard and "user: " in dashboard
    for name in ("mic", "resample", "llm", "tts"):
        assert f"│ {name} " in dashboard, name
    assert "last turns (ms)" in dashboard
    assert "I heard [2.9 s of speech]." in dashboard
    # The conversation and the latency table still go to stdout, as without --live.
    assert "latency per turn (ms)" in result.stdout
    assert "wrote " in result.stdout
