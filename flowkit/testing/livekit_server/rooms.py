"""Room and participant state of the test LiveKit server, and what the room relays.

A room knows its participants; each participant is reached through a
:class:`ParticipantLink` (its signal connection and its peer connections). The room decides
who gets what: participant updates to everyone, tracks to every other participant (all
clients auto-subscribe here) until their publisher unpublishes them or leaves, data packets
to the others or to the named destinations. Listeners on :class:`Rooms` hear of rooms
created, participants joining and tracks arriving (agent dispatch hooks in there).

A participant whose link is a :class:`MovableLink` can be moved to another room
(:meth:`Room.move`, what ``RoomService.MoveParticipant`` does): the room's others see it
leave, the destination's see it join, with its published tracks.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from aiortc import MediaStreamTrack
from livekit.protocol import agent_dispatch, models, rtc

__all__ = [
    "MovableLink",
    "Participant",
    "ParticipantLink",
    "PublishedTrack",
    "Room",
    "Rooms",
    "new_sid",
]


def new_sid(prefix: str) -> str:
    """A fresh LiveKit-style id, e.g. ``PA_3kTq9x2mZpLw``."""
    return f"{prefix}_{secrets.token_urlsafe(9).replace('-', 'x').replace('_', 'y')}"


class ParticipantLink(Protocol):
    """How the room reaches one participant (implemented by the signal session)."""

    def send_signal(self, response: rtc.SignalResponse) -> None:
        """Queue a signal message for the participant's WebSocket."""

    def subscribe_track(self, publisher: Participant, track: PublishedTrack) -> None:
        """Start sending a published track to this participant."""

    def unsubscribe_track(self, publisher: Participant, track: PublishedTrack) -> None:
        """Stop sending a track (its publisher unpublished it or left)."""

    def send_data(self, label: str, payload: bytes) -> None:
        """Send a serialized DataPacket on the subscriber data channel named ``label``."""

    def close(self, reason: int) -> None:
        """Ask the participant to leave (sends a LeaveRequest, then closes the socket)."""


@runtime_checkable
class MovableLink(Protocol):
    """A participant link that can follow its participant into another room.

    The simulated SIP calls are (their far end is a phone, not a client holding a token for
    one room); an SDK client's WebRTC session is not: LiveKit would send it a RoomMoved
    signal with a new token, which the test server does not.
    """

    def move_to(self, destination: Room) -> None:
        """Move the link's participant from its room to ``destination`` (:meth:`Room.move`)."""


@dataclass
class PublishedTrack:
    """A track a participant publishes: its info, and its media once it arrives."""

    info: models.TrackInfo
    cid: str
    media: MediaStreamTrack | None = None


@dataclass
class Participant:
    """One participant's state, as ParticipantInfo describes it."""

    sid: str
    identity: str
    link: ParticipantLink
    name: str = ""
    metadata: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    kind: int = models.ParticipantInfo.Kind.STANDARD
    client_protocol: int = 0
    joined_at: float = field(default_factory=time.time)
    tracks: dict[str, PublishedTrack] = field(default_factory=dict)
    state: int = models.ParticipantInfo.State.JOINED
    version: int = 0
    # Why it left (set when it leaves; clients read it from the DISCONNECTED update).
    disconnect_reason: int = models.DisconnectReason.UNKNOWN_REASON

    def info(self) -> models.ParticipantInfo:
        """The ParticipantInfo clients see for this participant."""
        return models.ParticipantInfo(
            sid=self.sid,
            identity=self.identity,
            name=self.name,
            metadata=self.metadata,
            attributes=self.attributes,
            kind=self.kind,  # type: ignore[arg-type]
            state=self.state,  # type: ignore[arg-type]
            disconnect_reason=self.disconnect_reason,  # type: ignore[arg-type]
            joined_at=int(self.joined_at),
            joined_at_ms=int(self.joined_at * 1000),
            version=self.version,
            client_protocol=self.client_protocol,
            is_publisher=any(t.media is not None for t in self.tracks.values()),
            permission=models.ParticipantPermission(
                can_subscribe=True,
                can_publish=True,
                can_publish_data=True,
                can_update_metadata=True,
                agent=self.kind == models.ParticipantInfo.Kind.AGENT,
            ),
            tracks=[t.info for t in self.tracks.values() if t.media is not None],
        )

    def touch(self) -> None:
        """Bump the info version (clients ignore updates older than what they have)."""
        self.version += 1


ParticipantListener = Callable[["Room", Participant], None]
"""Told ``(room, participant)``: a participant joined, or one of its tracks arrived."""


@dataclass
class Room:
    """A room: its participants, keyed by identity.

    ``joined_listeners`` and ``published_listeners`` are shared with the :class:`Rooms`
    that created the room (see :meth:`Rooms.on_participant_joined`).
    """

    name: str
    sid: str = field(default_factory=lambda: new_sid("RM"))
    metadata: str = ""
    created_at: float = field(default_factory=time.time)
    participants: dict[str, Participant] = field(default_factory=dict)
    # The agents its configuration names (a join token's RoomConfiguration, or CreateRoom's
    # request); none: the default, automatic dispatch.
    agents: list[agent_dispatch.RoomAgentDispatch] = field(default_factory=list)
    joined_listeners: list[ParticipantListener] = field(default_factory=list, repr=False)
    published_listeners: list[ParticipantListener] = field(default_factory=list, repr=False)

    def info(self) -> models.Room:
        """The Room message clients see."""
        return models.Room(
            sid=self.sid,
            name=self.name,
            metadata=self.metadata,
            creation_time=int(self.created_at),
            creation_time_ms=int(self.created_at * 1000),
            num_participants=len(self.participants),
            empty_timeout=300,
            departure_timeout=20,
        )

    def others(self, participant: Participant) -> list[Participant]:
        """Everyone in the room but ``participant``."""
        return [p for p in self.participants.values() if p.sid != participant.sid]

    def join(self, participant: Participant) -> None:
        """Add a participant and tell the others; an identity already present is replaced."""
        old = self.participants.get(participant.identity)
        if old is not None:
            self.leave(old, models.DisconnectReason.DUPLICATE_IDENTITY)
            old.link.close(models.DisconnectReason.DUPLICATE_IDENTITY)
        self.participants[participant.identity] = participant
        self.broadcast_update(participant)
        for listener in list(self.joined_listeners):
            listener(self, participant)

    def leave(
        self, participant: Participant, reason: int = models.DisconnectReason.UNKNOWN_REASON
    ) -> None:
        """Remove a participant (if still the current one), tell the others, stop its tracks.

        ``reason`` (a ``DisconnectReason``) goes in the DISCONNECTED update, as LiveKit sends
        it; a move gives none.
        """
        if self.participants.get(participant.identity) is not participant:
            return
        del self.participants[participant.identity]
        participant.state = models.ParticipantInfo.State.DISCONNECTED
        participant.disconnect_reason = reason
        participant.touch()
        self.broadcast_update(participant)
        for track in participant.tracks.values():
            self._stop_relaying(participant, track)

    def move(self, participant: Participant, destination: Room) -> None:
        """Move a participant of this room to ``destination``, with its published tracks.

        What LiveKit documents for MoveParticipant: to the others here it leaves (a
        DISCONNECTED update, and the relays of its tracks to them stop), to the destination's
        it joins (a new sid, the same identity, kind, name, metadata and attributes; its
        published tracks are announced and relayed to them). The participant stops being
        sent this room's tracks and is offered the destination's. The joined listeners run,
        and the published listeners too if it publishes a track, as for any participant
        joining the destination. The link is not told to leave: the caller updates the
        link's own idea of its room (see :meth:`MovableLink.move_to`).

        Raises:
            ValueError: The participant is not this room's, the destination is this room, or
                its identity is taken there.
        """
        if self.participants.get(participant.identity) is not participant:
            raise ValueError(f"{participant.identity!r} is not a participant of room {self.name!r}")
        if destination is self:
            raise ValueError(f"{participant.identity!r} is in room {self.name!r} already")
        if participant.identity in destination.participants:
            raise ValueError(
                f"room {destination.name!r} has a participant {participant.identity!r} already"
            )
        self.leave(participant)
        for other in self.participants.values():
            for track in other.tracks.values():
                if track.media is not None:
                    participant.link.unsubscribe_track(other, track)
        # A join, to the destination's clients: a new sid, so none of them mistakes it for
        # a session they knew, and the state and join time of a participant just arrived.
        participant.sid = new_sid("PA")
        participant.state = models.ParticipantInfo.State.JOINED
        participant.disconnect_reason = models.DisconnectReason.UNKNOWN_REASON
        participant.joined_at = time.time()
        participant.touch()
        destination.join(participant)
        published = [track for track in participant.tracks.values() if track.media is not None]
        for track in published:
            for other in destination.others(participant):
                other.link.subscribe_track(participant, track)
        if published:
            for listener in list(destination.published_listeners):
                listener(destination, participant)
        for other in destination.others(participant):
            for track in other.tracks.values():
                if track.media is not None:
                    participant.link.subscribe_track(other, track)

    def broadcast_update(self, participant: Participant, *, include_self: bool = False) -> None:
        """Send a ParticipantUpdate about ``participant`` to the others (and itself)."""
        update = rtc.SignalResponse(update=rtc.ParticipantUpdate(participants=[participant.info()]))
        for other in self.participants.values():
            if other is not participant or include_self:
                other.link.send_signal(update)

    def update_participant(
        self,
        participant: Participant,
        *,
        name: str = "",
        metadata: str = "",
        attributes: Mapping[str, str] | None = None,
    ) -> None:
        """Change a participant's name, metadata or attributes and tell everyone, itself too.

        LiveKit's rules, whoever asks (the participant's own UpdateParticipantMetadata, or
        RoomService.UpdateParticipant): an empty name or metadata leaves it as it is; the
        attributes are merged in, and a key whose value is empty is deleted. An update that
        changes nothing is not sent to anyone, as LiveKit sends none.
        """
        before = (participant.name, participant.metadata, dict(participant.attributes))
        if metadata:
            participant.metadata = metadata
        if name:
            participant.name = name
        for key, value in (attributes or {}).items():
            if value:
                participant.attributes[key] = value
            else:
                participant.attributes.pop(key, None)
        if (participant.name, participant.metadata, participant.attributes) == before:
            return
        participant.touch()
        # The participant hears of it too: after an admin's update, that is the only way its
        # SDK's local participant learns the new values.
        self.broadcast_update(participant, include_self=True)

    def track_arrived(self, publisher: Participant, track: PublishedTrack) -> None:
        """A published track's media arrived: announce it and send it to everyone else."""
        publisher.touch()
        self.broadcast_update(publisher, include_self=True)
        for other in self.others(publisher):
            other.link.subscribe_track(publisher, track)
        for listener in list(self.published_listeners):
            listener(self, publisher)

    def unpublish(self, publisher: Participant, track_sid: str) -> PublishedTrack | None:
        """A participant stopped publishing a track: announce it and stop relaying it.

        Returns:
            The track, or None when the participant publishes no track ``track_sid``.
        """
        track = publisher.tracks.pop(track_sid, None)
        if track is None:
            return None
        publisher.touch()
        # The update lists the publisher's tracks without this one: that is how clients
        # learn it was unpublished.
        self.broadcast_update(publisher, include_self=True)
        self._stop_relaying(publisher, track)
        return track

    def _stop_relaying(self, publisher: Participant, track: PublishedTrack) -> None:
        if track.media is None:
            return  # it never arrived, so nobody was sent it
        for other in self.others(publisher):
            other.link.unsubscribe_track(publisher, track)

    def relay_data(self, sender: Participant, label: str, packet: models.DataPacket) -> None:
        """Relay a data packet to the others, or only to its destination identities.

        Whatever its kind (user data, SIP DTMF, text stream, RPC), the packet is stamped with
        its sender's identity, as LiveKit's server stamps DTMF and user data: a receiving SDK
        names the sender from it, and drops a DTMF packet whose sender it does not know.
        """
        packet.participant_identity = sender.identity
        packet.participant_sid = sender.sid
        destinations = set(packet.destination_identities)
        payload = packet.SerializeToString()
        for other in self.others(sender):
            if not destinations or other.identity in destinations:
                other.link.send_data(label, payload)


RoomListener = Callable[[Room], None]


class Rooms:
    """Every room of one server, created explicitly or on first join."""

    def __init__(self) -> None:
        self._rooms: dict[str, Room] = {}
        self._created_listeners: list[RoomListener] = []
        self._joined_listeners: list[ParticipantListener] = []
        self._published_listeners: list[ParticipantListener] = []

    def __contains__(self, name: object) -> bool:
        return name in self._rooms

    def get(self, name: str) -> Room | None:
        """The room called ``name``, or None."""
        return self._rooms.get(name)

    def list(self) -> list[Room]:
        """All rooms, oldest first."""
        return list(self._rooms.values())

    def create(
        self, name: str, *, metadata: str = "",
        agents: Iterable[agent_dispatch.RoomAgentDispatch] = (),
    ) -> Room:
        """Create a room (or return the existing one) and tell the room-created listeners.

        Args:
            name: The room's name.
            metadata: Its metadata, if this call creates it.
            agents: The agents its configuration names, if this call creates it (as in
                LiveKit, a room's configuration applies when the room is created).
        """
        room = self._rooms.get(name)
        if room is not None:
            return room
        room = Room(
            name=name, metadata=metadata, agents=list(agents),
            joined_listeners=self._joined_listeners,
            published_listeners=self._published_listeners,
        )
        self._rooms[name] = room
        for listener in list(self._created_listeners):
            listener(room)
        return room

    def delete(self, name: str) -> None:
        """Remove a room, asking its participants to leave."""
        room = self._rooms.pop(name, None)
        if room is None:
            return
        for participant in list(room.participants.values()):
            participant.link.close(models.DisconnectReason.ROOM_DELETED)

    def on_room_created(self, listener: RoomListener) -> None:
        """Call ``listener(room)`` whenever a room is created (agent dispatch hooks in here)."""
        self._created_listeners.append(listener)

    def on_participant_joined(self, listener: ParticipantListener) -> None:
        """Call ``listener(room, participant)`` whenever a participant joins one of the rooms."""
        self._joined_listeners.append(listener)

    def on_track_published(self, listener: ParticipantListener) -> None:
        """Call ``listener(room, publisher)`` whenever a published track's media arrives.

        That is when LiveKit counts a track as published (and when others can subscribe).
        """
        self._published_listeners.append(listener)
