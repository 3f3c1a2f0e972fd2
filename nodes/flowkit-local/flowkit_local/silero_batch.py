"""Silero VAD batched across streams: one model call per event-loop iteration for all of them.

The Silero model takes a batch (``[B, 576]`` windows and ``[2, B, 128]`` states) and one
call for 100 streams costs about a quarter of 100 single calls (15 against about 60 us per window
with the dense 16 kHz model), with outputs equal to them to float rounding. Streams of one
process share an event loop, so the windows they complete while the loop runs one batch of
callbacks (frames of many sessions that arrived together) can go through the model
together:

1. :meth:`BatchedSileroVADStream.push` cuts its audio into windows like any
   :class:`~flowkit.vad.energy.WindowedVADStream`, keeps them (copied) with the stream and
   puts the stream on its loop's :class:`SileroBatcher`; it returns ``[]``.
2. The first stream queued in an iteration schedules the batcher with ``loop.call_soon``,
   so it runs right after the callbacks already ready, before the loop polls again. A batch
   that does not hold a window of every stream then waits for the others, up to the
   provider's ``batch_wait`` (2 ms) after its first window: a transport delivers each
   session's frames at its own moment, and the windows of one iteration alone would make
   calls of one or two rows, several times dearer per window.
3. The batcher gives the model one row per stream with a pending window (each stream's own
   context and recurrent state); a window depends on the state the one before left, so a
   stream's windows cannot share a call. A big batch (the provider's ``batch_thread_from``,
   128 windows by default) runs on the batcher's worker thread while the loop goes on serving
   every other session, and the next call, with the windows pushed meanwhile, starts when
   its result is back; a smaller one runs on the loop, as many rounds as the stream with
   most pending windows needs.
4. Each stream then steps its hysteresis state machine with its probabilities (and the
   level gate's verdict on each window, computed for the whole batch from the same
   samples, exactly), as the synchronous stream would have, and hands the decisions to
   its ``on_decisions``. The per-window work left in Python is that step and a few
   assignments; everything else is one numpy call per batch.

The decisions equal :class:`~flowkit_local.silero.SileroVADStream`'s for the same audio;
they only come later: one loop iteration, or the model call's time on the worker thread.
``flush`` settles a stream's pending windows at once, so a consumer that flushes at the end
of its audio loses nothing. Pushed outside a running event loop, a stream classifies at once
and returns its decisions from ``push``, as the :class:`~flowkit.vad.DeferredVADProvider`
contract allows.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from flowkit.vad.contract import DecisionCallback, PCMSamples, VADDecision

# silero.py imports this module only when it makes a batched stream, so no cycle at load.
from flowkit_local import silero as _silero

if TYPE_CHECKING:
    from flowkit_local.silero import FloatArray, SileroVADProvider

__all__ = ["BatchedSileroVADStream", "SileroBatcher"]


def classify(provider: SileroVADProvider, streams: Sequence[BatchedSileroVADStream]) -> int:
    """Classify every pending window of ``streams``, batching across streams.

    Args:
        provider: The provider whose model runs.
        streams: Streams, each at most once; those with nothing pending are skipped.

    Returns:
        The number of model calls made.
    """
    active = [s for s in streams if s._pending]
    calls = 0
    while active:
        rows, states, levels = _gather(provider, active)
        probabilities, new_states = provider._run(rows, states)
        calls += 1
        # One conversion per call: the state machine compares Python numbers.
        probability_of, level_of = probabilities[:, 0].tolist(), levels.tolist()
        for index, stream in enumerate(active):
            _advance(stream, probability_of[index], level_of[index], new_states, index)
        active = [s for s in active if s._pending]
    return calls


def _gather(
    provider: SileroVADProvider, streams: Sequence[BatchedSileroVADStream]
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.int64]]:
    """The model's inputs for the next pending window of each stream, and the windows' levels.

    Returns:
        The rows (each stream's context, the end of its window before, then the window),
        the streams' states, and each window's sum of squared samples for the level gate.
    """
    context, window = provider.context, provider.window
    ints = np.empty((len(streams), context + window), dtype=np.int16)
    # One C call for the whole batch, each row's context then its window, straight into the
    # rows' memory (np.stack costs about twice as much: it checks and reshapes every array).
    cut = window - context
    np.concatenate(
        [part for s in streams for part in (s._last[cut:], s._pending[0])], out=ints.reshape(-1)
    )
    rows: FloatArray = np.multiply(ints, _silero._INT16_SCALE)
    levels = _silero.SileroVADStream._window_levels(ints[:, context:])
    return rows, np.concatenate([s._state for s in streams], axis=1), levels


def _advance(
    stream: BatchedSileroVADStream,
    probability: float,
    level: int,
    new_states: FloatArray,
    index: int,
) -> None:
    """Step ``stream`` through its oldest pending window, classified in row ``index``."""
    block = stream._pending.pop(0)
    stream._last = block  # the next window's context
    # A view into the call's output: the next call gathers it again anyway.
    stream._state = new_states[:, index : index + 1]
    decision = stream._step(
        probability, block if stream._keep else None, stream._below_gate(level)
    )
    if decision is not None:
        stream._decided.append(decision)


class _Batch:
    """One model call in flight on the batcher's thread: a row per stream."""

    __slots__ = ("future", "levels", "streams")

    def __init__(
        self, streams: list[BatchedSileroVADStream], levels: npt.NDArray[np.int64]
    ) -> None:
        self.streams = streams
        self.levels = levels
        self.future: concurrent.futures.Future[tuple[FloatArray, FloatArray]] | None = None

    def apply(self, stream: BatchedSileroVADStream) -> None:
        """Step ``stream`` through its row's window (the call must have finished)."""
        assert self.future is not None
        probabilities, new_states = self.future.result()
        index = self.streams.index(stream)  # a flush during the call: rare, so no index map
        _advance(
            stream, float(probabilities[index, 0]), int(self.levels[index]), new_states, index
        )
        stream._inflight = None


class SileroBatcher:
    """Batches the pending windows of one provider's streams on one event loop.

    Made by :meth:`~flowkit_local.silero.SileroVADProvider.batcher`; streams find it
    themselves. Its methods run on the loop's thread.

    A batch of at least ``thread_from`` windows (the provider's ``batch_thread_from``) runs
    its model call on the batcher's own worker thread while the loop goes on: onnxruntime
    releases the GIL, so the other sessions' timers, tokens and audio are served during the
    call instead of waiting behind it (a call for 200 sessions takes about 3 ms). One call
    is in flight at a time, one window per stream; windows pushed meanwhile go in the next
    call, which starts as soon as the result is back on the loop. A smaller batch runs on
    the loop, every pending window of the iteration at once: handing a call to a thread
    and back costs two wake-ups, more than a short call holds the loop.

    Attributes:
        calls: Model calls made so far (for benchmarks).
        windows: Windows classified through this batcher so far.
        runs: Loop iterations in which the batcher ran.
    """

    def __init__(
        self,
        provider: SileroVADProvider,
        loop: asyncio.AbstractEventLoop,
        *,
        thread_from: int | None,
        wait: float = 0.0,
    ) -> None:
        """Make a batcher; normally through the provider.

        Args:
            provider: The provider whose model classifies the windows.
            loop: The event loop the streams are fed on.
            thread_from: Batches of at least this many windows run on a worker thread of
                this batcher; ``None``: every batch runs on the loop.
            wait: Seconds a batch that does not hold a window of every stream may wait
                for the others (the provider's ``batch_wait``); 0: never wait.
        """
        self._provider = provider
        self._loop = loop
        self._queued: list[BatchedSileroVADStream] = []
        self._scheduled = False
        self._wait = wait
        # The streams fed through this batcher and not flushed since: a batch holding a
        # window of each is full and waits no longer.
        self._members: weakref.WeakSet[BatchedSileroVADStream] = weakref.WeakSet()
        self._first_at = 0.0  # when the batch being gathered got its first window
        self._timer: asyncio.TimerHandle | None = None
        self._inflight: _Batch | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._thread_from = thread_from
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self.calls = 0
        self.windows = 0
        self.runs = 0

    def enqueue(self, stream: BatchedSileroVADStream) -> None:
        """Have ``stream``'s pending windows classified as soon as possible.

        Args:
            stream: A stream that is not already queued.
        """
        queued = self._queued
        queued.append(stream)
        self._idle.clear()
        if not stream._joined:
            stream._joined = True
            self._members.add(stream)
        if self._inflight is not None:
            return  # the call in flight starts the next one when it lands
        if not self._scheduled:
            # After the callbacks already ready in this iteration: every session's frame of
            # this tick is queued by then.
            self._scheduled = True
            if self._wait:
                self._first_at = self._loop.time()
            self._loop.call_soon(self._run_when_full)
        elif self._timer is not None and len(queued) >= len(self._members):
            # Waiting for the rest, and this was the last stream: go now.
            self._timer.cancel()
            self._timer = None
            self._loop.call_soon(self._run)

    def leave(self, stream: BatchedSileroVADStream) -> None:
        """Stop counting ``stream`` among those a full batch holds (its audio ended).

        Args:
            stream: A stream fed through this batcher.
        """
        stream._joined = False
        self._members.discard(stream)

    async def wait_idle(self) -> None:
        """Wait until every window queued so far is classified and its decisions delivered."""
        await self._idle.wait()

    def _run_when_full(self) -> None:
        # A batch without a window of every stream waits (up to ``wait`` after its first
        # window) for the others: a transport delivers each session's frames at its own
        # moment, so one iteration's batch holds only the sessions whose frames came
        # together, and a few windows per model call cost several times more per window.
        if self._wait and len(self._queued) < len(self._members):
            due = self._first_at + self._wait
            if due > self._loop.time():
                self._timer = self._loop.call_at(due, self._run)
                return
        self._run()

    def _run(self) -> None:
        self._scheduled = False
        self._timer = None
        if self._inflight is not None:
            return  # the call in flight starts the next one when it lands
        streams, self._queued = self._queued, []
        for stream in streams:
            stream._queued = False
        streams = [s for s in streams if s._pending]
        if not streams:
            self._idle.set()
            return
        self.runs += 1
        if self._thread_from is None or len(streams) < self._thread_from:
            self._classify_here(streams)
            if not self._queued:
                self._idle.set()
            return
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                1, thread_name_prefix="flowkit-silero"
            )
        rows, states, levels = _gather(self._provider, streams)
        batch = _Batch(streams, levels)
        for stream in streams:
            stream._inflight = batch
        self._inflight = batch
        self.calls += 1
        self.windows += len(streams)
        batch.future = self._executor.submit(self._provider._run, rows, states)
        batch.future.add_done_callback(lambda _: self._land_soon(batch))

    def _land_soon(self, batch: _Batch) -> None:
        # On the worker thread: hand the result to the loop (gone if the loop closed).
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._land, batch)

    def _land(self, batch: _Batch) -> None:
        self._inflight = None
        future = batch.future
        assert future is not None
        failure = future.exception()
        if failure is not None:
            for stream in batch.streams:
                if stream._inflight is batch:
                    stream._inflight = None
                    stream._drop_pending()
            self._report(failure)
        else:
            probabilities, new_states = future.result()
            probability_of, level_of = probabilities[:, 0].tolist(), batch.levels.tolist()
            for index, stream in enumerate(batch.streams):
                if stream._inflight is not batch:
                    continue  # a flush settled it during the call
                stream._inflight = None
                _advance(stream, probability_of[index], level_of[index], new_states, index)
                self._deliver(stream)
                if stream._pending and not stream._queued:
                    stream._queued = True
                    self._queued.append(stream)
        if self._queued:
            self._run()
        else:
            self._idle.set()

    def _classify_here(self, streams: list[BatchedSileroVADStream]) -> None:
        pending = sum(len(s._pending) for s in streams)
        try:
            self.calls += classify(self._provider, streams)
        except Exception as exc:  # reported to the loop, as any callback error is
            for stream in streams:
                stream._drop_pending()
            self._report(exc)
        else:
            self.windows += pending
        # Decisions of the windows classified before a failure go out too.
        for stream in streams:
            self._deliver(stream)

    def _deliver(self, stream: BatchedSileroVADStream) -> None:
        if not stream._decided:
            return
        decisions = stream._take_decisions()
        try:
            stream._on_decisions(decisions)
        except Exception as exc:  # one failing consumer must not starve the others
            self._loop.call_exception_handler(
                {"message": "a VAD on_decisions callback failed", "exception": exc}
            )

    def _report(self, error: BaseException) -> None:
        self._loop.call_exception_handler(
            {"message": "Silero VAD batch inference failed; windows dropped", "exception": error}
        )


class BatchedSileroVADStream(_silero.SileroVADStream):
    """A Silero stream whose windows are classified in batches with other streams'.

    Implements the deferred stream of :class:`~flowkit.vad.DeferredVADProvider`: ``push``
    returns ``[]`` inside a running event loop and the decisions reach ``on_decisions`` one
    loop iteration later; ``flush`` settles pending windows at once and returns their
    decisions followed by its own. Feed it from one event loop.
    """

    def __init__(self, provider: SileroVADProvider, on_decisions: DecisionCallback) -> None:
        """Make a stream; normally through ``provider.stream(on_decisions=...)``.

        Args:
            provider: The provider whose model and settings the stream uses.
            on_decisions: Receives the decisions of each batch, when there are any.
        """
        super().__init__(provider)
        self._on_decisions = on_decisions
        # The window classified last (its end is the next window's context), the windows
        # waiting for the model (owned copies, [window] int16 each) and the decisions of
        # the windows classified since the last hand-over.
        self._last: PCMSamples = np.zeros(provider.window, dtype=np.int16)
        self._pending: list[PCMSamples] = []
        self._decided: list[VADDecision] = []
        self._queued = False
        self._joined = False  # counted among the batcher's members
        # The batcher's call holding this stream's next window, until its result is applied.
        self._inflight: _Batch | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._batcher: SileroBatcher | None = None

    def push(self, samples: PCMSamples, sample_rate: int) -> list[VADDecision]:
        """Feed audio; its decisions go to ``on_decisions`` in the next loop iteration.

        Args:
            samples: 16-bit mono PCM, one dimension, any length.
            sample_rate: The provider's rate in Hz (16000 by default).

        Returns:
            ``[]`` inside a running event loop; outside one, the decisions, at once.

        Raises:
            TypeError: ``samples`` is not an int16 numpy array.
            ValueError: ``samples`` is not one-dimensional, or the rate is not the
                provider's.
        """
        # Owned: the windows wait for the batch, and the caller may reuse its buffer.
        blocks = self._cut_windows(samples, sample_rate, own=True)
        if blocks is None:
            return []
        # The level gate is applied when the windows are classified, for the whole batch.
        self._pending.extend(blocks)
        loop = self._loop
        # Is this stream's loop the one running in this thread? asyncio.get_running_loop()
        # answers that too, but on Python 3.11 it makes a getpid() system call each time,
        # which py-spy found in 4% of the event loop's time at 200 sessions (one call per
        # session and frame). A running asyncio loop records its thread, so once the loop
        # is known a comparison of thread ids answers it without a system call.
        if loop is None or getattr(loop, "_thread_id", None) != threading.get_ident():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                # No loop to defer to: classify now, as a synchronous stream would.
                return self._settle()
        if not self._queued:
            if loop is not self._loop:
                self._loop = loop
                self._batcher = self._provider.batcher(loop)
            assert self._batcher is not None
            self._queued = True
            self._batcher.enqueue(self)
        return []

    def flush(self) -> list[VADDecision]:
        """Settle pending windows at once, then end the current segment.

        Returns:
            The pending windows' decisions, then an end of speech when an utterance was
            open; nothing of the audio pushed so far reaches ``on_decisions`` afterwards.
        """
        decisions = self._settle()
        if self._joined and self._batcher is not None:
            self._batcher.leave(self)  # a batch need not wait for a stream that ended
        return decisions + super().flush()

    def reset(self) -> None:
        """Settle pending windows (to ``on_decisions``), then forget the model's memory."""
        decisions = self._settle()
        if decisions:
            self._on_decisions(decisions)
        super().reset()
        self._last = np.zeros(self._provider.window, dtype=np.int16)

    @property
    def pending_windows(self) -> int:
        """Windows pushed but not classified yet."""
        return len(self._pending)

    def _settle(self) -> list[VADDecision]:
        """Classify this stream's pending windows alone, now, and step through them."""
        batch = self._inflight
        if batch is not None:
            # Its next window is in a call on the batcher's thread: wait for that call (a
            # few ms at most), take this stream's row, then go on from its new state.
            assert batch.future is not None
            concurrent.futures.wait([batch.future])
            if batch.future.exception() is not None:
                self._inflight = None
                self._drop_pending()
                return self._take_decisions()
            batch.apply(self)
        classify(self._provider, (self,))
        return self._take_decisions()

    def _take_decisions(self) -> list[VADDecision]:
        """The decisions of the windows classified since the last call; clear them."""
        decisions = self._decided
        if not decisions:
            return []
        self._decided = []
        return decisions

    def _drop_pending(self) -> None:
        self._pending = []
