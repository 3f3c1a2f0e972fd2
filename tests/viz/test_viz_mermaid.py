"""The Mermaid drawing: safe ids, labelled edges, dashed loops, inserted class, subgraphs."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

import flowkit as fk
from flowkit.loader import load_graph
from flowkit.spec import EdgeSpec, GraphSpec, NodeSpec, PortSpec
from flowkit.viz import render_mermaid

FIXTURES = Path(__file__).parents[1] / "fixtures" / "graphs"
DEMO = Path(__file__).parents[2] / "graphs" / "demo_pipeline.py"
NODE = re.compile(r'^\s*(\w+)\(?\["<b>(.*?)</b>')
EDGE = re.compile(r'^\s*(\w+) (-->|-\.->)\|"(.*?)"\| (\w+)$')


def _ids(drawing: str) -> dict[str, str]:
    found = [NODE.match(line) for line in drawing.splitlines()]
    return {m.group(2): m.group(1) for m in found if m}


def _edges(drawing: str) -> list[tuple[str, str, str, str]]:
    found = [EDGE.match(line) for line in drawing.splitlines()]
    return [(m.group(1), m.group(2), m.group(3), m.group(4)) for m in found if m]


@pytest.mark.parametrize("path", [FIXTURES / "good.py", FIXTURES / "problems.py", DEMO])
def test_every_node_and_edge(path: Path) -> None:
    spec = load_graph(path).spec()
    drawing = render_mermaid(spec)
    assert drawing.splitlines()[0] == "flowchart LR"
    ids = _ids(drawing)
    assert set(ids) == {n.name for n in spec.nodes}
    assert len(set(ids.values())) == len(ids)
    assert all(re.fullmatch(r"n_\w+", i) for i in ids.values())
    edges = _edges(drawing)
    assert len(edges) == len(spec.edges)
    for edge in spec.edges:
        arrow = "-.->" if edge.feedback else "-->"
        label = f"{edge.source_port} → {edge.target_port}: {edge.type}"
        assert any(
            e[0] == ids[edge.source] and e[1] == arrow and e[2].startswith(label)
            and e[3] == ids[edge.target]
            for e in edges
        ), edge


def test_groups_are_subgraphs_holding_their_nodes() -> None:
    lines = render_mermaid(load_graph(DEMO).spec()).splitlines()
    start = lines.index('    subgraph g_clean["clean"]')
    end = lines.index("    end", start)
    inside = "\n".join(lines[start:end])
    assert "<b>clean/strip</b>" in inside and "<b>clean/lower</b>" in inside
    assert "<b>length</b>" not in inside


def test_inserted_converter_has_its_class(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(FIXTURES))
    import flowkit_fixture_chunks as chunks

    fk.register_converter(chunks.Chunk, chunks.rechunk_factory)
    try:
        spec = load_graph(FIXTURES / "converted.py").spec()
    finally:
        fk.unregister_converter(chunks.Chunk, chunks.rechunk_factory)
    drawing = render_mermaid(spec)
    ids = _ids(drawing)
    assert f"    class {ids['rechunk@speaker.chunks']} inserted" in drawing.splitlines()
    assert "classDef inserted" in drawing
    labels = [e[2] for e in _edges(drawing)]
    assert "out → chunk: Chunk · 48 kHz mono" in labels
    assert "out → chunks: Chunk · 16 kHz mono" in labels


def _spec(*names: str, edge_type: str = "str") -> GraphSpec:
    out = PortSpec(name="out", direction="output", type=edge_type)
    inp = PortSpec(name="x", direction="input", type=edge_type)
    nodes = tuple(
        NodeSpec(name=n, kind="m.K", style="rx", library="m", error_policy="skip",
                 inputs=(inp,), outputs=(out,), params={"q": 'say "hi" | #1'})
        for n in names
    )
    edges = tuple(
        EdgeSpec(source=a, source_port="out", target=b, target_port="x", type=edge_type)
        for a, b in itertools.pairwise(names)
    )
    return GraphSpec(name="t", nodes=nodes, edges=edges)


def test_ids_are_sanitised_and_never_collide() -> None:
    drawing = render_mermaid(_spec("a-b", "a_b", "end", "x@y.z"))
    ids = _ids(drawing)
    assert len(set(ids.values())) == 4
    assert ids["end"] != "end"
    assert all(re.fullmatch(r"n_\w+", i) for i in ids.values())


def test_labels_escape_quotes_pipes_and_hashes() -> None:
    drawing = render_mermaid(_spec("a", "b", edge_type="str | None"))
    edge = _edges(drawing)[0]
    assert edge[2] == "out → x: str #124; None"
    assert "q=#quot;say \\#quot;hi\\#quot; #124; #35;1#quot;" in drawing
    # Only the label delimiters themselves are quote characters.
    for line in drawing.splitlines():
        if "<b>" in line:
            assert line.count('"') == 2, line
