"""`flowkit start` / `flowkit dev`: options, and clear errors with exit codes."""

from __future__ import annotations

import asyncio

import pytest
from click.testing import CliRunner
from worker_support import GRAPH, KEY, running_server

from flowkit.cli import main
from flowkit.cli_worker import EXIT_SERVER
from flowkit.worker import Worker, WorkerAuthError, WorkerOptions


def _invoke(*args: str, env: dict[str, str]) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.output


async def test_bad_api_secret_is_a_clear_error_and_exit_code() -> None:
    async with running_server() as server:
        env = {"LIVEKIT_URL": server.url, "LIVEKIT_API_KEY": KEY,
               "LIVEKIT_API_SECRET": "not-the-secret-0123456789abcdef-0123456789"}
        code, output = await asyncio.to_thread(
            _invoke, "start", str(GRAPH), "--http-port", "-1", env=env
        )
    assert code == EXIT_SERVER
    assert "refused the worker's token (HTTP 401)" in output
    assert "LIVEKIT_API_SECRET" in output


async def test_bad_secret_is_not_retried() -> None:
    async with running_server() as server:
        options = WorkerOptions(url=server.url, api_key=KEY, http_port=None,
                                api_secret="wrong-secret-0123456789-0123456789abcdef")
        with pytest.raises(WorkerAuthError, match="check LIVEKIT_API_KEY and LIVEKIT_API_SECRET"):
            await asyncio.wait_for(Worker(GRAPH, options).run(), 5)


def test_missing_credentials_name_the_variables() -> None:
    code, output = _invoke("dev", str(GRAPH), env={"LIVEKIT_URL": "", "LIVEKIT_API_KEY": "",
                                                    "LIVEKIT_API_SECRET": ""})
    assert code == 2
    assert "--url (or LIVEKIT_URL)" in output and "LIVEKIT_API_SECRET" in output


def test_a_broken_graph_file_fails_before_connecting() -> None:
    code, output = _invoke("start", "no/such/graph.py", env={
        "LIVEKIT_URL": "ws://127.0.0.1:9", "LIVEKIT_API_KEY": "k", "LIVEKIT_API_SECRET": "s" * 40})
    assert code == 2
    assert "no such graph file" in output


def test_an_unreachable_server_gives_up_with_exit_code_3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(WorkerOptions, "__init__", _fast_retries(WorkerOptions.__init__))
    code, output = _invoke("start", str(GRAPH), "--http-port", "-1", env={
        "LIVEKIT_URL": "ws://127.0.0.1:9", "LIVEKIT_API_KEY": "k", "LIVEKIT_API_SECRET": "s" * 40})
    assert code == EXIT_SERVER
    assert "cannot reach the LiveKit server at ws://127.0.0.1:9/agent" in output


def _fast_retries(init: object) -> object:
    def fast(self: WorkerOptions, *args: object, **kwargs: object) -> None:
        kwargs.update(max_retries=1, reconnect_min=0.01, reconnect_max=0.01)
        init(self, *args, **kwargs)  # type: ignore[operator]

    return fast
