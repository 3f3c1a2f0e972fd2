"""``flowkit console``: talk to a graph by typing, in the terminal, without a LiveKit server.

The graph file's ``build(job)`` receives a :class:`~flowkit.job.JobContext` whose ``io`` is a
:class:`~flowkit.console.ConsoleIO`: each line read from stdin is a message typed in the
room's chat, which the graph's :class:`~flowkit.nodes.room_state.ChatInput` makes a user
turn, and the agent's replies are shown a word at a time as they are spoken (in real time;
``--output`` also keeps the voice in a WAV file). The end of input (Ctrl+D, or the end of a
piped file) ends the conversation once the last reply has played; so does a graph that
hangs up (``EndCall``). What each provider consumed is printed at the end. With ``--audio``
the graph also hears the computer's microphone and speaks through its speakers
(:mod:`flowkit.console_audio`), as LiveKit Agents' console mode does.

Exit codes: 0 success; 1 the graph has problems or failed while running; 2 the graph file or
the command line is wrong.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import click

from flowkit.cli import EXIT_BAD_FILE, EXIT_PROBLEMS, GRAPH_FILE, CliState, fail, load_for_job
from flowkit.cli_run import usage_table
from flowkit.console import ConsoleIO, TranscriptPrinter, converse
from flowkit.graph import Graph
from flowkit.job import JobContext
from flowkit.problems import GraphError
from flowkit.runtime.errors import GraphFailed

__all__ = ["console", "has_chat_input", "stdin_lines"]


def has_chat_input(graph: Graph) -> bool:
    """Whether a node of ``graph`` hears typed text: a ``ChatInput``."""
    from flowkit.nodes.room_state import ChatInput

    return any(isinstance(node, ChatInput) for node in graph.nodes.values())


async def stdin_lines() -> AsyncIterator[str]:
    """The lines of stdin, without their line ends, read by a thread so the loop runs on.

    The thread is a daemon: a line never typed does not keep the process alive when the
    conversation ends without it (the agent hung up).
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def read() -> None:
        try:
            for line in sys.stdin:
                loop.call_soon_threadsafe(queue.put_nowait, line.rstrip("\r\n"))
            loop.call_soon_threadsafe(queue.put_nowait, None)
        except RuntimeError:  # the loop closed first: nobody reads any more
            return

    threading.Thread(target=read, name="flowkit-console-stdin", daemon=True).start()
    while (line := await queue.get()) is not None:
        yield line


@click.command("console")
@click.argument("graph_file", type=GRAPH_FILE)
@click.option(
    "--output", "-o", "output_path", type=click.Path(dir_okay=False, path_type=Path),
    default=None, help="Also write the agent's voice to this WAV file, reply after reply.",
)
@click.option(
    "--wait", "reply_timeout", type=click.FloatRange(min=0, min_open=True), default=60.0,
    show_default=True,
    help="Seconds to wait for a reply to be spoken before going on without it.",
)
@click.option(
    "--states", "show_states", is_flag=True,
    help="Show the agent's state as it changes ([thinking], [speaking], [listening]), on "
    "stderr; the graph must publish it (AgentStates into AgentStatePublisher).",
)
@click.option(
    "--audio", is_flag=True,
    help="Also talk: the microphone is the user's audio and the agent speaks through the "
    "speakers (needs sounddevice: pip install 'flowkit-agents[console]').",
)
@click.option("--input-device", default=None,
              help="The microphone for --audio (a name or index; default: the system's).")
@click.option("--output-device", default=None,
              help="The speakers for --audio (a name or index; default: the system's).")
@click.option("--echo-cancellation/--no-echo-cancellation", default=True, show_default=True,
              help="With --audio, take what the speakers play out of what the microphone "
              "hears (off with headphones, or to hear the difference).")
@click.pass_context
def console(
    ctx: click.Context, graph_file: Path, output_path: Path | None, reply_timeout: float,
    show_states: bool, audio: bool, input_device: str | None, output_device: str | None,
    echo_cancellation: bool,
) -> None:
    """Talk to GRAPH_FILE by typing: each line is a user turn, replies show as spoken.

    The graph hears typed lines through a ChatInput node. Replies play in real time (no
    speaker: the words show as they would be heard). Ctrl+D ends the conversation once the
    last reply has played. Piped lines are a script: each is typed once the reply to the
    one before has been spoken. With --audio the graph also hears the microphone and the
    replies play on the speakers.
    """
    if audio and output_path is not None:
        raise click.UsageError("--audio plays the voice on the speakers; drop --output")
    if audio:
        from flowkit.console_audio import sound_devices

        try:
            sound_devices()
        except RuntimeError as exc:
            fail(ctx, exc, EXIT_BAD_FILE)
    state: CliState = ctx.ensure_object(CliState)

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    printer = TranscriptPrinter(write)

    def show_state(state: str) -> None:
        sys.stderr.write(f"[{state}]\n")
        sys.stderr.flush()

    io = ConsoleIO(printer.show, output=output_path,
                   on_state=show_state if show_states else None, audio=audio,
                   input_device=_device(input_device), output_device=_device(output_device),
                   echo_cancellation=echo_cancellation)
    job = JobContext.local(console=True, output=str(output_path) if output_path else None)
    job.io = io
    graph = load_for_job(
        ctx, graph_file, job, has_chat_input,
        "graph {name} has no ChatInput: flowkit console types user turns into a ChatInput "
        "node; add one (flowkit.nodes.room_state.ChatInput) and link its turns to the LLM",
    )
    interactive = sys.stdin.isatty()
    if interactive:
        talk = "Speak, or type" if audio else "Type"
        click.echo(f"{talk} a message and press Enter; Ctrl+D ends the conversation.", err=True)

    def typed(line: str) -> None:
        # Piped lines are not on the screen: show each where the user's words go.
        if not line.strip():
            return
        printer.end_line()
        write(f"you:   {line}\n")

    try:
        with asyncio.Runner() as aio:
            result = aio.run(converse(
                graph, job, io, stdin_lines(), turn_by_turn=not interactive,
                reply_timeout=reply_timeout, on_typed=None if interactive else typed,
            ))
    except (GraphFailed, GraphError) as exc:
        printer.end_line()
        fail(ctx, exc, EXIT_PROBLEMS)
    printer.end_line()
    if result.unanswered:
        click.echo(
            f"warning: {result.unanswered} line(s) had no reply spoken within "
            f"{reply_timeout:g} s; the conversation went on without it (--wait gives a "
            "reply longer)",
            err=True,
        )
    out = state.stdout()
    if result.usage.providers:
        out.print(usage_table(result.usage))
    if output_path is not None and io.output is not None:
        out.print(f"wrote {io.output.written:.2f} s of agent audio to {output_path}",
                  soft_wrap=True)


def _device(given: str | None) -> str | int | None:
    """A device as sounddevice takes it: an index when the option is a number, else a name."""
    if given is None:
        return None
    return int(given) if given.isdigit() else given
