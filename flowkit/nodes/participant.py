"""A room participant followed as messages: present or gone, and their attributes.

LiveKit participants carry attributes (string pairs) that their client, the server's API or
LiveKit's own services set and change while the call goes on. On a phone call, LiveKit's SIP
service keeps the call's state in ``sip.callStatus`` (:data:`~flowkit.messages.SIP_CALL_STATUS`):
``dialing`` and ``ringing`` until the callee picks up, then ``active``, and ``hangup`` at
the end. :class:`ParticipantWatch` reads a participant through the job's room I/O
(:class:`~flowkit.room_io.ParticipantUpdates`) and sends a
:class:`~flowkit.messages.ParticipantUpdate` when the participant is first seen, after every
change of their attributes, and when they leave.

Link it to :class:`~flowkit.nodes.amd.AnsweringMachineDetector`'s ``participant`` input and
the detector listens only once the call is answered, so a ringback tone or a carrier's
announcement is not taken for the greeting; or to a function node of your own that reacts
to an attribute a front end sets.

An I/O that follows no participants (an offline run) is not an error: the node then ends at
once and sends nothing, so the same graph runs everywhere.
"""

from __future__ import annotations

import pydantic

from flowkit.messages import ParticipantUpdate
from flowkit.node import Node, NodeParams
from flowkit.nodes.room import room_io
from flowkit.policy import ErrorPolicy
from flowkit.ports import Out
from flowkit.room_io import ParticipantUpdates

__all__ = ["ParticipantWatch"]


class ParticipantWatch(Node):
    """One participant's presence and attributes, as an update at every change."""

    updates: Out[ParticipantUpdate] = Out(
        default=True, doc="the participant when first seen, after each change, and on leaving"
    )
    error_policy = ErrorPolicy.RESTART

    class Params(NodeParams):
        """Parameters of :class:`ParticipantWatch`."""

        participant: str | None = pydantic.Field(
            default=None,
            description="identity; None: the I/O's participant, or whom it hears, or the first",
        )

    def __init__(self, *, participant: str | None = None) -> None:
        """Follow a participant of the job's room.

        Args:
            participant: The identity to follow; ``None``: the participant the job is bound
                to (a participant job's), or the one the room input hears, or the first
                participant that is not an agent.
        """
        super().__init__(participant=participant)

    async def run(self) -> None:
        """Send updates until the room closes (at once when the I/O follows no one)."""
        params = self.params
        assert isinstance(params, ParticipantWatch.Params)
        io = room_io(self)
        if not isinstance(io, ParticipantUpdates):
            self.ctx.logger.debug(
                "the room I/O (%s) follows no participants; no participant updates",
                type(io).__name__,
            )
            return
        async for update in io.participant_updates(params.participant):
            self.updates.send(update)
