"""The SVG drawing: well-formed XML naming every node and edge, laid out without overlaps."""

from __future__ import annotations

import functools
import itertools
import random
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import flowkit as fk
from flowkit.job import JobContext
from flowkit.loader import load_graph
from flowkit.spec import EdgeSpec, GraphSpec, NodeSpec, PortSpec
from flowkit.viz import RENDERERS, render_svg
from flowkit.viz.layout import Rect
from flowkit.viz.svg import text_width

ROOT = Path(__file__).parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "graphs"
SVG = "{http://www.w3.org/2000/svg}"


@functools.cache
def voice_agent_spec() -> GraphSpec:
    """graphs/voice_agent.py on the demo providers (no models needed)."""
    job = JobContext.local(providers="demo")
    return load_graph(ROOT / "graphs" / "voice_agent.py", job).spec()


def generated_spec(count: int = 60, seed: int = 7) -> GraphSpec:
    """A random dataflow graph: fan-in and fan-out, long edges, feedback loops, groups."""
    rng = random.Random(seed)
    out = PortSpec(name="out", direction="output", type="TextChunk")
    inp = PortSpec(name="in", direction="input", type="TextChunk")
    back = PortSpec(name="loop", direction="input", type="Playout", feedback=True)
    nodes, edges = [], []
    for i in range(count):
        name = f"stage_{i:02d}" + ("_with_a_long_name" if i % 7 == 3 else "")
        group = ("asr" if i % 9 == 1 else "asr/inner" if i % 9 == 2 else "")
        params: dict[str, object] = {"index": i}
        if i % 5 == 0:
            params.update(provider="Provider(" + "x" * 60 + ")", rate=16_000, flag=True)
        nodes.append(NodeSpec(
            name=name, kind=f"pkg.mod.Kind{i % 4}", style="async", library=f"lib{i % 3}",
            group=group, error_policy="skip", inserted=i % 11 == 5, params=params,
            inputs=(inp, back), outputs=(out,),
        ))
    for i in range(1, count):
        for j in rng.sample(range(i), k=min(i, rng.choice((1, 1, 2, 3)))):
            edges.append(EdgeSpec(source=nodes[j].name, source_port="out",
                                  target=nodes[i].name, target_port="in", type="TextChunk",
                                  format="16 kHz mono" if i % 4 == 0 else None))
    for _ in range(6):
        j, i = sorted(rng.sample(range(count), 2))
        edges.append(EdgeSpec(source=nodes[i].name, source_port="out", target=nodes[j].name,
                              target_port="loop", type="Playout", feedback=True))
    return GraphSpec(name="generated", nodes=tuple(nodes), edges=tuple(edges))


def converted_spec(monkeypatch: pytest.MonkeyPatch) -> GraphSpec:
    monkeypatch.syspath_prepend(str(FIXTURES))
    import flowkit_fixture_chunks as chunks

    fk.register_converter(chunks.Chunk, chunks.rechunk_factory)
    try:
        return load_graph(FIXTURES / "converted.py").spec()
    finally:
        fk.unregister_converter(chunks.Chunk, chunks.rechunk_factory)


def rect(element: ET.Element) -> Rect:
    return Rect(*(float(element.attrib[k]) for k in ("x", "y", "width", "height")))


def texts(element: ET.Element) -> list[str]:
    return [t.text or "" for t in element.iter(f"{SVG}text")]


def parsed(spec: GraphSpec) -> ET.Element:
    drawing = render_svg(spec)
    assert drawing.endswith("</svg>\n")
    return ET.fromstring(drawing)


def nodes_of(root: ET.Element) -> dict[str, ET.Element]:
    found = {}
    for g in root.iter(f"{SVG}g"):
        if "node" in g.attrib.get("class", "").split():
            found[g.attrib["data-node"]] = g
    return found


def groups_by_class(root: ET.Element, css: str) -> list[ET.Element]:
    return [g for g in root.iter(f"{SVG}g") if css in g.attrib.get("class", "").split()]


SPECS = {"voice_agent": voice_agent_spec, "generated": generated_spec}


@pytest.fixture(params=list(SPECS))
def spec(request: pytest.FixtureRequest) -> GraphSpec:
    return SPECS[request.param]()


def test_svg_and_html_are_drawing_formats() -> None:
    assert RENDERERS["svg"] is render_svg
    assert "html" in RENDERERS


def test_names_every_node_and_edge(spec: GraphSpec) -> None:
    root = parsed(spec)
    nodes = nodes_of(root)
    assert set(nodes) == {n.name for n in spec.nodes}
    for node in spec.nodes:
        lines = texts(nodes[node.name])
        assert lines[0] == node.name
        assert lines[1].startswith(node.kind.rsplit(".", 1)[-1] + " · ")
    edges = groups_by_class(root, "edge")
    labels = {g.attrib["data-edge"]: g for g in groups_by_class(root, "edge-label")}
    assert len(edges) == len(spec.edges) == len(labels)
    for g in edges:
        edge = spec.edges[int(g.attrib["data-edge"])]
        assert (g.attrib["data-source"], g.attrib["data-source-port"]) == (
            edge.source, edge.source_port)
        assert (g.attrib["data-target"], g.attrib["data-target-port"]) == (
            edge.target, edge.target_port)
        assert ("feedback" in g.attrib["class"].split()) == edge.feedback
        lines = texts(labels[g.attrib["data-edge"]])
        assert lines[0] == f"{edge.source_port} → {edge.target_port}"
        assert lines[1] == edge.type + (f" · {edge.format}" if edge.format else "")


def test_nothing_overlaps_and_text_fits(spec: GraphSpec) -> None:
    root = parsed(spec)
    boxes = {name: rect(g.find(f"{SVG}rect[@class='box']"))  # type: ignore[arg-type]
             for name, g in nodes_of(root).items()}
    labels = [rect(g.find(f"{SVG}rect")) for g in groups_by_class(root, "edge-label")]  # type: ignore[arg-type]
    for (a, ra), (b, rb) in itertools.combinations(boxes.items(), 2):
        assert not ra.overlaps(rb), (a, b)
    for label in labels:
        assert not any(label.overlaps(box) for box in boxes.values()), label
    for a, b in itertools.combinations(labels, 2):
        assert not a.overlaps(b), (a, b)
    width, height = float(root.attrib["width"]), float(root.attrib["height"])
    for name, g in nodes_of(root).items():
        box = boxes[name]
        assert box.x >= 0 and box.right <= width and box.y >= 0 and box.bottom <= height
        for t in g.iter(f"{SVG}text"):
            right = float(t.attrib["x"]) + text_width(t.text or "", float(t.attrib["font-size"]))
            assert right <= box.right, (name, t.text)
            assert box.y < float(t.attrib["y"]) < box.bottom, (name, t.text)


def test_flows_left_to_right_and_loops_run_back() -> None:
    spec = voice_agent_spec()
    root = parsed(spec)
    boxes = {name: rect(g.find(f"{SVG}rect[@class='box']"))  # type: ignore[arg-type]
             for name, g in nodes_of(root).items()}
    chain = ["mic", "resample", "vad", "stt", "turns", "llm", "tts", "speaker"]
    xs = [boxes[n].x for n in chain]
    assert xs == sorted(xs) and len(set(xs)) == len(xs)
    back = groups_by_class(root, "back")
    assert {(g.attrib["data-source"], g.attrib["data-target"]) for g in back} >= {
        ("speaker", "llm"), ("tools", "llm")}
    for g in back:
        assert "feedback" in g.attrib["class"]


def test_groups_are_frames_around_their_own_nodes() -> None:
    spec = load_graph(ROOT / "graphs" / "demo_pipeline.py").spec()
    root = parsed(spec)
    boxes = {name: rect(g.find(f"{SVG}rect[@class='box']"))  # type: ignore[arg-type]
             for name, g in nodes_of(root).items()}
    frames = groups_by_class(root, "group")
    assert frames
    for frame in frames:
        path = frame.attrib["data-group"]
        pieces = [rect(r) for r in frame.iter(f"{SVG}rect")]
        assert texts(frame) == [path.rsplit("/", 1)[-1]]
        for node in spec.nodes:
            inside = node.group == path or node.group.startswith(path + "/")
            box = boxes[node.name]
            hits = [p for p in pieces if p.overlaps(box)]
            if inside:
                assert any(p.x <= box.x and box.right <= p.right and p.y <= box.y
                           and box.bottom <= p.bottom for p in hits), node.name
            else:
                assert not hits, (path, node.name)


def test_generated_groups_keep_strangers_out() -> None:
    spec = generated_spec()
    root = parsed(spec)
    boxes = {name: rect(g.find(f"{SVG}rect[@class='box']"))  # type: ignore[arg-type]
             for name, g in nodes_of(root).items()}
    for frame in groups_by_class(root, "group"):
        path = frame.attrib["data-group"]
        pieces = [rect(r) for r in frame.iter(f"{SVG}rect")]
        for node in spec.nodes:
            if not (node.group == path or node.group.startswith(path + "/")):
                assert not any(p.overlaps(boxes[node.name]) for p in pieces)


def test_inserted_converter_is_marked(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = converted_spec(monkeypatch)
    nodes = nodes_of(parsed(spec))
    inserted = [n.name for n in spec.nodes if n.inserted]
    assert inserted
    for name in inserted:
        assert "inserted" in nodes[name].attrib["class"].split()
        assert "· inserted" in texts(nodes[name])[1]
    drawing = render_svg(spec)
    assert "48 kHz mono" in drawing and "16 kHz mono" in drawing
    assert "inserted converter" in drawing  # the legend says what the dashed box means


def test_libraries_have_their_own_colours() -> None:
    spec = generated_spec(12)
    nodes = nodes_of(parsed(spec))
    colour = {}
    for node in spec.nodes:
        if not node.inserted:
            stroke = nodes[node.name].find(f"{SVG}rect[@class='box']").attrib["stroke"]  # type: ignore[union-attr]
            colour.setdefault(node.library, set()).add(stroke)
    assert all(len(c) == 1 for c in colour.values())
    assert len({next(iter(c)) for c in colour.values()}) == len(colour)


def test_small_graph_and_hostile_names() -> None:
    out = PortSpec(name="out", direction="output", type='dict[str, "X"]')
    inp = PortSpec(name="x", direction="input", type='dict[str, "X"]')
    spec = GraphSpec(
        name='my "graph" <&>',
        nodes=(
            NodeSpec(name="a<b>", kind="m.K", style="rx", library="m&m", error_policy="skip",
                     outputs=(out,), params={"p": '</svg> & "x"'}),
            NodeSpec(name="b&c", kind="m.K", style="rx", library="m", error_policy="skip",
                     inputs=(inp,)),
        ),
        edges=(EdgeSpec(source="a<b>", source_port="out", target="b&c", target_port="x",
                        type='dict[str, "X"]'),),
    )
    root = parsed(spec)
    assert set(nodes_of(root)) == {"a<b>", "b&c"}
    assert render_svg(spec) == render_svg(spec)


def test_a_cycle_that_is_not_declared_is_still_drawn() -> None:
    port_out = PortSpec(name="out", direction="output", type="int")
    port_in = PortSpec(name="in", direction="input", type="int")
    nodes = tuple(NodeSpec(name=n, kind="m.K", style="rx", library="m", error_policy="skip",
                           inputs=(port_in,), outputs=(port_out,)) for n in "abc")
    edges = tuple(EdgeSpec(source=s, source_port="out", target=t, target_port="in", type="int")
                  for s, t in (("a", "b"), ("b", "c"), ("c", "a")))
    root = parsed(GraphSpec(name="cycle", nodes=nodes, edges=edges))
    assert len(groups_by_class(root, "edge")) == 3
    assert len(groups_by_class(root, "back")) == 1
