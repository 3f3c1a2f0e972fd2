"""Drawings of a graph: each a pure function of its :class:`~flowkit.spec.GraphSpec`.

``RENDERERS`` maps a format name to its renderer; ``flowkit viz --format`` offers exactly
these, so a new format is a new module plus one entry here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from flowkit.spec import GraphSpec
from flowkit.trace import Trace
from flowkit.viz.dot import render_dot
from flowkit.viz.html import render_html
from flowkit.viz.mermaid import render_mermaid
from flowkit.viz.svg import render_svg
from flowkit.viz.text import render_text, text_drawing

__all__ = [
    "RENDERERS",
    "TRACED_FORMATS",
    "Renderer",
    "render",
    "render_dot",
    "render_html",
    "render_json",
    "render_mermaid",
    "render_svg",
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
        "svg": render_svg,
        "html": render_html,
    }
)

TRACED_FORMATS: frozenset[str] = frozenset({"svg", "html"})
"""The formats that draw a trace's figures (their renderers take ``trace=``)."""


def render(spec: GraphSpec, format: str, trace: Trace | None = None) -> str:
    """Draw ``spec`` in ``format`` (a key of :data:`RENDERERS`), with ``trace``'s figures.

    Raises:
        ValueError: ``format`` is not one of :data:`RENDERERS`, or a trace was given for a
            format that cannot show one (see :data:`TRACED_FORMATS`).
    """
    renderer = RENDERERS.get(format)
    if renderer is None:
        raise ValueError(
            f"no drawing format {format!r}; choose one of: {', '.join(RENDERERS)}"
        )
    if trace is None:
        return renderer(spec)
    if format == "svg":
        return render_svg(spec, trace)
    if format == "html":
        return render_html(spec, trace)
    raise ValueError(
        f"the {format} drawing cannot show a trace; use --format "
        f"{' or '.join(sorted(TRACED_FORMATS))}"
    )
