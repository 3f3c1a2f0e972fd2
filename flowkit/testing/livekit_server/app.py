"""The aiohttp application of the test LiveKit server, and :class:`TestLiveKitServer`.

Routes: ``GET /rtc`` (the signal WebSocket), ``GET /rtc/v1`` (404, so the SDK falls back to
``/rtc``), ``GET /rtc/validate``, ``GET /`` (health) and ``POST /twirp/...`` (the server API
that ``livekit-api`` calls, see :mod:`~flowkit.testing.livekit_server.twirp`, with its SIP
calls to simulated phones, :mod:`~flowkit.testing.livekit_server.sip`). Other parts, such as
the agent endpoint, mount their own routes through ``create_app(rooms, agents=...)``.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from aiohttp import web
from livekit import api
from livekit.protocol import room as room_pb

from flowkit.testing.livekit_server import sip as sip_service
from flowkit.testing.livekit_server import twirp
from flowkit.testing.livekit_server.rooms import Room, Rooms
from flowkit.testing.livekit_server.signal import (
    CONFIG_KEY,
    ServerConfig,
    handle_rtc,
    handle_validate,
)
from flowkit.testing.livekit_server.sip import SIP_KEY, SimulatedSIP

__all__ = [
    "CONFIG_KEY",
    "DEFAULT_API_KEY",
    "DEFAULT_API_SECRET",
    "DEFAULT_HOST",
    "ROOMS_KEY",
    "SIP_KEY",
    "Mount",
    "TestLiveKitServer",
    "create_app",
]

DEFAULT_HOST = "10.99.0.1"
"""The server's address in the test network namespace (see :mod:`flowkit.testing.netns`)."""
DEFAULT_API_KEY = "devkey"
DEFAULT_API_SECRET = "flowkit-test-server-secret-0123456789"

ROOMS_KEY = web.AppKey("flowkit_livekit_rooms", Rooms)

Mount = Callable[[web.Application], None]
"""Adds routes (and startup/cleanup hooks) to the server's application."""


async def _single_pc_path(request: web.Request) -> web.Response:
    # The SDK tries single-peer-connection signalling first; 404 is its cue to use /rtc.
    raise web.HTTPNotFound(text="single peer connection mode is not supported: use /rtc")


async def _health(request: web.Request) -> web.Response:
    return web.Response(text="OK")


def create_app(
    rooms: Rooms,
    agents: Mount | None = None,
    *,
    api_key: str = DEFAULT_API_KEY,
    api_secret: str = DEFAULT_API_SECRET,
    sip: SimulatedSIP | None = None,
) -> web.Application:
    """Build the server's aiohttp application.

    Args:
        rooms: the rooms the server serves (shared with whoever creates rooms).
        agents: optional hook that mounts more routes, e.g. the ``/agent`` endpoint; it can
            read ``app[ROOMS_KEY]`` and ``app[CONFIG_KEY]``.
        api_key: the API key tokens must be issued by.
        api_secret: the secret tokens must be signed with.
        sip: the simulated phones the SIP calls reach (``app[SIP_KEY]``); a new, empty
            :class:`~flowkit.testing.livekit_server.sip.SimulatedSIP` if None.

    Returns:
        The application, ready for an ``aiohttp.web.AppRunner``.
    """
    app = web.Application()
    app[ROOMS_KEY] = rooms
    app[CONFIG_KEY] = ServerConfig(rooms=rooms, api_key=api_key, api_secret=api_secret)
    app.router.add_get("/", _health)
    app.router.add_get("/rtc/v1", _single_pc_path)
    app.router.add_get("/rtc/validate", handle_validate)
    app.router.add_get("/rtc", handle_rtc)
    twirp.mount(app)
    sip_service.mount(app, sip if sip is not None else SimulatedSIP())
    if agents is not None:
        agents(app)
    return app


class TestLiveKitServer:
    """A LiveKit server test double: rooms that relay audio, video, data and attributes.

    It speaks enough of LiveKit's signal protocol for the official SDK to join rooms,
    publish and receive audio and video, send data packets (text streams, RPC) and update
    attributes. Its Twirp API (``/twirp/...``) answers the ``livekit-api`` client's
    RoomService and AgentDispatchService calls (see
    :mod:`~flowkit.testing.livekit_server.twirp`), and its SIP calls (``CreateSIPParticipant``,
    ``TransferSIPParticipant``) reach the simulated phones of :attr:`sip`, which a test
    registers: ``server.sip.add_phone("+15550100", answer_after=0.2)`` (see
    :mod:`~flowkit.testing.livekit_server.sip`). It is not a media server: no simulcast
    layers (video is decoded and encoded again as one VP8 stream), no congestion control,
    no TURN. WebRTC needs a real interface, so run it inside :mod:`flowkit.testing.netns` on
    ``10.99.0.1``.

    Args:
        host: the address to listen on.
        port: the port, 0 for any free one.
        api_key: the API key clients' tokens must be issued by.
        api_secret: the secret they must be signed with.
        agents: optional hook that mounts more routes (see :func:`create_app`).
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = 0,
        *,
        api_key: str = DEFAULT_API_KEY,
        api_secret: str = DEFAULT_API_SECRET,
        agents: Mount | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.api_key = api_key
        self.api_secret = api_secret
        self.rooms = Rooms()
        self.sip = SimulatedSIP()
        """The simulated phones the server's SIP calls reach, and the calls made."""
        self.app = create_app(
            self.rooms, agents, api_key=api_key, api_secret=api_secret, sip=self.sip
        )
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """The WebSocket URL clients connect to, ``ws://host:port``."""
        return f"ws://{self.host}:{self.port}"

    @property
    def http_url(self) -> str:
        """The same address as ``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Listen on host:port (a free port when port is 0)."""
        if self._runner is not None:
            return
        runner = web.AppRunner(self.app, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
        except OSError as error:
            await runner.cleanup()
            raise OSError(
                f"the test LiveKit server cannot listen on {self.host}:{self.port} ({error}); "
                "inside a test network namespace use 10.99.0.1 (flowkit.testing.netns), "
                "elsewhere an address of this machine, and a free port or 0"
            ) from error
        self._runner = runner
        for address in runner.addresses:
            if isinstance(address, tuple) and self.port == 0:
                self.port = int(address[1])

    async def stop(self) -> None:
        """Ask every participant to leave, hang up the simulated calls, stop listening."""
        for room in self.rooms.list():
            self.rooms.delete(room.name)
        await self.sip.aclose()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> TestLiveKitServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def create_room(self, name: str, *, metadata: str = "") -> Room:
        """Create a room now (rather than on first join); room-created hooks run."""
        return self.rooms.create(name, metadata=metadata)

    def token(
        self,
        identity: str,
        room: str,
        *,
        name: str = "",
        metadata: str = "",
        attributes: dict[str, str] | None = None,
        kind: str = "",
        room_config: room_pb.RoomConfiguration | None = None,
        can_update_own_metadata: bool = True,
    ) -> str:
        """A join token for ``identity`` in ``room``, signed with this server's key pair.

        ``room_config`` applies if this join creates the room: its ``agents`` are then the
        room's dispatches instead of the default one, as in LiveKit.
        ``can_update_own_metadata`` lets the client change its own name, metadata and
        attributes (the grant agents' tokens have); ``False`` for a client that may not.
        """
        grants = api.VideoGrants(
            room_join=True, room=room, can_update_own_metadata=can_update_own_metadata
        )
        token = (
            api.AccessToken(self.api_key, self.api_secret)
            .with_identity(identity)
            .with_grants(grants)
        )
        if name:
            token = token.with_name(name)
        if metadata:
            token = token.with_metadata(metadata)
        if attributes:
            token = token.with_attributes(attributes)
        if kind:
            token = token.with_kind(kind)  # type: ignore[arg-type]
        if room_config is not None:
            token = token.with_room_config(room_config)
        return token.to_jwt()
