"""The subgraph groups of a spec as a tree, which every drawing lays out the same way."""

from __future__ import annotations

from dataclasses import dataclass, field

from flowkit.spec import GraphSpec, NodeSpec

__all__ = ["Group", "group_tree"]


@dataclass(slots=True)
class Group:
    """A subgraph group and what it holds, in the spec's (dataflow) order.

    Attributes:
        path: The full group path (``"asr/vad"``); ``""`` for the graph itself.
        items: Nodes and nested groups, each placed where its first node comes in the spec.
    """

    path: str
    items: list[NodeSpec | Group] = field(default_factory=list)

    @property
    def label(self) -> str:
        """The last part of the path: the name the subgraph was added under."""
        return self.path.rsplit("/", 1)[-1]


def group_tree(spec: GraphSpec) -> Group:
    """Arrange the spec's nodes under their (possibly nested) subgraph groups."""
    root = Group("")
    groups: dict[str, Group] = {"": root}

    def group(path: str) -> Group:
        found = groups.get(path)
        if found is None:
            parent_path = path.rsplit("/", 1)[0] if "/" in path else ""
            found = groups[path] = Group(path)
            group(parent_path).items.append(found)
        return found

    for node in spec.nodes:
        group(node.group).items.append(node)
    return root
