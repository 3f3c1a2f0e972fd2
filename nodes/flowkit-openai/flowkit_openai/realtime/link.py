"""One WebSocket to a Realtime endpoint, opened and read through the ``openai`` SDK.

The SDK builds the URL (``<base_url>/realtime?model=...``, ``ws``/``wss``), sends the key as
a bearer token and parses each server event into its typed model. Everything else is kept
here, where flowkit decides it: events are sent already encoded (the node builds them as
plain JSON, once each), reconnection is the node's (a new connection is a new server session
that must be configured again, which the SDK's own transport retries do not know), and every
failure becomes a :class:`~flowkit.providers.ProviderError` that names the endpoint and the
remedy.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import websockets.exceptions
from openai.resources.realtime.realtime import AsyncRealtimeConnection
from openai.types.realtime.realtime_server_event import RealtimeServerEvent

from flowkit.providers.errors import (
    ProviderError,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    error_for_status,
)
from flowkit_openai._client import PLACEHOLDER_API_KEY, ClientPool, Connection

__all__ = ["ConnectionLost", "RealtimeLink", "realtime_url"]


class ConnectionLost(Exception):  # noqa: N818 - reads as what happened
    """The WebSocket ended without the node closing it."""


def realtime_url(base_url: str, model: str) -> str:
    """The WebSocket address the SDK connects to, for messages.

    Example:
        >>> realtime_url("http://127.0.0.1:8000/v1", "gpt-realtime")
        'ws://127.0.0.1:8000/v1/realtime?model=gpt-realtime'
    """
    scheme, sep, rest = base_url.partition("://")
    ws = {"http": "ws", "https": "wss"}.get(scheme, scheme)
    return f"{ws}{sep}{rest.rstrip('/')}/realtime?model={model}"


class RealtimeLink:
    """Opens connections to one Realtime endpoint and reads them.

    Args:
        clients: The SDK clients (one per event loop) that open the connections.
        connection: Where the endpoint is, its key and the timeout.
        model: The realtime model, sent in the connection URL.
        provider: The name errors start with.
    """

    def __init__(
        self, clients: ClientPool, connection: Connection, model: str, provider: str
    ) -> None:
        self._clients = clients
        self._connection = connection
        self.model = model
        self.provider = provider

    @property
    def url(self) -> str:
        """The endpoint's WebSocket address."""
        return realtime_url(self._connection.resolved_url, self.model)

    async def open(self) -> AsyncRealtimeConnection:
        """Connect, within the connection's timeout.

        Raises:
            flowkit.providers.ProviderError: :class:`ProviderRejected` for a refused key,
                model or path (retrying cannot help), :class:`ProviderUnavailable` for a
                server that is down, refuses connections or answers 429/5xx, and
                :class:`ProviderTimeout` when the handshake takes longer than the timeout.
        """
        manager = self._clients.get().realtime.connect(model=self.model)
        try:
            async with asyncio.timeout(self._connection.timeout):
                return await manager.enter()
        except Exception as error:
            raise self._connect_error(error) from error

    async def receive(self, socket: AsyncRealtimeConnection) -> RealtimeServerEvent | None:
        """The next server event; ``None`` for a message that is not JSON (logged by the caller).

        Raises:
            ConnectionLost: The connection ended, cleanly or not.
        """
        try:
            data = await socket.recv_bytes()
        except websockets.exceptions.ConnectionClosed as closed:
            raise ConnectionLost(_closed_reason(closed)) from closed
        try:
            return socket.parse_event(data)
        except (ValueError, TypeError):
            return None

    @staticmethod
    async def send(socket: AsyncRealtimeConnection, event: dict[str, Any]) -> None:
        """Send one client event.

        Raises:
            ConnectionLost: The connection is closed.
        """
        try:
            await socket.send_raw(json.dumps(event))
        except websockets.exceptions.ConnectionClosed as closed:
            raise ConnectionLost(_closed_reason(closed)) from closed

    def _connect_error(self, error: BaseException) -> ProviderError:
        url, name = self.url, self.provider
        if isinstance(error, TimeoutError):
            return ProviderTimeout(
                f"no WebSocket handshake from {url} within {self._connection.timeout:g} s; "
                "check that the server is reachable, or raise timeout=",
                provider=name,
            )
        if isinstance(error, websockets.exceptions.InvalidStatus):
            status = error.response.status_code
            body = bytes(error.response.body or b"").decode("utf-8", "replace").strip()
            detail = f"{body[:200]} [{url}]" if body else url
            if status in (401, 403):
                unset = self._connection.resolved_key == PLACEHOLDER_API_KEY
                remedy = (
                    "no API key was configured: pass api_key= or set OPENAI_API_KEY"
                    if unset
                    else "check the API key and the account's access to realtime models"
                )
                return ProviderRejected(
                    f"the server refused the connection (HTTP {status}: {detail}); {remedy}",
                    provider=name,
                    status=status,
                )
            if status == 404:
                return ProviderRejected(
                    f"no Realtime endpoint at {url} (HTTP 404); check that base_url is the API "
                    "root (ending in /v1) of a server that speaks the Realtime API",
                    provider=name,
                    status=status,
                )
            return error_for_status(name, status, detail)
        if isinstance(error, websockets.exceptions.InvalidURI):
            return ProviderRejected(
                f"{url} is not a WebSocket address ({error}); check base_url", provider=name
            )
        if isinstance(error, websockets.exceptions.InvalidHandshake | OSError):
            return ProviderUnavailable(
                f"could not connect to {url} ({type(error).__name__}: {error}); check that the "
                "server is running and that base_url is right",
                provider=name,
            )
        if isinstance(error, openai.OpenAIError):
            return ProviderRejected(
                f"the openai client cannot open a realtime connection ({error}); install the "
                "WebSocket support with `pip install 'openai[realtime]'`",
                provider=name,
            )
        return ProviderError(
            f"connecting to {url} failed ({type(error).__name__}: {error})", provider=name
        )


def _closed_reason(closed: websockets.exceptions.ConnectionClosed) -> str:
    frame = closed.rcvd
    if frame is None:
        return "the connection dropped without a close frame"
    said = f": {frame.reason}" if frame.reason else ""
    return f"the server closed the connection (code {frame.code}{said})"
