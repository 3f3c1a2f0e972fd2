"""``flowkit validate`` and ``flowkit viz``: check a graph file, and draw it.

``validate`` lists every problem of the graph (exit 1) or says it is valid; ``viz`` draws it
in a format of :data:`flowkit.viz.RENDERERS`, with a trace's figures on svg and html.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import click
from rich.text import Text

from flowkit.cli import (
    EXIT_BAD_FILE,
    EXIT_PROBLEMS,
    GRAPH_FILE,
    CliState,
    load_or_exit,
    print_problems,
)
from flowkit.spec import GraphSpec
from flowkit.trace import Trace, TraceError
from flowkit.viz import RENDERERS, TRACED_FORMATS, render, render_text, text_drawing

__all__ = ["validate", "viz"]


def _summary(spec: GraphSpec) -> str:
    inserted = sum(1 for n in spec.nodes if n.inserted)
    return (
        f"graph {spec.name!r} is valid: {len(spec.nodes)} nodes, {len(spec.edges)} edges, "
        f"{inserted} inserted converter{'' if inserted == 1 else 's'}"
    )


@click.command("validate")
@click.argument("graph_file", type=GRAPH_FILE)
@click.pass_context
def validate(ctx: click.Context, graph_file: Path) -> None:
    """Check GRAPH_FILE: list every problem (exit 1) or say it is valid (exit 0)."""
    state: CliState = ctx.ensure_object(CliState)
    spec = load_or_exit(ctx, graph_file).spec()
    if spec.problems:
        console = state.stdout()
        console.print(Text(f"graph {spec.name!r} ({graph_file}) is not valid", style="bold"))
        print_problems(console, spec.problems)
        ctx.exit(EXIT_PROBLEMS)
    state.stdout().print(Text("✓ ", style="green") + Text(_summary(spec)), soft_wrap=True)


@click.command("viz")
@click.argument("graph_file", type=GRAPH_FILE)
@click.option(
    "--format", "-f", "fmt", type=click.Choice(list(RENDERERS)), default="text",
    show_default=True, help="The drawing's format.",
)
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None, help="Write the drawing to this file instead of the terminal.",
)
@click.option(
    "--trace", "trace_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Draw this trace's figures and turns (from `flowkit run --trace`); svg and html.",
)
@click.option(
    "--open", "open_", is_flag=True,
    help="Open the drawing in the browser (written to a temporary file without -o).",
)
@click.pass_context
def viz(
    ctx: click.Context, graph_file: Path, fmt: str, output: Path | None,
    trace_path: Path | None, open_: bool,
) -> None:
    """Draw GRAPH_FILE as text, Mermaid, DOT, JSON, SVG or a self-contained HTML page.

    A graph with problems is still drawn and its problems listed after it (on stderr, so
    that piped Mermaid, DOT or JSON stays valid); `flowkit validate` is the checker.
    """
    state: CliState = ctx.ensure_object(CliState)
    trace = _trace_or_exit(ctx, trace_path, fmt)
    spec = load_or_exit(ctx, graph_file).spec()
    if open_ and output is None:
        output = Path(tempfile.gettempdir()) / f"flowkit-{spec.name}.{fmt}"
    if output is not None:
        output.write_text(render(spec, fmt, trace), encoding="utf-8")
        click.echo(f"wrote {fmt} drawing of graph {spec.name!r} to {output}", err=True)
        if open_:
            import webbrowser

            webbrowser.open(output.resolve().as_uri())
    elif fmt == "text":
        # The text drawing lists problems itself. A terminal gets colour and lines wrapped
        # inside the tree; a pipe gets plain lines that never wrap, for grep and diff.
        console = state.stdout()
        if console.is_terminal:
            console.print(text_drawing(spec))
        else:
            click.echo(render_text(spec), nl=False)
        return
    else:
        click.echo(render(spec, fmt, trace), nl=False)
    if spec.problems:
        print_problems(state.stderr(), spec.problems)


def _trace_or_exit(ctx: click.Context, path: Path | None, fmt: str) -> Trace | None:
    """The trace at ``path`` (``None`` without one); a bad one or format exits with 2."""
    if path is None:
        return None
    if fmt not in TRACED_FORMATS:
        click.echo(f"error: --trace draws on svg and html drawings, not {fmt}", err=True)
        ctx.exit(EXIT_BAD_FILE)
    try:
        return Trace.read(path)
    except TraceError as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(EXIT_BAD_FILE)
    raise AssertionError("unreachable")  # ctx.exit raises  # pragma: no cover
