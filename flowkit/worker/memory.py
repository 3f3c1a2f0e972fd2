"""The worker's memory watch: the process's resident memory against a warning and a limit.

LiveKit Agents runs each job in a process of its own and watches each one
(``job_memory_warn_mb``, ``job_memory_limit_mb``). A flowkit worker runs every job on one
event loop in one process, so what one job uses cannot be told apart: the watch is on the
whole process's resident memory (RSS), read from ``/proc/self/statm`` (a few microseconds) each
time the worker reports its status and when a job is offered, never on a timer of its own.

- Above ``warn_mb`` the watch logs a warning, once per crossing.
- Above ``limit_mb`` it is *over the limit*: the worker reports itself full, so the server
  sends new jobs to other workers, and logs an error, once per crossing. Running jobs go on:
  they share the process, and ending one would free little and lose a call.

Each state ends when the RSS falls below :data:`RESUME_FRACTION` of its threshold (90 %), not
just below it: a worker hovering at its limit would otherwise flap between full and available,
taking a job each time it is available and going over again.
"""

from __future__ import annotations

import enum
import logging
import os
from collections.abc import Callable

__all__ = [
    "BYTES_PER_MB",
    "RESUME_FRACTION",
    "MemoryFn",
    "MemoryState",
    "MemoryWatch",
    "process_rss_mb",
]

log = logging.getLogger("flowkit.worker")

BYTES_PER_MB = 1024 * 1024
"""An MB in the worker's memory settings and figures: 2**20 bytes, as in LiveKit Agents."""

RESUME_FRACTION = 0.9
"""A warning or the limit ends when the RSS falls below this share of its threshold."""

MemoryFn = Callable[[], float | None]
"""Returns the process's memory in MB (2**20 bytes), or ``None`` when it cannot be read."""

_STATM = "/proc/self/statm"
try:
    _PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
except (AttributeError, ValueError, OSError):  # no sysconf (Windows): /proc is absent too
    _PAGE_BYTES = 4096


def process_rss_mb() -> float | None:
    """The resident memory (RSS) of this process in MB, or ``None`` where it cannot be read.

    Reads ``/proc/self/statm`` (Linux): its second field is the resident pages. Elsewhere
    there is no such file and the answer is ``None``. RSS counts the resident pages of
    memory-mapped files too, such as a local model's weights, as ``ps`` and LiveKit Agents do.
    """
    try:
        with open(_STATM, "rb") as statm:
            resident_pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return resident_pages * _PAGE_BYTES / BYTES_PER_MB


class MemoryState(enum.StrEnum):
    """Where the process's memory stands against the warning and the limit."""

    OK = "ok"
    """Below the warning (or the warning is off)."""
    WARNING = "warning"
    """Above ``memory_warn_mb``; the worker still takes jobs."""
    OVER_LIMIT = "over_limit"
    """Above ``memory_limit_mb``: the worker reports itself full."""
    UNKNOWN = "unknown"
    """The memory has not been read (yet, or on this platform)."""


class MemoryWatch:
    """The process's RSS against a warning and a limit, with a log line per crossing.

    Args:
        warn_mb: Log a warning when the RSS goes above this many MB (0: off).
        limit_mb: Be over the limit (the worker is full) above this many MB (0: off).
        read: Returns the RSS in MB, or ``None`` when it cannot be read; defaults to
            :func:`process_rss_mb`. Tests pass their own.

    Attributes:
        rss_mb: The last successful reading (``None`` before the first).
        warning: Whether the RSS is above the warning (until it falls below 90 % of it).
        over_limit: Whether the RSS is above the limit (until it falls below 90 % of it).
    """

    def __init__(
        self, warn_mb: float = 0.0, limit_mb: float = 0.0, read: MemoryFn = process_rss_mb
    ) -> None:
        self.warn_mb = warn_mb
        self.limit_mb = limit_mb
        self._read = read
        self.rss_mb: float | None = None
        self.warning = False
        self.over_limit = False
        self._told_unreadable = False

    @property
    def state(self) -> MemoryState:
        """The state now: over the limit wins over the warning."""
        if self.rss_mb is None:
            return MemoryState.UNKNOWN
        if self.over_limit:
            return MemoryState.OVER_LIMIT
        return MemoryState.WARNING if self.warning else MemoryState.OK

    def update(self, jobs: int) -> bool:
        """Read the RSS, log any crossing (naming ``jobs``, the jobs running), update the state.

        A reading that fails (``None``, or the reader raised) keeps the last one and its state.

        Returns:
            Whether :attr:`over_limit` changed, so the worker can tell the server at once.
        """
        try:
            reading = self._read()
            rss = None if reading is None else float(reading)
        except Exception:
            log.exception("the memory function raised; keeping the last reading")
            return False
        if rss is None:
            self._unreadable()
            return False
        self.rss_mb = rss
        self._update_warning(rss, jobs)
        return self._update_limit(rss, jobs)

    def _update_warning(self, rss: float, jobs: int) -> None:
        if not self.warn_mb:
            self.warning = False
            return
        if not self.warning and rss > self.warn_mb:
            self.warning = True
            log.warning(
                "the worker process uses %.0f MB of memory, above memory_warn_mb (%g MB), with "
                "%d job(s) running; lower --max-jobs or --load-threshold so fewer jobs share "
                "the process, or raise --memory-warn-mb if this is its normal size",
                rss, self.warn_mb, jobs,
                extra={"memory_mb": round(rss, 1), "memory_warn_mb": self.warn_mb,
                       "jobs": jobs},
            )
        elif self.warning and rss < self.warn_mb * RESUME_FRACTION:
            self.warning = False
            log.info("the worker process's memory is down to %.0f MB, below memory_warn_mb "
                     "(%g MB)", rss, self.warn_mb)

    def _update_limit(self, rss: float, jobs: int) -> bool:
        if not self.limit_mb:
            changed, self.over_limit = self.over_limit, False
            return changed
        if not self.over_limit and rss > self.limit_mb:
            self.over_limit = True
            log.error(
                "the worker process uses %.0f MB of memory, above memory_limit_mb (%g MB), with "
                "%d job(s) running: reporting full, so new jobs go to other workers, until it "
                "is below %.0f MB (running jobs go on); lower --max-jobs or --load-threshold, "
                "or raise --memory-limit-mb",
                rss, self.limit_mb, jobs, self.limit_mb * RESUME_FRACTION,
                extra={"memory_mb": round(rss, 1), "memory_limit_mb": self.limit_mb,
                       "jobs": jobs},
            )
            return True
        if self.over_limit and rss < self.limit_mb * RESUME_FRACTION:
            self.over_limit = False
            log.info("the worker process's memory is down to %.0f MB, below %.0f MB (90 %% of "
                     "memory_limit_mb): taking jobs again", rss, self.limit_mb * RESUME_FRACTION)
            return True
        return False

    def _unreadable(self) -> None:
        if self._told_unreadable:
            return
        self._told_unreadable = True
        # Only a limit changes what the worker does; a missing warning is not worth one.
        level = logging.WARNING if self.limit_mb else logging.DEBUG
        log.log(level, "cannot read this process's memory (no %s on this platform?); "
                "memory_warn_mb and memory_limit_mb are not applied", _STATM)
