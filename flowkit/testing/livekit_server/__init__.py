"""A LiveKit server test double for end-to-end tests with the official ``livekit`` SDK.

It is not LiveKit: it relays audio and video tracks (one VP8 layer), data packets (text
streams, RPC) and participant attributes between real SDK clients, well enough to test
agents end to end. It needs ``aiortc`` (``pip install 'flowkit-agents[testing]'``), and
WebRTC needs a real network interface: run it inside :mod:`flowkit.testing.netns`.

Its server API (``livekit-api``) also dials out and transfers calls, to simulated phones a
test registers on ``server.sip``, moves those calls between rooms (``MoveParticipant``), and
keeps SIP trunks and dispatch rules, which route the calls those phones make in
(``await server.sip.call_in(caller, number)``; see :mod:`~flowkit.testing.livekit_server.sip`).

Example::

    async with TestLiveKitServer() as server:
        room = rtc.Room()
        await room.connect(server.url, server.token("alice", "demo"))
"""

from flowkit.testing.livekit_server.app import (
    CONFIG_KEY,
    DEFAULT_API_KEY,
    DEFAULT_API_SECRET,
    DEFAULT_HOST,
    ROOMS_KEY,
    SIP_KEY,
    Mount,
    TestLiveKitServer,
    create_app,
)
from flowkit.testing.livekit_server.rooms import Participant, Room, Rooms
from flowkit.testing.livekit_server.signal import ServerConfig, authenticate
from flowkit.testing.livekit_server.sip import (
    CallEnd,
    CallStatus,
    InboundCall,
    InboundCallError,
    PhoneCall,
    SimulatedCall,
    SimulatedPhone,
    SimulatedSIP,
    SIPResponse,
)

__all__ = [
    "CONFIG_KEY",
    "DEFAULT_API_KEY",
    "DEFAULT_API_SECRET",
    "DEFAULT_HOST",
    "ROOMS_KEY",
    "SIP_KEY",
    "CallEnd",
    "CallStatus",
    "InboundCall",
    "InboundCallError",
    "Mount",
    "Participant",
    "PhoneCall",
    "Room",
    "Rooms",
    "SIPResponse",
    "ServerConfig",
    "SimulatedCall",
    "SimulatedPhone",
    "SimulatedSIP",
    "TestLiveKitServer",
    "authenticate",
    "create_app",
]
