"""Drawings of a graph: each a pure function of its :class:`~flowkit.spec.GraphSpec`.

``RENDERERS`` maps a format name to its renderer; ``flowkit viz --format`` offers exactly
these, so a new format is a new module plus one entry here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from flowkit.spec import GraphSpec
from flowkit.viz.dot import render_dot
from flowkit.viz.mermaid import render_mermaid
from flowkit.viz.text import render_text, text_drawing

__all__ = [
    "RENDERERS",
    "Renderer",
    "render",
    "render_dot",
    "render_json",
    "render_mermaid",
    "render_text",
    "text_drawing",
]

Renderer = Callable[[GraphSpec], str]


def render_json(spec: GraphSpec) -> str:
    """The spec itself as indented JSON (``GraphSpec.model_validate_json`` reads it back)."""
    return spec.model_dump_json(indent=2) + "\n"


RENDERERS: Mapping[str, Renderer] = MappingProxyType(
    {
        "text": render_text,
        "mermaid": render_mermaid,
        "dot": render_dot,
        "json": render_json,
    }
)


def render(spec: GraphSpec, format: str) -> str:
    """Draw ``spec`` in ``format`` (a key of :data:`RENDERERS`).

    Raises:
        ValueError: ``format`` is not one of :data:`RENDERERS`.
    """
    renderer = RENDERERS.get(format)
    if renderer is None:
        raise ValueError(
            f"no drawing format {format!r}; choose one of: {', '.join(RENDERERS)}"
        )
    return renderer(spec)
