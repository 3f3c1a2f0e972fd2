"""Call control through LiveKit's server API: hang up for everyone, dial out, transfer a call.

What LiveKit Agents' ``JobContext.delete_room``, ``add_sip_participant`` and
``transfer_sip_participant`` do, as coroutines of a :class:`~flowkit.livekit.LiveKitJob`
(``JobContext`` has the same three methods, delegating here):

- :func:`delete_room` deletes the job's room, which disconnects everyone in it, phone
  callers included: the way an agent hangs up a call. A room already gone is not an error.
- :func:`add_sip_participant` dials a phone number (or SIP URI) through an outbound SIP
  trunk; the callee joins the room as a SIP participant. With ``wait_until_answered`` it
  returns once the call is answered; a call the far end refuses (busy, declined) raises
  ``api.SipCallError`` with the SIP status, and one nobody answers before the ringing
  timeout raises ``api.TwirpError`` (``canceled``: LiveKit has no SIP status for it).
- :func:`move_participant` moves a participant of another room into the job's room (LiveKit
  Cloud's ``MoveParticipant``): how a warm transfer brings the human agent to the caller
  (:mod:`flowkit.livekit.warm_transfer`).
- :func:`transfer_sip_participant` hands a SIP participant's call to another number (a cold
  transfer, SIP REFER): it returns once the transfer is done, and the caller leaves the room;
  a transfer that fails raises ``api.SipCallError`` with the reason, and the caller stays.

Every call goes through the job's ``api`` client, so the worker needs the API key and secret
(``LIVEKIT_API_KEY``, ``LIVEKIT_API_SECRET``); the token it signs carries the SIP ``call``
grant these requests need.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from livekit import api, rtc

if TYPE_CHECKING:
    from flowkit.livekit.job import LiveKitJob

__all__ = [
    "add_sip_participant", "delete_room", "move_participant", "transfer_sip_participant",
]

logger = logging.getLogger("flowkit.livekit")


def _room_name(job: LiveKitJob) -> str:
    # The room's own name once connected; the dispatch's before (a job may hang up early).
    return job.room.name or job.job.room_name


async def delete_room(job: LiveKitJob) -> bool:
    """Delete the job's room: every participant is disconnected, phone callers included.

    Returns:
        ``True`` when this call deleted it, ``False`` when the server no longer had it.

    Raises:
        RuntimeError: The job has no API key and secret.
        api.TwirpError: The server refused (another error than ``not_found``).
    """
    room = _room_name(job)
    try:
        await job.api.room.delete_room(api.DeleteRoomRequest(room=room))
    except api.TwirpError as exc:
        if exc.code != api.TwirpErrorCode.NOT_FOUND:
            raise
        logger.info("room %r was already gone when the job deleted it", room)
        return False
    logger.info("deleted room %r: everyone in it was disconnected", room)
    return True


async def add_sip_participant(
    job: LiveKitJob,
    call_to: str,
    *,
    trunk_id: str,
    participant_identity: str = "",
    participant_name: str = "",
    participant_attributes: dict[str, str] | None = None,
    wait_until_answered: bool = False,
    ringing_timeout: float | None = None,
    play_dialtone: bool = False,
    sip_number: str = "",
    dtmf: str = "",
) -> api.SIPParticipantInfo:
    """Dial ``call_to`` through an outbound SIP trunk into the job's room.

    Args:
        job: The LiveKit job.
        call_to: A phone number (``+15105550100``) or a SIP URI (``sip:user@host``).
        trunk_id: The outbound trunk to call through (``ST_...``).
        participant_identity: The callee's identity in the room (the server picks one when
            empty).
        participant_name: The callee's display name.
        participant_attributes: Attributes the callee's participant starts with.
        wait_until_answered: Return once the call is answered (``sip.callStatus``
            ``active``) instead of at once; a call that fails then raises.
        ringing_timeout: Seconds the phone may ring before the call fails (the server's
            default when ``None``).
        play_dialtone: Have the callee hear a dial tone while the call connects.
        sip_number: The number to call from; empty: one of the trunk's numbers.
        dtmf: Keys to press once the call is answered (an extension, ``"1234#"``; ``w``
            waits half a second).

    Returns:
        The callee's participant: its id, identity, room and SIP call id.

    Raises:
        ValueError: ``call_to`` or ``trunk_id`` is empty.
        api.SipCallError: ``wait_until_answered`` and the far end refused the call (its
            ``sip_status_code`` says why: 486 busy, 603 declined, ...).
        api.TwirpError: Nobody answered within the ringing timeout (code ``canceled``),
            or the server refused the request (the message says why).
    """
    if not call_to or not trunk_id:
        raise ValueError(
            f"add_sip_participant(call_to={call_to!r}, trunk_id={trunk_id!r}): both are "
            "needed, the number or SIP URI to dial and the outbound trunk's id (ST_...) "
            "from LiveKit's SIP settings"
        )
    request = api.CreateSIPParticipantRequest(
        room_name=_room_name(job),
        sip_trunk_id=trunk_id,
        sip_call_to=call_to,
        participant_identity=participant_identity,
        participant_name=participant_name,
        participant_attributes=participant_attributes or {},
        wait_until_answered=wait_until_answered,
        play_dialtone=play_dialtone,
        sip_number=sip_number,
        dtmf=dtmf,
    )
    if ringing_timeout is not None:
        request.ringing_timeout.FromNanoseconds(round(ringing_timeout * 1e9))
    info = await job.api.sip.create_sip_participant(request)
    logger.info(
        "dialled %s into room %r as %r (%s)", call_to, request.room_name,
        info.participant_identity, "answered" if wait_until_answered else "dialling",
    )
    return info


async def transfer_sip_participant(
    job: LiveKitJob,
    participant: rtc.RemoteParticipant | str,
    transfer_to: str,
    *,
    play_dialtone: bool = False,
) -> api.TransferSIPParticipantResponse:
    """Transfer a SIP participant's call to ``transfer_to`` (a cold transfer).

    Args:
        job: The LiveKit job.
        participant: The SIP participant, or its identity.
        transfer_to: Where to: ``tel:+15105550100`` or ``sip:user@host``. A bare phone
            number gets ``tel:`` put in front.
        play_dialtone: Have the caller hear a dial tone during the transfer.

    Returns:
        The server's account of the transfer (its id and status).

    Raises:
        ValueError: ``participant`` is a participant that is not on a phone line, or
            ``transfer_to`` is empty.
        api.SipCallError: The transfer failed (``sip_transfer_reason`` says why); the
            caller is still in the room.
        api.TwirpError: The server refused the request (the message says why).
    """
    if isinstance(participant, rtc.RemoteParticipant):
        if participant.kind != rtc.ParticipantKind.PARTICIPANT_KIND_SIP:
            raise ValueError(
                f"transfer_sip_participant: {participant.identity!r} is not on a phone line "
                f"(kind {participant.kind}); only SIP participants' calls can be transferred"
            )
        identity = participant.identity
    else:
        identity = participant
    if not transfer_to:
        raise ValueError(
            "transfer_sip_participant: transfer_to is empty; give tel:+<number> or "
            "sip:<user>@<host>"
        )
    if not transfer_to.startswith(("tel:", "sip:", "sips:")):
        transfer_to = f"tel:{transfer_to}"  # a bare number, as people write it
    response = await job.api.sip.transfer_sip_participant(
        api.TransferSIPParticipantRequest(
            room_name=_room_name(job),
            participant_identity=identity,
            transfer_to=transfer_to,
            play_dialtone=play_dialtone,
        )
    )
    logger.info("transferred %r's call to %s", identity, transfer_to)
    return response


async def move_participant(job: LiveKitJob, identity: str, *, from_room: str) -> None:
    """Move the participant ``identity`` of ``from_room`` into the job's room.

    The participant leaves ``from_room`` and joins the job's room with the same identity,
    attributes and tracks; a phone call goes on, now in the job's room.

    Args:
        job: The LiveKit job.
        identity: Whom to move.
        from_room: The room they are in now.

    Raises:
        ValueError: ``identity`` or ``from_room`` is empty, or ``from_room`` is the job's.
        api.TwirpError: The server refused (no such room or participant, or a server that
            cannot move participants: LiveKit offers it in its Cloud and Private Cloud).
    """
    room = _room_name(job)
    if not identity or not from_room:
        raise ValueError(
            f"move_participant: give whom to move and from which room (got identity="
            f"{identity!r}, from_room={from_room!r})"
        )
    if from_room == room:
        raise ValueError(
            f"move_participant: {identity!r} is to move from {from_room!r}, which is the "
            "job's own room; give the room they are in now"
        )
    await job.api.room.move_participant(
        api.MoveParticipantRequest(room=from_room, identity=identity, destination_room=room)
    )
    logger.info("moved %r from room %r into %r", identity, from_room, room)
