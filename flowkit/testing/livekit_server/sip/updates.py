"""LiveKit's partial updates of SIP trunks and dispatch rules, applied to stored messages.

The ``update`` action of UpdateSIPInboundTrunk, UpdateSIPOutboundTrunk and
UpdateSIPDispatchRule changes only what it sets, as LiveKit applies it (livekit/protocol
``livekit/types.go`` and ``livekit/sip.go``):

- a list field takes a :class:`ListUpdate`: ``clear`` empties it, a non-empty ``set`` replaces
  it, otherwise ``remove`` takes each value out (its first occurrence) and then ``add`` appends
  each value not yet there. ``clear`` and ``set`` go alone, no value may be empty, and an
  update that does none of these is refused (:func:`check_list_update`);
- a scalar field (``name``, ``metadata``, ``auth_username``...) is replaced when the update
  sets it, even to "" (the update's fields are optional, so "unset" and "" differ);
- ``attributes`` is a map diff: a key with a value sets it, a key with "" deletes it;
- ``media`` replaces the whole media config; ``media_encryption`` and ``media.encryption``
  are kept in step, the latter winning, as LiveKit's upgrade of the legacy field does.

Functions here change the message they are given: callers apply them to a copy and store it
only once it is valid. A refused update raises :class:`InvalidUpdateError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping, MutableSequence
from typing import TypeVar

from livekit.protocol import models
from livekit.protocol import sip as sip_pb

__all__ = [
    "InvalidUpdateError",
    "apply_list_update",
    "apply_lists",
    "apply_map_diff",
    "apply_media",
    "apply_scalars",
    "check_list_update",
    "check_list_updates",
]

_Info = TypeVar(
    "_Info",
    sip_pb.SIPInboundTrunkInfo, sip_pb.SIPOutboundTrunkInfo, sip_pb.SIPDispatchRuleInfo,
)
_Update = TypeVar(
    "_Update",
    sip_pb.SIPInboundTrunkUpdate, sip_pb.SIPOutboundTrunkUpdate, sip_pb.SIPDispatchRuleUpdate,
)


class InvalidUpdateError(ValueError):
    """An update LiveKit refuses (``invalid_argument``); the message says what to send."""


def check_list_update(field: str, update: models.ListUpdate) -> None:
    """Refuse a list update LiveKit refuses, in LiveKit's order of checks.

    Args:
        field: The list's field name, for the message (``numbers``, ``trunk_ids``...).
        update: The list update the request sets for it.

    Raises:
        InvalidUpdateError: It does nothing; it clears and changes the list; it sets and adds or
            removes; one of its values is empty.
    """
    changes = bool(update.set or update.add or update.remove)
    if not update.clear and not changes:
        # livekit-api's update_*_fields send exactly this for numbers=[] or
        # ListUpdate(clear=True) (they do not pass clear on), so say how to empty a list.
        raise InvalidUpdateError(
            f"unsupported list update operation for {field}: the ListUpdate sets, adds, "
            "removes and clears nothing; send set=[...], add=[...], remove=[...] or clear=True "
            "(livekit-api's update_..._fields turn [] and ListUpdate(clear=True) into this "
            "empty update: to empty the list, replace the whole trunk or rule instead)"
        )
    if update.clear and changes:
        raise InvalidUpdateError(
            f"cannot clear and change the {field} list at the same time: send clear=True "
            "alone, or set/add/remove without clear"
        )
    if update.set and (update.add or update.remove):
        raise InvalidUpdateError(
            f"cannot set and change the {field} list at the same time: send set=[...] alone "
            "(the whole new list), or add/remove without set"
        )
    for operation, values in (("set", update.set), ("add", update.add),
                              ("remove", update.remove)):
        if "" in values:
            raise InvalidUpdateError(
                f"empty element in the {field} list update: {operation} has an empty string "
                f"({list(values)!r}); leave it out"
            )


def check_list_updates(update: _Update, fields: Iterable[str]) -> None:
    """:func:`check_list_update` for each of ``fields`` that ``update`` sets, in order.

    Raises:
        InvalidUpdateError: One of them is refused.
    """
    for field in fields:
        if update.HasField(field):
            check_list_update(field, getattr(update, field))


def apply_list_update(values: MutableSequence[str], update: models.ListUpdate) -> None:
    """Change ``values`` (a repeated field) as LiveKit applies ``update`` (already checked)."""
    if update.clear:
        del values[:]
        return
    if update.set:
        new = list(update.set)
    else:
        new = list(values)
        for value in update.remove:
            if value in new:
                new.remove(value)  # the first occurrence only, as LiveKit does
        for value in update.add:
            if value not in new:
                new.append(value)
    del values[:]
    values.extend(new)


def apply_map_diff(values: MutableMapping[str, str], diff: Mapping[str, str]) -> None:
    """Set each key of ``diff`` with a value in ``values``; delete each key whose value is ""."""
    for key, value in diff.items():
        if value:
            values[key] = value
        else:
            values.pop(key, None)


def apply_scalars(info: _Info, update: _Update, fields: Iterable[str]) -> None:
    """Copy each of ``fields`` that ``update`` sets (even to "" or 0) onto ``info``."""
    for field in fields:
        if update.HasField(field):
            setattr(info, field, getattr(update, field))


def apply_lists(info: _Info, update: _Update, fields: Iterable[str]) -> None:
    """:func:`apply_list_update` for each of ``fields`` that ``update`` sets."""
    for field in fields:
        if update.HasField(field):
            apply_list_update(getattr(info, field), getattr(update, field))


def apply_media(info: _Info, update: _Update) -> None:
    """Apply ``media`` and ``media_encryption`` as LiveKit does, keeping the two in step.

    LiveKit replaces the media config whole, then always gives the result a media config
    whose ``encryption`` falls back to the legacy ``media_encryption``, and sets the legacy
    field back from it (DISABLE when neither says).
    """
    if update.HasField("media"):
        info.media.CopyFrom(update.media)
    if update.HasField("media_encryption"):
        info.media_encryption = update.media_encryption
    info.media.SetInParent()  # LiveKit's upgrade leaves every updated item a media config
    media = info.media
    disabled = sip_pb.SIPMediaEncryption.SIP_MEDIA_ENCRYPT_DISABLE
    if not media.HasField("encryption") and info.media_encryption != disabled:
        media.encryption = info.media_encryption
    info.media_encryption = media.encryption if media.HasField("encryption") else disabled
