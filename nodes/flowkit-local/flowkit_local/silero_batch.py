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
   so it runs right after the callbacks already ready, before the loop polls again.
3. The batcher gives the model one row per stream with a pending window (each stream's own
   context and recurrent state); a window depends on the state the one before left, so a
   stream's windows cannot share a call. A big batch (the provider's ``batch_thread_from``,
   128 windows by default) runs on the batcher's worker thread while the loop goes on serving
   every other session, and the next call, with the windows pushed meanwhile, starts when
   its result is back; a smaller one runs on the loop, as many rounds as the stream with
   most pending windows needs.
4. Each stream then steps its hysteresis state machine with its probabilities (and the
   level gate's verdict on each window, taken at push time from the same samples), exactly
   as the synchronous stream would have, and hands the decisions to its ``on_decisions``.

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
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

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
    active = [s for s in streams if len(s._probs) < len(s._pending)]
    calls = 0
    while active:
        rows, states = _gather(provider, active)
        probabilities, new_states = provider._run(rows, states)
        calls += 1
        for index, stream in enumerate(active):
            _take_row(stream, index, rows, probabilities, new_states)
        active = [s for s in active if len(s._probs) < len(s._pending)]
    return calls


def _gather(
    provider: SileroVADProvider, streams: Sequence[BatchedSileroVADStream]
) -> tuple[FloatArray, FloatArray]:
    """The model's inputs for the next pending window of each stream: rows and states."""
    context = provider.context
    rows: FloatArray = np.empty((len(streams), context + provider.window), dtype=np.float32)
    # One C call per array for the whole batch, not per stream.
    blocks = np.stack([s._pending[len(s._probs)] for s in streams])
    np.multiply(blocks, _silero._INT16_SCALE, out=rows[:, context:])
    rows[:, :context] = np.stack([s._tail for s in streams])
    return rows, np.concatenate([s._state for s in streams], axis=1)


def _take_row(
    stream: BatchedSileroVADStream,
    index: int,
    rows: FloatArray,
    probabilities: FloatArray,
    new_states: FloatArray,
) -> None:
    """Give ``stream`` the result of its row ``index``: new state, context, probability."""
    # Views into the call's outputs: the next call gathers them again anyway.
    stream._state = new_states[:, index : index + 1]
    stream._tail = rows[index, rows.shape[1] - stream._provider.context :]
    stream._probs.append(float(probabilities[index, 0]))


class _Batch:
    """One model call in flight on the batcher's thread: a row per stream."""

    __slots__ = ("future", "rows", "rows_of", "streams")

    def __init__(self, streams: list[BatchedSileroVADStream], rows: FloatArray) -> None:
        self.streams = streams
        self.rows_of = {id(stream): index for index, stream in enumerate(streams)}
        self.rows = rows
        self.future: concurrent.futures.Future[tuple[FloatArray, FloatArray]] | None = None

    def apply(self, stream: BatchedSileroVADStream) -> None:
        """Give ``stream`` its row's result (the call must have finished)."""
        assert self.future is not None
        probabilities, new_states = self.future.result()
        _take_row(stream, self.rows_of[id(stream)], self.rows, probabilities, new_states)
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
    ) -> None:
        """Make a batcher; normally through the provider.

        Args:
            provider: The provider whose model classifies the windows.
            loop: The event loop the streams are fed on.
            thread_from: Batches of at least this many windows run on a worker thread of
                this batcher; ``None``: every batch runs on the loop.
        """
        self._provider = provider
        self._loop = loop
        self._queued: list[BatchedSileroVADStream] = []
        self._scheduled = False
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
        self._queued.append(stream)
        self._idle.clear()
        if not self._scheduled and self._inflight is None:
            # After the callbacks already ready in this iteration: every session's frame of
            # this tick is queued by then.
            self._scheduled = True
            self._loop.call_soon(self._run)

    async def wait_idle(self) -> None:
        """Wait until every window queued so far is classified and its decisions delivered."""
        await self._idle.wait()

    def _run(self) -> None:
        self._scheduled = False
        if self._inflight is not None:
            return  # the call in flight starts the next one when it lands
        streams, self._queued = self._queued, []
        for stream in streams:
            stream._queued = False
        streams = [s for s in streams if s.pending_windows]
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
        rows, states = _gather(self._provider, streams)
        batch = _Batch(streams, rows)
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
        assert batch.future is not None
        failure = batch.future.exception()
        waiting = [s for s in batch.streams if s._inflight is batch]  # not settled by a flush
        if failure is not None:
            for stream in waiting:
                stream._inflight = None
                stream._drop_pending()
            self._report(failure)
        else:
            for stream in waiting:
                batch.apply(stream)
                self._deliver(stream)
                if stream.pending_windows and not stream._queued:
                    stream._queued = True
                    self._queued.append(stream)
        if self._queued:
            self._run()
        else:
            self._idle.set()

    def _classify_here(self, streams: list[BatchedSileroVADStream]) -> None:
        pending = sum(s.pending_windows for s in streams)
        try:
            self.calls += classify(self._provider, streams)
        except Exception as exc:  # reported to the loop, as any callback error is
            for stream in streams:
                stream._drop_pending()
            self._report(exc)
            return
        self.windows += pending
        for stream in streams:
            self._deliver(stream)

    def _deliver(self, stream: BatchedSileroVADStream) -> None:
        decisions = stream._take_decisions()
        if not decisions:
            return
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
        self._tail: FloatArray = np.zeros(provider.context, dtype=np.float32)
        # Windows waiting (copies, [window] int16 each), whether each is below the level
        # gate, and the probabilities found so far.
        self._pending: list[PCMSamples] = []
        self._quiet: list[bool] = []
        self._probs: list[float] = []
        self._queued = False
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
        self._pending.extend(blocks)
        self._quiet.extend(self._quiet_windows(blocks))
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
        return decisions + super().flush()

    def reset(self) -> None:
        """Settle pending windows (to ``on_decisions``), then forget the model's memory."""
        decisions = self._settle()
        if decisions:
            self._on_decisions(decisions)
        super().reset()
        self._tail = np.zeros(self._provider.context, dtype=np.float32)

    @property
    def pending_windows(self) -> int:
        """Windows pushed but not classified yet."""
        return len(self._pending) - len(self._probs)

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
                return []
            batch.apply(self)
        classify(self._provider, (self,))
        return self._take_decisions()

    def _take_decisions(self) -> list[VADDecision]:
        """Step the state machine through the classified windows; clear them."""
        pending, quiet, probs = self._pending, self._quiet, self._probs
        if not probs:
            return []
        keep = self._keep
        decisions: list[VADDecision] = []
        for block, below, probability in zip(pending, quiet, probs, strict=False):
            decision = self._step(probability, block if keep else None, below)
            if decision is not None:
                decisions.append(decision)
        del pending[: len(probs)]
        del quiet[: len(probs)]
        self._probs = []
        return decisions

    def _drop_pending(self) -> None:
        self._pending = []
        self._quiet = []
        self._probs = []
