"""Structured logs for workers: JSON lines by default, rich console output in development.

Every record carries the worker's id and, inside a job, the job's id and room: they are kept
in context variables (:data:`worker_id_var`, :data:`job_id_var`, :data:`room_var`) that the
worker sets, and a filter copies them onto each record. So the logs of a job's graph (the
runtime's node errors, provider warnings) name the job without the graph knowing it.
"""

from __future__ import annotations

import contextvars
import datetime
import json
import logging
import sys
from typing import Any, TextIO

__all__ = [
    "ContextFilter",
    "JsonFormatter",
    "configure_logging",
    "job_id_var",
    "room_var",
    "worker_id_var",
]

worker_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("flowkit_worker_id", default="")
job_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("flowkit_job_id", default="")
room_var: contextvars.ContextVar[str] = contextvars.ContextVar("flowkit_room", default="")

# What a LogRecord has by itself; everything else on a record came from ``extra=``.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "worker_id", "job_id", "room", "taskName"}
)


class ContextFilter(logging.Filter):
    """Copies the worker id, job id and room from the context onto every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Add ``worker_id``, ``job_id`` and ``room`` (never drops a record)."""
        for name, var in (("worker_id", worker_id_var), ("job_id", job_id_var),
                          ("room", room_var)):
            if not getattr(record, name, ""):
                setattr(record, name, var.get())
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, ids, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in ("worker_id", "job_id", "room"):
            value = getattr(record, name, "")
            if value:
                entry[name] = value
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, int | float | bool | str) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class _RichIds(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ids = [f"{n}={getattr(record, n)}" for n in ("job_id", "room") if getattr(record, n, "")]
        message = record.getMessage()
        return f"{message}  [{' '.join(ids)}]" if ids else message


def configure_logging(
    *, dev: bool = False, level: int | str = logging.INFO, stream: TextIO | None = None
) -> logging.Handler:
    """Send flowkit's logs (and the root logger's) to ``stream`` (stderr by default).

    Args:
        dev: Rich, human-readable output instead of JSON lines.
        level: The root logger's level.
        stream: Where to write.

    Returns:
        The handler installed on the root logger (replacing handlers a previous call added).
    """
    out = stream if stream is not None else sys.stderr
    handler: logging.Handler
    if dev:
        # rich only for readable logs: a production worker's JSON lines do without it.
        from rich.console import Console
        from rich.logging import RichHandler

        handler = RichHandler(
            console=Console(file=out, stderr=out is sys.stderr), show_path=False,
            rich_tracebacks=True, markup=False,
        )
        handler.setFormatter(_RichIds())
    else:
        handler = logging.StreamHandler(out)
        handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    handler.set_name("flowkit-worker")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "flowkit-worker"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
