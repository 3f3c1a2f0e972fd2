"""The Graphviz DOT drawing: ``digraph`` left to right, groups as clusters, loops dashed.

Render it with ``dot -Tsvg``. Every id is a quoted string, so node names with ``/``, ``@``
or ``.`` need no sanitising and the drawing shows the real names.
"""

from __future__ import annotations

from flowkit.spec import EdgeSpec, GraphSpec, NodeSpec
from flowkit.viz._groups import Group, group_tree
from flowkit.viz._labels import param_lines, unique_ids

__all__ = ["quote", "render_dot"]


def quote(text: str) -> str:
    r"""A DOT quoted string: backslashes and quotes escaped, newlines as ``\n``."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def render_dot(spec: GraphSpec) -> str:
    """Draw ``spec`` as a Graphviz digraph."""
    cluster_ids = unique_ids(sorted({n.group for n in spec.nodes if n.group}), "cluster_")
    lines = [
        f"digraph {quote(spec.name)} {{",
        "    rankdir=LR;",
        f"    label={quote(spec.name + (' — ' + spec.description if spec.description else ''))};",
        "    labelloc=t;",
        '    node [shape=box, style="rounded", fontname="Helvetica"];',
        '    edge [fontname="Helvetica", fontsize=10];',
    ]
    _emit_group(lines, group_tree(spec), cluster_ids, depth=1)
    lines.extend("    " + _edge(edge) for edge in spec.edges)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _emit_group(lines: list[str], group: Group, cluster_ids: dict[str, str], depth: int) -> None:
    pad = "    " * depth
    for item in group.items:
        if isinstance(item, Group):
            lines.append(f"{pad}subgraph {quote(cluster_ids[item.path])} {{")
            lines.append(f"{pad}    label={quote(item.label)};")
            lines.append(f'{pad}    style="rounded,dashed";')
            _emit_group(lines, item, cluster_ids, depth + 1)
            lines.append(f"{pad}}}")
        else:
            lines.append(f"{pad}{_node(item)}")


def _node(node: NodeSpec) -> str:
    kind = node.kind.rsplit(".", 1)[-1]
    label = "\n".join(
        [node.name, kind + (" (inserted)" if node.inserted else ""), *param_lines(node.params)]
    )
    attrs = [f"label={quote(label)}"]
    if node.inserted:
        attrs.append('style="rounded,dashed,filled", fillcolor="#fff4d6"')
    return f"{quote(node.name)} [{', '.join(attrs)}];"


def _edge(edge: EdgeSpec) -> str:
    label = f"{edge.source_port} → {edge.target_port}\n{edge.type}"
    if edge.format:
        label += f"\n{edge.format}"
    attrs = [f"label={quote(label)}"]
    if edge.feedback:
        # A loop edge must not pull its target to the right of its source: the drawing keeps
        # the forward flow left to right and bends the loop back.
        attrs.append("style=dashed, constraint=false")
    return f"{quote(edge.source)} -> {quote(edge.target)} [{', '.join(attrs)}];"
