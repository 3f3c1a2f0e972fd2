"""The LiveKit agent worker: registration, dispatch, one fresh graph per job, drain, metrics.

``flowkit start graph.py`` and ``flowkit dev graph.py`` run a :class:`Worker`; use it
directly to embed a worker in your own program::

    worker = Worker("graph.py", WorkerOptions.from_env(agent_name="support"))
    await worker.run()
"""

from flowkit.worker.jobs import (
    AcceptFn,
    ConnectJob,
    Disconnect,
    GraphFactory,
    JobAcceptance,
    JobRequest,
    RunningJob,
    accept_all,
    no_room,
)
from flowkit.worker.memory import MemoryState, MemoryWatch, process_rss_mb
from flowkit.worker.options import (
    JobType,
    Permissions,
    ProcessCPULoad,
    WorkerOptions,
    WorkerOptionsError,
)
from flowkit.worker.protocol import WorkerAuthError, WorkerConnectError
from flowkit.worker.worker import Worker, install_signal_handlers

__all__ = [
    "AcceptFn",
    "ConnectJob",
    "Disconnect",
    "GraphFactory",
    "JobAcceptance",
    "JobRequest",
    "JobType",
    "MemoryState",
    "MemoryWatch",
    "Permissions",
    "ProcessCPULoad",
    "RunningJob",
    "Worker",
    "WorkerAuthError",
    "WorkerConnectError",
    "WorkerOptions",
    "WorkerOptionsError",
    "accept_all",
    "install_signal_handlers",
    "no_room",
    "process_rss_mb",
]
