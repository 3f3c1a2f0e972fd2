"""``flowkit run``: one conversation, offline: a WAV file in, a WAV file out, a report.

The graph file's ``build(job)`` receives a :class:`~flowkit.job.JobContext` whose ``io`` is an
:class:`~flowkit.offline.OfflineIO`, so its room source hears ``--input`` and its room sink
speaks into ``--output``. After the run, the conversation, a per-turn latency table
(:class:`~flowkit.timeline.TurnTimeline`) and what each provider consumed
(:class:`~flowkit.usage.UsageLedger`) are printed.

A graph must have a room source, or nothing would hear the input. A node counts as one when
it is a :class:`flowkit.nodes.room.RoomSource` or when its class sets ``room_source = True``
(for custom sources that read ``ctx.job.io.audio_input(...)`` themselves).

Exit codes: 0 success; 1 the graph has problems or failed while running; 2 the graph file,
the input file or the command line is wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from flowkit.audio.wav import AudioFileError
from flowkit.cli import (
    EXIT_BAD_FILE,
    EXIT_PROBLEMS,
    GRAPH_FILE,
    CliState,
    fail,
    load_for_job,
)
from flowkit.graph import Graph
from flowkit.job import JobContext
from flowkit.live import LiveView, live_dashboard
from flowkit.node import Node
from flowkit.offline import KeyEntry, OfflineIO
from flowkit.problems import GraphError
from flowkit.runtime.errors import GraphFailed
from flowkit.runtime.fastforward import FastForwardLoop
from flowkit.runtime.runner import GraphRunner
from flowkit.timeline import LATENCY_NAMES, TurnRecord, TurnTimeline
from flowkit.trace import trace_of_run
from flowkit.usage import USAGE_VALUES, UsageSummary

__all__ = ["PROGRESS_MIN_SECONDS", "conversation", "has_room_source", "latency_table", "run"]

PROGRESS_MIN_SECONDS = 5.0
"""Inputs at least this long get a progress bar (shorter ones finish before it would help)."""

_PROGRESS_EVERY_S = 0.1


def has_room_source(graph: Graph) -> bool:
    """Whether a node of ``graph`` hears the room: a ``RoomSource``, or ``room_source = True``.

    ``flowkit.nodes.room`` is not imported for this: a graph that uses ``RoomSource`` has
    imported it already, and one that does not has no use for it.
    """
    room = sys.modules.get("flowkit.nodes.room")
    room_source = getattr(room, "RoomSource", None) if room is not None else None
    return any(_is_room_source(n, room_source) for n in graph.nodes.values())


def _is_room_source(node: Node, room_source: type | None) -> bool:
    if room_source is not None and isinstance(node, room_source):
        return True
    return getattr(type(node), "room_source", False) is True


def conversation(records: list[TurnRecord]) -> Text:
    """The conversation, turn by turn: the user's text, then the agent's (interrupted marked)."""
    text = Text()
    for record in records:
        if record.user_text:
            text.append("user:  ", style="bold cyan").append(record.user_text + "\n")
        if record.agent_text or record.played_text:
            text.append("agent: ", style="bold green")
            if record.interrupted:
                heard = (record.played_text or record.agent_text).strip()
                text.append(heard).append(" [interrupted]", style="bold yellow")
                text.append("\n")
            else:
                text.append((record.agent_text or record.played_text).strip() + "\n")
    return text


def latency_table(records: list[TurnRecord]) -> Table:
    """Each turn's latencies in milliseconds (``-`` where a stage was not seen)."""
    table = Table(title="latency per turn (ms)", title_justify="left")
    table.add_column("turn", justify="right")
    for name in LATENCY_NAMES:
        table.add_column(name.replace("_", "-"), justify="right")
    for index, record in enumerate(records, start=1):
        cells = [
            "-" if value is None else f"{value * 1000:.0f}"
            for value in record.latencies().values()
        ]
        table.add_row(str(index), *cells)
    return table


_USAGE_COLUMNS = {
    "prompt_tokens": "prompt", "completion_tokens": "completion", "input_tokens": "in",
    "output_tokens": "out", "characters": "chars", "audio_duration": "audio",
}


def usage_table(usage: UsageSummary) -> Table:
    """What each provider node consumed: requests and every usage value reported."""
    names = [n for n in USAGE_VALUES if any(n in p.values for p in usage.providers)]
    table = Table(title="provider usage (tokens, characters, seconds of audio)",
                  title_justify="left")
    table.add_column("node")
    table.add_column("provider")
    for column in ("requests", *(_USAGE_COLUMNS[name] for name in names)):
        table.add_column(column, justify="right")
    for p in usage.providers:
        cells = [
            "-" if name not in p.values
            else f"{p.values[name]:.1f} s" if name == "audio_duration"
            else f"{p.values[name]:.0f}"
            for name in names
        ]
        table.add_row(p.node, p.provider or "-", str(p.requests), *cells)
    return table


def _key_entries(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[KeyEntry, ...]:
    """``--dtmf SECONDS:KEYS`` values as entries (``"4.5:1234#"``: ``KeyEntry(4.5, "1234#")``).

    The keys themselves are checked by :class:`~flowkit.offline.OfflineIO`, against the keypad
    and the input's length.
    """
    entries = []
    for value in values:
        at, colon, keys = value.partition(":")
        try:
            seconds = float(at)
        except ValueError:
            seconds = None
        if not colon or not keys or seconds is None:
            raise click.BadParameter(
                f"{value!r} is not SECONDS:KEYS; write when the first key is pressed and the "
                "keys, e.g. 4.5:1234#",
                ctx,
                param,
            )
        entries.append(KeyEntry(seconds, keys))
    return tuple(entries)


@click.command("run")
@click.argument("graph_file", type=GRAPH_FILE)
@click.option(
    "--input", "-i", "input_path", required=True, type=click.Path(path_type=Path),
    help="The user's audio: a 16-bit PCM WAV file.",
)
@click.option(
    "--output", "-o", "output_path", required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where the agent's audio is written (WAV, on the input's clock).",
)
@click.option(
    "--realtime",
    is_flag=True,
    help="Take as long as the audio lasts. Without it, idle waits are skipped on a "
    "fast-forward clock: same timings, less waiting.",
)
@click.option(
    "--camera", "camera_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="An image (JPEG, PNG, ...) the user's camera shows, for a graph with a VideoInput.",
)
@click.option(
    "--dtmf", "dtmf", metavar="SECONDS:KEYS", multiple=True, callback=_key_entries,
    help="Keys the user presses on a telephone keypad from SECONDS of the input on, a "
    "quarter second apart (e.g. 4.5:1234#), for a graph with a DTMFInput. Repeatable.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option(
    "--live", is_flag=True,
    help="Show a live dashboard (nodes, rates, states, transcripts, turns) instead of the "
    "progress bar.",
)
@click.option(
    "--trace", "trace_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Write a trace (graph, per node and edge figures, turns) to this JSON file; "
    "`flowkit viz --trace` draws it.",
)
@click.pass_context
def run(
    ctx: click.Context,
    graph_file: Path,
    input_path: Path,
    output_path: Path,
    realtime: bool,
    camera_path: Path | None,
    dtmf: tuple[KeyEntry, ...],
    quiet: bool,
    live: bool,
    trace_path: Path | None,
) -> None:
    """Run GRAPH_FILE on a WAV file: its room source hears --input, its sink speaks --output.

    Prints the conversation, each turn's latencies and each provider's usage.
    """
    state: CliState = ctx.ensure_object(CliState)
    try:
        # Always paced: without --realtime the loop's clock skips idle waits (FastForwardLoop),
        # so turn timing (endpointing delays, playout) is the same as live, only faster.
        io = OfflineIO(
            input_path, output_path, realtime=True, camera=camera_path, dtmf=dtmf
        )
    except (AudioFileError, ValueError, FileNotFoundError) as exc:
        fail(ctx, exc, EXIT_BAD_FILE)
    job = JobContext.local(input=str(input_path), output=str(output_path), realtime=realtime)
    job.io = io
    graph = load_for_job(
        ctx, graph_file, job, has_room_source,
        "graph {name} has no RoomSource: flowkit run feeds --input into a RoomSource node; "
        "add one (flowkit.nodes.room.RoomSource), or set room_source = True on the class of "
        "a node that reads ctx.job.io.audio_input()",
    )
    show_progress = not quiet and io.input_duration >= PROGRESS_MIN_SECONDS
    try:
        loop_factory = None if realtime else FastForwardLoop
        with asyncio.Runner(loop_factory=loop_factory) as aio:
            records, usage = aio.run(_run(
                graph, job, io, state.stderr() if show_progress and not live else None,
                trace_path, state.stderr() if live else None,
            ))
    except (GraphFailed, GraphError) as exc:
        fail(ctx, exc, EXIT_PROBLEMS)
    out = state.stdout()
    out.print(conversation(records) if records else Text("(no turns)", style="dim"), end="")
    if records:
        out.print(latency_table(records))
    if usage.providers:
        out.print(usage_table(usage))
    # The file's length: the voice with any other track (background sound) mixed in.
    written = io.file_duration or 0.0
    out.print(
        f"wrote {written:.2f} s of agent audio to {output_path} "
        f"({io.input_position:.2f} s of input heard)",
        soft_wrap=True,
    )


async def _run(
    graph: Graph, job: JobContext, io: OfflineIO, console: Console | None,
    trace_path: Path | None = None, live_console: Console | None = None,
) -> tuple[list[TurnRecord], UsageSummary]:
    runner = GraphRunner(graph, job=job)
    await runner.start()
    origin = asyncio.get_running_loop().time()
    timeline = TurnTimeline.attach(runner)
    try:
        if live_console is not None:
            async with live_dashboard(LiveView.attach(runner, timeline), live_console):
                await _until_done_or_ended(runner, job)
        else:
            with _progress(io, console):
                await _until_done_or_ended(runner, job)
    finally:
        await runner.close()
        await io.aclose()
        if trace_path is not None:
            # Written even when the graph failed: its errors are what the trace is for.
            trace_of_run(runner, timeline, origin).write(trace_path)
    return timeline.turns, runner.usage.summary()


async def _until_done_or_ended(runner: GraphRunner, job: JobContext) -> None:
    """Wait for the graph to finish, or for the job to be asked to end (as a worker does).

    A graph that hangs up (``EndCall``, ``job.shutdown()``) ends the run there, instead of
    listening to the rest of the input; the graph's failure is raised either way.
    """
    finished = asyncio.ensure_future(runner.wait())
    ended = asyncio.ensure_future(job.wait_for_shutdown())
    try:
        await asyncio.wait({finished, ended}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        ended.cancel()
        if not finished.done():
            finished.cancel()
    if finished.done() and not finished.cancelled():
        finished.result()


@contextlib.contextmanager
def _progress(io: OfflineIO, console: Console | None) -> Iterator[None]:
    """A progress bar of input seconds heard, updated from a task while the graph runs."""
    if console is None:
        yield
        return
    progress = Progress(
        TextColumn("input"), BarColumn(),
        TextColumn("{task.completed:.1f}/{task.total:.1f} s"), TimeElapsedColumn(),
        console=console, transient=True,
    )
    bar = progress.add_task("input", total=io.input_duration)

    async def update() -> None:
        while True:
            progress.update(bar, completed=io.input_position)
            await asyncio.sleep(_PROGRESS_EVERY_S)

    task = asyncio.get_running_loop().create_task(update())
    with progress:
        try:
            yield
        finally:
            task.cancel()
