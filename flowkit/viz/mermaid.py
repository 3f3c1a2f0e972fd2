"""The Mermaid drawing: ``flowchart LR``, subgraph groups, typed edges, loops dashed.

Paste it into any Mermaid renderer (GitHub markdown, mermaid.live). Inserted converters have
the class ``inserted``; feedback edges are drawn dashed (``-.->``).
"""

from __future__ import annotations

from flowkit.spec import EdgeSpec, GraphSpec, NodeSpec
from flowkit.viz._groups import Group, group_tree
from flowkit.viz._labels import param_lines, unique_ids

__all__ = ["render_mermaid"]

# Mermaid's entity codes: the characters that would end a quoted label or a pipe label.
_ESCAPES = {"#": "#35;", "&": "#amp;", '"': "#quot;", "|": "#124;", "<": "#lt;", ">": "#gt;"}


def render_mermaid(spec: GraphSpec) -> str:
    """Draw ``spec`` as a Mermaid flowchart."""
    node_ids = unique_ids([n.name for n in spec.nodes], "n_")
    group_ids = unique_ids(sorted({n.group for n in spec.nodes if n.group}), "g_")
    lines = ["flowchart LR", f"    %% graph {spec.name}"]
    _emit_group(lines, group_tree(spec), node_ids, group_ids, depth=1)
    for edge in spec.edges:
        lines.append("    " + _edge(edge, node_ids))
    lines.append("    classDef inserted fill:#fff4d6,stroke:#c98a00,stroke-dasharray:4 3")
    inserted = [node_ids[n.name] for n in spec.nodes if n.inserted]
    if inserted:
        lines.append(f"    class {','.join(inserted)} inserted")
    return "\n".join(lines) + "\n"


def _emit_group(
    lines: list[str], group: Group, node_ids: dict[str, str], group_ids: dict[str, str],
    depth: int,
) -> None:
    pad = "    " * depth
    for item in group.items:
        if isinstance(item, Group):
            lines.append(f'{pad}subgraph {group_ids[item.path]}["{_escape(item.label)}"]')
            _emit_group(lines, item, node_ids, group_ids, depth + 1)
            lines.append(f"{pad}end")
        else:
            lines.append(f"{pad}{node_ids[item.name]}{_shape(item)}")


def _shape(node: NodeSpec) -> str:
    kind = node.kind.rsplit(".", 1)[-1]
    lines = [f"<b>{_escape(node.name)}</b>", _escape(kind)]
    if node.inserted:
        lines.append("<i>(inserted)</i>")
    lines += [_escape(line) for line in param_lines(node.params)]
    label = "<br/>".join(lines)
    # Stadium shape for sources and sinks, so the ends of the flow stand out.
    if not node.inputs or not node.outputs:
        return f'(["{label}"])'
    return f'["{label}"]'


def _edge(edge: EdgeSpec, node_ids: dict[str, str]) -> str:
    label = f"{edge.source_port} → {edge.target_port}: {edge.type}"
    if edge.format:
        label += f" · {edge.format}"
    if edge.feedback:
        label += " ↺"
    arrow = "-.->" if edge.feedback else "-->"
    return f'{node_ids[edge.source]} {arrow}|"{_escape(label)}"| {node_ids[edge.target]}'


def _escape(text: str) -> str:
    return "".join(_ESCAPES.get(c, c) for c in text)
