"""Run the LiveKit scenarios inside a private network namespace (WebRTC needs a real link)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from flowkit.testing.netns import run_async_in_namespace


def _text(output: bytes | str | None) -> str:
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""


@pytest.fixture
def run_scenario() -> Callable[[str, str], Any]:
    """``run_scenario(__file__, "scenario_name")``: the scenario's JSON result, decoded.

    The scenario runs in a fresh namespace with the veth pair (10.99.0.1 / 10.99.0.2), in a
    subprocess, so a hung WebRTC stack cannot take the test session with it.
    """

    def run(path: str, function: str, timeout: float = 120.0) -> Any:
        try:
            return run_async_in_namespace(path, function, timeout=timeout)
        except subprocess.TimeoutExpired as error:
            # subprocess.run's own message has only the command line; what the scenario
            # logged before it hung is what says where it hung.
            output = (_text(error.stdout) + "\n" + _text(error.stderr)).splitlines()
        pytest.fail(
            f"scenario {function} did not finish within {timeout:.0f} s; the end of its "
            "output:\n" + "\n".join(output[-60:]),
            pytrace=False,
        )

    return run
