"""Opening the SDK's client for one connection, and hearing that the server's tools changed.

A server says its tool list changed with ``notifications/tools/list_changed``. How it
reaches the client depends on the protocol version the two agreed on:

- up to 2025-11-25 (most servers today) the server sends it unasked, and the SDK hands it
  to the client's ``message_handler``;
- from 2026-07-28 a server sends it only on a ``subscriptions/listen`` stream the client
  opened, and the SDK hands it to the ``message_handler`` too (besides the subscription).

So the message handler is where a change is heard, and a subscription is opened when the
protocol has them and the server offers the notification. A subscription cut while the
connection is open (the server restarted: with the 2026 protocol, streamable HTTP keeps no
session, and this is how a restart shows) means changes would no longer be heard: the
connection is marked lost, and the next call opens a new one.

The SDK's response cache is off: the server keeps the listing itself and lists again when
told to, and a cached answer could only be a stale one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from flowkit.tools.mcp.connection import Connection, reason

if TYPE_CHECKING:
    from mcp import Client
    from mcp.client import IncomingMessage, Transport
    from mcp.client.subscriptions import Subscription

__all__ = ["open_client"]

logger = logging.getLogger("flowkit.tools.mcp")


async def open_client(
    transport: Transport,
    stack: AsyncExitStack,
    connection: Connection,
    *,
    server: str,
    mode: str,
    tools_changed: Callable[[], None],
) -> Client:
    """Connect the SDK's client through ``transport``, following the server's tool changes.

    Args:
        transport: The SDK transport (already watched by ``connection``).
        stack: Where the client, and the subscription if one is opened, are entered.
        connection: The connection being opened (marked lost if its subscription is cut).
        server: The server's name, for logs.
        mode: The SDK's ``Client(mode=...)``: ``"auto"`` takes the newest protocol both speak.
        tools_changed: Called (on the SDK's task) when the server says its tools changed.

    Returns:
        The connected client.
    """
    from mcp import Client, Implementation
    from mcp.types import ToolListChangedNotification

    async def on_message(message: IncomingMessage) -> None:
        if isinstance(message, ToolListChangedNotification):
            tools_changed()
        elif isinstance(message, Exception):
            # A line that is not JSON-RPC and the like: the SDK goes on reading.
            logger.debug("MCP server %r sent something unreadable: %s", server, reason(message))

    client = Client(
        transport,
        client_info=Implementation(name="flowkit", version="0.1"),
        message_handler=on_message,
        cache=None,
        mode=mode,
    )
    await stack.enter_async_context(client)
    tools = client.server_capabilities.tools
    if tools is not None and tools.list_changed:
        await _subscribe(client, stack, connection, server)
    return client


async def _subscribe(
    client: Client, stack: AsyncExitStack, connection: Connection, server: str
) -> None:
    from mcp import MCPError
    from mcp.client.subscriptions import ListenNotSupportedError

    try:
        subscription = await stack.enter_async_context(client.listen(tools_list_changed=True))
    except ListenNotSupportedError:
        return  # before 2026-07-28 the server sends its notifications unasked
    except MCPError as exc:
        logger.warning(
            "MCP server %r refused to send tools/list_changed (%s): its tool list is read "
            "when it connects and not followed", server, exc.message,
        )
        return
    if not subscription.honored.tools_list_changed:
        return  # the server agreed to send something else: nothing to hear
    task = asyncio.get_running_loop().create_task(
        _watch(subscription, connection, server), name=f"flowkit:mcp:{server}:changes"
    )
    stack.push_async_callback(_cancel, task)


async def _watch(subscription: Subscription, connection: Connection, server: str) -> None:
    from mcp.client.subscriptions import SubscriptionLost

    # The events are only drained here: the same notifications reach the message handler,
    # which acts on them for both protocol versions.
    try:
        async for _ in subscription:
            pass
    except SubscriptionLost:
        # Dropped, not closed: the server (or the way to it) went away.
        connection.lose("its tools/list_changed subscription was cut")
        return
    # Closed by the server on purpose. Not a reason to reconnect: a server that always
    # does so would be reconnected by every call.
    logger.info(
        "MCP server %r ended its tools/list_changed subscription: its tool list is read "
        "again only if it reconnects", server,
    )


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    await asyncio.wait({task})  # not `await task`: its cancellation is not this task's
