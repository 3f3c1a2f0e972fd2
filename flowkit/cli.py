"""The ``flowkit`` command line: check, draw (and later run and serve) graph files.

Each command is a small click function over the helpers here: :func:`load_or_exit` loads a
graph file (a bad file is one line on stderr and exit code 2), :func:`print_problems` lists
a graph's problems. A new command is one more ``@main.command()`` function, or a command
defined in its own module and registered with ``main.add_command``.

Exit codes: 0 success, 1 the graph has problems (``validate``), 2 the graph file (or the
command line) is wrong.
"""

from __future__ import annotations

import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path

import click
from rich.console import Console
from rich.text import Text

import flowkit
from flowkit.graph import Graph
from flowkit.loader import GraphFileError, load_graph
from flowkit.spec import GraphSpec, ProblemSpec
from flowkit.trace import Trace, TraceError
from flowkit.viz import RENDERERS, TRACED_FORMATS, render, render_text, text_drawing

__all__ = ["EXIT_BAD_FILE", "EXIT_PROBLEMS", "CliState", "load_or_exit", "main", "print_problems"]

EXIT_PROBLEMS = 1
EXIT_BAD_FILE = 2

GRAPH_FILE = click.Path(dir_okay=True, path_type=Path)  # the loader says what is wrong


@dataclass(slots=True)
class CliState:
    """Options of the ``flowkit`` group that every command sees (``ctx.obj``).

    Attributes:
        debug: Show tracebacks of errors instead of one line.
    """

    debug: bool = False

    def stdout(self) -> Console:
        """A console on the current stdout (looked up per call, so test runners can swap it)."""
        return Console(file=sys.stdout, highlight=False)

    def stderr(self) -> Console:
        """A console on the current stderr."""
        return Console(file=sys.stderr, highlight=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    flowkit.__version__, "--version", prog_name="flowkit", message="%(prog)s %(version)s"
)
@click.option("--debug", is_flag=True, help="Show full tracebacks of errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Build, check and draw voice AI agent graphs for LiveKit."""
    ctx.obj = CliState(debug=debug)


def load_or_exit(ctx: click.Context, path: Path) -> Graph:
    """Load the graph file at ``path``, or say in one line what is wrong and exit with 2.

    With ``--debug`` the traceback of the original error is printed before that line.
    """
    state = ctx.find_object(CliState) or CliState()
    try:
        return load_graph(path)
    except GraphFileError as exc:
        if state.debug:
            traceback.print_exception(exc.__cause__ or exc, file=sys.stderr)
        click.echo(f"error: {exc}", err=True)
        ctx.exit(EXIT_BAD_FILE)
    raise AssertionError("unreachable")  # ctx.exit raises  # pragma: no cover


def print_problems(console: Console, problems: tuple[ProblemSpec, ...]) -> None:
    """List every problem: its kind and its message (which says what to do)."""
    count = len(problems)
    console.print(Text(f"{count} problem{'s' if count != 1 else ''}:", style="bold red"))
    for problem in problems:
        line = Text("  ✗ ", style="red")
        line.append(f"[{problem.kind}] ", style="bold red")
        line.append(problem.message)
        # soft_wrap: one problem stays one line, for grep and for copying into an issue.
        console.print(line, soft_wrap=True)


def _summary(spec: GraphSpec) -> str:
    inserted = sum(1 for n in spec.nodes if n.inserted)
    return (
        f"graph {spec.name!r} is valid: {len(spec.nodes)} nodes, {len(spec.edges)} edges, "
        f"{inserted} inserted converter{'' if inserted == 1 else 's'}"
    )


@main.command()
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


@main.command()
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


# The commands in other modules register themselves on `main`, which they import.
from flowkit import cli_connect, cli_nodes, cli_run, cli_worker  # noqa: E402, F401
