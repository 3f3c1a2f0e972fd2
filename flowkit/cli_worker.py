"""``flowkit start`` and ``flowkit dev``: serve a graph file as a LiveKit agent worker.

``start`` has production defaults: JSON logs, full at 75 % CPU, 30 minutes to drain on
SIGTERM. ``dev`` logs readable debug lines, has no load limit and reloads the graph file when
a Python file beside it changes (new jobs build the new version; running jobs keep theirs;
see :mod:`flowkit.worker.reload`). Both warn when the process's memory passes
``--memory-warn-mb`` (2048 MB) and go full above ``--memory-limit-mb`` (none by default).
Both take the server and credentials from ``--url``/``--api-key``/``--api-secret`` or
``LIVEKIT_URL``/``LIVEKIT_API_KEY``/``LIVEKIT_API_SECRET``, register with the server, take
jobs (one fresh graph per job, in the room of the job), serve ``/``, ``/worker`` and
``/metrics`` over HTTP, and drain on SIGTERM or Ctrl-C (a second Ctrl-C ends the jobs at
once).

Both call the graph file's ``prewarm()``, if it defines one, before registering: models
load before the first job, not in its first turn.

Exit codes: 0 after a drain; 2 the graph file or the options are wrong, or its
``prewarm()`` raised; 3 the server refused the credentials or could not be reached.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
from pathlib import Path
from typing import Any

import click

from flowkit.cli import EXIT_BAD_FILE, GRAPH_FILE, fail
from flowkit.livekit.process_exit import exit_after_livekit
from flowkit.loader import GraphFileError
from flowkit.worker.http import WorkerHTTPServer
from flowkit.worker.jobs import livekit_room, no_room
from flowkit.worker.logs import configure_logging
from flowkit.worker.options import JobType, WorkerOptions, WorkerOptionsError
from flowkit.worker.protocol import WorkerConnectError
from flowkit.worker.worker import Worker, install_signal_handlers

__all__ = ["EXIT_SERVER", "dev", "start"]

EXIT_SERVER = 3
"""The LiveKit server refused the worker's credentials, or could not be reached."""

log = logging.getLogger("flowkit.worker")


def _worker_flags(fn: Any) -> Any:
    """The options ``start`` and ``dev`` share (flags override the environment)."""
    flags = [
        click.option("--url", envvar="LIVEKIT_URL", help="The LiveKit server [LIVEKIT_URL]."),
        click.option("--api-key", envvar="LIVEKIT_API_KEY", help="[LIVEKIT_API_KEY]"),
        click.option("--api-secret", envvar="LIVEKIT_API_SECRET", help="[LIVEKIT_API_SECRET]"),
        click.option("--agent-name", default="", help="Register for explicit dispatch by this "
                     "name (empty: automatic dispatch to every new room)."),
        click.option("--job-type", type=click.Choice([t.value for t in JobType]),
                     default=JobType.ROOM.value, show_default=True,
                     help="One job per room, per publisher or per participant."),
        click.option("--agent-version", default="", help="The version reported to the server."),
        click.option("--load-threshold", type=float, default=None,
                     help="Report full at this load (0-1; start: 0.75, dev: no limit)."),
        click.option("--max-jobs", type=click.IntRange(min=1), default=None,
                     help="At most this many jobs at once."),
        click.option("--memory-warn-mb", type=click.FloatRange(min=0), default=None,
                     help="Log a warning when the worker process's memory (RSS, all jobs) "
                     "goes above this many MB (default 2048; 0: off)."),
        click.option("--memory-limit-mb", type=click.FloatRange(min=0), default=None,
                     help="Report full (no new jobs; running jobs go on) while the worker "
                     "process's memory is above this many MB (default 0: no limit)."),
        click.option("--loop-stall-ms", type=click.FloatRange(min=0), default=None,
                     help="Log a warning naming the job, node and line when code blocks the "
                     "event loop all jobs share for this many ms (default 250; 0: off)."),
        click.option("--drain-timeout", type=float, default=None,
                     help="Seconds running jobs get to finish on SIGTERM (start: 1800, dev: 5)."),
        click.option("--http-host", default="0.0.0.0", show_default=True,
                     help="Where /, /worker and /metrics are served."),
        click.option("--http-port", type=int, default=8081, show_default=True,
                     help="Their port (0: any free port; -1: no HTTP server)."),
        click.option("--no-room", is_flag=True,
                     help="Do not join the job's room (graphs that need no room, tests)."),
        click.option("--log-level", default=None,
                     help="debug, info, warning or error (start: info, dev: debug)."),
        click.option("--log-format", type=click.Choice(["json", "rich"]), default=None,
                     help="JSON lines (start) or readable lines (dev)."),
        click.option("--live", is_flag=True,
                     help="Show a live dashboard of the jobs and their graphs' nodes."),
        click.option("--trace-dir", type=click.Path(file_okay=False, path_type=Path),
                     default=None,
                     help="Write a trace of each job to DIR/<job id>.json when it ends."),
        click.option("--record-dir", type=click.Path(file_okay=False, path_type=Path),
                     default=None,
                     help="Record each job's conversation (the user left, the agent right) "
                     "to DIR/<job id>.wav as it goes."),
        click.option("--otlp-endpoint", metavar="URL", default=None,
                     help="Send each job's OpenTelemetry spans (the job, each turn as it "
                     "ends, its stages) over OTLP/HTTP to the collector at URL, e.g. "
                     "http://localhost:4318 (headers from OTEL_EXPORTER_OTLP_HEADERS)."),
    ]
    for flag in reversed(flags):
        fn = flag(fn)
    return fn


@click.command("start")
@click.argument("graph_file", type=GRAPH_FILE)
@_worker_flags
@click.pass_context
def start(ctx: click.Context, /, graph_file: Path, **flags: Any) -> None:
    """Serve GRAPH_FILE as a LiveKit agent worker, with production defaults."""
    _serve(ctx, graph_file, dev=False, flags=flags)


@click.command("dev")
@click.argument("graph_file", type=GRAPH_FILE)
@_worker_flags
@click.option("--reload/--no-reload", default=True, show_default=True,
              help="Reload GRAPH_FILE when a .py file in its folder changes (new jobs only).")
@click.pass_context
def dev(ctx: click.Context, /, graph_file: Path, reload: bool, **flags: Any) -> None:
    """Serve GRAPH_FILE as a worker for development: debug logs, no load limit, reload."""
    _serve(ctx, graph_file, dev=True, flags=flags, reload=reload)


def _options(flags: dict[str, Any], dev: bool) -> WorkerOptions:
    http_port = flags["http_port"]
    return WorkerOptions.from_env(
        url=flags["url"], api_key=flags["api_key"], api_secret=flags["api_secret"],
        agent_name=flags["agent_name"], job_type=JobType(flags["job_type"]),
        version=flags["agent_version"],
        load_threshold=flags["load_threshold"] if flags["load_threshold"] is not None
        else (math.inf if dev else 0.75),
        max_jobs=flags["max_jobs"],
        memory_warn_mb=flags["memory_warn_mb"], memory_limit_mb=flags["memory_limit_mb"],
        loop_stall_ms=flags["loop_stall_ms"],
        drain_timeout=flags["drain_timeout"] if flags["drain_timeout"] is not None
        else (5.0 if dev else 1800.0),
        http_host=flags["http_host"], http_port=None if http_port < 0 else http_port,
    )


def _serve(
    ctx: click.Context, graph_file: Path, *, dev: bool, flags: dict[str, Any],
    reload: bool = False,
) -> None:
    level = (flags["log_level"] or ("debug" if dev else "info")).upper()
    configure_logging(dev=(flags["log_format"] or ("rich" if dev else "json")) == "rich",
                      level=level)
    try:
        options = _options(flags, dev)
        connect = no_room if flags["no_room"] else livekit_room(options.api_key,
                                                                 options.api_secret)
        provider = _tracer_provider(flags["otlp_endpoint"], options.agent_name)
        worker = Worker(graph_file, options, connect_job=connect,
                        trace_dir=flags["trace_dir"], tracer_provider=provider,
                        record_dir=flags["record_dir"])
    except (WorkerOptionsError, GraphFileError, ValueError, ImportError) as exc:
        fail(ctx, exc, EXIT_BAD_FILE)
    try:
        asyncio.run(_run(worker, live=flags["live"], reload=reload))
    except WorkerConnectError as exc:
        fail(ctx, exc, EXIT_SERVER)
    except GraphFileError as exc:  # the graph file's prewarm() raised
        fail(ctx, exc, EXIT_BAD_FILE)
    finally:
        if provider is not None:
            provider.shutdown()  # the spans still batched go out before the process ends
    exit_after_livekit(0)  # drained and closed: skip the native SDK's racy teardown


def _tracer_provider(endpoint: str | None, agent_name: str) -> Any:
    """The OTLP tracer provider ``--otlp-endpoint`` asks for, or ``None`` without it."""
    if endpoint is None:
        return None
    from flowkit.telemetry import otlp_tracer_provider  # the SDK: only when asked for

    return otlp_tracer_provider(endpoint, service_name=agent_name or "flowkit-agent")


async def _run(worker: Worker, *, live: bool = False, reload: bool = False) -> None:
    install_signal_handlers(worker)
    http: WorkerHTTPServer | None = None
    if worker.options.http_port is not None:
        http = WorkerHTTPServer(worker, worker.options.http_host, worker.options.http_port)
        await http.start()
        log.info("serving /, /worker, /metrics and /jobs/<id>/graph on %s", http.url)
    watcher: asyncio.Task[None] | None = None
    factory = worker.graph_factory
    if reload and factory is not None:
        from flowkit.worker.reload import reload_on_change  # watchfiles: only for dev

        watcher = asyncio.get_running_loop().create_task(
            reload_on_change(factory), name="flowkit:reload"
        )
    try:
        if live:
            # rich and the dashboard only for --live: most workers log JSON lines and no more.
            from rich.console import Console

            from flowkit.live import JobsView, live_dashboard

            # On stderr, like the logs it shares the terminal with.
            async with live_dashboard(JobsView(worker), Console(file=sys.stderr)):
                await worker.run()
        else:
            await worker.run()
    finally:
        if watcher is not None:
            watcher.cancel()
        await worker.aclose()
        if http is not None:
            await http.aclose()
