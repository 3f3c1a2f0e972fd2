"""Each room's agent dispatches, and the jobs the test server launches for them.

LiveKit's rules, as its rooms apply them: a room has a set of dispatches (LiveKit's
``AgentDispatch``: an agent name and metadata). A room gets its dispatches when it is
created: the ones its configuration names (a join token's ``RoomConfiguration.agents``, or
``CreateRoomRequest.agents``), else one default dispatch with no agent name, which is
automatic dispatch. More are added by the server API (``CreateDispatch``). Every dispatch
launches, for the workers registered with its agent name:

- a room job (``JT_ROOM``) when it is added;
- a participant job (``JT_PARTICIPANT``) for each participant in the room, and for each one
  who joins later;
- a publisher job (``JT_PUBLISHER``) for each participant who has published a track, and
  for each one the first time it publishes (one per participant, however many tracks).

Agent and egress participants launch no jobs. As in LiveKit, a job is launched only while
some worker takes its agent name and job type; the one exception is a named dispatch's room
job, which waits (up to the dispatcher's ``dispatch_timeout``) for such a worker, so a test
may create a dispatch before its worker registers.

:class:`~flowkit.testing.livekit_server.agents.AgentDispatcher` offers each job to its
workers; this module decides which jobs there are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from livekit.protocol import agent as agent_pb
from livekit.protocol import agent_dispatch, models

from flowkit.testing.livekit_server.rooms import Participant, Room, new_sid

if TYPE_CHECKING:
    from flowkit.testing.livekit_server.agents import AgentDispatcher

__all__ = ["RoomDispatch", "RoomDispatches"]

log = logging.getLogger("flowkit.testing.agents")

_DEPENDENT_KINDS = (models.ParticipantInfo.Kind.AGENT, models.ParticipantInfo.Kind.EGRESS)
"""Participants that never launch jobs (LiveKit's ``IsDependent``)."""


@dataclass(eq=False)
class RoomDispatch:
    """One dispatch of a room, and the offers of its jobs still looking for a worker.

    Attributes:
        info: LiveKit's ``AgentDispatch`` (id, agent name, room, metadata, creation time).
        offers: The tasks offering its jobs; done once a worker took each or none did.
    """

    info: agent_dispatch.AgentDispatch
    offers: set[asyncio.Task[None]] = field(default_factory=set, repr=False)

    @property
    def id(self) -> str:
        """The dispatch's id (``AD_...``)."""
        return self.info.id

    @property
    def agent_name(self) -> str:
        """The agent name it dispatches (empty: the workers registered without one)."""
        return self.info.agent_name


class RoomDispatches:
    """The dispatches of every room, and the jobs they launch (see the module docs).

    Args:
        dispatcher: Offers the jobs to its workers.
    """

    def __init__(self, dispatcher: AgentDispatcher) -> None:
        self._dispatcher = dispatcher
        self._by_room: dict[str, dict[str, RoomDispatch]] = {}
        # Participants (by sid) of each room that have published: each gets one publisher
        # job per dispatch, however many tracks it publishes or republishes.
        self._publishers: dict[str, set[str]] = {}

    # -- the dispatches ----------------------------------------------------------------------

    def of_room(self, room: str) -> list[RoomDispatch]:
        """The room's dispatches, oldest first."""
        return list(self._by_room.get(room, {}).values())

    def add(self, room: Room, agent_name: str = "", metadata: str = "") -> RoomDispatch:
        """Add a dispatch to ``room`` and launch its jobs: the room's, and its participants'.

        Returns:
            The dispatch; its jobs are being offered.
        """
        info = agent_dispatch.AgentDispatch(
            id=new_sid("AD"), agent_name=agent_name, room=room.name,
            metadata=metadata,
            state=agent_dispatch.AgentDispatchState(created_at=time.time_ns()),
        )
        dispatch = RoomDispatch(info)
        self._by_room.setdefault(room.name, {})[dispatch.id] = dispatch
        if agent_name or self._dispatcher.has_worker("", agent_pb.JT_ROOM):
            self._launch(dispatch, room, agent_pb.JT_ROOM)
        published = self._publishers.get(room.name, set())
        for participant in list(room.participants.values()):
            self._launch_target(dispatch, room, participant, agent_pb.JT_PARTICIPANT)
            if participant.sid in published:
                self._launch_target(dispatch, room, participant, agent_pb.JT_PUBLISHER)
        return dispatch

    async def remove(self, room: str, dispatch_id: str) -> RoomDispatch | None:
        """Delete a dispatch: withdraw its offers and end its running jobs, as LiveKit does.

        Returns:
            The dispatch, or ``None`` if the room has no such dispatch.
        """
        dispatch = self._by_room.get(room, {}).pop(dispatch_id, None)
        if dispatch is None:
            return None
        await _withdraw(dispatch.offers)
        dispatcher = self._dispatcher
        for record in list(dispatcher.jobs.values()):
            running = record.worker_id and not record.ended and not record.terminated
            if record.job.dispatch_id == dispatch_id and running:
                with contextlib.suppress(KeyError):  # its worker is gone: nothing to end
                    await dispatcher.terminate(record.id)
        return dispatch

    async def forget_room(self, room: str) -> None:
        """The room was deleted: its dispatches go with it (their offers are withdrawn)."""
        self._publishers.pop(room, None)
        for dispatch in self._by_room.pop(room, {}).values():
            await _withdraw(dispatch.offers)

    async def aclose(self) -> None:
        """Withdraw every offer still out (the server is closing)."""
        await _withdraw([
            task for room in self._by_room.values() for d in room.values() for task in d.offers
        ])

    # -- what the rooms tell -------------------------------------------------------------------

    def room_created(self, room: Room) -> None:
        """Give a new room its dispatches: those its configuration names, else the default.

        A room that :meth:`AgentDispatcher.dispatch` already sent a job to before it existed
        gets none, as a LiveKit room whose configuration names its agents gets no default.
        """
        if self._dispatcher.dispatched_to(room.name):
            return
        configured = room.agents or [agent_dispatch.RoomAgentDispatch()]
        for agent in configured:
            self.add(room, agent.agent_name, agent.metadata)

    def participant_joined(self, room: Room, participant: Participant) -> None:
        """A participant job for each of the room's dispatches."""
        for dispatch in self.of_room(room.name):
            self._launch_target(dispatch, room, participant, agent_pb.JT_PARTICIPANT)

    def participant_published(self, room: Room, participant: Participant) -> None:
        """A publisher job for each of the room's dispatches, the first time only."""
        published = self._publishers.setdefault(room.name, set())
        if participant.sid in published:
            return
        published.add(participant.sid)
        for dispatch in self.of_room(room.name):
            self._launch_target(dispatch, room, participant, agent_pb.JT_PUBLISHER)

    # -- launching -----------------------------------------------------------------------------

    def _launch_target(
        self, dispatch: RoomDispatch, room: Room, participant: Participant,
        job_type: agent_pb.JobType,
    ) -> None:
        if participant.kind in _DEPENDENT_KINDS:
            return
        if not self._dispatcher.has_worker(dispatch.agent_name, job_type):
            return  # like LiveKit, launch nothing while no worker takes this job type
        self._launch(dispatch, room, job_type, participant.info())

    def _launch(
        self, dispatch: RoomDispatch, room: Room, job_type: agent_pb.JobType,
        participant: models.ParticipantInfo | None = None,
    ) -> None:
        task = asyncio.get_running_loop().create_task(
            self._offer(dispatch, room.info(), job_type, participant)
        )
        dispatch.offers.add(task)
        task.add_done_callback(dispatch.offers.discard)

    async def _offer(
        self, dispatch: RoomDispatch, room: models.Room, job_type: agent_pb.JobType,
        participant: models.ParticipantInfo | None,
    ) -> None:
        # Imported here: agents.py imports this module.
        from flowkit.testing.livekit_server.agents import DispatchError

        info = dispatch.info
        try:
            await self._dispatcher.dispatch(
                room.name, info.agent_name, info.metadata, job_type=job_type,
                participant=participant, room_info=room, dispatch_id=info.id,
            )
        except DispatchError as error:  # LiveKit keeps the dispatch too; the job never starts
            log.warning("dispatch %s: %s", info.id, error)


async def _withdraw(tasks: Iterable[asyncio.Task[None]]) -> None:
    """Cancel offers no worker has taken yet, and wait until they stop."""
    pending = [task for task in tasks if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
