"""The test server's Twirp API: LiveKit's server API, as the ``livekit-api`` client calls it.

A test double of the services a program most often calls on a LiveKit server:

- ``livekit.AgentDispatchService``: ``CreateDispatch``, ``ListDispatch``, ``DeleteDispatch``,
  backed by the server's :class:`~flowkit.testing.livekit_server.agents.AgentDispatcher`
  (``TestLiveKitServer(agents=dispatcher.mount)``). As in LiveKit, creating a dispatch for a
  room that does not exist creates the room, and the dispatch's jobs (the room's, and those
  of the room's participants) are offered at once; deleting a dispatch ends its jobs
  (``JobTermination``). Listing shows every dispatch of the room, the default one too.
- ``livekit.RoomService``: ``CreateRoom`` (with the agents to dispatch), ``ListRooms``,
  ``DeleteRoom``, ``ListParticipants``, ``GetParticipant``, ``UpdateParticipant``,
  ``RemoveParticipant``, ``MoveParticipant``, over the server's rooms. Removing a participant
  or deleting its room sends the SDK client a leave request and closes its connection.
  Updating a participant's name, metadata or attributes (what LiveKit's SIP service does to
  ``sip.callStatus``) tells every client in the room, the participant's own too; its
  ``permission`` is not supported. Moving a participant (a LiveKit Cloud method) moves SIP
  participants only, the simulated calls (an agent-assisted warm transfer's last step: see
  :meth:`TwirpAPI.move_participant`); an SDK client is refused ``unimplemented``.
- ``livekit.SIP``: ``CreateSIPParticipant`` and ``TransferSIPParticipant``, against simulated
  phones rather than a phone network, and the trunk and dispatch-rule methods (create, list,
  delete), kept in memory for inbound calls; :mod:`~flowkit.testing.livekit_server.sip`
  registers them (:meth:`TwirpAPI.add_method`) and says what they do.

Calls are ``POST /twirp/livekit.<Service>/<Method>`` with a protobuf body
(``application/protobuf``, what ``livekit-api`` sends) or a JSON one (``application/json``);
the reply uses the request's encoding. Errors are Twirp's: a JSON ``{"code", "msg"}`` body with
the code's HTTP status, which ``livekit-api`` raises as ``api.TwirpError``, and for a failed SIP
call a ``meta`` object (``sip_status_code``, ``sip_status``, ``sip_transfer_reason``), which
makes it raise ``api.SipCallError``.

Authorization is LiveKit's: a Bearer JWT signed with the server's key pair, whose video grant
holds ``roomAdmin`` for the request's room (the dispatch calls and the participant calls;
MoveParticipant also needs ``destinationRoom`` naming the request's ``destination_room``),
``roomCreate`` (CreateRoom, DeleteRoom) or ``roomList`` (ListRooms), and whose SIP grant holds
``call`` (CreateSIPParticipant; TransferSIPParticipant needs it and ``roomAdmin``) or
``admin`` (the trunk and dispatch-rule methods). Like LiveKit, a missing grant is
``unauthenticated`` (HTTP 401), not ``permission_denied``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import DecodeError, Message
from livekit import api
from livekit.protocol import agent_dispatch, models
from livekit.protocol import room as room_pb
from livekit.protocol import sip as sip_pb

from flowkit.testing.livekit_server.agents import DISPATCHER_KEY, AgentDispatcher
from flowkit.testing.livekit_server.rooms import MovableLink, Participant, Room
from flowkit.testing.livekit_server.signal import (
    CONFIG_KEY,
    SignalSession,
    authenticate,
    bearer_token,
)

__all__ = [
    "PREFIX",
    "ROOM_ADMIN",
    "SIP_ADMIN",
    "SIP_CALL",
    "TWIRP_KEY",
    "Grant",
    "TwirpAPI",
    "TwirpError",
    "mount",
]

log = logging.getLogger("flowkit.testing.twirp")

PREFIX = "/twirp"
"""Where the services live: ``/twirp/livekit.RoomService/ListRooms``."""

_PROTOBUF = "application/protobuf"
_JSON = "application/json"

# The Twirp spec's HTTP status for each error code. Every code a SIP status maps to is a 4xx
# one, which matters: livekit-api retries a 5xx reply (against LiveKit Cloud's other regions).
_STATUS = {
    "canceled": 408,
    "invalid_argument": 400,
    "malformed": 400,
    "deadline_exceeded": 408,
    "not_found": 404,
    "bad_route": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "unauthenticated": 401,
    "resource_exhausted": 429,
    "failed_precondition": 412,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
}

_SERVICES = {
    service.full_name: service
    for service in (
        agent_dispatch.DESCRIPTOR.services_by_name["AgentDispatchService"],
        room_pb.DESCRIPTOR.services_by_name["RoomService"],
        sip_pb.DESCRIPTOR.services_by_name["SIP"],
    )
}

Claims = api.access_token.Claims


class TwirpError(Exception):
    """A Twirp error reply: its code (``not_found``, ``unauthenticated``...), message and meta.

    Args:
        code: A Twirp error code (a key of the spec's table, e.g. ``resource_exhausted``).
        msg: What went wrong, and the remedy.
        meta: Twirp's error metadata, string to string; LiveKit's SIP service puts the SIP
            status there (``sip_status_code``, ``sip_status``), which ``livekit-api`` reads.
    """

    def __init__(self, code: str, msg: str, meta: Mapping[str, str] | None = None) -> None:
        if code not in _STATUS:
            raise ValueError(f"{code!r} is not a Twirp error code; use one of {', '.join(_STATUS)}")
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.meta = dict(meta or {})

    @property
    def status(self) -> int:
        """The HTTP status the Twirp spec gives this code."""
        return _STATUS[self.code]

    def response(self) -> web.Response:
        """The reply: always JSON, whatever the request's encoding (Twirp's rule)."""
        body: dict[str, object] = {"code": self.code, "msg": self.msg}
        if self.meta:
            body["meta"] = self.meta
        return web.json_response(body, status=self.status)


# -- grants ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    """A grant a method needs: its JWT claim, its ``VideoGrants``/``SIPGrants`` field, its scope.

    Attributes:
        claim: The claim's name in the token (``roomAdmin``, ``call``...).
        field: The field of ``api.VideoGrants`` (or ``api.SIPGrants``) that sets it.
        per_room: The grant must be for the request's room (``VideoGrants.room``).
        sip: It is a SIP grant (``claims.sip``), not a video grant (``claims.video``).
        to_destination: The token's ``destinationRoom`` must also name the request's
            ``destination_room`` (``VideoGrants.destination_room``), as for MoveParticipant.
    """

    claim: str
    field: str
    per_room: bool = False
    sip: bool = False
    to_destination: bool = False

    @property
    def name(self) -> str:
        """How errors name it: ``roomAdmin``, ``SIP call``."""
        return f"SIP {self.claim}" if self.sip else self.claim

    def hint(self, room: str, destination: str = "") -> str:
        """The ``livekit-api`` expression that grants it, e.g. ``SIPGrants(call=True)``."""
        if self.sip:
            return f"SIPGrants({self.field}=True)"
        room_part = f", room={room!r}" if self.per_room else ""
        destination_part = f", destination_room={destination!r}" if self.to_destination else ""
        return f"VideoGrants({self.field}=True{room_part}{destination_part})"


ROOM_ADMIN = Grant("roomAdmin", "room_admin", per_room=True)
"""``roomAdmin`` for the request's room: the dispatch and participant calls."""
SIP_CALL = Grant("call", "call", sip=True)
"""The SIP ``call`` grant: making and transferring calls."""
SIP_ADMIN = Grant("admin", "admin", sip=True)
"""The SIP ``admin`` grant: managing trunks and dispatch rules."""
_CREATE = Grant("roomCreate", "room_create")
_LIST = Grant("roomList", "room_list")
# LiveKit's EnsureDestRoomPermission (pkg/service/auth.go): roomAdmin for the source room,
# and destinationRoom equal to the request's destination, checked together.
_MOVE = Grant("roomAdmin", "room_admin", per_room=True, to_destination=True)


def _check_grants(
    claims: Claims | None,
    grants: tuple[Grant, ...],
    method: str,
    room: str,
    destination: str = "",
) -> None:
    """Raise ``unauthenticated`` unless the token holds every grant (for ``room``, if scoped).

    ``destination`` is the request's ``destination_room``, for a grant ``to_destination``.
    """
    if claims is None:
        needed = " and ".join(grant.hint(room, destination) for grant in grants)
        raise TwirpError(
            "unauthenticated",
            f"no access token: {method} needs 'Authorization: Bearer <jwt>' with "
            f"{needed}, signed with this server's API key and secret",
        )
    for grant in grants:
        _check_grant(claims, grant, method, room, destination)


def _check_grant(
    claims: Claims, grant: Grant, method: str, room: str, destination: str
) -> None:
    held = claims.sip if grant.sip else claims.video
    hint = grant.hint(room, destination)
    if held is None or not getattr(held, grant.field):
        raise TwirpError(
            "unauthenticated",
            f"permissions denied: {method} needs the {grant.name} grant; "
            f"sign the token with {hint}",
        )
    video = claims.video
    if grant.per_room and video is not None and video.room != room:
        raise TwirpError(
            "unauthenticated",
            f"permissions denied: {method} on room {room!r} needs {grant.claim} for that room, "
            f"and the token's is for room {video.room!r}; sign it with {hint}",
        )
    if grant.to_destination and video is not None and (video.destination_room or "") != (
        destination
    ):
        named = video.destination_room
        held_room = f"the token's names room {named!r}" if named else "the token has none"
        raise TwirpError(
            "unauthenticated",
            f"permissions denied: {method} to room {destination!r} needs the destinationRoom "
            f"grant naming that room, and {held_room}; sign it with {hint}",
        )


def _request_room(message: Message) -> str:
    """The room a request is about ("" for none): ``room``, or ``room_name`` in SIP requests."""
    for field in ("room", "room_name"):
        if field in message.DESCRIPTOR.fields_by_name:
            return str(getattr(message, field))
    return ""


def _request_destination(message: Message) -> str:
    """The room a request moves or forwards a participant to ("" for none)."""
    if isinstance(message, room_pb.MoveParticipantRequest | room_pb.ForwardParticipantRequest):
        return message.destination_room
    return ""


def _claims(request: web.Request) -> Claims | None:
    """The verified claims, None without a token (LiveKit then fails on the grant check)."""
    if not bearer_token(request):
        return None
    try:
        return authenticate(request, request.app[CONFIG_KEY])
    except web.HTTPUnauthorized as refused:
        raise TwirpError("unauthenticated", refused.text or "invalid access token") from None


# -- encoding -------------------------------------------------------------------------------


def _decode(body: bytes, content_type: str, message: Message) -> None:
    """Fill ``message`` from the body; ``malformed`` when it does not decode."""
    name = message.DESCRIPTOR.full_name
    try:
        if content_type == _PROTOBUF:
            message.ParseFromString(body)
        else:
            # Like Twirp's Go servers: unknown JSON fields are ignored, both name styles read.
            json_format.Parse(body.decode("utf-8"), message, ignore_unknown_fields=True)
    except (DecodeError, json_format.ParseError, UnicodeDecodeError) as error:
        raise TwirpError(
            "malformed",
            f"the {content_type} body is not a {name} ({error}); send a serialized {name}, "
            f"or its JSON with Content-Type: {_JSON}",
        ) from None


def _encode(message: Message, content_type: str) -> web.Response:
    """The reply in the request's encoding (JSON as Twirp's Go servers write it)."""
    if content_type == _PROTOBUF:
        return web.Response(body=message.SerializeToString(), content_type=_PROTOBUF)
    text = json_format.MessageToJson(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return web.Response(text=text, content_type=_JSON)


# -- the API --------------------------------------------------------------------------------


Run = Callable[[Any], Awaitable[Message]]
"""A method's implementation: the decoded request in, the reply out (or a TwirpError)."""


@dataclass(frozen=True)
class _Method:
    """An implemented method: the grants it needs and the coroutine that answers it."""

    grants: tuple[Grant, ...]
    run: Run


class TwirpAPI:
    """The Twirp services of one test server application (see the module's docstring).

    Args:
        app: The server's application; its rooms, key pair and (if mounted) agent
            dispatcher are the ones the API works on.
    """

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.rooms = app[CONFIG_KEY].rooms
        dispatch, rooms = "livekit.AgentDispatchService", "livekit.RoomService"
        self._methods: dict[tuple[str, str], _Method] = {
            (dispatch, "CreateDispatch"): _Method((ROOM_ADMIN,), self.create_dispatch),
            (dispatch, "ListDispatch"): _Method((ROOM_ADMIN,), self.list_dispatch),
            (dispatch, "DeleteDispatch"): _Method((ROOM_ADMIN,), self.delete_dispatch),
            (rooms, "CreateRoom"): _Method((_CREATE,), self.create_room),
            (rooms, "ListRooms"): _Method((_LIST,), self.list_rooms),
            (rooms, "DeleteRoom"): _Method((_CREATE,), self.delete_room),
            (rooms, "ListParticipants"): _Method((ROOM_ADMIN,), self.list_participants),
            (rooms, "GetParticipant"): _Method((ROOM_ADMIN,), self.get_participant),
            (rooms, "UpdateParticipant"): _Method((ROOM_ADMIN,), self.update_participant),
            (rooms, "RemoveParticipant"): _Method((ROOM_ADMIN,), self.remove_participant),
            (rooms, "MoveParticipant"): _Method((_MOVE,), self.move_participant),
        }

    def add_method(self, service: str, method: str, run: Run, *grants: Grant) -> None:
        """Serve one more method, e.g. ``("livekit.SIP", "CreateSIPParticipant")``.

        Args:
            service: The protobuf service's full name; it must be one this API routes.
            method: The method's name in that service.
            run: The coroutine that answers it: the request message in, the reply out, or a
                :class:`TwirpError`.
            grants: The grants the token must hold, checked in this order.
        """
        descriptor = _SERVICES.get(service)
        if descriptor is None or method not in descriptor.methods_by_name:
            raise ValueError(
                f"{service}/{method} is not a method of the services this API routes "
                f"({', '.join(_SERVICES)})"
            )
        self._methods[(service, method)] = _Method(grants, run)

    # -- HTTP ---------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        """Any request under ``/twirp/``: a reply, or a Twirp error; never a broken server."""
        try:
            return await self._serve(request)
        except TwirpError as error:
            return error.response()
        except web.HTTPRequestEntityTooLarge as error:
            too_large = f"the request body is too large: {error.text}"
            return TwirpError("invalid_argument", too_large).response()
        except Exception:  # a bug here must reach the client as Twirp JSON, and the log
            log.exception("Twirp call %s %s failed", request.method, request.path)
            return TwirpError(
                "internal", f"the test server failed on {request.path}: its log has the traceback"
            ).response()

    async def _serve(self, request: web.Request) -> web.Response:
        # LiveKit checks the token before routing, and the grant after decoding the request.
        claims = _claims(request)
        method, implemented = self._route(request)
        content_type = request.content_type
        if content_type not in (_PROTOBUF, _JSON):
            raise TwirpError(
                "bad_route",
                f"unexpected Content-Type {content_type!r} for {request.path}: "
                f"send {_PROTOBUF} or {_JSON}",
            )
        message = message_factory.GetMessageClass(method.input_type)()
        _decode(await request.read(), content_type, message)
        _check_grants(
            claims, implemented.grants, method.name, _request_room(message),
            _request_destination(message),
        )
        return _encode(await implemented.run(message), content_type)

    def _route(self, request: web.Request) -> tuple[MethodDescriptor, _Method]:
        if request.method != "POST":
            raise TwirpError(
                "bad_route", f"{request.method} {request.path}: Twirp calls are POST requests"
            )
        service_name, _, method_name = request.match_info["route"].partition("/")
        service = _SERVICES.get(service_name)
        if service is None or "/" in method_name:
            served = ", ".join(f"{PREFIX}/{name}/<Method>" for name in _SERVICES)
            raise TwirpError(
                "bad_route", f"no Twirp service at {request.path}: this server serves {served}"
            )
        method = service.methods_by_name.get(method_name)
        if method is None:
            raise TwirpError(
                "bad_route",
                f"{service.full_name} has no method {method_name!r}; "
                f"its methods are {', '.join(service.methods_by_name)}",
            )
        implemented = self._methods.get((service.full_name, method.name))
        if implemented is None:
            mine = ", ".join(m for s, m in self._methods if s == service.full_name)
            raise TwirpError(
                "unimplemented",
                f"{service.full_name}/{method.name} is not implemented by the flowkit test "
                f"server; it implements {mine or 'none of its methods'}",
            )
        return method, implemented

    # -- lookups ------------------------------------------------------------------------------

    def require_room(self, name: str) -> Room:
        """The room called ``name``; ``not_found`` (LiveKit's message) when there is none."""
        room = self.rooms.get(name)
        if room is None:
            raise TwirpError(
                "not_found",
                f"requested room does not exist: {name!r} (create it with CreateRoom, or by "
                "joining it)",
            )
        return room

    def require_participant(self, room: Room, identity: str) -> Participant:
        """The participant ``identity`` of ``room``; ``not_found`` naming who is there."""
        participant = room.participants.get(identity)
        if participant is None:
            present = ", ".join(room.participants) or "nobody"
            raise TwirpError(
                "not_found",
                f"participant not found: {identity!r} is not in room {room.name!r} "
                f"(present: {present})",
            )
        return participant

    def _dispatcher(self) -> AgentDispatcher:
        dispatcher = self.app.get(DISPATCHER_KEY)
        if dispatcher is None:
            raise TwirpError(
                "unimplemented",
                "this test server has no agent dispatcher: start it with "
                "TestLiveKitServer(agents=AgentDispatcher().mount) to use AgentDispatchService",
            )
        return dispatcher

    # -- AgentDispatchService -----------------------------------------------------------------

    async def create_dispatch(
        self, request: agent_dispatch.CreateAgentDispatchRequest
    ) -> agent_dispatch.AgentDispatch:
        """Add a dispatch to the room and offer its jobs to the workers named ``agent_name``."""
        dispatcher = self._dispatcher()
        if not request.room:
            raise TwirpError("invalid_argument", "CreateDispatch needs a room name: set room")
        # LiveKit creates the room here (room.auto_create is on by default), with its
        # default dispatch to unnamed workers.
        room = self.rooms.create(request.room)
        dispatch = dispatcher.room_dispatches.add(room, request.agent_name, request.metadata)
        return self._with_jobs(dispatch.info)

    async def list_dispatch(
        self, request: agent_dispatch.ListAgentDispatchRequest
    ) -> agent_dispatch.ListAgentDispatchResponse:
        """The room's dispatches (or only ``dispatch_id``), with their jobs."""
        dispatcher = self._dispatcher()
        self.require_room(request.room)
        return agent_dispatch.ListAgentDispatchResponse(agent_dispatches=[
            self._with_jobs(dispatch.info)
            for dispatch in dispatcher.room_dispatches.of_room(request.room)
            if not request.dispatch_id or dispatch.id == request.dispatch_id
        ])

    async def delete_dispatch(
        self, request: agent_dispatch.DeleteAgentDispatchRequest
    ) -> agent_dispatch.AgentDispatch:
        """Forget a dispatch, withdraw its pending offers and end its jobs, as LiveKit does."""
        dispatcher = self._dispatcher()
        self.require_room(request.room)
        dispatch = await dispatcher.room_dispatches.remove(request.room, request.dispatch_id)
        if dispatch is None:
            raise TwirpError(
                "not_found",
                f"dispatch ID not found: {request.dispatch_id!r} in room {request.room!r} "
                "(ListDispatch shows the room's dispatches)",
            )
        return self._with_jobs(dispatch.info)

    def _with_jobs(self, info: agent_dispatch.AgentDispatch) -> agent_dispatch.AgentDispatch:
        """A copy of ``info`` whose state lists its jobs as they are now."""
        reply = agent_dispatch.AgentDispatch()
        reply.CopyFrom(info)
        dispatcher = self.app.get(DISPATCHER_KEY)
        for record in dispatcher.jobs.values() if dispatcher is not None else ():
            if record.job.dispatch_id == info.id:
                job = reply.state.jobs.add()
                job.CopyFrom(record.job)
                job.state.status = record.status
                job.state.error = record.error
        return reply

    # -- RoomService --------------------------------------------------------------------------

    async def create_room(self, request: room_pb.CreateRoomRequest) -> models.Room:
        """Create the room (or return the one there is, as LiveKit does); room hooks run.

        ``agents`` are the new room's dispatches (instead of the default one).
        """
        if not request.name:
            raise TwirpError("invalid_argument", "CreateRoom needs a room name: set name")
        room = self.rooms.create(request.name, metadata=request.metadata, agents=request.agents)
        return room.info()

    async def list_rooms(self, request: room_pb.ListRoomsRequest) -> room_pb.ListRoomsResponse:
        """Every room, or only those named."""
        names = set(request.names)
        return room_pb.ListRoomsResponse(
            rooms=[room.info() for room in self.rooms.list() if not names or room.name in names]
        )

    async def delete_room(self, request: room_pb.DeleteRoomRequest) -> room_pb.DeleteRoomResponse:
        """Close the room: its participants are asked to leave, its dispatches go with it."""
        room = self.require_room(request.room)
        self.rooms.delete(room.name)
        dispatcher = self.app.get(DISPATCHER_KEY)
        if dispatcher is not None:
            await dispatcher.room_dispatches.forget_room(room.name)
        return room_pb.DeleteRoomResponse()

    async def list_participants(
        self, request: room_pb.ListParticipantsRequest
    ) -> room_pb.ListParticipantsResponse:
        """The participants in the room."""
        room = self.require_room(request.room)
        return room_pb.ListParticipantsResponse(
            participants=[p.info() for p in room.participants.values()]
        )

    async def get_participant(
        self, request: room_pb.RoomParticipantIdentity
    ) -> models.ParticipantInfo:
        """One participant of the room."""
        return self.require_participant(self.require_room(request.room), request.identity).info()

    async def update_participant(
        self, request: room_pb.UpdateParticipantRequest
    ) -> models.ParticipantInfo:
        """Change a participant's name, metadata or attributes, as LiveKit does.

        The attributes are merged into the participant's, a key with an empty value is
        deleted; an empty name or metadata is left as it is. Every client in the room, the
        participant's own too, gets the update (``participant_attributes_changed`` in the SDK).
        """
        if request.HasField("permission"):
            # Changing a permission means more than a new ParticipantInfo (LiveKit unpublishes
            # and unsubscribes what it no longer allows): refused, rather than half done.
            raise TwirpError(
                "unimplemented",
                "UpdateParticipant's permission is not implemented by the flowkit test server "
                "(its participants may always publish, subscribe and publish data): leave "
                "permission unset; name, metadata and attributes are supported",
            )
        room = self.require_room(request.room)
        participant = self.require_participant(room, request.identity)
        room.update_participant(
            participant,
            name=request.name,
            metadata=request.metadata,
            attributes=request.attributes,
        )
        return participant.info()

    async def remove_participant(
        self, request: room_pb.RoomParticipantIdentity
    ) -> room_pb.RemoveParticipantResponse:
        """Take the participant out of the room and disconnect its client."""
        room = self.require_room(request.room)
        participant = self.require_participant(room, request.identity)
        # The others hear of it now, not when the socket closes.
        room.leave(participant, models.DisconnectReason.PARTICIPANT_REMOVED)
        participant.link.close(models.DisconnectReason.PARTICIPANT_REMOVED)
        return room_pb.RemoveParticipantResponse()

    async def move_participant(
        self, request: room_pb.MoveParticipantRequest
    ) -> room_pb.MoveParticipantResponse:
        """Move a SIP participant to ``destination_room``: it leaves its room and joins that one.

        LiveKit Cloud's method (the open-source server answers "not implemented"), as its API
        documents it: the participant is removed from its room and added to the destination,
        and the others see it disconnect from one and join the other. Here that is done for
        the participants whose link is a :class:`~.rooms.MovableLink`, the simulated SIP
        calls (dialled or inbound), which is what an agent-assisted warm transfer moves: the
        human's call, dialled into a private consultation room, into the caller's room. The
        source room's clients get a DISCONNECTED update (no ``DisconnectReason``); the
        destination's see it join (new sid, same identity, kind, name, metadata and
        attributes, its ``sip.callStatus`` unchanged) with its microphone track, relayed to
        them; the phone hears the destination from then on (see
        :meth:`~.sip.call.SimulatedCall.move_to`). The destination room is created if there
        is none, as a join creates it.

        Refused, with LiveKit's codes: the same room as destination (``invalid_argument``,
        checked first, as LiveKit's service does), an unknown room or identity
        (``not_found``), no ``destination_room`` (``invalid_argument``); and, this server's
        choice, an identity already in the destination (``already_exists``: a join would
        replace that participant, a move does not). An SDK client (WebRTC) is refused
        ``unimplemented``: LiveKit would send it a RoomMoved signal with a token for the
        destination and move its WebRTC session, which this server does not do; reconnect
        such a client to the destination instead.
        """
        identity, destination_name = request.identity, request.destination_room
        if request.room == destination_name:
            raise TwirpError(
                "invalid_argument",
                f"destination room cannot be the same as source room ({request.room!r}): set "
                f"destination_room to the room to move {identity!r} to",
            )
        source = self.require_room(request.room)
        participant = self.require_participant(source, identity)
        if not destination_name:
            raise TwirpError(
                "invalid_argument",
                f"no room name: set destination_room to the room to move {identity!r} to",
            )
        link = participant.link
        if not isinstance(link, MovableLink):
            raise TwirpError("unimplemented", _not_movable(participant, source, destination_name))
        destination = self.rooms.get(destination_name)
        if destination is not None and identity in destination.participants:
            raise TwirpError(
                "already_exists",
                f"a participant with the same identity is already in the destination room: "
                f"{identity!r} is in room {destination_name!r}; remove it there first "
                "(RemoveParticipant), or dial the call with another participant_identity",
            )
        link.move_to(self.rooms.create(destination_name))
        return room_pb.MoveParticipantResponse()


def _not_movable(participant: Participant, source: Room, destination: str) -> str:
    """Why MoveParticipant cannot move ``participant``, and what to do instead."""
    kind = models.ParticipantInfo.Kind.Name(participant.kind)
    if isinstance(participant.link, SignalSession):
        what = (
            f"an SDK client (kind {kind}, connected over WebRTC); LiveKit would send it a "
            f"RoomMoved signal with a token for {destination!r} and move its session, which "
            f"this server does not simulate. Connect the client to {destination!r} with a "
            f"token for that room instead (and disconnect it from {source.name!r})"
        )
    else:
        what = (
            f"a participant whose link ({type(participant.link).__name__}) does not "
            "implement rooms.MovableLink (move_to)"
        )
    return (
        f"MoveParticipant is implemented by the flowkit test server for SIP participants only "
        f"(the simulated calls of CreateSIPParticipant and server.sip.call_in): "
        f"{participant.identity!r} in room {source.name!r} is {what}"
    )


TWIRP_KEY = web.AppKey("flowkit_twirp_api", TwirpAPI)
"""Where :func:`mount` puts the :class:`TwirpAPI` in the application."""


def mount(app: web.Application) -> TwirpAPI:
    """Serve the Twirp API under ``/twirp/`` on the test server's application.

    The application must hold the server's config (``create_app`` sets it). The agent
    dispatcher is looked up on each call, so it may be mounted before or after this.

    Returns:
        The API, also stored as ``app[TWIRP_KEY]``.
    """
    twirp = TwirpAPI(app)
    app[TWIRP_KEY] = twirp
    app.router.add_route("*", PREFIX + "/{route:.*}", twirp.handle)

    return twirp
