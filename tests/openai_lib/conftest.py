"""Fixtures shared by the OpenAI node library's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fake_server import FakeOpenAI


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAI]:
    """The fake OpenAI-compatible server (:mod:`fake_server`), running for one test.

    The realtime tests define a ``server`` of their own (the Realtime test server), which
    takes the place of this one in their modules.
    """
    async with FakeOpenAI() as fake:
        yield fake
