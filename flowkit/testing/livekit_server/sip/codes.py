"""SIP's vocabulary on the test server: final responses, call statuses, attribute names.

:class:`SIPResponse` and the common responses (:data:`OK`, :data:`BUSY_HERE`, :data:`DECLINE`,
:data:`NOT_FOUND`), the ``sip.callStatus`` values (:class:`CallStatus`), the ``sip.*``
participant attributes LiveKit's SIP service sets, and the Twirp error code LiveKit answers a
failed call with (:func:`twirp_code_of_sip`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "ATTR_CALL_ID",
    "ATTR_CALL_STATUS",
    "ATTR_HEADER_PREFIX",
    "ATTR_HOSTNAME",
    "ATTR_PHONE_NUMBER",
    "ATTR_RULE_ID",
    "ATTR_TRUNK_ID",
    "ATTR_TRUNK_NUMBER",
    "BUSY_HERE",
    "DECLINE",
    "NOT_FOUND",
    "OK",
    "CallStatus",
    "SIPResponse",
    "twirp_code_of_sip",
]

# The participant attributes LiveKit's SIP service sets (livekit/protocol livekit/attrs.go).
ATTR_CALL_ID = "sip.callID"
ATTR_CALL_STATUS = "sip.callStatus"
ATTR_PHONE_NUMBER = "sip.phoneNumber"
ATTR_TRUNK_ID = "sip.trunkID"
ATTR_TRUNK_NUMBER = "sip.trunkPhoneNumber"
ATTR_HOSTNAME = "sip.hostname"
ATTR_RULE_ID = "sip.ruleID"  # the dispatch rule an inbound call matched
ATTR_HEADER_PREFIX = "sip.h."  # + a header's lower-case name, for include_headers


class CallStatus(StrEnum):
    """A SIP participant's ``sip.callStatus`` attribute, as LiveKit's SIP service sets it."""

    DIALING = "dialing"
    RINGING = "ringing"
    AUTOMATION = "automation"  # answered, still sending the request's DTMF digits
    ACTIVE = "active"
    HANGUP = "hangup"


@dataclass(frozen=True)
class SIPResponse:
    """A final SIP response: its code and reason phrase, e.g. ``SIPResponse(486, "Busy Here")``."""

    code: int
    status: str

    def __post_init__(self) -> None:
        if not 200 <= self.code <= 699:
            raise ValueError(f"a final SIP response code is 200 to 699, not {self.code}")

    def __str__(self) -> str:
        return f"{self.code} {self.status}"


OK = SIPResponse(200, "OK")
BUSY_HERE = SIPResponse(486, "Busy Here")
DECLINE = SIPResponse(603, "Decline")
NOT_FOUND = SIPResponse(404, "Not Found")

# LiveKit's mapping of SIP failure codes to errors (livekit/protocol livekit/sip.go,
# sipCodeToGRPCCode, turned into Twirp codes by utils/xtwirp): the 4xx to 6xx codes it names.
_TWIRP_CODE_OF_SIP = {
    400: "invalid_argument", 401: "permission_denied", 402: "permission_denied",
    403: "permission_denied", 404: "not_found", 405: "invalid_argument",
    406: "invalid_argument", 407: "unauthenticated", 408: "deadline_exceeded",
    409: "failed_precondition", 410: "not_found", 480: "resource_exhausted",
    481: "not_found", 482: "failed_precondition", 483: "failed_precondition",
    484: "invalid_argument", 485: "invalid_argument", 486: "resource_exhausted",
    487: "aborted", 488: "invalid_argument", 491: "aborted", 500: "failed_precondition",
    501: "failed_precondition", 502: "failed_precondition", 503: "failed_precondition",
    504: "deadline_exceeded", 600: "resource_exhausted", 603: "permission_denied",
    604: "not_found", 606: "invalid_argument", 607: "permission_denied", 608: "permission_denied",
}


def twirp_code_of_sip(code: int) -> str:
    """The Twirp error code LiveKit answers a failed call with, for its SIP status ``code``.

    The codes LiveKit names have their own mapping (486 Busy Here: ``resource_exhausted``, 603
    Decline: ``permission_denied``, 404: ``not_found``...); the others go by class, as in LiveKit:
    4xx and 6xx ``invalid_argument``, 5xx ``failed_precondition``.
    """
    named = _TWIRP_CODE_OF_SIP.get(code)
    if named is not None:
        return named
    return "failed_precondition" if 500 <= code < 600 else "invalid_argument"
