"""An avatar of flowkit's own, joined to the job's room beside the agent: a node.

``g.add(LocalAvatar("avatar"))`` with ``RoomSink(avatar="avatar")`` gives the agent a face:
the node joins the job's LiveKit room as the participant ``avatar`` (kind ``agent``, with
``lk.publish_on_behalf`` naming the agent, on a token signed with the job's API key) and runs
:class:`~flowkit.livekit.avatar_runner.AvatarRunner` there until the graph ends, which plays
the voice the sink sends it with a waveform picture. It has no ports: what it exchanges with
the sink goes through the room, over LiveKit Agents' avatar protocol, as a provider's avatar
would. An offline run has no room: the node then does nothing, and the sink plays the voice
as it would without an avatar.
"""

from __future__ import annotations

import asyncio
import contextlib

import pydantic

from flowkit.node import Node, NodeParams

__all__ = ["LocalAvatar"]


class LocalAvatar(Node):
    """Joins the job's room as the agent's avatar and speaks its voice (see the module)."""

    class Params(NodeParams):
        """Parameters of :class:`LocalAvatar`."""

        identity: str = pydantic.Field(
            default="avatar", min_length=1,
            description="the avatar's identity in the room (the sink's avatar=)",
        )
        width: int = pydantic.Field(default=320, ge=2, description="the picture's width")
        height: int = pydantic.Field(default=240, ge=2, description="the picture's height")
        fps: float = pydantic.Field(default=25.0, gt=0, le=60, description="frames a second")

    def __init__(
        self, identity: str = "avatar", *, width: int = 320, height: int = 240, fps: float = 25.0
    ) -> None:
        """Create the avatar node.

        Args:
            identity: The identity it joins the room as; give the same to ``RoomSink``.
            width: The picture's width, in pixels.
            height: The picture's height, in pixels.
            fps: Video frames a second.
        """
        super().__init__(identity=identity, width=width, height=height, fps=fps)

    async def run(self) -> None:
        """Join the room and play the agent's voice until the graph ends."""
        p = self.params
        assert isinstance(p, LocalAvatar.Params)
        session = self.ctx.job.livekit
        if session is None:
            self.ctx.logger.info("no LiveKit room: the avatar %r does not join", p.identity)
            return
        from livekit import rtc

        from flowkit.livekit.avatar import ATTR_PUBLISH_ON_BEHALF
        from flowkit.livekit.avatar_runner import AvatarRunner, WaveformVideo
        from flowkit.livekit.tokens import room_token

        await session.io.wait_ready()  # the agent is in the room: its identity is known
        agent = session.room.local_participant.identity
        key, secret = session.api_credentials
        token = room_token(
            key, secret, session.room.name, p.identity, kind="agent",
            attributes={ATTR_PUBLISH_ON_BEHALF: agent},
        )
        room = rtc.Room()
        runner: AvatarRunner | None = None
        try:
            await room.connect(session.url, token)
            runner = AvatarRunner(room, agent_identity=agent,
                                  video=WaveformVideo(p.width, p.height), fps=p.fps)
            await runner.start()
            self.ctx.logger.info("avatar %r joined room %r for %r", p.identity,
                                 session.room.name, agent)
            await asyncio.Event().wait()  # until the graph ends and cancels the node
        finally:
            with contextlib.suppress(Exception):
                if runner is not None:
                    await runner.aclose()
            await room.disconnect()
