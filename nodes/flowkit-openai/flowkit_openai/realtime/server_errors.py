"""What a server's ``error`` event means for the session, and what to do about it.

The Realtime API reports a bad client event with an ``error`` event and keeps the connection
open. Most are worth an error in the log (the setting or request they name did not take
effect); a few are races the node cannot avoid and that change nothing (cancelling a
response that has just ended), and are only worth a debug line. The message always names
the server, the event that caused the error when the server says which, and the remedy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

__all__ = ["Described", "describe_error", "describe_failed_response"]

# Races between the node and the server, harmless: the state they wanted is reached anyway.
_BENIGN = frozenset({"response_cancel_not_active"})


@dataclass(frozen=True, slots=True)
class Described:
    """An error event put into words.

    Attributes:
        level: The :mod:`logging` level it deserves.
        message: What happened, to whom, and the remedy.
    """

    level: int
    message: str


def describe_error(
    *,
    url: str,
    kind: str,
    code: str | None,
    message: str,
    param: str | None,
    caused_by: str | None,
) -> Described:
    """Describe a server ``error`` event.

    Args:
        url: The endpoint that sent it.
        kind: The error's ``type`` (``invalid_request_error``, ``server_error``, ...).
        code: The error's ``code``, if any.
        message: The server's own words.
        param: The parameter it names, if any.
        caused_by: The type of the client event it answers, when its ``event_id`` is known.
    """
    what = f"{kind}{f'/{code}' if code else ''}"
    about = f" (parameter {param})" if param else ""
    said = f"the server at {url} answered {caused_by or 'the session'} with {what}{about}: "
    said += message
    if code in _BENIGN:
        return Described(logging.DEBUG, f"{said}; nothing to do, it lost a harmless race")
    if caused_by == "session.update":
        remedy = (
            "the session runs on the server's defaults for what the update set (instructions, "
            "voice, tools, turn detection); remove or fix that setting of the RealtimeModel node"
        )
    elif caused_by == "conversation.item.truncate":
        remedy = (
            "the model's context may keep words the listener did not hear; nothing else is "
            "affected"
        )
    elif caused_by == "response.create":
        remedy = "that reply was not made; the conversation goes on"
    elif caused_by == "input_audio_buffer.commit":
        remedy = (
            "no turn was committed; commit only after at least 100 ms of the user's audio"
        )
    elif kind == "server_error":
        remedy = "the session goes on; if this repeats, check the provider's status"
    else:
        remedy = "the session goes on; check the node's settings against the server's API"
    return Described(logging.ERROR, f"{said}; {remedy}")


def describe_failed_response(
    *, url: str, response_id: str, kind: str | None, code: str | None, message: str | None
) -> Described:
    """Describe a ``response.done`` whose status is ``failed``.

    Args:
        url: The endpoint that sent it.
        response_id: The response's id.
        kind: ``status_details.error.type``, if given.
        code: ``status_details.error.code``, if given.
        message: ``status_details.error.message``, if given.
    """
    what = "/".join(part for part in (kind, code) if part) or "no reason given"
    said = f"the server at {url} failed response {response_id} ({what})"
    if message:
        said += f": {message}"
    if code in ("rate_limit_exceeded", "insufficient_quota") or kind == "rate_limit_error":
        remedy = "check the account's quota and rate limits; the conversation goes on"
    else:
        remedy = "that reply ends here; the conversation goes on"
    return Described(logging.ERROR, f"{said}; {remedy}")
