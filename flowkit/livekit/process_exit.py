"""Ending a process that used LiveKit's native SDK without racing its teardown.

The ``livekit`` SDK runs a native (Rust) runtime, disposed by an ``atexit`` hook. Handles
still dropped by Python objects during interpreter teardown can then reach a disposed
runtime, and the native side aborts the process ("drop unknown FFI handle", then a panic that
cannot unwind) even though the program finished cleanly. A worker or ``flowkit connect``
that has drained and closed its rooms therefore ends with :func:`os._exit` after flushing its
output, skipping a teardown that has nothing left to do.
"""

from __future__ import annotations

import io
import logging
import os
import sys

__all__ = ["exit_after_livekit"]


def _native_runtime_started() -> bool:
    module = sys.modules.get("livekit.rtc._ffi_client")
    client = getattr(module, "FfiClient", None)
    return getattr(client, "_instance", None) is not None


def _real_stdout() -> bool:
    # Under a test runner (click's CliRunner, pytest capture) the streams are in memory: the
    # process is the test session, which must not be ended here.
    try:
        sys.stdout.fileno()
    except (io.UnsupportedOperation, AttributeError, ValueError):
        return False
    return True


def exit_after_livekit(code: int = 0) -> None:
    """End the process now with ``code`` if the native LiveKit runtime was used (see module).

    Returns without doing anything when the runtime was never started or when the program
    runs inside a test runner's captured streams.
    """
    if not (_native_runtime_started() and _real_stdout()):
        return
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
