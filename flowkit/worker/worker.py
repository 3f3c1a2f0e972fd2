"""The agent worker: registers with a LiveKit server and runs one fresh graph per job.

The worker keeps one connection to the server's ``/agent`` endpoint (reconnecting with
backoff, registering again, while running jobs keep going), answers each offered job through
the accept hook, and runs each assigned job as its own task: build the graph with
``build(job)``, join the room through the ``connect_job`` hook, run the graph with a
:class:`~flowkit.runtime.runner.GraphRunner`, report the job's status. A job that fails ends
alone. Every ``status_interval`` seconds the worker reports its load; it is full at
``load_threshold`` or ``max_jobs``, or while its process's memory is above ``memory_limit_mb``
(:mod:`flowkit.worker.memory`). :meth:`Worker.drain` stops taking jobs and lets running ones
finish up to ``drain_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from functools import partial
from pathlib import Path
from typing import Any, cast

import aiohttp
from livekit.protocol import agent as agent_pb

from flowkit.graph import Graph
from flowkit.job import JobContext
from flowkit.loader import GraphFileError
from flowkit.recording import ConversationRecorder, RecordingIO
from flowkit.runtime.loop_watch import LoopWatch
from flowkit.runtime.runner import GraphRunner
from flowkit.telemetry import JobSpans
from flowkit.timeline import TurnRecord, TurnTimeline
from flowkit.trace import TurnTrace, trace_of_run
from flowkit.usage import UsageLedger
from flowkit.worker.jobs import (
    AcceptFn,
    ConnectJob,
    Disconnect,
    GraphFactory,
    JobAcceptance,
    JobRequest,
    RunningJob,
    accept_all,
    job_context,
    no_room,
)
from flowkit.worker.logs import job_id_var, room_var, worker_id_var
from flowkit.worker.memory import MemoryWatch, process_rss_mb
from flowkit.worker.options import ProcessCPULoad, WorkerOptions
from flowkit.worker.protocol import (
    AgentConnection,
    WorkerAuthError,
    WorkerConnectError,
    reconnect_delays,
)
from flowkit.worker.stalls import StallReporter

__all__ = ["Worker", "install_signal_handlers"]

log = logging.getLogger("flowkit.worker")

_STATUS_NAMES = {
    agent_pb.JS_SUCCESS: "success", agent_pb.JS_FAILED: "failed",
    agent_pb.JS_RUNNING: "running", agent_pb.JS_PENDING: "pending",
}


class Worker:
    """A LiveKit agent worker serving one graph file.

    Args:
        graph: The graph file, or a function that builds the graph for a job.
        options: Server, credentials, registration and limits (:meth:`options.check` is
            called here).
        accept: The accept hook: ``request.accept(identity=..., ...)`` takes the job,
            ``request.reject()`` (``None``) refuses it; may be async.
        connect_job: Joins the job's room before its graph runs (see
            :class:`~flowkit.worker.jobs.ConnectJob`); the default joins nothing.
        trace_dir: Write a trace of each job (:mod:`flowkit.trace`) to
            ``trace_dir/<job id>.json`` when it ends; ``None``: no traces.
        record_dir: Record each job's conversation (the user left, the agent right) to
            ``record_dir/<job id>.wav`` as it goes (:mod:`flowkit.recording`); ``None``:
            no recordings.
        tracer_provider: An OpenTelemetry ``TracerProvider`` for each job's spans
            (:mod:`flowkit.telemetry`): a turn's as soon as the next user turn is committed,
            the rest and the job's own when the job ends; ``None``: none.

    Raises:
        WorkerOptionsError: An option is missing or wrong.
        GraphFileError: The graph file is missing or does not import.
    """

    def __init__(
        self,
        graph: str | Path | Callable[[JobContext], Graph],
        options: WorkerOptions,
        *,
        accept: AcceptFn = accept_all,
        connect_job: ConnectJob = no_room,
        trace_dir: str | Path | None = None,
        tracer_provider: Any = None,
        record_dir: str | Path | None = None,
    ) -> None:
        options.check()
        self.options = options
        self._build = graph if callable(graph) else GraphFactory(graph)
        self._accept = accept
        self._connect_job = connect_job
        self.trace_dir = Path(trace_dir) if trace_dir is not None else None
        self.record_dir = Path(record_dir) if record_dir is not None else None
        # An OpenTelemetry tracer for each job's spans (flowkit.telemetry), if one was given.
        self._tracer = (
            tracer_provider.get_tracer("flowkit") if tracer_provider is not None else None
        )
        self._load_fnc = options.load_fnc or ProcessCPULoad()
        # The process's memory against memory_warn_mb and memory_limit_mb (read with the load).
        self.memory = MemoryWatch(
            options.memory_warn_mb, options.memory_limit_mb, options.memory_fnc or process_rss_mb
        )
        self.id = ""
        self.load = 0.0
        self.draining = False
        self.jobs: dict[str, RunningJob] = {}
        # The shared event loop, watched for code that blocks it (every job waits then).
        self.loop_watch: LoopWatch | None = (
            LoopWatch(options.loop_stall_ms / 1000, StallReporter(self.jobs))
            if options.loop_stall_ms else None
        )
        self.outcomes: Counter[str] = Counter()
        # What every job's providers consumed (each job's ledger counts into it): /metrics.
        self.usage = UsageLedger()
        self.server_info: agent_pb.RegisterWorkerResponse | None = None
        self._conn: AgentConnection | None = None
        self._pending: dict[str, JobAcceptance] = {}
        self._unsent: list[agent_pb.WorkerMessage] = []
        self._registered = asyncio.Event()
        self._stop = asyncio.Event()
        self._run_task: asyncio.Task[None] | None = None
        self._drain_task: asyncio.Task[None] | None = None
        self._seq = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._prewarmed = False

    # -- state -----------------------------------------------------------------------------

    @property
    def graph_factory(self) -> GraphFactory | None:
        """The factory of a worker given a graph file (``None`` when given a function)."""
        return self._build if isinstance(self._build, GraphFactory) else None

    @property
    def connected(self) -> bool:
        """Whether the worker is registered with the server right now."""
        return self._registered.is_set()

    @property
    def full(self) -> bool:
        """Whether the worker refuses new jobs.

        It does while draining, at ``max_jobs``, at ``load_threshold``, and while its
        process's memory is over ``memory_limit_mb``.
        """
        o = self.options
        taken = len(self.jobs) + len(self._pending)
        return (
            self.draining
            or (o.max_jobs is not None and taken >= o.max_jobs)
            or self.load >= o.load_threshold
            or self.memory.over_limit
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, timeout: float | None = None) -> None:
        """Run the worker in the background and return once it is registered.

        Raises:
            WorkerAuthError: The server refused the credentials.
            WorkerConnectError: The worker gave up connecting (``max_retries``).
            GraphFileError: The graph file's ``prewarm()`` raised.
            TimeoutError: Not registered within ``timeout`` seconds.
        """
        self._run_task = asyncio.get_running_loop().create_task(self.run(), name="flowkit:worker")
        registered = asyncio.ensure_future(self._registered.wait())
        try:
            done, _ = await asyncio.wait(
                {registered, self._run_task}, timeout=timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            registered.cancel()
        if self._run_task in done:
            self._run_task.result()
            raise WorkerConnectError("the worker stopped before it registered")
        if not done:
            raise TimeoutError(f"the worker did not register within {timeout} s")

    async def wait_registered(self, timeout: float | None = None) -> None:
        """Wait until the worker is (again) registered with the server."""
        async with asyncio.timeout(timeout):  # not wait_for: see AgentConnection.open
            await self._registered.wait()

    async def run(self) -> None:
        """Connect, register and serve jobs until closed or drained; reconnect when cut off.

        A graph file's ``prewarm()`` runs first, once (see
        :class:`~flowkit.worker.jobs.GraphFactory`): the worker registers, and so takes
        jobs, only after it.

        Raises:
            WorkerAuthError: The server refused the credentials (never retried).
            WorkerConnectError: ``max_retries`` connection attempts in a row failed.
            GraphFileError: The graph file's ``prewarm()`` raised.
        """
        # Watched while the worker serves (unless off, or already watched by an earlier run).
        watch = self.loop_watch
        if watch is not None and watch.running:
            watch = None  # an earlier run of this worker is watching already
        if watch is not None:
            watch.start()
        try:
            await self._prewarm()
            await self._connect_and_serve()
        finally:
            if watch is not None:
                watch.stop()

    async def _prewarm(self) -> None:
        """The graph file's ``prewarm()``, once, on a thread, before the worker registers.

        On a thread: the loop goes on serving the worker's HTTP endpoints meanwhile.
        """
        if self._prewarmed or not isinstance(self._build, GraphFactory):
            return
        started = time.perf_counter()
        await asyncio.to_thread(self._build.prewarm)
        self._prewarmed = True
        if callable(getattr(self._build.module, "prewarm", None)):
            log.info("prewarm() of %s took %.1f s", self._build.given,
                     time.perf_counter() - started)

    async def _connect_and_serve(self) -> None:
        failures = 0
        delays = reconnect_delays(self.options.reconnect_min, self.options.reconnect_max)
        async with aiohttp.ClientSession() as session:
            while not self._stop.is_set():
                conn = AgentConnection(self.options, session)
                self._conn = conn
                try:
                    registration = await conn.open()
                except WorkerAuthError:
                    raise
                except WorkerConnectError as exc:
                    failures += 1
                    retries = self.options.max_retries
                    if retries is not None and failures > retries:
                        raise WorkerConnectError(
                            f"gave up after {failures} attempts: {exc}"
                        ) from exc
                    delay = next(delays)
                    log.warning("%s; retrying in %.1f s (attempt %d)", exc, delay, failures)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(delay):
                            await self._stop.wait()
                    continue
                failures = 0
                delays = reconnect_delays(self.options.reconnect_min, self.options.reconnect_max)
                await self._serve(conn, registration)
                if not self._stop.is_set():
                    log.warning("lost the connection to the LiveKit server; reconnecting")
        self._conn = None

    async def drain(self, timeout: float | None = None) -> None:
        """Stop taking jobs, let running jobs finish (up to ``timeout``), then close.

        Jobs still running after ``timeout`` (default ``options.drain_timeout``) are ended.
        """
        if self._drain_task is None:
            self._drain_task = asyncio.get_running_loop().create_task(self._drain(timeout))
        await asyncio.shield(self._drain_task)

    async def _drain(self, timeout: float | None) -> None:
        self.draining = True
        limit = self.options.drain_timeout if timeout is None else timeout
        log.info("draining: no new jobs; waiting up to %g s for %d running job(s)",
                 limit, len(self.jobs))
        await self._send_worker_status()
        tasks = [j.task for j in self.jobs.values() if j.task is not None]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=limit)
            if late:
                log.warning("drain timeout: ending %d job(s) still running", len(late))
        await self.aclose()

    async def aclose(self) -> None:
        """End every job, close the connection and stop :meth:`run` (idempotent)."""
        self._stop.set()
        tasks = [j.task for j in self.jobs.values() if j.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._conn is not None:
            await self._conn.close()
        run_task = self._run_task
        if run_task is not None and run_task is not asyncio.current_task():
            # What ended the run (gave up connecting, a prewarm() that raised) was raised
            # by start() or run() already.
            with contextlib.suppress(asyncio.CancelledError, WorkerConnectError, GraphFileError):
                await run_task

    # -- connection --------------------------------------------------------------------------

    async def _serve(
        self, conn: AgentConnection, registration: agent_pb.RegisterWorkerResponse
    ) -> None:
        self.id = registration.worker_id
        self.server_info = registration
        worker_id_var.set(self.id)
        log.info("registered with %s as worker %s (agent %r, %s jobs)",
                 self.options.agent_ws_url(), self.id, self.options.agent_name,
                 self.options.job_type.value)
        self._registered.set()
        unsent, self._unsent = self._unsent, []
        for update in unsent:
            await self._send(update)
        status = asyncio.get_running_loop().create_task(self._report_status())
        try:
            while (message := await conn.receive()) is not None:
                self._handle(message)
        finally:
            self._registered.clear()
            status.cancel()
            await conn.close()

    def _handle(self, message: agent_pb.ServerMessage) -> None:
        kind = message.WhichOneof("message")
        if kind == "availability":
            self._spawn(self._answer(message.availability))
        elif kind == "assignment":
            self._start_job(message.assignment)
        elif kind == "termination":
            self._terminate(message.termination.job_id)
        elif kind not in ("pong", "register"):
            log.debug("ignored server message %s", kind)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as a task the worker keeps until it is done."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, message: agent_pb.WorkerMessage, *, keep: bool = False) -> None:
        conn = self._conn
        sent = conn is not None and self.connected and await conn.send(message)
        if not sent and keep:
            self._unsent.append(message)  # job statuses reach the server after reconnecting

    async def _report_status(self) -> None:
        while True:
            await self._send_worker_status()
            await asyncio.sleep(self.options.status_interval)

    async def _send_worker_status(self) -> None:
        try:
            self.load = float(self._load_fnc())
        except Exception:
            log.exception("the load function raised; reporting the last load")
        self.memory.update(len(self.jobs))
        await self._send_status()

    async def _send_status(self) -> None:
        """Send UpdateWorkerStatus with the figures as they are (nothing is read)."""
        self._seq += 1
        update = agent_pb.UpdateWorkerStatus(
            status=agent_pb.WS_FULL if self.full else agent_pb.WS_AVAILABLE,
            load=self.load, job_count=len(self.jobs), draining=self.draining,
            seq=self._seq,
        )
        await self._send(agent_pb.WorkerMessage(update_worker=update))

    # -- jobs ---------------------------------------------------------------------------------

    async def _answer(self, request: agent_pb.AvailabilityRequest) -> None:
        job = request.job
        # The memory now, not as last reported: jobs offered in a burst between two reports
        # must not take the process past its limit. A crossing is reported at once.
        if self.memory.update(len(self.jobs)):
            await self._send_status()
        acceptance = None if self.full else await self._ask_accept(JobRequest(job))
        if acceptance is not None and self.full:
            acceptance = None  # filled up while the hook ran
        reply = agent_pb.AvailabilityResponse(job_id=job.id, available=acceptance is not None)
        if acceptance is not None:
            self._pending[job.id] = acceptance
            asyncio.get_running_loop().call_later(
                self.options.availability_timeout * 3, self._pending.pop, job.id, None
            )
            reply.participant_identity = acceptance.identity
            reply.participant_name = acceptance.name
            reply.participant_metadata = acceptance.metadata
            reply.participant_attributes.update(acceptance.attributes)
        log.info("%s job %s for room %r", "accepted" if acceptance else "refused", job.id,
                 job.room.name, extra={"job_id": job.id, "room": job.room.name})
        await self._send(agent_pb.WorkerMessage(availability=reply))

    async def _ask_accept(self, request: JobRequest) -> JobAcceptance | None:
        try:
            answer = self._accept(request)
            if inspect.isawaitable(answer):
                async with asyncio.timeout(self.options.availability_timeout):
                    answer = await answer
        except TimeoutError:
            log.warning("the accept hook took longer than %g s; refusing job %s",
                        self.options.availability_timeout, request.id)
            return None
        except Exception:
            log.exception("the accept hook raised; refusing job %s", request.id)
            return None
        if answer is not None and not isinstance(cast(object, answer), JobAcceptance):
            log.error("the accept hook returned %r; return request.accept(...) or "
                      "request.reject(); refusing job %s", answer, request.id)
            return None
        return answer

    def _start_job(self, assignment: agent_pb.JobAssignment) -> None:
        job_id = assignment.job.id
        if job_id in self.jobs:
            log.warning("job %s was assigned again; it is already running", job_id)
            return
        acceptance = self._pending.pop(job_id, None)
        context = job_context(
            assignment, worker_url=self.options.url, worker_id=self.id, acceptance=acceptance
        )
        running = RunningJob(context, acceptance)
        self.jobs[job_id] = running
        running.task = asyncio.get_running_loop().create_task(
            self._run_job(running), name=f"flowkit:job:{job_id}"
        )

    def _terminate(self, job_id: str) -> None:
        running = self.jobs.get(job_id)
        if running is None or running.task is None:
            log.info("termination of job %s, which is not running here", job_id)
            return
        log.info("the server ended job %s", job_id, extra={"job_id": job_id})
        running.terminated = True
        running.task.cancel()

    async def _run_job(self, job: RunningJob) -> None:
        job_id_var.set(job.id)
        room_var.set(job.room_name)
        status, error, reason = agent_pb.JS_SUCCESS, "", "the graph finished"
        disconnect: Disconnect | None = None
        job.context.usage.into = self.usage
        try:
            graph = self._build(job.context)
            disconnect = await self._connect_job(job.context)
            self._record(job)
            job.runner = GraphRunner(graph, job=job.context)
            await job.runner.start()
            # Right after start, before the graph's tasks run: no turn is missed.
            job.origin = asyncio.get_running_loop().time()
            job.spans = self._job_spans(job, graph.name)
            job.timeline = TurnTimeline.attach(job.runner, on_turn_over=(
                None if job.spans is None else partial(_send_turn, job.spans, job.origin)
            ))
            await self._job_status(job, agent_pb.JS_RUNNING)
            log.info("job started: graph %r in room %r", graph.name, job.room_name)
            await _wait_job(job.runner, job.context)
            if job.context.shutdown_requested:
                reason = job.context.shutdown_reason or "the job was shut down"
        except asyncio.CancelledError:
            reason = "the server ended the job"
            if not job.terminated:
                reason = "ended by the worker (drain timeout or close)"
                status, error = agent_pb.JS_FAILED, reason
            _uncancel()
        except Exception as exc:
            status, error = agent_pb.JS_FAILED, f"{type(exc).__name__}: {exc}"
            reason = f"the job failed: {error}"
            log.error("job failed: %s", error, exc_info=exc)
        finally:
            await self._end_job(job, disconnect, status, error, reason)

    async def _end_job(
        self, job: RunningJob, disconnect: Disconnect | None,
        status: agent_pb.JobStatus, error: str, reason: str,
    ) -> None:
        if job.runner is not None:
            try:
                await job.runner.close()
            except Exception:
                log.exception("closing the graph of job %s raised", job.id)
            self._report_trace(job)
        if job.recorder is not None:
            job.recorder.close()  # a file it could not write was logged, and stopped it
            if job.recorder.failed is None:
                log.info("recorded job %s to %s (%.1f s)", job.id, job.recorder.path,
                         job.recorder.seconds)
        try:
            # Shutdown callbacks, then leave the room (when connect_job attached one).
            await job.context.aclose(reason)
            if disconnect is not None:
                await disconnect()
        except Exception:
            log.exception("leaving the room of job %s raised", job.id)
        self.jobs.pop(job.id, None)
        outcome = "terminated" if job.terminated else _STATUS_NAMES.get(status, "unknown")
        self.outcomes[outcome] += 1
        log.info("job ended: %s (%s)", outcome, reason)
        usage = job.context.usage.summary()
        if usage.providers:
            log.info("job %s usage: %s", job.id, usage.describe(),
                     extra={"usage": usage.model_dump(mode="json")})
        await self._job_status(job, status, error)
        if not self._stop.is_set():
            await self._send_worker_status()

    def _report_trace(self, job: RunningJob) -> None:
        """Write ``job``'s trace into ``trace_dir`` and send its spans to the tracer.

        A failed job's too: that is their use. Neither may fail the job's end.
        """
        if job.runner is None or job.timeline is None:
            return
        if self.trace_dir is None and self._tracer is None:
            return
        trace = trace_of_run(job.runner, job.timeline, job.origin)
        if self.trace_dir is not None:
            path = self.trace_dir / f"{job.id}.json"
            try:
                self.trace_dir.mkdir(parents=True, exist_ok=True)
                trace.write(path)
            except OSError as exc:
                log.error("cannot write the trace of job %s to %s: %s", job.id, path, exc)
            else:
                log.info("wrote the trace of job %s to %s", job.id, path)
        if job.spans is not None:
            try:
                job.spans.end(trace)
            except Exception:
                log.exception("cannot send the spans of job %s to the tracer", job.id)

    def _record(self, job: RunningJob) -> None:
        """Record ``job``'s room I/O into ``record_dir``, when the worker records and it has one."""
        io = job.context.io
        if self.record_dir is None or io is None:
            return
        job.recorder = ConversationRecorder(self.record_dir / f"{job.id}.wav")
        job.context.io = RecordingIO(io, job.recorder)

    def _job_spans(self, job: RunningJob, graph: str) -> JobSpans | None:
        """The spans of ``job``, opened now, if the worker has a tracer (never fails the job)."""
        if self._tracer is None:
            return None
        attributes = {
            "flowkit.job.id": job.id, "livekit.room": job.room_name,
            "livekit.agent_name": self.options.agent_name,
        }
        try:
            return JobSpans(self._tracer, graph=graph, attributes=attributes)
        except Exception:
            log.exception("cannot open the spans of job %s; it runs without them", job.id)
            return None

    async def _job_status(
        self, job: RunningJob, status: agent_pb.JobStatus, error: str = ""
    ) -> None:
        job.status = status
        update = agent_pb.UpdateJobStatus(job_id=job.id, status=status, error=error)
        await self._send(agent_pb.WorkerMessage(update_job=update), keep=True)


def _send_turn(spans: JobSpans, origin: float, record: TurnRecord) -> None:
    """Send a turn the timeline says is over (its times made relative to the job's start)."""
    spans.send_turn(TurnTrace.of(record, origin))


async def _wait_job(runner: GraphRunner, context: JobContext) -> None:
    """Until the graph ends, or the job is shut down (its room closed, or a node asked)."""
    graph = asyncio.ensure_future(runner.wait())
    closed = asyncio.ensure_future(context.wait_for_shutdown())
    try:
        await asyncio.wait({graph, closed}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (graph, closed):
            task.cancel()
    if graph.done() and not graph.cancelled():
        graph.result()


def _uncancel() -> None:
    """The job task was cancelled on purpose: let its cleanup await freely."""
    task = asyncio.current_task()
    if task is not None:
        while task.uncancel():
            pass


def install_signal_handlers(worker: Worker) -> None:
    """SIGTERM and SIGINT drain the worker; a second SIGINT closes it at once."""
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if worker.draining and signum == signal.SIGINT:
            log.warning("second interrupt: ending every job now")
            worker._spawn(worker.aclose())
            return
        log.info("%s: draining", signal.Signals(signum).name)
        worker._spawn(worker.drain())

    if threading.current_thread() is not threading.main_thread():
        log.debug("not on the main thread: SIGTERM/SIGINT are not handled by the worker")
        return
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
