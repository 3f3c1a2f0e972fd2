"""``flowkit connect``: run a graph in one LiveKit room, joined directly (no dispatch).

The agent joins ``--room`` with a token it makes itself from the API key and secret
(``--api-key`` / ``--api-secret`` or ``LIVEKIT_API_KEY`` / ``LIVEKIT_API_SECRET``) on the
server at ``--url`` (or ``LIVEKIT_URL``). The graph file's ``build(job)`` gets a
:class:`~flowkit.job.JobContext` attached to that room (``job.io`` is its
:class:`~flowkit.livekit.LiveKitRoomIO`), then the graph runs until it ends, the room closes,
or the process gets SIGINT / SIGTERM.

Exit codes: 0 the graph ended (or was stopped); 1 the graph has problems or failed while
running; 2 the graph file or the command line is wrong (missing credentials included);
3 the server could not be reached or refused to let the agent join.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import click
from livekit import rtc
from rich.text import Text

from flowkit.cli import EXIT_BAD_FILE, EXIT_PROBLEMS, GRAPH_FILE, CliState, fail, print_problems
from flowkit.graph import Graph
from flowkit.job import JobContext
from flowkit.livekit.job import AutoSubscribe, attach_job
from flowkit.livekit.process_exit import exit_after_livekit
from flowkit.livekit.tokens import Credentials
from flowkit.loader import GraphFileError, load_graph
from flowkit.problems import GraphError
from flowkit.runtime.errors import GraphFailed
from flowkit.runtime.runner import GraphRunner
from flowkit.spec import ProblemSpec

__all__ = ["EXIT_CONNECT", "connect"]

EXIT_CONNECT = 3
"""The exit code when the server cannot be reached or refuses the agent."""


class _SessionEnd(Exception):  # noqa: N818 (an exit, not an error)
    """Leave the session with an exit code and a one-line message."""

    def __init__(
        self, code: int, error: BaseException | str, problems: tuple[ProblemSpec, ...] = ()
    ) -> None:
        super().__init__(str(error))
        self.code = code
        self.error = error
        self.problems = problems


@click.command("connect")
@click.argument("graph_file", type=GRAPH_FILE)
@click.option("--room", "-r", required=True, help="The room to join (made if it does not exist).")
@click.option(
    "--identity", default="flowkit-agent", show_default=True,
    help="The agent's participant identity.",
)
@click.option(
    "--participant", default=None,
    help="Hear only this participant (identity); default: the first one that joins.",
)
@click.option("--metadata", default="", help="The job metadata the graph sees (job.metadata).")
@click.option("--url", default="", help="The server's URL [env: LIVEKIT_URL].")
@click.option("--api-key", default="", help="The API key [env: LIVEKIT_API_KEY].")
@click.option("--api-secret", default="", help="The API secret [env: LIVEKIT_API_SECRET].")
@click.option(
    "--auto-subscribe", type=click.Choice([m.value for m in AutoSubscribe]),
    default=AutoSubscribe.SUBSCRIBE_ALL.value, show_default=True,
    help="Which tracks to subscribe to as they are published.",
)
@click.pass_context
def connect(
    ctx: click.Context,
    graph_file: Path,
    room: str,
    identity: str,
    participant: str | None,
    metadata: str,
    url: str,
    api_key: str,
    api_secret: str,
    auto_subscribe: str,
) -> None:
    """Run GRAPH_FILE in the LiveKit room --room, joined directly (no agent dispatch)."""
    state: CliState = ctx.ensure_object(CliState)
    if not room.strip():
        fail(ctx, click.UsageError("--room is empty; give the room's name"), EXIT_BAD_FILE)
    if not identity.strip():
        fail(ctx, click.UsageError("--identity is empty; give the agent's identity"), EXIT_BAD_FILE)
    try:
        creds = Credentials(url, api_key, api_secret)
    except ValueError as exc:
        fail(ctx, exc, EXIT_BAD_FILE)
    token = creds.token(room, identity, kind="agent", name=identity)
    job = JobContext(
        job_id=f"connect-{room}",
        room_name=room,
        metadata=metadata,
        agent_name=identity,
        participant_identity=participant or "",
        extra={"graph_file": str(graph_file)},
    )
    try:
        asyncio.run(_session(graph_file, job, creds, token, auto_subscribe, state))
    except _SessionEnd as exc:
        if exc.problems:
            console = state.stdout()
            console.print(Text(str(exc.error), style="bold"), soft_wrap=True)
            print_problems(console, exc.problems)
            ctx.exit(exc.code)
        fail(ctx, exc.error, exc.code)
    except KeyboardInterrupt:  # a second Ctrl-C while closing
        ctx.exit(130)
    exit_after_livekit(0)  # the room is closed: skip the native SDK's racy teardown


async def _session(
    graph_file: Path,
    job: JobContext,
    creds: Credentials,
    token: str,
    auto_subscribe: str,
    state: CliState,
) -> None:
    session = attach_job(
        job, url=creds.url, token=token, api_key=creds.api_key, api_secret=creds.api_secret
    )
    runner: GraphRunner | None = None
    try:
        graph = _load(graph_file, job)
        spec = graph.spec()
        if spec.problems:
            raise _SessionEnd(
                EXIT_PROBLEMS, f"graph {spec.name!r} ({graph_file}) is not valid", spec.problems
            )
        try:
            runner = GraphRunner(graph, job=job)
        except GraphError as exc:
            raise _SessionEnd(EXIT_PROBLEMS, exc) from exc
        try:
            await session.connect(auto_subscribe)
        except rtc.ConnectError as exc:
            raise _SessionEnd(
                EXIT_CONNECT,
                f"could not join room {job.room_name!r} on {creds.url}: {exc.message}; check "
                "the URL, that the server runs, and the API key and secret",
            ) from exc
        me = session.room.local_participant.identity
        click.echo(
            f"joined room {job.room_name!r} on {creds.url} as {me!r}; Ctrl-C to leave", err=True
        )
        _on_signals(job)
        await runner.start()
        ended = asyncio.ensure_future(runner.wait())
        stop = asyncio.ensure_future(job.wait_for_shutdown())
        await asyncio.wait({ended, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if ended.done():
            ended.result()  # raises GraphFailed
        else:
            ended.cancel()
            click.echo(f"leaving: {job.shutdown_reason or 'stopped'}", err=True)
    except GraphFailed as exc:
        raise _SessionEnd(EXIT_PROBLEMS, exc) from exc
    finally:
        if runner is not None:
            with contextlib.suppress(Exception):
                await runner.close()
        await job.aclose()


def _load(graph_file: Path, job: JobContext) -> Graph:
    try:
        return load_graph(graph_file, job)
    except GraphFileError as exc:
        raise _SessionEnd(EXIT_BAD_FILE, exc) from exc


def _on_signals(job: JobContext) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, job.shutdown, f"got {signal.Signals(signum).name}")


