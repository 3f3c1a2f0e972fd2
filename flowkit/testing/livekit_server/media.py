"""The two peer connections of one participant (aiortc), and the track relay.

LiveKit clients keep two peer connections: the *publisher*, which the client offers (its
tracks and its ``_reliable``/``_lossy`` data channels), and the *subscriber*, which the
server offers (other participants' tracks and the server's data channels). aiortc decodes
each published track once; :class:`aiortc.contrib.media.MediaRelay` fans it out and every
subscriber connection encodes it again. That costs CPU, which a test double can afford.

Tracks come and go on the subscriber connection as LiveKit's SFU does it: a track that
stops being relayed (its publisher left or unpublished it) has its m-line turned
``inactive`` in the next offer, which ends it on the client; a new track always gets an
m-line of its own. LiveKit reuses inactive m-lines for new tracks; this server does not,
because an aiortc sender cannot send again once its first track ended, so the offer grows by
one m-line per track relayed over the connection's life.

Like LiveKit, which subscribes a participant to the tracks already in the room only once it
is ACTIVE (its primary connection is up), tracks are held back until the subscriber
connection has connected: its first offer carries data channels only. Two aiortc behaviours
make that necessary. With max-bundle, an audio m-line offered before the data channel's
becomes the BUNDLE primary while sharing the data channel's transport, and applying the
answer then stops that shared transport as a "bundled away" one: ICE never starts and the
SDK gives up with ``wait_pc_connection timed out``. And an answer applied while DTLS is still
connecting never starts the new sender, so the track is offered but no audio flows.

The publisher connection bundles every m-line onto one transport (max-bundle), as the SDK
does. The SDK's first publisher offer carries receive-only transceivers it makes ahead, three
audio and three video, before any track of its own. Under aiortc's "balanced" policy the
second and third video transceivers would share the first video one's transport; applying
the BUNDLE group then moves that first one onto the primary transport but leaves the other
two (and every later video transceiver, which joins them) on a transport that was stopped,
so a published camera's packets arrive and no receiver takes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCDataChannel,
    RTCIceCandidate,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import SessionDescription, candidate_from_sdp
from livekit.protocol import rtc

__all__ = ["DATA_LABELS", "MediaSession", "relay_subscribe"]

logger = logging.getLogger("flowkit.testing.livekit_server")

DATA_LABELS = ("_reliable", "_lossy")
"""Data channel labels the SDK reads on the subscriber connection."""

ANSWER_TIMEOUT = 10.0

_relay = MediaRelay()


def relay_subscribe(track: MediaStreamTrack, *, buffered: bool) -> MediaStreamTrack:
    """A reader of a published track through the server's one relay, beside the others.

    Every reader of a track (each subscriber connection, the drain, a simulated phone's
    ear) must come through the same relay: aiortc's track has one ``recv``, which the
    relay calls once per frame for all of them.

    Args:
        track: The published track's media.
        buffered: Keep every frame for a slow reader (True) or only the newest (False).
    """
    return _relay.subscribe(track, buffered=buffered)


@dataclass(frozen=True)
class _Relayed:
    """A track sent on the subscriber connection: its transceiver and its relay proxy."""

    transceiver: RTCRtpTransceiver
    proxy: MediaStreamTrack


def _configuration(bundle: RTCBundlePolicy) -> RTCConfiguration:
    # No STUN server: the test network is one link, host candidates are enough, and a
    # default STUN lookup would wait on DNS that a private namespace does not have.
    return RTCConfiguration(iceServers=[], bundlePolicy=bundle)


class MediaSession:
    """One participant's publisher and subscriber peer connections.

    Args:
        send_signal: queues a signal message to the participant.
        on_track: called with each track the participant publishes.
        on_data: called with (channel label, bytes) for each data message it publishes.
    """

    def __init__(
        self,
        send_signal: Callable[[rtc.SignalResponse], None],
        on_track: Callable[[MediaStreamTrack], None],
        on_data: Callable[[str, bytes], None],
    ) -> None:
        self._send_signal = send_signal
        self.publisher = RTCPeerConnection(_configuration(RTCBundlePolicy.MAX_BUNDLE))
        self.subscriber = RTCPeerConnection(_configuration(RTCBundlePolicy.MAX_BUNDLE))
        self._channels: dict[str, RTCDataChannel] = {}
        self._pending_data: dict[str, list[bytes]] = {label: [] for label in DATA_LABELS}
        self._answer: asyncio.Future[None] | None = None
        self._dirty = asyncio.Event()
        self._negotiator: asyncio.Task[None] | None = None
        self._sent: dict[str, _Relayed] = {}  # by stream id, "<participant sid>|<track sid>"
        # Tracks to send once the subscriber connection is up (see the module docstring).
        self._held: dict[str, MediaStreamTrack] = {}
        self._subscriber_up = False
        self._drained: list[MediaStreamTrack] = []
        self._drains: list[asyncio.Task[None]] = []
        self._stopping: set[asyncio.Task[None]] = set()
        # Candidates the client trickles before its description is applied wait here.
        self._early_candidates: dict[int, list[RTCIceCandidate]] = {0: [], 1: []}
        self._described: set[int] = set()
        self._closed = False

        @self.publisher.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            on_track(track)

        @self.publisher.on("datachannel")
        def _on_datachannel(channel: RTCDataChannel) -> None:
            label = channel.label

            @channel.on("message")
            def _on_message(message: bytes | str) -> None:
                if isinstance(message, bytes):
                    on_data(label, message)

        @self.subscriber.on("connectionstatechange")
        def _on_subscriber_state() -> None:
            if self.subscriber.connectionState == "connected" and not self._subscriber_up:
                self._subscriber_up = True
                held, self._held = self._held, {}
                for stream_id, track in held.items():
                    self.add_track(track, stream_id)

        for label in DATA_LABELS:
            ordered = label == "_reliable"
            channel = self.subscriber.createDataChannel(
                label, ordered=ordered, maxRetransmits=None if ordered else 0
            )
            self._watch_channel(label, channel)

    def _watch_channel(self, label: str, channel: RTCDataChannel) -> None:
        @channel.on("open")
        def _on_open() -> None:
            self._channels[label] = channel
            for payload in self._pending_data[label]:
                channel.send(payload)
            self._pending_data[label].clear()

    def start(self) -> None:
        """Send the first subscriber offer and keep renegotiating when tracks are added."""
        self._negotiator = asyncio.create_task(self._negotiate_loop())
        self._dirty.set()

    async def _negotiate_loop(self) -> None:
        while not self._closed:
            await self._dirty.wait()
            self._dirty.clear()
            offer = await self.subscriber.createOffer()
            await self.subscriber.setLocalDescription(offer)
            local = self.subscriber.localDescription
            loop = asyncio.get_running_loop()
            self._answer = loop.create_future()
            self._send_signal(
                rtc.SignalResponse(offer=rtc.SessionDescription(type="offer", sdp=local.sdp))
            )
            try:
                async with asyncio.timeout(ANSWER_TIMEOUT):
                    await self._answer
            except TimeoutError:
                logger.warning("no subscriber answer within %.0f s", ANSWER_TIMEOUT)
            finally:
                self._answer = None

    async def answer_publisher(self, sdp: str) -> list[MediaStreamTrack]:
        """Answer the client's publisher offer.

        Returns:
            The published tracks this offer stops: the client unpublished them, which it
            says only by no longer sending on their m-lines (there is no signal message).
        """
        await self.publisher.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await self._flush_candidates(rtc.SignalTarget.PUBLISHER)
        answer = await self.publisher.createAnswer()
        await self.publisher.setLocalDescription(answer)
        local = self.publisher.localDescription
        self._send_signal(
            rtc.SignalResponse(answer=rtc.SessionDescription(type="answer", sdp=local.sdp))
        )
        return self._stopped_tracks(sdp)

    def _stopped_tracks(self, offer: str) -> list[MediaStreamTrack]:
        # aiortc keeps a receiver's track when its m-line goes inactive (it never ends it),
        # so read the client's directions from the offer itself.
        sending = {
            media.rtp.muxId
            for media in SessionDescription.parse(offer).media
            if media.kind in ("audio", "video")
            and media.port != 0
            and media.direction in (None, "sendonly", "sendrecv")
        }
        return [
            transceiver.receiver.track
            for transceiver in self.publisher.getTransceivers()
            if transceiver.mid is not None
            and transceiver.mid not in sending
            and transceiver.receiver.track is not None
        ]

    async def accept_subscriber_answer(self, sdp: str) -> None:
        """Apply the client's answer to our last subscriber offer."""
        if self.subscriber.signalingState != "have-local-offer":
            logger.warning("subscriber answer without a pending offer: ignored")
            return
        await self.subscriber.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        await self._flush_candidates(rtc.SignalTarget.SUBSCRIBER)
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(None)

    async def add_candidate(self, target: int, candidate_init: str) -> None:
        """Add a trickled ICE candidate (JSON ``candidateInit``) to the target connection."""
        fields = json.loads(candidate_init)
        line = str(fields.get("candidate", ""))
        if not line:
            return
        if line.startswith("candidate:"):
            line = line.split(":", 1)[1]
        candidate = candidate_from_sdp(line)
        candidate.sdpMid = fields.get("sdpMid")
        candidate.sdpMLineIndex = fields.get("sdpMLineIndex")
        pc = self._connection(target)
        if target not in self._described:
            self._early_candidates.setdefault(target, []).append(candidate)
            return
        await pc.addIceCandidate(candidate)

    def _connection(self, target: int) -> RTCPeerConnection:
        return self.subscriber if target == rtc.SignalTarget.SUBSCRIBER else self.publisher

    async def _flush_candidates(self, target: int) -> None:
        self._described.add(target)
        waiting = self._early_candidates.get(target, [])
        self._early_candidates[target] = []
        for candidate in waiting:
            await self._connection(target).addIceCandidate(candidate)

    def add_track(self, track: MediaStreamTrack, stream_id: str) -> None:
        """Send ``track`` to the client; ``stream_id`` is ``"<participant sid>|<track sid>"``.

        A stream id already sent is ignored. Before the subscriber connection is up the
        track waits, and goes out in the first offer after it connects.
        """
        if stream_id in self._sent or self._closed:
            return
        if not self._subscriber_up:
            self._held[stream_id] = track
            return
        # Buffered: the encoder takes every frame, so a slow moment delays audio, not drops it.
        proxy = relay_subscribe(track, buffered=True)
        # A fresh transceiver, never addTrack's reuse of one whose track is gone: the client
        # reports a track only for an m-line that starts receiving (a changed msid on one
        # already receiving goes unnoticed), and the old aiortc sender would not send again.
        transceiver = self.subscriber.addTransceiver(proxy, direction="sendonly")
        # The SDK finds the publication from the msid's stream id; aiortc has no public
        # way to set it, so set the sender's before the offer is written.
        transceiver.sender._stream_id = stream_id
        self._sent[stream_id] = _Relayed(transceiver, proxy)
        self._dirty.set()

    def remove_track(self, stream_id: str) -> None:
        """Stop sending the track sent as ``stream_id``; the next offer makes it inactive.

        What LiveKit's SFU does when a subscribed track goes away: the client then ends its
        receiver. An unknown stream id is ignored.
        """
        if self._held.pop(stream_id, None) is not None:
            return  # never offered, so there is nothing to end on the client
        relayed = self._sent.pop(stream_id, None)
        if relayed is None:
            return
        relayed.transceiver.direction = "inactive"
        # Leave the relay first, so no frame queues up for a sender that stops reading.
        relayed.proxy.stop()
        stopping = asyncio.create_task(relayed.transceiver.sender.stop())
        self._stopping.add(stopping)
        stopping.add_done_callback(self._stopping.discard)
        self._dirty.set()

    def drain(self, track: MediaStreamTrack) -> None:
        """Keep reading a published track, so its frames do not pile up while nobody listens."""
        proxy = relay_subscribe(track, buffered=False)
        self._drained.append(proxy)
        self._drains.append(asyncio.create_task(self._discard(proxy)))

    @staticmethod
    async def _discard(track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()

    def send_data(self, label: str, payload: bytes) -> None:
        """Send bytes on the subscriber data channel ``label`` (queued until it opens)."""
        channel = self._channels.get(label)
        if channel is None or channel.readyState != "open":
            self._pending_data.setdefault(label, []).append(payload)
            return
        channel.send(payload)

    async def close(self) -> None:
        """Close both connections and stop the relayed tracks."""
        self._closed = True
        self._dirty.set()
        self._held.clear()
        for relayed in self._sent.values():
            relayed.proxy.stop()
        for proxy in self._drained:
            proxy.stop()
        for task in self._drains:
            task.cancel()
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)
        if self._negotiator is not None:
            self._negotiator.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._negotiator
        await self.subscriber.close()
        await self.publisher.close()
