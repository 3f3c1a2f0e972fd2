"""The terminal drawing: every node in dataflow order with its parameters, ports and edges.

Subgraph groups are branches of the tree, an edge reads ``out ─ str ─▶ node.port``, feedback
edges are marked ``↺ loop``, converters the graph inserted are marked ``(inserted)`` and the
graph's problems come last.
"""

from __future__ import annotations

import io
from collections import defaultdict

from rich.console import Console, Group, RenderableType
from rich.text import Text
from rich.tree import Tree

from flowkit.spec import EdgeSpec, GraphSpec, NodeSpec, PortSpec
from flowkit.viz._groups import Group as NodeGroup
from flowkit.viz._groups import group_tree
from flowkit.viz._labels import param_lines

__all__ = ["render_text", "text_drawing"]

# Wide enough that no line wraps: a wrapped edge line would no longer say where it goes.
_WIDTH = 10_000


def render_text(spec: GraphSpec) -> str:
    """Draw ``spec`` as plain text (no colour), for files and tests."""
    console = Console(
        file=io.StringIO(), width=_WIDTH, color_system=None, force_terminal=False,
        highlight=False, emoji=False,
    )
    console.print(text_drawing(spec))
    output = console.file.getvalue()  # type: ignore[attr-defined]
    return "\n".join(line.rstrip() for line in str(output).splitlines()) + "\n"


def text_drawing(spec: GraphSpec) -> RenderableType:
    """The drawing as a rich renderable, for printing in colour to a terminal."""
    outgoing: defaultdict[str, list[EdgeSpec]] = defaultdict(list)
    for edge in spec.edges:
        outgoing[edge.source].append(edge)
    tree = Tree(_title(spec), guide_style="dim")
    _add_items(tree, group_tree(spec), outgoing)
    parts: list[RenderableType] = [tree]
    if spec.problems:
        parts.append(_problems(spec))
    return Group(*parts)


def _title(spec: GraphSpec) -> Text:
    title = Text(spec.name, style="bold")
    if spec.description:
        title.append(f" — {spec.description}", style="italic")
    inserted = sum(1 for n in spec.nodes if n.inserted)
    loops = sum(1 for e in spec.edges if e.feedback)
    title.append(
        f"\n{_count(len(spec.nodes), 'node')} · {_count(len(spec.edges), 'edge')} · "
        f"{inserted} inserted · {_count(loops, 'feedback edge')}",
        style="dim",
    )
    return title


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _add_items(
    branch: Tree, group: NodeGroup, outgoing: defaultdict[str, list[EdgeSpec]]
) -> None:
    for item in group.items:
        if isinstance(item, NodeGroup):
            sub = branch.add(_group_label(item))
            _add_items(sub, item, outgoing)
        else:
            _add_node(branch, item, outgoing[item.name])


def _group_label(group: NodeGroup) -> Text:
    text = Text.assemble(("▣ ", "magenta"), (group.label, "bold magenta"), ("  (subgraph", "dim"))
    if group.path != group.label:
        text.append(f" {group.path}", style="dim")
    text.append(")", style="dim")
    return text


def _add_node(branch: Tree, node: NodeSpec, edges: list[EdgeSpec]) -> None:
    label = Text.assemble(
        ("● ", "yellow" if node.inserted else "cyan"),
        (node.name, "bold"),
        (f"  {node.kind.rsplit('.', 1)[-1]}", "green"),
        (f" ({node.style}, {node.library})", "dim"),
    )
    if node.inserted:
        label.append("  (inserted)", style="bold yellow")
    if node.params:
        label.append(f"  {', '.join(param_lines(node.params))}", style="blue")
    child = branch.add(label)
    for port in node.inputs:
        child.add(_input(port))
    linked = {e.source_port for e in edges}
    for port in node.outputs:
        if port.name not in linked:
            child.add(Text.assemble((f"{port.name}: {_typed(port)}", ""), ("  (unlinked)", "dim")))
    for edge in edges:
        child.add(_edge(edge))


def _typed(port: PortSpec) -> str:
    return f"{port.type} [{port.format}]" if port.format else port.type


def _input(port: PortSpec) -> Text:
    text = Text.assemble(("◀ ", "dim"), f"{port.name}: {_typed(port)}")
    notes = [n for n, on in (("optional", not port.required), ("feedback", port.feedback)) if on]
    if notes:
        text.append(f"  ({', '.join(notes)})", style="dim")
    return text


def _edge(edge: EdgeSpec) -> Text:
    label = f"{edge.type} {edge.format}" if edge.format else edge.type
    text = Text.assemble(
        edge.source_port, (f" ─ {label} ─▶ ", "dim"), (f"{edge.target}.{edge.target_port}", "bold")
    )
    if edge.feedback:
        text.append("  ↺ loop", style="magenta")
    return text


def _problems(spec: GraphSpec) -> Text:
    text = Text(f"\n{_count(len(spec.problems), 'problem')}:", style="bold red")
    for problem in spec.problems:
        text.append("\n  ✗ ", style="red")
        text.append(f"[{problem.kind}] ", style="bold red")
        text.append(problem.message)
    return text
