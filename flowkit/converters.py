"""The converter registry: nodes the graph may insert itself when formats differ on an edge.

A converter is registered for a message type with a factory that, given the producer's and
the consumer's format, returns a node with one input and one output doing the conversion, or
``None`` when it cannot convert between those two. The audio nodes register the resampler for
:class:`livekit.rtc.AudioFrame`; a node library may register its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flowkit.node import Node
from flowkit.ports import AudioFormat

__all__ = ["ConverterFactory", "find_converter", "register_converter", "unregister_converter"]

ConverterFactory = Callable[[AudioFormat, AudioFormat], Node | None]

_registry: dict[Any, list[ConverterFactory]] = {}


def register_converter(message_type: Any, factory: ConverterFactory) -> None:
    """Register ``factory`` as a converter for ports of ``message_type``.

    Factories registered later are tried first, so a library can override a built-in.
    """
    _registry.setdefault(message_type, []).insert(0, factory)


def unregister_converter(message_type: Any, factory: ConverterFactory) -> None:
    """Remove a factory registered with :func:`register_converter` (tests use this)."""
    factories = _registry.get(message_type, [])
    if factory in factories:
        factories.remove(factory)


def find_converter(message_type: Any, src: AudioFormat, dst: AudioFormat) -> Node | None:
    """A fresh converter node from ``src`` to ``dst`` for ``message_type``, or ``None``."""
    for factory in _registry.get(message_type, []):
        node = factory(src, dst)
        if node is not None:
            if len(node.inputs) != 1 or len(node.outputs) != 1:
                raise TypeError(
                    f"converter factory {factory!r} returned {node!r}, which has "
                    f"{len(node.inputs)} inputs and {len(node.outputs)} outputs; a converter "
                    "has exactly one of each"
                )
            return node
    return None
