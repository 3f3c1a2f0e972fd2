"""The JSON drawing is the spec itself and reads back equal."""

from __future__ import annotations

import json
from pathlib import Path

import flowkit as fk
from flowkit.loader import load_graph
from flowkit.spec import GraphSpec
from flowkit.viz import render_json

FIXTURES = Path(__file__).parents[1] / "fixtures" / "graphs"


def test_round_trip_equals_the_graph_spec() -> None:
    graph = load_graph(FIXTURES / "good.py")
    text = render_json(graph.spec())
    assert GraphSpec.model_validate_json(text) == graph.spec()


def test_round_trip_keeps_problems() -> None:
    spec = load_graph(FIXTURES / "problems.py").spec()
    back = GraphSpec.model_validate_json(render_json(spec))
    assert back == spec
    assert [p.kind for p in back.problems].count("unconnected-input") == 2


def test_json_is_indented_and_lists_every_edge() -> None:
    spec = load_graph(FIXTURES / "good.py").spec()
    text = render_json(spec)
    assert text.startswith('{\n  "name": "good"')
    data = json.loads(text)
    assert len(data["edges"]) == len(spec.edges)
    assert any(edge["feedback"] for edge in data["edges"])


def test_inserted_converter_round_trips(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.syspath_prepend(str(FIXTURES))
    import flowkit_fixture_chunks as chunks

    fk.register_converter(chunks.Chunk, chunks.rechunk_factory)
    try:
        spec = load_graph(FIXTURES / "converted.py").spec()
    finally:
        fk.unregister_converter(chunks.Chunk, chunks.rechunk_factory)
    back = GraphSpec.model_validate_json(render_json(spec))
    assert back.node("rechunk@speaker.chunks").inserted
    assert back == spec
