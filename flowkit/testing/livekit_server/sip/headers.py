"""A dialled call's answer headers as participant attributes, as LiveKit's SIP service maps them.

When the callee answers, LiveKit's SIP service copies headers of its 200 OK to the SIP
participant's attributes (livekit/sip ``pkg/sip/types.go``, ``HeadersToAttrs``), in two ways,
both set by the outbound trunk (stored, or inline for ``headers_to_attributes``) and, for
``include_headers``, by the request over the trunk:

- ``include_headers``: ``SIP_X_HEADERS`` copies every ``X-`` header, ``SIP_ALL_HEADERS`` every
  header, each to ``sip.h.`` and its name in lower case; ``SIP_NO_HEADERS`` (the default)
  none;
- ``headers_to_attributes``: a header's name (any case) to the attribute it fills.

The named mapping is applied last, so it wins when both fill one attribute. Here the 200 OK's
headers are the simulated phone's ``answer_headers``; a real one also has the standard headers
(``Via``, ``From``, ``To``, ``Contact``...), which ``SIP_ALL_HEADERS`` would copy too.
"""

from __future__ import annotations

from collections.abc import Mapping

from livekit.protocol import sip as sip_pb

from flowkit.testing.livekit_server.sip.codes import ATTR_HEADER_PREFIX

__all__ = ["attributes_from_headers"]


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """The value of the first header called ``name`` (SIP header names ignore case), or None."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def attributes_from_headers(
    headers: Mapping[str, str], headers_to_attributes: Mapping[str, str], include_headers: int
) -> dict[str, str]:
    """The participant attributes a 200 OK with ``headers`` sets (see the module's docs).

    Args:
        headers: The 200 OK's headers, name to value.
        headers_to_attributes: Header name to attribute name (the trunk's).
        include_headers: A ``SIPHeaderOptions`` value: which headers go to ``sip.h.*``.
    """
    attributes: dict[str, str] = {}
    if include_headers != sip_pb.SIPHeaderOptions.SIP_NO_HEADERS:
        x_only = include_headers == sip_pb.SIPHeaderOptions.SIP_X_HEADERS
        for name, value in headers.items():
            lower = name.lower()
            if lower and (lower.startswith("x-") or not x_only):
                attributes[ATTR_HEADER_PREFIX + lower] = value
    for name, attribute in headers_to_attributes.items():
        found = _header(headers, name)
        if found is not None:
            attributes[attribute] = found
    return attributes
