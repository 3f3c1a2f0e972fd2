"""What a graph file's ``build(job)`` receives: the job the graph is built for.

Outside LiveKit (``flowkit validate``, ``viz``, offline ``run``) the job is a plain
:class:`JobContext` describing a local run; the LiveKit worker (and ``flowkit connect``)
attaches a LiveKit session to it with :func:`flowkit.livekit.connect_job`, after which the
room, the API client and data publishing are available and ``io`` is the room's
:class:`~flowkit.livekit.LiveKitRoomIO`.

Every job can be asked to end (:meth:`JobContext.shutdown`) and runs its shutdown callbacks
once when it closes (:meth:`JobContext.aclose`); whoever runs the job (the worker, the
``connect`` command) waits for :meth:`JobContext.wait_for_shutdown` beside the graph.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flowkit.usage import UsageLedger

if TYPE_CHECKING:
    from livekit import api, rtc
    from livekit.protocol import sip as sip_pb

    from flowkit.livekit.job import AutoSubscribe, LiveKitJob
    from flowkit.room_io import RoomIO

__all__ = ["JobContext", "ShutdownCallback"]

logger = logging.getLogger("flowkit.job")

ShutdownCallback = Callable[[str], Awaitable[None]] | Callable[[], Awaitable[None]]
"""An async function run when the job ends; it may take the shutdown reason."""


@dataclass(slots=True)
class JobContext:
    """The job a graph is built and run for.

    Attributes:
        job_id: The job's id (``"local"`` outside LiveKit).
        room_name: The room the job serves (empty outside LiveKit).
        metadata: The job's metadata text, as set at dispatch.
        agent_name: The agent name the worker registered with.
        extra: Anything the caller wants a graph file to see (command-line options, ...).
        io: Where room nodes read and write (``None`` when the graph is only built, e.g.
            for ``flowkit validate``; a room node then fails to start with a clear error).
        participant_identity: The participant a participant job is for (the room source's
            default participant); empty otherwise.
        livekit: The LiveKit session of a LiveKit job (:func:`flowkit.livekit.connect_job`
            sets it); ``None`` outside LiveKit.
        close_on_disconnect: In LiveKit, end the job when the participant it serves leaves
            the room (they hung up or closed the app, declined the call, or the room was
            deleted), as LiveKit Agents closes its session; ``False`` keeps the job, whose
            room inputs then follow whoever comes next. Read when they leave, so
            ``build(job)`` or a node may set it.
        shutdown_reason: Why the job was asked to end, once it was.
        usage: What the providers of the job's graph consumed (tokens, characters, seconds
            of audio; :class:`~flowkit.usage.UsageLedger`): ``job.usage.summary()``, e.g.
            in a shutdown callback, for cost accounting.
    """

    job_id: str = "local"
    room_name: str = ""
    metadata: str = ""
    agent_name: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    io: RoomIO | None = None
    participant_identity: str = ""
    livekit: LiveKitJob | None = None
    close_on_disconnect: bool = True
    shutdown_reason: str | None = field(default=None, init=False)
    usage: UsageLedger = field(default_factory=UsageLedger, init=False, repr=False)
    _shutdown: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)
    _callbacks: list[ShutdownCallback] = field(default_factory=list, init=False, repr=False)
    _closed: bool = field(default=False, init=False, repr=False)

    @classmethod
    def local(cls, **extra: Any) -> JobContext:
        """A job for building a graph outside LiveKit (validate, viz, offline runs)."""
        return cls(extra=dict(extra))

    # --- LiveKit (after flowkit.livekit.connect_job)

    @property
    def room(self) -> rtc.Room:
        """The LiveKit room of the job.

        Raises:
            RuntimeError: The job runs outside LiveKit.
        """
        return self._livekit("room").room

    @property
    def api(self) -> api.LiveKitAPI:
        """The LiveKit server API client (rooms, egress, SIP, dispatch), made on first use.

        Raises:
            RuntimeError: The job runs outside LiveKit, or has no API key and secret.
        """
        return self._livekit("api").api

    # Call control: thin delegates, so a graph's code finds them where LiveKit Agents has
    # them; flowkit.livekit.calls says what each does and raises.

    async def delete_room(self) -> bool:
        """Delete the job's room, disconnecting everyone: the agent hangs up for all.

        Returns:
            ``True`` when this call deleted it, ``False`` when it was already gone.

        Raises:
            RuntimeError: The job runs outside LiveKit, or has no API key and secret.
        """
        from flowkit.livekit.calls import delete_room

        return await delete_room(self._livekit("delete_room()"))

    async def add_sip_participant(
        self, call_to: str, *, trunk_id: str, **options: Any
    ) -> sip_pb.SIPParticipantInfo:
        """Dial a phone number into the room through an outbound SIP trunk.

        See :func:`flowkit.livekit.calls.add_sip_participant` for the options
        (``participant_identity``, ``wait_until_answered``, ``ringing_timeout``, ...).

        Raises:
            RuntimeError: The job runs outside LiveKit.
        """
        from flowkit.livekit.calls import add_sip_participant

        job = self._livekit("add_sip_participant()")
        return await add_sip_participant(job, call_to, trunk_id=trunk_id, **options)

    async def transfer_sip_participant(
        self, participant: rtc.RemoteParticipant | str, transfer_to: str, *,
        play_dialtone: bool = False,
    ) -> sip_pb.TransferSIPParticipantResponse:
        """Transfer a phone caller to another number (see :mod:`flowkit.livekit.calls`).

        Raises:
            RuntimeError: The job runs outside LiveKit.
        """
        from flowkit.livekit.calls import transfer_sip_participant

        job = self._livekit("transfer_sip_participant()")
        return await transfer_sip_participant(
            job, participant, transfer_to, play_dialtone=play_dialtone
        )

    async def connect(self, auto_subscribe: AutoSubscribe | str = "subscribe_all") -> None:
        """Join the room (the worker has usually done it already: then this returns at once).

        Args:
            auto_subscribe: Which tracks to subscribe to as they are published:
                ``subscribe_all``, ``audio_only``, ``video_only`` or ``subscribe_none``.

        Raises:
            RuntimeError: The job runs outside LiveKit.
        """
        await self._livekit("connect()").connect(auto_subscribe)

    async def wait_for_participant(
        self, identity: str | None = None, *, agents: bool = False
    ) -> rtc.RemoteParticipant:
        """Wait until a participant is in the room, and return them.

        Args:
            identity: Whom to wait for; ``None``: anyone.
            agents: Whether another agent counts as "anyone".

        Raises:
            RuntimeError: The job runs outside LiveKit, or the room closed first.
        """
        return await self._livekit("wait_for_participant()").wait_for_participant(
            identity, agents=agents
        )

    async def publish_data(
        self,
        payload: bytes | str,
        *,
        topic: str = "",
        reliable: bool = True,
        destination_identities: list[str] | None = None,
    ) -> None:
        """Send a data packet to the room (or to the given identities).

        Raises:
            RuntimeError: The job runs outside LiveKit, or the room closed.
        """
        await self._livekit("publish_data()").io.publish_data(
            payload, topic=topic, reliable=reliable, destination_identities=destination_identities
        )

    # --- every job

    def add_shutdown_callback(self, callback: ShutdownCallback) -> None:
        """Run ``callback`` (async, optionally taking the reason) when the job closes."""
        self._callbacks.append(callback)

    def shutdown(self, reason: str = "") -> None:
        """Ask for the job to end; the first reason given is kept. Returns at once."""
        if self.shutdown_reason is None:
            self.shutdown_reason = reason
        self._shutdown.set()

    @property
    def shutdown_requested(self) -> bool:
        """Whether :meth:`shutdown` was called (or the room closed)."""
        return self._shutdown.is_set()

    async def wait_for_shutdown(self) -> str:
        """Wait until the job is asked to end; return the reason."""
        await self._shutdown.wait()
        return self.shutdown_reason or ""

    async def aclose(self, reason: str | None = None) -> None:
        """End the job: run the shutdown callbacks (in order), then leave the room.

        A callback's error is logged, not raised, so every callback runs. Safe to call twice.

        Args:
            reason: Why it ends, if :meth:`shutdown` did not already say.
        """
        if self._closed:
            return
        self._closed = True
        self.shutdown(reason if reason is not None else "the job closed")
        why = self.shutdown_reason or ""
        for callback in self._callbacks:
            try:
                takes_reason = bool(inspect.signature(callback).parameters)
                if takes_reason:
                    await callback(why)  # type: ignore[call-arg]
                else:
                    await callback()  # type: ignore[call-arg]
            except Exception:
                logger.exception("shutdown callback %r of job %s failed", callback, self.job_id)
        if self.livekit is not None:
            await self.livekit.aclose()

    def _livekit(self, what: str) -> LiveKitJob:
        if self.livekit is None:
            raise RuntimeError(
                f"job.{what} needs a LiveKit job, but job {self.job_id!r} runs outside LiveKit "
                "(offline run, validate or viz); run the graph with `flowkit start graph.py` "
                "or `flowkit connect graph.py --room NAME`, or attach a room with "
                "flowkit.livekit.connect_job(job, url=..., token=...)"
            )
        return self.livekit
