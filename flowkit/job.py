"""What a graph file's ``build(job)`` receives: the job the graph is built for.

Outside LiveKit (``flowkit validate``, ``viz``, offline ``run``) the job is a plain
:class:`JobContext` describing a local run; the LiveKit worker passes one describing the
dispatched job (room, participant, metadata).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowkit.room_io import RoomIO

__all__ = ["JobContext"]


@dataclass(slots=True)
class JobContext:
    """The job a graph is built and run for.

    Attributes:
        job_id: The job's id (``"local"`` outside LiveKit).
        room_name: The room the job serves (empty outside LiveKit).
        metadata: The job's metadata text, as set at dispatch.
        agent_name: The agent name the worker registered with.
        extra: Anything the caller wants a graph file to see (command-line options, ...).
        io: Where room nodes read and write (``None`` when the graph is only built, e.g.
            for ``flowkit validate``; a room node then fails to start with a clear error).
    """

    job_id: str = "local"
    room_name: str = ""
    metadata: str = ""
    agent_name: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    io: RoomIO | None = None

    @classmethod
    def local(cls, **extra: Any) -> JobContext:
        """A job for building a graph outside LiveKit (validate, viz, offline runs)."""
        return cls(extra=dict(extra))
