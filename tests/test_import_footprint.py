"""What ``import flowkit`` and starting a graph load, and the graph algorithms that keep
networkx off that path (issue 7: the baseline memory of a voice worker)."""

import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import networkx as nx

from flowkit.validation import _find_cycle, _strongly_connected, _topological


def _modules_after(code: str, modules: tuple[str, ...]) -> dict[str, bool]:
    probe = f"{code}\nimport sys\nprint([m in sys.modules for m in {modules!r}])"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    return dict(zip(modules, eval(out.strip().splitlines()[-1]), strict=True))


def test_running_a_graph_does_not_import_networkx() -> None:
    # The runner resolves (validates and orders) every graph it starts; that must not need
    # networkx (about 14 MiB resident), which only the drawings' layout uses.
    code = """
import asyncio
import reactivex
import flowkit as fk

class Source(fk.Node):
    out: fk.Out[int]

    def wire(self) -> reactivex.Observable[int]:
        return reactivex.of(1, 2, 3)

seen = []

@fk.node
def double(x: int) -> int:
    return 2 * x

@fk.node
def keep(x: int) -> None:
    seen.append(x)

async def main() -> None:
    g = fk.Graph("probe")
    g.add(Source()) >> double() >> keep()
    g.validate()
    g.spec()
    runner = fk.GraphRunner(g)
    await runner.start()
    await runner.wait()
    await runner.close()
    assert seen == [2, 4, 6], seen

asyncio.run(main())
"""
    assert _modules_after(code, ("networkx",)) == {"networkx": False}


# The replaced networkx code, kept here as the reference the new functions must match.
def _reference(names: list[str], pairs: list[tuple[str, str]]) -> list[Any]:
    dag: Any = nx.DiGraph()
    dag.add_nodes_from(names)
    dag.add_edges_from(pairs)
    added = {n: i for i, n in enumerate(names)}
    cycles: list[Any] = []
    for component in nx.strongly_connected_components(dag):
        members = sorted(component, key=added.__getitem__)
        if len(members) == 1 and not dag.has_edge(members[0], members[0]):
            continue
        cycles.append((members, nx.find_cycle(dag.subgraph(members), source=members[0])))
    if cycles:
        return cycles
    return list(nx.lexicographical_topological_sort(dag, key=lambda n: f"{added[n]:08d}"))


def _ours(names: list[str], pairs: list[tuple[str, str]]) -> list[Any]:
    succ: dict[str, dict[str, None]] = {n: {} for n in names}
    for src, dst in pairs:
        succ[src][dst] = None
    added = {n: i for i, n in enumerate(names)}
    cycles: list[Any] = []
    for component in _strongly_connected(succ):
        members = sorted(component, key=added.__getitem__)
        if len(members) == 1 and members[0] not in succ[members[0]]:
            continue
        cycles.append((members, _find_cycle(succ, component, members[0])))
    if cycles:
        return cycles
    return list(_topological(succ, added))


def test_cycles_and_order_match_networkx_on_random_graphs() -> None:
    # Same components in the same order, the same cycle named in each, the same plan: the
    # problem messages and node order do not change with the implementation.
    rng = random.Random(7)
    with_cycles = 0
    for _ in range(3000):
        names = [f"n{i}" for i in rng.sample(range(100), rng.randint(1, 10))]
        acyclic = rng.random() < 0.4
        pairs = []
        for _ in range(rng.randint(0, 3 * len(names))):
            src, dst = rng.choice(names), rng.choice(names)
            if not acyclic or names.index(src) < names.index(dst):
                pairs.append((src, dst))
        expected = _reference(names, pairs)
        assert _ours(names, pairs) == expected, (names, pairs)
        with_cycles += bool(expected) and isinstance(expected[0], tuple)
    assert 500 < with_cycles < 2500


def test_flowkit_local_loads_only_the_module_a_name_comes_from() -> None:
    siblings = tuple(f"flowkit_local.{m}" for m in ("espeak", "llama", "piper", "whisper"))
    loaded = _modules_after("from flowkit_local import SileroVAD", siblings)
    assert not any(loaded.values()), loaded


def test_every_flowkit_local_export_resolves() -> None:
    import flowkit_local

    for name in flowkit_local.__all__:
        assert getattr(flowkit_local, name).__name__ == name
    assert set(flowkit_local.__all__) <= set(dir(flowkit_local))


def test_the_renderers_import_networkx_only_when_they_draw() -> None:
    # The worker imports the renderers for its drawing page; most workers never draw.
    imported = _modules_after("import flowkit.viz, flowkit.worker.http", ("networkx",))
    assert imported == {"networkx": False}
    drawn = """
import flowkit as fk
from flowkit.viz import render_svg

class Source(fk.Node):
    out: fk.Out[int]

    def wire(self):
        return None

@fk.node
def keep(x: int) -> None:
    pass

g = fk.Graph("probe")
g.add(Source()) >> keep()
assert render_svg(g.spec()).startswith("<svg")
"""
    assert _modules_after(drawn, ("networkx",)) == {"networkx": True}


def test_flowkit_start_loads_neither_rich_nor_the_renderers_nor_the_other_commands() -> None:
    # `flowkit start` resolves only its own command: a worker logging JSON lines needs no
    # rich, no drawing (until its live page is asked for) and no offline runner.
    code = """
import click
from flowkit.cli import main
from flowkit.worker.logs import configure_logging

assert main.get_command(click.Context(main), "start") is not None
configure_logging(dev=False)
"""
    heavy = ("rich", "flowkit.viz", "flowkit.cli_run", "flowkit.cli_graph", "flowkit.offline")
    assert _modules_after(code, heavy) == dict.fromkeys(heavy, False)


def test_tts_text_transforms_load_their_libraries_only_when_a_sentence_needs_them() -> None:
    # markdown-it and the emoji table cost about 11 MiB resident between them; a worker
    # whose replies are plain text must not carry them.
    code = """
from flowkit.nodes.tts import TTS
from flowkit.providers import DEFAULT_TTS_TEXT_TRANSFORMS, apply_text_transforms
from flowkit.testing.fakes import FakeTTS
TTS(FakeTTS())
apply_text_transforms("It is sunny in Paris, 22 degrees.", DEFAULT_TTS_TEXT_TRANSFORMS)
"""
    plain = _modules_after(code, ("markdown_it", "emoji"))
    assert plain == {"markdown_it": False, "emoji": False}
    marked = _modules_after(
        code + 'apply_text_transforms("It is **sunny** \\N{SUN WITH FACE}", '
        "DEFAULT_TTS_TEXT_TRANSFORMS)",
        ("markdown_it", "emoji"),
    )
    assert marked == {"markdown_it": True, "emoji": True}


def test_mcp_servers_load_the_sdk_only_when_they_connect() -> None:
    # `import mcp` costs about 0.6 s and 50 MiB resident: building, validating and drawing
    # a graph with MCP servers must not pay it, and neither must a worker without them.
    sdk = ("mcp", "mcp_types", "httpx2")
    assert _modules_after("import flowkit", sdk) == dict.fromkeys(sdk, False)
    built = """
import socket
import flowkit as fk
from flowkit.nodes.llm import LLM
from flowkit.nodes.tools import ToolRouter
from flowkit.testing import FakeLLM
from flowkit.tools.mcp import MCPServerHTTP, MCPServerStdio

servers = [MCPServerStdio("python", ["server.py"]), MCPServerHTTP("http://127.0.0.1:9/mcp")]
g = fk.Graph("probe")
llm = g.add(LLM(FakeLLM(), mcp_servers=servers))
llm.tool_calls >> g.add(ToolRouter(mcp_servers=servers)) >> llm.tool_results
g.spec()
"""
    assert _modules_after(built, sdk) == dict.fromkeys(sdk, False)
    connected = built + """
import asyncio
from flowkit.tools.mcp import MCPServerError

async def connect() -> None:
    async with servers[1] as server:
        try:
            await server.list_tools()
        except MCPServerError:
            pass  # nothing listens on port 9: the SDK was loaded to find out

asyncio.run(connect())
"""
    assert _modules_after(connected, sdk) == dict.fromkeys(sdk, True)


def test_pillow_loads_only_when_a_frame_is_encoded_or_an_image_file_read() -> None:
    # Pillow costs about 10 MiB resident; a graph with video nodes that never sees a camera
    # (an offline run without --camera, a room with nobody on video) must not carry it.
    graph = Path(__file__).parents[1] / "graphs" / "voice_agent.py"
    code = f"""
import flowkit as fk
from flowkit.loader import load_graph
g = load_graph({str(graph)!r}, fk.JobContext(extra={{'providers': 'demo'}}))
assert 'camera' in g.nodes and 'images' in g.nodes
"""
    assert _modules_after(code, ("PIL",)) == {"PIL": False}
    encoded = code + """
from livekit import rtc
from flowkit.images import encode_frame
encode_frame(rtc.VideoFrame(2, 2, rtc.VideoBufferType.RGBA, bytes(16)))
"""
    assert _modules_after(encoded, ("PIL",)) == {"PIL": True}
