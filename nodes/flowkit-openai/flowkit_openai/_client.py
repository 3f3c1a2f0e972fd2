"""The connection settings every provider of this library shares, and its SDK clients.

An :class:`openai.AsyncOpenAI` holds a connection pool whose sockets belong to the event
loop that opened them. flowkit shares one provider between sessions, and tests (or a worker
running jobs on several loops) use it from more than one loop, so each loop gets its own
client, dropped with the loop.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from dataclasses import dataclass

import openai

__all__ = ["PLACEHOLDER_API_KEY", "ClientPool", "Connection"]

PLACEHOLDER_API_KEY = "not-needed"
"""The key sent when none is configured: local servers (llama.cpp, vLLM) ignore it."""


@dataclass(frozen=True, slots=True)
class Connection:
    """Where and how to reach an OpenAI-compatible endpoint.

    Attributes:
        base_url: The API root (``.../v1``); ``None`` for OpenAI itself (or ``OPENAI_BASE_URL``).
        api_key: The key; ``None`` reads ``OPENAI_API_KEY``, else sends a placeholder.
        timeout: Seconds to wait for the connection and for each read of the answer.
        max_retries: The SDK's own retries; 0 by default, because a voice reply cannot
            wait for back-off and a :class:`~flowkit.providers.FallbackLLM` decides instead.
    """

    base_url: str | None = None
    api_key: str | None = None
    timeout: float = 30.0
    max_retries: int = 0

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {self.timeout}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")

    @property
    def resolved_key(self) -> str:
        """The key to send: the configured one, ``OPENAI_API_KEY``, or the placeholder."""
        return self.api_key or os.environ.get("OPENAI_API_KEY") or PLACEHOLDER_API_KEY

    @property
    def resolved_url(self) -> str:
        """The API root the requests go to, for messages."""
        return self.base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"


class ClientPool:
    """One :class:`openai.AsyncOpenAI` per running event loop, or one given client."""

    def __init__(self, connection: Connection, client: openai.AsyncOpenAI | None = None) -> None:
        """Create a pool.

        Args:
            connection: The settings of the clients it makes.
            client: A client to use on every loop instead (the caller owns it).
        """
        self._connection = connection
        self._given = client
        self._clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, openai.AsyncOpenAI
        ] = weakref.WeakKeyDictionary()

    def get(self) -> openai.AsyncOpenAI:
        """The client for the running loop (call from a coroutine)."""
        if self._given is not None:
            return self._given
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            c = self._connection
            client = openai.AsyncOpenAI(
                api_key=c.resolved_key,
                base_url=c.base_url,
                timeout=c.timeout,
                max_retries=c.max_retries,
            )
            self._clients[loop] = client
        return client

    async def aclose(self) -> None:
        """Close the running loop's client (the others go with their loops)."""
        loop = asyncio.get_running_loop()
        client = self._clients.pop(loop, None)
        if client is not None:
            await client.close()
