"""numpy's BLAS held to one thread in a process that runs the local models.

The local models compute their features with numpy (Whisper's and Smart Turn's mel
spectrograms are a numpy matrix product), then run a network on threads of their own
(CTranslate2's OpenMP, onnxruntime's). numpy's OpenBLAS starts threads for the product, and
they spin-wait after it, keeping a second core busy through the network call that follows:
a Smart Turn prediction took 90 ms of CPU for 46 ms of work, a Whisper transcription 628 for
536 (``bench/providers.py`` and ad hoc, one process each). A voice agent's numpy products are
small and its sessions share the cores, so one BLAS thread is what they should have.

:func:`hold_blas_to_one_thread` sets numpy's BLAS (threadpoolctl's ``user_api="blas"``; the
models' own thread pools are not BLAS and stay as configured) to one thread for the whole
process, once; the models that need it call it when they load. It is a setting of the
process, not a scoped one, on purpose: OpenBLAS (0.3.31 with numpy 2.4) ignores a limit that
a worker thread sets once the main thread has set one itself, so a limit set and restored
around each call (the models run on worker threads) stops working for good as soon as any
call happens on the main thread. An application that wants numpy's BLAS threaded again can
set it after loading the models (``threadpoolctl.threadpool_limits``).
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["hold_blas_to_one_thread"]

_lock = threading.Lock()
_limiter: Any = None  # threadpoolctl's limiter, kept: the limit stays for the process


def hold_blas_to_one_thread() -> None:
    """Set numpy's BLAS to one thread for the process (the first call; later ones do nothing)."""
    global _limiter
    with _lock:
        if _limiter is not None:
            return
        from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

        _limiter = ThreadpoolController().limit(limits=1, user_api="blas")
