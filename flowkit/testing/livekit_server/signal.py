"""The ``/rtc`` WebSocket: LiveKit's signal protocol, one binary protobuf per frame.

The client sends SignalRequest messages, the server SignalResponse messages. The first
server message is the JoinResponse; then the server offers the subscriber connection,
answers the client's publisher offers, trickles nothing (aiortc puts its candidates in the
SDP) and takes the client's trickled candidates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from aiohttp import WSMsgType, web
from aiortc import MediaStreamTrack
from livekit import api
from livekit.protocol import models, rtc

from flowkit.testing.livekit_server.media import MediaSession
from flowkit.testing.livekit_server.rooms import (
    Participant,
    PublishedTrack,
    Room,
    Rooms,
    new_sid,
)

__all__ = ["SERVER_VERSION", "ServerConfig", "SignalSession", "authenticate", "handle_rtc"]

logger = logging.getLogger("flowkit.testing.livekit_server")

SERVER_VERSION = "1.9.0"
PROTOCOL_VERSION = 16
PING_INTERVAL = 5
PING_TIMEOUT = 15

_KINDS = {
    "agent": models.ParticipantInfo.Kind.AGENT,
    "sip": models.ParticipantInfo.Kind.SIP,
    "egress": models.ParticipantInfo.Kind.EGRESS,
    "ingress": models.ParticipantInfo.Kind.INGRESS,
}


@dataclass(frozen=True)
class ServerConfig:
    """What the handlers need: the rooms and the API key pair that signs tokens."""

    rooms: Rooms
    api_key: str
    api_secret: str


CONFIG_KEY = web.AppKey("flowkit_livekit_config", ServerConfig)


def bearer_token(request: web.Request) -> str | None:
    """The JWT from ``Authorization: Bearer`` or the ``access_token`` query parameter."""
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.query.get("access_token")


def authenticate(request: web.Request, config: ServerConfig) -> api.access_token.Claims:
    """Verify the request's token; raise HTTPUnauthorized naming the problem otherwise."""
    token = bearer_token(request)
    if not token:
        raise web.HTTPUnauthorized(
            text="no access token: pass it as 'Authorization: Bearer <jwt>' or ?access_token="
        )
    try:
        return api.TokenVerifier(config.api_key, config.api_secret).verify(token)
    except Exception as error:
        raise web.HTTPUnauthorized(
            text=f"invalid access token ({error}): sign it with this server's API key "
            f"{config.api_key!r} and its secret"
        ) from error


def _join_claims(request: web.Request, config: ServerConfig) -> api.access_token.Claims:
    claims = authenticate(request, config)
    video = claims.video
    if video is None or not video.room_join or not video.room:
        raise web.HTTPUnauthorized(
            text="the token has no room_join grant for a room: "
            "use VideoGrants(room_join=True, room='<name>')"
        )
    if not claims.identity:
        raise web.HTTPUnauthorized(text="the token has no identity: set with_identity(...)")
    return claims


async def handle_validate(request: web.Request) -> web.Response:
    """``GET /rtc/validate``: 200 when the token would be accepted, 401 saying why if not."""
    _join_claims(request, request.app[CONFIG_KEY])
    return web.Response(text="success")


async def handle_rtc(request: web.Request) -> web.StreamResponse:
    """``GET /rtc``: authenticate, upgrade to a WebSocket, and run the signal session."""
    config = request.app[CONFIG_KEY]
    claims = _join_claims(request, config)
    assert claims.video is not None
    ws = web.WebSocketResponse(max_msg_size=0)
    await ws.prepare(request)
    # A token's room configuration names the agents of a room this join creates.
    agents = claims.room_config.agents if claims.room_config is not None else ()
    room = config.rooms.create(claims.video.room, agents=agents)
    session = SignalSession(ws, room, claims, request.query)
    await session.run()
    return ws


def _stream_id(publisher: Participant, track: PublishedTrack) -> str:
    # The SDK reads the publisher and the publication from a relayed track's msid stream id.
    return f"{publisher.sid}|{track.info.sid}"


class SignalSession:
    """One client's signal connection: its participant, its peer connections, its messages."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        room: Room,
        claims: api.access_token.Claims,
        query: object,
    ) -> None:
        self.ws = ws
        self.room = room
        client_protocol = 0
        if hasattr(query, "get"):
            with contextlib.suppress(TypeError, ValueError):
                client_protocol = int(query.get("client_protocol", "0"))
        self.participant = Participant(
            sid=new_sid("PA"),
            identity=claims.identity,
            link=self,
            name=claims.name,
            metadata=claims.metadata,
            attributes=dict(claims.attributes or {}),
            kind=_KINDS.get(claims.kind, models.ParticipantInfo.Kind.STANDARD),
            client_protocol=client_protocol,
        )
        # LiveKit's grant for changing one's own name, metadata and attributes.
        self._may_update_metadata = bool(
            claims.video is not None and claims.video.can_update_own_metadata
        )
        self._outbox: asyncio.Queue[rtc.SignalResponse | None] = asyncio.Queue()
        # Why the participant leaves when the session ends: the client's leave request says
        # CLIENT_INITIATED, the server's close its own reason; a socket that just closed,
        # SIGNAL_CLOSE.
        self._leave_reason: int = models.DisconnectReason.SIGNAL_CLOSE
        self.media = MediaSession(self.send_signal, self._on_track, self._on_data)
        self._tasks: set[asyncio.Task[None]] = set()

    # ParticipantLink -----------------------------------------------------------------------

    def send_signal(self, response: rtc.SignalResponse) -> None:
        """Queue a signal message for this client."""
        self._outbox.put_nowait(response)

    def subscribe_track(self, publisher: Participant, track: PublishedTrack) -> None:
        """Relay a published track to this client."""
        if track.media is not None:
            self.media.add_track(track.media, _stream_id(publisher, track))

    def unsubscribe_track(self, publisher: Participant, track: PublishedTrack) -> None:
        """Stop relaying a track to this client."""
        self.media.remove_track(_stream_id(publisher, track))

    def send_data(self, label: str, payload: bytes) -> None:
        """Send a data packet to this client."""
        self.media.send_data(label, payload)

    def close(self, reason: int) -> None:
        """Tell the client to leave, then close the socket."""
        self._leave_reason = reason
        self.send_signal(
            rtc.SignalResponse(
                leave=rtc.LeaveRequest(
                    reason=reason,  # type: ignore[arg-type]
                    action=rtc.LeaveRequest.Action.DISCONNECT,
                )
            )
        )
        self._outbox.put_nowait(None)

    # The session -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Join, then serve the client's messages until it leaves or the socket closes."""
        writer = asyncio.create_task(self._write_loop())
        self.send_signal(rtc.SignalResponse(join=self._join_response()))
        self.room.join(self.participant)
        # The tracks already in the room: the media session holds them until the
        # subscriber connection is up, so the first offer has data channels only.
        for other in self.room.others(self.participant):
            for track in other.tracks.values():
                self.subscribe_track(other, track)
        self.media.start()
        try:
            async for message in self.ws:
                if message.type != WSMsgType.BINARY:
                    continue
                request = rtc.SignalRequest()
                request.ParseFromString(message.data)
                if not await self._handle(request):
                    break
        finally:
            self.room.leave(self.participant, self._leave_reason)
            self._outbox.put_nowait(None)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await writer
            await self.media.close()
            await self.ws.close()

    async def _write_loop(self) -> None:
        while True:
            response = await self._outbox.get()
            if response is None or self.ws.closed:
                await self.ws.close()
                return
            try:
                await self.ws.send_bytes(response.SerializeToString())
            except ConnectionError:
                return

    def _join_response(self) -> rtc.JoinResponse:
        return rtc.JoinResponse(
            room=self.room.info(),
            participant=self.participant.info(),
            other_participants=[p.info() for p in self.room.others(self.participant)],
            server_version=SERVER_VERSION,
            server_info=models.ServerInfo(
                edition=models.ServerInfo.Edition.Standard,
                version=SERVER_VERSION,
                protocol=PROTOCOL_VERSION,
                node_id="flowkit-test-server",
            ),
            subscriber_primary=True,
            ping_interval=PING_INTERVAL,
            ping_timeout=PING_TIMEOUT,
        )

    async def _handle(self, request: rtc.SignalRequest) -> bool:
        """Handle one request; False when the client leaves."""
        which = request.WhichOneof("message")
        if which == "offer":
            for media in await self.media.answer_publisher(request.offer.sdp):
                self._unpublished(media)
        elif which == "answer":
            await self.media.accept_subscriber_answer(request.answer.sdp)
        elif which == "trickle":
            try:
                await self.media.add_candidate(
                    request.trickle.target, request.trickle.candidateInit
                )
            except (ValueError, IndexError) as error:
                logger.warning("bad trickled candidate %r: %s", request.trickle, error)
        elif which == "add_track":
            self._add_track(request.add_track)
        elif which == "update_metadata":
            self._update_metadata(request.update_metadata)
        elif which == "ping_req":
            self.send_signal(
                rtc.SignalResponse(
                    pong_resp=rtc.Pong(
                        last_ping_timestamp=request.ping_req.timestamp,
                        timestamp=int(time.time() * 1000),
                    )
                )
            )
        elif which == "ping":
            self.send_signal(rtc.SignalResponse(pong=request.ping))
        elif which == "mute":
            self._mute(request.mute)
        elif which == "leave":
            self._leave_reason = models.DisconnectReason.CLIENT_INITIATED
            return False
        return True

    def _add_track(self, add: rtc.AddTrackRequest) -> None:
        info = models.TrackInfo(
            sid=new_sid("TR"),
            type=add.type,
            name=add.name,
            source=add.source,
            muted=add.muted,
            width=add.width,
            height=add.height,
            mime_type="audio/opus" if add.type == models.TrackType.AUDIO else "video/vp8",
            stream=add.stream,
            audio_features=add.audio_features,
        )
        self.participant.tracks[info.sid] = PublishedTrack(info=info, cid=add.cid)
        self.send_signal(
            rtc.SignalResponse(track_published=rtc.TrackPublishedResponse(cid=add.cid, track=info))
        )

    def _on_track(self, media: MediaStreamTrack) -> None:
        """The publisher connection got a track: match it to its AddTrackRequest by cid."""
        pending = [t for t in self.participant.tracks.values() if t.media is None]
        match = next((t for t in pending if t.cid == media.id), None)
        if match is None:
            kind = models.TrackType.AUDIO if media.kind == "audio" else models.TrackType.VIDEO
            match = next((t for t in pending if t.info.type == kind), None)
        if match is None:
            logger.warning("track %s arrived without an AddTrackRequest: ignored", media.id)
            return
        match.media = media
        self.media.drain(media)
        self.room.track_arrived(self.participant, match)

    def _unpublished(self, media: MediaStreamTrack) -> None:
        """The client stopped sending a track: unpublish it, as LiveKit does, and say so."""
        track = next((t for t in self.participant.tracks.values() if t.media is media), None)
        if track is None:
            return  # not a published track, or already unpublished by an earlier offer
        self.room.unpublish(self.participant, track.info.sid)
        self.send_signal(
            rtc.SignalResponse(
                track_unpublished=rtc.TrackUnpublishedResponse(track_sid=track.info.sid)
            )
        )

    def _on_data(self, label: str, payload: bytes) -> None:
        if label not in ("_reliable", "_lossy"):
            return
        packet = models.DataPacket()
        try:
            packet.ParseFromString(payload)
        except Exception:  # a malformed packet from one client must not end its session
            logger.warning("undecodable data packet from %s", self.participant.identity)
            return
        self.room.relay_data(self.participant, label, packet)

    def _update_metadata(self, update: rtc.UpdateParticipantMetadata) -> None:
        if not self._may_update_metadata:
            # As LiveKit: refused, nothing changes, nobody else hears of it.
            self.send_signal(
                rtc.SignalResponse(
                    request_response=rtc.RequestResponse(
                        request_id=update.request_id,
                        reason=rtc.RequestResponse.Reason.NOT_ALLOWED,
                        message="does not have permission to update own metadata: the "
                        "token needs canUpdateOwnMetadata",
                        update_metadata=update,
                    )
                )
            )
            return
        # LiveKit answers the request at once and broadcasts the update after: same order.
        self.send_signal(
            rtc.SignalResponse(
                request_response=rtc.RequestResponse(
                    request_id=update.request_id,
                    reason=rtc.RequestResponse.Reason.OK,
                    update_metadata=update,
                )
            )
        )
        self.room.update_participant(
            self.participant,
            name=update.name,
            metadata=update.metadata,
            attributes=update.attributes,
        )

    def _mute(self, mute: rtc.MuteTrackRequest) -> None:
        track = self.participant.tracks.get(mute.sid)
        if track is None:
            return
        track.info.muted = mute.muted
        self.participant.touch()
        self.room.broadcast_update(self.participant, include_self=True)
