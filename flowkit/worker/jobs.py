"""Jobs as the worker sees them: the request to accept, the graph factory, and a running job.

- :class:`JobRequest` is what the accept hook gets for each ``AvailabilityRequest``; the hook
  returns ``request.accept(identity=..., name=..., metadata=..., attributes=...)`` or
  ``request.reject()``.
- :class:`GraphFactory` imports the graph file once and calls its ``build(job)`` for every
  job, so each job gets a fresh graph without re-running the file's imports; ``reload()``
  imports it again for the jobs that come after.
- :class:`RunningJob` is one assigned job: its :class:`~flowkit.job.JobContext`, its runner
  (for metrics) and its task.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.metadata
import inspect
import sys
import time
import types
import typing
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from livekit.protocol import agent as agent_pb

from flowkit.graph import Graph
from flowkit.job import JobContext
from flowkit.loader import GraphFileError, _check_path, _graph_of, _import
from flowkit.recording import ConversationRecorder
from flowkit.runtime.runner import GraphRunner
from flowkit.telemetry import JobSpans
from flowkit.timeline import TurnTimeline

__all__ = [
    "AcceptFn",
    "ConnectJob",
    "Disconnect",
    "GraphFactory",
    "JobAcceptance",
    "JobRequest",
    "RunningJob",
    "accept_all",
    "job_context",
    "livekit_room",
    "no_room",
]


@dataclass(frozen=True, slots=True)
class JobAcceptance:
    """The worker takes the job; the agent joins the room as this participant.

    Attributes:
        identity: The agent participant's identity (default ``agent-<job id>``).
        name: Its display name.
        metadata: Its metadata.
        attributes: Its attributes.
    """

    identity: str = ""
    name: str = ""
    metadata: str = ""
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class JobRequest:
    """A job the server offers the worker (an ``AvailabilityRequest``).

    Attributes:
        job: The protocol's ``Job`` (id, room, participant, metadata, agent name, ...).
    """

    job: agent_pb.Job

    @property
    def id(self) -> str:
        """The job's id."""
        return self.job.id

    @property
    def room_name(self) -> str:
        """The room the job is for."""
        return self.job.room.name

    @property
    def metadata(self) -> str:
        """The dispatch's metadata."""
        return self.job.metadata

    @property
    def agent_name(self) -> str:
        """The agent name the job was dispatched to (empty for automatic dispatch)."""
        return self.job.agent_name

    @property
    def participant_identity(self) -> str:
        """The participant a publisher or participant job is for (empty for room jobs)."""
        return self.job.participant.identity

    def accept(
        self, *, identity: str = "", name: str = "", metadata: str = "",
        attributes: Mapping[str, str] | None = None,
    ) -> JobAcceptance:
        """Take the job, joining as ``identity`` (default ``agent-<job id>``)."""
        return JobAcceptance(identity or f"agent-{self.id}", name, metadata, dict(attributes or {}))

    def reject(self) -> None:
        """Refuse the job: the server offers it to another worker."""
        return None


AcceptFn = Callable[[JobRequest], "Awaitable[JobAcceptance | None] | JobAcceptance | None"]
"""The accept hook: a :class:`JobAcceptance` takes the job, ``None`` refuses it."""


def accept_all(request: JobRequest) -> JobAcceptance:
    """The default accept hook: take every job, as ``agent-<job id>``."""
    return request.accept()


Disconnect = Callable[[], Awaitable[None]]
"""Leaves the room a :data:`ConnectJob` hook joined."""


class ConnectJob(Protocol):
    """Joins the job's room before its graph runs, and binds ``job.io`` to the room.

    The worker calls it with the job's context, whose ``extra`` holds ``"url"`` and
    ``"token"`` (the assignment's), ``"job"`` (the protocol's ``Job``), ``"worker_id"`` and
    ``"agent_identity"`` (the identity the accept hook chose). It returns an async callable
    to call when the job ends, or ``None``. When the job ends the worker calls
    ``job.aclose(reason)`` (shutdown callbacks, then leaving the room attached as
    ``job.livekit``), then that callable.
    """

    def __call__(self, job: JobContext) -> Awaitable[Disconnect | None]:
        """Connect the job's room."""
        ...


async def no_room(job: JobContext) -> Disconnect | None:
    """A :data:`ConnectJob` that joins nothing (graphs that need no room, tests)."""
    return None


def job_context(
    assignment: agent_pb.JobAssignment, *, worker_url: str, worker_id: str,
    acceptance: JobAcceptance | None,
) -> JobContext:
    """The context a job's graph is built and run with, from its ``JobAssignment``.

    The assignment's ``url`` is empty when the job's room is on the server the worker is
    connected to; then ``worker_url`` is used.
    """
    job = assignment.job
    url = assignment.url or worker_url
    extra: dict[str, Any] = {
        "url": url, "token": assignment.token, "job": job, "worker_id": worker_id,
        "agent_identity": acceptance.identity if acceptance else "",
    }
    values: dict[str, Any] = {
        "job_id": job.id, "room_name": job.room.name, "metadata": job.metadata,
        "agent_name": job.agent_name, "extra": extra,
        # The participant a publisher or participant job is for (empty for room jobs).
        "participant_identity": job.participant.identity,
    }
    # Fields a richer JobContext may grow (url, token, job, ...) are filled when present.
    names = {f.name for f in dataclasses.fields(JobContext)}
    for key in ("url", "token", "job", "worker_id"):
        if key in names:
            values[key] = extra[key]
    return JobContext(**values)


def livekit_room(api_key: str, api_secret: str) -> ConnectJob:
    """The :class:`ConnectJob` of a real worker: join the assignment's room.

    It calls :func:`flowkit.livekit.connect_job`, which binds ``job.io`` to the room.
    """

    async def connect(job: JobContext) -> Disconnect | None:
        from flowkit.livekit import connect_job

        await connect_job(
            job, url=job.extra["url"], token=job.extra["token"],
            api_key=api_key, api_secret=api_secret,
        )
        return None  # job.aclose() leaves the room (job.livekit)

    return connect


class GraphFactory:
    """Builds a fresh graph per job from a graph file, importing the file only once.

    :meth:`reload` imports it again (``flowkit dev`` does on every change): jobs started
    after it build the new version, jobs already running keep the graph they were built
    with.

    A graph file may also define ``prewarm()``, with no arguments: what to load before the
    first job (LiveKit Agents' ``prewarm_fnc``), so that no job pays for it. A worker calls
    it through :meth:`prewarm` before it registers, and again after each reload.

    Args:
        path: The graph file (defines ``build(job)`` or a module-level ``graph``, and may
            define ``prewarm()``).

    Attributes:
        module: The graph file's module as last imported.
        version: 1 after the first import, one more after each successful reload.

    Raises:
        flowkit.loader.GraphFileError: The file is missing or does not import, or its
            ``prewarm`` is not a function of no arguments (raised at construction, so a
            worker with a broken graph file fails before it registers).
    """

    def __init__(self, path: str | Path) -> None:
        self.given = Path(path)
        self.file = _check_path(self.given)
        self.module: types.ModuleType = _import(self.file, self.given)
        self._prewarm_of(self.module)
        self.version = 1

    def __call__(self, job: JobContext) -> Graph:
        """The graph for ``job`` (its ``build(job)``); a ``GraphFileError`` says what failed."""
        return _graph_of(self.module, self.file, self.given, job)

    def reload(self) -> None:
        """Import the graph file again, with the user's own modules beside it.

        The modules forgotten first are those whose file lies under the graph file's
        directory and that no installed distribution provides (a helper the graph file
        imports from its folder): they are imported afresh with it. Installed packages,
        flowkit and node libraries included (editable or not), are kept, so messages and
        nodes of running jobs stay the same classes as those of new ones.

        Raises:
            flowkit.loader.GraphFileError: The new version does not import; the factory
                keeps the last version that did, and so do the modules beside it.
        """
        name = self.module.__name__
        beside = _own_modules_under(self.file.parent, keep=name)
        saved = {n: sys.modules.pop(n) for n in beside}
        try:
            module = _import(self.file, self.given)
            self._prewarm_of(module)
        except GraphFileError:
            sys.modules.update(saved)
            sys.modules[name] = self.module  # the failed import removed its name
            raise
        self.module = module
        self.version += 1

    def prewarm(self) -> None:
        """Call the graph file's ``prewarm()``, if it defines one (see :class:`Worker`).

        Blocking: a worker calls it on a thread of its own.

        Raises:
            flowkit.loader.GraphFileError: ``prewarm()`` raised; the message names the file
                and the error.
        """
        prewarm = self._prewarm_of(self.module)
        if prewarm is None:
            return
        try:
            prewarm()
        except Exception as exc:
            raise GraphFileError(
                f"{self.given}: prewarm() raised {type(exc).__name__}: {exc}; the worker "
                "does not take jobs its graph could not run (fix what prewarm() loads, or "
                "remove it to load lazily in build(job))",
                self.given,
            ) from exc

    def _prewarm_of(self, module: types.ModuleType) -> Callable[[], object] | None:
        """``module``'s ``prewarm``, checked: ``None`` when it has none."""
        prewarm = getattr(module, "prewarm", None)
        if prewarm is None:
            return None
        if not callable(prewarm):
            raise GraphFileError(
                f"{self.given}: prewarm is a {type(prewarm).__name__}, not a function; "
                "define 'def prewarm() -> None' to load models before the first job, or "
                "rename it",
                self.given,
            )
        try:
            inspect.signature(prewarm).bind()
        except TypeError:
            raise GraphFileError(
                f"{self.given}: prewarm{inspect.signature(prewarm)} needs arguments; the "
                "worker calls it with none: 'def prewarm() -> None'",
                self.given,
            ) from None
        except ValueError:  # a builtin without a signature: called as it is
            pass
        return typing.cast(Callable[[], object], prewarm)


def _own_modules_under(directory: Path, *, keep: str) -> list[str]:
    """Names of loaded modules from files under ``directory`` that no distribution installs."""
    installed = importlib.metadata.packages_distributions()
    root = directory.resolve()
    names = []
    for name, module in list(sys.modules.items()):
        origin = getattr(module, "__file__", None)
        if name == keep or origin is None or name.partition(".")[0] in installed:
            continue
        path = Path(origin).resolve()
        if path.is_relative_to(root) and not _in_environment(path):
            names.append(name)
    return names


def _in_environment(path: Path) -> bool:
    """Whether ``path`` belongs to the interpreter or its environment (stdlib, site-packages)."""
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix}
    return any(path.is_relative_to(Path(p).resolve()) for p in prefixes) or any(
        part in ("site-packages", "dist-packages") for part in path.parts
    )


@dataclass(slots=True, eq=False)
class RunningJob:
    """One assigned job while it runs.

    Attributes:
        context: What its graph was built with.
        acceptance: How the worker accepted it.
        started: ``time.time()`` at assignment.
        runner: The graph's runner, once built (its ``metrics()`` feed ``/metrics``).
        timeline: The turns of its graph, once started (for the live page and traces).
        origin: The loop time at which its graph started (traces count from it).
        spans: Its OpenTelemetry spans while it runs (:class:`~flowkit.telemetry.JobSpans`),
            when the worker has a tracer.
        recorder: Its recording (:mod:`flowkit.recording`), when the worker records.
        task: The task running the job.
        status: The status last reported (``JS_RUNNING``, ...).
        terminated: The server asked the job to end (``JobTermination``).
    """

    context: JobContext
    acceptance: JobAcceptance | None
    started: float = field(default_factory=time.time)
    runner: GraphRunner | None = None
    timeline: TurnTimeline | None = None
    origin: float = 0.0
    spans: JobSpans | None = None
    recorder: ConversationRecorder | None = None
    task: asyncio.Task[None] | None = None
    status: agent_pb.JobStatus = agent_pb.JS_PENDING
    terminated: bool = False

    @property
    def id(self) -> str:
        """The job's id."""
        return self.context.job_id

    @property
    def room_name(self) -> str:
        """The job's room."""
        return self.context.room_name

