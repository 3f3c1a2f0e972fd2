"""The worker's side of LiveKit's agent protocol: one WebSocket connection to ``/agent``.

The worker authenticates with a Bearer JWT holding the agent grant, sends a
``RegisterWorkerRequest`` and waits for the ``RegisterWorkerResponse``, which must be the
server's first message. After that, every frame is binary and holds one serialized
``WorkerMessage`` (worker to server) or ``ServerMessage`` (server to worker).

:class:`AgentConnection` is one such connection; reconnecting is the worker's loop
(:func:`reconnect_delays` gives its backoff). A refused token is :class:`WorkerAuthError`
and is never retried: a wrong secret does not become right by waiting.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterator

import aiohttp
from livekit import api
from livekit.protocol import agent as agent_pb

from flowkit.worker.options import WorkerOptions

__all__ = [
    "AgentConnection",
    "WorkerAuthError",
    "WorkerConnectError",
    "reconnect_delays",
]

log = logging.getLogger("flowkit.worker")


class WorkerConnectError(ConnectionError):
    """The worker could not connect or register; retried with backoff by the worker."""


class WorkerAuthError(WorkerConnectError):
    """The server refused the worker's token: the API key or secret is wrong."""


def worker_token(options: WorkerOptions) -> str:
    """A fresh JWT for the worker, signed with the API secret, holding the agent grant."""
    return (
        api.AccessToken(options.api_key, options.api_secret)
        .with_grants(api.VideoGrants(agent=True))
        .to_jwt()
    )


def reconnect_delays(first: float, longest: float) -> Iterator[float]:
    """Delays between attempts: ``first``, doubling up to ``longest``, with ±20 % jitter."""
    delay = first
    while True:
        yield delay * random.uniform(0.8, 1.2)  # jitter, not security
        delay = min(delay * 2, longest)


class AgentConnection:
    """One registered connection to the server's ``/agent`` endpoint.

    Args:
        options: The worker's options (address, credentials, what it registers as).
        session: The HTTP session the WebSocket is opened from.
    """

    def __init__(self, options: WorkerOptions, session: aiohttp.ClientSession) -> None:
        self.options = options
        self._session = session
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._send_lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        """Whether the WebSocket is open."""
        return self._ws is not None and not self._ws.closed

    async def open(self) -> agent_pb.RegisterWorkerResponse:
        """Connect, register, and return the server's ``RegisterWorkerResponse``.

        Raises:
            WorkerAuthError: The server answered 401/403: the key or secret is wrong.
            WorkerConnectError: The server cannot be reached, or did not register the worker.
        """
        url = self.options.agent_ws_url()
        headers = {"Authorization": f"Bearer {worker_token(self.options)}"}
        try:
            self._ws = await self._session.ws_connect(
                url, headers=headers, heartbeat=15.0, max_msg_size=0,
                timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
            )
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status in (401, 403):
                raise WorkerAuthError(
                    f"the LiveKit server at {url} refused the worker's token (HTTP "
                    f"{exc.status}); check LIVEKIT_API_KEY and LIVEKIT_API_SECRET (or "
                    "--api-key/--api-secret): they must be a key pair the server knows"
                ) from exc
            raise WorkerConnectError(
                f"the LiveKit server at {url} refused the WebSocket (HTTP {exc.status}: "
                f"{exc.message}); check that LIVEKIT_URL points at a LiveKit server"
            ) from exc
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise WorkerConnectError(
                f"cannot reach the LiveKit server at {url}: {exc or type(exc).__name__}; "
                "check LIVEKIT_URL and that the server is running"
            ) from exc
        await self.send(agent_pb.WorkerMessage(register=self._register_request()))
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can lose a cancellation
            # that arrives as the awaited call completes (see flowkit/livekit/audio.py).
            async with asyncio.timeout(self.options.register_timeout):
                first = await self.receive()
        except TimeoutError:
            first = None
        if first is None or not first.HasField("register"):
            await self.close()
            got = "nothing" if first is None else f"a {first.WhichOneof('message')} message"
            raise WorkerConnectError(
                f"the server at {url} sent {got} instead of a RegisterWorkerResponse within "
                f"{self.options.register_timeout:g} s; is it a LiveKit server?"
            )
        return first.register

    def _register_request(self) -> agent_pb.RegisterWorkerRequest:
        o = self.options
        return agent_pb.RegisterWorkerRequest(
            type=o.job_type.to_proto(),
            agent_name=o.agent_name,
            version=o.version,
            namespace=o.namespace,
            allowed_permissions=o.permissions.to_proto(),
        )

    async def send(self, message: agent_pb.WorkerMessage) -> bool:
        """Send one message; ``False`` (and nothing sent) when the connection is down."""
        ws = self._ws
        if ws is None or ws.closed:
            return False
        try:
            async with self._send_lock:
                await ws.send_bytes(message.SerializeToString())
        except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
            log.debug("send failed, the connection is going: %r", exc)
            return False
        return True

    async def receive(self) -> agent_pb.ServerMessage | None:
        """The next server message, or ``None`` once the connection has closed."""
        ws = self._ws
        if ws is None:
            return None
        while True:
            msg = await ws.receive()
            if msg.type is aiohttp.WSMsgType.BINARY:
                server_msg = agent_pb.ServerMessage()
                try:
                    server_msg.ParseFromString(msg.data)
                except Exception as exc:  # protobuf's DecodeError
                    log.warning("ignored a server frame that is not a ServerMessage: %r", exc)
                    continue
                return server_msg
            if msg.type in (
                aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR,
            ):
                return None
            log.debug("ignored a %s frame from the server", msg.type.name)

    async def close(self) -> None:
        """Close the WebSocket (idempotent)."""
        ws, self._ws = self._ws, None
        if ws is not None and not ws.closed:
            await ws.close()
