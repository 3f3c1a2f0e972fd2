"""Room, participant and publisher jobs: the test server dispatches them as LiveKit does.

LiveKit (pkg/rtc/room.go) gives a room its dispatches when it is created (those its
configuration names, else a default one with no agent name) and adds more through the
server API. Each dispatch launches a ``JT_ROOM`` job, a ``JT_PARTICIPANT`` job for each
participant who is in the room or joins, and a ``JT_PUBLISHER`` job the first time a
participant publishes a track, each carrying that participant, for workers registered with
the dispatch's agent name and that job type; agent and egress participants trigger none.
The protocol tests run on 127.0.0.1 with raw workers (participants join over a bare ``/rtc``
WebSocket; publishing, which needs WebRTC, is driven on the server's room model). The
end-to-end test runs a flowkit publisher worker against two SDK clients in a private
network namespace and checks that each job's RoomSource hears its own publisher."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any

import aiohttp
import numpy as np
from aiortc.mediastreams import AudioStreamTrack
from livekit import api, rtc
from livekit.protocol import agent as agent_pb
from livekit.protocol import agent_dispatch, models
from livekit.protocol import room as room_pb
from livekit.protocol import rtc as rtc_pb
from scenario_kit import play_tone_track, until

import flowkit as fk
from flowkit.nodes.room import RoomSource
from flowkit.testing.livekit_server import TestLiveKitServer
from flowkit.testing.livekit_server.agents import AgentDispatcher
from flowkit.testing.livekit_server.rooms import Participant, PublishedTrack, Room, new_sid
from flowkit.worker import JobType, Worker, WorkerOptions
from flowkit.worker.jobs import livekit_room

if TYPE_CHECKING:
    from support import RawWorker

KEY = "devkey"
SECRET = "job-types-test-secret-0123456789abcdef"
TIMEOUT = 20.0


# Helpers -------------------------------------------------------------------------------------


@asynccontextmanager
async def serving(
    host: str = "127.0.0.1",
) -> AsyncIterator[tuple[TestLiveKitServer, AgentDispatcher]]:
    """The test server with agent dispatch mounted."""
    dispatcher = AgentDispatcher()
    server = TestLiveKitServer(host, api_key=KEY, api_secret=SECRET, agents=dispatcher.mount)
    async with server:
        yield server, dispatcher


@asynccontextmanager
async def raw_worker(
    server: TestLiveKitServer, job_type: agent_pb.JobType, agent_name: str = ""
) -> AsyncIterator[RawWorker]:
    """A protocol-level worker registered for ``job_type`` (unnamed by default)."""
    # Imported here: the namespace scenario loads this file in a subprocess whose sys.path
    # has tests/livekit but not tests/, where support.py lives.
    from support import RawWorker

    token = api.AccessToken(KEY, SECRET).with_grants(api.VideoGrants(agent=True)).to_jwt()
    async with aiohttp.ClientSession() as session, session.ws_connect(
        server.url + "/agent", headers={"Authorization": f"Bearer {token}"}
    ) as ws:
        worker = RawWorker(ws)
        await worker.register(agent_name, job_type=job_type)
        yield worker


@asynccontextmanager
async def joined(
    server: TestLiveKitServer, identity: str, kind: str = "", room: str = "lobby",
    room_config: room_pb.RoomConfiguration | None = None,
) -> AsyncIterator[None]:
    """A participant in ``room`` over a bare signal WebSocket (joining needs no WebRTC)."""
    token = server.token(identity, room, kind=kind, room_config=room_config)
    async with aiohttp.ClientSession() as session, session.ws_connect(
        server.url + "/rtc", headers={"Authorization": f"Bearer {token}"}
    ) as ws:
        # The server joins the participant as it sends the JoinResponse.
        first = await ws.receive(timeout=5)
        response = rtc_pb.SignalResponse()
        response.ParseFromString(first.data)
        assert response.WhichOneof("message") == "join", response
        yield


async def take_jobs(worker: RawWorker, count: int) -> list[agent_pb.JobAssignment]:
    """Accept every offer (as ``agent-<participant>``) until ``count`` jobs are assigned."""
    assigned: list[agent_pb.JobAssignment] = []
    while len(assigned) < count:
        message = await worker.receive()
        kind = message.WhichOneof("message")
        if kind == "availability":
            job = message.availability.job
            await worker.send(availability=agent_pb.AvailabilityResponse(
                job_id=job.id, available=True,
                participant_identity=f"agent-{job.participant.identity}",
            ))
        elif kind == "assignment":
            assigned.append(message.assignment)
    return assigned


def jobs_of(dispatcher: AgentDispatcher, job_type: agent_pb.JobType) -> list[str]:
    """The identities the dispatcher's jobs of ``job_type`` are for, in dispatch order."""
    return [r.job.participant.identity for r in dispatcher.jobs.values() if r.job.type == job_type]


class QuietLink:
    """A participant link that drops everything (participants of the room model only)."""

    def send_signal(self, response: rtc_pb.SignalResponse) -> None:
        """Drop it."""

    def subscribe_track(self, publisher: Participant, track: PublishedTrack) -> None:
        """Drop it."""

    def unsubscribe_track(self, publisher: Participant, track: PublishedTrack) -> None:
        """Drop it."""

    def send_data(self, label: str, payload: bytes) -> None:
        """Drop it."""

    def close(self, reason: int) -> None:
        """Drop it."""


def publish(room: Room, participant: Participant) -> None:
    """``participant`` publishes an audio track whose media arrives (as after WebRTC)."""
    info = models.TrackInfo(sid=new_sid("TR"), type=models.TrackType.AUDIO, name="mic")
    track = PublishedTrack(info=info, cid=info.sid, media=AudioStreamTrack())
    participant.tracks[info.sid] = track
    room.track_arrived(participant, track)


# Protocol level (127.0.0.1) -----------------------------------------------------------------


async def test_participant_workers_get_a_job_per_participant_who_joins() -> None:
    async with AsyncExitStack() as stack:
        server, dispatcher = await stack.enter_async_context(serving())
        per_participant = await stack.enter_async_context(
            raw_worker(server, agent_pb.JT_PARTICIPANT))
        per_room = await stack.enter_async_context(raw_worker(server, agent_pb.JT_ROOM))
        per_publisher = await stack.enter_async_context(raw_worker(server, agent_pb.JT_PUBLISHER))
        await dispatcher.wait_for_workers(3)

        await stack.enter_async_context(joined(server, "alice"))
        room_job = await per_room.answer()
        [alice_job] = await take_jobs(per_participant, 1)
        # An agent joining (such as a worker's own participant) must not get a job: had it
        # got one, it would be offered before bob's.
        await stack.enter_async_context(joined(server, "some-agent", kind="agent"))
        await stack.enter_async_context(joined(server, "bob"))
        [bob_job] = await take_jobs(per_participant, 1)

        lobby = server.rooms.get("lobby")
        assert lobby is not None
        assert room_job.type == agent_pb.JT_ROOM and not room_job.participant.identity
        for assignment, who in ((alice_job, "alice"), (bob_job, "bob")):
            job = assignment.job
            assert job.type == agent_pb.JT_PARTICIPANT
            assert job.room.name == "lobby" and job.agent_name == ""
            assert job.participant.identity == who
            assert job.participant.sid == lobby.participants[who].sid
            token = api.TokenVerifier(KEY, SECRET).verify(assignment.token)
            assert token.identity == f"agent-{who}"
        assert jobs_of(dispatcher, agent_pb.JT_PARTICIPANT) == ["alice", "bob"]
        assert len(jobs_of(dispatcher, agent_pb.JT_ROOM)) == 1
        assert dispatcher.workers[per_room.id].offered == [room_job.id]
        assert dispatcher.workers[per_publisher.id].offered == []  # nobody published


async def test_publisher_workers_get_one_job_per_participant_who_publishes() -> None:
    async with AsyncExitStack() as stack:
        server, dispatcher = await stack.enter_async_context(serving())
        per_publisher = await stack.enter_async_context(raw_worker(server, agent_pb.JT_PUBLISHER))
        per_room = await stack.enter_async_context(raw_worker(server, agent_pb.JT_ROOM))
        await dispatcher.wait_for_workers(2)
        room = server.create_room("stage")
        await per_room.answer()
        alice, bob, agent = (
            Participant(sid=new_sid("PA"), identity=who, link=QuietLink())
            for who in ("alice", "bob", "agent")
        )
        agent.kind = models.ParticipantInfo.Kind.AGENT
        for participant in (alice, agent, bob):
            room.join(participant)
        assert dispatcher.workers[per_publisher.id].offered == []  # joining is not publishing

        publish(room, alice)
        [alice_job] = [a.job for a in await take_jobs(per_publisher, 1)]
        publish(room, alice)  # a second track: still one job per participant
        publish(room, agent)  # agents publish too, and get no job
        publish(room, bob)  # had alice or the agent got a second job, it would come first
        [bob_job] = [a.job for a in await take_jobs(per_publisher, 1)]

        assert [alice_job.participant.identity, bob_job.participant.identity] == ["alice", "bob"]
        assert alice_job.type == bob_job.type == agent_pb.JT_PUBLISHER
        assert alice_job.room.name == "stage" and alice_job.participant.sid == alice.sid
        assert len(alice_job.participant.tracks) == 1  # it carries the track it published
        assert jobs_of(dispatcher, agent_pb.JT_PUBLISHER) == ["alice", "bob"]
        assert len(dispatcher.workers[per_room.id].offered) == 1  # the room job only


async def test_a_room_dispatched_explicitly_before_it_existed_gets_no_automatic_jobs() -> None:
    async with serving() as (server, dispatcher), raw_worker(
        server, agent_pb.JT_PARTICIPANT
    ) as per_participant:
        await dispatcher.wait_for_workers(1)
        # As a LiveKit room whose configuration names its agents: no default dispatch.
        explicit = asyncio.create_task(dispatcher.dispatch("lobby", "named", timeout=TIMEOUT))
        await dispatcher.wait_until(lambda: any(
            r.job.room.name == "lobby" for r in dispatcher.jobs.values()))
        async with joined(server, "alice"), joined(server, "carol", room="elsewhere"):
            # carol's job is offered after any job alice's join would have launched
            [carol_job] = await take_jobs(per_participant, 1)
        assert carol_job.job.participant.identity == "carol"
        assert jobs_of(dispatcher, agent_pb.JT_PARTICIPANT) == ["carol"]
        explicit.cancel()
        await asyncio.gather(explicit, return_exceptions=True)


async def test_a_dispatch_added_to_a_room_launches_jobs_for_its_participants() -> None:
    async with AsyncExitStack() as stack:
        server, dispatcher = await stack.enter_async_context(serving())
        unnamed = await stack.enter_async_context(raw_worker(server, agent_pb.JT_PARTICIPANT))
        support = await stack.enter_async_context(
            raw_worker(server, agent_pb.JT_PARTICIPANT, "support"))
        support_publisher = await stack.enter_async_context(
            raw_worker(server, agent_pb.JT_PUBLISHER, "support"))
        await dispatcher.wait_for_workers(3)
        await stack.enter_async_context(joined(server, "alice"))
        [alice_default] = await take_jobs(unnamed, 1)  # the room's default dispatch
        lobby = server.rooms.get("lobby")
        assert lobby is not None
        assert dispatcher.workers[support.id].offered == []  # nobody dispatched "support" yet

        # As LiveKit's CreateDispatch on a room with people in it: a job for each of them.
        dispatch = dispatcher.room_dispatches.add(lobby, "support", '{"queue": "billing"}')
        [alice_support] = await take_jobs(support, 1)
        publish(lobby, lobby.participants["alice"])
        [alice_published] = await take_jobs(support_publisher, 1)
        await stack.enter_async_context(joined(server, "bob"))
        [bob_default] = await take_jobs(unnamed, 1)
        [bob_support] = await take_jobs(support, 1)

        default_id = dispatcher.room_dispatches.of_room("lobby")[0].id
        assert [d.id for d in dispatcher.room_dispatches.of_room("lobby")] == [
            default_id, dispatch.id]
        for assignment, who, dispatch_id, job_type in (
            (alice_default, "alice", default_id, agent_pb.JT_PARTICIPANT),
            (bob_default, "bob", default_id, agent_pb.JT_PARTICIPANT),
            (alice_support, "alice", dispatch.id, agent_pb.JT_PARTICIPANT),
            (bob_support, "bob", dispatch.id, agent_pb.JT_PARTICIPANT),
            (alice_published, "alice", dispatch.id, agent_pb.JT_PUBLISHER),
        ):
            job = assignment.job
            assert (job.participant.identity, job.dispatch_id, job.type) == (
                who, dispatch_id, job_type)
            named = dispatch_id == dispatch.id
            assert job.agent_name == ("support" if named else "")
            assert job.metadata == ('{"queue": "billing"}' if named else "")


async def test_a_token_room_configuration_names_the_agents_of_the_room_it_creates() -> None:
    async with AsyncExitStack() as stack:
        server, dispatcher = await stack.enter_async_context(serving())
        unnamed_room = await stack.enter_async_context(raw_worker(server, agent_pb.JT_ROOM))
        unnamed = await stack.enter_async_context(raw_worker(server, agent_pb.JT_PARTICIPANT))
        support_room = await stack.enter_async_context(
            raw_worker(server, agent_pb.JT_ROOM, "support"))
        support = await stack.enter_async_context(
            raw_worker(server, agent_pb.JT_PARTICIPANT, "support"))
        await dispatcher.wait_for_workers(4)
        config = room_pb.RoomConfiguration(agents=[
            agent_dispatch.RoomAgentDispatch(agent_name="support", metadata="vip")])

        await stack.enter_async_context(joined(server, "alice", room_config=config))
        room_job = await support_room.answer()
        [alice_job] = await take_jobs(support, 1)
        # The configuration applies to the room the join creates only: bob's is ignored.
        await stack.enter_async_context(joined(server, "bob", room_config=room_pb.RoomConfiguration(
            agents=[agent_dispatch.RoomAgentDispatch(agent_name="other")])))
        [bob_job] = await take_jobs(support, 1)
        # Another room, with no configuration, has the default dispatch: carol's job is
        # offered after any the unnamed workers would have had for the configured room.
        await stack.enter_async_context(joined(server, "carol", room="elsewhere"))
        elsewhere_job = await unnamed_room.answer()
        [carol_job] = await take_jobs(unnamed, 1)

        [dispatch] = dispatcher.room_dispatches.of_room("lobby")
        assert (dispatch.agent_name, dispatch.info.metadata) == ("support", "vip")
        assert (room_job.type, room_job.agent_name, room_job.metadata) == (
            agent_pb.JT_ROOM, "support", "vip")
        assert room_job.dispatch_id == dispatch.id
        assert [a.job.participant.identity for a in (alice_job, bob_job)] == ["alice", "bob"]
        assert all(a.job.dispatch_id == dispatch.id for a in (alice_job, bob_job))
        assert elsewhere_job.room.name == "elsewhere"  # the configured room had no default
        assert carol_job.job.participant.identity == "carol"
        assert carol_job.job.room.name == "elsewhere"
        assert jobs_of(dispatcher, agent_pb.JT_PARTICIPANT) == ["alice", "bob", "carol"]


# End to end (network namespace) --------------------------------------------------------------

ALICE_HZ, BOB_HZ = 440.0, 660.0
RATE = 16_000
AMPLITUDE = 0.3
LOUD = 2000  # a frame louder than this carries a tone


class Ears(fk.Node):
    """Records the loud frames it gets (module level: annotations resolve)."""

    audio: fk.In[rtc.AudioFrame] = fk.In(default=True)

    def __init__(self) -> None:
        super().__init__()
        self.loud: list[np.ndarray] = []

    async def run(self, audio: AsyncIterator[rtc.AudioFrame]) -> None:
        """Keep the samples of every frame that carries a tone."""
        async for frame in audio:
            pcm = np.frombuffer(frame.data, dtype=np.int16).copy()
            if np.abs(pcm).max() > LOUD:
                self.loud.append(pcm)

    def seconds(self) -> float:
        """How much tone was heard."""
        return sum(len(pcm) for pcm in self.loud) / RATE

    def peak_hz(self) -> float:
        """The strongest frequency of what was heard (0 when nothing was)."""
        if not self.loud:
            return 0.0
        body = np.concatenate(self.loud).astype(np.float64)
        spectrum = np.abs(np.fft.rfft(body * np.hanning(len(body))))
        return float(np.argmax(spectrum) * RATE / len(body))


def build_listener(job: fk.JobContext) -> fk.Graph:
    """A publisher job's graph: its RoomSource (default participant) into Ears."""
    graph = fk.Graph("publisher-listener")
    graph.add(RoomSource(RATE)) >> graph.add(Ears(), "ears")
    return graph


async def _speaker(
    server: TestLiveKitServer, identity: str, hz: float
) -> tuple[rtc.Room, asyncio.Task[None]]:
    """An SDK client in ``lobby`` that publishes a microphone and plays ``hz`` on it.

    Returns:
        The client and the task playing the tone (for ``TIMEOUT`` s; cancel it to stop).
    """
    client = rtc.Room()
    await asyncio.wait_for(client.connect(server.url, server.token(identity, "lobby")), TIMEOUT)
    return client, await play_tone_track(client, hz, TIMEOUT, amplitude=AMPLITUDE)


def _ears_by_participant(worker: Worker) -> dict[str, Ears]:
    found: dict[str, Ears] = {}
    for job in worker.jobs.values():
        if job.runner is not None:
            ears = job.runner.graph.nodes["ears"]
            assert isinstance(ears, Ears)
            found[job.context.participant_identity] = ears
    return found


async def scenario_publisher_jobs_hear_their_own_publisher() -> dict[str, Any]:
    logging.basicConfig(level=logging.WARNING)
    async with serving("10.99.0.1") as (server, dispatcher):
        worker = Worker(build_listener, WorkerOptions(
            url=server.url, api_key=KEY, api_secret=SECRET, job_type=JobType.PUBLISHER,
            http_port=None, status_interval=0.1, load_threshold=math.inf,
            load_fnc=lambda: 0.0, drain_timeout=5.0,
        ), connect_job=livekit_room(KEY, SECRET))
        await worker.start(timeout=TIMEOUT)
        try:
            alice, alice_tone = await _speaker(server, "alice", ALICE_HZ)
            bob, bob_tone = await _speaker(server, "bob", BOB_HZ)

            def heard_both() -> bool:
                ears = _ears_by_participant(worker)
                return len(ears) == 2 and all(e.seconds() >= 1.0 for e in ears.values())

            try:
                await until(heard_both, TIMEOUT)
                heard = True
            except TimeoutError:
                heard = False
            ears = _ears_by_participant(worker)
            result = {
                "heard": heard,
                "peaks": {who: e.peak_hz() for who, e in ears.items()},
                "seconds": {who: e.seconds() for who, e in ears.items()},
                "jobs": sorted(
                    [r.job.participant.identity, agent_pb.JobType.Name(r.job.type)]
                    for r in dispatcher.jobs.values()
                ),
            }
            for tone in (alice_tone, bob_tone):
                tone.cancel()
            await asyncio.gather(alice_tone, bob_tone, return_exceptions=True)
            await alice.disconnect()
            await bob.disconnect()
            return result
        finally:
            # The jobs are cancelled while their participants are leaving: this once hung
            # when a RoomSource lost its cancellation (see test_audio_input.py).
            await worker.aclose()


def test_each_publisher_job_hears_its_own_publisher(run_scenario: Any) -> None:
    result = run_scenario(__file__, "scenario_publisher_jobs_hear_their_own_publisher")
    # One publisher job per publishing user, none of another type.
    assert result["jobs"] == [["alice", "JT_PUBLISHER"], ["bob", "JT_PUBLISHER"]], result
    assert result["heard"] is True, result
    assert abs(result["peaks"]["alice"] - ALICE_HZ) < 5, result
    assert abs(result["peaks"]["bob"] - BOB_HZ) < 5, result
