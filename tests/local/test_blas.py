"""numpy's BLAS is held to one thread for the process once a model that needs it loads.

Each check runs in a fresh interpreter: the setting is the process's for good, and whether
it was set before is what is tested.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Prints the BLAS thread counts seen from the main thread and from a new worker thread,
# before and after ``action`` runs on a worker thread (as the models load and run there).
_PROBE = """
import json, threading
import numpy  # loads its OpenBLAS, so that threadpoolctl sees it from the start
from threadpoolctl import ThreadpoolController

def counts():
    info = ThreadpoolController().select(user_api="blas").info()
    return sorted({{lib["num_threads"] for lib in info}})

def on_worker(fn):
    out = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    thread.join()
    return out[0]

before = counts()
on_worker(lambda: ({action}))
print(json.dumps({{"before": before, "main": counts(), "worker": on_worker(counts)}}))
"""


def probe(action: str, setup: str = "") -> dict[str, list[int]]:
    code = setup + _PROBE.format(action=action)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, list[int]] = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["before"], "threadpoolctl found no BLAS library: numpy's OpenBLAS is missing"
    if result["before"] == [1]:
        pytest.fail("numpy's BLAS runs one thread here already; this needs two cores or more")
    return result


def test_holding_blas_to_one_thread_from_a_worker_holds_it_for_every_thread() -> None:
    seen = probe(
        "hold_blas_to_one_thread(), hold_blas_to_one_thread()",
        setup="from flowkit_local.blas import hold_blas_to_one_thread\n",
    )
    assert seen["main"] == [1] and seen["worker"] == [1]


@pytest.mark.parametrize(
    ("setup", "action"),
    [
        ("from flowkit_local import SmartTurnModel\n", "SmartTurnModel().load()"),
        ("from flowkit_local import WhisperSTTProvider\n", "WhisperSTTProvider()._get_model()"),
    ],
    ids=["smart_turn", "whisper"],
)
def test_a_model_that_computes_numpy_features_holds_blas_to_one_thread_when_it_loads(
    setup: str, action: str
) -> None:
    # Its mel spectrogram is a numpy product: OpenBLAS's threads would spin after it and
    # keep a second core busy through the network call that follows (blas.py).
    seen = probe(action, setup=setup)
    assert seen["main"] == [1] and seen["worker"] == [1]


def test_without_a_model_the_process_keeps_its_blas_threads() -> None:
    seen = probe("None")
    assert seen["main"] == seen["before"] != [1]
