"""How a dialled call goes out: its outbound trunk's settings and the request's, merged.

CreateSIPParticipant names the trunk a call goes out through: a stored outbound trunk
(``sip_trunk_id``, looked up by
:meth:`~flowkit.testing.livekit_server.sip.provisioning.SIPProvisioning.outbound_trunk`), an
inline one (``trunk``, a ``SIPOutboundConfig``), or neither (``sip_number`` alone).
:func:`route_outbound_call` merges it with the request as LiveKit does (livekit/protocol
``rpc/sip.go``, ``NewCreateSIPParticipantRequestResult``) into an :class:`OutboundRoute`:

- A stored trunk wins over an inline one: when ``sip_trunk_id`` is set, ``trunk`` is ignored.
- The provider's address (``sip.hostname``) is the stored trunk's ``address``, or the inline
  trunk's ``hostname``; ``headers_to_attributes`` comes from the same trunk.
- The From number (``sip.trunkPhoneNumber``) is the request's ``sip_number``, used as it is
  (LiveKit does not check that the trunk lists it), or else one of the stored trunk's
  ``numbers`` at random. An inline trunk has no numbers: without ``sip_number`` the call is
  refused, ``failed_precondition`` "no numbers on outbound trunk". When the address ends in
  ``twilio.com``, a number without a leading ``+`` gets one (Twilio requires it).
- The INVITE's headers are the stored trunk's ``headers`` and then the request's, which win;
  ``include_headers`` is the request's if set, else the stored trunk's.
- ``sip.trunkID`` is the request's ``sip_trunk_id``.

The trunk's ``transport``, ``destination_country``, auth, ``from_host``, media settings and
``attributes_to_headers`` are LiveKit's to use on the wire; the simulated phones see none of
them, so they are not carried here.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from livekit.protocol import sip as sip_pb

from flowkit.testing.livekit_server.sip.provisioning import ProvisioningError

__all__ = ["OutboundRoute", "route_outbound_call"]


@dataclass(frozen=True)
class OutboundRoute:
    """Where and how a dialled call goes out, once its trunk and request are merged.

    Attributes:
        trunk_id: Its ``sip.trunkID`` ("" without a stored trunk).
        host: The SIP provider's address the INVITE goes to (``sip.hostname``); "" for a
            call placed by ``sip_number`` alone.
        number: The From number (``sip.trunkPhoneNumber``).
        headers: The headers the INVITE adds.
        headers_to_attributes: Which headers of the answer (200 OK) fill which attributes.
        include_headers: Which headers of the answer go to ``sip.h.*`` (``SIPHeaderOptions``).
    """

    trunk_id: str
    host: str
    number: str
    headers: dict[str, str]
    headers_to_attributes: dict[str, str]
    include_headers: int


def route_outbound_call(
    request: sip_pb.CreateSIPParticipantRequest, trunk: sip_pb.SIPOutboundTrunkInfo | None
) -> OutboundRoute:
    """Merge a valid CreateSIPParticipant request with its stored trunk, as LiveKit does.

    Args:
        request: The request, already checked (see the service's ``_dial``).
        trunk: The stored outbound trunk ``sip_trunk_id`` names; None without one (an inline
            trunk, or ``sip_number`` alone).

    Raises:
        ProvisioningError: ``failed_precondition``: no ``sip_number``, and no stored trunk
            to take a number from.
    """
    numbers: list[str] = []
    headers: dict[str, str] = {}
    to_attributes: dict[str, str] = {}
    include = sip_pb.SIPHeaderOptions.SIP_NO_HEADERS
    if trunk is not None:
        host = trunk.address
        numbers = list(trunk.numbers)
        headers = dict(trunk.headers)
        to_attributes = dict(trunk.headers_to_attributes)
        include = trunk.include_headers
    elif request.HasField("trunk"):
        host = request.trunk.hostname
        to_attributes = dict(request.trunk.headers_to_attributes)
    else:
        host = ""
    number = request.sip_number
    if not number:
        if not numbers:
            raise ProvisioningError(
                "failed_precondition",
                "no numbers on outbound trunk: an inline trunk has none, so set sip_number to "
                "the number the call comes from (e.g. '+15550000000'), or dial through a "
                "stored outbound trunk (sip_trunk_id), whose numbers it comes from",
            )
        number = random.choice(numbers)  # as LiveKit: any of the trunk's numbers
    if host.endswith("twilio.com") and not number.startswith("+"):
        number = "+" + number  # LiveKit's fix for Twilio, which requires the leading '+'
    headers.update(request.headers)
    if request.include_headers != sip_pb.SIPHeaderOptions.SIP_NO_HEADERS:
        include = request.include_headers
    return OutboundRoute(
        trunk_id=request.sip_trunk_id,
        host=host,
        number=number,
        headers=headers,
        headers_to_attributes=to_attributes,
        include_headers=include,
    )
