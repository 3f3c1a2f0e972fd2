"""The HTML page, rendered by headless Chromium: every node, its details, a trace's figures.

Chromium is Debian's ``chromium`` package, which scripts/test.sh installs; without it these
tests fail (they do not skip), so a machine that cannot check the page says so.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_viz_svg import generated_spec, voice_agent_spec

from flowkit.cli import main
from flowkit.spec import GraphSpec
from flowkit.trace import Trace
from flowkit.viz import render_html

ROOT = Path(__file__).parents[2]
VOICE_AGENT = ROOT / "graphs" / "voice_agent.py"
QUESTION = ROOT / "examples" / "audio" / "weather_question.wav"

# Measured in the browser with its real fonts: every text of a node box or an edge label
# must lie inside its rectangle.
_MEASURE = """<script>
var bad=[];
function check(g,box){var r=box.getBBox();g.querySelectorAll('text').forEach(function(t){
 var b=t.getBBox();if(b.x<r.x-0.5||b.x+b.width>r.x+r.width+0.5||b.y<r.y-0.5||
 b.y+b.height>r.y+r.height+0.5){bad.push(t.textContent);}});}
document.querySelectorAll('#drawing .node').forEach(function(g){
 check(g,g.querySelector('rect.box'));});
document.querySelectorAll('#drawing .edge-label').forEach(function(g){
 check(g,g.querySelector('rect'));});
var out=document.createElement('pre');out.id='overflow';
out.textContent=JSON.stringify(bad);document.body.appendChild(out);
</script></body>"""


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail(
            "headless Chromium is missing: install Debian's package with "
            "`apt-get install -y chromium` (scripts/test.sh does)"
        )
    return path


def dump_dom(page: Path, profile: Path, fragment: str = "") -> str:
    """The page's DOM after its scripts ran, as headless Chromium serialises it."""
    result = subprocess.run(
        [
            chromium(), "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", f"--user-data-dir={profile}", "--dump-dom",
            page.resolve().as_uri() + fragment,
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "<html" in result.stdout, result.stderr[-2000:]
    return result.stdout


def write_page(path: Path, spec: GraphSpec, trace: Trace | None = None) -> Path:
    page = render_html(spec, trace)
    path.write_text(page.replace("</body>", _MEASURE, 1), encoding="utf-8")
    return path


def overflowing(dom: str) -> list[str]:
    found = re.search(r'<pre id="overflow">(.*?)</pre>', dom, re.S)
    assert found, "the measuring script did not run"
    result: list[str] = json.loads(html.unescape(found.group(1)))
    return result


def node_section(dom: str, name: str) -> str:
    start = dom.index(f'data-node="{html.escape(name)}"')
    return dom[start: dom.index("</g>", start)]


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A trace of graphs/voice_agent.py on the demo providers, hearing one question."""
    work = tmp_path_factory.mktemp("trace")
    path = work / "t.json"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWKIT_PROVIDERS", "demo")
        result = CliRunner().invoke(main, [
            "run", str(VOICE_AGENT), "--input", str(QUESTION), "--output",
            str(work / "out.wav"), "--trace", str(path), "--quiet",
        ])
    assert result.exit_code == 0, result.output
    yield path


def test_the_page_is_self_contained() -> None:
    page = render_html(voice_agent_spec())
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</html>\n")
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "@import" not in page and "<link" not in page


def test_chromium_shows_every_node_and_its_details(tmp_path: Path) -> None:
    spec = voice_agent_spec()
    dom = dump_dom(write_page(tmp_path / "g.html", spec), tmp_path / "profile", "#node=turns")
    assert 'data-ready="yes"' in dom  # the page's script ran to its end
    for node in spec.nodes:
        assert f'data-node="{node.name}"' in dom
        assert f">{node.name}</text>" in dom
    for index in range(len(spec.edges)):
        assert f'data-edge="{index}"' in dom
    details = dom[dom.index('<aside id="details"'): dom.index("</aside>")]
    assert 'data-node="turns"' in details
    assert "min_endpointing_delay" in details and "TurnDetector" in details
    assert "transcripts" in details and "Transcript" in details  # its ports
    assert overflowing(dom) == []


def test_chromium_fits_the_text_of_a_big_graph(tmp_path: Path) -> None:
    dom = dump_dom(write_page(tmp_path / "g.html", generated_spec()), tmp_path / "profile")
    assert 'data-ready="yes"' in dom
    assert overflowing(dom) == []


def test_chromium_shows_the_figures_of_a_trace(trace: Path, tmp_path: Path) -> None:
    spec = voice_agent_spec()
    recorded = Trace.read(trace)
    dom = dump_dom(write_page(tmp_path / "g.html", spec, recorded), tmp_path / "profile",
                   "#node=vad")
    assert 'data-ready="yes"' in dom
    for m in recorded.metrics.nodes:
        assert f"in {m.messages_in} · out {m.messages_out}" in node_section(dom, m.name)
    vad = node_section(dom, "vad")
    assert "p95" in vad and "busy" in vad
    heats = {name: float(h) for name, h in re.findall(
        r'data-node="([^"]+)" data-library="[^"]*" data-heat="([0-9.]+)"', dom)}
    assert max(heats.values()) == 1.0
    # Heat follows the runtime's timings: the busiest node (or the slowest at p95) is 1.0,
    # a node the trace never timed is 0.
    metrics = {m.name: m for m in recorded.metrics.nodes}
    busiest = max(metrics.values(), key=lambda m: m.busy_s).name
    slowest = max(metrics.values(), key=lambda m: m.latency_p95_ms).name
    assert heats[busiest] == 1.0 and heats[slowest] == 1.0
    for name, m in metrics.items():
        if m.busy_s == 0 and m.latency_p95_ms == 0:
            assert heats[name] == 0.0
    assert "msgs" in dom  # edge figures
    # The timeline: one turn, its stages drawn as bars, the total beside them.
    turns = dom[dom.index('<section id="turns"'):]
    assert turns.count('class="turn"') == len(recorded.turns) == 1
    for stage in ("stt", "endpointing", "llm", "tts"):
        assert f'data-stage="{stage}"' in turns
    total = recorded.turns[0].latencies["voice_to_voice"]
    assert total is not None and f"{total * 1000:.0f} ms" in turns
    assert '<section id="figures"' in dom
    details = dom[dom.index('<aside id="details"'): dom.index("</aside>")]
    assert "figures" in details and "latency_p95_ms" in details
    assert overflowing(dom) == []


def test_viz_cli_draws_a_trace(trace: Path, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWKIT_PROVIDERS", "demo")
    out = tmp_path / "g.html"
    result = CliRunner().invoke(main, [
        "viz", str(VOICE_AGENT), "--format", "html", "--trace", str(trace), "-o", str(out),
    ])
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert '<section id="turns"' in page and "msgs" in page
    result = CliRunner().invoke(main, [
        "viz", str(VOICE_AGENT), "--format", "svg", "--trace", str(trace),
    ])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("<svg") and "msgs" in result.stdout


def test_viz_cli_refuses_a_trace_it_cannot_draw(trace: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWKIT_PROVIDERS", "demo")
    result = CliRunner().invoke(main, ["viz", str(VOICE_AGENT), "--trace", str(trace)])
    assert result.exit_code == 2
    assert "--trace draws on svg and html drawings, not text" in result.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    result = CliRunner().invoke(main, ["viz", str(VOICE_AGENT), "-f", "html", "--trace",
                                       str(bad)])
    assert result.exit_code == 2
    assert "not a flowkit trace" in result.stderr


def test_viz_open_writes_and_opens_the_page(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import webbrowser

    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url, *a, **k: opened.append(url) or True)
    monkeypatch.setenv("FLOWKIT_PROVIDERS", "demo")
    out = tmp_path / "g.html"
    result = CliRunner().invoke(main, ["viz", str(VOICE_AGENT), "-f", "html", "-o", str(out),
                                       "--open"])
    assert result.exit_code == 0, result.output
    assert opened == [out.resolve().as_uri()]
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    result = CliRunner().invoke(main, ["viz", str(VOICE_AGENT), "-f", "svg", "--open"])
    assert result.exit_code == 0, result.output
    assert opened[1].endswith("/tmp/flowkit-voice-agent.svg")
    assert (tmp_path / "tmp" / "flowkit-voice-agent.svg").read_text().startswith("<svg")
