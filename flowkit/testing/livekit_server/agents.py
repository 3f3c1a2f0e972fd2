"""The test server's ``/agent`` endpoint: agent workers register here and get jobs.

A test double of LiveKit's agent dispatch, speaking the real protocol (binary WebSocket
frames, one serialized ``WorkerMessage`` / ``ServerMessage`` each):

- a worker connects with a Bearer JWT that holds the agent grant (401 naming the problem
  otherwise); its first message must be ``RegisterWorkerRequest``, and the server's first
  message is the ``RegisterWorkerResponse``;
- the server keeps each worker's agent name, job type, load and status
  (``UpdateWorkerStatus``), and every job's status (``UpdateJobStatus``);
- dispatch offers a job (``AvailabilityRequest``) to the matching workers, least loaded
  first; a worker that refuses, or does not answer within ``availability_timeout``, passes
  it to the next; an accepting worker gets a ``JobAssignment`` with a join token for the
  identity it chose. Which jobs a room gets (its dispatches: automatic, from its
  configuration, or from the server API) is decided in
  :mod:`~flowkit.testing.livekit_server.dispatches`; :meth:`AgentDispatcher.dispatch`
  offers one job directly;
- :meth:`AgentDispatcher.terminate` ends a job (``JobTermination``).

Use it with the test server (``TestLiveKitServer(agents=dispatcher.mount)``) or alone
(:func:`agent_app`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web
from livekit import api
from livekit.protocol import agent as agent_pb
from livekit.protocol import models

from flowkit.testing.livekit_server.dispatches import RoomDispatches

__all__ = [
    "DISPATCHER_KEY",
    "AgentDispatcher",
    "DispatchError",
    "ServerJob",
    "WorkerRecord",
    "agent_app",
]

log = logging.getLogger("flowkit.testing.agents")

_SERVER_VERSION = "1.9.0"

def _sid(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(6)}"


class DispatchError(Exception):
    """No registered worker took a job; the message says which workers were asked."""


@dataclass(eq=False)
class WorkerRecord:
    """A registered worker, as the server sees it.

    Attributes:
        id: The worker id the server gave it.
        agent_name: The agent name it registered with (empty: automatic dispatch).
        job_type: Which jobs it takes.
        version: Its version.
        namespace: Its namespace.
        permissions: What its agent participants may do.
        load: The load it last reported.
        status: ``WS_AVAILABLE`` or ``WS_FULL``, as last reported.
        draining: Whether it said it is draining.
        job_count: The job count it last reported.
        jobs: Ids of jobs assigned to it (while they run).
        offered: Ids of every job offered to it, in order.
        status_updates: How many ``UpdateWorkerStatus`` it sent.
    """

    id: str
    ws: web.WebSocketResponse
    agent_name: str
    job_type: agent_pb.JobType
    version: str = ""
    namespace: str = ""
    permissions: models.ParticipantPermission = field(
        default_factory=models.ParticipantPermission
    )
    load: float = 0.0
    status: agent_pb.WorkerStatus = agent_pb.WS_AVAILABLE
    draining: bool = False
    job_count: int = 0
    jobs: set[str] = field(default_factory=set)
    offered: list[str] = field(default_factory=list)
    status_updates: int = 0
    answers: dict[str, asyncio.Future[agent_pb.AvailabilityResponse]] = field(
        default_factory=dict
    )

    @property
    def available(self) -> bool:
        """Whether the worker may be offered a job now."""
        return self.status == agent_pb.WS_AVAILABLE and not self.draining and not self.ws.closed

    async def send(self, message: agent_pb.ServerMessage) -> bool:
        """Send one message; ``False`` if the connection is gone."""
        if self.ws.closed:
            return False
        try:
            await self.ws.send_bytes(message.SerializeToString())
        except (ConnectionError, RuntimeError):
            return False
        return True


@dataclass(eq=False)
class ServerJob:
    """A job the server dispatched, and what became of it.

    Attributes:
        job: The protocol's ``Job``.
        worker_id: The worker that took it (empty until assigned).
        status: The status the worker last reported (``JS_PENDING`` until then).
        error: The error the worker reported.
        participant_identity: The identity the agent joins as.
        token: The join token sent in the assignment.
        terminated: Whether :meth:`AgentDispatcher.terminate` was called.
    """

    job: agent_pb.Job
    worker_id: str = ""
    status: agent_pb.JobStatus = agent_pb.JS_PENDING
    error: str = ""
    participant_identity: str = ""
    token: str = ""
    terminated: bool = False

    @property
    def id(self) -> str:
        """The job's id."""
        return self.job.id

    @property
    def ended(self) -> bool:
        """Whether the worker reported the job finished (success or failure)."""
        return self.status in (agent_pb.JS_SUCCESS, agent_pb.JS_FAILED, agent_pb.JS_CANCELLED)


class AgentDispatcher:
    """The server side of the agent protocol: workers, jobs, dispatch and termination.

    Args:
        api_key: The API key worker tokens must be issued by (default: the test server's,
            when mounted on it).
        api_secret: The secret worker tokens must be signed with (same default).
        availability_timeout: Seconds a worker has to answer an ``AvailabilityRequest``.
        dispatch_timeout: Seconds :meth:`dispatch` waits for some worker to take a job.
        register_timeout: Seconds a new connection has to send its registration.
        job_url: The URL put in assignments (empty: the worker's own server URL).
    """

    def __init__(
        self,
        api_key: str | None = None,
        api_secret: str | None = None,
        *,
        availability_timeout: float = 5.0,
        dispatch_timeout: float = 10.0,
        register_timeout: float = 10.0,
        job_url: str = "",
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.availability_timeout = availability_timeout
        self.dispatch_timeout = dispatch_timeout
        self.register_timeout = register_timeout
        self.job_url = job_url
        self.workers: dict[str, WorkerRecord] = {}
        self.jobs: dict[str, ServerJob] = {}
        self.registrations = 0
        self._dispatched_rooms: set[str] = set()
        self.room_dispatches = RoomDispatches(self)
        """Each room's dispatches, and the jobs they launch (on the test server's app)."""
        self._changed = asyncio.Event()

    # -- mounting ---------------------------------------------------------------------------

    def mount(self, app: web.Application) -> None:
        """Add ``GET /agent`` to ``app``; on the test server, dispatch when rooms are created.

        On the test server's application the key pair defaults to the server's, every room
        created (by a join, ``create_room`` or the Twirp API) gets its dispatches, and they
        launch jobs as rooms are created, participants join and tracks are published (see
        :mod:`~flowkit.testing.livekit_server.dispatches`); the Twirp API's
        AgentDispatchService finds this dispatcher under :data:`DISPATCHER_KEY`.
        """
        from flowkit.testing.livekit_server.app import CONFIG_KEY, ROOMS_KEY

        config = app.get(CONFIG_KEY)
        if config is not None:
            self.api_key = self.api_key or config.api_key
            self.api_secret = self.api_secret or config.api_secret
        rooms = app.get(ROOMS_KEY)
        if rooms is not None:
            rooms.on_room_created(self.room_dispatches.room_created)
            rooms.on_participant_joined(self.room_dispatches.participant_joined)
            rooms.on_track_published(self.room_dispatches.participant_published)
        if not (self.api_key and self.api_secret):
            raise ValueError(
                "AgentDispatcher needs the API key and secret worker tokens are signed with: "
                "pass api_key= and api_secret=, or mount it on the test server's app"
            )
        app[DISPATCHER_KEY] = self
        app.router.add_get("/agent", self.handle)
        app.on_shutdown.append(self._shutdown)

    async def _shutdown(self, app: web.Application) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every worker connection (as a server going away would) and stop dispatching."""
        await self.room_dispatches.aclose()
        for worker in list(self.workers.values()):
            await worker.ws.close(code=1001, message=b"server shutting down")
        self.workers.clear()
        self._notify()

    # -- waiting (for tests) -------------------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until ``predicate()`` holds; it is checked whenever workers or jobs change.

        Raises:
            TimeoutError: It did not hold within ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            while True:
                changed = self._changed
                if predicate():
                    return
                await changed.wait()

    async def wait_for_workers(self, count: int = 1, timeout: float = 10.0) -> list[WorkerRecord]:
        """Wait until ``count`` workers are registered; return them."""
        await self.wait_until(lambda: len(self.workers) >= count, timeout)
        return list(self.workers.values())

    async def wait_for_job(
        self, job_id: str, *statuses: agent_pb.JobStatus, timeout: float = 10.0
    ) -> ServerJob:
        """Wait until job ``job_id`` is known with one of ``statuses`` (any, if none given)."""

        def reached() -> bool:
            job = self.jobs.get(job_id)
            return job is not None and (not statuses or job.status in statuses)

        await self.wait_until(reached, timeout)
        return self.jobs[job_id]

    # -- the WebSocket -------------------------------------------------------------------------

    def _verify(self, request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        token = token or request.query.get("access_token", "")
        if not token:
            raise web.HTTPUnauthorized(
                text="no access token: send 'Authorization: Bearer <jwt>' with the agent grant"
            )
        try:
            claims = api.TokenVerifier(self.api_key, self.api_secret).verify(token)
        except Exception as error:
            raise web.HTTPUnauthorized(
                text=f"invalid worker token ({error}): sign it with this server's API key "
                f"{self.api_key!r} and its secret"
            ) from error
        if claims.video is None or not claims.video.agent:
            raise web.HTTPUnauthorized(
                text="the token has no agent grant: use VideoGrants(agent=True)"
            )

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """``GET /agent``: authenticate, register the worker, then serve its messages."""
        self._verify(request)
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        worker = await self._register(ws)
        if worker is None:
            await ws.close(code=1008, message=b"the first message must be a registration")
            return ws
        try:
            async for frame in ws:
                if frame.type is not WSMsgType.BINARY:
                    continue
                message = agent_pb.WorkerMessage()
                try:
                    message.ParseFromString(frame.data)
                except Exception:
                    log.warning("worker %s sent a frame that is not a WorkerMessage", worker.id)
                    continue
                await self._on_message(worker, message)
        finally:
            self.workers.pop(worker.id, None)
            for answer in worker.answers.values():
                if not answer.done():
                    answer.cancel()
            log.info("worker %s disconnected", worker.id)
            self._notify()
        return ws

    async def _register(self, ws: web.WebSocketResponse) -> WorkerRecord | None:
        try:
            frame = await ws.receive(timeout=self.register_timeout)
        except TimeoutError:
            return None
        if frame.type is not WSMsgType.BINARY:
            return None
        message = agent_pb.WorkerMessage()
        try:
            message.ParseFromString(frame.data)
        except Exception:
            return None
        if not message.HasField("register"):
            return None
        reg = message.register
        worker = WorkerRecord(
            id=_sid("AW"), ws=ws, agent_name=reg.agent_name, job_type=reg.type,
            version=reg.version, namespace=reg.namespace,
            permissions=reg.allowed_permissions,
        )
        info = models.ServerInfo(
            edition=models.ServerInfo.Standard, version=_SERVER_VERSION, protocol=16,
            agent_protocol=1, node_id="flowkit-test-server",
        )
        await worker.send(agent_pb.ServerMessage(
            register=agent_pb.RegisterWorkerResponse(worker_id=worker.id, server_info=info)
        ))
        self.workers[worker.id] = worker
        self.registrations += 1
        log.info("worker %s registered (agent %r)", worker.id, worker.agent_name)
        self._notify()
        return worker

    async def _on_message(self, worker: WorkerRecord, message: agent_pb.WorkerMessage) -> None:
        kind = message.WhichOneof("message")
        if kind == "update_worker":
            update = message.update_worker
            worker.load = update.load
            if update.HasField("status"):
                worker.status = update.status
            worker.draining = update.draining
            worker.job_count = update.job_count
            worker.status_updates += 1
        elif kind == "availability":
            answer = worker.answers.pop(message.availability.job_id, None)
            if answer is not None and not answer.done():
                answer.set_result(message.availability)
        elif kind == "update_job":
            self._job_update(worker, message.update_job)
        elif kind == "ping":
            now = int(time.time() * 1000)
            await worker.send(agent_pb.ServerMessage(
                pong=agent_pb.WorkerPong(last_timestamp=message.ping.timestamp, timestamp=now)
            ))
        self._notify()

    def _job_update(self, worker: WorkerRecord, update: agent_pb.UpdateJobStatus) -> None:
        job = self.jobs.get(update.job_id)
        if job is None:
            # A job from before a server restart: the worker still reports it.
            job = ServerJob(agent_pb.Job(id=update.job_id), worker_id=worker.id)
            self.jobs[update.job_id] = job
        job.status = update.status
        job.error = update.error
        if job.ended:
            worker.jobs.discard(job.id)
            for record in self.workers.values():
                record.jobs.discard(job.id)

    # -- dispatch ------------------------------------------------------------------------------

    def has_worker(self, agent_name: str, job_type: agent_pb.JobType) -> bool:
        """Whether a connected worker is registered for ``agent_name`` and ``job_type``."""
        return any(
            w.agent_name == agent_name and w.job_type == job_type for w in self.workers.values()
        )

    def dispatched_to(self, room: str) -> bool:
        """Whether :meth:`dispatch` has offered a job for ``room``."""
        return room in self._dispatched_rooms

    async def dispatch(
        self,
        room: str,
        agent_name: str = "",
        metadata: str = "",
        *,
        job_type: agent_pb.JobType = agent_pb.JT_ROOM,
        participant: models.ParticipantInfo | None = None,
        room_info: models.Room | None = None,
        timeout: float | None = None,
        dispatch_id: str = "",
    ) -> ServerJob:
        """Dispatch a job for ``room`` to a worker registered as ``agent_name``.

        Matching workers are offered the job least loaded first; the first to accept gets
        it. When none does, the job waits (up to ``timeout``, default ``dispatch_timeout``)
        for a worker to register or become available. ``dispatch_id`` names the dispatch the
        job belongs to (the Twirp API passes the id it returned); a fresh one by default.

        Returns:
            The job, assigned (its ``worker_id`` says to whom).

        Raises:
            DispatchError: No worker took the job in time; the message lists who was asked.
        """
        job = agent_pb.Job(
            id=_sid("AJ"), dispatch_id=dispatch_id or _sid("AD"), type=job_type,
            room=room_info if room_info is not None else models.Room(sid=_sid("RM"), name=room),
            namespace="", metadata=metadata, agent_name=agent_name,
            state=agent_pb.JobState(status=agent_pb.JS_PENDING, updated_at=time.time_ns()),
        )
        if participant is not None:
            job.participant.CopyFrom(participant)
        record = ServerJob(job)
        self.jobs[job.id] = record
        self._dispatched_rooms.add(room)
        asked: list[str] = []
        limit = self.dispatch_timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(limit):
                while True:
                    changed = self._changed
                    for worker in self._candidates(job, asked):
                        asked.append(worker.id)
                        if await self._offer(worker, record):
                            return record
                    await changed.wait()
        except TimeoutError:
            record.status = agent_pb.JS_FAILED
            record.error = "no worker took the job"
            self._notify()
            names = f"agent {agent_name!r}" if agent_name else "automatic dispatch (no name)"
            raise DispatchError(
                f"no worker took job {job.id} for room {room!r} ({names}) within {limit:g} s; "
                f"asked {asked or 'nobody'}: start a worker registered with that agent name "
                "and job type, or check its accept hook and load"
            ) from None

    def _candidates(self, job: agent_pb.Job, asked: list[str]) -> list[WorkerRecord]:
        workers = [
            w for w in self.workers.values()
            if w.agent_name == job.agent_name and w.job_type == job.type
            and w.available and w.id not in asked
        ]
        return sorted(workers, key=lambda w: (w.load, len(w.jobs)))

    async def _offer(self, worker: WorkerRecord, record: ServerJob) -> bool:
        job = record.job
        answer = asyncio.get_running_loop().create_future()
        worker.answers[job.id] = answer
        worker.offered.append(job.id)
        sent = await worker.send(
            agent_pb.ServerMessage(availability=agent_pb.AvailabilityRequest(job=job))
        )
        try:
            reply = None
            if sent:
                # Not wait_for, which can lose the dispatch's own cancellation on Python 3.11
                # when the answer lands at the same moment.
                async with asyncio.timeout(self.availability_timeout):
                    reply = await answer
        except (TimeoutError, asyncio.CancelledError):
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the dispatch itself is cancelled (deleted, server closing), not the answer
            if not answer.cancelled() or worker.ws.closed:
                log.info("worker %s did not answer for job %s in time", worker.id, job.id)
            reply = None
        finally:
            worker.answers.pop(job.id, None)
        if reply is None or not reply.available:
            return False
        identity = reply.participant_identity or f"agent-{job.id}"
        record.participant_identity = identity
        record.token = self._agent_token(worker, job, reply, identity)
        record.worker_id = worker.id
        job.state.worker_id = worker.id
        job.state.participant_identity = identity
        worker.jobs.add(job.id)
        await worker.send(agent_pb.ServerMessage(assignment=agent_pb.JobAssignment(
            job=job, url=self.job_url, token=record.token,
        )))
        log.info("job %s for room %r assigned to worker %s", job.id, job.room.name, worker.id)
        self._notify()
        return True

    def _agent_token(
        self, worker: WorkerRecord, job: agent_pb.Job, reply: agent_pb.AvailabilityResponse,
        identity: str,
    ) -> str:
        perms = worker.permissions
        grants = api.VideoGrants(
            room_join=True, room=job.room.name, agent=True,
            can_publish=perms.can_publish, can_subscribe=perms.can_subscribe,
            can_publish_data=perms.can_publish_data,
            can_update_own_metadata=perms.can_update_metadata, hidden=perms.hidden,
        )
        token = (
            api.AccessToken(self.api_key, self.api_secret)
            .with_identity(identity).with_kind("agent").with_grants(grants)
        )
        if reply.participant_name:
            token = token.with_name(reply.participant_name)
        if reply.participant_metadata:
            token = token.with_metadata(reply.participant_metadata)
        if reply.participant_attributes:
            token = token.with_attributes(dict(reply.participant_attributes))
        return token.to_jwt()

    async def terminate(self, job_id: str) -> None:
        """Ask the worker running job ``job_id`` to end it (``JobTermination``).

        Raises:
            KeyError: No such job, or it was never assigned.
        """
        record = self.jobs.get(job_id)
        worker = self.workers.get(record.worker_id) if record is not None else None
        if record is None or worker is None:
            raise KeyError(f"job {job_id!r} is not running on a connected worker")
        record.terminated = True
        await worker.send(
            agent_pb.ServerMessage(termination=agent_pb.JobTermination(job_id=job_id))
        )


DISPATCHER_KEY = web.AppKey("flowkit_agent_dispatcher", AgentDispatcher)
"""Where :meth:`AgentDispatcher.mount` puts the dispatcher in the application."""


def agent_app(
    api_key: str, api_secret: str, *, availability_timeout: float = 5.0,
    dispatch_timeout: float = 10.0,
) -> tuple[web.Application, AgentDispatcher]:
    """A standalone application serving only ``/agent`` (and ``GET /`` for health)."""
    dispatcher = AgentDispatcher(
        api_key, api_secret, availability_timeout=availability_timeout,
        dispatch_timeout=dispatch_timeout,
    )
    app = web.Application()

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="OK")

    app.router.add_get("/", health)
    dispatcher.mount(app)
    return app, dispatcher

