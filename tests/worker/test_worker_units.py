"""Options, the default load function and the structured logs, on their own."""

from __future__ import annotations

import io
import json
import logging
import math
import time

import pytest

from flowkit.worker import JobType, ProcessCPULoad, WorkerOptions, WorkerOptionsError
from flowkit.worker.logs import configure_logging, job_id_var, room_var, worker_id_var


def test_options_from_env_and_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEKIT_URL", "https://example.livekit.cloud/")
    monkeypatch.setenv("LIVEKIT_API_KEY", "key")
    monkeypatch.setenv("LIVEKIT_API_SECRET", "secret")
    options = WorkerOptions.from_env(api_key="flag-key", agent_name=None,
                                     job_type=JobType.PARTICIPANT)
    assert options.api_key == "flag-key" and options.api_secret == "secret"
    assert options.agent_ws_url() == "wss://example.livekit.cloud/agent"
    options.check()
    with pytest.raises(WorkerOptionsError, match="unknown worker options"):
        WorkerOptions.from_env(nonsense=1)


def test_check_names_what_is_wrong() -> None:
    with pytest.raises(WorkerOptionsError, match=r"--api-key \(or LIVEKIT_API_KEY\)"):
        WorkerOptions(url="ws://x").check()
    with pytest.raises(WorkerOptionsError, match="not a ws://"):
        WorkerOptions(url="x.example", api_key="k", api_secret="s").check()
    with pytest.raises(WorkerOptionsError, match="max_jobs is 0"):
        WorkerOptions(url="ws://x", api_key="k", api_secret="s", max_jobs=0).check()
    WorkerOptions(url="ws://x", api_key="k", api_secret="s", load_threshold=math.inf).check()


def test_process_cpu_load_sees_busy_work() -> None:
    load = ProcessCPULoad()
    end = time.monotonic() + 0.2
    while time.monotonic() < end:
        sum(range(1000))
    busy = load()
    time.sleep(0.2)
    idle = load()
    assert 0.0 <= idle < busy <= 1.0


def test_json_logs_carry_worker_job_and_room() -> None:
    out = io.StringIO()
    handler = configure_logging(stream=out)
    try:
        tokens = [worker_id_var.set("AW_1"), job_id_var.set("AJ_2"), room_var.set("lobby")]
        logging.getLogger("flowkit.worker.test").error("node failed", extra={"node": "stt"})
        for var, token in zip((worker_id_var, job_id_var, room_var), tokens, strict=True):
            var.reset(token)  # type: ignore[attr-defined]
    finally:
        logging.getLogger().removeHandler(handler)
    line = json.loads(out.getvalue().splitlines()[-1])
    assert line["message"] == "node failed" and line["level"] == "error"
    assert (line["worker_id"], line["job_id"], line["room"], line["node"]) == (
        "AW_1", "AJ_2", "lobby", "stt")


def test_rich_logs_for_development() -> None:
    out = io.StringIO()
    handler = configure_logging(dev=True, stream=out)
    try:
        token = job_id_var.set("AJ_3")
        logging.getLogger("flowkit.worker").warning("hello")
        job_id_var.reset(token)
    finally:
        logging.getLogger().removeHandler(handler)
    assert "hello" in out.getvalue() and "job_id=AJ_3" in out.getvalue()
