"""What a worker registers as and how it behaves: :class:`WorkerOptions` and the load function.

The server address and credentials come from ``LIVEKIT_URL``, ``LIVEKIT_API_KEY`` and
``LIVEKIT_API_SECRET`` unless given (:meth:`WorkerOptions.from_env`). The default load is the
CPU this process used since the last reading, as a share of the CPUs it may use (the cgroup's
quota when there is one, else every CPU): :class:`ProcessCPULoad`. Memory is watched for the
whole process (:mod:`flowkit.worker.memory`): every job of a worker shares it.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livekit.protocol import agent as agent_pb
from livekit.protocol import models as models_pb

from flowkit.worker.memory import MemoryFn

__all__ = [
    "JobType",
    "Permissions",
    "ProcessCPULoad",
    "WorkerOptions",
    "WorkerOptionsError",
    "available_cpus",
]

_CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


class WorkerOptionsError(ValueError):
    """The worker's options are incomplete or wrong; the message says which and how to fix it."""


class JobType(enum.StrEnum):
    """Which jobs a worker takes: one per room, per publisher, or per participant."""

    ROOM = "room"
    PUBLISHER = "publisher"
    PARTICIPANT = "participant"

    def to_proto(self) -> agent_pb.JobType:
        """The protocol's value (``JT_ROOM``, ...)."""
        return {
            JobType.ROOM: agent_pb.JT_ROOM,
            JobType.PUBLISHER: agent_pb.JT_PUBLISHER,
            JobType.PARTICIPANT: agent_pb.JT_PARTICIPANT,
        }[self]


@dataclass(frozen=True, slots=True)
class Permissions:
    """What the agent's participant may do in the room (registered with the worker)."""

    can_publish: bool = True
    can_subscribe: bool = True
    can_publish_data: bool = True
    can_update_metadata: bool = True
    hidden: bool = False

    def to_proto(self) -> models_pb.ParticipantPermission:
        """The protocol's ``ParticipantPermission``."""
        return models_pb.ParticipantPermission(
            can_publish=self.can_publish,
            can_subscribe=self.can_subscribe,
            can_publish_data=self.can_publish_data,
            can_update_metadata=self.can_update_metadata,
            hidden=self.hidden,
            agent=True,
        )


def available_cpus() -> float:
    """How many CPUs this process may use: the cgroup v2 quota, else the CPU count."""
    cpus = float(os.cpu_count() or 1)
    try:
        quota, period = _CGROUP_CPU_MAX.read_text().split()[:2]
    except (OSError, ValueError):
        return cpus
    if quota == "max":
        return cpus
    try:
        return max(0.01, min(cpus, int(quota) / int(period)))
    except (ValueError, ZeroDivisionError):
        return cpus


class ProcessCPULoad:
    """The default load function: this process's CPU use since the last call, from 0 to 1.

    Each call measures CPU time (``time.process_time``) over wall time since the previous
    call, divided by :func:`available_cpus`. The first call measures since construction.
    """

    def __init__(self) -> None:
        self._cpus = available_cpus()
        self._cpu = time.process_time()
        self._wall = time.monotonic()
        self._last = 0.0

    def __call__(self) -> float:
        """The load since the previous call (0 to 1)."""
        cpu, wall = time.process_time(), time.monotonic()
        elapsed = wall - self._wall
        if elapsed < 0.05:  # too short to measure: repeat the last figure
            return self._last
        used = (cpu - self._cpu) / elapsed / self._cpus
        self._cpu, self._wall = cpu, wall
        self._last = max(0.0, min(1.0, used))
        return self._last


@dataclass(slots=True)
class WorkerOptions:
    """How a worker registers and how many jobs it takes.

    Attributes:
        url: The LiveKit server (``ws://``, ``wss://``, ``http://`` or ``https://``).
        api_key: The API key the worker's token is signed for.
        api_secret: The API secret that signs the worker's token.
        agent_name: The name explicit dispatch uses; empty for automatic dispatch.
        job_type: Which jobs the worker takes (room, publisher or participant).
        version: The agent's version, reported at registration.
        namespace: The worker's namespace, for sharing a server between deployments.
        permissions: What the agent's participant may do.
        load_fnc: Returns the worker's load, 0 to 1; defaults to :class:`ProcessCPULoad`.
        load_threshold: At or above this load the worker reports itself full and rejects
            new jobs (``math.inf``: never full from load).
        max_jobs: At most this many jobs at once (``None``: no limit).
        memory_warn_mb: Log a warning when the worker process's resident memory (RSS) goes
            above this many MB, once per crossing (0: off). It is the whole process's
            memory, every job and model in it, not one job's as in LiveKit Agents.
        memory_limit_mb: Above this many MB of RSS the worker reports itself full and
            refuses new jobs, until the RSS falls below 90 % of it; running jobs go on
            (0: no limit).
        memory_fnc: Returns the process's memory in MB, or ``None`` when it cannot be read;
            defaults to :func:`~flowkit.worker.memory.process_rss_mb` (``/proc/self/statm``).
            Read at each status report and each job offer, so it must be quick.
        loop_stall_ms: Log a warning, naming the job, node and line, when code blocks the
            worker's event loop (shared by every job) for this many milliseconds or more
            (0: off); see :mod:`flowkit.runtime.loop_watch`.
        drain_timeout: On SIGTERM, running jobs get this many seconds to finish before they
            are ended.
        status_interval: Seconds between load reports (UpdateWorkerStatus).
        register_timeout: Seconds to wait for the server's RegisterWorkerResponse.
        availability_timeout: Seconds the accept hook may take before the job is refused.
        reconnect_min: The first delay before reconnecting, in seconds (doubles each try).
        reconnect_max: The longest delay between reconnection attempts.
        max_retries: Give up after this many failed connection attempts in a row
            (``None``: never give up).
        http_host: Where the worker's HTTP server (health, /worker, /metrics) listens.
        http_port: Its port (0: any free port; ``None``: no HTTP server).
    """

    url: str = ""
    api_key: str = ""
    api_secret: str = ""
    agent_name: str = ""
    job_type: JobType = JobType.ROOM
    version: str = ""
    namespace: str = ""
    permissions: Permissions = field(default_factory=Permissions)
    load_fnc: Callable[[], float] | None = None
    load_threshold: float = 0.75
    max_jobs: int | None = None
    memory_warn_mb: float = 2048.0
    memory_limit_mb: float = 0.0
    memory_fnc: MemoryFn | None = None
    loop_stall_ms: float = 250.0
    drain_timeout: float = 1800.0
    status_interval: float = 2.5
    register_timeout: float = 10.0
    availability_timeout: float = 5.0
    reconnect_min: float = 0.5
    reconnect_max: float = 10.0
    max_retries: int | None = 16
    http_host: str = "0.0.0.0"
    http_port: int | None = 8081

    @classmethod
    def from_env(cls, **overrides: Any) -> WorkerOptions:
        """Options from ``LIVEKIT_URL``, ``LIVEKIT_API_KEY`` and ``LIVEKIT_API_SECRET``.

        Overrides that are ``None`` are ignored, so command-line flags that were not given
        leave the environment's value in place.
        """
        given = {k: v for k, v in overrides.items() if v is not None}
        env = {
            "url": os.environ.get("LIVEKIT_URL", ""),
            "api_key": os.environ.get("LIVEKIT_API_KEY", ""),
            "api_secret": os.environ.get("LIVEKIT_API_SECRET", ""),
        }
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(given) - names)
        if unknown:
            raise WorkerOptionsError(f"unknown worker options {unknown}; known: {sorted(names)}")
        return cls(**{**env, **given})

    def check(self) -> None:
        """Raise :class:`WorkerOptionsError` naming every missing or wrong option."""
        missing = [
            f"{flag} (or {env})"
            for value, flag, env in (
                (self.url, "--url", "LIVEKIT_URL"),
                (self.api_key, "--api-key", "LIVEKIT_API_KEY"),
                (self.api_secret, "--api-secret", "LIVEKIT_API_SECRET"),
            )
            if not value
        ]
        if missing:
            raise WorkerOptionsError(
                "the worker needs the LiveKit server's address and credentials; set "
                + ", ".join(missing)
            )
        if not self.url.startswith(("ws://", "wss://", "http://", "https://")):
            raise WorkerOptionsError(
                f"LiveKit URL {self.url!r} is not a ws://, wss://, http:// or https:// URL; "
                "pass the server's address, e.g. wss://my-project.livekit.cloud"
            )
        if self.max_jobs is not None and self.max_jobs < 1:
            raise WorkerOptionsError(f"max_jobs is {self.max_jobs}; give at least 1, or None")
        if not (self.load_threshold > 0 or math.isinf(self.load_threshold)):
            raise WorkerOptionsError(
                f"load_threshold is {self.load_threshold}; give a load above 0 (1.0 = all CPUs)"
            )
        # Figures where 0 turns the feature off: each with what to give instead.
        for name, give in (
            ("memory_warn_mb", "a size in MB above 0 (e.g. 2048)"),
            ("memory_limit_mb", "a size in MB above 0 (e.g. 2048)"),
            ("loop_stall_ms", "the milliseconds of a blocked event loop worth a warning "
                              "(e.g. 250)"),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not (
                math.isfinite(value) and value >= 0
            ):
                raise WorkerOptionsError(f"{name} is {value!r}; give {give}, or 0 to turn it off")

    def agent_ws_url(self) -> str:
        """The worker endpoint: the server URL with a WebSocket scheme and path ``/agent``."""
        url = self.url.rstrip("/")
        for http, ws in (("http://", "ws://"), ("https://", "wss://")):
            if url.startswith(http):
                url = ws + url[len(http):]
        return url + "/agent"
