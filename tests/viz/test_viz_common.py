"""What every drawing promises: pure, complete (every node, every edge), and selectable."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import flowkit as fk
from flowkit.loader import load_graph
from flowkit.spec import GraphSpec
from flowkit.viz import RENDERERS, render, render_dot, render_json, render_mermaid, render_text

FIXTURES = Path(__file__).parents[1] / "fixtures" / "graphs"
GRAPHS = [
    FIXTURES / "good.py",
    FIXTURES / "problems.py",
    FIXTURES / "converted.py",
    Path(__file__).parents[2] / "graphs" / "demo_pipeline.py",
]


@pytest.fixture(params=GRAPHS, ids=lambda p: p.stem)
def spec(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphSpec]:
    monkeypatch.syspath_prepend(str(FIXTURES))
    import flowkit_fixture_chunks as chunks

    fk.register_converter(chunks.Chunk, chunks.rechunk_factory)
    try:
        yield load_graph(request.param).spec()
    finally:
        fk.unregister_converter(chunks.Chunk, chunks.rechunk_factory)


def test_the_formats_on_offer() -> None:
    assert list(RENDERERS) == ["text", "mermaid", "dot", "json", "svg", "html"]
    assert RENDERERS["text"] is render_text
    assert RENDERERS["mermaid"] is render_mermaid
    assert RENDERERS["dot"] is render_dot
    assert RENDERERS["json"] is render_json


def test_unknown_format_names_the_choices(spec: GraphSpec) -> None:
    with pytest.raises(ValueError, match="no drawing format 'png'; choose one of: text, mermaid"):
        render(spec, "png")


@pytest.mark.parametrize("fmt", list(RENDERERS))
def test_every_drawing_names_every_node_and_is_deterministic(spec: GraphSpec, fmt: str) -> None:
    drawing = render(spec, fmt)
    assert drawing == render(spec, fmt)
    assert drawing.endswith("\n")
    for node in spec.nodes:
        assert node.name in drawing, (fmt, node.name)


def test_fixture_graphs_cover_what_drawings_must_show(spec: GraphSpec) -> None:
    # Guards the other tests: each feature below is present in at least one fixture graph.
    if spec.name == "converted":
        assert any(n.inserted for n in spec.nodes)
        assert all(e.format for e in spec.edges)
    if spec.name in ("good", "demo-pipeline"):
        assert any(e.feedback for e in spec.edges)
        assert any(n.group for n in spec.nodes)
    if spec.name == "broken":
        assert spec.problems
