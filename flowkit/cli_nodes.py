"""``flowkit nodes``: every installed node, with its ports, types and parameters."""

from __future__ import annotations

from typing import Any

import click
import pydantic_core
from rich.table import Table
from rich.text import Text

from flowkit.catalog import Catalog, NodeEntry, discover
from flowkit.cli import CliState
from flowkit.typenames import type_name

__all__ = ["nodes", "nodes_table"]


def _ports(entry: NodeEntry, direction: str) -> str:
    templates = entry.cls._input_templates if direction == "in" else entry.cls._output_templates
    return "\n".join(f"{name}: {type_name(tp)}" for name, (_, tp) in templates.items()) or "-"


def _default(value: Any) -> str:
    if value is pydantic_core.PydanticUndefined:
        return ""
    return f"={value!r}" if len(repr(value)) <= 24 else "=…"


def _params(entry: NodeEntry) -> str:
    fields = entry.cls.Params.model_fields
    return "\n".join(f"{name}{_default(f.default)}" for name, f in fields.items()) or "-"


def nodes_table(catalog: Catalog) -> Table:
    """The catalog as a rich table, one row per node class."""
    table = Table(title="installed nodes", title_justify="left", show_lines=True)
    for column in ("node", "library", "style", "inputs", "outputs", "parameters"):
        table.add_column(column, overflow="fold")
    ordered = sorted(
        catalog.nodes, key=lambda e: (e.library != "flowkit", e.module, e.cls.__name__)
    )
    for entry in ordered:
        table.add_row(
            Text(entry.cls.__name__, style="bold"),
            f"{entry.library}\n{entry.module}",
            str(entry.cls.style),
            _ports(entry, "in"),
            _ports(entry, "out"),
            _params(entry),
        )
    return table


@click.command()
@click.pass_context
def nodes(ctx: click.Context) -> None:
    """List every installed node (built-in and from node libraries) with its ports."""
    state: CliState = ctx.ensure_object(CliState)
    catalog = discover()
    out = state.stdout()
    out.print(nodes_table(catalog))
    for error in catalog.errors:
        state.stderr().print(
            f"[yellow]library {error.library!r} ({error.target}) could not be loaded:[/] "
            f"{error.error}",
            soft_wrap=True,
        )
