"""Run the LiveKit scenarios inside a private network namespace (WebRTC needs a real link)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from flowkit.testing.netns import run_async_in_namespace


@pytest.fixture
def run_scenario() -> Callable[[str, str], Any]:
    """``run_scenario(__file__, "scenario_name")``: the scenario's JSON result, decoded.

    The scenario runs in a fresh namespace with the veth pair (10.99.0.1 / 10.99.0.2), in a
    subprocess, so a hung WebRTC stack cannot take the test session with it.
    """

    def run(path: str, function: str, timeout: float = 120.0) -> Any:
        return run_async_in_namespace(path, function, timeout=timeout)

    return run
