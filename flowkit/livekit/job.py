"""The LiveKit side of a job: the room, joining it, its room I/O and the server API.

The worker (or ``flowkit connect``) turns a plain :class:`~flowkit.job.JobContext` into a
LiveKit job with one call, then runs the graph on it::

    job = JobContext(job_id=..., room_name=..., metadata=..., agent_name=...,
                     participant_identity=...)
    await connect_job(job, url=assignment_url, token=assignment_token)
    # job.io is a LiveKitRoomIO, job.room the connected rtc.Room
    ...run build(job) with GraphRunner(graph, job=job), until it ends or
    job.wait_for_shutdown() returns (the room closed, or the graph asked)...
    await job.aclose()   # shutdown callbacks, then leave the room

:class:`LiveKitJob` is what ``job.livekit`` holds; ``JobContext.connect``,
``wait_for_participant``, ``publish_data``, ``room`` and ``api`` delegate to it.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
from typing import Any

from livekit import api, rtc

from flowkit.job import JobContext
from flowkit.livekit.follow import choose_participant
from flowkit.livekit.room_io import LiveKitRoomIO
from flowkit.livekit.tokens import room_token
from flowkit.livekit.watch import RoomWatch

__all__ = ["AutoSubscribe", "LiveKitJob", "attach_job", "connect_job"]

logger = logging.getLogger("flowkit.livekit")


class AutoSubscribe(enum.StrEnum):
    """Which remote tracks a job subscribes to as they are published."""

    SUBSCRIBE_ALL = "subscribe_all"
    SUBSCRIBE_NONE = "subscribe_none"
    AUDIO_ONLY = "audio_only"
    VIDEO_ONLY = "video_only"


# The reasons a participant leaves for that end the job serving them (LiveKit Agents' own
# for closing a session): they hung up or closed the app, the room was deleted, they
# declined the call. A lost connection or a removal by the server is not one: a client
# whose link dropped may come back, and a removal is the server's own decision.
_CLOSING_REASONS = frozenset({
    rtc.DisconnectReason.CLIENT_INITIATED,
    rtc.DisconnectReason.ROOM_DELETED,
    rtc.DisconnectReason.USER_REJECTED,
})

_KINDS = {
    AutoSubscribe.AUDIO_ONLY: rtc.TrackKind.KIND_AUDIO,
    AutoSubscribe.VIDEO_ONLY: rtc.TrackKind.KIND_VIDEO,
}


class LiveKitJob:
    """A job's LiveKit session: the room, its :class:`LiveKitRoomIO`, the API client.

    Args:
        job: The job it serves (its ``participant_identity`` is the room source's default).
        url: The LiveKit server's WebSocket URL (from the job assignment).
        token: The token to join the room with (from the job assignment).
        api_key: The API key for :attr:`api` (``LIVEKIT_API_KEY`` when empty).
        api_secret: The API secret for :attr:`api` (``LIVEKIT_API_SECRET`` when empty).
        room: The room object to use (a new ``rtc.Room`` when ``None``).
        io_options: Keyword arguments for :class:`LiveKitRoomIO`.
    """

    def __init__(
        self,
        job: JobContext,
        *,
        url: str,
        token: str,
        api_key: str = "",
        api_secret: str = "",
        room: rtc.Room | None = None,
        **io_options: Any,
    ) -> None:
        if not url or not token:
            raise ValueError(
                f"job {job.job_id!r}: a LiveKit job needs the server URL and a join token "
                f"(got url={url!r}, token {'set' if token else 'empty'}); the job assignment "
                "carries both"
            )
        self.job = job
        self.url, self.token = url, token
        self._api_key, self._api_secret = api_key, api_secret
        self.room = room if room is not None else rtc.Room()
        io_options.setdefault("participant", job.participant_identity or None)
        self.io = LiveKitRoomIO(self.room, **io_options)
        self._watch = RoomWatch(self.room)
        self._api: api.LiveKitAPI | None = None
        self._auto_subscribe = AutoSubscribe.SUBSCRIBE_ALL
        # The first participant seen who is not an agent: whom the job serves while its
        # inputs have heard nobody (a text-only graph), as LiveKit links the first to join.
        self._first_person: str | None = None
        self.room.on("disconnected", self._on_disconnected)
        self.room.on("participant_connected", self._on_participant_connected)
        self.room.on("participant_disconnected", self._on_participant_disconnected)

    @property
    def api(self) -> api.LiveKitAPI:
        """The server API client, made on first use (closed with the job).

        Raises:
            RuntimeError: No API key and secret were given (nor set in the environment).
        """
        if self._api is None:
            try:
                self._api = api.LiveKitAPI(
                    _http_url(self.url), self._api_key or None, self._api_secret or None
                )
            except ValueError as exc:
                raise RuntimeError(
                    f"job.api needs the LiveKit API key and secret ({exc}); set "
                    "LIVEKIT_API_KEY and LIVEKIT_API_SECRET for the worker"
                ) from None
        return self._api

    @property
    def api_credentials(self) -> tuple[str, str]:
        """The API key and secret the job signs with (given, else from the environment).

        Raises:
            RuntimeError: Neither given nor set in the environment.
        """
        key = self._api_key or os.environ.get("LIVEKIT_API_KEY", "")
        secret = self._api_secret or os.environ.get("LIVEKIT_API_SECRET", "")
        if not key or not secret:
            raise RuntimeError(
                f"job {self.job.job_id!r} has no LiveKit API key and secret; set "
                "LIVEKIT_API_KEY and LIVEKIT_API_SECRET for the worker"
            )
        return key, secret

    def token_for(self, room: str) -> str:
        """A token for the agent to join ``room`` too, as itself, signed with the job's key.

        For a second room of the same job (a warm transfer's consultation room): the identity
        is the agent's in the job's room, the kind ``agent``.

        Raises:
            RuntimeError: The job has not joined its room yet, or has no API key and secret.
        """
        if not self.room.isconnected():
            raise RuntimeError(
                f"job {self.job.job_id!r}: token_for({room!r}) before the job joined its room; "
                "the token is for the agent's identity, known once it has joined"
            )
        key, secret = self.api_credentials
        return room_token(key, secret, room, self.room.local_participant.identity, kind="agent")

    async def connect(
        self, auto_subscribe: AutoSubscribe | str = AutoSubscribe.SUBSCRIBE_ALL
    ) -> None:
        """Join the room; return at once when already connected.

        Raises:
            ValueError: ``auto_subscribe`` is not one of :class:`AutoSubscribe`.
            rtc.ConnectError: The server refused the token or could not be reached.
        """
        mode = _auto_subscribe(auto_subscribe)
        if self.room.isconnected():
            self.io.start()
            return
        self._auto_subscribe = mode
        if mode in _KINDS:
            self.room.on("track_published", self._on_track_published)
        options = rtc.RoomOptions(auto_subscribe=mode is AutoSubscribe.SUBSCRIBE_ALL)
        await self.room.connect(self.url, self.token, options)
        logger.info(
            "job %s joined room %s as %s",
            self.job.job_id,
            self.room.name,
            self.room.local_participant.identity,
        )
        if mode in _KINDS:
            for participant in self.room.remote_participants.values():
                for publication in participant.track_publications.values():
                    self._on_track_published(publication, participant)
        for participant in self.room.remote_participants.values():
            self._on_participant_connected(participant)
        self.io.start()

    @property
    def linked_participant(self) -> str | None:
        """The identity of the participant the job serves, if known yet.

        The room I/O's (a participant job's participant, else whom its audio inputs last
        heard), else the first participant who joined and is not an agent (once they have
        left, the first of those still here, or the next to join). When they leave for
        good, the job ends (``job.close_on_disconnect``).
        """
        return self.io.linked_participant or self._first_person

    async def wait_for_participant(
        self, identity: str | None = None, *, agents: bool = False
    ) -> rtc.RemoteParticipant:
        """Wait until ``identity`` (or anyone) is in the room.

        Raises:
            RuntimeError: The room closed first.
        """
        while True:
            if identity is not None:
                found = self.room.remote_participants.get(identity)
            elif agents:
                found = next(iter(self.room.remote_participants.values()), None)
            else:
                found = choose_participant(self.room, None)
                if found is not None and found.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT:
                    found = None
            if found is not None:
                return found
            if self._watch.closed:
                who = repr(identity) if identity is not None else "a participant"
                raise RuntimeError(
                    f"job {self.job.job_id!r}: stopped waiting for {who}: "
                    f"{self._watch.close_reason}"
                )
            await self._watch.changed()

    async def aclose(self) -> None:
        """Close the room I/O, leave the room, close the API client. Safe to call twice."""
        await self.io.aclose()
        self._watch.close("the job closed")
        self._watch.detach()
        self.room.off("disconnected", self._on_disconnected)
        self.room.off("participant_connected", self._on_participant_connected)
        self.room.off("participant_disconnected", self._on_participant_disconnected)
        with contextlib.suppress(Exception):
            await self.room.disconnect()
        if self._api is not None:
            await self._api.aclose()
            self._api = None

    def _on_disconnected(self, reason: Any = None) -> None:
        self.job.shutdown(self._watch.close_reason or "the room disconnected")

    def _on_participant_connected(self, participant: rtc.RemoteParticipant) -> None:
        agent = participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
        if self._first_person is None and not agent:
            self._first_person = participant.identity

    def _on_participant_disconnected(self, participant: rtc.RemoteParticipant) -> None:
        identity = participant.identity
        linked = self.linked_participant
        if identity == self._first_person:
            # Whoever is here next takes their place (the job goes on, or ends just below).
            self._first_person = None
            for other in self.room.remote_participants.values():
                self._on_participant_connected(other)
        if identity != linked:
            return
        reason = participant.disconnect_reason
        name = rtc.DisconnectReason.Name(reason) if reason is not None else "no reason given"
        if reason not in _CLOSING_REASONS or not self.job.close_on_disconnect:
            logger.info(
                "job %s: participant %r left the room (%s); the job goes on", self.job.job_id,
                identity, name,
            )
            return
        logger.info(
            "job %s: participant %r left the room (%s): ending the job (set "
            "job.close_on_disconnect = False to keep it)", self.job.job_id, identity, name,
        )
        self.job.shutdown(f"participant {identity!r} left the room ({name})")

    def _on_track_published(
        self, publication: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant
    ) -> None:
        if publication.kind == _KINDS.get(self._auto_subscribe) and not publication.subscribed:
            publication.set_subscribed(True)


def attach_job(
    job: JobContext,
    *,
    url: str,
    token: str,
    api_key: str = "",
    api_secret: str = "",
    room: rtc.Room | None = None,
    **io_options: Any,
) -> LiveKitJob:
    """Make ``job`` a LiveKit job without joining yet: sets ``job.livekit`` and ``job.io``.

    ``job.connect()`` (in a node, or the caller) joins later. Arguments as for
    :class:`LiveKitJob`.

    Raises:
        ValueError: The job already has a LiveKit session, or ``url`` or ``token`` is empty.
    """
    if job.livekit is not None:
        raise ValueError(
            f"job {job.job_id!r} is already attached to room {job.livekit.room.name!r}; "
            "attach a job once"
        )
    session = LiveKitJob(
        job, url=url, token=token, api_key=api_key, api_secret=api_secret, room=room,
        **io_options,
    )
    job.livekit = session
    job.io = session.io
    return session


async def connect_job(
    job: JobContext,
    *,
    url: str,
    token: str,
    auto_subscribe: AutoSubscribe | str = AutoSubscribe.SUBSCRIBE_ALL,
    api_key: str = "",
    api_secret: str = "",
    room: rtc.Room | None = None,
    **io_options: Any,
) -> LiveKitJob:
    """Attach ``job`` to its LiveKit room (:func:`attach_job`) and join it.

    On return ``job.io`` is the room's :class:`LiveKitRoomIO` and ``job.room`` is connected;
    when the room disconnects, ``job.shutdown()`` is called with the reason. On failure the
    job is closed (nothing is left connected) and the error raised.

    Raises:
        ValueError: A bad argument (see :func:`attach_job`, :class:`AutoSubscribe`).
        rtc.ConnectError: The server refused the token or could not be reached.
    """
    _auto_subscribe(auto_subscribe)  # fail before making anything
    session = attach_job(
        job, url=url, token=token, api_key=api_key, api_secret=api_secret, room=room,
        **io_options,
    )
    try:
        await session.connect(auto_subscribe)
    except BaseException:
        await session.aclose()
        raise
    return session


def _auto_subscribe(value: AutoSubscribe | str) -> AutoSubscribe:
    try:
        return AutoSubscribe(value)
    except ValueError:
        choices = ", ".join(repr(m.value) for m in AutoSubscribe)
        raise ValueError(
            f"auto_subscribe={value!r} is not one of {choices}"
        ) from None


def _http_url(url: str) -> str:
    """The API's HTTP URL for a server's WebSocket URL."""
    if url.startswith("wss://"):
        return "https://" + url.removeprefix("wss://")
    if url.startswith("ws://"):
        return "http://" + url.removeprefix("ws://")
    return url
