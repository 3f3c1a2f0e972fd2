"""``flowkit dev`` reloads the graph file when a Python file beside it changes.

A LiveKit Agents development worker restarts its process on a change, which ends the calls
in progress. Here the worker goes on: :func:`reload_on_change` watches the graph file's
directory and, after each change, re-imports the graph file (:meth:`GraphFactory.reload`).
Jobs that start afterwards build the new version; jobs already running keep the graph they
were built with, so a call is never cut by an edit. An edit that does not import is logged
with the loader's one-line message, and new jobs keep the last version that imported.

What is not reloaded: installed packages (flowkit, node libraries, an editable install of
your own library); restart the worker after changing those.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import watchfiles

from flowkit.loader import GraphFileError
from flowkit.worker.jobs import GraphFactory

__all__ = ["reload_on_change"]

log = logging.getLogger("flowkit.worker")


async def reload_on_change(
    factory: GraphFactory,
    *,
    stop: asyncio.Event | None = None,
    on_reload: Callable[[GraphFileError | None], None] | None = None,
    debounce_ms: int = 300,
) -> None:
    """Reload ``factory``'s graph file whenever a ``.py`` file under its directory changes.

    Args:
        factory: The worker's graph factory.
        stop: Watching ends when this event is set (or when the task is cancelled).
        on_reload: Called after each attempt with ``None`` (reloaded) or the error that
            kept the last good version (tests and dashboards use it).
        debounce_ms: Changes within this many milliseconds are one reload (an editor's
            save often writes a file more than once).
    """
    directory = factory.file.parent
    log.info("watching %s for changes to reload %s", directory, factory.given)
    async for changes in watchfiles.awatch(
        directory, watch_filter=watchfiles.PythonFilter(), stop_event=stop,
        debounce=debounce_ms,
    ):
        changed = sorted({path for _, path in changes})
        try:
            factory.reload()
        except GraphFileError as exc:
            log.error(
                "%s; new jobs keep the version that last loaded (changed: %s)",
                exc, ", ".join(changed),
            )
            if on_reload is not None:
                on_reload(exc)
            continue
        log.info(
            "reloaded %s (version %d, changed: %s); new jobs build it, running jobs keep "
            "their graph", factory.given, factory.version, ", ".join(changed),
        )
        try:
            # The new version's prewarm(), off the loop the running jobs share.
            await asyncio.to_thread(factory.prewarm)
        except GraphFileError as exc:
            log.error("%s; new jobs build the new version all the same", exc)
        if on_reload is not None:
            on_reload(None)
