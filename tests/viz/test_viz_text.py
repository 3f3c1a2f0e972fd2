"""The terminal drawing: nodes in order, params, typed edges, loops, groups, problems."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import flowkit as fk
from flowkit.loader import load_graph
from flowkit.spec import EdgeSpec, GraphSpec, NodeSpec, PortSpec, ProblemSpec
from flowkit.viz import render_text

FIXTURES = Path(__file__).parents[1] / "fixtures" / "graphs"
DEMO = Path(__file__).parents[2] / "graphs" / "demo_pipeline.py"


def _edge_text(edge: EdgeSpec) -> str:
    label = f"{edge.type} {edge.format}" if edge.format else edge.type
    return f"{edge.source_port} ─ {label} ─▶ {edge.target}.{edge.target_port}"


def _node_line(lines: list[str], name: str) -> int:
    return next(i for i, line in enumerate(lines) if f"● {name}  " in line)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" │├└─"))


@pytest.fixture
def converted(monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphSpec]:
    monkeypatch.syspath_prepend(str(FIXTURES))
    import flowkit_fixture_chunks as chunks

    fk.register_converter(chunks.Chunk, chunks.rechunk_factory)
    try:
        yield load_graph(FIXTURES / "converted.py").spec()
    finally:
        fk.unregister_converter(chunks.Chunk, chunks.rechunk_factory)


@pytest.mark.parametrize("path", [FIXTURES / "good.py", FIXTURES / "problems.py", DEMO])
def test_each_edge_is_drawn_under_its_source(path: Path) -> None:
    spec = load_graph(path).spec()
    lines = render_text(spec).splitlines()
    starts = sorted(_node_line(lines, n.name) for n in spec.nodes)
    for edge in spec.edges:
        start = _node_line(lines, edge.source)
        end = next((s for s in starts if s > start), len(lines))
        block = lines[start:end]
        assert any(_edge_text(edge) in line for line in block), _edge_text(edge)


def test_nodes_in_dataflow_order_with_params() -> None:
    spec = load_graph(DEMO).spec()
    lines = render_text(spec).splitlines()
    order = [_node_line(lines, n.name) for n in spec.nodes]
    assert order == sorted(order)
    assert order[0] < _node_line(lines, "report")
    assert "limit=2" in lines[_node_line(lines, "fit")]
    assert 'text="Graphs, you can SEE and check!"' in lines[_node_line(lines, "words")]


def test_title_and_counts() -> None:
    text = render_text(load_graph(DEMO).spec())
    first, second = text.splitlines()[:2]
    assert first == "demo-pipeline — clean words, halve their length until it fits"
    assert second == "7 nodes · 7 edges · 0 inserted · 1 feedback edge"


def test_feedback_edges_are_marked_as_loops() -> None:
    spec = load_graph(DEMO).spec()
    lines = render_text(spec).splitlines()
    for edge in spec.edges:
        line = next(line for line in lines if _edge_text(edge) in line)
        assert line.endswith("↺ loop") == edge.feedback, line


def test_subgraph_group_holds_its_nodes() -> None:
    lines = render_text(load_graph(DEMO).spec()).splitlines()
    group = next(i for i, line in enumerate(lines) if "▣ clean" in line)
    assert "(subgraph)" in lines[group]
    for name in ("clean/strip", "clean/lower"):
        node = _node_line(lines, name)
        assert node > group
        assert _indent(lines[node]) > _indent(lines[group])
    assert _indent(lines[_node_line(lines, "length")]) == _indent(lines[group])


def test_ports_show_types_and_formats(converted: GraphSpec) -> None:
    text = render_text(converted)
    assert "◀ chunks: Chunk [16 kHz mono]" in text
    assert "◀ chunk: Chunk [48 kHz mono]" in text


def test_inserted_converter_is_marked(converted: GraphSpec) -> None:
    lines = render_text(converted).splitlines()
    assert "(inserted)" in lines[_node_line(lines, "rechunk@speaker.chunks")]
    assert "(inserted)" not in lines[_node_line(lines, "mic")]
    assert "1 inserted" in lines[1]


def test_problems_come_after_the_drawing() -> None:
    spec = load_graph(FIXTURES / "problems.py").spec()
    text = render_text(spec)
    drawing, marker, tail = text.partition("4 problems:")
    assert marker
    assert "● pong" in drawing
    for problem in spec.problems:
        assert f"✗ [{problem.kind}] {problem.message}" in tail


def test_unlinked_outputs_and_optional_inputs() -> None:
    text = render_text(load_graph(FIXTURES / "problems.py").spec())
    assert "out: str  (unlinked)" in text
    good = render_text(load_graph(FIXTURES / "good.py").spec())
    assert "◀ again: str  (optional, feedback)" in good


def test_nested_groups_and_markup_characters_are_drawn_literally() -> None:
    port = PortSpec(name="x", direction="input", type="list[str]", required=True)
    out = PortSpec(name="out", direction="output", type="list[str]")
    spec = GraphSpec(
        name="[bold]not markup[/bold]",
        nodes=(
            NodeSpec(name="outer/inner/a", kind="m.A", style="rx", library="m",
                     group="outer/inner", error_policy="skip", outputs=(out,)),
            NodeSpec(name="b", kind="m.B", style="rx", library="m", error_policy="skip",
                     inputs=(port,), params={"prompt": "x" * 200}),
        ),
        edges=(EdgeSpec(source="outer/inner/a", source_port="out", target="b",
                        target_port="x", type="list[str]"),),
        problems=(ProblemSpec(kind="type-mismatch", message="[red]kept[/red] as written"),),
    )
    text = render_text(spec)
    assert text.startswith("[bold]not markup[/bold]")
    assert "out ─ list[str] ─▶ b.x" in text
    assert "[red]kept[/red] as written" in text
    assert "(subgraph outer/inner)" in text
    assert "x" * 200 not in text, "long parameter values are shortened"
    lines = text.splitlines()
    outer = next(i for i, line in enumerate(lines) if "▣ outer" in line)
    inner = next(i for i, line in enumerate(lines) if "▣ inner" in line)
    assert _indent(lines[inner]) > _indent(lines[outer])
    assert _indent(lines[_node_line(lines, "outer/inner/a")]) > _indent(lines[inner])
