"""The ``flowkit`` command line: check, draw, run and serve graph files.

Each command is a small click function over the helpers here, in a module of its own:
:func:`load_or_exit` loads a graph file (a bad file is one line on stderr and exit code 2),
:func:`print_problems` lists a graph's problems. A new command is a click command in a
``flowkit/cli_*.py`` module plus its entry in ``_COMMANDS``; the module is imported only
when its command is run or listed, so ``flowkit start`` does not load what drawing or the
offline runner need.

Exit codes: 0 success, 1 the graph has problems (``validate``), 2 the graph file (or the
command line) is wrong.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TextIO

import click

import flowkit
from flowkit.graph import Graph
from flowkit.job import JobContext
from flowkit.loader import GraphFileError, load_graph
from flowkit.spec import ProblemSpec

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "EXIT_BAD_FILE",
    "EXIT_PROBLEMS",
    "CliState",
    "fail",
    "load_for_job",
    "load_or_exit",
    "main",
    "print_problems",
]

EXIT_PROBLEMS = 1
EXIT_BAD_FILE = 2

GRAPH_FILE = click.Path(dir_okay=True, path_type=Path)  # the loader says what is wrong

_COMMANDS = {
    "validate": "flowkit.cli_graph:validate",
    "viz": "flowkit.cli_graph:viz",
    "run": "flowkit.cli_run:run",
    "connect": "flowkit.cli_connect:connect",
    "start": "flowkit.cli_worker:start",
    "dev": "flowkit.cli_worker:dev",
    "nodes": "flowkit.cli_nodes:nodes",
    "console": "flowkit.cli_console:console",
}
"""Every ``flowkit`` command: its name and where it is defined (``module:attribute``).

Imported when the command is looked up: a worker (``flowkit start``) does not load the
renderers, the offline runner or rich, about 4 MiB of its memory.
"""


def _console(file: TextIO) -> Console:
    # rich is imported by the commands that print with it, not by a worker's start.
    from rich.console import Console

    return Console(file=file, highlight=False)


@dataclass(slots=True)
class CliState:
    """Options of the ``flowkit`` group that every command sees (``ctx.obj``).

    Attributes:
        debug: Show tracebacks of errors instead of one line.
    """

    debug: bool = False

    def stdout(self) -> Console:
        """A console on the current stdout (looked up per call, so test runners can swap it)."""
        return _console(sys.stdout)

    def stderr(self) -> Console:
        """A console on the current stderr."""
        return _console(sys.stderr)


class _Commands(click.Group):
    """The ``flowkit`` group: imports a command's module when the command is looked up."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command's name, sorted (``--help`` then looks each one up)."""
        return sorted({*super().list_commands(ctx), *_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command ``cmd_name``, imported from its module on first use."""
        if cmd_name not in self.commands and cmd_name in _COMMANDS:
            module, _, name = _COMMANDS[cmd_name].partition(":")
            self.add_command(getattr(importlib.import_module(module), name), cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    flowkit.__version__, "--version", prog_name="flowkit", message="%(prog)s %(version)s"
)
@click.option("--debug", is_flag=True, help="Show full tracebacks of errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Build, check and draw voice AI agent graphs for LiveKit."""
    ctx.obj = CliState(debug=debug)


def fail(ctx: click.Context, error: BaseException | str, code: int) -> NoReturn:
    """Say what went wrong in one line on stderr, then exit with ``code``.

    With ``--debug`` the error's traceback (its cause's, when it wraps one) comes first.
    """
    state = ctx.find_object(CliState) or CliState()
    if state.debug and isinstance(error, BaseException):
        traceback.print_exception(error.__cause__ or error, file=sys.stderr)
    click.echo(f"error: {' '.join(str(error).split())}", err=True)
    ctx.exit(code)


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


def load_for_job(
    ctx: click.Context, path: Path, job: JobContext, needs: Callable[[Graph], bool],
    missing: str,
) -> Graph:
    """Load the graph file at ``path`` for ``job``, ready to run, or exit saying why not.

    A bad file, or a graph without what the command feeds (``needs`` is false), is one
    line on stderr and exit 2 (``missing`` is that line, ``{name}`` the graph's name); a
    graph with problems has them listed on stdout and exits with 1.
    """
    from rich.text import Text  # see _console

    try:
        graph = load_graph(path, job)
    except GraphFileError as exc:
        fail(ctx, exc, EXIT_BAD_FILE)
    if not needs(graph):
        fail(ctx, click.UsageError(f"{path}: {missing.format(name=repr(graph.name))}"),
             EXIT_BAD_FILE)
    spec = graph.spec()
    if spec.problems:
        state = ctx.find_object(CliState) or CliState()
        console = state.stdout()
        console.print(
            Text(f"graph {spec.name!r} ({path}) is not valid", style="bold"), soft_wrap=True
        )
        print_problems(console, spec.problems)
        ctx.exit(EXIT_PROBLEMS)
    return graph


def print_problems(console: Console, problems: tuple[ProblemSpec, ...]) -> None:
    """List every problem: its kind and its message (which says what to do)."""
    from rich.text import Text  # see _console

    count = len(problems)
    console.print(Text(f"{count} problem{'s' if count != 1 else ''}:", style="bold red"))
    for problem in problems:
        line = Text("  ✗ ", style="red")
        line.append(f"[{problem.kind}] ", style="bold red")
        line.append(problem.message)
        # soft_wrap: one problem stays one line, for grep and for copying into an issue.
        console.print(line, soft_wrap=True)
