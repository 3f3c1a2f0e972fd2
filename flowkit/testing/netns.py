"""Run commands inside a private network namespace with a veth pair, for WebRTC tests.

WebRTC does not connect over pure loopback, and tests must not touch the machine's
network. ``unshare -rn`` gives an unprivileged process its own network namespace; inside
it a veth pair ``v0``/``v1`` gets ``10.99.0.1/24`` and ``10.99.0.2/24``. The test LiveKit
server listens on :data:`SERVER_HOST`; nothing leaves the namespace.

Command line: ``python -m flowkit.testing.netns -- python -m pytest tests/livekit``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "CLIENT_HOST",
    "ENV_MARKER",
    "SERVER_HOST",
    "NamespaceError",
    "in_namespace",
    "run_async_in_namespace",
    "run_in_namespace",
]

SERVER_HOST = "10.99.0.1"
CLIENT_HOST = "10.99.0.2"
ENV_MARKER = "FLOWKIT_NETNS"
"""Set to ``1`` in the environment of commands run inside the namespace."""

_SETUP = (
    "set -e; "
    "ip link set lo up; "
    "ip link add v0 type veth peer name v1; "
    f"ip addr add {SERVER_HOST}/24 dev v0; "
    f"ip addr add {CLIENT_HOST}/24 dev v1; "
    "ip link set v0 up; ip link set v1 up; "
    'exec "$@"'
)

_RUNNER = """
import asyncio, importlib.util, json, sys
path, name, marker = sys.argv[1], sys.argv[2], sys.argv[3]
spec = importlib.util.spec_from_file_location("_flowkit_scenario", path)
module = importlib.util.module_from_spec(spec)
sys.modules["_flowkit_scenario"] = module
spec.loader.exec_module(module)
result = asyncio.run(getattr(module, name)())
print(marker + json.dumps(result), flush=True)
# The result is out: end now if the native LiveKit runtime ran, instead of a teardown that
# can race its disposal and hang after the scenario finished (see process_exit).
from flowkit.livekit.process_exit import exit_after_livekit
exit_after_livekit(0)
"""

_RESULT_MARKER = "FLOWKIT-RESULT:"


class NamespaceError(RuntimeError):
    """The namespace could not be made, or a scenario inside it failed."""


def in_namespace() -> bool:
    """True inside a namespace made by this module (the veth pair is there)."""
    return os.environ.get(ENV_MARKER) == "1" and Path("/sys/class/net/v0").exists()


def _command(argv: Sequence[str]) -> list[str]:
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            raise NamespaceError(
                f"'{tool}' was not found: install util-linux (unshare) and iproute2 (ip)"
            )
    return ["unshare", "-rn", "sh", "-c", _SETUP, "sh", *argv]


def run_in_namespace(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    cwd: str | Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in a fresh network namespace with the veth pair; capture its output.

    Args:
        argv: the command and its arguments.
        env: extra environment variables (added to this process's environment).
        timeout: seconds before the command is killed (``subprocess.TimeoutExpired``).
        cwd: working directory.

    Returns:
        The completed process, with text stdout and stderr.

    Raises:
        NamespaceError: the namespace could not be made (no ``unshare``/``ip``, or user
            namespaces are disabled).
    """
    full_env = {**os.environ, **(env or {}), ENV_MARKER: "1"}
    path = full_env.get("PATH", "")
    if "/usr/sbin" not in path.split(os.pathsep):
        full_env["PATH"] = f"{path}{os.pathsep}/usr/sbin:/sbin"
    result = subprocess.run(
        _command(argv),
        env=full_env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0 and "unshare:" in result.stderr:
        raise NamespaceError(
            f"could not make a network namespace: {result.stderr.strip()}; "
            "allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, "
            "or kernel.apparmor_restrict_unprivileged_userns=0) or run as root"
        )
    return result


def run_async_in_namespace(path: str | Path, function: str, *, timeout: float = 120.0) -> Any:
    """Import the module at ``path`` in a namespace, run ``await function()``, return its result.

    The coroutine function takes no arguments and returns something JSON can encode; the
    result comes back decoded. This lets a pytest test run a WebRTC scenario in the
    namespace and assert on what it saw.

    Raises:
        NamespaceError: the scenario raised or printed no result; the message carries the
            tail of its output.
    """
    result = run_in_namespace(
        [sys.executable, "-c", _RUNNER, str(path), function, _RESULT_MARKER],
        timeout=timeout,
        cwd=Path(path).resolve().parent,
    )
    for line in reversed(result.stdout.splitlines()):
        if line.startswith(_RESULT_MARKER):
            return json.loads(line[len(_RESULT_MARKER) :])
    tail = "\n".join((result.stdout + "\n" + result.stderr).splitlines()[-60:])
    raise NamespaceError(
        f"scenario {function} in {path} ended with code {result.returncode} and no result:\n{tail}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m flowkit.testing.netns -- COMMAND...``: run COMMAND in a namespace."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print("usage: python -m flowkit.testing.netns -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    env = {**os.environ, ENV_MARKER: "1"}
    return subprocess.call(_command(args), env=env)


if __name__ == "__main__":
    raise SystemExit(main())
