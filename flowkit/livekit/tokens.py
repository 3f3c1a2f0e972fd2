"""Access tokens for joining a LiveKit room (``flowkit connect``, tests, user clients).

A token is a JWT signed with the API secret; it names the room, the participant's identity
and what the participant may do. :func:`room_token` makes one with livekit-api.
"""

from __future__ import annotations

import datetime
import os

from livekit import api

__all__ = ["Credentials", "room_token"]

_DEFAULT_TTL = datetime.timedelta(hours=6)


class Credentials:
    """The LiveKit server and API key a program connects with.

    Args:
        url: The server's WebSocket URL (``ws://`` or ``wss://``); ``LIVEKIT_URL`` if empty.
        api_key: The API key; ``LIVEKIT_API_KEY`` if empty.
        api_secret: The API secret; ``LIVEKIT_API_SECRET`` if empty.

    Raises:
        ValueError: A value is missing both here and in the environment, or the URL is not
            a ``ws(s)://`` or ``http(s)://`` URL; the message names the flag and the variable
            that set it.
    """

    def __init__(self, url: str = "", api_key: str = "", api_secret: str = "") -> None:
        self.url = url or os.environ.get("LIVEKIT_URL", "")
        self.api_key = api_key or os.environ.get("LIVEKIT_API_KEY", "")
        self.api_secret = api_secret or os.environ.get("LIVEKIT_API_SECRET", "")
        missing = [
            f"{flag} (or {var})"
            for value, flag, var in (
                (self.url, "--url", "LIVEKIT_URL"),
                (self.api_key, "--api-key", "LIVEKIT_API_KEY"),
                (self.api_secret, "--api-secret", "LIVEKIT_API_SECRET"),
            )
            if not value
        ]
        if missing:
            raise ValueError(
                f"missing LiveKit {', '.join(missing)}: give the server's URL and an API key "
                "and secret of that server"
            )
        if not self.url.startswith(("ws://", "wss://", "http://", "https://")):
            raise ValueError(
                f"LiveKit URL {self.url!r} is not a ws://, wss://, http:// or https:// URL; "
                "give the server's address, e.g. ws://localhost:7880"
            )

    def __repr__(self) -> str:
        return f"Credentials(url={self.url!r}, api_key={self.api_key!r})"  # no secret

    def token(
        self,
        room: str,
        identity: str,
        *,
        name: str = "",
        kind: api.AccessToken.ParticipantKind = "standard",
        metadata: str = "",
    ) -> str:
        """A token for ``identity`` to join ``room`` with these credentials (:func:`room_token`)."""
        return room_token(
            self.api_key, self.api_secret, room, identity, name=name, kind=kind, metadata=metadata
        )


def room_token(
    api_key: str,
    api_secret: str,
    room: str,
    identity: str,
    *,
    name: str = "",
    kind: api.AccessToken.ParticipantKind = "standard",
    metadata: str = "",
    attributes: dict[str, str] | None = None,
    ttl: datetime.timedelta = _DEFAULT_TTL,
) -> str:
    """A JWT that lets ``identity`` join ``room``, publish, subscribe and set its attributes.

    Args:
        api_key: The API key (the token's issuer).
        api_secret: The secret that signs the token.
        room: The room to join.
        identity: The participant's identity (unique in the room).
        name: A display name.
        kind: The participant's kind: ``"agent"`` for an agent, ``"standard"`` for a user.
        metadata: The participant's initial metadata.
        attributes: The participant's initial attributes.
        ttl: How long the token is valid.

    Raises:
        ValueError: ``room`` or ``identity`` is empty, or the key or secret is.
    """
    if not room or not identity:
        raise ValueError(
            f"a room token needs a room and an identity (got room={room!r}, "
            f"identity={identity!r}); give both"
        )
    if not api_key or not api_secret:
        raise ValueError("a room token needs an API key and secret; give both")
    grants = api.VideoGrants(
        room_join=True,
        room=room,
        can_publish=True,
        can_subscribe=True,
        can_publish_data=True,
        can_update_own_metadata=True,
    )
    token = (
        api.AccessToken(api_key, api_secret)
        .with_identity(identity)
        .with_kind(kind)
        .with_grants(grants)
        .with_ttl(ttl)
    )
    if name:
        token = token.with_name(name)
    if metadata:
        token = token.with_metadata(metadata)
    if attributes:
        token = token.with_attributes(dict(attributes))
    return token.to_jwt()
