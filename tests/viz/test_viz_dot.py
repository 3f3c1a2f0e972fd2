"""The DOT drawing: a syntactically sane digraph with every node, edge and group."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import flowkit as fk
from flowkit.loader import load_graph
from flowkit.spec import EdgeSpec, GraphSpec, NodeSpec, PortSpec
from flowkit.viz import render_dot
from flowkit.viz.dot import quote

FIXTURES = Path(__file__).parents[1] / "fixtures" / "graphs"
DEMO = Path(__file__).parents[2] / "graphs" / "demo_pipeline.py"
QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')


def _structure(drawing: str) -> str:
    """The drawing with every quoted string replaced by Q: what is left is DOT syntax."""
    return QUOTED.sub("Q", drawing)


def _assert_sane(drawing: str) -> None:
    bare = _structure(drawing)
    assert '"' not in bare, "an unterminated quoted string"
    depth = 0
    for char in bare:
        depth += {"{": 1, "}": -1}.get(char, 0)
        assert depth >= 0
    assert depth == 0
    assert bare.count("[") == bare.count("]")
    for line in bare.splitlines()[1:-1]:
        line = line.strip()
        assert line.endswith((";", "{", "}")), line
    assert bare.startswith("digraph Q {\n    rankdir=LR;")
    assert bare.rstrip().endswith("}")


@pytest.mark.parametrize("path", [FIXTURES / "good.py", FIXTURES / "problems.py", DEMO])
def test_sane_with_every_node_and_edge(path: Path) -> None:
    spec = load_graph(path).spec()
    drawing = render_dot(spec)
    _assert_sane(drawing)
    lines = [line.strip() for line in drawing.splitlines()]
    for node in spec.nodes:
        assert any(line.startswith(f"{quote(node.name)} [label=") for line in lines), node.name
    edge_lines = [line for line in lines if " -> " in line]
    assert len(edge_lines) == len(spec.edges)
    for edge in spec.edges:
        start = f"{quote(edge.source)} -> {quote(edge.target)} [label="
        label = quote(f"{edge.source_port} → {edge.target_port}\n{edge.type}")[:-1]
        matching = [line for line in edge_lines if line.startswith(start + label)]
        assert matching, edge
        assert any(("style=dashed" in line) == edge.feedback for line in matching)


def test_groups_are_clusters() -> None:
    drawing = render_dot(load_graph(DEMO).spec())
    lines = [line.strip() for line in drawing.splitlines()]
    start = lines.index('subgraph "cluster_clean" {')
    end = lines.index("}", start)
    inside = lines[start:end]
    assert 'label="clean";' in inside
    assert any(line.startswith('"clean/strip" [') for line in inside)
    assert not any(line.startswith('"length" [') for line in inside)


def test_inserted_converter_is_marked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(FIXTURES))
    import flowkit_fixture_chunks as chunks

    fk.register_converter(chunks.Chunk, chunks.rechunk_factory)
    try:
        spec = load_graph(FIXTURES / "converted.py").spec()
    finally:
        fk.unregister_converter(chunks.Chunk, chunks.rechunk_factory)
    drawing = render_dot(spec)
    _assert_sane(drawing)
    line = next(line for line in drawing.splitlines() if '"rechunk@speaker.chunks" [' in line)
    assert "(inserted)" in line and "dashed" in line
    assert "48 kHz mono" in drawing and "16 kHz mono" in drawing


def test_quote_escapes() -> None:
    assert quote('a "b" \\ c\nd') == '"a \\"b\\" \\\\ c\\nd"'


def test_hostile_names_stay_inside_their_quotes() -> None:
    out = PortSpec(name="out", direction="output", type='dict[str, "X"]')
    inp = PortSpec(name="x", direction="input", type='dict[str, "X"]')
    spec = GraphSpec(
        name='my "graph" {x}',
        description="a } brace",
        nodes=(
            NodeSpec(name="a", kind="m.K", style="rx", library="m", error_policy="skip",
                     group="g{1}", outputs=(out,), params={"p": 'x"; y -> z {'}),
            NodeSpec(name="b", kind="m.K", style="rx", library="m", error_policy="skip",
                     inputs=(inp,)),
        ),
        edges=(EdgeSpec(source="a", source_port="out", target="b", target_port="x",
                        type='dict[str, "X"]', feedback=True),),
    )
    drawing = render_dot(spec)
    _assert_sane(drawing)
    assert '"a" -> "b"' in drawing
