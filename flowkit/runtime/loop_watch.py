"""A watch on the event loop: when code blocks it, how long, and what was running.

Every job of a flowkit worker runs on one event loop (see docs/livekit.md, "Scaling out"), so
code that blocks the loop, such as a synchronous HTTP call in a tool, a ``time.sleep`` or a
long computation in a node, holds up the audio and the replies of every call in the process,
not only its own. asyncio's debug mode reports slow callbacks, but it is too costly to leave
on in production and names only the callback; a stalled call shows only as late audio.

:class:`LoopWatch` costs one callback on the loop per ``threshold / 5`` (a heartbeat) and a
thread that wakes as often. When the heartbeat is overdue by half the threshold, the thread
takes the loop thread's Python stack (:func:`sys._current_frames`) and the task that was
running (:func:`asyncio.current_task`); when the heartbeat comes ``threshold`` or more late,
the loop was blocked that long, and ``on_stall`` gets a :class:`LoopStall` on the loop's own
thread, where the caller can safely look the task up in its graphs. A loop blocked for longer
than ``still_blocked_after`` is also logged from the watch's thread while it lasts, since the
loop may never come back to report it.

Code that holds the GIL for the whole stall (a C extension that does not release it) keeps
the watch's thread from running too: such a stall is measured when it ends, but what ran is
not seen. Python's garbage collector is such code, so the watch also times collections
(:data:`gc.callbacks`) and says how much of a stall was one.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import sysconfig
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["LoopStall", "LoopWatch"]

log = logging.getLogger("flowkit.runtime")

_PATHS = sysconfig.get_paths()
# Python's own modules, without the installed packages (which are under them in some
# installations, e.g. /usr/lib/python3.11/site-packages).
_STDLIB = tuple({_PATHS["stdlib"], _PATHS["platstdlib"]})
_INSTALLED = tuple({_PATHS["purelib"], _PATHS["platlib"]})


_ASYNCIO = tuple(f"{path}/asyncio/" for path in _STDLIB)


def _in_stdlib(filename: str) -> bool:
    """Whether a frame's file is one of Python's own modules (frozen ones included)."""
    if filename.startswith("<"):
        return True  # "<frozen importlib._bootstrap>" and the like
    return filename.startswith(_STDLIB) and not filename.startswith(_INSTALLED)


@dataclass(frozen=True, slots=True)
class LoopStall:
    """One time the event loop was blocked.

    Attributes:
        duration_s: How late the loop ran its heartbeat: how long nothing else ran, give or
            take a heartbeat interval.
        task: The task running while the loop was blocked, when it was seen in a task
            (``None``: a plain callback was running, or nothing was seen).
        stack: The loop thread's stack while it was blocked, outermost frame first
            (``None``: not seen, see the module).
        gc_s: How much of the stall Python's garbage collector ran (a full collection of a
            big heap holds the GIL, so its stack is never seen).
    """

    duration_s: float
    task: asyncio.Task[Any] | None
    stack: traceback.StackSummary | None
    gc_s: float = 0.0

    @property
    def garbage_collection(self) -> bool:
        """Whether the garbage collector ran for at least half of the stall."""
        return self.gc_s >= self.duration_s / 2

    @property
    def culprit(self) -> traceback.FrameSummary | None:
        """The innermost frame outside Python's standard library: usually the blocking call.

        The innermost frame itself is often deep in the standard library (``socket``,
        ``ssl``, ``threading``), which says little about whose code blocked.
        """
        if not self.stack:
            return None
        for frame in reversed(self.stack):
            if not _in_stdlib(frame.filename):
                return frame
        return self.stack[-1]

    def where(self) -> str:
        """Where the loop was blocked, as ``file:line in function``, or why it is unknown.

        A stall that was mostly a garbage collection is told as one, whatever stack was
        seen: the collection runs inside whichever allocation set it off, so that line
        is not to blame.
        """
        if self.garbage_collection:
            return f"Python's garbage collection ({round(self.gc_s * 1000)} ms of it)"
        frame = self.culprit
        if frame is None:
            return (
                "not seen (the blocking code held the GIL throughout, as a C extension call "
                "that does not release it does)"
            )
        return f"{frame.filename}:{frame.lineno} in {frame.name}"

    def stack_text(self, frames: int = 6) -> str:
        """The innermost ``frames`` frames, outermost first, as ``file:line in name``.

        The event loop's own frames (asyncio's, outside any code of a node or a library)
        are left out: every stall has them.
        """
        if not self.stack:
            return ""
        own = [f for f in self.stack if not f.filename.startswith(_ASYNCIO)] or list(self.stack)
        return " > ".join(f"{_short(f.filename)}:{f.lineno} in {f.name}" for f in own[-frames:])


def _short(path: str) -> str:
    """A frame's file as its last two path parts: enough to find it, short in a log line."""
    parts = path.replace("\\", "/").rsplit("/", 2)
    return "/".join(parts[-2:])


class LoopWatch:
    """Watches one event loop for code that blocks it (see the module).

    Args:
        threshold: Seconds the loop must be blocked for a stall to count (e.g. 0.25).
        on_stall: Called on the loop's thread with each stall, once the loop runs again.
        still_blocked_after: Seconds after which a stall still going on is logged from
            the watch's thread (the loop may never come back to report it).

    Attributes:
        stalls: Stalls seen so far.
        stalled_s: Their total duration.
        longest_s: The longest one.
        last: The last one (``None`` before the first).
    """

    def __init__(
        self,
        threshold: float,
        on_stall: Callable[[LoopStall], None] | None = None,
        *,
        still_blocked_after: float = 5.0,
    ) -> None:
        if not threshold > 0:
            raise ValueError(
                f"LoopWatch threshold is {threshold!r}; give the seconds of blocking worth a "
                "report (e.g. 0.25)"
            )
        self.threshold = threshold
        self.on_stall = on_stall
        self.still_blocked_after = max(still_blocked_after, threshold)
        self.interval = threshold / 5
        self.stalls = 0
        self.stalled_s = 0.0
        self.longest_s = 0.0
        self.last: LoopStall | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._handle: asyncio.TimerHandle | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        # When the next heartbeat is due (time.monotonic()); written by the loop, read by
        # the watch's thread: a float attribute, so each read sees a whole value.
        self._due = 0.0
        # What the watch's thread saw while the heartbeat due at `due` was overdue.
        self._seen: tuple[float, asyncio.Task[Any] | None, traceback.StackSummary] | None = None
        self._told_due = 0.0  # the due time whose stall was logged as still going on
        # The garbage collector's time (gc.callbacks), in all and as of the last heartbeat.
        self._gc_s = 0.0
        self._gc_at_beat = 0.0
        self._gc_start = 0.0

    @property
    def running(self) -> bool:
        """Whether the watch is started and not stopped."""
        return self._thread is not None

    def start(self) -> None:
        """Start watching the running loop (call from a coroutine or callback on it).

        Raises:
            RuntimeError: No event loop is running in this thread, or the watch is running.
        """
        if self._thread is not None:
            raise RuntimeError("this LoopWatch is already running; stop() it first")
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._stop.clear()
        self._due = time.monotonic() + self.interval
        self._gc_at_beat = self._gc_s
        gc.callbacks.append(self._on_gc)
        self._handle = loop.call_later(self.interval, self._beat)
        self._thread = threading.Thread(target=self._watch, name="flowkit-loop-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (idempotent); a stall under way is not reported."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._on_gc)
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if thread is not threading.current_thread():
            thread.join(timeout=1.0)

    # -- on the loop -----------------------------------------------------------------------

    def _beat(self) -> None:
        now = time.monotonic()
        due = self._due
        late = now - due
        gc_s = self._gc_s - self._gc_at_beat
        self._gc_at_beat = self._gc_s
        if late >= self.threshold:
            seen = self._seen
            if seen is not None and seen[0] == due:  # the watch's thread saw this stall
                self._record(LoopStall(late, seen[1], seen[2], gc_s))
            else:
                self._record(LoopStall(late, None, None, gc_s))
        self._seen = None
        self._due = now + self.interval
        assert self._loop is not None
        self._handle = self._loop.call_later(self.interval, self._beat)

    def _record(self, stall: LoopStall) -> None:
        self.stalls += 1
        self.stalled_s += stall.duration_s
        self.longest_s = max(self.longest_s, stall.duration_s)
        self.last = stall
        if self.on_stall is None:
            return
        try:
            self.on_stall(stall)
        except Exception:  # the watch must outlive a failing report
            log.exception("the loop watch's on_stall callback failed")

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        # gc.callbacks: called at the start and the stop of every collection, in the thread
        # that triggered it (the loop's, nearly always).
        if phase == "start":
            self._gc_start = time.perf_counter()
        elif self._gc_start:  # (a stop without its start, had one been missed, counts nothing)
            self._gc_s += time.perf_counter() - self._gc_start
            self._gc_start = 0.0

    # -- on the watch's thread --------------------------------------------------------------

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            due = self._due
            overdue = time.monotonic() - due
            if overdue < self.threshold / 2:
                continue
            seen = self._seen
            if seen is None or seen[0] != due:
                self._seen = self._look(due)
            if overdue >= self.still_blocked_after and self._told_due != due:
                self._told_due = due
                seen = self._seen
                stall = LoopStall(overdue, seen[1], seen[2]) if seen is not None else LoopStall(
                    overdue, None, None
                )
                log.error(
                    "the event loop has been blocked for %.1f s and still is, at %s (stack: "
                    "%s); nothing else in this process runs meanwhile; move blocking work "
                    "off the loop (a thread, or an async client)",
                    overdue, stall.where(), stall.stack_text() or "not seen",
                )

    def _look(self, due: float) -> tuple[float, asyncio.Task[Any] | None, traceback.StackSummary]:
        """The loop thread's stack and current task, as the heartbeat due at ``due`` waits."""
        frame = sys._current_frames().get(self._loop_thread)
        # Source lines are not read here (no file access on this thread): they are looked
        # up lazily if someone formats the stack later.
        stack = traceback.StackSummary.extract(
            traceback.walk_stack(frame), limit=40, lookup_lines=False
        ) if frame is not None else traceback.StackSummary()
        stack.reverse()  # walk_stack goes innermost first; a traceback reads outermost first
        assert self._loop is not None
        task = asyncio.current_task(self._loop)
        return due, task, stack
