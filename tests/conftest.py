import logging

import pytest


@pytest.fixture(autouse=True)
def _quiet_node_errors(caplog: pytest.LogCaptureFixture) -> None:
    # Error-policy tests raise on purpose; keep their logs in the report, not on the console.
    caplog.set_level(logging.CRITICAL, logger="flowkit.runtime")
