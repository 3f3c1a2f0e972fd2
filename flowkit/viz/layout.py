"""Left-to-right layered layout of a graph: the geometry of the SVG and HTML drawings.

The classic Sugiyama recipe, kept small:

1. layers from a topological order of the forward edges (declared feedback edges, and any
   undeclared cycle's closing edge, do not count), each node as far left as its inputs allow;
2. every forward edge gets a *label item* in the column right after its source, and a thin
   dummy item in each further column it crosses, so edge labels are laid out like nodes and
   can never overlap a box or each other;
3. barycenter sweeps order each column to reduce crossings, keeping a subgraph group's items
   together so its frame holds only its own nodes;
4. columns are as wide as their widest item and items are stacked with gaps that leave room
   for group frames; edges that go back run in lanes of their own below the graph.

Sizes come from the caller (the renderer knows its fonts), so boxes fit their labels.

networkx is imported on the first drawing, not with this module: the worker imports the
renderers for its drawing page, and most workers never draw (it is about 10 MiB resident).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flowkit.spec import EdgeSpec, GraphSpec, NodeSpec

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["EdgeRoute", "GroupFrame", "Layout", "Point", "Rect", "Size", "layout"]

Size = tuple[float, float]
Point = tuple[float, float]

MARGIN = 24.0
V_GAP = 14.0  # between items stacked in a column
GROUP_LABEL = 18.0  # room above a group's first item for its name
LANE_GAP = 10.0  # between the lanes of edges drawn back
_SWEEPS = 12


@dataclass(frozen=True, slots=True)
class Rect:
    """An axis-aligned rectangle: top-left corner, width and height."""

    x: float
    y: float
    w: float
    h: float

    @property
    def right(self) -> float:
        """The x of the right side."""
        return self.x + self.w

    @property
    def bottom(self) -> float:
        """The y of the bottom side."""
        return self.y + self.h

    def overlaps(self, other: Rect) -> bool:
        """Whether the two rectangles share any area (touching sides do not count)."""
        return (
            self.x < other.right and other.x < self.right
            and self.y < other.bottom and other.y < self.bottom
        )


@dataclass(frozen=True, slots=True)
class EdgeRoute:
    """Where one edge of the spec runs.

    Attributes:
        index: The edge's index in ``spec.edges``.
        points: The route from the source's right side to the target's left side. A forward
            edge's points are meant to be joined by smooth curves; a back edge's are corners.
        label: The box its label goes in (the route runs along the box's bottom).
        back: Whether the edge runs back, right to left, in a lane below the graph.
    """

    index: int
    points: tuple[Point, ...]
    label: Rect
    back: bool


@dataclass(frozen=True, slots=True)
class GroupFrame:
    """A subgraph group's frame: one piece per column it spans, in column order.

    The pieces of one group in neighbouring columns are separated only by the column gap;
    drawn filled they read as one region. The name goes at the top of the first piece.
    """

    path: str
    depth: int
    pieces: tuple[Rect, ...]


@dataclass(frozen=True, slots=True)
class Layout:
    """The geometry of a whole drawing.

    Attributes:
        width: The drawing's width.
        height: The drawing's height.
        nodes: Each node's box, by name.
        edges: Each edge's route, in spec order.
        groups: Each group's frame, outer groups first.
    """

    width: float
    height: float
    nodes: Mapping[str, Rect]
    edges: tuple[EdgeRoute, ...]
    groups: tuple[GroupFrame, ...]


@dataclass(slots=True)
class _Item:
    """Something stacked in a column: a node, an edge's label, or a dummy an edge runs by."""

    key: str
    size: Size
    group: str
    column: int
    y: float = 0.0


def layout(
    spec: GraphSpec,
    node_size: Callable[[NodeSpec], Size],
    label_size: Callable[[EdgeSpec], Size],
    *,
    top: float = MARGIN,
) -> Layout:
    """Lay ``spec`` out left to right (see the module docs).

    Args:
        spec: The graph.
        node_size: The width and height a node's box needs.
        label_size: The width and height an edge's label needs.
        top: Room to leave above the graph (for a title).
    """
    rank, back = _ranks(spec)
    items, chains = _items(spec, rank, back, node_size, label_size)
    columns = _order(items, chains)
    pads = _group_pads(spec)
    xs, widths, height = _place(columns, pads, top)
    boxes = {
        it.key[2:]: Rect(xs[it.column], it.y, it.size[0], it.size[1])
        for col in columns for it in col if it.key.startswith("n:")
    }
    rects = {
        it.key: Rect(xs[it.column], it.y, widths[it.column] if it.key.startswith("d:")
                     else it.size[0], it.size[1])
        for col in columns for it in col
    }
    routes, bottom = _routes(spec, boxes, rects, chains, back, label_size, height)
    frames = _frames(columns, pads, xs, widths)
    width = xs[-1] + widths[-1] + MARGIN if xs else 2 * MARGIN
    return Layout(width, bottom + MARGIN, boxes, routes, frames)


def _ranks(spec: GraphSpec) -> tuple[dict[str, int], set[int]]:
    """Each node's layer, and the indices of edges that do not decide layers."""
    import networkx as nx

    order = {n.name: i for i, n in enumerate(spec.nodes)}
    dag: nx.DiGraph = nx.DiGraph()
    dag.add_nodes_from(order)
    skipped = set()
    for i, edge in enumerate(spec.edges):
        if edge.feedback or edge.source == edge.target:
            skipped.add(i)
        else:
            dag.add_edge(edge.source, edge.target)
    # A graph with problems may hold an undeclared cycle; it is still drawn, so each cycle
    # loses the edge that closes it (the one into the node declared first).
    while not nx.is_directed_acyclic_graph(dag):
        cycle = nx.find_cycle(dag)
        u, v = max(cycle, key=lambda e: (order[e[0]] - order[e[1]], order[e[0]]))[:2]
        dag.remove_edge(u, v)
    topo = list(nx.lexicographical_topological_sort(dag, key=lambda n: order[n]))
    rank: dict[str, int] = {}
    for name in topo:
        rank[name] = max((rank[p] + 1 for p in dag.predecessors(name)), default=0)
    # A source with no inputs sits right before its first consumer, not in column 0 with a
    # long edge across the drawing.
    for name in reversed(topo):
        if dag.in_degree(name) == 0 and dag.out_degree(name) > 0:
            rank[name] = min(rank[s] for s in dag.successors(name)) - 1
    lowest = min(rank.values(), default=0)
    rank = {name: r - lowest for name, r in rank.items()}
    back = {i for i, e in enumerate(spec.edges) if rank[e.target] <= rank[e.source]}
    return rank, back


def _common_group(a: str, b: str) -> str:
    parts = []
    for x, y in zip(a.split("/") if a else [], b.split("/") if b else [], strict=False):
        if x != y:
            break
        parts.append(x)
    return "/".join(parts)


def _items(
    spec: GraphSpec,
    rank: dict[str, int],
    back: set[int],
    node_size: Callable[[NodeSpec], Size],
    label_size: Callable[[EdgeSpec], Size],
) -> tuple[dict[str, _Item], dict[int, list[str]]]:
    """The items of every column, and each forward edge's chain of items, source to target."""
    items = {
        f"n:{n.name}": _Item(f"n:{n.name}", node_size(n), n.group, 2 * rank[n.name])
        for n in spec.nodes
    }
    groups = {n.name: n.group for n in spec.nodes}
    chains: dict[int, list[str]] = {}
    for i, edge in enumerate(spec.edges):
        if i in back:
            continue
        group = _common_group(groups[edge.source], groups[edge.target])
        start, end = 2 * rank[edge.source], 2 * rank[edge.target]
        chain = [f"n:{edge.source}", f"l:{i}"]
        items[f"l:{i}"] = _Item(f"l:{i}", label_size(edge), group, start + 1)
        for column in range(start + 2, end):
            key = f"d:{i}:{column}"
            items[key] = _Item(key, (0.0, 2.0), group, column)
            chain.append(key)
        chain.append(f"n:{edge.target}")
        chains[i] = chain
    return items, chains


def _order(items: dict[str, _Item], chains: dict[int, list[str]]) -> list[list[_Item]]:
    """Columns of items, each ordered by barycenter sweeps with groups kept together."""
    count = max((it.column for it in items.values()), default=-1) + 1
    columns: list[list[_Item]] = [[] for _ in range(count)]
    for item in items.values():
        columns[item.column].append(item)
    preds: dict[str, list[str]] = {k: [] for k in items}
    succs: dict[str, list[str]] = {k: [] for k in items}
    for chain in chains.values():
        for a, b in itertools.pairwise(chain):
            succs[a].append(b)
            preds[b].append(a)

    def sweep(cols: list[list[_Item]], down: bool) -> list[list[_Item]]:
        cols = [list(c) for c in cols]
        span = range(1, count) if down else range(count - 2, -1, -1)
        for c in span:
            neighbour = cols[c - 1] if down else cols[c + 1]
            position = {it.key: float(i) for i, it in enumerate(neighbour)}
            links = preds if down else succs
            bary = {}
            for i, it in enumerate(cols[c]):
                near = [position[k] for k in links[it.key] if k in position]
                bary[it.key] = sum(near) / len(near) if near else float(i)
            cols[c] = _grouped_sort(cols[c], bary)
        return cols

    best = [_grouped_sort(c, {it.key: float(i) for i, it in enumerate(c)}) for c in columns]
    best_crossings = _crossings(best, succs)
    current = best
    for n in range(_SWEEPS):
        current = sweep(current, down=n % 2 == 0)
        crossings = _crossings(current, succs)
        if crossings < best_crossings:
            best, best_crossings = current, crossings
    return best


def _grouped_sort(column: list[_Item], bary: dict[str, float]) -> list[_Item]:
    """Sort by barycenter, but each group's items as one block placed at its mean.

    An item's key is one (barycenter, id) pair per group level it is in, outermost first,
    then its own: items of one group share their first pairs, so they stay contiguous.
    """
    means: dict[str, float] = {}
    members: dict[str, list[float]] = {}
    for it in column:
        parts = it.group.split("/") if it.group else []
        for depth in range(1, len(parts) + 1):
            members.setdefault("/".join(parts[:depth]), []).append(bary[it.key])
    for path, values in members.items():
        means[path] = sum(values) / len(values)

    def key(it: _Item) -> tuple[tuple[float, str], ...]:
        parts = it.group.split("/") if it.group else []
        paths = ["/".join(parts[:d]) for d in range(1, len(parts) + 1)]
        return (*((means[p], "g:" + p) for p in paths), (bary[it.key], it.key))

    return sorted(column, key=key)


def _crossings(columns: list[list[_Item]], succs: dict[str, list[str]]) -> int:
    total = 0
    for left, right in itertools.pairwise(columns):
        position = {it.key: i for i, it in enumerate(right)}
        pairs = [(i, position[s]) for i, it in enumerate(left) for s in succs[it.key]
                 if s in position]
        total += sum(
            1 for a in range(len(pairs)) for b in range(a + 1, len(pairs))
            if (pairs[a][0] - pairs[b][0]) * (pairs[a][1] - pairs[b][1]) < 0
        )
    return total


def _group_pads(spec: GraphSpec) -> dict[str, float]:
    """Each group's padding: wider for outer groups, so nested frames never touch."""
    paths: set[str] = set()
    for node in spec.nodes:
        parts = node.group.split("/") if node.group else []
        paths.update("/".join(parts[:d]) for d in range(1, len(parts) + 1))
    below = {p: 0 for p in paths}
    for path in paths:
        parts = path.split("/")
        for d in range(1, len(parts)):
            ancestor = "/".join(parts[:d])
            below[ancestor] = max(below[ancestor], len(parts) - d)
    return {p: 8.0 + 8.0 * n for p, n in below.items()}


def _chain_of(group: str) -> list[str]:
    parts = group.split("/") if group else []
    return ["/".join(parts[:d]) for d in range(1, len(parts) + 1)]


def _place(
    columns: list[list[_Item]], pads: dict[str, float], top: float
) -> tuple[list[float], list[float], float]:
    """Set each item's y; return each column's x and width, and the graph's bottom."""
    widths = [max((it.size[0] for it in col), default=0.0) for col in columns]
    widest_pad = max(pads.values(), default=0.0)
    # Frames of different groups in neighbouring columns must not meet in the gap.
    h_gap = max(28.0, 2 * widest_pad + 12.0)
    xs: list[float] = []
    x = MARGIN
    for width in widths:
        xs.append(x)
        x += width + h_gap
    heights = []
    for col in columns:
        y, previous = 0.0, set[str]()
        for it in col:
            chain = set(_chain_of(it.group))
            closing = sum(pads[g] for g in previous - chain)
            opening = sum(pads[g] + GROUP_LABEL for g in chain - previous)
            y += closing + opening + (V_GAP if it is not col[0] else 0.0)
            it.y = y
            y += it.size[1]
            previous = chain
        heights.append(y + sum(pads[g] for g in previous))
    tallest = max(heights, default=0.0)
    for col, h in zip(columns, heights, strict=True):
        # Columns are centred on one axis: a pipeline reads as a line through the middle.
        shift = top + (tallest - h) / 2
        for it in col:
            it.y += shift
    return xs, widths, top + tallest


def _spread(rect: Rect, count: int, k: int) -> float:
    """The y of the k-th of ``count`` ports along a side of ``rect``."""
    return rect.y + rect.h * (k + 1) / (count + 1)


def _routes(
    spec: GraphSpec,
    boxes: dict[str, Rect],
    rects: dict[str, Rect],
    chains: dict[int, list[str]],
    back: set[int],
    label_size: Callable[[EdgeSpec], Size],
    bottom: float,
) -> tuple[tuple[EdgeRoute, ...], float]:
    """Every edge's route; back edges get lanes below ``bottom``. Returns the new bottom."""
    mid_y = {k: r.y + r.h / 2 for k, r in rects.items()}

    def toward(i: int, outgoing: bool) -> float:
        # Where the edge heads next: ports are ordered by it, so edges do not cross at a box.
        if i in back:
            return float("inf")
        chain = chains[i]
        return mid_y[chain[1] if outgoing else chain[-2]]

    exits: dict[int, float] = {}
    entries: dict[int, float] = {}
    for node in spec.nodes:
        box = boxes[node.name]
        outs = sorted((i for i, e in enumerate(spec.edges) if e.source == node.name),
                      key=lambda i: (toward(i, True), i))
        for k, i in enumerate(outs):
            exits[i] = _spread(box, len(outs), k)
        ins = sorted((i for i, e in enumerate(spec.edges) if e.target == node.name),
                     key=lambda i: (toward(i, False), i))
        for k, i in enumerate(ins):
            entries[i] = _spread(box, len(ins), k)
    routes: list[EdgeRoute] = []
    lane_y = bottom + LANE_GAP
    lanes = 0
    for i, edge in enumerate(spec.edges):
        src, dst = boxes[edge.source], boxes[edge.target]
        if i in back:
            lw, lh = label_size(edge)
            lane_y += lh + LANE_GAP
            # Back edges into or out of one gap get their own vertical track there.
            jog = 6.0 + 5.0 * (lanes % 5)
            lanes += 1
            out_x, in_x = src.right + jog, dst.x - jog
            points: tuple[Point, ...] = (
                (src.right, exits[i]), (out_x, exits[i]), (out_x, lane_y),
                (in_x, lane_y), (in_x, entries[i]), (dst.x, entries[i]),
            )
            label = Rect(min(in_x, out_x) + 8.0, lane_y - lh - 2.0, lw, lh)
            routes.append(EdgeRoute(i, points, label, back=True))
            continue
        chain = chains[i]
        label = rects[chain[1]]
        pts: list[Point] = [(src.right, exits[i]), (label.x, label.bottom),
                            (label.right, label.bottom)]
        for key in chain[2:-1]:
            pts.extend([(rects[key].x, mid_y[key]), (rects[key].right, mid_y[key])])
        pts.append((dst.x, entries[i]))
        routes.append(EdgeRoute(i, tuple(pts), label, back=False))
    return tuple(routes), lane_y + (LANE_GAP if back else 0.0)


def _frames(
    columns: list[list[_Item]], pads: dict[str, float], xs: list[float], widths: list[float]
) -> tuple[GroupFrame, ...]:
    frames = []
    for path in sorted(pads, key=lambda p: (p.count("/"), p)):
        pieces = []
        pad = pads[path]
        for c, col in enumerate(columns):
            inside = [it for it in col if it.group == path or it.group.startswith(path + "/")]
            if not inside:
                continue
            y0 = inside[0].y - pad - GROUP_LABEL
            y1 = inside[-1].y + inside[-1].size[1] + pad
            pieces.append(Rect(xs[c] - pad, y0, widths[c] + 2 * pad, y1 - y0))
        frames.append(GroupFrame(path, path.count("/"), tuple(pieces)))
    return tuple(frames)
