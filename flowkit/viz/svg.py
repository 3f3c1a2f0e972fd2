"""The SVG drawing: a self-contained picture of the graph, laid out by :mod:`.layout`.

Nodes are boxes with their name, kind, library (a colour per library) and a parameter
summary; edges carry their ports, type and audio format; feedback edges are dashed and run
back below the graph; inserted converters have a dashed box; subgraph groups are tinted
frames. Given a :class:`~flowkit.trace.Trace`, each node and edge shows its figures, slow or
busy nodes are filled warmer, and edges are drawn thicker the more messages they carried.

Text is set in a monospace font so its width is known here without a browser: boxes are
sized from their longest line and labels never spill out of them.
"""

from __future__ import annotations

import itertools
import math
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from xml.sax.saxutils import escape

from flowkit.runtime.metrics import EdgeMetrics, NodeMetrics
from flowkit.spec import EdgeSpec, GraphSpec, NodeSpec
from flowkit.trace import Trace
from flowkit.viz._labels import param_lines, unique_ids
from flowkit.viz.layout import Layout, Point, Rect, layout

__all__ = ["FONT", "library_colour", "node_ids", "render_svg", "text_width"]

FONT = "'DejaVu Sans Mono', Menlo, Consolas, 'Liberation Mono', monospace"
# DejaVu Sans Mono advances 0.602 em per character; a little more covers the fallbacks.
_EM = 0.62
_PAD = 10.0
_STRIPE = 6.0
_MAX_PARAMS = 4
_MAX_CHARS = 36
_NAME, _SMALL, _TINY = 13.0, 11.0, 10.0
_TOP = 64.0  # title and legend
# Libraries get colours in this order of their name's hash; the built-in one is always blue.
_PALETTE = ("#8e44ad", "#16a085", "#d35400", "#c0392b", "#2c3e50", "#7f8c00", "#b8860b",
            "#e84393")
_BUILTIN = "#2f6fb3"

_STYLE = """
.title{font-size:15px;font-weight:bold;fill:#222}
.legend{font-size:11px;fill:#444}
.node rect.box{fill:#fff;stroke-width:1.5}
.node.inserted rect.box{stroke-dasharray:5 3}
.node text{fill:#222}
.node .kind{fill:#555}
.node .param{fill:#666}
.node .figure{fill:#000}
.node .alarm{fill:#b00020;font-weight:bold}
.edge path{fill:none;stroke:#7a8591}
.edge.feedback path{stroke-dasharray:6 4;stroke:#9b59b6}
.edge-label text{font-size:10px;fill:#333}
.edge-label .type{fill:#777}
.edge-label .figure{fill:#000}
.edge-label rect{fill:#fff;fill-opacity:.85}
.group rect{stroke:none}
.group text{font-size:11px;font-style:italic;fill:#555}
"""


@dataclass(frozen=True, slots=True)
class _Line:
    text: str
    size: float
    css: str


def text_width(text: str, size: float) -> float:
    """The width of ``text`` at ``size`` px in the drawing's monospace font."""
    return len(text) * size * _EM


def library_colour(library: str) -> str:
    """The colour of a node library: the same in every drawing (a hash, not an order)."""
    if library == "flowkit":
        return _BUILTIN
    return _PALETTE[zlib.crc32(library.encode()) % len(_PALETTE)]


def node_ids(spec: GraphSpec) -> dict[str, str]:
    """Each node's element id in the drawing (``node_`` + the name, made id-safe)."""
    return unique_ids([n.name for n in spec.nodes], "node_")


def _short(text: str, limit: int = _MAX_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _ms(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.0f}"


def node_figures(m: NodeMetrics) -> list[str]:
    """A node's figures, a few short lines."""
    lines = [f"in {m.messages_in} · out {m.messages_out}"]
    if m.busy_s or m.latency_p95_ms:
        lines.append(f"p50 {_ms(m.latency_p50_ms)} · p95 {_ms(m.latency_p95_ms)} ms")
        lines.append(f"busy {m.busy_s:.3f} s")
    return lines


def _alarms(m: NodeMetrics) -> str:
    parts = [f"{n} {label}" for n, label in
             ((m.errors, "errors"), (m.restarts, "restarts"), (m.dropped, "dropped")) if n]
    return " · ".join(parts)


def edge_figures(m: EdgeMetrics) -> str:
    """An edge's figures on one line."""
    parts = [f"{m.messages} msgs"]
    if m.max_queue_depth:
        parts.append(f"queue ≤{m.max_queue_depth}")
    if m.wait_p95_ms:
        parts.append(f"wait p95 {_ms(m.wait_p95_ms)} ms")
    if m.dropped or m.overflowed:
        parts.append(f"{m.dropped + m.overflowed} dropped")
    return " · ".join(parts)


def _node_lines(node: NodeSpec, trace: Trace | None) -> list[_Line]:
    kind = node.kind.rsplit(".", 1)[-1]
    origin = "inserted" if node.inserted else node.library
    lines = [_Line(node.name, _NAME, "name"), _Line(f"{kind} · {origin}", _SMALL, "kind")]
    params = param_lines(node.params)
    shown = params if len(params) <= _MAX_PARAMS else params[: _MAX_PARAMS - 1]
    lines.extend(_Line(_short(p), _TINY, "param") for p in shown)
    if len(shown) < len(params):
        lines.append(_Line(f"+{len(params) - len(shown)} more", _TINY, "param"))
    metrics = trace.node_metrics(node.name) if trace is not None else None
    if metrics is not None:
        lines.extend(_Line(f, _TINY, "figure") for f in node_figures(metrics))
        alarm = _alarms(metrics)
        if alarm:
            lines.append(_Line(alarm, _TINY, "alarm"))
    return lines


def _edge_lines(edge: EdgeSpec, trace: Trace | None) -> list[_Line]:
    lines = [_Line(f"{edge.source_port} → {edge.target_port}", _TINY, "ports")]
    lines.append(_Line(edge.type + (f" · {edge.format}" if edge.format else ""), _TINY, "type"))
    metrics = trace.edge_metrics(edge) if trace is not None else None
    if metrics is not None:
        lines.append(_Line(edge_figures(metrics), _TINY, "figure"))
    return lines


def _block_size(lines: list[_Line], pad: float) -> tuple[float, float]:
    width = max(text_width(line.text, line.size) for line in lines)
    height = sum(line.size * 1.3 for line in lines)
    return width + 2 * pad, height + pad


def _heat(trace: Trace | None) -> dict[str, float]:
    """0 (idle) to 1 (the slowest or busiest node), from the runtime's own timings."""
    if trace is None:
        return {}
    nodes = trace.metrics.nodes
    busiest = max((n.busy_s for n in nodes), default=0.0) or 1.0
    slowest = max((n.latency_p95_ms for n in nodes), default=0.0) or 1.0
    return {n.name: max(n.busy_s / busiest, n.latency_p95_ms / slowest) for n in nodes}


def _warm(heat: float) -> str:
    """White through amber to red."""
    heat = min(1.0, max(0.0, heat))
    stops = ((0.0, (255, 255, 255)), (0.5, (255, 214, 140)), (1.0, (255, 120, 100)))
    for (h0, c0), (h1, c1) in itertools.pairwise(stops):
        if heat <= h1:
            t = (heat - h0) / (h1 - h0)
            r, g, b = (round(a + (b_ - a) * t) for a, b_ in zip(c0, c1, strict=True))
            return f"#{r:02x}{g:02x}{b:02x}"
    return "#ff7864"


def _attr(value: str) -> str:
    return '"' + escape(value, {'"': "&quot;", "\n": "&#10;"}) + '"'


def _text_block(lines: list[_Line], x: float, y: float) -> Iterable[str]:
    for line in lines:
        y += line.size * 1.3
        weight = ' font-weight="bold"' if line.css == "name" else ""
        yield (f'<text class="{line.css}" x="{x:.1f}" y="{y - line.size * 0.3:.1f}" '
               f'font-size="{line.size:g}"{weight}>{escape(line.text)}</text>')


def _smooth(points: tuple[Point, ...]) -> str:
    (x0, y0), rest = points[0], points[1:]
    d = [f"M{x0:.1f},{y0:.1f}"]
    for (ax, ay), (bx, by) in zip(points, rest, strict=False):
        if abs(ay - by) < 0.5:
            d.append(f"L{bx:.1f},{by:.1f}")
        else:
            mx = (ax + bx) / 2
            d.append(f"C{mx:.1f},{ay:.1f} {mx:.1f},{by:.1f} {bx:.1f},{by:.1f}")
    return " ".join(d)


def _rounded(points: tuple[Point, ...], radius: float = 6.0) -> str:
    d = [f"M{points[0][0]:.1f},{points[0][1]:.1f}"]
    for (ax, ay), (px, py), (bx, by) in zip(points, points[1:], points[2:], strict=False):
        r = min(radius, math.dist((ax, ay), (px, py)) / 2, math.dist((px, py), (bx, by)) / 2)
        ux, uy = _toward((px, py), (ax, ay), r)
        vx, vy = _toward((px, py), (bx, by), r)
        d.append(f"L{ux:.1f},{uy:.1f} Q{px:.1f},{py:.1f} {vx:.1f},{vy:.1f}")
    d.append(f"L{points[-1][0]:.1f},{points[-1][1]:.1f}")
    return " ".join(d)


def _toward(p: Point, q: Point, r: float) -> Point:
    length = math.dist(p, q) or 1.0
    return p[0] + (q[0] - p[0]) * r / length, p[1] + (q[1] - p[1]) * r / length


def render_svg(spec: GraphSpec, trace: Trace | None = None) -> str:
    """Draw ``spec`` as a standalone SVG document, with ``trace``'s figures if given."""
    node_lines = {n.name: _node_lines(n, trace) for n in spec.nodes}
    edge_lines = [_edge_lines(e, trace) for e in spec.edges]
    index = {id(e): i for i, e in enumerate(spec.edges)}

    def node_size(node: NodeSpec) -> tuple[float, float]:
        w, h = _block_size(node_lines[node.name], _PAD)
        return max(120.0, w + _STRIPE), h

    def label_size(edge: EdgeSpec) -> tuple[float, float]:
        return _block_size(edge_lines[index[id(edge)]], 2.0)

    geometry = layout(spec, node_size, label_size, top=_TOP)
    title = spec.name + (f" — {spec.description}" if spec.description else "")
    if trace is not None:
        title += f" · trace: {len(trace.turns)} turns, {trace.duration_s:.1f} s"
    legend = _legend(spec, trace)
    width = max(geometry.width, text_width(title, 15) + 48,
                48 + sum(text_width(t, 11) + 40 for t, _ in legend))
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" '
        f'height="{geometry.height:.0f}" viewBox="0 0 {width:.0f} {geometry.height:.0f}" '
        f'font-family={_attr(FONT)} class="flowkit-graph" data-graph={_attr(spec.name)}>',
        f"<title>{escape(title)}</title>",
        f"<style>{_STYLE}</style>",
        # In user units, so arrowheads keep their size on edges drawn thicker by traffic.
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" '
        'markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#7a8591"/></marker></defs>',
        '<rect width="100%" height="100%" fill="#fafbfc"/>',
        f'<text class="title" x="24" y="24">{escape(title)}</text>',
    ]
    out.extend(_legend_svg(legend))
    out.extend(_groups_svg(geometry))
    out.extend(_edges_svg(spec, geometry, edge_lines, trace))
    out.extend(_nodes_svg(spec, geometry, node_lines, _heat(trace)))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _legend(spec: GraphSpec, trace: Trace | None) -> list[tuple[str, str]]:
    """(text, swatch) pairs: each library's colour, then what dashes and fills mean."""
    libraries = sorted({n.library for n in spec.nodes if not n.inserted})
    items = [(f"library {lib}", library_colour(lib)) for lib in libraries]
    if any(e.feedback for e in spec.edges):
        items.append(("feedback loop (dashed)", "#9b59b6"))
    if any(n.inserted for n in spec.nodes):
        items.append(("inserted converter (dashed box)", "#999999"))
    if trace is not None:
        items.append(("fill: busiest or slowest node", _warm(1.0)))
    return items


def _legend_svg(items: list[tuple[str, str]]) -> Iterable[str]:
    x = 24.0
    yield '<g class="legend">'
    for text, colour in items:
        yield f'<rect x="{x:.1f}" y="36" width="12" height="12" rx="2" fill="{colour}"/>'
        yield f'<text x="{x + 18:.1f}" y="46">{escape(text)}</text>'
        x += text_width(text, 11) + 40
    yield "</g>"


def _groups_svg(geometry: Layout) -> Iterable[str]:
    for frame in geometry.groups:
        tint = max(0.05, 0.12 - 0.02 * frame.depth)
        yield f'<g class="group" data-group={_attr(frame.path)}>'
        for k, piece in enumerate(frame.pieces):
            yield (f'<rect x="{piece.x:.1f}" y="{piece.y:.1f}" width="{piece.w:.1f}" '
                   f'height="{piece.h:.1f}" rx="8" fill="#4a6fa5" fill-opacity="{tint:.2f}"/>')
            if k == 0:
                label = frame.path.rsplit("/", 1)[-1]
                yield (f'<text x="{piece.x + 8:.1f}" y="{piece.y + 13:.1f}">'
                       f'{escape(label)}</text>')
        yield "</g>"


def _edges_svg(
    spec: GraphSpec, geometry: Layout, edge_lines: list[list[_Line]], trace: Trace | None
) -> Iterable[str]:
    busiest = max((e.messages for e in trace.metrics.edges), default=0) if trace else 0
    labels = []
    for route in geometry.edges:
        edge = spec.edges[route.index]
        classes = "edge" + (" feedback" if edge.feedback else "") + (" back" if route.back else "")
        metrics = trace.edge_metrics(edge) if trace is not None else None
        stroke = 1.3
        if metrics is not None and busiest:
            # Thicker with traffic, on a log scale: audio edges carry 100x what text does.
            stroke += 2.5 * math.log1p(metrics.messages) / math.log1p(busiest)
        path = _rounded(route.points) if route.back else _smooth(route.points)
        what = f"{edge.source}.{edge.source_port} → {edge.target}.{edge.target_port}"
        yield (f'<g class="{classes}" id="edge_{route.index}" data-edge="{route.index}" '
               f'data-source={_attr(edge.source)} data-source-port={_attr(edge.source_port)} '
               f'data-target={_attr(edge.target)} data-target-port={_attr(edge.target_port)}>'
               f"<title>{escape(what)} ({escape(edge.type)})</title>"
               f'<path d="{path}" stroke-width="{stroke:.1f}" marker-end="url(#arrow)"/></g>')
        labels.append(_label_svg(route.index, route.label, edge_lines[route.index]))
    # Labels after every line, so no line is drawn over a label's text.
    yield from labels


def _label_svg(index: int, box: Rect, lines: list[_Line]) -> str:
    body = "".join(_text_block(lines, box.x + 2, box.y))
    return (f'<g class="edge-label" data-edge="{index}"><rect x="{box.x:.1f}" y="{box.y:.1f}" '
            f'width="{box.w:.1f}" height="{box.h:.1f}" rx="2"/>{body}</g>')


def _nodes_svg(
    spec: GraphSpec, geometry: Layout, node_lines: dict[str, list[_Line]],
    heat: dict[str, float],
) -> Iterable[str]:
    ids = node_ids(spec)
    for node in spec.nodes:
        box = geometry.nodes[node.name]
        colour = "#999999" if node.inserted else library_colour(node.library)
        classes = "node" + (" inserted" if node.inserted else "")
        fill = _warm(heat[node.name]) if node.name in heat else "#ffffff"
        yield (f'<g class="{classes}" id="{ids[node.name]}" data-node={_attr(node.name)} '
               f'data-library={_attr(node.library)} data-heat="{heat.get(node.name, 0):.2f}">'
               f"<title>{escape(node.name)} ({escape(node.kind)})</title>"
               f'<rect class="box" x="{box.x:.1f}" y="{box.y:.1f}" width="{box.w:.1f}" '
               f'height="{box.h:.1f}" rx="6" stroke="{colour}" style="fill:{fill}"/>'
               f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{_STRIPE}" height="{box.h:.1f}" '
               f'rx="3" fill="{colour}"/>')
        yield from _text_block(node_lines[node.name], box.x + _STRIPE + _PAD, box.y + _PAD / 2)
        yield "</g>"
